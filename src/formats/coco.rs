//! COCO object-detection JSON (`images`, `annotations`, `categories`): read
//! into a [`LabelSet`] with validation, and written back. Fields veritune does
//! not use (`info`, `licenses`, `segmentation`, `iscrowd`, ...) are ignored.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{ImageLabels, LabelSet};
use crate::geometry::{BBox, LabeledBox};

/// Why a COCO JSON document cannot be read.
#[derive(Debug, Error)]
pub enum CocoError {
    /// The text is not JSON, or a field is missing or of the wrong type.
    #[error(
        "the COCO JSON is malformed: {0}; fix it there (COCO detection JSON needs `images` with id, file_name, width, height, `annotations` with id, image_id, category_id, bbox [x, y, width, height], and `categories` with id, name)"
    )]
    Json(serde_json::Error),
    /// Two images share an id.
    #[error("image id {image_id} appears twice in `images`: give each image its own id")]
    DuplicateImageId {
        /// The repeated id.
        image_id: u64,
    },
    /// Two categories share an id.
    #[error(
        "category id {category_id} appears twice in `categories`: give each category its own id"
    )]
    DuplicateCategoryId {
        /// The repeated id.
        category_id: u64,
    },
    /// An annotation names an image that `images` lacks.
    #[error(
        "annotation {annotation_id} refers to image_id {image_id}, which is not in `images`: add the image or fix the annotation's image_id"
    )]
    UnknownImage {
        /// The annotation's id.
        annotation_id: u64,
        /// The image id it names.
        image_id: u64,
    },
    /// An annotation names a category that `categories` lacks.
    #[error(
        "annotation {annotation_id} refers to category_id {category_id}, which is not in `categories`: add the category or fix the annotation's category_id"
    )]
    UnknownCategory {
        /// The annotation's id.
        annotation_id: u64,
        /// The category id it names.
        category_id: u64,
    },
    /// An annotation's bbox has a value that is not a finite pixel position.
    #[error(
        "annotation {annotation_id} has bbox {bbox:?} with a value that is not finite in single precision: give [x, y, width, height] as ordinary pixel values"
    )]
    NonFiniteBox {
        /// The annotation's id.
        annotation_id: u64,
        /// Its bbox as written, `[x, y, width, height]`.
        bbox: [f64; 4],
    },
    /// An annotation's bbox has a negative width or height.
    #[error(
        "annotation {annotation_id} has bbox {bbox:?} with a negative width or height: COCO boxes are [x, y, width, height], not corners"
    )]
    NegativeBoxSize {
        /// The annotation's id.
        annotation_id: u64,
        /// Its bbox as written, `[x, y, width, height]`.
        bbox: [f64; 4],
    },
    /// An annotation's bbox has no part inside its image.
    #[error(
        "annotation {annotation_id} has bbox {bbox:?}, which lies outside its {width}x{height} image: fix the bbox or the image's width and height"
    )]
    OutsideImage {
        /// The annotation's id.
        annotation_id: u64,
        /// Its bbox as written, `[x, y, width, height]`.
        bbox: [f64; 4],
        /// The image's width.
        width: u32,
        /// The image's height.
        height: u32,
    },
    /// An annotation's bbox has no area.
    #[error(
        "annotation {annotation_id} has bbox {bbox:?} with zero area: remove the annotation or give it a width and height above zero"
    )]
    EmptyBox {
        /// The annotation's id.
        annotation_id: u64,
        /// Its bbox as written, `[x, y, width, height]`.
        bbox: [f64; 4],
    },
}

/// The parts of a COCO file that veritune reads; other fields are ignored.
#[derive(Deserialize)]
struct CocoFileIn {
    images: Vec<ImageIn>,
    #[serde(default)]
    annotations: Vec<AnnotationIn>,
    categories: Vec<CategoryIn>,
}

#[derive(Deserialize)]
struct ImageIn {
    id: u64,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct AnnotationIn {
    id: u64,
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
}

#[derive(Deserialize)]
struct CategoryIn {
    id: u64,
    name: String,
}

/// A COCO file as written, with the fields pycocotools needs.
#[derive(Serialize)]
struct CocoFileOut<'a> {
    images: Vec<ImageOut<'a>>,
    annotations: Vec<AnnotationOut>,
    categories: Vec<CategoryOut<'a>>,
}

#[derive(Serialize)]
struct ImageOut<'a> {
    id: usize,
    file_name: &'a str,
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct AnnotationOut {
    id: usize,
    image_id: usize,
    category_id: usize,
    bbox: [f64; 4],
    area: f64,
    iscrowd: u8,
}

#[derive(Serialize)]
struct CategoryOut<'a> {
    id: usize,
    name: &'a str,
}

/// Reads and checks a COCO detection JSON document. Boxes reaching over the
/// edge of their image are cut to it; boxes with no area, or none inside
/// their image, are refused.
pub fn read_coco(json: &str) -> Result<LabelSet, CocoError> {
    let file: CocoFileIn = serde_json::from_str(json).map_err(CocoError::Json)?;

    let mut categories: Vec<&CategoryIn> = file.categories.iter().collect();
    categories.sort_by_key(|c| c.id);
    if let Some(pair) = categories.windows(2).find(|pair| pair[0].id == pair[1].id) {
        return Err(CocoError::DuplicateCategoryId {
            category_id: pair[0].id,
        });
    }
    let class_of: HashMap<u64, usize> = categories
        .iter()
        .enumerate()
        .map(|(class, c)| (c.id, class))
        .collect();

    let mut image_index = HashMap::with_capacity(file.images.len());
    let mut images = Vec::with_capacity(file.images.len());
    for image in file.images {
        if image_index.insert(image.id, images.len()).is_some() {
            return Err(CocoError::DuplicateImageId { image_id: image.id });
        }
        images.push(ImageLabels {
            file_name: image.file_name,
            width: image.width,
            height: image.height,
            boxes: Vec::new(),
        });
    }

    for annotation in &file.annotations {
        let Some(&index) = image_index.get(&annotation.image_id) else {
            return Err(CocoError::UnknownImage {
                annotation_id: annotation.id,
                image_id: annotation.image_id,
            });
        };
        let Some(&class) = class_of.get(&annotation.category_id) else {
            return Err(CocoError::UnknownCategory {
                annotation_id: annotation.id,
                category_id: annotation.category_id,
            });
        };
        let image = &mut images[index];
        let bbox = checked_box(annotation, image.width, image.height)?;
        image.boxes.push(LabeledBox { bbox, class });
    }

    Ok(LabelSet {
        class_names: categories.iter().map(|c| c.name.clone()).collect(),
        images,
    })
}

/// The dataset as pretty-printed COCO JSON; image, annotation and category
/// ids count from 1, category `i + 1` being class `i`.
pub fn to_coco_json(dataset: &LabelSet) -> String {
    let mut annotations = Vec::new();
    for (image_index, image) in dataset.images.iter().enumerate() {
        for labeled in &image.boxes {
            // Widths in double precision, so that x + width gives back the
            // single-precision right edge exactly when read.
            let b = labeled.bbox;
            let (x, y) = (f64::from(b.x0), f64::from(b.y0));
            let (w, h) = (f64::from(b.x1) - x, f64::from(b.y1) - y);
            annotations.push(AnnotationOut {
                id: annotations.len() + 1,
                image_id: image_index + 1,
                category_id: labeled.class + 1,
                bbox: [x, y, w, h],
                area: w * h,
                iscrowd: 0,
            });
        }
    }
    let file = CocoFileOut {
        images: dataset
            .images
            .iter()
            .enumerate()
            .map(|(index, image)| ImageOut {
                id: index + 1,
                file_name: &image.file_name,
                width: image.width,
                height: image.height,
            })
            .collect(),
        annotations,
        categories: dataset
            .class_names
            .iter()
            .enumerate()
            .map(|(class, name)| CategoryOut {
                id: class + 1,
                name,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&file)
        .expect("strings and finite-or-null numbers always serialise to JSON")
}

/// The annotation's box in corners, cut to its `width` x `height` image, or
/// why it is not a usable box.
fn checked_box(annotation: &AnnotationIn, width: u32, height: u32) -> Result<BBox, CocoError> {
    let [x, y, w, h] = annotation.bbox;
    let bbox = BBox::new(x as f32, y as f32, (x + w) as f32, (y + h) as f32);
    let (annotation_id, raw) = (annotation.id, annotation.bbox);
    if ![bbox.x0, bbox.y0, bbox.x1, bbox.y1, w as f32, h as f32]
        .iter()
        .all(|v| v.is_finite())
    {
        return Err(CocoError::NonFiniteBox {
            annotation_id,
            bbox: raw,
        });
    }
    if w < 0.0 || h < 0.0 {
        return Err(CocoError::NegativeBoxSize {
            annotation_id,
            bbox: raw,
        });
    }
    if !bbox.is_valid() {
        return Err(CocoError::EmptyBox {
            annotation_id,
            bbox: raw,
        });
    }
    let clipped = bbox.clip(width as f32, height as f32);
    if !clipped.is_valid() {
        return Err(CocoError::OutsideImage {
            annotation_id,
            bbox: raw,
            width,
            height,
        });
    }
    Ok(clipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document in the published COCO layout, with the fields veritune
    /// does not use (info, licenses, segmentation, area, iscrowd, ...).
    const PUBLISHED_LAYOUT: &str = r#"{
      "info": {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org",
               "version": "1.0", "year": 2017, "contributor": "COCO Consortium",
               "date_created": "2017/09/01"},
      "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
                    "name": "Attribution-NonCommercial-ShareAlike License"}],
      "images": [
        {"license": 4, "file_name": "000000397133.jpg", "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg",
         "height": 427, "width": 640, "date_captured": "2013-11-14 17:02:52",
         "flickr_url": "http://farm7.staticflickr.com/6116/6255196340_da26cf2c9e_z.jpg", "id": 397133},
        {"license": 1, "file_name": "000000037777.jpg", "height": 230, "width": 352, "id": 37777}
      ],
      "annotations": [
        {"segmentation": [[510.66, 423.01, 511.72, 420.03, 510.45, 423.01]], "area": 702.1057,
         "iscrowd": 0, "image_id": 397133, "bbox": [473.07, 395.93, 38.65, 28.67],
         "category_id": 18, "id": 1768},
        {"segmentation": {"counts": [179, 27, 392], "size": [230, 352]}, "area": 1200.5,
         "iscrowd": 1, "image_id": 37777, "bbox": [10.0, 20.0, 30.0, 40.0],
         "category_id": 1, "id": 900100},
        {"segmentation": [], "area": 100.0, "iscrowd": 0, "image_id": 397133,
         "bbox": [1.0, 2.0, 10.0, 10.0], "category_id": 1, "id": 2}
      ],
      "categories": [
        {"supercategory": "animal", "id": 18, "name": "dog"},
        {"supercategory": "person", "id": 1, "name": "person"}
      ]
    }"#;

    fn document(annotations: &str) -> String {
        format!(
            r#"{{"images": [{{"id": 7, "file_name": "a.jpg", "width": 64, "height": 48}}],
                "annotations": [{annotations}],
                "categories": [{{"id": 3, "name": "cat"}}]}}"#
        )
    }

    fn annotation(bbox: &str) -> String {
        format!(r#"{{"id": 41, "image_id": 7, "category_id": 3, "bbox": {bbox}}}"#)
    }

    #[test]
    fn reads_the_published_layout_and_orders_classes_by_category_id() {
        let dataset = read_coco(PUBLISHED_LAYOUT).expect("a valid COCO document");
        assert_eq!(dataset.class_names, ["person", "dog"]);
        assert_eq!(dataset.images.len(), 2);
        let first = &dataset.images[0];
        assert_eq!(
            (first.file_name.as_str(), first.width, first.height),
            ("000000397133.jpg", 640, 427)
        );
        assert_eq!(first.boxes.len(), 2);
        assert_eq!(first.boxes[0].class, 1);
        assert_eq!(
            first.boxes[0].bbox,
            BBox::new(
                473.07,
                395.93,
                (473.07f64 + 38.65) as f32,
                (395.93f64 + 28.67) as f32
            )
        );
        assert_eq!(
            first.boxes[1],
            LabeledBox {
                bbox: BBox::new(1.0, 2.0, 11.0, 12.0),
                class: 0
            }
        );
        assert_eq!(dataset.images[1].boxes[0].class, 0);
    }

    #[test]
    fn written_dataset_reads_back_equal() {
        let dataset = LabelSet {
            class_names: vec!["chat".into(), "Hund 🐕".into(), "猫".into()],
            images: vec![
                ImageLabels {
                    file_name: "été/ñandú 写真.jpg".into(),
                    width: 640,
                    height: 480,
                    boxes: vec![
                        LabeledBox {
                            bbox: BBox::new(0.1, 0.2, 100.3, 50.7),
                            class: 2,
                        },
                        LabeledBox {
                            bbox: BBox::new(1e-3, 333.333, 1.0e-3 + 1e-4, 479.9),
                            class: 0,
                        },
                    ],
                },
                ImageLabels {
                    file_name: "empty.png".into(),
                    width: 1,
                    height: 1,
                    boxes: Vec::new(),
                },
                ImageLabels {
                    file_name: "b.jpg".into(),
                    width: 32,
                    height: 16,
                    boxes: vec![LabeledBox {
                        bbox: BBox::new(3.0, 4.0, 30.5, 15.25),
                        class: 1,
                    }],
                },
            ],
        };
        let json = to_coco_json(&dataset);
        assert!(json.contains('\n'), "the output is pretty-printed");
        assert_eq!(read_coco(&json).expect("own output is valid COCO"), dataset);
    }

    #[test]
    fn written_ids_count_from_one() {
        let dataset = LabelSet {
            class_names: vec!["a".into()],
            images: vec![ImageLabels {
                file_name: "x.jpg".into(),
                width: 8,
                height: 8,
                boxes: vec![LabeledBox {
                    bbox: BBox::new(1.0, 1.0, 3.0, 5.0),
                    class: 0,
                }],
            }],
        };
        let value: serde_json::Value =
            serde_json::from_str(&to_coco_json(&dataset)).expect("output is JSON");
        assert_eq!(value["images"][0]["id"], 1);
        assert_eq!(value["categories"][0]["id"], 1);
        let annotation = &value["annotations"][0];
        assert_eq!(annotation["id"], 1);
        assert_eq!(annotation["image_id"], 1);
        assert_eq!(annotation["category_id"], 1);
        assert_eq!(annotation["bbox"], serde_json::json!([1.0, 1.0, 2.0, 4.0]));
        assert_eq!(annotation["area"], 8.0);
        assert_eq!(annotation["iscrowd"], 0);
    }

    #[test]
    fn annotation_of_a_missing_image_is_rejected() {
        let json = document(r#"{"id": 5, "image_id": 8, "category_id": 3, "bbox": [0, 0, 1, 1]}"#);
        let err = read_coco(&json).expect_err("image 8 does not exist");
        assert!(matches!(
            err,
            CocoError::UnknownImage {
                annotation_id: 5,
                image_id: 8
            }
        ));
        assert!(err.to_string().contains("image_id 8"));
    }

    #[test]
    fn annotation_of_a_missing_category_is_rejected() {
        let json = document(r#"{"id": 5, "image_id": 7, "category_id": 4, "bbox": [0, 0, 1, 1]}"#);
        assert!(matches!(
            read_coco(&json),
            Err(CocoError::UnknownCategory {
                annotation_id: 5,
                category_id: 4
            })
        ));
    }

    #[test]
    fn boxes_without_finite_values_are_rejected() {
        let json = document(&annotation("[0, 0, 1e39, 1]"));
        assert!(matches!(
            read_coco(&json),
            Err(CocoError::NonFiniteBox {
                annotation_id: 41,
                ..
            })
        ));
    }

    #[test]
    fn boxes_with_negative_size_are_rejected() {
        for bbox in ["[10, 10, -2, 5]", "[10, 10, 2, -5]"] {
            let err = read_coco(&document(&annotation(bbox))).expect_err("negative size");
            assert!(
                matches!(
                    err,
                    CocoError::NegativeBoxSize {
                        annotation_id: 41,
                        ..
                    }
                ),
                "{bbox}: {err}"
            );
        }
    }

    #[test]
    fn zero_area_boxes_are_rejected_naming_the_annotation() {
        for bbox in ["[10, 10, 0, 5]", "[10, 10, 3, 0]", "[10, 10, 1e-50, 1]"] {
            let err = read_coco(&document(&annotation(bbox))).expect_err("no area");
            assert!(
                matches!(
                    err,
                    CocoError::EmptyBox {
                        annotation_id: 41,
                        ..
                    }
                ),
                "{bbox}: {err}"
            );
            assert!(err.to_string().contains("annotation 41"));
        }
    }

    #[test]
    fn boxes_over_the_edge_are_cut_and_boxes_outside_are_rejected() {
        let dataset = read_coco(&document(&annotation("[-4, 40, 10, 20]"))).expect("cut");
        assert_eq!(
            dataset.images[0].boxes[0].bbox,
            BBox::new(0.0, 40.0, 6.0, 48.0)
        );
        for bbox in ["[64, 0, 5, 5]", "[-10, 0, 10, 5]", "[0, 100, 5, 5]"] {
            let err = read_coco(&document(&annotation(bbox))).expect_err("outside");
            assert!(
                matches!(
                    err,
                    CocoError::OutsideImage {
                        annotation_id: 41,
                        width: 64,
                        height: 48,
                        ..
                    }
                ),
                "{bbox}: {err}"
            );
            assert!(err.to_string().contains("64x48"), "{err}");
        }
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let images = r#"{"images": [{"id": 2, "file_name": "a.jpg", "width": 1, "height": 1},
                                    {"id": 2, "file_name": "b.jpg", "width": 1, "height": 1}],
                         "annotations": [], "categories": []}"#;
        assert!(matches!(
            read_coco(images),
            Err(CocoError::DuplicateImageId { image_id: 2 })
        ));
        let categories =
            r#"{"images": [], "categories": [{"id": 9, "name": "a"}, {"id": 9, "name": "b"}]}"#;
        assert!(matches!(
            read_coco(categories),
            Err(CocoError::DuplicateCategoryId { category_id: 9 })
        ));
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let err = read_coco("{\"images\": [\n  {\"id\": 1,, }]}").expect_err("syntax error");
        assert!(matches!(err, CocoError::Json(_)));
        assert!(err.to_string().contains("line 2 column 12"), "{err}");
        let short_box = document(&annotation("[1, 2, 3]"));
        assert!(matches!(read_coco(&short_box), Err(CocoError::Json(_))));
    }
}
