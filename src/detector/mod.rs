//! The detector interface and its implementations.
//!
//! A detector is a burn [`Module`] that maps a batch of preprocessed images to
//! head outputs, scores them against [`TrainingTarget`]s (positives *and*
//! negative regions), and turns them into per-location predictions that the
//! CPU decodes into scored candidates (below the display threshold too, as
//! METHOD.md section 1 needs) and, after NMS, into the boxes shown.
//!
//! What differs between detectors is stated in [`DetectorSpec`]: input size,
//! strides, class names and preprocessing.

pub mod assign;
pub mod fcos;
pub mod loss;
pub mod nanodet;

use burn::module::{Module, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::geometry::{BBox, Detection, nms_indices, sort_by_score};
use crate::image::Image;
use crate::verdict::TrainingTarget;

/// The order of the colour channels a network takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue (veritune's own detectors).
    #[default]
    Rgb,
    /// Blue, green, red (networks trained on OpenCV's images, e.g. NanoDet).
    Bgr,
}

/// How an image becomes the network's input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Per input channel (in `channel_order`), the mean subtracted from
    /// values in `[0, 1]`.
    pub mean: [f32; 3],
    /// Per input channel, the divisor applied after the mean.
    pub std: [f32; 3],
    /// The order of the input channels (RGB when absent, as in weights
    /// saved before the field existed).
    #[serde(default)]
    pub channel_order: ChannelOrder,
}

impl Preprocessing {
    /// `image` as planar `[3, height, width]` values in the network's
    /// channel order, normalised.
    pub fn planar(&self, image: &Image) -> Vec<f32> {
        match self.channel_order {
            ChannelOrder::Rgb => image.to_planar(self.mean, self.std),
            ChannelOrder::Bgr => {
                let reversed = |v: [f32; 3]| [v[2], v[1], v[0]];
                let rgb = image.to_planar(reversed(self.mean), reversed(self.std));
                let plane = image.width() * image.height();
                rgb.chunks_exact(plane).rev().flatten().copied().collect()
            }
        }
    }
}

/// What a detector is, as far as its users need to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorSpec {
    /// Architecture name, e.g. `fcos-small`.
    pub architecture: String,
    /// Input width and height in pixels; images are stretched to it.
    pub input_size: [usize; 2],
    /// Strides of the output feature levels, finest first.
    pub strides: Vec<usize>,
    /// Class names, indexed by class.
    pub class_names: Vec<String>,
    /// How pixels are normalised.
    pub preprocessing: Preprocessing,
}

/// The device `model`'s parameters live on (flex for a model without any).
pub fn model_device<M: Module>(model: &M) -> Device {
    model
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex)
}

/// The first of a configuration's loss settings (field name, value) that is
/// negative or not finite.
pub(crate) fn invalid_loss_setting<const N: usize>(
    settings: [(&'static str, f32); N],
) -> Option<(&'static str, f32)> {
    settings
        .into_iter()
        .find(|(_, v)| !v.is_finite() || *v < 0.0)
}

/// A per-location, per-class loss `[batch, locations, classes]` with the
/// classes each target leaves alone (`TrainingTarget::trained_classes`) set
/// to zero; unchanged when every target trains every class.
pub(crate) fn on_trained_classes(loss: Tensor<3>, targets: &[TrainingTarget]) -> Tensor<3> {
    if targets.iter().all(|t| t.trained_classes.is_none()) {
        return loss;
    }
    let [batch, _, classes] = loss.dims();
    let weights: Vec<f32> = targets
        .iter()
        .flat_map(|t| t.class_weights(classes))
        .collect();
    let device = loss.device();
    loss * Tensor::<3>::from_data(TensorData::new(weights, [batch, 1, classes]), &device)
}

impl DetectorSpec {
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }
}

/// The loss on one batch, as a differentiable total plus its parts.
#[derive(Clone, Debug)]
pub struct DetectionLoss {
    /// The scalar to differentiate.
    pub total: Tensor<1>,
    /// Classification part.
    pub classification: Tensor<1>,
    /// Box regression part.
    pub regression: Tensor<1>,
}

/// A trainable single-stage detector.
pub trait Detector: Module + Sized {
    /// Raw head outputs of a forward pass.
    type Output: Clone;

    /// What this detector is.
    fn spec(&self) -> &DetectorSpec;

    /// Head outputs for preprocessed images `[batch, 3, height, width]`.
    fn forward(&self, images: Tensor<4>) -> Self::Output;

    /// The detection loss of `output` against one target per image, boxes in
    /// input pixels. Locations assigned to a target's negative regions are
    /// background, get no box loss and are never positives.
    fn loss(&self, output: Self::Output, targets: &[TrainingTarget]) -> DetectionLoss;

    /// Per-location predictions `[batch, locations, 4 + classes]`: a box in
    /// input pixels `(x0, y0, x1, y1)` followed by a score per class in `[0, 1]`.
    fn predictions(&self, output: Self::Output) -> Tensor<3>;

    /// Ids of the detection head's parameters (the scope of head-only mixing
    /// and of the history library's per-sample gradients).
    fn head_param_ids(&self) -> Vec<ParamId>;
}

/// The input tensor `[batch, 3, height, width]` for `images`, each stretched to
/// the detector's input size and normalised.
pub fn input_batch(spec: &DetectorSpec, images: &[&Image], device: &Device) -> Tensor<4> {
    let [width, height] = spec.input_size;
    let mut values = Vec::with_capacity(images.len() * 3 * width * height);
    for image in images {
        let resized = image.resized(width, height);
        values.extend(spec.preprocessing.planar(&resized));
    }
    Tensor::from_data(
        TensorData::new(values, [images.len(), 3, height, width]),
        device,
    )
}

/// Candidate detections of one image from its row of predictions
/// (`locations x (4 + classes)` values): every (location, class) pair whose
/// score is at least `floor`, at most `max_candidates`, best first.
pub fn candidates_from_row(
    row: &[f32],
    num_classes: usize,
    floor: f32,
    max_candidates: usize,
) -> Vec<Detection> {
    let mut candidates = Vec::new();
    for location in row.chunks_exact(4 + num_classes) {
        let bbox = BBox::new(location[0], location[1], location[2], location[3]);
        if !bbox.is_valid() {
            continue;
        }
        for (class, &score) in location[4..].iter().enumerate() {
            if score >= floor {
                candidates.push(Detection { bbox, class, score });
            }
        }
    }
    sort_by_score(&mut candidates);
    candidates.truncate(max_candidates);
    candidates
}

/// Splits read-back predictions `[batch, locations, 4 + classes]` into the
/// candidates of each image.
pub fn candidates_from_predictions(
    data: &[f32],
    batch: usize,
    num_classes: usize,
    floor: f32,
    max_candidates: usize,
) -> Vec<Vec<Detection>> {
    if batch == 0 {
        return Vec::new();
    }
    data.chunks_exact(data.len() / batch)
        .map(|row| candidates_from_row(row, num_classes, floor, max_candidates))
        .collect()
}

/// The boxes to show: candidates at or above `score_threshold` after
/// class-aware NMS at `nms_iou`.
pub fn shown_detections(
    candidates: &[Detection],
    score_threshold: f32,
    nms_iou: f32,
) -> Vec<Detection> {
    shown_indices(candidates, score_threshold, nms_iou)
        .into_iter()
        .map(|i| candidates[i])
        .collect()
}

/// [`shown_detections`] as indices into `candidates`, by descending score.
pub fn shown_indices(candidates: &[Detection], score_threshold: f32, nms_iou: f32) -> Vec<usize> {
    let confident: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].score >= score_threshold)
        .collect();
    let kept: Vec<Detection> = confident.iter().map(|&i| candidates[i]).collect();
    nms_indices(&kept, nms_iou)
        .into_iter()
        .map(|k| confident[k])
        .collect()
}

/// Maps a box from detector input pixels to an image of `width` x `height`.
pub fn to_image_pixels(bbox: &BBox, spec: &DetectorSpec, width: usize, height: usize) -> BBox {
    let [iw, ih] = spec.input_size;
    bbox.scale(width as f32 / iw as f32, height as f32 / ih as f32)
        .clip(width as f32, height as f32)
}

/// Maps a box from an image of `width` x `height` to detector input pixels.
pub fn to_input_pixels(bbox: &BBox, spec: &DetectorSpec, width: usize, height: usize) -> BBox {
    let [iw, ih] = spec.input_size;
    bbox.scale(iw as f32 / width as f32, ih as f32 / height as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::LabeledBox;

    /// The classification loss of a target that trains only some classes,
    /// plus that of the same target training the others, is the loss of the
    /// target training every class; training none leaves no classification
    /// loss; the box loss never changes.
    fn classification_splits_over_trained_classes<D: Detector>(model: &D) {
        let device = Device::flex();
        let images =
            Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Default, &device);
        let object = LabeledBox {
            bbox: BBox::new(8.0, 8.0, 40.0, 40.0),
            class: 0,
        };
        let every = TrainingTarget::from_ground_truth(&[object]);
        let only = |classes: Vec<usize>| TrainingTarget {
            trained_classes: Some(classes),
            ..every.clone()
        };
        let value = |target: TrainingTarget| -> (f32, f32) {
            let loss = model.loss(model.forward(images.clone()), &[target]);
            (
                loss.classification.into_scalar(),
                loss.regression.into_scalar(),
            )
        };
        let (all, regression) = value(every.clone());
        let (first, first_regression) = value(only(vec![0]));
        let (second, second_regression) = value(only(vec![1]));
        let (none, _) = value(only(Vec::new()));
        assert!(first > 0.0 && second > 0.0, "{first} {second}");
        assert!(
            (first + second - all).abs() <= 1e-4 * all,
            "{first} + {second} != {all}"
        );
        assert_eq!(none, 0.0);
        assert!(regression > 0.0);
        assert_eq!(
            (first_regression, second_regression),
            (regression, regression)
        );
    }

    #[test]
    fn only_the_trained_classes_have_a_classification_loss() {
        let device = Device::flex();
        let classes = vec!["a".to_string(), "b".to_string()];
        classification_splits_over_trained_classes(
            &fcos::FcosConfig::new(classes.clone())
                .with_input_size(64)
                .with_width(4)
                .init(&device),
        );
        classification_splits_over_trained_classes(
            &nanodet::NanoDetConfig {
                class_names: classes,
                ..nanodet::NanoDetConfig::coco().with_input_size(64)
            }
            .init(&device),
        );
    }

    #[test]
    fn candidates_keep_every_class_above_the_floor_best_first() {
        // Two locations, two classes.
        let row = [
            0.0, 0.0, 10.0, 10.0, 0.6, 0.04, //
            5.0, 5.0, 15.0, 15.0, 0.2, 0.9,
        ];
        let c = candidates_from_row(&row, 2, 0.05, 10);
        let scores: Vec<f32> = c.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.6, 0.2]);
        assert_eq!(c[0].class, 1);
        assert_eq!(candidates_from_row(&row, 2, 0.05, 1).len(), 1);
    }

    #[test]
    fn shown_boxes_are_confident_and_deduplicated() {
        let bbox = BBox::new(0.0, 0.0, 10.0, 10.0);
        let c = [
            Detection {
                bbox,
                class: 0,
                score: 0.9,
            },
            Detection {
                bbox,
                class: 0,
                score: 0.8,
            },
            Detection {
                bbox,
                class: 0,
                score: 0.3,
            },
        ];
        assert_eq!(shown_detections(&c, 0.5, 0.5), vec![c[0]]);
        // As indices: a weaker box of another class is shown after it.
        let other = Detection {
            class: 1,
            score: 0.6,
            ..c[1]
        };
        let with_other = [c[2], other, c[1], c[0]];
        assert_eq!(shown_indices(&with_other, 0.5, 0.5), vec![3, 1]);
    }

    #[test]
    fn bgr_preprocessing_reverses_the_planes_with_their_statistics() {
        let image = Image::filled(2, 1, [0.2, 0.5, 0.9]);
        let bgr = Preprocessing {
            mean: [0.1, 0.2, 0.3],
            std: [0.5, 1.0, 2.0],
            channel_order: ChannelOrder::Bgr,
        };
        let values = bgr.planar(&image);
        let expected = [(0.9 - 0.1) / 0.5, (0.5 - 0.2) / 1.0, (0.2 - 0.3) / 2.0];
        for (c, e) in expected.iter().enumerate() {
            assert!((values[2 * c] - e).abs() < 1e-6 && (values[2 * c + 1] - e).abs() < 1e-6);
        }
        let rgb = Preprocessing {
            channel_order: ChannelOrder::Rgb,
            ..bgr
        };
        assert_eq!(rgb.planar(&image), image.to_planar(rgb.mean, rgb.std));
    }

    #[test]
    fn preprocessing_saved_without_a_channel_order_is_rgb() {
        let old: Preprocessing =
            serde_json::from_str(r#"{"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}"#)
                .unwrap();
        assert_eq!(old.channel_order, ChannelOrder::Rgb);
    }
}
