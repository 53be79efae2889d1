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
    /// The classes the user reviews on this image (the page's target
    /// classes): boxes of other classes were not shown, so these verdicts say
    /// nothing about them. `None`: every class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_classes: Option<Vec<usize>>,
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
            reviewed_classes: None,
        }
    }

    /// The boxes the user vouches for: the confirmed and corrected shown
    /// boxes (the correction where there is one), then the drawn ones.
    pub fn user_labels(&self) -> Vec<LabeledBox> {
        self.shown
            .iter()
            .filter_map(ShownBox::user_label)
            .chain(self.drawn.iter().copied())
            .collect()
    }

    /// Whether every shown box has a judgement.
    pub fn is_reviewed(&self) -> bool {
        self.shown.iter().all(|b| b.judgement.is_some())
    }

    /// The verdicts with every box cut to a `width` x `height` image, after
    /// checking each: a box with a non-finite corner, no area, no part
    /// inside the image, or a class not below `classes` is refused, naming it.
    pub fn fit_to_image(
        &self,
        width: f32,
        height: f32,
        classes: usize,
    ) -> Result<Self, VerdictError> {
        if let Some(&class) = self
            .reviewed_classes
            .iter()
            .flatten()
            .find(|&&c| c >= classes)
        {
            return Err(VerdictError::UnknownReviewedClass { class, classes });
        }
        self.map_boxes(|field, bbox, class| {
            let bbox = *bbox;
            if ![bbox.x0, bbox.y0, bbox.x1, bbox.y1]
                .iter()
                .all(|v| v.is_finite())
            {
                return Err(VerdictError::NotFinite { field, bbox });
            }
            if class >= classes {
                return Err(VerdictError::UnknownClass {
                    field,
                    class,
                    classes,
                });
            }
            if !bbox.is_valid() {
                return Err(VerdictError::EmptyBox { field, bbox });
            }
            let clipped = bbox.clip(width, height);
            if !clipped.is_valid() {
                return Err(VerdictError::OutsideImage {
                    field,
                    bbox,
                    width,
                    height,
                });
            }
            Ok(clipped)
        })
    }

    /// The verdicts with every box's x scaled by `sx` and y by `sy` (moving
    /// between image sizes).
    pub fn scaled(&self, sx: f32, sy: f32) -> Self {
        let Ok(scaled) =
            self.map_boxes(|_, bbox, _| Ok::<_, std::convert::Infallible>(bbox.scale(sx, sy)));
        scaled
    }

    /// The verdicts with each box (shown, correction, drawn) replaced by
    /// `f(field, box, class)`, stopping at the first error.
    fn map_boxes<E>(
        &self,
        mut f: impl FnMut(BoxField, &BBox, usize) -> Result<BBox, E>,
    ) -> Result<Self, E> {
        let mut out = self.clone();
        for (i, shown) in out.shown.iter_mut().enumerate() {
            let detection = &mut shown.detection;
            detection.bbox = f(BoxField::Shown(i), &detection.bbox, detection.class)?;
            if let Some(Judgement::Corrected { label }) = &mut shown.judgement {
                label.bbox = f(BoxField::Correction(i), &label.bbox, label.class)?;
            }
        }
        for (i, drawn) in out.drawn.iter_mut().enumerate() {
            drawn.bbox = f(BoxField::Drawn(i), &drawn.bbox, drawn.class)?;
        }
        Ok(out)
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
    /// What a confirmed box's relabelling candidate gives (default: everything).
    #[serde(default)]
    pub confirmed_label: ConfirmedLabel,
}

/// What the weak candidate that relabels a confirmed or corrected box
/// (METHOD.md section 1, the correct-sample rule) gives its positive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfirmedLabel {
    /// The method: the candidate is the label, its box picks the locations
    /// and is their regression target.
    #[default]
    Candidate,
    /// A measured variant: the candidate's box picks the locations (and the
    /// class target), the user's box is their regression target.
    UserBoxRegression,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            score_threshold: 0.5,
            iou_threshold: 0.5,
            candidate_floor: 0.05,
            confirmed_label: ConfirmedLabel::Candidate,
        }
    }
}

impl ConfirmedLabel {
    /// Both rules, the method's first.
    pub const ALL: [ConfirmedLabel; 2] =
        [ConfirmedLabel::Candidate, ConfirmedLabel::UserBoxRegression];

    /// The rule's name on the command line and in result files.
    pub fn name(&self) -> &'static str {
        match self {
            ConfirmedLabel::Candidate => "candidate",
            ConfirmedLabel::UserBoxRegression => "user-box-regression",
        }
    }
}

/// A name that is not a [`ConfirmedLabel`].
#[derive(Debug, Error, PartialEq)]
#[error("unknown rule for confirmed boxes '{0}': use candidate or user-box-regression")]
pub struct UnknownConfirmedLabel(pub String);

impl std::str::FromStr for ConfirmedLabel {
    type Err = UnknownConfirmedLabel;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ConfirmedLabel::ALL
            .into_iter()
            .find(|rule| rule.name() == name)
            .ok_or_else(|| UnknownConfirmedLabel(name.to_string()))
    }
}

/// One object a training target teaches.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Positive {
    /// Its class, and the box that picks the locations trained on it.
    #[serde(flatten)]
    pub label: LabeledBox,
    /// The box those locations regress to when it is not `label.bbox` (the
    /// user's box under [`ConfirmedLabel::UserBoxRegression`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<BBox>,
}

impl Positive {
    /// The box the detector regresses to.
    pub fn regression_box(&self) -> BBox {
        self.regression.unwrap_or(self.label.bbox)
    }

    /// The positive with both of its boxes mapped by `f`.
    pub fn map_boxes(&self, f: impl Fn(&BBox) -> BBox) -> Self {
        Self {
            label: LabeledBox {
                bbox: f(&self.label.bbox),
                class: self.label.class,
            },
            regression: self.regression.as_ref().map(f),
        }
    }
}

impl From<LabeledBox> for Positive {
    fn from(label: LabeledBox) -> Self {
        Self {
            label,
            regression: None,
        }
    }
}

/// What the detector is trained towards on one image: labelled objects, and
/// regions that must be background (rejected false detections).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingTarget {
    /// Objects to detect.
    pub positives: Vec<Positive>,
    /// Regions where the detector fired wrongly: locations assigned to them are
    /// trained as background, get no box loss and are never positives.
    pub negatives: Vec<BBox>,
    /// The classes whose scores this target trains: the reviewed classes and
    /// those of the positives. Other classes' scores get no loss on this
    /// image, so what the model knows of them is kept. `None`: every class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_classes: Option<Vec<usize>>,
}

impl TrainingTarget {
    /// A target made of ground-truth objects only.
    pub fn from_ground_truth(boxes: &[LabeledBox]) -> Self {
        Self {
            positives: boxes.iter().copied().map(Positive::from).collect(),
            negatives: Vec::new(),
            trained_classes: None,
        }
    }

    /// Whether the image only teaches what is not an object: shown boxes all
    /// rejected, nothing confirmed or drawn.
    pub fn is_pure_negative(&self) -> bool {
        self.positives.is_empty() && !self.negatives.is_empty()
    }

    /// Per class of a `classes`-class detector, 1 when this target trains its
    /// score and 0 when it leaves it alone (see `trained_classes`).
    pub fn class_weights(&self, classes: usize) -> Vec<f32> {
        match &self.trained_classes {
            None => vec![1.0; classes],
            Some(trained) => (0..classes)
                .map(|c| if trained.contains(&c) { 1.0 } else { 0.0 })
                .collect(),
        }
    }

    /// The distinct classes of the positives, ascending.
    pub fn classes(&self) -> Vec<usize> {
        let mut classes: Vec<usize> = self.positives.iter().map(|p| p.label.class).collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    }
}

/// Where a box sits in an image's verdicts, named as its field in a
/// verdicts file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxField {
    /// `shown[i].detection.bbox`: a box the model showed.
    Shown(usize),
    /// `shown[i].judgement.label.bbox`: the user's correction of a shown box.
    Correction(usize),
    /// `drawn[i].bbox`: a box the user drew.
    Drawn(usize),
}

impl std::fmt::Display for BoxField {
    /// The field's path in a verdicts file, e.g. `drawn[2].bbox`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shown(i) => write!(f, "shown[{i}].detection.bbox"),
            Self::Correction(i) => write!(f, "shown[{i}].judgement.label.bbox"),
            Self::Drawn(i) => write!(f, "drawn[{i}].bbox"),
        }
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
    /// A box has no area (zero width or height, or inverted corners).
    #[error(
        "the box `{field}` {bbox} has no area: draw it again with a width and height above zero"
    )]
    EmptyBox {
        /// Which box.
        field: BoxField,
        /// The offending box.
        bbox: BBox,
    },
    /// A box has a corner that is not a finite number.
    #[error(
        "the box `{field}` {bbox} has a corner that is not a finite number: give x0, y0, x1, y1 as pixel positions"
    )]
    NotFinite {
        /// Which box.
        field: BoxField,
        /// The offending box.
        bbox: BBox,
    },
    /// A box lies entirely outside its image.
    #[error(
        "the box `{field}` {bbox} lies outside the {width}x{height} image: draw it again inside the image or remove it"
    )]
    OutsideImage {
        /// Which box.
        field: BoxField,
        /// The offending box.
        bbox: BBox,
        /// Image width in pixels.
        width: f32,
        /// Image height in pixels.
        height: f32,
    },
    /// The reviewed classes name a class the detector does not have.
    #[error(
        "the reviewed classes include class {class}, but the model has {classes} classes, numbered from 0: choose the target classes among the model's"
    )]
    UnknownReviewedClass {
        /// The class given.
        class: usize,
        /// How many classes the detector has.
        classes: usize,
    },
    /// A box names a class the detector does not have.
    #[error(
        "the box `{field}` has class {class}, but the model has {classes} classes, numbered from 0: use one of the model's classes"
    )]
    UnknownClass {
        /// Which box.
        field: BoxField,
        /// The class given.
        class: usize,
        /// How many classes the detector has.
        classes: usize,
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
        let (field, user) = match judgement {
            Judgement::Rejected => {
                target.negatives.push(shown.detection.bbox);
                continue;
            }
            Judgement::Confirmed => (BoxField::Shown(index), shown.detection.labeled()),
            Judgement::Corrected { label } => (BoxField::Correction(index), label),
        };
        check_user_box(field, &user.bbox)?;
        target
            .positives
            .push(relabel_confirmed(user, candidates, config));
    }
    for (index, drawn) in verdicts.drawn.iter().enumerate() {
        check_user_box(BoxField::Drawn(index), &drawn.bbox)?;
        target.positives.push(Positive::from(*drawn));
    }
    target.trained_classes = verdicts.reviewed_classes.as_ref().map(|reviewed| {
        let mut trained: Vec<usize> = reviewed.iter().copied().chain(target.classes()).collect();
        trained.sort_unstable();
        trained.dedup();
        trained
    });
    Ok(target)
}

fn check_user_box(field: BoxField, bbox: &BBox) -> Result<(), VerdictError> {
    if bbox.is_valid() {
        Ok(())
    } else {
        Err(VerdictError::EmptyBox { field, bbox: *bbox })
    }
}

/// The correct-sample rule: the weak evidence the model already has for this
/// object becomes the label (or, under [`ConfirmedLabel::UserBoxRegression`],
/// picks the locations that regress to the user's box).
fn relabel_confirmed(
    user: LabeledBox,
    candidates: &[Detection],
    config: &TargetConfig,
) -> Positive {
    candidates
        .iter()
        .filter(|c| c.score >= config.candidate_floor && c.score < config.score_threshold)
        .filter(|c| c.bbox.iou(&user.bbox) > config.iou_threshold)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .map_or(Positive::from(user), |best| Positive {
            label: LabeledBox {
                bbox: best.bbox,
                class: user.class,
            },
            regression: match config.confirmed_label {
                ConfirmedLabel::Candidate => None,
                ConfirmedLabel::UserBoxRegression => Some(user.bbox),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn det(x0: f32, y0: f32, x1: f32, y1: f32, class: usize, score: f32) -> Detection {
        Detection {
            bbox: BBox::new(x0, y0, x1, y1),
            class,
            score,
        }
    }

    fn labels(target: &TrainingTarget) -> Vec<LabeledBox> {
        target.positives.iter().map(|p| p.label).collect()
    }

    fn judged(detection: Detection, judgement: Judgement) -> ShownBox {
        ShownBox {
            detection,
            judgement: Some(judgement),
        }
    }

    fn verdicts(shown: Vec<ShownBox>, drawn: Vec<LabeledBox>) -> ImageVerdicts {
        ImageVerdicts {
            shown,
            drawn,
            reviewed_classes: None,
        }
    }

    #[test]
    fn the_user_labels_are_the_confirmed_the_corrections_and_the_drawn_boxes() {
        let confirmed = det(0.0, 0.0, 10.0, 10.0, 1, 0.9);
        let corrected = det(20.0, 0.0, 30.0, 10.0, 1, 0.8);
        let correction = LabeledBox {
            bbox: BBox::new(21.0, 1.0, 31.0, 11.0),
            class: 2,
        };
        let rejected = det(40.0, 0.0, 50.0, 10.0, 0, 0.7);
        let drawn = LabeledBox {
            bbox: BBox::new(60.0, 0.0, 70.0, 10.0),
            class: 0,
        };
        let v = verdicts(
            vec![
                judged(confirmed, Judgement::Confirmed),
                judged(corrected, Judgement::Corrected { label: correction }),
                judged(rejected, Judgement::Rejected),
                ShownBox::unjudged(det(80.0, 0.0, 90.0, 10.0, 0, 0.6)),
            ],
            vec![drawn],
        );
        assert_eq!(
            v.user_labels(),
            vec![confirmed.labeled(), correction, drawn]
        );
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
            labels(&target),
            vec![LabeledBox {
                bbox: BBox::new(11.0, 11.0, 51.0, 51.0),
                class: 3
            }]
        );
        assert!(target.negatives.is_empty());
    }

    #[test]
    fn under_the_user_box_variant_the_candidate_picks_locations_and_the_user_box_is_regressed() {
        let shown = det(10.0, 10.0, 50.0, 50.0, 3, 0.9);
        let weak = det(11.0, 11.0, 51.0, 51.0, 3, 0.45);
        let drawn = LabeledBox {
            bbox: BBox::new(60.0, 60.0, 80.0, 80.0),
            class: 2,
        };
        let v = verdicts(vec![judged(shown, Judgement::Confirmed)], vec![drawn]);
        let config = TargetConfig {
            confirmed_label: ConfirmedLabel::UserBoxRegression,
            ..TargetConfig::default()
        };
        let target = build_target(&v, &[shown, weak], &config).unwrap();
        assert_eq!(
            target.positives,
            vec![
                Positive {
                    label: weak.labeled(),
                    regression: Some(shown.bbox),
                },
                Positive::from(drawn),
            ]
        );
        assert_eq!(target.positives[0].regression_box(), shown.bbox);
        assert_eq!(target.positives[1].regression_box(), drawn.bbox);
        // The method's rule regresses to the candidate.
        let method = build_target(&v, &[shown, weak], &TargetConfig::default()).unwrap();
        assert_eq!(method.positives[0].regression_box(), weak.bbox);
        // Without a candidate both rules label the user's box alone.
        let alone = build_target(&v, &[shown], &config).unwrap();
        assert_eq!(alone.positives[0], Positive::from(shown.labeled()));
    }

    #[test]
    fn confirmed_label_rules_go_by_their_names() {
        for rule in ConfirmedLabel::ALL {
            assert_eq!(rule.name().parse(), Ok(rule));
            assert_eq!(
                serde_json::to_string(&rule).unwrap(),
                format!("\"{}\"", rule.name())
            );
        }
        assert!("user-box".parse::<ConfirmedLabel>().is_err());
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
        assert_eq!(labels(&target), vec![shown.labeled()]);
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
            labels(&target),
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
        assert_eq!(labels(&target), vec![drawn]);
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
        assert_eq!(labels(&target), vec![good.labeled()]);
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
        assert!(err.to_string().contains("`drawn[0].bbox`"), "{err}");
    }

    #[test]
    fn fitting_to_the_image_cuts_boxes_over_the_edge() {
        let v = verdicts(
            vec![judged(
                det(-5.0, 10.0, 30.0, 70.0, 1, 0.9),
                Judgement::Corrected {
                    label: LabeledBox {
                        bbox: BBox::new(50.0, 50.0, 90.0, 60.0),
                        class: 0,
                    },
                },
            )],
            vec![],
        );
        let fitted = v.fit_to_image(64.0, 64.0, 2).unwrap();
        assert_eq!(
            fitted.shown[0].detection.bbox,
            BBox::new(0.0, 10.0, 30.0, 64.0)
        );
        assert_eq!(
            fitted.shown[0].user_label().unwrap().bbox,
            BBox::new(50.0, 50.0, 64.0, 60.0)
        );
        assert_eq!(fitted.fit_to_image(64.0, 64.0, 2).unwrap(), fitted);
        let halved = fitted.scaled(0.5, 0.25);
        assert_eq!(
            halved.shown[0].detection.bbox,
            BBox::new(0.0, 2.5, 15.0, 16.0)
        );
    }

    #[test]
    fn fitting_to_the_image_refuses_bad_boxes_naming_their_field() {
        let drawn = |bbox: BBox, class: usize| verdicts(vec![], vec![LabeledBox { bbox, class }]);
        let cases = [
            (
                drawn(BBox::new(70.0, 0.0, 80.0, 10.0), 0),
                "`drawn[0].bbox` [70, 0, 80, 10] lies outside the 64x64 image",
            ),
            (
                drawn(BBox::new(f32::NAN, 0.0, 8.0, 10.0), 0),
                "`drawn[0].bbox` [NaN, 0, 8, 10] has a corner that is not a finite number",
            ),
            (
                drawn(BBox::new(9.0, 0.0, 8.0, 10.0), 0),
                "`drawn[0].bbox` [9, 0, 8, 10] has no area",
            ),
            (
                drawn(BBox::new(0.0, 0.0, 8.0, 10.0), 2),
                "`drawn[0].bbox` has class 2, but the model has 2 classes",
            ),
            (
                verdicts(
                    vec![judged(
                        det(100.0, 100.0, 110.0, 110.0, 0, 0.7),
                        Judgement::Rejected,
                    )],
                    vec![],
                ),
                "`shown[0].detection.bbox` [100, 100, 110, 110] lies outside",
            ),
        ];
        for (v, expected) in cases {
            let err = v.fit_to_image(64.0, 64.0, 2).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let reviewing_unknown = ImageVerdicts {
            reviewed_classes: Some(vec![0, 5]),
            ..drawn(BBox::new(0.0, 0.0, 8.0, 10.0), 0)
        };
        let err = reviewing_unknown
            .fit_to_image(64.0, 64.0, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the reviewed classes include class 5, but the model has 2 classes"),
            "{err}"
        );
    }

    #[test]
    fn reviewed_classes_and_the_classes_of_the_labels_are_the_trained_ones() {
        let mut v = verdicts(
            vec![judged(
                det(10.0, 10.0, 50.0, 50.0, 2, 0.9),
                Judgement::Rejected,
            )],
            vec![LabeledBox {
                bbox: BBox::new(60.0, 60.0, 90.0, 90.0),
                class: 7,
            }],
        );
        let every = build_target(&v, &[], &TargetConfig::default()).unwrap();
        assert_eq!(every.trained_classes, None);
        assert_eq!(every.class_weights(3), vec![1.0; 3]);

        v.reviewed_classes = Some(vec![2, 0]);
        let target = build_target(&v, &[], &TargetConfig::default()).unwrap();
        // The drawn box's class 7 is trained too: the user vouched for it.
        assert_eq!(target.trained_classes, Some(vec![0, 2, 7]));
        let weights = target.class_weights(8);
        assert_eq!(weights, vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    }

    fn bbox() -> impl Strategy<Value = BBox> {
        (0f32..100.0, 0f32..100.0, 1f32..40.0, 1f32..40.0)
            .prop_map(|(x, y, w, h)| BBox::from_xywh(x, y, w, h))
    }

    fn detection() -> impl Strategy<Value = Detection> {
        (bbox(), 0usize..3, 0f32..1.0).prop_map(|(bbox, class, score)| Detection {
            bbox,
            class,
            score,
        })
    }

    fn labeled() -> impl Strategy<Value = LabeledBox> {
        (bbox(), 0usize..3).prop_map(|(bbox, class)| LabeledBox { bbox, class })
    }

    fn judgement() -> impl Strategy<Value = Judgement> {
        prop_oneof![
            Just(Judgement::Confirmed),
            Just(Judgement::Rejected),
            labeled().prop_map(|label| Judgement::Corrected { label }),
        ]
    }

    fn reviewed() -> impl Strategy<Value = ImageVerdicts> {
        (
            proptest::collection::vec((detection(), judgement()), 0..6),
            proptest::collection::vec(labeled(), 0..4),
        )
            .prop_map(|(shown, drawn)| ImageVerdicts {
                shown: shown.into_iter().map(|(d, j)| judged(d, j)).collect(),
                drawn,
                reviewed_classes: None,
            })
    }

    /// The user boxes of `v` (confirmed, corrected, drawn), in target order.
    fn user_boxes(v: &ImageVerdicts) -> Vec<LabeledBox> {
        v.shown
            .iter()
            .filter_map(ShownBox::user_label)
            .chain(v.drawn.iter().copied())
            .collect()
    }

    proptest! {
        #[test]
        fn every_positive_comes_from_a_box_the_user_vouched_for(
            v in reviewed(),
            candidates in proptest::collection::vec(detection(), 0..12),
        ) {
            let config = TargetConfig::default();
            let target = build_target(&v, &candidates, &config).unwrap();
            let users = user_boxes(&v);
            prop_assert_eq!(target.positives.len(), users.len());
            for (positive, user) in target.positives.iter().zip(&users) {
                prop_assert_eq!(positive.label.class, user.class);
                let weak_match = candidates.iter().any(|c| {
                    c.bbox == positive.label.bbox
                        && c.score >= config.candidate_floor
                        && c.score < config.score_threshold
                        && c.bbox.iou(&user.bbox) > config.iou_threshold
                });
                prop_assert!(positive.label.bbox == user.bbox || weak_match);
            }
        }

        #[test]
        fn drawn_boxes_are_kept_exactly_and_rejected_boxes_become_only_negatives(
            v in reviewed(),
            candidates in proptest::collection::vec(detection(), 0..12),
        ) {
            let target = build_target(&v, &candidates, &TargetConfig::default()).unwrap();
            let rejected: Vec<BBox> = v
                .shown
                .iter()
                .filter(|s| s.judgement == Some(Judgement::Rejected))
                .map(|s| s.detection.bbox)
                .collect();
            prop_assert_eq!(&target.negatives, &rejected);
            let drawn_start = target.positives.len() - v.drawn.len();
            prop_assert_eq!(&labels(&target)[drawn_start..], v.drawn.as_slice());
        }

        #[test]
        fn rejecting_a_box_removes_its_positive_and_adds_one_negative(
            v in reviewed(),
            candidates in proptest::collection::vec(detection(), 0..12),
            pick in any::<proptest::sample::Index>(),
        ) {
            prop_assume!(!v.shown.is_empty());
            let index = pick.index(v.shown.len());
            prop_assume!(v.shown[index].judgement != Some(Judgement::Rejected));
            let config = TargetConfig::default();
            let before = build_target(&v, &candidates, &config).unwrap();
            let mut rejecting = v.clone();
            rejecting.shown[index].judgement = Some(Judgement::Rejected);
            let after = build_target(&rejecting, &candidates, &config).unwrap();
            prop_assert_eq!(after.positives.len() + 1, before.positives.len());
            prop_assert_eq!(after.negatives.len(), before.negatives.len() + 1);
            prop_assert!(after.negatives.contains(&v.shown[index].detection.bbox));
        }

        #[test]
        fn build_target_is_deterministic(
            v in reviewed(),
            candidates in proptest::collection::vec(detection(), 0..12),
        ) {
            let config = TargetConfig::default();
            prop_assert_eq!(
                build_target(&v, &candidates, &config),
                build_target(&v.clone(), &candidates.clone(), &config)
            );
        }

        #[test]
        fn fitted_boxes_lie_inside_the_image_and_fitting_again_changes_nothing(
            v in reviewed(),
            width in 1f32..120.0,
            height in 1f32..120.0,
        ) {
            if let Ok(fitted) = v.fit_to_image(width, height, 3) {
                let inside = |b: &BBox| b.is_valid() && b.x0 >= 0.0 && b.y0 >= 0.0
                    && b.x1 <= width && b.y1 <= height;
                prop_assert!(fitted.shown.iter().all(|s| inside(&s.detection.bbox)));
                prop_assert!(user_boxes(&fitted).iter().all(|u| inside(&u.bbox)));
                prop_assert_eq!(fitted.fit_to_image(width, height, 3), Ok(fitted.clone()));
                prop_assert!(build_target(&fitted, &[], &TargetConfig::default()).is_ok());
            }
        }
    }
}
