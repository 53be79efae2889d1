//! Pascal VOC XML annotations as the VOC devkit, LabelImg and CVAT write
//! them: one `<annotation>` file per image, named after it (`photos/a.jpg` →
//! `photos/a.xml`), with `<filename>`, `<size>` and one `<object>` per box
//! holding `<name>` and `<bndbox>`. Other elements (`<folder>`, `<path>`,
//! `<source>`, `<pose>`, `<truncated>`, `<difficult>`, `<segmented>`,
//! `<part>`, CVAT's `<attributes>`, ...) are ignored; difficult objects are
//! read like any other.
//!
//! Coordinates follow the VOC devkit: `xmin ymin xmax ymax` are 1-based,
//! inclusive pixel indices, so an object covering the whole `W` x `H` image is
//! `1 1 W H`. In veritune's pixel corners that box is `0 0 W H`: reading takes
//! one from `xmin` and `ymin` and keeps `xmax` and `ymax`; writing adds one to
//! `x0` and `y0`. Fractional coordinates (as CVAT writes them) are read and
//! written as they are.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use thiserror::Error;

use super::{
    ImageLabels, LabelFileClash, LabelSet, TextFile, UnknownClass, number, per_image_files,
};
use crate::geometry::{BBox, LabeledBox};

/// Why Pascal VOC annotations cannot be read or written.
#[derive(Debug, Error, PartialEq)]
pub enum VocError {
    /// The file is not well-formed XML.
    #[error("{file}, line {line}: the XML is not well-formed ({reason}): fix it there")]
    Xml {
        /// The annotation file.
        file: String,
        /// The 1-based line where reading stopped.
        line: usize,
        /// The XML reader's reason.
        reason: String,
    },
    /// The root element is not `<annotation>`.
    #[error(
        "{file}: the root element is <{found}>, not <annotation>: this is not a Pascal VOC annotation"
    )]
    NotVoc {
        /// The annotation file.
        file: String,
        /// The root element found.
        found: String,
    },
    /// A required element is missing or empty.
    #[error(
        "{file}, line {line}: {field} is missing or empty; a Pascal VOC annotation needs filename, size/width, size/height and, per object, name and bndbox/xmin, ymin, xmax, ymax"
    )]
    Missing {
        /// The annotation file.
        file: String,
        /// The 1-based line of the element that lacks it.
        line: usize,
        /// The element's path, e.g. `object 2/bndbox/xmin`.
        field: String,
    },
    /// An element's text is not the number it must be.
    #[error("{file}, line {line}: {field} is '{value}', which is not {expected}: fix it there")]
    BadValue {
        /// The annotation file.
        file: String,
        /// The 1-based line of the element.
        line: usize,
        /// The element's path, e.g. `size/width`.
        field: String,
        /// The text found.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// An object's box has no area.
    #[error(
        "{file}, line {line}: object {object} has xmin {xmin}, ymin {ymin}, xmax {xmax}, ymax {ymax}, which is no box: xmax must be more than xmin - 1 and ymax more than ymin - 1 (1-based, inclusive pixel indices: xmin = xmax is one pixel wide)"
    )]
    EmptyBox {
        /// The annotation file.
        file: String,
        /// The 1-based line of the object's `<bndbox>`.
        line: usize,
        /// The 1-based index of the object in the file.
        object: usize,
        /// `<xmin>` as read.
        xmin: f64,
        /// `<ymin>` as read.
        ymin: f64,
        /// `<xmax>` as read.
        xmax: f64,
        /// `<ymax>` as read.
        ymax: f64,
    },
    /// An object's box lies wholly outside the image the file describes.
    #[error(
        "{file}, line {line}: object {object}'s box lies outside its {width}x{height} image: fix the bndbox or the image's size"
    )]
    OutsideImage {
        /// The annotation file.
        file: String,
        /// The 1-based line of the object's `<bndbox>`.
        line: usize,
        /// The 1-based index of the object in the file.
        object: usize,
        /// The image's width.
        width: u32,
        /// The image's height.
        height: u32,
    },
    /// Two annotation files describe one image.
    #[error("{first} and {second} both annotate the image '{file_name}': keep one of them")]
    DuplicateImage {
        /// The image.
        file_name: String,
        /// The first annotation file.
        first: String,
        /// The second annotation file.
        second: String,
    },
    /// Two images would share an annotation file.
    #[error(transparent)]
    Clash(#[from] LabelFileClash),
    /// A box's class is not in the class list.
    #[error(transparent)]
    UnknownClass(#[from] UnknownClass),
}

/// An XML element: its local name, the line it starts on, its text (entities
/// resolved) and its child elements.
#[derive(Debug, Default)]
struct Element {
    name: String,
    line: usize,
    text: String,
    children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The children named `name`.
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// The 1-based line of byte `position` in `text`.
fn line_at(text: &str, position: u64) -> usize {
    let end = usize::try_from(position).map_or(text.len(), |p| p.min(text.len()));
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The root element of `file`, with its descendants.
fn parse_tree(file: &TextFile) -> Result<Element, VocError> {
    let xml = file.text.strip_prefix('\u{feff}').unwrap_or(&file.text);
    let mut reader = Reader::from_str(xml);
    reader.config_mut().expand_empty_elements = true;
    let xml_error = |line: usize, reason: String| VocError::Xml {
        file: file.name.clone(),
        line,
        reason,
    };
    let mut open: Vec<Element> = Vec::new();
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| xml_error(line_at(xml, reader.error_position()), e.to_string()))?;
        let text = match event {
            Event::Start(start) => {
                let name = start.local_name();
                open.push(Element {
                    name: name.as_ref().to_string(),
                    line: line_at(xml, position),
                    ..Element::default()
                });
                continue;
            }
            Event::End(_) => {
                let Some(element) = open.pop() else {
                    return Err(xml_error(
                        line_at(xml, position),
                        "an end tag without a start tag".into(),
                    ));
                };
                match open.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
                continue;
            }
            Event::Text(text) => text.xml10_content().into_owned(),
            Event::CData(data) => data.xml10_content().into_owned(),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    Ok(None) => resolve_predefined_entity(&reference).map(str::to_string),
                    Err(e) => return Err(xml_error(line_at(xml, position), e.to_string())),
                };
                resolved.ok_or_else(|| {
                    xml_error(
                        line_at(xml, position),
                        format!("unknown entity &{};", &*reference),
                    )
                })?
            }
            Event::Eof => {
                return Err(xml_error(
                    line_at(xml, position),
                    "the document ends before its root element is closed".into(),
                ));
            }
            Event::Empty(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_)
            | Event::DocType(_) => continue,
        };
        if let Some(element) = open.last_mut() {
            element.text.push_str(&text);
        }
    }
}

/// Reads a file's fields, naming the file in errors.
struct Fields<'a> {
    file: &'a str,
}

impl Fields<'_> {
    /// The trimmed, non-empty text of `parent`'s child `name`; `path` names
    /// it in errors.
    fn text<'e>(&self, parent: &'e Element, name: &str, path: &str) -> Result<&'e str, VocError> {
        parent
            .child(name)
            .map(|e| e.text.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| VocError::Missing {
                file: self.file.to_string(),
                line: parent.line,
                field: path.to_string(),
            })
    }

    /// `parent`'s child `name` parsed as a `T`.
    fn value<T: std::str::FromStr>(
        &self,
        parent: &Element,
        name: &str,
        path: &str,
        expected: &'static str,
        valid: impl Fn(&T) -> bool,
    ) -> Result<T, VocError> {
        let text = self.text(parent, name, path)?;
        text.parse()
            .ok()
            .filter(|v| valid(v))
            .ok_or_else(|| VocError::BadValue {
                file: self.file.to_string(),
                line: parent.child(name).map_or(parent.line, |e| e.line),
                field: path.to_string(),
                value: text.to_string(),
                expected,
            })
    }
}

/// One annotation file: the image it describes and its objects by class name.
struct Annotation {
    file_name: String,
    width: u32,
    height: u32,
    objects: Vec<(String, BBox)>,
}

/// Reads one annotation file. The image's file name is `<filename>` in the
/// folder of the annotation file.
fn read_annotation(file: &TextFile) -> Result<Annotation, VocError> {
    let root = parse_tree(file)?;
    if root.name != "annotation" {
        return Err(VocError::NotVoc {
            file: file.name.clone(),
            found: root.name,
        });
    }
    let fields = Fields { file: &file.name };
    let filename = fields.text(&root, "filename", "filename")?;
    let folder = file
        .name
        .rfind('/')
        .map_or("", |slash| &file.name[..=slash]);
    let missing_size = || VocError::Missing {
        file: file.name.clone(),
        line: root.line,
        field: "size".into(),
    };
    let size = root.child("size").ok_or_else(missing_size)?;
    let positive = |v: &u32| *v > 0;
    let width = fields.value(size, "width", "size/width", "a positive integer", positive)?;
    let height = fields.value(
        size,
        "height",
        "size/height",
        "a positive integer",
        positive,
    )?;
    let objects = root
        .children("object")
        .enumerate()
        .map(|(index, object)| read_object(&fields, object, index + 1, [width, height]))
        .collect::<Result<_, _>>()?;
    Ok(Annotation {
        file_name: format!("{folder}{filename}"),
        width,
        height,
        objects,
    })
}

/// The class name and pixel box of the `number`th (1-based) `<object>`,
/// the box cut to the `[width, height]` image (as COCO's reader does).
fn read_object(
    fields: &Fields,
    object: &Element,
    number: usize,
    [width, height]: [u32; 2],
) -> Result<(String, BBox), VocError> {
    let prefix = format!("object {number}/");
    let name = fields.text(object, "name", &format!("{prefix}name"))?;
    let bndbox = object.child("bndbox").ok_or_else(|| VocError::Missing {
        file: fields.file.to_string(),
        line: object.line,
        field: format!("{prefix}bndbox"),
    })?;
    let mut corners = [0.0f64; 4];
    for (value, tag) in corners.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
        *value = fields.value(
            bndbox,
            tag,
            &format!("{prefix}bndbox/{tag}"),
            "a number that fits in single precision",
            |v: &f64| (*v as f32).is_finite(),
        )?;
    }
    let [xmin, ymin, xmax, ymax] = corners;
    let bbox = BBox::new(
        (xmin - 1.0) as f32,
        (ymin - 1.0) as f32,
        xmax as f32,
        ymax as f32,
    );
    if !bbox.is_valid() {
        return Err(VocError::EmptyBox {
            file: fields.file.to_string(),
            line: bndbox.line,
            object: number,
            xmin,
            ymin,
            xmax,
            ymax,
        });
    }
    let clipped = bbox.clip(width as f32, height as f32);
    if !clipped.is_valid() {
        return Err(VocError::OutsideImage {
            file: fields.file.to_string(),
            line: bndbox.line,
            object: number,
            width,
            height,
        });
    }
    Ok((name.to_string(), clipped))
}

/// Reads Pascal VOC annotation files, one per image, in the given order.
/// Classes are numbered in order of first appearance, file by file.
pub fn read_voc(files: &[TextFile]) -> Result<LabelSet, VocError> {
    let mut class_names: Vec<String> = Vec::new();
    let mut class_of: HashMap<String, usize> = HashMap::new();
    let mut annotated_by: HashMap<String, &str> = HashMap::new();
    let mut images = Vec::with_capacity(files.len());
    for file in files {
        let annotation = read_annotation(file)?;
        if let Some(first) = annotated_by.insert(annotation.file_name.clone(), &file.name) {
            return Err(VocError::DuplicateImage {
                file_name: annotation.file_name,
                first: first.to_string(),
                second: file.name.clone(),
            });
        }
        let boxes = annotation
            .objects
            .into_iter()
            .map(|(name, bbox)| {
                let class = *class_of.entry(name).or_insert_with_key(|name| {
                    class_names.push(name.clone());
                    class_names.len() - 1
                });
                LabeledBox { bbox, class }
            })
            .collect();
        images.push(ImageLabels {
            file_name: annotation.file_name,
            width: annotation.width,
            height: annotation.height,
            boxes,
        });
    }
    Ok(LabelSet {
        class_names,
        images,
    })
}

/// The set as Pascal VOC files, one per image in image order (an image
/// without boxes gets an annotation without objects), text escaped for XML.
/// `<folder>` holds the image's folder within the set, empty at the top.
pub fn write_voc(set: &LabelSet) -> Result<Vec<TextFile>, VocError> {
    set.check_classes()?;
    per_image_files(set, "xml", None, |image| {
        Ok(annotation_xml(image, &set.class_names))
    })
}

/// One image's annotation file.
fn annotation_xml(image: &ImageLabels, class_names: &[String]) -> String {
    let (folder, filename) = image
        .file_name
        .rsplit_once('/')
        .unwrap_or(("", &image.file_name));
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<annotation>\n\t<folder>{}</folder>\n\t<filename>{}</filename>\n\t<size>\n\t\t<width>{}</width>\n\t\t<height>{}</height>\n\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n",
        escape(folder),
        escape(filename),
        image.width,
        image.height
    );
    for labeled in &image.boxes {
        let b = labeled.bbox;
        xml.push_str(&format!(
            "\t<object>\n\t\t<name>{}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{}</xmin>\n\t\t\t<ymin>{}</ymin>\n\t\t\t<xmax>{}</xmax>\n\t\t\t<ymax>{}</ymax>\n\t\t</bndbox>\n\t</object>\n",
            escape(class_names[labeled.class].as_str()),
            number(f64::from(b.x0) + 1.0),
            number(f64::from(b.y0) + 1.0),
            number(f64::from(b.x1)),
            number(f64::from(b.y1)),
        ));
    }
    xml.push_str("</annotation>\n");
    xml
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

    fn error(text: &str) -> VocError {
        read_voc(&[file("dir/a.xml", text)]).expect_err("malformed annotation")
    }

    #[test]
    fn boxes_over_the_edge_are_cut_and_boxes_outside_are_refused() {
        let with_box = |ymin: u32, ymax: u32| TextFile {
            name: "a.xml".into(),
            text: MINIMAL
                .replace("<ymin>1</ymin>", &format!("<ymin>{ymin}</ymin>"))
                .replace("<ymax>8</ymax>", &format!("<ymax>{ymax}</ymax>")),
        };
        let set = read_voc(&[with_box(2, 30)]).unwrap();
        assert_eq!(set.images[0].boxes[0].bbox, BBox::new(0.0, 1.0, 10.0, 8.0));
        let err = read_voc(&[with_box(20, 30)]).unwrap_err();
        assert!(
            matches!(
                err,
                VocError::OutsideImage {
                    object: 1,
                    width: 10,
                    height: 8,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("a.xml, line 2: object 1's box lies outside its 10x8 image"),
            "{err}"
        );
    }

    const MINIMAL: &str = "<annotation><filename>a.png</filename><size><width>10</width><height>8</height></size>\n<object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>8</ymax></bndbox></object></annotation>";

    #[test]
    fn whole_image_box_is_one_to_size_in_the_devkit_convention() {
        let set = read_voc(&[file("dir/a.xml", MINIMAL)]).expect("valid");
        assert_eq!(set.images[0].file_name, "dir/a.png");
        assert_eq!(set.images[0].boxes[0].bbox, BBox::new(0.0, 0.0, 10.0, 8.0));
        let written = write_voc(&set).expect("writable");
        assert_eq!(written[0].name, "dir/a.xml");
        assert!(written[0].text.contains("<folder>dir</folder>"));
        assert!(written[0].text.contains("<xmin>1</xmin>"));
        assert!(written[0].text.contains("<xmax>10</xmax>"));
        assert_eq!(read_voc(&written).expect("own output"), set);
    }

    #[test]
    fn entities_and_cdata_are_resolved() {
        let xml = MINIMAL.replace(
            "<name>x</name>",
            "<name>R&amp;D &#x263A; <![CDATA[<sign>]]></name>",
        );
        let set = read_voc(&[file("a.xml", &xml)]).expect("valid");
        assert_eq!(set.class_names, ["R&D ☺ <sign>"]);
    }

    #[test]
    fn malformed_xml_names_the_file_and_line() {
        let err = error("<annotation>\n<filename>a.png</filename>\n<size><width>3</size>");
        assert!(
            matches!(&err, VocError::Xml { file, line: 3, .. } if file == "dir/a.xml"),
            "{err}"
        );
        let err = error("<annotation>\n<filename>&nbsp;</filename></annotation>");
        assert!(err.to_string().contains("&nbsp;"), "{err}");
        let err = error("<annotation>\n<filename>a.png</filename>");
        assert!(matches!(err, VocError::Xml { .. }), "{err}");
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        let err = error(&MINIMAL.replace("<width>10</width>", ""));
        assert_eq!(
            err,
            VocError::Missing {
                file: "dir/a.xml".into(),
                line: 1,
                field: "size/width".into()
            }
        );
        let err = error(&MINIMAL.replace("<xmax>10</xmax>", "<xmax>ten</xmax>"));
        assert!(
            matches!(&err, VocError::BadValue { field, value, line: 2, .. } if field == "object 1/bndbox/xmax" && value == "ten"),
            "{err}"
        );
        let err = error(&MINIMAL.replace("<width>10</width>", "<width>0</width>"));
        assert!(err.to_string().contains("size/width is '0'"), "{err}");
        let err = error(&MINIMAL.replace("<xmax>10</xmax>", "<xmax>0</xmax>"));
        assert!(matches!(err, VocError::EmptyBox { object: 1, .. }), "{err}");
        let err = error("<Annotation/>");
        assert!(matches!(err, VocError::NotVoc { .. }), "{err}");
    }

    #[test]
    fn two_files_for_one_image_are_refused() {
        let err = read_voc(&[file("a.xml", MINIMAL), file("b.xml", MINIMAL)]).unwrap_err();
        assert_eq!(
            err,
            VocError::DuplicateImage {
                file_name: "a.png".into(),
                first: "a.xml".into(),
                second: "b.xml".into()
            }
        );
    }
}
