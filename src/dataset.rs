//! Images and annotations on disk: decoding image files and pairing a COCO
//! annotation file with the folder of its images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::formats::coco::{CocoDataset, CocoError, read_coco_file};
use crate::geometry::LabeledBox;
use crate::image::Image;
use crate::verdict::ImageVerdicts;

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
    /// The annotation file is invalid.
    #[error(transparent)]
    Coco(#[from] CocoError),
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

/// Decodes a PNG or JPEG file into an RGB [`Image`].
pub fn read_image(path: &Path) -> Result<Image, DatasetError> {
    let bytes = std::fs::read(path).map_err(|e| DatasetError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let not_an_image = |reason: String| DatasetError::NotAnImage {
        path: path.to_path_buf(),
        reason,
    };
    let decoded = ::image::load_from_memory(&bytes).map_err(|e| not_an_image(e.to_string()))?;
    let rgb = decoded.to_rgb8();
    Image::from_rgb8(rgb.width() as usize, rgb.height() as usize, rgb.as_raw())
        .map_err(|e| not_an_image(e.to_string()))
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
    let CocoDataset {
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
    let text = std::fs::read_to_string(path).map_err(|e| DatasetError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| DatasetError::BadVerdicts {
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
}
