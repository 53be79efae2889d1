//! Running a detector on images: candidates in image pixels (all above a
//! floor, as METHOD.md section 1 needs) and the boxes to show.

use crate::detector::{
    Detector, candidates_from_predictions, input_batch, model_device, shown_detections,
    to_image_pixels,
};
use crate::fidelity::{FidelityConfig, Tally, VerdictCheck, check_image, history_agreement};
use crate::geometry::{Detection, LabeledBox};
use crate::image::Image;
use crate::verdict::ImageVerdicts;

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

/// An image the user reviewed, as a verdict check needs it: the pixels the
/// model looks at and the verdicts, given in the pixels of an image of
/// `size` (`[width, height]`; the same image at another size, such as a
/// sample's copy at the detector's input size, is checked the same way).
#[derive(Clone, Copy, Debug)]
pub struct Reviewed<'a> {
    /// What the model is run on.
    pub image: &'a Image,
    /// The user's verdicts on it.
    pub verdicts: &'a ImageVerdicts,
    /// The size of the image the verdicts' boxes are in.
    pub size: [usize; 2],
}

/// The boxes `model` shows on each image at `threshold` (after NMS), in that
/// image's pixels.
pub async fn shown_boxes<M: Detector>(
    model: &M,
    images: &[&Image],
    threshold: f32,
    batch_size: usize,
) -> Result<Vec<Vec<Detection>>, String> {
    Ok(candidates(model, images, batch_size)
        .await?
        .iter()
        .map(|c| shown_detections(c, threshold, NMS_IOU))
        .collect())
}

/// Checks the verdicts on each reviewed image against the boxes `model`
/// shows on it now (at `config`'s score threshold, after NMS), as
/// [`check_image`] decides: a forward pass, no backward.
pub async fn check_reviewed<M: Detector>(
    model: &M,
    reviewed: &[Reviewed<'_>],
    config: &FidelityConfig,
    batch_size: usize,
) -> Result<Vec<Vec<VerdictCheck>>, String> {
    let images: Vec<&Image> = reviewed.iter().map(|r| r.image).collect();
    let shown = shown_boxes(model, &images, config.score_threshold, batch_size).await?;
    Ok(reviewed
        .iter()
        .zip(shown)
        .map(|(r, shown)| {
            let [w, h] = r.size;
            let sx = w as f32 / r.image.width() as f32;
            let sy = h as f32 / r.image.height() as f32;
            let scaled: Vec<Detection> = shown
                .into_iter()
                .map(|d| Detection {
                    bbox: d.bbox.scale(sx, sy),
                    ..d
                })
                .collect();
            check_image(r.verdicts, &scaled, config)
        })
        .collect())
}

/// History agreement of `model` on `images`, whose boxes are `labels` (one
/// list per image, in its pixels): how many of them it still shows. Only
/// the images with boxes are run (the photo history's backgrounds have none).
pub async fn boxes_kept<M: Detector>(
    model: &M,
    images: &[&Image],
    labels: &[Vec<LabeledBox>],
    config: &FidelityConfig,
    batch_size: usize,
) -> Result<Tally, String> {
    let (images, labels): (Vec<&Image>, Vec<Vec<LabeledBox>>) = images
        .iter()
        .zip(labels)
        .filter(|(_, boxes)| !boxes.is_empty())
        .map(|(image, boxes)| (*image, boxes.clone()))
        .unzip();
    let shown = shown_boxes(model, &images, config.score_threshold, batch_size).await?;
    Ok(history_agreement(&labels, &shown, config))
}
