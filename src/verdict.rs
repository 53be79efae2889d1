//! Verdicts: what the user says about the boxes shown on one image, the image's
//! category, and the training target built from them (METHOD.md section 1).
//! No tensors here.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::geometry::{BBox, Detection, LabeledBox};

/// The user's judgement of one shown box.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Judgement {
    /// Right object, right place, right class.
    Confirmed,
    /// Not a target object: a false detection.
    Rejected,
    /// The right object, with the box moved, resized or reclassified by the user.
    Corrected {
        /// The user's box and class.
        label: LabeledBox,
    },
}

/// A box the meta-model showed (score at or above the display threshold) and
/// the user's judgement of it, `None` while not yet judged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShownBox {
    /// The prediction as shown.
    pub detection: Detection,
    /// The user's judgement.
    pub judgement: Option<Judgement>,
}

impl ShownBox {
    /// A shown box not judged yet.
    pub fn unjudged(detection: Detection) -> Self {
        Self {
            detection,
            judgement: None,
        }
    }

    /// The box and class the user vouches for: the correction if any, else the
    /// shown box. `None` unless confirmed or corrected.
    pub fn user_label(&self) -> Option<LabeledBox> {
        match self.judgement? {
            Judgement::Confirmed => Some(self.detection.labeled()),
            Judgement::Corrected { label } => Some(label),
            Judgement::Rejected => None,
        }
    }
}

/// Everything the user said about one image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageVerdicts {
    /// The boxes shown to the user, each with its judgement.
    pub shown: Vec<ShownBox>,
    /// Objects the model did not show, drawn by the user (missed detections).
    pub drawn: Vec<LabeledBox>,
}

/// The kind of sample an image is, for statistics and sampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Every shown box confirmed (or corrected), nothing rejected, nothing drawn.
    Correct,
    /// At least one object drawn by the user.
    MissedDetection,
    /// At least one shown box rejected.
    FalseDetection,
}

impl ImageVerdicts {
    /// Verdicts for an image whose predictions were just shown, none judged yet.
    pub fn new(shown: impl IntoIterator<Item = Detection>) -> Self {
        Self {
            shown: shown.into_iter().map(ShownBox::unjudged).collect(),
            drawn: Vec::new(),
        }
    }

    /// Whether every shown box has a judgement.
    pub fn is_reviewed(&self) -> bool {
        self.shown.iter().all(|b| b.judgement.is_some())
    }

    /// The categories of this image: missed-detection and false-detection can
    /// both apply; correct applies alone. Empty while not fully reviewed.
    pub fn categories(&self) -> Vec<Category> {
        if !self.is_reviewed() {
            return Vec::new();
        }
        let mut categories = Vec::new();
        if !self.drawn.is_empty() {
            categories.push(Category::MissedDetection);
        }
        if self
            .shown
            .iter()
            .any(|b| b.judgement == Some(Judgement::Rejected))
        {
            categories.push(Category::FalseDetection);
        }
        if categories.is_empty() {
            categories.push(Category::Correct);
        }
        categories
    }
}

/// The thresholds of METHOD.md section 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetConfig {
    /// Predictions at or above this score are shown to the user (default 0.5).
    pub score_threshold: f32,
    /// A below-threshold candidate relabels a confirmed box when their IoU is
    /// above this (default 0.5).
    pub iou_threshold: f32,
    /// Candidates below this score are not considered (default 0.05).
    pub candidate_floor: f32,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            score_threshold: 0.5,
            iou_threshold: 0.5,
            candidate_floor: 0.05,
        }
    }
}

/// What the detector is trained towards on one image: labelled objects, and
/// regions that must be background (rejected false detections).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingTarget {
    /// Objects to detect.
    pub positives: Vec<LabeledBox>,
    /// Regions where the detector fired wrongly: locations assigned to them are
    /// trained as background, get no box loss and are never positives.
    pub negatives: Vec<BBox>,
}

impl TrainingTarget {
    /// A target made of ground-truth objects only.
    pub fn from_ground_truth(boxes: &[LabeledBox]) -> Self {
        Self {
            positives: boxes.to_vec(),
            negatives: Vec::new(),
        }
    }

    /// Whether the image only teaches what is not an object: shown boxes all
    /// rejected, nothing confirmed or drawn.
    pub fn is_pure_negative(&self) -> bool {
        self.positives.is_empty() && !self.negatives.is_empty()
    }

    /// The distinct classes of the positives, ascending.
    pub fn classes(&self) -> Vec<usize> {
        let mut classes: Vec<usize> = self.positives.iter().map(|p| p.class).collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    }
}

/// Why a target cannot be built from an image's verdicts.
#[derive(Debug, Error, PartialEq)]
pub enum VerdictError {
    /// A shown box has no judgement yet.
    #[error(
        "shown box {index} has no verdict yet: confirm, reject or correct every shown box before training on this image"
    )]
    Unjudged {
        /// Index of the box among the shown boxes.
        index: usize,
    },
    /// A user box (drawn or corrected) has no area or non-finite corners.
    #[error(
        "the box drawn or corrected by the user ({bbox:?}) has no area: draw it again with a width and height above zero"
    )]
    EmptyBox {
        /// The offending box.
        bbox: BBox,
    },
}

/// Builds the training target of one image from its verdicts, box by box
/// (METHOD.md section 1).
///
/// `candidates` are the meta-model's candidate boxes on this image before NMS
/// (any score; only those in `[candidate_floor, score_threshold)` are used).
/// - a confirmed or corrected box is labelled with the most confident
///   below-threshold candidate whose IoU with the user's box is above
///   `iou_threshold` (class-agnostic match; the label keeps the user's class),
///   or with the user's box when there is none;
/// - a drawn box is its own label;
/// - a rejected box becomes a negative region.
pub fn build_target(
    verdicts: &ImageVerdicts,
    candidates: &[Detection],
    config: &TargetConfig,
) -> Result<TrainingTarget, VerdictError> {
    let mut target = TrainingTarget::default();
    for (index, shown) in verdicts.shown.iter().enumerate() {
        let judgement = shown.judgement.ok_or(VerdictError::Unjudged { index })?;
        match (judgement, shown.user_label()) {
            (Judgement::Rejected, _) => target.negatives.push(shown.detection.bbox),
            (_, Some(user)) => {
                check_user_box(&user.bbox)?;
                target
                    .positives
                    .push(relabel_confirmed(user, candidates, config));
            }
            (_, None) => unreachable!("confirmed and corrected boxes always have a user label"),
        }
    }
    for drawn in &verdicts.drawn {
        check_user_box(&drawn.bbox)?;
        target.positives.push(*drawn);
    }
    Ok(target)
}

fn check_user_box(bbox: &BBox) -> Result<(), VerdictError> {
    if bbox.is_valid() {
        Ok(())
    } else {
        Err(VerdictError::EmptyBox { bbox: *bbox })
    }
}

/// The correct-sample rule: the weak evidence the model already has for this
/// object becomes the label.
fn relabel_confirmed(
    user: LabeledBox,
    candidates: &[Detection],
    config: &TargetConfig,
) -> LabeledBox {
    candidates
        .iter()
        .filter(|c| c.score >= config.candidate_floor && c.score < config.score_threshold)
        .filter(|c| c.bbox.iou(&user.bbox) > config.iou_threshold)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .map_or(user, |best| LabeledBox {
            bbox: best.bbox,
            class: user.class,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x0: f32, y0: f32, x1: f32, y1: f32, class: usize, score: f32) -> Detection {
        Detection {
            bbox: BBox::new(x0, y0, x1, y1),
            class,
            score,
        }
    }

    fn judged(detection: Detection, judgement: Judgement) -> ShownBox {
        ShownBox {
            detection,
            judgement: Some(judgement),
        }
    }

    fn verdicts(shown: Vec<ShownBox>, drawn: Vec<LabeledBox>) -> ImageVerdicts {
        ImageVerdicts { shown, drawn }
    }

    #[test]
    fn confirmed_box_is_relabelled_by_the_most_confident_weak_candidate() {
        let shown = det(10.0, 10.0, 50.0, 50.0, 3, 0.9);
        let candidates = [
            shown,
            det(12.0, 10.0, 52.0, 50.0, 3, 0.30),
            det(11.0, 11.0, 51.0, 51.0, 3, 0.45),
            det(10.0, 12.0, 50.0, 52.0, 3, 0.02),
        ];
        let v = verdicts(vec![judged(shown, Judgement::Confirmed)], vec![]);
        let target = build_target(&v, &candidates, &TargetConfig::default()).unwrap();
        assert_eq!(
            target.positives,
            vec![LabeledBox {
                bbox: BBox::new(11.0, 11.0, 51.0, 51.0),
                class: 3
            }]
        );
        assert!(target.negatives.is_empty());
    }

    #[test]
    fn confirmed_box_without_overlapping_candidate_keeps_the_user_box() {
        let shown = det(10.0, 10.0, 50.0, 50.0, 1, 0.8);
        // Overlaps at IoU exactly 0.5 (not above), and a far-away weak box.
        let candidates = [
            det(10.0, 10.0, 50.0, 30.0, 1, 0.4),
            det(100.0, 100.0, 140.0, 140.0, 1, 0.4),
        ];
        assert_eq!(candidates[0].bbox.iou(&shown.bbox), 0.5);
        let v = verdicts(vec![judged(shown, Judgement::Confirmed)], vec![]);
        let target = build_target(&v, &candidates, &TargetConfig::default()).unwrap();
        assert_eq!(target.positives, vec![shown.labeled()]);
    }

    #[test]
    fn corrected_box_is_matched_against_the_users_box_and_keeps_the_users_class() {
        let shown = det(0.0, 0.0, 20.0, 20.0, 2, 0.7);
        let corrected = LabeledBox {
            bbox: BBox::new(40.0, 40.0, 80.0, 80.0),
            class: 5,
        };
        let candidates = [
            det(1.0, 1.0, 21.0, 21.0, 2, 0.4),
            det(41.0, 40.0, 81.0, 80.0, 7, 0.2),
        ];
        let v = verdicts(
            vec![judged(shown, Judgement::Corrected { label: corrected })],
            vec![],
        );
        let target = build_target(&v, &candidates, &TargetConfig::default()).unwrap();
        assert_eq!(
            target.positives,
            vec![LabeledBox {
                bbox: BBox::new(41.0, 40.0, 81.0, 80.0),
                class: 5
            }]
        );
    }

    #[test]
    fn drawn_box_is_its_own_label() {
        let drawn = LabeledBox {
            bbox: BBox::new(5.0, 5.0, 25.0, 30.0),
            class: 4,
        };
        // A weak candidate on the drawn object does not replace it.
        let candidates = [det(5.0, 5.0, 25.0, 31.0, 4, 0.3)];
        let v = verdicts(vec![], vec![drawn]);
        let target = build_target(&v, &candidates, &TargetConfig::default()).unwrap();
        assert_eq!(target.positives, vec![drawn]);
        assert_eq!(v.categories(), vec![Category::MissedDetection]);
    }

    #[test]
    fn rejected_box_becomes_a_negative_region() {
        let good = det(0.0, 0.0, 20.0, 20.0, 0, 0.9);
        let bad = det(50.0, 50.0, 70.0, 70.0, 8, 0.6);
        let v = verdicts(
            vec![
                judged(good, Judgement::Confirmed),
                judged(bad, Judgement::Rejected),
            ],
            vec![],
        );
        let target = build_target(&v, &[], &TargetConfig::default()).unwrap();
        assert_eq!(target.positives, vec![good.labeled()]);
        assert_eq!(target.negatives, vec![bad.bbox]);
        assert!(!target.is_pure_negative());
        assert_eq!(v.categories(), vec![Category::FalseDetection]);
    }

    #[test]
    fn image_with_only_rejections_is_a_pure_negative() {
        let v = verdicts(
            vec![
                judged(det(0.0, 0.0, 10.0, 10.0, 1, 0.6), Judgement::Rejected),
                judged(det(30.0, 0.0, 40.0, 10.0, 2, 0.7), Judgement::Rejected),
            ],
            vec![],
        );
        let target = build_target(&v, &[], &TargetConfig::default()).unwrap();
        assert!(target.is_pure_negative());
        assert_eq!(target.negatives.len(), 2);
    }

    #[test]
    fn categories_follow_the_verdicts() {
        let d = det(0.0, 0.0, 10.0, 10.0, 1, 0.6);
        let correct = verdicts(vec![judged(d, Judgement::Confirmed)], vec![]);
        assert_eq!(correct.categories(), vec![Category::Correct]);
        let both = verdicts(vec![judged(d, Judgement::Rejected)], vec![d.labeled()]);
        assert_eq!(
            both.categories(),
            vec![Category::MissedDetection, Category::FalseDetection]
        );
        let pending = ImageVerdicts::new([d]);
        assert!(!pending.is_reviewed());
        assert!(pending.categories().is_empty());
    }

    #[test]
    fn unjudged_or_empty_boxes_are_refused_with_a_reason() {
        let d = det(0.0, 0.0, 10.0, 10.0, 1, 0.6);
        let pending = ImageVerdicts::new([d, d]);
        assert_eq!(
            build_target(&pending, &[], &TargetConfig::default()),
            Err(VerdictError::Unjudged { index: 0 })
        );
        let flat = LabeledBox {
            bbox: BBox::new(5.0, 5.0, 5.0, 9.0),
            class: 0,
        };
        let err =
            build_target(&verdicts(vec![], vec![flat]), &[], &TargetConfig::default()).unwrap_err();
        assert!(err.to_string().contains("no area"));
    }
}
