//! Annotation formats read and written by veritune: COCO JSON, YOLO txt and
//! Pascal VOC XML, each read into and written from one [`LabelSet`], and the
//! label set a project's verdicts give, for export. The parsers take text and
//! return text; reading and writing files is `dataset`'s and the CLI's.

pub mod coco;
pub mod import;
pub mod voc;
pub mod yolo;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use thiserror::Error;

use crate::geometry::{BBox, LabeledBox};
use crate::verdict::{ImageVerdicts, TargetConfig, VerdictError, build_target};

/// Labelled images: class names and, per image, its size and boxes in pixels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSet {
    /// Class names; a box's `class` indexes this list.
    pub class_names: Vec<String>,
    /// The images with their boxes.
    pub images: Vec<ImageLabels>,
}

/// One image of a [`LabelSet`] and its labelled boxes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageLabels {
    /// Image file name, relative to the set's image folder, `/` between folders.
    pub file_name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The labelled objects, in file order, in image pixels (`x0, y0` the
    /// top-left corner of the top-left pixel covered, `x1, y1` the
    /// bottom-right corner of the bottom-right one).
    pub boxes: Vec<LabeledBox>,
}

impl ImageLabels {
    /// The same labels for the picture at `width` x `height` pixels (another
    /// resolution of the same image): boxes scaled by the ratio of the sizes
    /// and cut to the new size. An image of zero size keeps its box values.
    pub fn resized(&self, width: u32, height: u32) -> ImageLabels {
        let ratio = |to: u32, from: u32| {
            if from == 0 {
                1.0
            } else {
                f64::from(to) / f64::from(from)
            }
        };
        let (sx, sy) = (ratio(width, self.width), ratio(height, self.height));
        let scale = |v: f32, s: f64| (f64::from(v) * s) as f32;
        ImageLabels {
            file_name: self.file_name.clone(),
            width,
            height,
            boxes: self
                .boxes
                .iter()
                .map(|b| LabeledBox {
                    bbox: BBox::new(
                        scale(b.bbox.x0, sx),
                        scale(b.bbox.y0, sy),
                        scale(b.bbox.x1, sx),
                        scale(b.bbox.y1, sy),
                    )
                    .clip(width as f32, height as f32),
                    class: b.class,
                })
                .collect(),
        }
    }
}

/// An image's file name and size: what YOLO labels need to become pixels and
/// what verdicts need to become a [`LabelSet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSize {
    /// Image file name, relative to the image folder, `/` between folders.
    pub file_name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// One text file of a format that spreads a set over several files.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TextFile {
    /// Path relative to the format's folder, `/` between folders.
    pub name: String,
    /// The file's text.
    pub text: String,
}

/// The annotation formats veritune reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// COCO object-detection JSON, one file for the whole set.
    Coco,
    /// YOLO txt: one file per image plus `classes.txt`.
    Yolo,
    /// Pascal VOC XML: one file per image.
    Voc,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Format; 3] = [Format::Coco, Format::Yolo, Format::Voc];

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Coco => "coco",
            Format::Yolo => "yolo",
            Format::Voc => "voc",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of `coco`, `yolo`, `voc`.
#[derive(Debug, Error, PartialEq)]
#[error("'{0}' is not an annotation format: use coco, yolo or voc")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|format| format.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownFormat(name.to_string()))
    }
}

/// Two things that would be written to the same label file.
#[derive(Debug, Error, PartialEq)]
#[error(
    "'{first}' and '{second}' would both be written to '{file}' (a label file is named after its image without the extension): rename one of the images"
)]
pub struct LabelFileClash {
    /// The first image.
    pub first: String,
    /// The second image, or what else owns the file name.
    pub second: String,
    /// The label file both would be written to.
    pub file: String,
}

/// A box whose class is not in the set's class list.
#[derive(Debug, Error, PartialEq)]
#[error(
    "image '{file_name}' has a box of class {class}, but the class list has {classes} classes: add the class name or fix the box"
)]
pub struct UnknownClass {
    /// The image.
    pub file_name: String,
    /// The class index of the box.
    pub class: usize,
    /// How many classes the list has.
    pub classes: usize,
}

impl LabelSet {
    /// Checks that every box's class is in the class list.
    pub fn check_classes(&self) -> Result<(), UnknownClass> {
        let classes = self.class_names.len();
        for image in &self.images {
            if let Some(labeled) = image.boxes.iter().find(|b| b.class >= classes) {
                return Err(UnknownClass {
                    file_name: image.file_name.clone(),
                    class: labeled.class,
                    classes,
                });
            }
        }
        Ok(())
    }
}

/// For each class of a label file (`names`), its index among a model's
/// classes (`model`), matched by exact name; `None` when the model has no
/// class of that name.
pub fn class_map(names: &[String], model: &[String]) -> Vec<Option<usize>> {
    names
        .iter()
        .map(|name| model.iter().position(|m| m == name))
        .collect()
}

/// The name of the label file of `image`: the image's path with its extension
/// replaced by `extension` (`photos/a.b.jpg` → `photos/a.b.txt`).
pub fn label_file_name(image: &str, extension: &str) -> String {
    let name_start = image.rfind('/').map_or(0, |slash| slash + 1);
    let stem_end = match image[name_start..].rfind('.') {
        Some(dot) if dot > 0 => name_start + dot,
        _ => image.len(),
    };
    format!("{}.{extension}", &image[..stem_end])
}

/// Maps each image's label file name to the image's index, refusing two
/// images with the same label file (`a.jpg` and `a.png`) or an image whose
/// label file would be `reserved` (another file of the format).
fn label_files<'a>(
    images: impl IntoIterator<Item = &'a str>,
    extension: &str,
    reserved: Option<&str>,
) -> Result<HashMap<String, usize>, LabelFileClash> {
    let images: Vec<&str> = images.into_iter().collect();
    let mut owners: HashMap<String, usize> = HashMap::with_capacity(images.len());
    for (index, image) in images.iter().enumerate() {
        let file = label_file_name(image, extension);
        if reserved == Some(file.as_str()) {
            return Err(LabelFileClash {
                first: image.to_string(),
                second: format!("the class list {file}"),
                file,
            });
        }
        if let Some(first) = owners.insert(file.clone(), index) {
            return Err(LabelFileClash {
                first: images[first].to_string(),
                second: image.to_string(),
                file,
            });
        }
    }
    Ok(owners)
}

/// One label file per image of `set`, in image order, named by
/// [`label_file_name`] and rendered by `render`.
fn per_image_files<E: From<LabelFileClash>>(
    set: &LabelSet,
    extension: &str,
    reserved: Option<&str>,
    mut render: impl FnMut(&ImageLabels) -> Result<String, E>,
) -> Result<Vec<TextFile>, E> {
    label_files(
        set.images.iter().map(|i| i.file_name.as_str()),
        extension,
        reserved,
    )?;
    set.images
        .iter()
        .map(|image| {
            Ok(TextFile {
                name: label_file_name(&image.file_name, extension),
                text: render(image)?,
            })
        })
        .collect()
}

/// Why verdicts cannot become labels.
#[derive(Debug, Error, PartialEq)]
pub enum VerdictLabelsError {
    /// The verdicts name an image whose size is not known.
    #[error(
        "the verdicts name the image '{file_name}', which is not among the images: put it in the image folder or remove its verdicts"
    )]
    UnknownImage {
        /// The image file name in the verdicts.
        file_name: String,
    },
    /// An image's verdicts are incomplete or hold an empty box.
    #[error("the verdicts of image '{file_name}': {error}")]
    Verdict {
        /// The image file name in the verdicts.
        file_name: String,
        /// What is wrong with them.
        error: VerdictError,
    },
    /// A user box has a class the model does not have.
    #[error(transparent)]
    UnknownClass(#[from] UnknownClass),
}

/// The labels a project's verdicts give: per reviewed image, the boxes the
/// user confirmed, corrected or drew (the positives of its training target
/// without the candidates' relabelling), in image pixels. `class_names` are
/// the model's classes the verdicts refer to; `sizes` gives each image's
/// size. Images come in file-name order; an image whose boxes were all
/// rejected is an image without boxes.
pub fn labels_from_verdicts(
    class_names: &[String],
    sizes: &[ImageSize],
    verdicts: &BTreeMap<String, ImageVerdicts>,
) -> Result<LabelSet, VerdictLabelsError> {
    let size_of: HashMap<&str, &ImageSize> =
        sizes.iter().map(|s| (s.file_name.as_str(), s)).collect();
    let images = verdicts
        .iter()
        .map(|(file_name, image_verdicts)| {
            let size = size_of.get(file_name.as_str()).ok_or_else(|| {
                VerdictLabelsError::UnknownImage {
                    file_name: file_name.clone(),
                }
            })?;
            let target =
                build_target(image_verdicts, &[], &TargetConfig::default()).map_err(|error| {
                    VerdictLabelsError::Verdict {
                        file_name: file_name.clone(),
                        error,
                    }
                })?;
            Ok(ImageLabels {
                file_name: file_name.clone(),
                width: size.width,
                height: size.height,
                boxes: target.positives.iter().map(|p| p.label).collect(),
            })
        })
        .collect::<Result<Vec<_>, VerdictLabelsError>>()?;
    let set = LabelSet {
        class_names: class_names.to_vec(),
        images,
    };
    set.check_classes()?;
    Ok(set)
}

/// The text of a number as written into a label file: the shortest decimal
/// that reads back as the same double (`11`, `0.25`, `103.5`).
fn number(value: f64) -> String {
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Detection;
    use crate::verdict::{Judgement, ShownBox};

    #[test]
    fn label_file_names_replace_only_the_last_extension_of_the_file() {
        assert_eq!(label_file_name("a.jpg", "txt"), "a.txt");
        assert_eq!(
            label_file_name("x.y/café 画像.v2.PNG", "xml"),
            "x.y/café 画像.v2.xml"
        );
        assert_eq!(label_file_name("dir.d/noext", "txt"), "dir.d/noext.txt");
        assert_eq!(label_file_name(".hidden", "txt"), ".hidden.txt");
    }

    #[test]
    fn images_sharing_a_label_file_are_refused() {
        let err = label_files(["a.jpg", "b.jpg", "a.png"], "txt", None).unwrap_err();
        assert_eq!(
            err,
            LabelFileClash {
                first: "a.jpg".into(),
                second: "a.png".into(),
                file: "a.txt".into()
            }
        );
        let err = label_files(["classes.png"], "txt", Some("classes.txt")).unwrap_err();
        assert!(err.to_string().contains("class list"), "{err}");
    }

    #[test]
    fn format_names_parse_in_any_case_and_others_are_refused() {
        assert_eq!("YOLO".parse::<Format>(), Ok(Format::Yolo));
        assert_eq!("voc".parse::<Format>(), Ok(Format::Voc));
        let err = "kitti".parse::<Format>().unwrap_err();
        assert!(err.to_string().contains("coco, yolo or voc"), "{err}");
    }

    fn size(file_name: &str) -> ImageSize {
        ImageSize {
            file_name: file_name.into(),
            width: 64,
            height: 48,
        }
    }

    #[test]
    fn verdicts_give_the_users_boxes_and_no_rejected_ones() {
        let shown = |x: f32, class: usize| Detection {
            bbox: BBox::new(x, 1.0, x + 10.0, 11.0),
            class,
            score: 0.9,
        };
        let corrected = LabeledBox {
            bbox: BBox::new(30.0, 2.0, 44.0, 20.0),
            class: 0,
        };
        let drawn = LabeledBox {
            bbox: BBox::new(5.0, 30.0, 9.5, 40.0),
            class: 1,
        };
        let verdicts = BTreeMap::from([
            (
                "b.png".to_string(),
                ImageVerdicts {
                    shown: vec![
                        ShownBox {
                            detection: shown(0.0, 1),
                            judgement: Some(Judgement::Confirmed),
                        },
                        ShownBox {
                            detection: shown(20.0, 1),
                            judgement: Some(Judgement::Corrected { label: corrected }),
                        },
                        ShownBox {
                            detection: shown(40.0, 0),
                            judgement: Some(Judgement::Rejected),
                        },
                    ],
                    drawn: vec![drawn],
                    reviewed_classes: None,
                },
            ),
            (
                "a.png".to_string(),
                ImageVerdicts {
                    shown: vec![ShownBox {
                        detection: shown(0.0, 0),
                        judgement: Some(Judgement::Rejected),
                    }],
                    drawn: Vec::new(),
                    reviewed_classes: None,
                },
            ),
        ]);
        let names = vec!["cat".to_string(), "traffic light".to_string()];
        let set = labels_from_verdicts(&names, &[size("b.png"), size("a.png")], &verdicts)
            .expect("complete verdicts");
        assert_eq!(set.class_names, names);
        assert_eq!(set.images.len(), 2);
        assert_eq!(set.images[0].file_name, "a.png");
        assert!(set.images[0].boxes.is_empty());
        assert_eq!((set.images[1].width, set.images[1].height), (64, 48));
        assert_eq!(
            set.images[1].boxes,
            vec![shown(0.0, 1).labeled(), corrected, drawn]
        );
    }

    #[test]
    fn verdicts_that_cannot_be_labels_name_the_image() {
        let names = vec!["cat".to_string()];
        let pending = BTreeMap::from([(
            "p.png".to_string(),
            ImageVerdicts::new([Detection {
                bbox: BBox::new(0.0, 0.0, 5.0, 5.0),
                class: 0,
                score: 0.8,
            }]),
        )]);
        let err = labels_from_verdicts(&names, &[size("p.png")], &pending).unwrap_err();
        assert!(
            matches!(&err, VerdictLabelsError::Verdict { file_name, error: VerdictError::Unjudged { index: 0 } } if file_name == "p.png"),
            "{err}"
        );
        assert!(err.to_string().contains("'p.png'"), "{err}");
        let err = labels_from_verdicts(&names, &[], &pending).unwrap_err();
        assert_eq!(
            err,
            VerdictLabelsError::UnknownImage {
                file_name: "p.png".into()
            }
        );
        let foreign = BTreeMap::from([(
            "q.png".to_string(),
            ImageVerdicts {
                shown: Vec::new(),
                drawn: vec![LabeledBox {
                    bbox: BBox::new(0.0, 0.0, 5.0, 5.0),
                    class: 3,
                }],
                reviewed_classes: None,
            },
        )]);
        let err = labels_from_verdicts(&names, &[size("q.png")], &foreign).unwrap_err();
        assert!(
            matches!(
                err,
                VerdictLabelsError::UnknownClass(UnknownClass {
                    class: 3,
                    classes: 1,
                    ..
                })
            ),
            "{err}"
        );
    }

    #[test]
    fn resizing_scales_boxes_by_the_ratio_of_the_sizes_and_cuts_them() {
        let labels = ImageLabels {
            file_name: "a.png".into(),
            width: 200,
            height: 100,
            boxes: vec![
                LabeledBox {
                    bbox: BBox::new(10.0, 20.0, 110.0, 60.0),
                    class: 1,
                },
                LabeledBox {
                    bbox: BBox::new(150.0, 50.0, 200.0, 100.0),
                    class: 0,
                },
            ],
        };
        let half = labels.resized(100, 50);
        assert_eq!((half.width, half.height), (100, 50));
        assert_eq!(half.file_name, "a.png");
        assert_eq!(half.boxes[0].bbox, BBox::new(5.0, 10.0, 55.0, 30.0));
        assert_eq!(half.boxes[0].class, 1);
        assert_eq!(half.boxes[1].bbox, BBox::new(75.0, 25.0, 100.0, 50.0));
        assert_eq!(labels.resized(200, 100), labels);
    }
}
