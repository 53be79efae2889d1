//! Images and annotations on disk: decoding image files, reading image sizes,
//! reading and writing label sets in COCO, YOLO and VOC folders and files,
//! pairing a COCO annotation file with the folder of its images, and verdict
//! files.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

use crate::formats::coco::{CocoError, read_coco, to_coco_json};
use crate::formats::voc::{VocError, read_voc, write_voc};
use crate::formats::yolo::{CLASSES_FILE, YoloError, read_yolo, write_yolo};
use crate::formats::{Format, ImageSize, LabelSet, TextFile};
use crate::geometry::LabeledBox;
use crate::image::Image;
use crate::verdict::ImageVerdicts;

/// File extensions of the images veritune decodes, lower case.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The class list Darknet and CVAT write instead of `classes.txt`.
pub const DARKNET_CLASSES_FILE: &str = "obj.names";

/// Why files cannot be read as images, annotations or verdicts.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not a decodable image.
    #[error("{path} is not an image veritune can decode (PNG or JPEG): {reason}")]
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// The decoder's reason.
        reason: String,
    },
    /// The file is not UTF-8 text.
    #[error("{path} is not UTF-8 text: save it as UTF-8")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// A file name in a folder is not valid Unicode.
    #[error("{path} has a name that is not valid Unicode: rename it")]
    NonUnicodeName {
        /// The file.
        path: PathBuf,
    },
    /// A label file name would leave the output folder.
    #[error(
        "the image name '{name}' would put its label file outside {folder}: image names must be relative paths without '..'"
    )]
    UnsafeName {
        /// The name.
        name: String,
        /// The output folder.
        folder: PathBuf,
    },
    /// The annotation file is invalid.
    #[error("in the COCO file {path}: {problem}")]
    Coco {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        problem: CocoError,
    },
    /// The YOLO labels are invalid.
    #[error("in the YOLO labels in {folder}: {problem}")]
    Yolo {
        /// The folder of the label files.
        folder: PathBuf,
        /// What is wrong with them.
        problem: YoloError,
    },
    /// The VOC annotations are invalid.
    #[error("in the Pascal VOC annotations in {folder}: {problem}")]
    Voc {
        /// The folder of the annotation files.
        folder: PathBuf,
        /// What is wrong with them.
        problem: VocError,
    },
    /// A YOLO folder has no class list.
    #[error(
        "{folder} has neither {CLASSES_FILE} nor {DARKNET_CLASSES_FILE}: add the class list, one name per line in class-index order"
    )]
    NoClassList {
        /// The folder.
        folder: PathBuf,
    },
    /// An annotated image is missing from the image folder.
    #[error(
        "{annotations} names the image '{file_name}', which is not in {folder}: put the image there or remove its entry"
    )]
    MissingImage {
        /// The annotation file.
        annotations: PathBuf,
        /// The image's file name.
        file_name: String,
        /// The folder searched.
        folder: PathBuf,
    },
    /// The verdicts file is invalid.
    #[error("{path} is not a valid verdicts file: {reason}")]
    BadVerdicts {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        reason: String,
    },
}

/// The error of a failed read or write of `path`.
fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError {
    let path = path.to_path_buf();
    move |e| DatasetError::Io {
        path,
        reason: e.to_string(),
    }
}

/// The UTF-8 text of the file at `path`.
pub fn read_text(path: &Path) -> Result<String, DatasetError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    String::from_utf8(bytes).map_err(|_| DatasetError::NotText {
        path: path.to_path_buf(),
    })
}

/// Decodes a PNG or JPEG file into an RGB [`Image`].
pub fn read_image(path: &Path) -> Result<Image, DatasetError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let not_an_image = |reason: String| DatasetError::NotAnImage {
        path: path.to_path_buf(),
        reason,
    };
    let decoded = ::image::load_from_memory(&bytes).map_err(|e| not_an_image(e.to_string()))?;
    let rgb = decoded.to_rgb8();
    Image::from_rgb8(rgb.width() as usize, rgb.height() as usize, rgb.as_raw())
        .map_err(|e| not_an_image(e.to_string()))
}

/// The width and height of a PNG or JPEG file, read from its header.
pub fn image_size(path: &Path) -> Result<(u32, u32), DatasetError> {
    ::image::image_dimensions(path).map_err(|e| match e {
        ::image::ImageError::IoError(e) => io_error(path)(e),
        other => DatasetError::NotAnImage {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

/// The files under `folder` (recursively, not following linked folders)
/// whose extension is one of
/// `extensions` (lower case; matched in any case), by their path relative to
/// `folder` with `/` between folders, sorted.
pub fn list_files(folder: &Path, extensions: &[&str]) -> Result<Vec<String>, DatasetError> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let path = entry.path();
            // Linked folders are not followed, so that a link cycle cannot loop.
            if entry.file_type().map_err(io_error(&path))?.is_dir() {
                pending.push(path);
                continue;
            }
            let wanted = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str()));
            if !wanted {
                continue;
            }
            let relative = path.strip_prefix(folder).unwrap_or(&path);
            let parts = relative
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| DatasetError::NonUnicodeName { path: path.clone() })?;
            found.push(parts.join("/"));
        }
    }
    found.sort();
    Ok(found)
}

/// The name and size of every PNG and JPEG image under `folder`, sorted by
/// name (relative to `folder`).
pub fn image_sizes(folder: &Path) -> Result<Vec<ImageSize>, DatasetError> {
    list_files(folder, &IMAGE_EXTENSIONS)?
        .into_iter()
        .map(|file_name| {
            let (width, height) = image_size(&folder.join(&file_name))?;
            Ok(ImageSize {
                file_name,
                width,
                height,
            })
        })
        .collect()
}

/// Reads and checks the COCO detection JSON file at `path`; errors name it.
pub fn read_coco_file(path: &Path) -> Result<LabelSet, DatasetError> {
    read_coco(&read_text(path)?).map_err(|problem| DatasetError::Coco {
        path: path.to_path_buf(),
        problem,
    })
}

/// The files under `folder` with the given extensions as [`TextFile`]s.
fn read_text_files(folder: &Path, extensions: &[&str]) -> Result<Vec<TextFile>, DatasetError> {
    list_files(folder, extensions)?
        .into_iter()
        .map(|name| {
            Ok(TextFile {
                text: read_text(&folder.join(&name))?,
                name,
            })
        })
        .collect()
}

/// Reads a YOLO label folder: the class list (`classes.txt`, or Darknet's
/// `obj.names`) at its top and the label files under it, named like the
/// images under `images` (whose sizes are read from the image files).
pub fn read_yolo_folder(folder: &Path, images: &Path) -> Result<LabelSet, DatasetError> {
    let class_list = [CLASSES_FILE, DARKNET_CLASSES_FILE]
        .into_iter()
        .find(|name| folder.join(name).is_file())
        .ok_or_else(|| DatasetError::NoClassList {
            folder: folder.to_path_buf(),
        })?;
    let classes = TextFile {
        name: class_list.to_string(),
        text: read_text(&folder.join(class_list))?,
    };
    let mut labels = read_text_files(folder, &["txt"])?;
    labels.retain(|file| file.name != class_list);
    read_yolo(&classes, &image_sizes(images)?, &labels).map_err(|problem| DatasetError::Yolo {
        folder: folder.to_path_buf(),
        problem,
    })
}

/// Reads every Pascal VOC `.xml` file under `folder`, in name order.
pub fn read_voc_folder(folder: &Path) -> Result<LabelSet, DatasetError> {
    read_voc(&read_text_files(folder, &["xml"])?).map_err(|problem| DatasetError::Voc {
        folder: folder.to_path_buf(),
        problem,
    })
}

/// Writes `files` under `folder`, creating it and the sub-folders they name.
fn write_text_files(folder: &Path, files: &[TextFile]) -> Result<(), DatasetError> {
    for file in files {
        let relative = Path::new(&file.name);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(DatasetError::UnsafeName {
                name: file.name.clone(),
                folder: folder.to_path_buf(),
            });
        }
        let path = folder.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        std::fs::write(&path, &file.text).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Writes `set` at `output` in `format`: a COCO JSON file, or a folder of
/// YOLO label files with `classes.txt`, or of Pascal VOC annotation files.
pub fn write_labels(format: Format, set: &LabelSet, output: &Path) -> Result<(), DatasetError> {
    let files = match format {
        Format::Coco => {
            return std::fs::write(output, to_coco_json(set) + "\n").map_err(io_error(output));
        }
        Format::Yolo => write_yolo(set).map_err(|problem| DatasetError::Yolo {
            folder: output.to_path_buf(),
            problem,
        })?,
        Format::Voc => write_voc(set).map_err(|problem| DatasetError::Voc {
            folder: output.to_path_buf(),
            problem,
        })?,
    };
    std::fs::create_dir_all(output).map_err(io_error(output))?;
    write_text_files(output, &files)
}

/// An annotated image loaded from disk.
#[derive(Clone, Debug)]
pub struct AnnotatedImage {
    /// The file name as in the annotation file.
    pub file_name: String,
    /// The decoded pixels.
    pub image: Image,
    /// Ground-truth boxes in the image's pixels.
    pub boxes: Vec<LabeledBox>,
}

/// A COCO annotation file with its images decoded from `folder`.
pub struct AnnotatedSet {
    /// Class names in class-index order.
    pub class_names: Vec<String>,
    /// The images with their boxes.
    pub images: Vec<AnnotatedImage>,
}

/// Reads `annotations` (COCO JSON) and decodes each image it names from `folder`.
pub fn read_annotated_set(annotations: &Path, folder: &Path) -> Result<AnnotatedSet, DatasetError> {
    let LabelSet {
        class_names,
        images,
    } = read_coco_file(annotations)?;
    let images = images
        .into_iter()
        .map(|entry| {
            let path = folder.join(&entry.file_name);
            if !path.is_file() {
                return Err(DatasetError::MissingImage {
                    annotations: annotations.to_path_buf(),
                    file_name: entry.file_name.clone(),
                    folder: folder.to_path_buf(),
                });
            }
            Ok(AnnotatedImage {
                image: read_image(&path)?,
                file_name: entry.file_name,
                boxes: entry.boxes,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AnnotatedSet {
        class_names,
        images,
    })
}

/// Reads a verdicts file: a JSON object from image file name to
/// [`ImageVerdicts`] (boxes in that image's pixels).
pub fn read_verdicts(path: &Path) -> Result<BTreeMap<String, ImageVerdicts>, DatasetError> {
    serde_json::from_str(&read_text(path)?).map_err(|e| DatasetError::BadVerdicts {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_an_image_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("veritune-dataset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notes.png");
        std::fs::write(&path, b"hello").unwrap();
        let err = read_image(&path).unwrap_err().to_string();
        assert!(
            err.contains("notes.png") && err.contains("not an image"),
            "{err}"
        );
        let missing = read_image(&dir.join("absent.png")).unwrap_err().to_string();
        assert!(missing.contains("absent.png"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn coco_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("veritune-coco-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let path = dir.join("broken.json");
        std::fs::write(
            &path,
            r#"{"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
                "annotations": [{"id": 9, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 0]}],
                "categories": [{"id": 1, "name": "a"}]}"#,
        )
        .expect("temp file is writable");
        let err = read_coco_file(&path).expect_err("zero-area box");
        assert!(matches!(
            &err,
            DatasetError::Coco {
                problem: CocoError::EmptyBox {
                    annotation_id: 9,
                    ..
                },
                ..
            }
        ));
        assert!(err.to_string().contains("broken.json"), "{err}");

        let err = read_coco_file(&dir.join("missing.json")).expect_err("no such file");
        assert!(matches!(err, DatasetError::Io { .. }));
        assert!(err.to_string().contains("missing.json"), "{err}");

        std::fs::write(&path, [0xff, 0xfe, b'{']).expect("temp file is writable");
        let err = read_coco_file(&path).expect_err("not UTF-8");
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        std::fs::remove_dir_all(&dir).expect("temp dir is removable");
    }

    #[test]
    fn label_files_are_not_written_outside_the_output_folder() {
        let dir = std::env::temp_dir().join(format!("veritune-unsafe-{}", std::process::id()));
        let files = [TextFile {
            name: "../escape.txt".into(),
            text: String::new(),
        }];
        let err = write_text_files(&dir, &files).expect_err("parent component");
        assert!(matches!(err, DatasetError::UnsafeName { .. }), "{err}");
        assert!(!dir.with_file_name("escape.txt").exists());
    }
}
