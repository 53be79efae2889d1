//! Boxes in image pixels and the plain geometry on them: IoU, GIoU, clipping and
//! class-aware non-maximum suppression. No tensors here.

use serde::{Deserialize, Serialize};

/// An axis-aligned box in image pixels, `x0 <= x1` and `y0 <= y1` when valid.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge.
    pub x0: f32,
    /// Top edge.
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Bottom edge.
    pub y1: f32,
}

impl BBox {
    /// A box from its corners.
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self { x0, y0, x1, y1 }
    }

    /// A box from its top-left corner, width and height (COCO's layout).
    pub fn from_xywh(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self::new(x, y, x + w, y + h)
    }

    /// Width, zero for an inverted box.
    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    /// Height, zero for an inverted box.
    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    /// Area, zero for an inverted or degenerate box.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Centre point `(x, y)`.
    pub fn center(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }

    /// Whether the box has finite corners and a positive area.
    pub fn is_valid(&self) -> bool {
        [self.x0, self.y0, self.x1, self.y1]
            .iter()
            .all(|v| v.is_finite())
            && self.x1 > self.x0
            && self.y1 > self.y0
    }

    /// Whether the point lies inside the box (edges included).
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x0 && x <= self.x1 && y >= self.y0 && y <= self.y1
    }

    /// Area of the overlap with `other`.
    pub fn intersection(&self, other: &BBox) -> f32 {
        let w = self.x1.min(other.x1) - self.x0.max(other.x0);
        let h = self.y1.min(other.y1) - self.y0.max(other.y0);
        w.max(0.0) * h.max(0.0)
    }

    /// Intersection over union, in `[0, 1]`; zero when both boxes are empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            (inter / union).clamp(0.0, 1.0)
        }
    }

    /// Generalised IoU, in `[-1, 1]`: IoU minus the share of the enclosing box
    /// that neither box covers.
    pub fn giou(&self, other: &BBox) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        let hull = BBox::new(
            self.x0.min(other.x0),
            self.y0.min(other.y0),
            self.x1.max(other.x1),
            self.y1.max(other.y1),
        )
        .area();
        if hull <= 0.0 || union <= 0.0 {
            return 0.0;
        }
        inter / union - (hull - union) / hull
    }

    /// The box cut to an image of `width` x `height` pixels.
    pub fn clip(&self, width: f32, height: f32) -> BBox {
        BBox::new(
            self.x0.clamp(0.0, width),
            self.y0.clamp(0.0, height),
            self.x1.clamp(0.0, width),
            self.y1.clamp(0.0, height),
        )
    }

    /// The box with x scaled by `sx` and y by `sy` (moving between image sizes).
    pub fn scale(&self, sx: f32, sy: f32) -> BBox {
        BBox::new(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy)
    }
}

impl std::fmt::Display for BBox {
    /// The corners as `[x0, y0, x1, y1]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}, {}]", self.x0, self.y0, self.x1, self.y1)
    }
}

/// A box with its class: a ground-truth object or a training label.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabeledBox {
    /// Where the object is.
    pub bbox: BBox,
    /// Class index into the detector's class names.
    pub class: usize,
}

/// A detector's scored guess: box, class and confidence in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Where the detector sees the object.
    pub bbox: BBox,
    /// Class index into the detector's class names.
    pub class: usize,
    /// Confidence in `[0, 1]`.
    pub score: f32,
}

impl Detection {
    /// The box and class without the score.
    pub fn labeled(&self) -> LabeledBox {
        LabeledBox {
            bbox: self.bbox,
            class: self.class,
        }
    }
}

/// Orders detections by descending score; ties keep their input order.
pub fn sort_by_score(detections: &mut [Detection]) {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
}

/// Class-aware non-maximum suppression: keeps, per class, each detection that
/// overlaps no better-scored kept detection by more than `iou_threshold`.
/// The result is sorted by descending score.
pub fn nms(detections: &[Detection], iou_threshold: f32) -> Vec<Detection> {
    nms_indices(detections, iou_threshold)
        .into_iter()
        .map(|i| detections[i])
        .collect()
}

/// [`nms`] as indices into `detections`, by descending score (ties in
/// their order).
pub fn nms_indices(detections: &[Detection], iou_threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by(|&a, &b| detections[b].score.total_cmp(&detections[a].score));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for i in order {
        let candidate = &detections[i];
        let suppressed = kept.iter().any(|&k| {
            let k = &detections[k];
            k.class == candidate.class && k.bbox.iou(&candidate.bbox) > iou_threshold
        });
        if !suppressed {
            kept.push(i);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bbox() -> impl Strategy<Value = BBox> {
        (0f32..200.0, 0f32..200.0, 0.5f32..100.0, 0.5f32..100.0)
            .prop_map(|(x, y, w, h)| BBox::from_xywh(x, y, w, h))
    }

    fn detection() -> impl Strategy<Value = Detection> {
        (bbox(), 0usize..3, 0f32..1.0).prop_map(|(bbox, class, score)| Detection {
            bbox,
            class,
            score,
        })
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
    }

    #[test]
    fn giou_penalises_distance_between_disjoint_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let near = BBox::new(10.0, 0.0, 20.0, 10.0);
        let far = BBox::new(90.0, 0.0, 100.0, 10.0);
        assert_eq!(a.giou(&near), 0.0);
        assert!(a.giou(&far) < -0.7);
        assert!((a.giou(&a) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn clip_keeps_boxes_inside_the_image() {
        let clipped = BBox::new(-5.0, 10.0, 300.0, 400.0).clip(256.0, 256.0);
        assert_eq!(clipped, BBox::new(0.0, 10.0, 256.0, 256.0));
    }

    #[test]
    fn degenerate_boxes_are_invalid_and_have_zero_iou() {
        let flat = BBox::new(5.0, 5.0, 5.0, 20.0);
        assert!(!flat.is_valid());
        assert!(!BBox::new(f32::NAN, 0.0, 1.0, 1.0).is_valid());
        assert_eq!(flat.iou(&flat), 0.0);
    }

    #[test]
    fn nms_is_class_aware() {
        let boxes = BBox::new(0.0, 0.0, 10.0, 10.0);
        let dets = [
            Detection {
                bbox: boxes,
                class: 0,
                score: 0.9,
            },
            Detection {
                bbox: boxes,
                class: 1,
                score: 0.8,
            },
            Detection {
                bbox: boxes,
                class: 0,
                score: 0.7,
            },
        ];
        let kept = nms(&dets, 0.5);
        assert_eq!(kept.len(), 2);
        assert_eq!((kept[0].class, kept[1].class), (0, 1));
    }

    proptest! {
        #[test]
        fn iou_is_symmetric_and_bounded(a in bbox(), b in bbox()) {
            let ab = a.iou(&b);
            prop_assert!((ab - b.iou(&a)).abs() < 1e-6);
            prop_assert!((0.0..=1.0).contains(&ab));
            prop_assert!((-1.0..=1.0).contains(&a.giou(&b)));
            prop_assert!(a.giou(&b) <= ab + 1e-6);
        }

        #[test]
        fn nms_keeps_the_best_box_and_is_idempotent(dets in proptest::collection::vec(detection(), 1..30)) {
            let kept = nms(&dets, 0.5);
            let best = dets.iter().map(|d| d.score).fold(f32::MIN, f32::max);
            prop_assert_eq!(kept[0].score, best);
            prop_assert_eq!(nms(&kept, 0.5), kept.clone());
            for (i, a) in kept.iter().enumerate() {
                for b in &kept[i + 1..] {
                    prop_assert!(a.class != b.class || a.bbox.iou(&b.bbox) <= 0.5);
                }
            }
        }
    }
}
