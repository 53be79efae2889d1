//! Images and annotations on disk: decoding image files, reading image sizes,
//! reading and writing label sets in COCO, YOLO and VOC folders and files,
//! pairing a COCO annotation file with the folder of its images, and verdict
//! files.
//!
//! Image files are PNG or JPEG. A file declaring more than
//! [`MAX_PIXELS`](crate::image::MAX_PIXELS) pixels is refused before it is
//! decoded; a file whose longest side is above
//! [`MAX_SIDE`](crate::image::MAX_SIDE) is downscaled to it, and the boxes
//! that go with it are scaled the same way.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Component, Path, PathBuf};

use ::image::{ImageFormat, ImageReader, Limits, imageops};
use thiserror::Error;

use crate::formats::coco::{CocoError, read_coco, to_coco_json};
use crate::formats::voc::{VocError, read_voc, write_voc};
use crate::formats::yolo::{CLASSES_FILE, YoloError, read_yolo, write_yolo};
use crate::formats::{Format, ImageSize, LabelSet, TextFile};
use crate::geometry::LabeledBox;
use crate::image::{Image, ImageError, MAX_PIXELS, check_pixel_count, fitted_size};
use crate::verdict::ImageVerdicts;

/// File extensions of the images veritune decodes, lower case.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The class list Darknet and CVAT write instead of `classes.txt`.
pub const DARKNET_CLASSES_FILE: &str = "obj.names";

/// Why bytes cannot be decoded into an image.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The bytes start with no image signature veritune knows.
    #[error(
        "the file is not an image: its first bytes are neither a PNG nor a JPEG signature; open a PNG or JPEG file"
    )]
    NotAnImage,
    /// The bytes are an image in a format veritune does not decode.
    #[error(
        "the file is a {format} image, but veritune reads only PNG and JPEG: convert it to PNG"
    )]
    Unsupported {
        /// The format recognised.
        format: String,
    },
    /// The bytes start as PNG or JPEG but do not decode.
    #[error("the {format} data is damaged or truncated ({reason}): copy or export the file again")]
    Corrupt {
        /// `PNG` or `JPEG`.
        format: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// The declared size is empty or above the limit.
    #[error(transparent)]
    Size(#[from] ImageError),
}

/// An image file decoded: the pixels veritune works on and the size of the
/// file's own pixel grid.
#[derive(Clone, Debug)]
pub struct ImageFile {
    /// The pixels, downscaled when the file is larger than
    /// [`MAX_SIDE`](crate::image::MAX_SIDE).
    pub image: Image,
    /// Width and height of the file, in its own pixels.
    pub file_size: (usize, usize),
}

/// The factors `(x, y)` that take a box in the pixels of a file of
/// `file_size` to the pixels of `image` decoded from it (1 unless downscaled).
pub fn file_scale(file_size: (usize, usize), image: &Image) -> (f32, f32) {
    (
        image.width() as f32 / file_size.0 as f32,
        image.height() as f32 / file_size.1 as f32,
    )
}

/// The format, its name and the declared width and height of PNG or JPEG
/// bytes, read from their header without decoding the pixels.
fn probe_image(bytes: &[u8]) -> Result<(ImageFormat, &'static str, u32, u32), DecodeError> {
    let format = ::image::guess_format(bytes).map_err(|_| DecodeError::NotAnImage)?;
    let name = match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        other => {
            return Err(DecodeError::Unsupported {
                format: format!("{other:?}").to_uppercase(),
            });
        }
    };
    let corrupt = |e: ::image::ImageError| DecodeError::Corrupt {
        format: name,
        reason: e.to_string(),
    };
    // The JPEG decoder fills a truncated scan with grey instead of failing.
    if format == ImageFormat::Jpeg && !jpeg_has_its_end(bytes) {
        return Err(DecodeError::Corrupt {
            format: name,
            reason: "the data ends before the end-of-image marker".into(),
        });
    }
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(corrupt)?;
    Ok((format, name, width, height))
}

/// Decodes PNG or JPEG bytes, refusing sizes above
/// [`MAX_PIXELS`](crate::image::MAX_PIXELS) before decoding and downscaling
/// to [`MAX_SIDE`](crate::image::MAX_SIDE).
pub fn decode_image(bytes: &[u8]) -> Result<ImageFile, DecodeError> {
    let (format, name, width, height) = probe_image(bytes)?;
    let corrupt = |e: ::image::ImageError| DecodeError::Corrupt {
        format: name,
        reason: e.to_string(),
    };
    let (w, h) = (width as usize, height as usize);
    check_pixel_count(w, h)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // Room for the largest decoder output: RGBA at 16 bits per channel.
    limits.max_alloc = Some(MAX_PIXELS * 8);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| match e {
        ::image::ImageError::Limits(_) => DecodeError::Size(ImageError::TooLarge {
            width: w,
            height: h,
        }),
        e => corrupt(e),
    })?;
    let rgb = decoded.into_rgb8();
    let (fw, fh) = fitted_size(w, h);
    let rgb = if (fw, fh) == (w, h) {
        rgb
    } else {
        imageops::thumbnail(&rgb, fw as u32, fh as u32)
    };
    Ok(ImageFile {
        image: Image::from_rgb8(fw, fh, rgb.as_raw())?,
        file_size: (w, h),
    })
}

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
    /// The file is not a usable image.
    #[error("{path}: {problem}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: DecodeError,
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
    /// An image's size in the annotations differs from the image file's.
    #[error(
        "{annotations} gives '{file_name}' a `width` and `height` of {declared_width}x{declared_height}, but the image file is {file_width}x{file_height}: fix `width` and `height` of that image"
    )]
    SizeMismatch {
        /// The annotation file.
        annotations: PathBuf,
        /// The image's file name.
        file_name: String,
        /// Width in the annotations.
        declared_width: u32,
        /// Height in the annotations.
        declared_height: u32,
        /// Width of the file.
        file_width: usize,
        /// Height of the file.
        file_height: usize,
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

/// Whether JPEG bytes have an end-of-image marker after their last
/// start-of-scan marker (neither occurs inside entropy-coded data).
fn jpeg_has_its_end(bytes: &[u8]) -> bool {
    let marker = |code: u8| move |pair: &[u8]| pair == [0xFF, code];
    bytes
        .windows(2)
        .rposition(marker(0xDA))
        .is_some_and(|scan| bytes[scan..].windows(2).any(marker(0xD9)))
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

/// Decodes a PNG or JPEG file (see [`decode_image`]); errors name the file.
pub fn read_image_file(path: &Path) -> Result<ImageFile, DatasetError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    decode_image(&bytes).map_err(|problem| DatasetError::Image {
        path: path.to_path_buf(),
        problem,
    })
}

/// Decodes a PNG or JPEG file into an RGB [`Image`], downscaled when larger
/// than [`MAX_SIDE`](crate::image::MAX_SIDE).
pub fn read_image(path: &Path) -> Result<Image, DatasetError> {
    read_image_file(path).map(|file| file.image)
}

/// The width and height of a PNG or JPEG file, read from its header; errors
/// name the file.
pub fn image_size(path: &Path) -> Result<(u32, u32), DatasetError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    probe_image(&bytes)
        .map(|(_, _, width, height)| (width, height))
        .map_err(|problem| DatasetError::Image {
            path: path.to_path_buf(),
            problem,
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

/// Writes `bytes` to `path` whole or not at all: into a temporary file
/// beside it, then renamed over it, so a failure never leaves a half-written
/// file (nor touches an existing one).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path does not end in a file name",
        )
    })?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".{}.partial", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
}

/// Writes `files` under `folder`, creating it and the sub-folders they name;
/// each file is written whole or not at all.
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
        write_atomically(&path, file.text.as_bytes()).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Writes `set` at `output` in `format`: a COCO JSON file, or a folder of
/// YOLO label files with `classes.txt`, or of Pascal VOC annotation files.
/// Each file is written whole or not at all (see [`write_atomically`]).
pub fn write_labels(format: Format, set: &LabelSet, output: &Path) -> Result<(), DatasetError> {
    let files = match format {
        Format::Coco => {
            return write_atomically(output, (to_coco_json(set) + "\n").as_bytes())
                .map_err(io_error(output));
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
    /// The decoded pixels (downscaled when the file is larger than
    /// [`MAX_SIDE`](crate::image::MAX_SIDE)).
    pub image: Image,
    /// Width and height of the image file, in its own pixels.
    pub file_size: (usize, usize),
    /// Ground-truth boxes in the pixels of `image`.
    pub boxes: Vec<LabeledBox>,
}

/// A COCO annotation file with its images decoded from `folder`.
pub struct AnnotatedSet {
    /// Class names in class-index order.
    pub class_names: Vec<String>,
    /// The images with their boxes.
    pub images: Vec<AnnotatedImage>,
}

/// Reads `annotations` (COCO JSON) and decodes each image it names from
/// `folder`; each image's declared size must be its file's.
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
            let ImageFile { image, file_size } = read_image_file(&path)?;
            if file_size != (entry.width as usize, entry.height as usize) {
                return Err(DatasetError::SizeMismatch {
                    annotations: annotations.to_path_buf(),
                    file_name: entry.file_name,
                    declared_width: entry.width,
                    declared_height: entry.height,
                    file_width: file_size.0,
                    file_height: file_size.1,
                });
            }
            let (sx, sy) = file_scale(file_size, &image);
            let boxes = entry
                .boxes
                .iter()
                .map(|b| LabeledBox {
                    bbox: b.bbox.scale(sx, sy),
                    class: b.class,
                })
                .collect();
            Ok(AnnotatedImage {
                image,
                file_size,
                file_name: entry.file_name,
                boxes,
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
    parse_verdicts(&read_text(path)?).map_err(|e| DatasetError::BadVerdicts {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Parses the text of a verdicts file (see [`read_verdicts`]); errors give
/// the line and column.
pub fn parse_verdicts(json: &str) -> Result<BTreeMap<String, ImageVerdicts>, serde_json::Error> {
    serde_json::from_str(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ImageLabels;
    use crate::geometry::BBox;

    fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        let image = ::image::RgbImage::from_raw(width, height, pixels).expect("sized");
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).expect("encodes");
        bytes.into_inner()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("veritune-dataset-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_that_is_not_an_image_is_named_in_the_error() {
        let dir = temp_dir("notes");
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
    fn truncated_or_damaged_images_are_refused() {
        for (format, name) in [(ImageFormat::Png, "PNG"), (ImageFormat::Jpeg, "JPEG")] {
            let bytes = encoded(40, 30, format);
            assert!(decode_image(&bytes).is_ok());
            for cut in [bytes.len() / 2, bytes.len() - 20] {
                let err = decode_image(&bytes[..cut]).expect_err("truncated");
                assert!(
                    matches!(err, DecodeError::Corrupt { format, .. } if format == name),
                    "{name} cut at {cut}: {err}"
                );
                assert!(err.to_string().contains("damaged or truncated"), "{err}");
            }
        }
    }

    #[test]
    fn other_image_formats_are_named() {
        let err = decode_image(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap_err();
        assert!(err.to_string().contains("GIF image"), "{err}");
    }

    #[test]
    fn absurd_declared_sizes_are_refused_before_decoding() {
        let mut bytes = encoded(16, 16, ImageFormat::Jpeg);
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG has a SOF0 marker");
        // SOF0: marker, length (2), precision (1), height (2), width (2).
        bytes[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        let err = decode_image(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Size(ImageError::TooLarge {
                    width: 65535,
                    height: 65535
                })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("65535x65535"), "{err}");
    }

    #[test]
    fn images_above_the_largest_side_are_downscaled() {
        let file = decode_image(&encoded(5000, 40, ImageFormat::Png)).unwrap();
        assert_eq!(file.file_size, (5000, 40));
        assert_eq!((file.image.width(), file.image.height()), (4096, 33));
        let (sx, sy) = file_scale(file.file_size, &file.image);
        assert!((sx - 4096.0 / 5000.0).abs() < 1e-6 && (sy - 33.0 / 40.0).abs() < 1e-6);
    }

    #[test]
    fn annotated_sets_check_image_sizes_and_scale_boxes_with_the_image() {
        let dir = temp_dir("set");
        std::fs::write(dir.join("wide.png"), encoded(8192, 20, ImageFormat::Png)).unwrap();
        let dataset = |width: u32| LabelSet {
            class_names: vec!["a".into()],
            images: vec![ImageLabels {
                file_name: "wide.png".into(),
                width,
                height: 20,
                boxes: vec![LabeledBox {
                    bbox: BBox::new(400.0, 2.0, 600.0, 10.0),
                    class: 0,
                }],
            }],
        };
        let annotations = dir.join("annotations.json");
        std::fs::write(&annotations, to_coco_json(&dataset(8192))).unwrap();
        let set = read_annotated_set(&annotations, &dir).unwrap();
        let image = &set.images[0];
        assert_eq!(image.file_size, (8192, 20));
        assert_eq!((image.image.width(), image.image.height()), (4096, 10));
        assert_eq!(image.boxes[0].bbox, BBox::new(200.0, 1.0, 300.0, 5.0));

        std::fs::write(&annotations, to_coco_json(&dataset(640))).unwrap();
        let err = read_annotated_set(&annotations, &dir)
            .err()
            .expect("size differs")
            .to_string();
        assert!(
            err.contains("annotations.json")
                && err.contains("'wide.png'")
                && err.contains("640x20"),
            "{err}"
        );
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
