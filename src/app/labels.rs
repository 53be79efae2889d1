//! Labels in and out of a labeling session: the reviewed images' verdicts as
//! one download in a standard format (COCO JSON, or YOLO or Pascal VOC files
//! in a ZIP), and label files turned into the verdicts a careful user would
//! give on the open images.

use std::collections::{BTreeMap, HashMap};

use thiserror::Error;

use crate::formats::coco::to_coco_json;
use crate::formats::import::{ImportError, SkippedClass, import_labels};
use crate::formats::voc::{VocError, write_voc};
use crate::formats::yolo::{YoloError, write_yolo};
use crate::formats::{
    Format, ImageSize, LabelSet, TextFile, VerdictLabelsError, labels_from_verdicts,
};
use crate::geometry::{Detection, LabeledBox};
use crate::simulate::{Simulated, simulated_judgements};
use crate::verdict::{ImageVerdicts, Judgement};
use crate::zip::{ZipError, write_zip};

/// IoU at which an imported object matches a shown box.
pub const IMPORT_IOU: f32 = 0.5;

/// A reviewed image for label export.
#[derive(Clone, Debug)]
pub struct ReviewedImage {
    /// The image's file name; its label file is named after it.
    pub name: String,
    /// `[width, height]` of the picture the verdicts were given on.
    pub size: [u32; 2],
    /// `[width, height]` of the original file, which the labels are written for.
    pub original: [u32; 2],
    /// The verdicts, in the pixels of `size`.
    pub verdicts: ImageVerdicts,
}

/// Why labels could not be exported.
#[derive(Debug, Error)]
pub enum LabelExportError {
    /// Label files are named after their images: two images share a name.
    #[error(
        "two images are named '{0}', and label files are named after their images: rename one of the files and open it again"
    )]
    SameName(String),
    /// A verdict does not make a label.
    #[error(transparent)]
    Verdicts(#[from] VerdictLabelsError),
    /// The YOLO files could not be written.
    #[error(transparent)]
    Yolo(#[from] YoloError),
    /// The Pascal VOC files could not be written.
    #[error(transparent)]
    Voc(#[from] VocError),
    /// The ZIP archive could not be written.
    #[error(transparent)]
    Zip(#[from] ZipError),
}

/// The labels the verdicts of `images` give (the boxes the user confirmed,
/// corrected or drew; `class_names` are the model's), in the originals'
/// pixels, as one download of `format`: a COCO JSON file, or a ZIP of YOLO
/// or Pascal VOC files.
pub fn export_labels(
    class_names: &[String],
    format: Format,
    images: Vec<ReviewedImage>,
) -> Result<Vec<u8>, LabelExportError> {
    let mut verdicts = BTreeMap::new();
    let mut sizes = Vec::with_capacity(images.len());
    let mut originals = HashMap::with_capacity(images.len());
    for image in images {
        if verdicts.contains_key(&image.name) {
            return Err(LabelExportError::SameName(image.name));
        }
        let [width, height] = image.size;
        sizes.push(ImageSize {
            file_name: image.name.clone(),
            width,
            height,
        });
        originals.insert(image.name.clone(), image.original);
        verdicts.insert(image.name, image.verdicts);
    }
    let set = labels_from_verdicts(class_names, &sizes, &verdicts)?;
    let set = LabelSet {
        images: set
            .images
            .iter()
            .map(|labels| {
                let [width, height] = originals
                    .get(&labels.file_name)
                    .copied()
                    .unwrap_or([labels.width, labels.height]);
                labels.resized(width, height)
            })
            .collect(),
        class_names: set.class_names,
    };
    let files = match format {
        Format::Coco => return Ok((to_coco_json(&set) + "\n").into_bytes()),
        Format::Yolo => write_yolo(&set)?,
        Format::Voc => write_voc(&set)?,
    };
    Ok(write_zip(
        files.iter().map(|f| (f.name.as_str(), f.text.as_bytes())),
    )?)
}

/// An open image for label import.
#[derive(Clone, Debug)]
pub struct OpenImage {
    /// The image's file name, which label entries name.
    pub name: String,
    /// `[width, height]` of the picture the boxes are in.
    pub size: [u32; 2],
    /// The boxes shown on it.
    pub shown: Vec<Detection>,
}

/// The verdicts an import gives one open image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedVerdicts {
    /// Index among the open images.
    pub index: usize,
    /// How many imported objects the image has.
    pub objects: usize,
    /// One per shown box, in the order given.
    pub judgements: Vec<Judgement>,
    /// The objects no shown box matched, drawn.
    pub drawn: Vec<LabeledBox>,
}

/// What label files give the open images.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictImport {
    /// The files' format.
    pub format: Format,
    /// The verdicts of each matched open image, in the files' order.
    pub images: Vec<ImportedVerdicts>,
    /// Entries naming an image that is not open.
    pub not_open: Vec<String>,
    /// Entries naming an open image that an earlier entry already matched.
    pub repeated: Vec<String>,
    /// The files' classes the model lacks, with the boxes left out.
    pub unknown_classes: Vec<SkippedClass>,
}

/// Verdicts from label `files` (one COCO JSON, YOLO `.txt` files with
/// `classes.txt`, or Pascal VOC `.xml` files) for the `open` images:
/// entries go to images by file name, classes to the model's
/// (`class_names`) by name, and each matched image gets the verdicts a
/// careful user would give knowing those objects: confirm (or correct the
/// class of) the shown boxes that match one, reject the others, draw the
/// objects none matched.
pub fn import_verdicts(
    files: &[TextFile],
    open: &[OpenImage],
    class_names: &[String],
) -> Result<VerdictImport, ImportError> {
    let sizes: Vec<ImageSize> = open
        .iter()
        .map(|image| ImageSize {
            file_name: image.name.clone(),
            width: image.size[0],
            height: image.size[1],
        })
        .collect();
    let import = import_labels(files, &sizes, class_names)?;
    let images = import
        .images
        .into_iter()
        .map(|imported| {
            let Simulated { judgements, drawn } =
                simulated_judgements(&open[imported.index].shown, &imported.boxes, IMPORT_IOU);
            ImportedVerdicts {
                index: imported.index,
                objects: imported.boxes.len(),
                judgements,
                drawn,
            }
        })
        .collect();
    Ok(VerdictImport {
        format: import.format,
        images,
        not_open: import.not_open,
        repeated: import.repeated,
        unknown_classes: import.unknown_classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    fn classes() -> Vec<String> {
        vec!["cat".into(), "dog".into()]
    }

    fn drawn_on(name: &str, bbox: BBox) -> ReviewedImage {
        ReviewedImage {
            name: name.into(),
            size: [100, 50],
            original: [200, 100],
            verdicts: ImageVerdicts {
                drawn: vec![LabeledBox { bbox, class: 1 }],
                ..ImageVerdicts::default()
            },
        }
    }

    #[test]
    fn exported_labels_are_in_the_originals_pixels() {
        let bytes = export_labels(
            &classes(),
            Format::Coco,
            vec![drawn_on("a.jpg", BBox::new(10.0, 10.0, 30.0, 20.0))],
        )
        .expect("exports");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("COCO JSON");
        assert_eq!(json["images"][0]["width"], 200);
        let bbox: Vec<f64> = json["annotations"][0]["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(bbox, vec![20.0, 20.0, 40.0, 20.0], "x, y, w, h doubled");
    }

    #[test]
    fn yolo_and_voc_come_as_one_zip_and_two_images_of_one_name_are_refused() {
        for format in [Format::Yolo, Format::Voc] {
            let bytes = export_labels(
                &classes(),
                format,
                vec![drawn_on("a.jpg", BBox::new(10.0, 10.0, 30.0, 20.0))],
            )
            .expect("exports");
            assert_eq!(&bytes[..4], b"PK\x03\x04", "{format:?} is a ZIP");
        }
        let twice = vec![
            drawn_on("a.jpg", BBox::new(10.0, 10.0, 30.0, 20.0)),
            drawn_on("a.jpg", BBox::new(40.0, 10.0, 60.0, 20.0)),
        ];
        let error = export_labels(&classes(), Format::Coco, twice).unwrap_err();
        assert!(
            error.to_string().contains("two images are named 'a.jpg'"),
            "{error}"
        );
    }

    #[test]
    fn imported_labels_confirm_matching_boxes_reject_others_and_draw_the_rest() {
        let shown = |bbox, class| Detection {
            bbox,
            class,
            score: 0.9,
        };
        let open = [OpenImage {
            name: "a.jpg".into(),
            size: [100, 100],
            shown: vec![
                shown(BBox::new(0.0, 0.0, 20.0, 20.0), 0),
                shown(BBox::new(50.0, 50.0, 70.0, 70.0), 0),
            ],
        }];
        let coco = r#"{"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20]},
                {"id": 2, "image_id": 1, "category_id": 2, "bbox": [80, 0, 10, 10]}]}"#;
        let files = [TextFile {
            name: "labels.json".into(),
            text: coco.into(),
        }];
        let import = import_verdicts(&files, &open, &classes()).expect("imports");
        assert_eq!(import.format, Format::Coco);
        let image = &import.images[0];
        assert_eq!((image.index, image.objects), (0, 2));
        assert_eq!(
            image.judgements,
            vec![Judgement::Confirmed, Judgement::Rejected]
        );
        assert_eq!(
            image.drawn,
            vec![LabeledBox {
                bbox: BBox::new(80.0, 0.0, 90.0, 10.0),
                class: 1
            }]
        );
    }
}
