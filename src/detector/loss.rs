//! Detection losses on tensors, shared by detectors: sigmoid focal and
//! quality focal loss for classes, GIoU, IoU and distribution focal loss for
//! boxes.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid};

/// Element-wise sigmoid focal loss (Lin et al. 2017) of `logits` against
/// `targets` in `[0, 1]`, with the usual `alpha` balance and `gamma` focusing.
pub fn sigmoid_focal_loss<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    alpha: f32,
    gamma: f32,
) -> Tensor<D> {
    let p = sigmoid(logits.clone());
    let ce = -(targets.clone() * log_sigmoid(logits.clone())
        + (targets.ones_like() - targets.clone()) * log_sigmoid(-logits));
    let p_t =
        p.clone() * targets.clone() + (p.ones_like() - p) * (targets.ones_like() - targets.clone());
    let alpha_t =
        targets.clone().mul_scalar(alpha) + (targets.ones_like() - targets).mul_scalar(1.0 - alpha);
    let modulating = (p_t.ones_like() - p_t).clamp_min(0.0).powf_scalar(gamma);
    alpha_t * modulating * ce
}

/// Intersection over union, union and enclosing-box area of predicted and
/// target boxes `[.., 4]` laid out as `(x0, y0, x1, y1)`, each with the last
/// dimension's size 1.
fn overlaps<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> [Tensor<D>; 3] {
    let last = D - 1;
    let part = |t: &Tensor<D>, i: usize| t.clone().narrow(last, i, 1);
    let (px0, py0, px1, py1) = (
        part(&pred, 0),
        part(&pred, 1),
        part(&pred, 2),
        part(&pred, 3),
    );
    let (tx0, ty0, tx1, ty1) = (
        part(&target, 0),
        part(&target, 1),
        part(&target, 2),
        part(&target, 3),
    );
    let area = |x0: &Tensor<D>, y0: &Tensor<D>, x1: &Tensor<D>, y1: &Tensor<D>| {
        (x1.clone() - x0.clone()).clamp_min(0.0) * (y1.clone() - y0.clone()).clamp_min(0.0)
    };
    let pred_area = area(&px0, &py0, &px1, &py1);
    let target_area = area(&tx0, &ty0, &tx1, &ty1);
    let inter = area(
        &px0.clone().max_pair(tx0.clone()),
        &py0.clone().max_pair(ty0.clone()),
        &px1.clone().min_pair(tx1.clone()),
        &py1.clone().min_pair(ty1.clone()),
    );
    let hull = area(
        &px0.min_pair(tx0),
        &py0.min_pair(ty0),
        &px1.max_pair(tx1),
        &py1.max_pair(ty1),
    );
    let union = pred_area + target_area - inter.clone();
    let iou = inter / union.clone().add_scalar(EPS);
    [iou, union, hull]
}

/// Guards the divisions of [`overlaps`] and [`giou_loss`].
const EPS: f32 = 1e-6;

/// IoU of predicted and target boxes `[.., 4]` laid out as
/// `(x0, y0, x1, y1)`; the result drops the last dimension's size to 1.
pub fn box_iou<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<D> {
    let [iou, _, _] = overlaps(pred, target);
    iou
}

/// `1 - GIoU` of predicted and target boxes `[.., 4]` laid out as
/// `(x0, y0, x1, y1)`; the result drops the last dimension's size to 1.
pub fn giou_loss<const D: usize>(pred: Tensor<D>, target: Tensor<D>) -> Tensor<D> {
    let [iou, union, hull] = overlaps(pred, target);
    let giou = iou - (hull.clone() - union) / hull.add_scalar(EPS);
    giou.ones_like() - giou
}

/// Element-wise quality focal loss (Li et al. 2020, generalised focal loss)
/// of class `logits` against soft `targets` in `[0, 1]` (the IoU of a
/// positive's box, 0 for background): binary cross-entropy scaled by
/// `|target - sigmoid(logit)|^beta`.
pub fn quality_focal_loss<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    beta: f32,
) -> Tensor<D> {
    let p = sigmoid(logits.clone());
    let ce = -(targets.clone() * log_sigmoid(logits.clone())
        + (targets.ones_like() - targets.clone()) * log_sigmoid(-logits));
    (targets - p).abs().powf_scalar(beta) * ce
}

/// Distribution focal loss (Li et al. 2020) per box side: the cross-entropy of
/// the bin `logits` `[.., bins]` against `targets` `[.., bins]`, a target
/// distance split between its two nearest bins in proportion to closeness.
/// The last dimension's size drops to 1.
pub fn distribution_focal_loss<const D: usize>(logits: Tensor<D>, targets: Tensor<D>) -> Tensor<D> {
    -(targets * log_softmax(logits, D - 1)).sum_dim(D - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;
    use burn::tensor::{Device, TensorData};

    fn boxes(values: &[[f32; 4]]) -> Tensor<2> {
        let flat: Vec<f32> = values.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [values.len(), 4]), &Device::flex())
    }

    #[test]
    fn giou_loss_matches_the_geometry_module() {
        let pred = [
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
            [2.0, 3.0, 9.0, 12.0],
        ];
        let target = [
            [0.0, 0.0, 10.0, 10.0],
            [20.0, 0.0, 30.0, 10.0],
            [1.0, 1.0, 8.0, 8.0],
        ];
        let loss: Vec<f32> = giou_loss(boxes(&pred), boxes(&target))
            .into_data()
            .try_to_vec()
            .unwrap();
        for ((p, t), l) in pred.iter().zip(&target).zip(loss) {
            let expected =
                1.0 - BBox::new(p[0], p[1], p[2], p[3]).giou(&BBox::new(t[0], t[1], t[2], t[3]));
            assert!((l - expected).abs() < 1e-4, "{l} vs {expected}");
        }
    }

    #[test]
    fn focal_loss_matches_its_formula_and_down_weights_easy_examples() {
        let device = Device::flex();
        let logits = Tensor::<1>::from_data(TensorData::new(vec![2.0f32, 2.0, -3.0], [3]), &device);
        let targets = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0], [3]), &device);
        let loss: Vec<f32> = sigmoid_focal_loss(logits, targets, 0.25, 2.0)
            .into_data()
            .try_to_vec()
            .unwrap();
        let p = |x: f32| 1.0 / (1.0 + (-x).exp());
        let expected = [
            0.25 * (1.0 - p(2.0)).powi(2) * -p(2.0).ln(),
            0.75 * p(2.0).powi(2) * -(1.0 - p(2.0)).ln(),
            0.75 * p(-3.0).powi(2) * -(1.0 - p(-3.0)).ln(),
        ];
        for (l, e) in loss.iter().zip(expected) {
            assert!((l - e).abs() < 1e-5, "{l} vs {e}");
        }
        assert!(loss[2] < loss[1]);
    }

    #[test]
    fn quality_focal_loss_vanishes_when_the_score_equals_its_target() {
        let device = Device::flex();
        let logit = 0.4f32;
        let p = 1.0 / (1.0 + (-logit).exp());
        let logits = Tensor::<1>::from_data(TensorData::new(vec![logit; 3], [3]), &device);
        let targets = Tensor::<1>::from_data(TensorData::new(vec![p, 0.0, 1.0], [3]), &device);
        let loss: Vec<f32> = quality_focal_loss(logits, targets, 2.0)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(loss[0].abs() < 1e-6, "{}", loss[0]);
        let expected = [p.powi(2) * -(1.0 - p).ln(), (1.0 - p).powi(2) * -p.ln()];
        for (l, e) in loss[1..].iter().zip(expected) {
            assert!((l - e).abs() < 1e-5, "{l} vs {e}");
        }
    }

    #[test]
    fn distribution_focal_loss_is_the_cross_entropy_of_the_two_nearest_bins() {
        let device = Device::flex();
        let logits =
            Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0, 2.0], [1, 3]), &device);
        // A distance of 1.25 bins: 0.75 on bin 1, 0.25 on bin 2.
        let targets =
            Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.75, 0.25], [1, 3]), &device);
        let loss: f32 = distribution_focal_loss(logits, targets).into_scalar();
        let z = 1f32.exp() + 2f32.exp() + 1.0;
        let expected = -(0.75 * (1f32.exp() / z).ln() + 0.25 * (2f32.exp() / z).ln());
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }

    #[test]
    fn iou_of_boxes_matches_the_geometry_module() {
        let pred = [[0.0, 0.0, 10.0, 10.0], [2.0, 3.0, 9.0, 12.0]];
        let target = [[5.0, 0.0, 15.0, 10.0], [1.0, 1.0, 8.0, 8.0]];
        let iou: Vec<f32> = box_iou(boxes(&pred), boxes(&target))
            .into_data()
            .try_to_vec()
            .unwrap();
        for ((p, t), v) in pred.iter().zip(&target).zip(iou) {
            let expected =
                BBox::new(p[0], p[1], p[2], p[3]).iou(&BBox::new(t[0], t[1], t[2], t[3]));
            assert!((v - expected).abs() < 1e-4, "{v} vs {expected}");
        }
    }
}
