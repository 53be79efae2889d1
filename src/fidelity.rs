//! Verdict fidelity: whether a model, after training, shows what the user said
//! on the images they reviewed (each verdict honored or not), and how many of
//! the history library's boxes it still shows (history agreement). The one
//! rule behind the page's "verdicts honored" line, `veritune finetune`'s
//! report and the benchmark's fidelity columns. No tensors here.

use serde::{Deserialize, Serialize};

use crate::geometry::{Detection, LabeledBox};
use crate::verdict::{ImageVerdicts, Judgement};

/// When a prediction counts as showing a box.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FidelityConfig {
    /// The display threshold: predictions scoring at least this are shown.
    pub score_threshold: f32,
    /// A shown prediction of the same class with at least this IoU shows a box.
    pub iou_threshold: f32,
}

impl Default for FidelityConfig {
    /// METHOD.md's display threshold (0.5) and IoU 0.5.
    fn default() -> Self {
        Self {
            score_threshold: 0.5,
            iou_threshold: 0.5,
        }
    }
}

impl FidelityConfig {
    /// Whether one of `predictions` is shown (score at or above the threshold)
    /// with `label`'s class and overlaps it by at least the IoU threshold.
    pub fn shows(&self, predictions: &[Detection], label: &LabeledBox) -> bool {
        predictions.iter().any(|p| {
            p.score >= self.score_threshold
                && p.class == label.class
                && p.bbox.iou(&label.bbox) >= self.iou_threshold
        })
    }
}

/// What a verdict asked of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Asked {
    /// A confirmed box: keep showing it.
    Confirmed,
    /// A corrected box: show the user's box and class.
    Corrected,
    /// A rejected box: stop showing it.
    Rejected,
    /// A drawn box: show the object it missed.
    Drawn,
}

/// One verdict and whether the predictions honor it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictCheck {
    /// What the verdict asked.
    pub asked: Asked,
    /// Its index among the image's shown boxes (confirmed, corrected,
    /// rejected) or drawn boxes (drawn).
    pub index: usize,
    /// The box in question: the user's box, or the rejected prediction's.
    pub label: LabeledBox,
    /// Whether the predictions do what the verdict asked.
    pub honored: bool,
}

/// Checks every verdict of one image against `predictions` (the model's
/// detections on the same image after training, after NMS): a confirmed or
/// corrected box is honored while a shown prediction of its class overlaps
/// the user's box, a rejected box while none overlaps it, a drawn box once one
/// overlaps it. Unjudged boxes are no verdicts and are left out.
pub fn check_image(
    verdicts: &ImageVerdicts,
    predictions: &[Detection],
    config: &FidelityConfig,
) -> Vec<VerdictCheck> {
    let judged = verdicts
        .shown
        .iter()
        .enumerate()
        .filter_map(|(index, shown)| {
            let (asked, label, wanted) = match shown.judgement? {
                Judgement::Confirmed => (Asked::Confirmed, shown.detection.labeled(), true),
                Judgement::Corrected { label } => (Asked::Corrected, label, true),
                Judgement::Rejected => (Asked::Rejected, shown.detection.labeled(), false),
            };
            Some((asked, index, label, wanted))
        });
    let drawn = verdicts
        .drawn
        .iter()
        .enumerate()
        .map(|(index, label)| (Asked::Drawn, index, *label, true));
    judged
        .chain(drawn)
        .map(|(asked, index, label, wanted)| VerdictCheck {
            asked,
            index,
            label,
            honored: config.shows(predictions, &label) == wanted,
        })
        .collect()
}

/// The verdicts honored after an epoch of a run that trains until they all
/// are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochCheck {
    /// Epochs done.
    pub epochs: usize,
    /// The verdicts honored then.
    pub verdicts_honored: Tally,
}

/// A count out of a total, as the user reads it ("7 of 8").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// How many passed.
    pub passed: usize,
    /// Out of how many.
    pub total: usize,
}

impl Tally {
    /// `passed / total`, 1 when there is nothing to pass.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.passed as f64 / self.total as f64
        }
    }

    /// Whether everything passed.
    pub fn all(&self) -> bool {
        self.passed == self.total
    }

    fn add(&mut self, passed: bool) {
        self.passed += usize::from(passed);
        self.total += 1;
    }
}

/// Verdicts honored over several images.
pub fn verdicts_honored<'a>(checks: impl IntoIterator<Item = &'a [VerdictCheck]>) -> Tally {
    let mut tally = Tally::default();
    for check in checks.into_iter().flatten() {
        tally.add(check.honored);
    }
    tally
}

/// History agreement: how many of the history library's boxes (`labels`, one
/// list per image) the model still shows in its `predictions` on the same
/// images, a box counting as shown as a confirmed box does in [`check_image`].
pub fn history_agreement(
    labels: &[Vec<LabeledBox>],
    predictions: &[Vec<Detection>],
    config: &FidelityConfig,
) -> Tally {
    let mut tally = Tally::default();
    for (boxes, predicted) in labels.iter().zip(predictions) {
        for label in boxes {
            tally.add(config.shows(predicted, label));
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;
    use crate::verdict::ShownBox;

    fn detection(x0: f32, class: usize, score: f32) -> Detection {
        Detection {
            bbox: BBox::new(x0, 10.0, x0 + 20.0, 30.0),
            class,
            score,
        }
    }

    fn judged(d: Detection, judgement: Judgement) -> ShownBox {
        ShownBox {
            detection: d,
            judgement: Some(judgement),
        }
    }

    /// A confirmed box at 0, a rejected one at 100, a corrected one moved
    /// from 200 to 210 and made class 2, a drawn one at 300, and one unjudged.
    fn verdicts() -> ImageVerdicts {
        ImageVerdicts {
            shown: vec![
                judged(detection(0.0, 0, 0.9), Judgement::Confirmed),
                judged(detection(100.0, 1, 0.8), Judgement::Rejected),
                judged(
                    detection(200.0, 1, 0.7),
                    Judgement::Corrected {
                        label: detection(210.0, 2, 1.0).labeled(),
                    },
                ),
                ShownBox::unjudged(detection(400.0, 0, 0.6)),
            ],
            drawn: vec![detection(300.0, 1, 1.0).labeled()],
            reviewed_classes: None,
        }
    }

    fn honored(checks: &[VerdictCheck]) -> Vec<(Asked, bool)> {
        checks.iter().map(|c| (c.asked, c.honored)).collect()
    }

    #[test]
    fn predictions_that_do_what_the_user_said_honor_every_verdict() {
        let after = [
            detection(1.0, 0, 0.6),   // the confirmed box, still shown
            detection(100.0, 1, 0.3), // the rejected box, below the threshold
            detection(209.0, 2, 0.5), // the corrected box and class, exactly at the threshold
            detection(302.0, 1, 0.9), // the drawn object
        ];
        let checks = check_image(&verdicts(), &after, &FidelityConfig::default());
        assert_eq!(
            honored(&checks),
            vec![
                (Asked::Confirmed, true),
                (Asked::Rejected, true),
                (Asked::Corrected, true),
                (Asked::Drawn, true),
            ]
        );
        assert_eq!(checks[2].index, 2);
        assert_eq!(checks[3].index, 0);
        assert_eq!(checks[2].label.class, 2);
        assert_eq!(
            verdicts_honored([checks.as_slice()]),
            Tally {
                passed: 4,
                total: 4
            }
        );
    }

    #[test]
    fn each_way_of_failing_a_verdict_is_caught() {
        let after = [
            detection(1.0, 1, 0.9),   // the confirmed box shown as another class
            detection(104.0, 1, 0.9), // the rejected box still shown
            detection(200.0, 1, 0.9), // the corrected box in its old class and place
            detection(312.0, 1, 0.9), // the drawn object, but overlapping too little
        ];
        let checks = check_image(&verdicts(), &after, &FidelityConfig::default());
        assert!(checks.iter().all(|c| !c.honored), "{checks:?}");
        // Nothing shown at all: only the rejected box is honored.
        let checks = check_image(&verdicts(), &[], &FidelityConfig::default());
        assert_eq!(
            verdicts_honored([checks.as_slice()]),
            Tally {
                passed: 1,
                total: 4
            }
        );
    }

    #[test]
    fn a_box_under_the_threshold_is_not_shown() {
        let config = FidelityConfig {
            score_threshold: 0.7,
            ..FidelityConfig::default()
        };
        let label = detection(0.0, 0, 1.0).labeled();
        assert!(!config.shows(&[detection(0.0, 0, 0.69)], &label));
        assert!(config.shows(&[detection(0.0, 0, 0.7)], &label));
    }

    #[test]
    fn history_agreement_counts_the_boxes_still_shown() {
        let labels = vec![
            vec![
                detection(0.0, 0, 1.0).labeled(),
                detection(100.0, 1, 1.0).labeled(),
            ],
            vec![detection(0.0, 3, 1.0).labeled()],
            vec![],
        ];
        let predictions = vec![
            vec![detection(2.0, 0, 0.8), detection(100.0, 1, 0.2)],
            vec![detection(0.0, 3, 0.55)],
            vec![detection(0.0, 3, 0.9)],
        ];
        let agreement = history_agreement(&labels, &predictions, &FidelityConfig::default());
        assert_eq!(
            agreement,
            Tally {
                passed: 2,
                total: 3
            }
        );
        assert!((agreement.fraction() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(Tally::default().fraction(), 1.0);
        assert!(Tally::default().all());
    }
}
