//! Training samples: an image at the detector's input size and its target in
//! input pixels (a transfer sample, or a history sample kept for replay).

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::detector::{DetectorSpec, input_batch, to_input_pixels};
use crate::geometry::{BBox, LabeledBox};
use crate::image::Image;
use crate::verdict::TrainingTarget;

/// An image ready for the detector and what it should learn from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The image stretched to the detector's input size.
    pub image: Image,
    /// The target with boxes in input pixels.
    pub target: TrainingTarget,
}

impl Sample {
    /// A sample from an image of any size and a target in that image's pixels.
    pub fn new(image: &Image, target: &TrainingTarget, spec: &DetectorSpec) -> Self {
        let (w, h) = (image.width(), image.height());
        let [iw, ih] = spec.input_size;
        let to_input = |b: &BBox| to_input_pixels(b, spec, w, h);
        Self {
            image: image.resized(iw, ih),
            target: TrainingTarget {
                positives: target
                    .positives
                    .iter()
                    .map(|p| p.map_boxes(to_input))
                    .collect(),
                negatives: target.negatives.iter().map(to_input).collect(),
                trained_classes: target.trained_classes.clone(),
            },
        }
    }

    /// A sample whose target is the image's ground truth (history samples,
    /// simulated users).
    pub fn from_ground_truth(image: &Image, boxes: &[LabeledBox], spec: &DetectorSpec) -> Self {
        Self::new(image, &TrainingTarget::from_ground_truth(boxes), spec)
    }

    /// The boxes its target labels, in input pixels.
    pub fn labels(&self) -> Vec<LabeledBox> {
        self.target.positives.iter().map(|p| p.label).collect()
    }
}

/// The input tensor and the targets of a batch of samples.
pub fn batch(
    spec: &DetectorSpec,
    samples: &[&Sample],
    device: &Device,
) -> (Tensor<4>, Vec<TrainingTarget>) {
    let images: Vec<&Image> = samples.iter().map(|s| &s.image).collect();
    let targets = samples.iter().map(|s| s.target.clone()).collect();
    (input_batch(spec, &images, device), targets)
}
