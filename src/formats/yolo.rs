//! YOLO txt labels as Darknet, Ultralytics, LabelImg and CVAT write them: per
//! image a text file named after it (`photos/a.jpg` → `photos/a.txt`) with one
//! object per line, `class x_center y_center width height`, the class a
//! 0-based index into the class list and the four values fractions of the
//! image's width and height; and the class list `classes.txt`, one name per
//! line. An image without objects has an empty file (or none).
//!
//! The files hold no image sizes, so reading takes them as input.

use std::collections::HashMap;

use thiserror::Error;

use super::{
    ImageLabels, ImageSize, LabelFileClash, LabelSet, TextFile, UnknownClass, label_files, number,
    per_image_files,
};
use crate::geometry::{BBox, LabeledBox};

/// The name of the class list.
pub const CLASSES_FILE: &str = "classes.txt";

/// What is wrong with one line of a label file.
#[derive(Debug, Error, PartialEq)]
pub enum LineProblem {
    /// The line does not have five values.
    #[error("it has {0} values where 5 are expected")]
    WrongCount(usize),
    /// The class is not a non-negative integer.
    #[error("the class '{0}' is not a class index (0, 1, 2, ...)")]
    BadClass(String),
    /// The class index is past the end of the class list.
    #[error("class {class} is not in the class list, which has {classes} classes")]
    UnknownClass {
        /// The class index.
        class: usize,
        /// How many classes the list has.
        classes: usize,
    },
    /// A coordinate is not a number.
    #[error("the {field} '{value}' is not a number")]
    NotANumber {
        /// Which value: x_center, y_center, width or height.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A coordinate is not a fraction of the image size.
    #[error("the {field} {value} is outside 0..1 (YOLO values are fractions of the image size)")]
    OutOfRange {
        /// Which value: x_center, y_center, width or height.
        field: &'static str,
        /// The value found.
        value: f64,
    },
    /// The box has no width or no height.
    #[error("the box has zero width or height")]
    EmptyBox,
}

/// Why YOLO labels cannot be read or written.
#[derive(Debug, Error, PartialEq)]
pub enum YoloError {
    /// A line of a label file is not a YOLO box.
    #[error(
        "{file}, line {line}: {problem}; a YOLO label line is `class x_center y_center width height`"
    )]
    Line {
        /// The label file.
        file: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        problem: LineProblem,
    },
    /// The class list has an empty line between names.
    #[error(
        "{file}, line {line}: the class list has an empty line: give every class a name, one per line"
    )]
    EmptyClassName {
        /// The class list file.
        file: String,
        /// The 1-based line number.
        line: usize,
    },
    /// A class name holds a carriage return (a line end of old Mac files, or
    /// a stray character), which no class list can write back.
    #[error(
        "{file}, line {line}: the class name has a carriage return inside it: save the class list with one name per line and ordinary line ends"
    )]
    CarriageReturnInClassName {
        /// The class list file.
        file: String,
        /// The 1-based line number.
        line: usize,
    },
    /// The class list names a class twice.
    #[error(
        "{file}, line {line}: the class '{name}' is already on line {first}: list each class once"
    )]
    DuplicateClass {
        /// The class list file.
        file: String,
        /// The 1-based line of the repetition.
        line: usize,
        /// The 1-based line of the first mention.
        first: usize,
        /// The class name.
        name: String,
    },
    /// A label file belongs to no image of the image list.
    #[error(
        "the label file {file} has no image: no image in the image folder is named like it with an image extension; add the image or remove the label file"
    )]
    NoImage {
        /// The label file.
        file: String,
    },
    /// A class name cannot be a line of the class list.
    #[error(
        "the class name {name:?} is empty, has a line break or starts or ends with a space, which {CLASSES_FILE} cannot hold: rename the class"
    )]
    UnwritableClassName {
        /// The class name.
        name: String,
    },
    /// An image with boxes has no size, so its boxes cannot be fractions of it.
    #[error(
        "image '{file_name}' is {width}x{height} pixels: YOLO boxes are fractions of the image size, so give the image its real size"
    )]
    NoImageSize {
        /// The image.
        file_name: String,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// A box lies wholly outside its image.
    #[error(
        "image '{file_name}': box {index} ({bbox:?}) lies outside the {width}x{height} image, and YOLO boxes must be inside it: fix or remove the box"
    )]
    BoxOutsideImage {
        /// The image.
        file_name: String,
        /// The box's index in the image.
        index: usize,
        /// The box in pixels.
        bbox: BBox,
        /// The image's width.
        width: u32,
        /// The image's height.
        height: u32,
    },
    /// Two images would share a label file.
    #[error(transparent)]
    Clash(#[from] LabelFileClash),
    /// A box's class is not in the class list.
    #[error(transparent)]
    UnknownClass(#[from] UnknownClass),
}

/// The class names of a class list (`classes.txt`, Darknet's `obj.names`):
/// one per line, surrounding spaces (and byte order marks, which no editor
/// shows) ignored, trailing empty lines allowed.
pub fn read_class_list(file: &TextFile) -> Result<Vec<String>, YoloError> {
    let lines: Vec<&str> = file
        .text
        .lines()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}'))
        .collect();
    let used = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    let mut names = Vec::with_capacity(used);
    for (index, &name) in lines[..used].iter().enumerate() {
        let line = index + 1;
        if name.is_empty() {
            return Err(YoloError::EmptyClassName {
                file: file.name.clone(),
                line,
            });
        }
        if name.contains('\r') {
            return Err(YoloError::CarriageReturnInClassName {
                file: file.name.clone(),
                line,
            });
        }
        if let Some(&first) = first_line.get(name) {
            return Err(YoloError::DuplicateClass {
                file: file.name.clone(),
                line,
                first,
                name: name.to_string(),
            });
        }
        first_line.insert(name, line);
        names.push(name.to_string());
    }
    Ok(names)
}

/// Reads YOLO labels: `classes` is the class list, `images` the images with
/// their sizes (in the order of the result), `labels` the label files, named
/// relative to the same folder as the images' file names. An image without a
/// label file has no boxes; a label file without an image is an error. Boxes
/// are cut to their image, as they are when written.
pub fn read_yolo(
    classes: &TextFile,
    images: &[ImageSize],
    labels: &[TextFile],
) -> Result<LabelSet, YoloError> {
    let class_names = read_class_list(classes)?;
    let image_of = label_files(images.iter().map(|i| i.file_name.as_str()), "txt", None)?;
    let mut boxes = vec![Vec::new(); images.len()];
    for file in labels {
        let &index = image_of.get(&file.name).ok_or_else(|| YoloError::NoImage {
            file: file.name.clone(),
        })?;
        boxes[index] = read_label_file(file, &images[index], class_names.len())?;
    }
    let images = images
        .iter()
        .zip(boxes)
        .map(|(size, boxes)| ImageLabels {
            file_name: size.file_name.clone(),
            width: size.width,
            height: size.height,
            boxes,
        })
        .collect();
    Ok(LabelSet {
        class_names,
        images,
    })
}

/// The boxes of one label file, in the pixels of an image of `size`.
fn read_label_file(
    file: &TextFile,
    size: &ImageSize,
    classes: usize,
) -> Result<Vec<LabeledBox>, YoloError> {
    let (width, height) = (f64::from(size.width), f64::from(size.height));
    let mut boxes = Vec::new();
    for (index, text) in file.text.lines().enumerate() {
        let values: Vec<&str> = text.split_whitespace().collect();
        if values.is_empty() {
            continue;
        }
        let labeled = parse_line(&values, classes).and_then(|(class, [cx, cy, w, h])| {
            let bbox = BBox::new(
                ((cx - w / 2.0) * width) as f32,
                ((cy - h / 2.0) * height) as f32,
                ((cx + w / 2.0) * width) as f32,
                ((cy + h / 2.0) * height) as f32,
            )
            .clip(width as f32, height as f32);
            if bbox.is_valid() {
                Ok(LabeledBox { bbox, class })
            } else {
                Err(LineProblem::EmptyBox)
            }
        });
        boxes.push(labeled.map_err(|problem| YoloError::Line {
            file: file.name.clone(),
            line: index + 1,
            problem,
        })?);
    }
    Ok(boxes)
}

/// The class and normalised `[x_center, y_center, width, height]` of a line.
fn parse_line(values: &[&str], classes: usize) -> Result<(usize, [f64; 4]), LineProblem> {
    let &[class, cx, cy, w, h] = values else {
        return Err(LineProblem::WrongCount(values.len()));
    };
    let class: usize = class
        .parse()
        .map_err(|_| LineProblem::BadClass(class.to_string()))?;
    if class >= classes {
        return Err(LineProblem::UnknownClass { class, classes });
    }
    let mut parsed = [0.0; 4];
    let fields = ["x_center", "y_center", "width", "height"];
    for ((value, text), field) in parsed.iter_mut().zip([cx, cy, w, h]).zip(fields) {
        *value = text.parse().map_err(|_| LineProblem::NotANumber {
            field,
            value: text.to_string(),
        })?;
        if !(0.0..=1.0).contains(value) {
            return Err(LineProblem::OutOfRange {
                field,
                value: *value,
            });
        }
    }
    Ok((class, parsed))
}

/// The set as YOLO files: `classes.txt` first, then one label file per image
/// (empty for an image without boxes). Boxes are cut to their image first,
/// since YOLO values are fractions of it; numbers are written in full
/// precision, so that reading gives back the same pixels.
pub fn write_yolo(set: &LabelSet) -> Result<Vec<TextFile>, YoloError> {
    set.check_classes()?;
    if let Some(name) = set
        .class_names
        .iter()
        .find(|n| n.trim().is_empty() || n.trim() != n.as_str() || n.contains(['\n', '\r']))
    {
        return Err(YoloError::UnwritableClassName { name: name.clone() });
    }
    let classes = TextFile {
        name: CLASSES_FILE.to_string(),
        text: set.class_names.iter().map(|n| format!("{n}\n")).collect(),
    };
    let labels = per_image_files(set, "txt", Some(CLASSES_FILE), label_lines)?;
    Ok(std::iter::once(classes).chain(labels).collect())
}

/// One image's label file text.
fn label_lines(image: &ImageLabels) -> Result<String, YoloError> {
    let (width, height) = (image.width as f32, image.height as f32);
    if !image.boxes.is_empty() && (image.width == 0 || image.height == 0) {
        return Err(YoloError::NoImageSize {
            file_name: image.file_name.clone(),
            width: image.width,
            height: image.height,
        });
    }
    let mut text = String::new();
    for (index, labeled) in image.boxes.iter().enumerate() {
        let bbox = labeled.bbox.clip(width, height);
        if !bbox.is_valid() {
            return Err(YoloError::BoxOutsideImage {
                file_name: image.file_name.clone(),
                index,
                bbox: labeled.bbox,
                width: image.width,
                height: image.height,
            });
        }
        let (x0, y0, x1, y1) = (
            f64::from(bbox.x0),
            f64::from(bbox.y0),
            f64::from(bbox.x1),
            f64::from(bbox.y1),
        );
        let (w, h) = (f64::from(image.width), f64::from(image.height));
        let values = [
            (x0 + x1) / 2.0 / w,
            (y0 + y1) / 2.0 / h,
            (x1 - x0) / w,
            (y1 - y0) / h,
        ];
        text.push_str(&labeled.class.to_string());
        for value in values {
            text.push(' ');
            text.push_str(&number(value));
        }
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> TextFile {
        TextFile {
            name: name.into(),
            text: text.into(),
        }
    }

    fn size(file_name: &str, width: u32, height: u32) -> ImageSize {
        ImageSize {
            file_name: file_name.into(),
            width,
            height,
        }
    }

    fn line_error(text: &str) -> YoloError {
        read_yolo(
            &file("classes.txt", "a\nb\n"),
            &[size("img.png", 100, 50)],
            &[file("img.txt", text)],
        )
        .expect_err("malformed line")
    }

    #[test]
    fn class_lists_allow_trailing_blank_lines_and_windows_line_ends() {
        let names = read_class_list(&file("c.txt", "\u{feff}person\r\ntraffic light \r\n\r\n\n"))
            .expect("valid list");
        assert_eq!(names, ["person", "traffic light"]);
        assert_eq!(
            read_class_list(&file("c.txt", "a\n\nb\n")),
            Err(YoloError::EmptyClassName {
                file: "c.txt".into(),
                line: 2
            })
        );
        assert_eq!(
            read_class_list(&file("c.txt", "a\nb\rc\n")),
            Err(YoloError::CarriageReturnInClassName {
                file: "c.txt".into(),
                line: 2
            })
        );
        let err = read_class_list(&file("obj.names", "a\nb\na")).unwrap_err();
        assert!(err.to_string().starts_with("obj.names, line 3:"), "{err}");
    }

    /// A byte order mark anywhere around a name is no part of it (found by
    /// the fuzzer: a first line of tabs around a mark read as a class whose
    /// written list then read back with an empty first line).
    #[test]
    fn class_lists_ignore_byte_order_marks_around_names() {
        assert_eq!(
            read_class_list(&file("c.txt", "\t\u{feff}\t\nb\n")),
            Err(YoloError::EmptyClassName {
                file: "c.txt".into(),
                line: 1
            })
        );
        let names = read_class_list(&file("c.txt", "a\n\u{feff}b\u{feff}\n")).expect("valid list");
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn lines_become_pixel_boxes() {
        let set = read_yolo(
            &file("classes.txt", "a\nb"),
            &[size("img.png", 200, 100), size("none.png", 5, 5)],
            &[file(
                "img.txt",
                "1 0.5 0.5 0.25 0.5\n\n0 0.125 0.25 0.25 0.5",
            )],
        )
        .expect("valid labels");
        assert_eq!(set.images[0].boxes.len(), 2);
        assert_eq!(
            set.images[0].boxes[0].bbox,
            BBox::new(75.0, 25.0, 125.0, 75.0)
        );
        assert_eq!(set.images[0].boxes[0].class, 1);
        assert_eq!(set.images[0].boxes[1].bbox, BBox::new(0.0, 0.0, 50.0, 50.0));
        assert!(set.images[1].boxes.is_empty());
    }

    #[test]
    fn malformed_lines_name_the_file_the_line_and_the_value() {
        let err = line_error("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n");
        assert_eq!(
            err,
            YoloError::Line {
                file: "img.txt".into(),
                line: 2,
                problem: LineProblem::WrongCount(4)
            }
        );
        assert!(
            err.to_string()
                .starts_with("img.txt, line 2: it has 4 values")
        );
        assert!(matches!(
            line_error("2 0.5 0.5 0.1 0.1"),
            YoloError::Line {
                problem: LineProblem::UnknownClass {
                    class: 2,
                    classes: 2
                },
                ..
            }
        ));
        assert!(matches!(
            line_error("-1 0.5 0.5 0.1 0.1"),
            YoloError::Line {
                problem: LineProblem::BadClass(_),
                ..
            }
        ));
        let err = line_error("0 0.5 abc 0.1 0.1");
        assert!(
            err.to_string()
                .contains("the y_center 'abc' is not a number"),
            "{err}"
        );
        assert!(matches!(
            line_error("0 0.5 0.5 1.5 0.1"),
            YoloError::Line {
                problem: LineProblem::OutOfRange { field: "width", .. },
                ..
            }
        ));
        assert!(matches!(
            line_error("0 0.5 0.5 0 0.1"),
            YoloError::Line {
                problem: LineProblem::EmptyBox,
                ..
            }
        ));
    }

    #[test]
    fn a_label_file_without_an_image_is_refused() {
        let err = read_yolo(
            &file("classes.txt", "a"),
            &[size("img.png", 10, 10)],
            &[file("other.txt", "")],
        )
        .unwrap_err();
        assert_eq!(
            err,
            YoloError::NoImage {
                file: "other.txt".into()
            }
        );
    }

    #[test]
    fn writing_cuts_boxes_to_the_image_and_refuses_boxes_outside_it() {
        let mut set = LabelSet {
            class_names: vec!["a".into()],
            images: vec![ImageLabels {
                file_name: "x.jpg".into(),
                width: 100,
                height: 50,
                boxes: vec![LabeledBox {
                    bbox: BBox::new(-10.0, 25.0, 50.0, 60.0),
                    class: 0,
                }],
            }],
        };
        let files = write_yolo(&set).expect("writable");
        assert_eq!(files[0], file("classes.txt", "a\n"));
        assert_eq!(files[1], file("x.txt", "0 0.25 0.75 0.5 0.5\n"));
        set.images[0].boxes[0].bbox = BBox::new(120.0, 0.0, 130.0, 10.0);
        assert!(matches!(
            write_yolo(&set),
            Err(YoloError::BoxOutsideImage { index: 0, .. })
        ));
        set.class_names[0] = "two\nlines".into();
        assert!(matches!(
            write_yolo(&set),
            Err(YoloError::UnwritableClassName { .. })
        ));
    }
}
