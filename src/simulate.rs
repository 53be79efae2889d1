//! The simulated user: verdicts given from the ground truth, for benchmarks
//! and for `finetune --simulate-user`.

use crate::geometry::{Detection, LabeledBox, sort_by_score};
use crate::verdict::{ImageVerdicts, Judgement, ShownBox};

/// The verdicts a careful user gives on `shown` boxes knowing `ground_truth`:
/// in descending score order, a shown box that overlaps a not yet claimed
/// object of its class with IoU at least `iou_threshold` is confirmed (the
/// best-overlapping one is claimed), any other shown box is rejected, and
/// every object left unclaimed is drawn.
pub fn simulated_verdicts(
    shown: &[Detection],
    ground_truth: &[LabeledBox],
    iou_threshold: f32,
) -> ImageVerdicts {
    let mut shown = shown.to_vec();
    sort_by_score(&mut shown);
    let mut claimed = vec![false; ground_truth.len()];
    let mut verdicts = ImageVerdicts::default();
    for detection in shown {
        let best = ground_truth
            .iter()
            .enumerate()
            .filter(|(i, gt)| !claimed[*i] && gt.class == detection.class)
            .map(|(i, gt)| (i, gt.bbox.iou(&detection.bbox)))
            .filter(|(_, iou)| *iou >= iou_threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let judgement = match best {
            Some((i, _)) => {
                claimed[i] = true;
                Judgement::Confirmed
            }
            None => Judgement::Rejected,
        };
        verdicts.shown.push(ShownBox {
            detection,
            judgement: Some(judgement),
        });
    }
    verdicts.drawn = ground_truth
        .iter()
        .zip(&claimed)
        .filter(|(_, claimed)| !**claimed)
        .map(|(gt, _)| *gt)
        .collect();
    verdicts
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
                Judgement::Rejected
            ]
        );
        assert_eq!(v.drawn, vec![dog]);
        assert_eq!(
            v.categories(),
            vec![Category::MissedDetection, Category::FalseDetection]
        );
    }
}
