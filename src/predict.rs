//! Running a detector on images: candidates in image pixels (all above a
//! floor, as METHOD.md section 1 needs) and the boxes to show.

use crate::detector::{
    Detector, candidates_from_predictions, input_batch, model_device, to_image_pixels,
};
use crate::geometry::Detection;
use crate::image::Image;

/// Lowest score kept as a candidate (METHOD.md's floor).
pub const CANDIDATE_FLOOR: f32 = 0.05;
/// Most candidates kept per image, best first.
pub const MAX_CANDIDATES: usize = 1000;
/// IoU above which NMS suppresses a box of the same class.
pub const NMS_IOU: f32 = 0.5;

/// The candidates of each image, boxes in that image's pixels, best first,
/// computed in batches of `batch_size` with one asynchronous read per batch.
pub async fn candidates<M: Detector>(
    model: &M,
    images: &[&Image],
    batch_size: usize,
) -> Result<Vec<Vec<Detection>>, String> {
    let model = model.clone().no_grad();
    let device = model_device(&model);
    let spec = model.spec().clone();
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch_size.max(1)) {
        let input = input_batch(&spec, chunk, &device);
        let predictions = model.predictions(model.forward(input));
        let data = predictions
            .into_data_async()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let values = data.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        let per_image = candidates_from_predictions(
            &values,
            chunk.len(),
            spec.num_classes(),
            CANDIDATE_FLOOR,
            MAX_CANDIDATES,
        );
        for (image, detections) in chunk.iter().zip(per_image) {
            out.push(
                detections
                    .into_iter()
                    .map(|d| Detection {
                        bbox: to_image_pixels(&d.bbox, &spec, image.width(), image.height()),
                        ..d
                    })
                    .filter(|d| d.bbox.is_valid())
                    .collect(),
            );
        }
    }
    Ok(out)
}
