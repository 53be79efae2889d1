//! Gradient mixing (METHOD.md section 2, steps 2 and 3): the similarity of the
//! transfer gradient `g_t` and the history gradient `g_h`, the mixing weights
//! each rule derives from it, and the mixed gradient `g = a_t * g_t + a_h * g_h`.
//!
//! Every rule is a linear combination with two scalar weights computed from
//! three numbers: `<g_t, g_h>`, `|g_t|^2` and `|g_h|^2`. Those numbers are pure
//! data ([`GradientStats`], [`MixingRule::weights`]); only gathering them and
//! applying the weights touches tensors ([`gradient_stats`], [`mix`]).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How `g_t` and `g_h` are combined into the gradient the optimizer applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MixingRule {
    /// The product's rule: average when the gradients agree (`s >= 0`),
    /// otherwise the average of each gradient projected off the other.
    #[default]
    Symmetric,
    /// Plain fine-tuning: `g = g_t`.
    TransferOnly,
    /// Always the average: `g = (g_t + g_h) / 2`.
    Replay,
    /// A-GEM: `g_t` projected off `g_h` when they conflict.
    Agem,
    /// PCGrad: each gradient projected off the other where they conflict, then summed.
    Pcgrad,
    /// Smooth weights from the similarity: `a_h = (1 - s) / 2`, `a_t = 1 - a_h`.
    Smooth,
}

impl MixingRule {
    /// Every rule, the default first.
    pub const ALL: [MixingRule; 6] = [
        MixingRule::Symmetric,
        MixingRule::TransferOnly,
        MixingRule::Replay,
        MixingRule::Agem,
        MixingRule::Pcgrad,
        MixingRule::Smooth,
    ];

    /// The rule's name, as accepted by [`FromStr`] and written in records.
    pub fn name(self) -> &'static str {
        match self {
            MixingRule::Symmetric => "symmetric",
            MixingRule::TransferOnly => "transfer-only",
            MixingRule::Replay => "replay",
            MixingRule::Agem => "agem",
            MixingRule::Pcgrad => "pcgrad",
            MixingRule::Smooth => "smooth",
        }
    }

    /// Whether the rule ignores the history gradient, so it need not be computed.
    pub fn needs_history(self) -> bool {
        self != MixingRule::TransferOnly
    }

    /// The weights `(a_t, a_h)` this rule gives to `g_t` and `g_h`.
    pub fn weights(self, stats: GradientStats) -> MixWeights {
        let GradientStats {
            dot,
            norm_t_sq,
            norm_h_sq,
        } = stats;
        let conflict = dot.min(0.0);
        let (a_t, a_h) = match self {
            MixingRule::Symmetric if stats.similarity() >= 0.0 => (0.5, 0.5),
            MixingRule::Symmetric => (
                (1.0 - ratio(dot, norm_t_sq)) / 2.0,
                (1.0 - ratio(dot, norm_h_sq)) / 2.0,
            ),
            MixingRule::TransferOnly => (1.0, 0.0),
            MixingRule::Replay => (0.5, 0.5),
            MixingRule::Agem => (1.0, -ratio(conflict, norm_h_sq)),
            MixingRule::Pcgrad => (
                1.0 - ratio(conflict, norm_t_sq),
                1.0 - ratio(conflict, norm_h_sq),
            ),
            MixingRule::Smooth => {
                let a_h = (1.0 - stats.similarity()) / 2.0;
                (1.0 - a_h, a_h)
            }
        };
        MixWeights { a_t, a_h }
    }
}

/// `num / den`, zero when `den` is zero (a zero gradient has no direction to
/// project off).
fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

impl fmt::Display for MixingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mixing rule name that is not one of ours.
#[derive(Debug, Error, PartialEq)]
#[error(
    "unknown mixing rule '{0}': use one of symmetric (the default), transfer-only, replay, agem, pcgrad, smooth"
)]
pub struct UnknownRule(pub String);

impl FromStr for MixingRule {
    type Err = UnknownRule;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if name == "default" {
            return Ok(MixingRule::Symmetric);
        }
        MixingRule::ALL
            .into_iter()
            .find(|rule| rule.name() == name)
            .ok_or_else(|| UnknownRule(name.to_string()))
    }
}

/// Which parameters the similarity is computed over. The weights always apply
/// to every trainable parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MixScope {
    /// All trainable parameters, flattened (the default).
    #[default]
    All,
    /// The detection head only.
    Head,
}

/// The three numbers every rule needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GradientStats {
    /// `<g_t, g_h>`.
    pub dot: f64,
    /// `|g_t|^2`.
    pub norm_t_sq: f64,
    /// `|g_h|^2`.
    pub norm_h_sq: f64,
}

impl GradientStats {
    /// The cosine similarity `s`, zero when either gradient is zero.
    pub fn similarity(&self) -> f64 {
        let norms = (self.norm_t_sq * self.norm_h_sq).sqrt();
        if norms > 0.0 {
            (self.dot / norms).clamp(-1.0, 1.0)
        } else {
            0.0
        }
    }
}

/// The weights of `g_t` and `g_h` in the mixed gradient.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MixWeights {
    /// Weight of the transfer gradient.
    pub a_t: f64,
    /// Weight of the history gradient.
    pub a_h: f64,
}

/// What one mixing step did, as kept in the per-step record.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MixRecord {
    /// Cosine similarity `s` of `g_t` and `g_h`.
    pub similarity: f64,
    /// Weight of the transfer gradient.
    pub a_t: f64,
    /// Weight of the history gradient.
    pub a_h: f64,
    /// `|g_t|`.
    pub norm_t: f64,
    /// `|g_h|`.
    pub norm_h: f64,
}

impl MixRecord {
    /// The record of mixing with `weights` gradients whose stats are `stats`.
    pub fn new(stats: GradientStats, weights: MixWeights) -> Self {
        Self {
            similarity: stats.similarity(),
            a_t: weights.a_t,
            a_h: weights.a_h,
            norm_t: stats.norm_t_sq.sqrt(),
            norm_h: stats.norm_h_sq.sqrt(),
        }
    }
}

/// The ids of every float parameter of `module`, in visiting order.
pub fn param_ids<M: Module>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// `[<g_t, g_h>, |g_t|^2, |g_h|^2]` over the parameters of `model` that are in
/// `scope` (all when `None`), as a device tensor of three values so the caller
/// reads it together with anything else it needs in one transfer. A parameter
/// without a gradient in one of the sets counts as a zero gradient there.
pub fn gradient_stats<M: Module>(
    model: &M,
    g_t: &GradientsParams,
    g_h: &GradientsParams,
    scope: Option<&HashSet<ParamId>>,
) -> Option<Tensor<1>> {
    struct Stats<'a> {
        g_t: &'a GradientsParams,
        g_h: &'a GradientsParams,
        scope: Option<&'a HashSet<ParamId>>,
        sums: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Stats<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.scope.is_some_and(|scope| !scope.contains(&param.id)) {
                return;
            }
            let t = self
                .g_t
                .get::<D>(param.id)
                .map(|t| t.flatten::<1>(0, D - 1));
            let h = self
                .g_h
                .get::<D>(param.id)
                .map(|h| h.flatten::<1>(0, D - 1));
            let zero = || Tensor::<1>::zeros([1], &param.val().device());
            let sums = match (t, h) {
                (None, None) => return,
                (t, h) => {
                    let dot = match (&t, &h) {
                        (Some(t), Some(h)) => (t.clone() * h.clone()).sum(),
                        _ => zero(),
                    };
                    let norm_t = t.map_or_else(zero, |t| t.square().sum());
                    let norm_h = h.map_or_else(zero, |h| h.square().sum());
                    Tensor::cat(vec![dot, norm_t, norm_h], 0)
                }
            };
            self.sums = Some(match self.sums.take() {
                Some(acc) => acc + sums,
                None => sums,
            });
        }
    }
    let mut stats = Stats {
        g_t,
        g_h,
        scope,
        sums: None,
    };
    model.visit(&mut stats);
    stats.sums
}

/// The gradients of the parameters of `model` in `scope`, flattened into one
/// vector in visiting order; a parameter without a gradient contributes zeros.
pub fn flatten_gradients<M: Module>(
    model: &M,
    grads: &GradientsParams,
    scope: &HashSet<ParamId>,
    device: &Device,
) -> Tensor<1> {
    struct Flatten<'a> {
        grads: &'a GradientsParams,
        scope: &'a HashSet<ParamId>,
        parts: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Flatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !self.scope.contains(&param.id) {
                return;
            }
            let grad = match self.grads.get::<D>(param.id) {
                Some(grad) => grad,
                None => param.val().zeros_like(),
            };
            self.parts.push(grad.flatten::<1>(0, D - 1));
        }
    }
    let mut flatten = Flatten {
        grads,
        scope,
        parts: Vec::new(),
    };
    model.visit(&mut flatten);
    if flatten.parts.is_empty() {
        Tensor::zeros([0], device)
    } else {
        Tensor::cat(flatten.parts, 0)
    }
}

/// Reads `[<g_t, g_h>, |g_t|^2, |g_h|^2]` values into [`GradientStats`].
pub fn stats_from_values(values: &[f32]) -> GradientStats {
    GradientStats {
        dot: values.first().copied().unwrap_or(0.0) as f64,
        norm_t_sq: values.get(1).copied().unwrap_or(0.0) as f64,
        norm_h_sq: values.get(2).copied().unwrap_or(0.0) as f64,
    }
}

/// The mixed gradient `a_t * g_t + a_h * g_h` for every parameter of `model`
/// that has a gradient in either set.
pub fn mix<M: Module>(
    model: &M,
    mut g_t: GradientsParams,
    mut g_h: GradientsParams,
    weights: MixWeights,
) -> GradientsParams {
    struct Mixer<'a> {
        g_t: &'a mut GradientsParams,
        g_h: &'a mut GradientsParams,
        weights: MixWeights,
        mixed: GradientsParams,
    }
    impl ModuleVisitor for Mixer<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = self
                .g_t
                .remove::<D>(param.id)
                .map(|t| t.mul_scalar(self.weights.a_t));
            let h = self
                .g_h
                .remove::<D>(param.id)
                .map(|h| h.mul_scalar(self.weights.a_h));
            let mixed = match (t, h) {
                (Some(t), Some(h)) => t + h,
                (Some(g), None) | (None, Some(g)) => g,
                (None, None) => return,
            };
            self.mixed.register(param.id, mixed);
        }
    }
    let mut mixer = Mixer {
        g_t: &mut g_t,
        g_h: &mut g_h,
        weights,
        mixed: GradientsParams::new(),
    };
    model.visit(&mut mixer);
    mixer.mixed
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::TensorData;

    /// A two-parameter model (weight 2x2 and bias 2) and hand-built gradients
    /// laid out over its six values.
    fn model() -> Linear {
        LinearConfig::new(2, 2).init(&Device::flex())
    }

    fn grads(model: &Linear, values: [f32; 6]) -> GradientsParams {
        let device = Device::flex();
        let mut grads = GradientsParams::new();
        let weight = Tensor::<2>::from_data(TensorData::new(values[..4].to_vec(), [2, 2]), &device);
        let bias = Tensor::<1>::from_data(TensorData::new(values[4..].to_vec(), [2]), &device);
        grads.register(model.weight.id, weight);
        grads.register(model.bias.as_ref().expect("bias").id, bias);
        grads
    }

    fn flat(model: &Linear, grads: &GradientsParams) -> Vec<f32> {
        let mut out: Vec<f32> = grads
            .get::<2>(model.weight.id)
            .expect("weight grad")
            .into_data()
            .try_to_vec()
            .expect("f32");
        out.extend(
            grads
                .get::<1>(model.bias.as_ref().expect("bias").id)
                .expect("bias grad")
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32"),
        );
        out
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64) * (*y as f64))
            .sum()
    }

    /// Mixes two hand-built gradients through the tensor path; returns the
    /// record and the mixed gradient as plain values.
    fn run(rule: MixingRule, t: [f32; 6], h: [f32; 6]) -> (MixRecord, Vec<f32>) {
        let model = model();
        let (g_t, g_h) = (grads(&model, t), grads(&model, h));
        let values: Vec<f32> = gradient_stats(&model, &g_t, &g_h, None)
            .expect("stats")
            .into_data()
            .try_to_vec()
            .expect("f32");
        let stats = stats_from_values(&values);
        let weights = rule.weights(stats);
        let mixed = mix(&model, g_t, g_h, weights);
        (MixRecord::new(stats, weights), flat(&model, &mixed))
    }

    fn assert_close(actual: &[f32], expected: &[f32]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-5, "{actual:?} != {expected:?}");
        }
    }

    const T: [f32; 6] = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    const ALIGNED: [f32; 6] = [2.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    const ORTHOGONAL: [f32; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    const OPPOSED: [f32; 6] = [-1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    const ZERO: [f32; 6] = [0.0; 6];

    #[test]
    fn similarity_and_norms_are_recorded() {
        let (record, _) = run(MixingRule::Symmetric, T, OPPOSED);
        assert!((record.similarity + std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!((record.norm_t - 1.0).abs() < 1e-6);
        assert!((record.norm_h - 2f64.sqrt()).abs() < 1e-6);
        let (aligned, _) = run(MixingRule::Symmetric, T, ALIGNED);
        assert!((aligned.similarity - 1.0).abs() < 1e-6);
        let (orthogonal, _) = run(MixingRule::Symmetric, T, ORTHOGONAL);
        assert_eq!(orthogonal.similarity, 0.0);
    }

    #[test]
    fn symmetric_rule_averages_agreeing_gradients() {
        let (_, g) = run(MixingRule::Symmetric, T, ALIGNED);
        assert_close(&g, &[1.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let (_, g) = run(MixingRule::Symmetric, T, ORTHOGONAL);
        assert_close(&g, &[0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn symmetric_rule_projects_opposed_gradients() {
        // <t,h> = -1, |t|^2 = 1, |h|^2 = 2: a_t = (1+1)/2 = 1, a_h = (1+1/2)/2 = 0.75.
        let (record, g) = run(MixingRule::Symmetric, T, OPPOSED);
        assert!((record.a_t - 1.0).abs() < 1e-6 && (record.a_h - 0.75).abs() < 1e-6);
        assert_close(&g, &[0.25, 0.75, 0.0, 0.0, 0.0, 0.0]);
        assert!(dot(&g, &T) >= 0.0 && dot(&g, &OPPOSED) >= 0.0);
    }

    #[test]
    fn symmetric_rule_never_points_against_either_gradient() {
        let cases: [[f32; 6]; 4] = [
            [-3.0, 0.1, 0.5, 0.0, 2.0, -1.0],
            [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0],
            [-0.9, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.2, -5.0, 1.0, 0.0, -0.3, 0.0],
        ];
        let t = [1.0, 0.5, 0.25, -0.5, 0.0, 1.0];
        for h in cases {
            let (_, g) = run(MixingRule::Symmetric, t, h);
            assert!(dot(&g, &t) >= -1e-6, "against g_t for {h:?}");
            assert!(dot(&g, &h) >= -1e-6, "against g_h for {h:?}");
        }
    }

    #[test]
    fn transfer_only_and_replay() {
        let (_, g) = run(MixingRule::TransferOnly, T, OPPOSED);
        assert_close(&g, &T);
        let (_, g) = run(MixingRule::Replay, T, OPPOSED);
        assert_close(&g, &[0.0, 0.5, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn agem_projects_only_on_conflict() {
        let (_, g) = run(MixingRule::Agem, T, ALIGNED);
        assert_close(&g, &T);
        // g = t - (-1/2) h = [1,0] + [-0.5, 0.5].
        let (_, g) = run(MixingRule::Agem, T, OPPOSED);
        assert_close(&g, &[0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
        assert!(dot(&g, &OPPOSED).abs() < 1e-6);
    }

    #[test]
    fn pcgrad_sums_the_mutually_projected_gradients() {
        let (_, g) = run(MixingRule::Pcgrad, T, ORTHOGONAL);
        assert_close(&g, &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        // t' = t + h/2 = [0.5, 0.5]; h' = h + t = [0, 1]; sum = [0.5, 1.5].
        let (_, g) = run(MixingRule::Pcgrad, T, OPPOSED);
        assert_close(&g, &[0.5, 1.5, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn smooth_rule_shifts_weight_to_history_as_similarity_falls() {
        let (record, _) = run(MixingRule::Smooth, T, ALIGNED);
        assert!((record.a_h - 0.0).abs() < 1e-6 && (record.a_t - 1.0).abs() < 1e-6);
        let (record, g) = run(MixingRule::Smooth, T, ORTHOGONAL);
        assert!((record.a_h - 0.5).abs() < 1e-6);
        assert_close(&g, &[0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_zero_gradient_is_handled_by_every_rule() {
        for rule in MixingRule::ALL {
            let (record, g) = run(rule, T, ZERO);
            assert_eq!(record.similarity, 0.0);
            assert!(g.iter().all(|v| v.is_finite()), "{rule}: {g:?}");
            assert!(dot(&g, &T) >= 0.0, "{rule}");
            let (_, g) = run(rule, ZERO, T);
            assert!(g.iter().all(|v| v.is_finite()), "{rule}: {g:?}");
        }
    }

    #[test]
    fn rules_parse_from_their_names() {
        for rule in MixingRule::ALL {
            assert_eq!(rule.name().parse::<MixingRule>(), Ok(rule));
        }
        assert_eq!("default".parse::<MixingRule>(), Ok(MixingRule::Symmetric));
        let err = "sgd".parse::<MixingRule>().unwrap_err().to_string();
        assert!(err.contains("sgd") && err.contains("pcgrad"));
    }
}
