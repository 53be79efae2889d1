//! The simulated user: verdicts given from the ground truth, for benchmarks
//! and for `finetune --simulate-user`.

use crate::geometry::{Detection, LabeledBox};
use crate::verdict::{ImageVerdicts, Judgement, ShownBox};

/// The simulated user's judgement of each shown box, in the order the boxes
/// were given, and the objects it draws.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulated {
    /// One judgement per shown box: confirmed, corrected or rejected.
    pub judgements: Vec<Judgement>,
    /// The objects no shown box claimed.
    pub drawn: Vec<LabeledBox>,
}

/// What a careful user does with `shown` boxes knowing `ground_truth`, the
/// judgements in the order of `shown`. In descending score order, a shown
/// box that overlaps a not yet claimed object of its class with IoU at least
/// `iou_threshold` is confirmed (the best-overlapping one is claimed). Then,
/// in the same order, a box left that overlaps an unclaimed object of another
/// class as much is corrected to that object (its class and box: the right
/// object under the wrong name; rejecting it and drawing the object instead
/// would make the object's place a negative region, where METHOD.md section 1
/// never trains a positive). Any other shown box is rejected, and every
/// object left unclaimed is drawn.
pub fn simulated_judgements(
    shown: &[Detection],
    ground_truth: &[LabeledBox],
    iou_threshold: f32,
) -> Simulated {
    let mut order: Vec<usize> = (0..shown.len()).collect();
    order.sort_by(|&a, &b| shown[b].score.total_cmp(&shown[a].score));
    let mut claimed = vec![false; ground_truth.len()];
    // None until a pass matches the box; whatever no pass matched is rejected.
    let mut judgements: Vec<Option<Judgement>> = vec![None; shown.len()];
    for same_class in [true, false] {
        for &index in &order {
            if judgements[index].is_some() {
                continue;
            }
            let detection = &shown[index];
            let best = ground_truth
                .iter()
                .enumerate()
                .filter(|(i, gt)| !claimed[*i] && (gt.class == detection.class) == same_class)
                .map(|(i, gt)| (i, gt.bbox.iou(&detection.bbox)))
                .filter(|(_, iou)| *iou >= iou_threshold)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((i, _)) = best {
                claimed[i] = true;
                judgements[index] = Some(if same_class {
                    Judgement::Confirmed
                } else {
                    Judgement::Corrected {
                        label: ground_truth[i],
                    }
                });
            }
        }
    }
    let drawn = ground_truth
        .iter()
        .zip(&claimed)
        .filter(|(_, claimed)| !**claimed)
        .map(|(gt, _)| *gt)
        .collect();
    let judgements = judgements
        .into_iter()
        .map(|judgement| judgement.unwrap_or(Judgement::Rejected))
        .collect();
    Simulated { judgements, drawn }
}

/// The verdicts of [`simulated_judgements`], the shown boxes in descending
/// score order.
pub fn simulated_verdicts(
    shown: &[Detection],
    ground_truth: &[LabeledBox],
    iou_threshold: f32,
) -> ImageVerdicts {
    let Simulated { judgements, drawn } = simulated_judgements(shown, ground_truth, iou_threshold);
    let mut shown: Vec<ShownBox> = shown
        .iter()
        .zip(judgements)
        .map(|(detection, judgement)| ShownBox {
            detection: *detection,
            judgement: Some(judgement),
        })
        .collect();
    shown.sort_by(|a, b| b.detection.score.total_cmp(&a.detection.score));
    ImageVerdicts {
        shown,
        drawn,
        reviewed_classes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;
    use crate::verdict::Category;

    #[test]
    fn the_simulated_user_confirms_rejects_and_draws_from_the_truth() {
        let cat = LabeledBox {
            bbox: BBox::new(0.0, 0.0, 10.0, 10.0),
            class: 0,
        };
        let dog = LabeledBox {
            bbox: BBox::new(50.0, 50.0, 70.0, 70.0),
            class: 1,
        };
        let shown = [
            Detection {
                bbox: BBox::new(1.0, 0.0, 10.0, 10.0),
                class: 0,
                score: 0.9,
            },
            // A duplicate of the cat: the object is already claimed.
            Detection {
                bbox: BBox::new(0.0, 1.0, 10.0, 10.0),
                class: 0,
                score: 0.8,
            },
            // Right place, wrong class.
            Detection {
                bbox: BBox::new(50.0, 50.0, 70.0, 70.0),
                class: 0,
                score: 0.7,
            },
        ];
        let v = simulated_verdicts(&shown, &[cat, dog], 0.5);
        let judgements: Vec<_> = v.shown.iter().map(|s| s.judgement.unwrap()).collect();
        assert_eq!(
            judgements,
            vec![
                Judgement::Confirmed,
                Judgement::Rejected,
                Judgement::Corrected { label: dog }
            ]
        );
        assert!(v.drawn.is_empty());
        assert_eq!(v.categories(), vec![Category::FalseDetection]);

        // Nothing shown near the dog: it is drawn.
        let v = simulated_verdicts(&shown[..2], &[cat, dog], 0.5);
        assert_eq!(v.drawn, vec![dog]);
        assert_eq!(
            v.categories(),
            vec![Category::MissedDetection, Category::FalseDetection]
        );
    }

    #[test]
    fn a_box_of_the_right_class_is_confirmed_before_a_misnamed_one_is_corrected() {
        let horse = LabeledBox {
            bbox: BBox::new(0.0, 0.0, 10.0, 10.0),
            class: 1,
        };
        let at = |class: usize, score: f32| Detection {
            bbox: BBox::new(0.0, 0.0, 10.0, 10.0),
            class,
            score,
        };
        // A "cow" scored above the horse's own box: the horse box claims it.
        let simulated = simulated_judgements(&[at(2, 0.9), at(1, 0.6)], &[horse], 0.5);
        assert_eq!(
            simulated.judgements,
            vec![Judgement::Rejected, Judgement::Confirmed]
        );
        assert!(simulated.drawn.is_empty());
    }

    #[test]
    fn judgements_come_in_the_order_of_the_shown_boxes() {
        let object = LabeledBox {
            bbox: BBox::new(0.0, 0.0, 10.0, 10.0),
            class: 0,
        };
        let at = |x: f32, score: f32| Detection {
            bbox: BBox::new(x, 0.0, x + 10.0, 10.0),
            class: 0,
            score,
        };
        // The weaker box overlaps better, but the stronger one claims the object first.
        let shown = [at(0.0, 0.6), at(1.0, 0.9), at(40.0, 0.7)];
        let simulated = simulated_judgements(&shown, &[object], 0.5);
        assert_eq!(
            simulated.judgements,
            vec![
                Judgement::Rejected,
                Judgement::Confirmed,
                Judgement::Rejected
            ]
        );
        assert!(simulated.drawn.is_empty());
        let scores: Vec<f32> = simulated_verdicts(&shown, &[object], 0.5)
            .shown
            .iter()
            .map(|s| s.detection.score)
            .collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
    }
}
