//! Detection quality: mean average precision at one IoU threshold, computed as
//! pycocotools' `COCOeval` does for bounding boxes with `iouThrs=[t]`, area
//! range "all" and `maxDets=100`, so that figures can be compared with
//! published COCO results.

use serde::{Deserialize, Serialize};

use crate::geometry::{BBox, Detection, LabeledBox};

/// Most detections of one class kept per image, best scores first (COCO's
/// `maxDets`).
pub const MAX_DETECTIONS_PER_CLASS: usize = 100;

/// Number of recall levels at which precision is sampled (COCO's `recThrs`).
const RECALL_LEVELS: usize = 101;

/// One image's detections and ground-truth objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageEval {
    /// What the detector found, in any order.
    pub detections: Vec<Detection>,
    /// The objects that are really there.
    pub ground_truth: Vec<LabeledBox>,
}

/// Average precision per class and its mean over the classes with ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapReport {
    /// Average precision of each class in `[0, 1]`; `None` for a class with no
    /// ground-truth object in any image, whose AP is undefined (COCO's -1).
    pub per_class: Vec<Option<f32>>,
    /// Mean of the defined entries of `per_class`; 0 when there are none.
    pub mean: f32,
}

/// COCO-style mean average precision of `images` over classes
/// `0..num_classes` at IoU threshold `iou_threshold` (0.5 for mAP@0.5).
///
/// Matches pycocotools: per image and class, the best-scored
/// [`MAX_DETECTIONS_PER_CLASS`] detections are matched greedily to the
/// unmatched ground truth of highest IoU (at least `iou_threshold`), and
/// precision is interpolated at 101 recall levels. Boxes whose class is
/// `num_classes` or above are not evaluated.
pub fn mean_average_precision(
    images: &[ImageEval],
    num_classes: usize,
    iou_threshold: f32,
) -> MapReport {
    let per_class: Vec<Option<f64>> = (0..num_classes)
        .map(|class| class_average_precision(images, class, iou_threshold))
        .collect();
    let defined: Vec<f64> = per_class.iter().flatten().copied().collect();
    let mean = if defined.is_empty() {
        0.0
    } else {
        defined.iter().sum::<f64>() / defined.len() as f64
    };
    MapReport {
        per_class: per_class.iter().map(|ap| ap.map(|ap| ap as f32)).collect(),
        mean: mean as f32,
    }
}

/// Average precision of one class, `None` when no image has ground truth of it.
fn class_average_precision(images: &[ImageEval], class: usize, iou_threshold: f32) -> Option<f64> {
    // pycocotools never asks for more overlap than 1 - 1e-10.
    let threshold = f64::from(iou_threshold).min(1.0 - 1e-10);
    let mut ranked: Vec<(f32, bool)> = Vec::new();
    let mut num_ground_truth = 0;
    for image in images {
        let truths: Vec<&BBox> = image
            .ground_truth
            .iter()
            .filter(|g| g.class == class)
            .map(|g| &g.bbox)
            .collect();
        let mut detections: Vec<&Detection> = image
            .detections
            .iter()
            .filter(|d| d.class == class)
            .collect();
        // Stable, as pycocotools' mergesort: equal scores keep their input order.
        detections.sort_by(|a, b| b.score.total_cmp(&a.score));
        detections.truncate(MAX_DETECTIONS_PER_CLASS);
        let hits = match_greedily(&detections, &truths, threshold);
        ranked.extend(detections.iter().zip(hits).map(|(d, hit)| (d.score, hit)));
        num_ground_truth += truths.len();
    }
    if num_ground_truth == 0 {
        return None;
    }
    // Images in input order, then a stable sort: ties rank by image, then by
    // rank within the image, as pycocotools' concatenation and mergesort do.
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let hits: Vec<bool> = ranked.iter().map(|&(_, hit)| hit).collect();
    Some(interpolated_average_precision(&hits, num_ground_truth))
}

/// Whether each detection (best score first) is a true positive: it takes the
/// unmatched truth of highest IoU, at least `threshold`; among equal IoUs the
/// later truth wins, as in pycocotools' `evaluateImg`.
fn match_greedily(detections: &[&Detection], truths: &[&BBox], threshold: f64) -> Vec<bool> {
    let mut taken = vec![false; truths.len()];
    detections
        .iter()
        .map(|detection| {
            let mut best_iou = threshold;
            let mut best = None;
            for (index, truth) in truths.iter().enumerate() {
                if taken[index] {
                    continue;
                }
                let iou = coco_iou(&detection.bbox, truth);
                if iou < best_iou {
                    continue;
                }
                best_iou = iou;
                best = Some(index);
            }
            if let Some(index) = best {
                taken[index] = true;
            }
            best.is_some()
        })
        .collect()
}

/// IoU in double precision with pycocotools' formula (`maskUtils.iou` on
/// boxes): comparisons at the threshold then agree with COCOeval.
fn coco_iou(a: &BBox, b: &BBox) -> f64 {
    let (ax0, ay0, ax1, ay1) = corners(a);
    let (bx0, by0, bx1, by1) = corners(b);
    let w = ax1.min(bx1) - ax0.max(bx0);
    let h = ay1.min(by1) - ay0.max(by0);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    inter / ((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter)
}

fn corners(b: &BBox) -> (f64, f64, f64, f64) {
    (
        f64::from(b.x0),
        f64::from(b.y0),
        f64::from(b.x1),
        f64::from(b.y1),
    )
}

/// AP from detections ranked by score (`true` = true positive) against
/// `num_ground_truth` objects: precision made non-increasing in recall, then
/// averaged at recalls 0, 0.01, ..., 1 (0 beyond the highest recall reached).
fn interpolated_average_precision(hits: &[bool], num_ground_truth: usize) -> f64 {
    let mut recall = Vec::with_capacity(hits.len());
    let mut precision = Vec::with_capacity(hits.len());
    let (mut tp, mut fp) = (0.0f64, 0.0f64);
    for &hit in hits {
        if hit {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        recall.push(tp / num_ground_truth as f64);
        precision.push(tp / (tp + fp + f64::EPSILON));
    }
    for i in (1..precision.len()).rev() {
        precision[i - 1] = precision[i - 1].max(precision[i]);
    }
    // The recall levels exactly as numpy's linspace(0, 1, 101) makes them.
    let step = 1.0 / (RECALL_LEVELS - 1) as f64;
    let mut sum = 0.0;
    for level in 0..RECALL_LEVELS {
        let wanted = if level == RECALL_LEVELS - 1 {
            1.0
        } else {
            level as f64 * step
        };
        // numpy's searchsorted(side='left'): the first rank reaching `wanted`.
        match precision.get(recall.partition_point(|&r| r < wanted)) {
            Some(p) => sum += p,
            None => break,
        }
    }
    sum / RECALL_LEVELS as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(x: f32, y: f32, class: usize) -> LabeledBox {
        LabeledBox {
            bbox: BBox::from_xywh(x, y, 10.0, 10.0),
            class,
        }
    }

    fn detect(bbox: BBox, class: usize, score: f32) -> Detection {
        Detection { bbox, class, score }
    }

    fn assert_close(actual: f32, expected: f64) {
        assert!(
            (f64::from(actual) - expected).abs() < 1e-6,
            "got {actual}, expected {expected}"
        );
    }

    #[test]
    fn perfect_detections_score_one() {
        let ground_truth = vec![
            truth(0.0, 0.0, 0),
            truth(50.0, 50.0, 1),
            truth(20.0, 70.0, 0),
        ];
        let detections = ground_truth
            .iter()
            .map(|g| detect(g.bbox, g.class, 0.9))
            .collect();
        let report = mean_average_precision(
            &[ImageEval {
                detections,
                ground_truth,
            }],
            2,
            0.5,
        );
        assert_eq!(report.per_class, vec![Some(1.0), Some(1.0)]);
        assert_eq!(report.mean, 1.0);
    }

    #[test]
    fn class_without_detections_scores_zero_and_lowers_the_mean() {
        let ground_truth = vec![truth(0.0, 0.0, 0), truth(50.0, 50.0, 1)];
        let detections = vec![detect(ground_truth[0].bbox, 0, 0.8)];
        let report = mean_average_precision(
            &[ImageEval {
                detections,
                ground_truth,
            }],
            2,
            0.5,
        );
        assert_eq!(report.per_class, vec![Some(1.0), Some(0.0)]);
        assert_eq!(report.mean, 0.5);
    }

    #[test]
    fn single_false_positive_above_the_true_positive_halves_ap() {
        let ground_truth = vec![truth(0.0, 0.0, 0)];
        let detections = vec![
            detect(BBox::from_xywh(100.0, 100.0, 10.0, 10.0), 0, 0.9),
            detect(ground_truth[0].bbox, 0, 0.8),
        ];
        let report = mean_average_precision(
            &[ImageEval {
                detections,
                ground_truth,
            }],
            1,
            0.5,
        );
        assert_close(report.mean, 0.5);
    }

    #[test]
    fn false_positive_between_true_positives_costs_the_upper_half_of_recall() {
        // Ranks TP, FP, TP over two objects: precision 1 up to recall 0.5
        // (51 levels), then 2/3 (50 levels).
        let ground_truth = vec![truth(0.0, 0.0, 0), truth(50.0, 0.0, 0)];
        let detections = vec![
            detect(ground_truth[0].bbox, 0, 0.9),
            detect(BBox::from_xywh(100.0, 100.0, 10.0, 10.0), 0, 0.8),
            detect(ground_truth[1].bbox, 0, 0.7),
        ];
        let report = mean_average_precision(
            &[ImageEval {
                detections,
                ground_truth,
            }],
            1,
            0.5,
        );
        assert_close(report.mean, (51.0 + 50.0 * 2.0 / 3.0) / 101.0);
    }

    #[test]
    fn duplicate_detection_of_one_object_is_a_false_positive() {
        let ground_truth = vec![truth(0.0, 0.0, 0), truth(50.0, 0.0, 0)];
        let detections = vec![
            detect(ground_truth[0].bbox, 0, 0.9),
            detect(ground_truth[0].bbox, 0, 0.8),
            detect(ground_truth[1].bbox, 0, 0.7),
        ];
        let report = mean_average_precision(
            &[ImageEval {
                detections,
                ground_truth,
            }],
            1,
            0.5,
        );
        assert_close(report.mean, (51.0 + 50.0 * 2.0 / 3.0) / 101.0);
    }

    #[test]
    fn iou_of_exactly_the_threshold_matches() {
        // Overlap 50 of union 100 with the object: IoU exactly 0.5.
        let ground_truth = vec![LabeledBox {
            bbox: BBox::new(0.0, 0.0, 10.0, 7.5),
            class: 0,
        }];
        let at = detect(BBox::new(0.0, 2.5, 10.0, 10.0), 0, 0.9);
        assert_eq!(coco_iou(&at.bbox, &ground_truth[0].bbox), 0.5);
        let images = [ImageEval {
            detections: vec![at],
            ground_truth,
        }];
        assert_eq!(mean_average_precision(&images, 1, 0.5).mean, 1.0);
        assert_eq!(mean_average_precision(&images, 1, 0.51).mean, 0.0);
    }

    #[test]
    fn equal_iou_goes_to_the_later_object_as_in_pycocotools() {
        // The first detection overlaps both objects equally and takes the
        // second; the next one only overlaps the first object, and hits it.
        let ground_truth = vec![
            LabeledBox {
                bbox: BBox::new(0.0, 0.0, 10.0, 10.0),
                class: 0,
            },
            LabeledBox {
                bbox: BBox::new(2.0, 0.0, 12.0, 10.0),
                class: 0,
            },
        ];
        let detections = vec![
            detect(BBox::new(1.0, 0.0, 11.0, 10.0), 0, 0.9),
            detect(BBox::new(-2.0, 0.0, 8.0, 10.0), 0, 0.8),
        ];
        let report = mean_average_precision(
            &[ImageEval {
                detections,
                ground_truth,
            }],
            1,
            0.5,
        );
        assert_eq!(report.mean, 1.0);
    }

    #[test]
    fn only_the_best_hundred_detections_per_image_and_class_count() {
        let object = truth(0.0, 0.0, 0);
        let misses = |n: usize| -> Vec<Detection> {
            (0..n)
                .map(|i| detect(BBox::from_xywh(100.0 + i as f32, 100.0, 10.0, 10.0), 0, 0.9))
                .collect()
        };
        let evaluate = |detections: Vec<Detection>| {
            let ground_truth = vec![object];
            mean_average_precision(
                &[ImageEval {
                    detections,
                    ground_truth,
                }],
                2,
                0.5,
            )
        };
        // The hit ranks 101st in its class: left out.
        let mut detections = misses(MAX_DETECTIONS_PER_CLASS);
        detections.push(detect(object.bbox, 0, 0.1));
        assert_eq!(evaluate(detections).per_class, vec![Some(0.0), None]);
        // It ranks 100th in its class, though 101st in the image: counted,
        // at precision 1/100.
        let mut detections = misses(MAX_DETECTIONS_PER_CLASS - 1);
        detections.push(detect(object.bbox, 0, 0.1));
        detections.push(detect(BBox::new(0.0, 0.0, 1.0, 1.0), 1, 0.95));
        let report = evaluate(detections);
        assert_close(report.mean, 0.01);
        assert_eq!(report.per_class[1], None);
    }

    #[test]
    fn recall_levels_round_as_numpys_linspace() {
        // Ten objects found by ranks 1-7 and 9-11, rank 8 a miss. Level 70 of
        // numpy's linspace is 0.7000000000000001, above recall 7/10, so it
        // takes the precision at rank 9 (10/11), not at rank 7 (1).
        let ground_truth: Vec<LabeledBox> =
            (0..10).map(|i| truth(20.0 * i as f32, 0.0, 0)).collect();
        let mut detections: Vec<Detection> = ground_truth
            .iter()
            .enumerate()
            .map(|(rank, g)| detect(g.bbox, 0, 1.0 - rank as f32 / 100.0))
            .collect();
        detections.push(detect(BBox::from_xywh(0.0, 300.0, 10.0, 10.0), 0, 0.935));
        let report = mean_average_precision(
            &[ImageEval {
                detections,
                ground_truth,
            }],
            1,
            0.5,
        );
        assert_close(report.mean, (70.0 + 31.0 * 10.0 / 11.0) / 101.0);
    }

    #[test]
    fn class_without_ground_truth_is_undefined_and_left_out_of_the_mean() {
        let ground_truth = vec![truth(0.0, 0.0, 0)];
        let detections = vec![
            detect(ground_truth[0].bbox, 0, 0.9),
            detect(ground_truth[0].bbox, 2, 0.95),
        ];
        let report = mean_average_precision(
            &[ImageEval {
                detections,
                ground_truth,
            }],
            3,
            0.5,
        );
        assert_eq!(report.per_class, vec![Some(1.0), None, None]);
        assert_eq!(report.mean, 1.0);
    }

    #[test]
    fn empty_input_gives_an_empty_report() {
        let report = mean_average_precision(&[], 3, 0.5);
        assert_eq!(report.per_class, vec![None, None, None]);
        assert_eq!(report.mean, 0.0);
        let blank = [ImageEval::default(), ImageEval::default()];
        assert_eq!(
            mean_average_precision(&blank, 0, 0.5).per_class,
            Vec::<Option<f32>>::new()
        );
    }

    #[test]
    fn report_round_trips_through_json() {
        let report = MapReport {
            per_class: vec![Some(0.25), None],
            mean: 0.25,
        };
        let json = serde_json::to_string(&report).expect("a report serialises");
        let back: MapReport = serde_json::from_str(&json).expect("its JSON reads back");
        assert_eq!(back, report);
    }
}
