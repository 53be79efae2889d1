//! mAP@0.5 of a detector on annotated images: prediction, NMS and
//! [`metrics`](crate::metrics) in one call.

use crate::detector::{Detector, shown_detections};
use crate::geometry::LabeledBox;
use crate::image::Image;
use crate::metrics::{ImageEval, MapReport, mean_average_precision};
use crate::predict::{NMS_IOU, candidates};

/// The IoU of the reported mAP@0.5.
pub const MAP_IOU: f32 = 0.5;

/// mAP at `iou` (per class and mean) of `model` on images with their ground
/// truth, predicting in batches of `batch_size`; `on_batch` is told how many
/// images are done after each batch.
pub async fn evaluate<M: Detector>(
    model: &M,
    images: &[(&Image, &[LabeledBox])],
    batch_size: usize,
    iou: f32,
    mut on_batch: impl FnMut(usize),
) -> Result<MapReport, String> {
    let mut evals = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch_size.max(1)) {
        let pictures: Vec<&Image> = chunk.iter().map(|(image, _)| *image).collect();
        let all = candidates(model, &pictures, batch_size).await?;
        for ((_, truth), candidates) in chunk.iter().zip(all) {
            evals.push(ImageEval {
                detections: shown_detections(&candidates, 0.0, NMS_IOU),
                ground_truth: truth.to_vec(),
            });
        }
        on_batch(evals.len());
    }
    Ok(mean_average_precision(
        &evals,
        model.spec().num_classes(),
        iou,
    ))
}
