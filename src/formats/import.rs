//! Label files brought to images that are already open (the page's label
//! import): the format told by the files' extensions (`.json` COCO, `.txt`
//! YOLO with `classes.txt`, `.xml` Pascal VOC), each entry matched to an
//! open image by file name, its classes to the model's by name, its boxes
//! rescaled to the open image's size. Entries for images that are not open,
//! and boxes of classes the model lacks, are reported, not refused.

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use super::coco::{CocoError, read_coco};
use super::voc::{VocError, read_voc};
use super::yolo::{CLASSES_FILE, YoloError, read_yolo};
use super::{Format, ImageSize, LabelSet, TextFile, class_map, label_file_name};
use crate::geometry::LabeledBox;

/// Why label files cannot be imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// No file was given.
    #[error(
        "no label files were chosen: pick one COCO .json file, YOLO .txt files with their classes.txt, or Pascal VOC .xml files"
    )]
    NoFiles,
    /// A file's extension is none of the formats'.
    #[error(
        "'{file}' is not a label file veritune reads (COCO .json, YOLO .txt, Pascal VOC .xml): leave it out"
    )]
    UnknownExtension {
        /// The file.
        file: String,
    },
    /// The files are of more than one format.
    #[error(
        "the chosen files mix formats ('{first}' is {first_format}, '{second}' is {second_format}): import one format at a time"
    )]
    MixedFormats {
        /// A file of the first format.
        first: String,
        /// Its format.
        first_format: Format,
        /// A file of another format.
        second: String,
        /// Its format.
        second_format: Format,
    },
    /// More than one COCO file was given.
    #[error("{count} COCO .json files were chosen: import one at a time")]
    SeveralCoco {
        /// How many.
        count: usize,
    },
    /// YOLO label files came without their class list.
    #[error(
        "the YOLO label files came without their class list: pick {CLASSES_FILE} together with the .txt files"
    )]
    NoClassList,
    /// The COCO file cannot be read.
    #[error("{file}: {error}")]
    Coco {
        /// The file.
        file: String,
        /// What is wrong with it.
        error: CocoError,
    },
    /// The YOLO files cannot be read.
    #[error(transparent)]
    Yolo(#[from] YoloError),
    /// The Pascal VOC files cannot be read.
    #[error(transparent)]
    Voc(#[from] VocError),
}

/// The imported boxes of one open image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedImage {
    /// The image's index among the open images.
    pub index: usize,
    /// Its labelled objects in its pixels, classes the model's.
    pub boxes: Vec<LabeledBox>,
}

/// A class of the label files the model does not have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedClass {
    /// The class name.
    pub name: String,
    /// How many boxes of matched images had it (and were left out).
    pub boxes: usize,
}

/// What label files give the open images.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelImport {
    /// The files' format.
    pub format: Format,
    /// The matched open images, in the files' order.
    pub images: Vec<ImportedImage>,
    /// Entries naming an image that is not open (their image or label file
    /// names), in the files' order.
    pub not_open: Vec<String>,
    /// Entries naming an open image that an earlier entry already matched.
    pub repeated: Vec<String>,
    /// The files' classes the model lacks, with the boxes left out.
    pub unknown_classes: Vec<SkippedClass>,
}

/// The format of a file, by extension (any case).
fn format_of(name: &str) -> Option<Format> {
    let (_, extension) = name.rsplit_once('.')?;
    [
        ("json", Format::Coco),
        ("txt", Format::Yolo),
        ("xml", Format::Voc),
    ]
    .into_iter()
    .find(|(e, _)| extension.eq_ignore_ascii_case(e))
    .map(|(_, format)| format)
}

fn base_name(name: &str) -> &str {
    name.rsplit_once('/').map_or(name, |(_, base)| base)
}

/// The index of the name in `names` that `name` means: the same name, else
/// the only one with the same last path component.
fn find(name: &str, names: &[String]) -> Option<usize> {
    if let Some(index) = names.iter().position(|n| n == name) {
        return Some(index);
    }
    let mut same_base = names
        .iter()
        .enumerate()
        .filter(|(_, n)| base_name(n) == base_name(name));
    match (same_base.next(), same_base.next()) {
        (Some((index, _)), None) => Some(index),
        _ => None,
    }
}

/// Which entries (by name) go to which open image: `Some(index)` for the
/// first entry naming an image, `None` for the others; the names of entries
/// naming no open image and of repeated ones.
struct Matching {
    targets: Vec<Option<usize>>,
    not_open: Vec<String>,
    repeated: Vec<String>,
}

fn match_names<'a>(entries: impl IntoIterator<Item = &'a str>, names: &[String]) -> Matching {
    let mut claimed = vec![false; names.len()];
    let mut matching = Matching {
        targets: Vec::new(),
        not_open: Vec::new(),
        repeated: Vec::new(),
    };
    for entry in entries {
        let target = match find(entry, names) {
            None => {
                matching.not_open.push(entry.to_string());
                None
            }
            Some(index) if claimed[index] => {
                matching.repeated.push(entry.to_string());
                None
            }
            Some(index) => {
                claimed[index] = true;
                Some(index)
            }
        };
        matching.targets.push(target);
    }
    matching
}

/// The extension of a file name with its dot (`.png`), or "" when it has none.
fn extension(name: &str) -> &str {
    let base = base_name(name);
    match base.rfind('.') {
        Some(dot) if dot > 0 => &base[dot..],
        _ => "",
    }
}

/// Reads YOLO files for the open images: each label file goes to the open
/// image named like it, and is read at that image's size under its own name.
fn read_yolo_for(
    files: &[TextFile],
    open: &[ImageSize],
) -> Result<(LabelSet, Vec<usize>, Matching), ImportError> {
    let classes = files
        .iter()
        .find(|f| base_name(&f.name) == CLASSES_FILE)
        .ok_or(ImportError::NoClassList)?;
    let labels: Vec<TextFile> = files
        .iter()
        .filter(|f| !std::ptr::eq(*f, classes))
        .cloned()
        .collect();
    let label_names: Vec<String> = open
        .iter()
        .map(|o| label_file_name(&o.file_name, "txt"))
        .collect();
    let matching = match_names(labels.iter().map(|f| f.name.as_str()), &label_names);
    let (mut sizes, mut matched, mut indices) = (Vec::new(), Vec::new(), Vec::new());
    for (file, target) in labels.into_iter().zip(&matching.targets) {
        if let Some(index) = *target {
            let image = &open[index];
            // The image name whose label file is this file's name.
            let stem = file.name.strip_suffix(extension(&file.name)).unwrap_or("");
            sizes.push(ImageSize {
                file_name: format!("{stem}{}", extension(&image.file_name)),
                width: image.width,
                height: image.height,
            });
            matched.push(file);
            indices.push(index);
        }
    }
    let set = read_yolo(classes, &sizes, &matched)?;
    Ok((set, indices, matching))
}

/// Reads label `files` for the `open` images (their names and sizes in the
/// page) and maps their classes to `model_classes` by name.
pub fn import_labels(
    files: &[TextFile],
    open: &[ImageSize],
    model_classes: &[String],
) -> Result<LabelImport, ImportError> {
    let first = files.first().ok_or(ImportError::NoFiles)?;
    let format = format_of(&first.name).ok_or_else(|| ImportError::UnknownExtension {
        file: first.name.clone(),
    })?;
    for file in files {
        match format_of(&file.name) {
            None => {
                return Err(ImportError::UnknownExtension {
                    file: file.name.clone(),
                });
            }
            Some(other) if other != format => {
                return Err(ImportError::MixedFormats {
                    first: first.name.clone(),
                    first_format: format,
                    second: file.name.clone(),
                    second_format: other,
                });
            }
            Some(_) => {}
        }
    }
    let open_names: Vec<String> = open.iter().map(|o| o.file_name.clone()).collect();
    let (set, targets, matching) = match format {
        Format::Coco => {
            if files.len() > 1 {
                return Err(ImportError::SeveralCoco { count: files.len() });
            }
            let set = read_coco(&first.text).map_err(|error| ImportError::Coco {
                file: first.name.clone(),
                error,
            })?;
            let matching =
                match_names(set.images.iter().map(|i| i.file_name.as_str()), &open_names);
            let targets = matching.targets.clone();
            (set, targets, matching)
        }
        Format::Voc => {
            let set = read_voc(files)?;
            let matching =
                match_names(set.images.iter().map(|i| i.file_name.as_str()), &open_names);
            let targets = matching.targets.clone();
            (set, targets, matching)
        }
        Format::Yolo => {
            let (set, indices, matching) = read_yolo_for(files, open)?;
            (set, indices.into_iter().map(Some).collect(), matching)
        }
    };

    let class_map = class_map(&set.class_names, model_classes);
    let mut skipped: BTreeMap<usize, usize> = BTreeMap::new();
    let mut images = Vec::new();
    for (labels, target) in set.images.iter().zip(targets) {
        let Some(index) = target else { continue };
        let image = &open[index];
        let resized = labels.resized(image.width, image.height);
        let boxes = resized
            .boxes
            .iter()
            .filter_map(|b| match class_map[b.class] {
                Some(class) => Some(LabeledBox {
                    bbox: b.bbox,
                    class,
                }),
                None => {
                    *skipped.entry(b.class).or_default() += 1;
                    None
                }
            })
            .collect();
        images.push(ImportedImage { index, boxes });
    }
    Ok(LabelImport {
        format,
        images,
        not_open: matching.not_open,
        repeated: matching.repeated,
        unknown_classes: skipped
            .into_iter()
            .map(|(class, boxes)| SkippedClass {
                name: set.class_names[class].clone(),
                boxes,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    fn file(name: &str, text: &str) -> TextFile {
        TextFile {
            name: name.into(),
            text: text.into(),
        }
    }

    fn open(name: &str, width: u32, height: u32) -> ImageSize {
        ImageSize {
            file_name: name.into(),
            width,
            height,
        }
    }

    fn classes() -> Vec<String> {
        vec!["cat".into(), "dog".into()]
    }

    #[test]
    fn coco_entries_go_to_open_images_by_name_rescaled_with_classes_by_name() {
        // The file was made for 400x200 originals; the page works at 200x100.
        let coco = r#"{
            "images": [
                {"id": 1, "file_name": "photos/a.png", "width": 400, "height": 200},
                {"id": 2, "file_name": "gone.png", "width": 400, "height": 200},
                {"id": 3, "file_name": "b.png", "width": 50, "height": 50}
            ],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 7, "bbox": [40, 20, 100, 60]},
                {"id": 2, "image_id": 1, "category_id": 9, "bbox": [0, 0, 10, 10]},
                {"id": 3, "image_id": 2, "category_id": 7, "bbox": [0, 0, 10, 10]},
                {"id": 4, "image_id": 1, "category_id": 9, "bbox": [10, 0, 10, 10]}
            ],
            "categories": [{"id": 7, "name": "dog"}, {"id": 9, "name": "horse"}]
        }"#;
        let opened = [open("b.png", 50, 50), open("a.png", 200, 100)];
        let import = import_labels(&[file("labels.json", coco)], &opened, &classes()).unwrap();
        assert_eq!(import.format, Format::Coco);
        assert_eq!(
            import.images,
            vec![
                ImportedImage {
                    index: 1,
                    boxes: vec![LabeledBox {
                        bbox: BBox::new(20.0, 10.0, 70.0, 40.0),
                        class: 1,
                    }],
                },
                // Labelled without objects: an image with no boxes.
                ImportedImage {
                    index: 0,
                    boxes: vec![],
                },
            ]
        );
        assert_eq!(import.not_open, vec!["gone.png".to_string()]);
        assert!(import.repeated.is_empty());
        assert_eq!(
            import.unknown_classes,
            vec![SkippedClass {
                name: "horse".into(),
                boxes: 2,
            }]
        );
    }

    #[test]
    fn yolo_files_go_to_the_open_images_named_like_them_at_their_size() {
        let files = [
            file("labels/classes.txt", "dog\ncat\nbird\n"),
            file("labels/a.txt", "1 0.5 0.5 0.5 0.5\n2 0.1 0.1 0.1 0.1\n"),
            file("labels/z.txt", "0 0.5 0.5 0.5 0.5\n"),
            file("other/a.txt", "0 0.5 0.5 0.5 0.5\n"),
        ];
        let opened = [open("opened/a.jpeg", 200, 100)];
        let import = import_labels(&files, &opened, &classes()).unwrap();
        assert_eq!(import.format, Format::Yolo);
        assert_eq!(
            import.images,
            vec![ImportedImage {
                index: 0,
                boxes: vec![LabeledBox {
                    bbox: BBox::new(50.0, 25.0, 150.0, 75.0),
                    class: 0,
                }],
            }]
        );
        assert_eq!(import.not_open, vec!["labels/z.txt".to_string()]);
        assert_eq!(import.repeated, vec!["other/a.txt".to_string()]);
        assert_eq!(
            import.unknown_classes,
            vec![SkippedClass {
                name: "bird".into(),
                boxes: 1,
            }]
        );
    }

    #[test]
    fn yolo_errors_name_the_users_file_and_line() {
        let files = [
            file("classes.txt", "cat\n"),
            file("a.txt", "0 0.5 0.5 0.5 0.5\n0 0.5 0.5 1.5 0.5\n"),
        ];
        let err = import_labels(&files, &[open("a.png", 10, 10)], &classes()).unwrap_err();
        assert!(
            err.to_string().starts_with("a.txt, line 2: the width 1.5"),
            "{err}"
        );
        let err = import_labels(&files[1..], &[open("a.png", 10, 10)], &classes()).unwrap_err();
        assert!(matches!(err, ImportError::NoClassList), "{err}");
    }

    #[test]
    fn voc_files_match_by_file_name_and_rescale_from_their_size() {
        let xml = "<annotation><filename>a.png</filename><size><width>100</width><height>100</height></size>\
            <object><name>cat</name><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>\
            </annotation>";
        let import = import_labels(
            &[file("Annotations/a.xml", xml)],
            &[open("a.png", 50, 50)],
            &classes(),
        )
        .unwrap();
        assert_eq!(import.format, Format::Voc);
        assert_eq!(
            import.images,
            vec![ImportedImage {
                index: 0,
                boxes: vec![LabeledBox {
                    bbox: BBox::new(5.0, 10.0, 25.0, 30.0),
                    class: 0,
                }],
            }]
        );
    }

    #[test]
    fn the_files_must_be_of_one_known_format() {
        let opened = [open("a.png", 10, 10)];
        assert!(matches!(
            import_labels(&[], &opened, &classes()),
            Err(ImportError::NoFiles)
        ));
        let err = import_labels(&[file("a.png", "")], &opened, &classes()).unwrap_err();
        assert!(matches!(err, ImportError::UnknownExtension { .. }), "{err}");
        let err = import_labels(&[file("a.xml", ""), file("b.TXT", "")], &opened, &classes())
            .unwrap_err();
        assert!(err.to_string().contains("'b.TXT' is yolo"), "{err}");
        let err = import_labels(
            &[file("a.json", "{}"), file("b.json", "{}")],
            &opened,
            &classes(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ImportError::SeveralCoco { count: 2 }),
            "{err}"
        );
        let err = import_labels(&[file("a.json", "{")], &opened, &classes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("a.json: the COCO JSON is malformed"),
            "{err}"
        );
    }

    #[test]
    fn a_base_name_shared_by_two_open_images_matches_neither() {
        let names = vec!["x/a.png".to_string(), "y/a.png".to_string()];
        assert_eq!(find("a.png", &names), None);
        assert_eq!(find("y/a.png", &names), Some(1));
        assert_eq!(find("z/a.png", &["a.png".to_string()]), Some(0));
    }
}
