//! Training the default meta-model: the small detector on the general
//! scenario's scenes and, for a broad meta-model, the broad scenario's,
//! generated on the fly, then measured on held-out scenes of every scenario.

use std::time::Instant;

use burn::optim::AdamConfig;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::detector::Detector;
use crate::detector::fcos::{Fcos, FcosConfig};
use crate::evaluate::{MAP_IOU, evaluate};
use crate::sample::Sample;
use crate::scenes::{DIGIT_CLASSES, Scenario, SceneGenerator, ScenesError, Split};
use crate::schedule::Schedule;
use crate::trainer::loss_and_gradients;

/// Settings of a pretraining run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Scenes per step.
    pub batch_size: usize,
    /// Peak learning rate (Adam), reached after a short warm-up and decayed
    /// along a cosine to 1% of it.
    pub learning_rate: f64,
    /// Seed of the training scenes and of the initial weights.
    pub seed: u64,
    /// Scene and input side in pixels.
    pub input_size: usize,
    /// Held-out scenes per scenario for the reported mAP.
    pub eval_scenes: usize,
    /// Channels of the detector's first stage (`FcosConfig::width`); a
    /// model to start from keeps its own.
    #[serde(default = "default_width")]
    pub width: usize,
    /// Share of each batch drawn from the broad scenario (colour ink of
    /// either polarity on photographs), the rest from the general one.
    #[serde(default)]
    pub broad_share: f64,
    /// The weights file training started from, when not from random weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

/// The detector's default width, that of manifests written before `width` was recorded.
fn default_width() -> usize {
    FcosConfig::new(Vec::new()).width
}

impl PretrainConfig {
    /// Scenes per batch from the broad scenario; the first of each batch.
    pub fn broad_scenes(&self) -> usize {
        (self.batch_size as f64 * self.broad_share).round() as usize
    }
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            steps: 3000,
            batch_size: 8,
            learning_rate: 2e-3,
            seed: 0,
            input_size: 256,
            eval_scenes: 200,
            width: default_width(),
            broad_share: 0.0,
            init: None,
        }
    }
}

/// What a pretraining run produced, committed next to the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainManifest {
    /// The run's settings (its seed is the data seed).
    pub config: PretrainConfig,
    /// Parameters of the detector.
    pub parameters: usize,
    /// mAP@0.5 on held-out general scenes (test split, seed `config.seed + 1`).
    pub general_map: f32,
    /// mAP@0.5 on held-out transfer scenes before any fine-tuning.
    pub transfer_map: f32,
    /// mAP@0.5 on held-out scenes of the third scenario.
    pub third_map: f32,
    /// mAP@0.5 on held-out broad scenes.
    #[serde(default)]
    pub broad_map: f32,
    /// Wall time of the training steps in seconds.
    pub train_seconds: f64,
    /// Mean loss over the last 100 steps.
    pub final_loss: f64,
    /// The manifest of the model training started from (`config.init`),
    /// when it has one: how the meta-model was made, stage by stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_manifest: Option<Box<PretrainManifest>>,
}

/// Seed of the held-out scenes used to measure a model.
pub fn eval_seed(seed: u64) -> u64 {
    seed + 1
}

/// The device pretraining runs on; a model to start from must live there.
pub fn pretrain_device() -> Device {
    Device::flex().autodiff()
}

/// Trains the default detector, from `init` or from random weights, on
/// general and broad scenes (in the config's shares); `on_step(step, steps,
/// loss)` after every step.
pub fn pretrain(
    generator: &SceneGenerator,
    config: &PretrainConfig,
    init: Option<Fcos>,
    mut on_step: impl FnMut(usize, usize, f64),
) -> Result<(Fcos, f64, f64), ScenesError> {
    let device = pretrain_device();
    device.seed(config.seed);
    let mut model = init.unwrap_or_else(|| {
        let classes = DIGIT_CLASSES.iter().map(|c| c.to_string()).collect();
        FcosConfig::new(classes)
            .with_input_size(config.input_size)
            .with_width(config.width)
            .init(&device)
    });
    let spec = model.spec().clone();
    let mut optimizer = AdamConfig::new().init();
    let start = Instant::now();
    let mut recent = Vec::with_capacity(100);
    for step in 0..config.steps {
        let samples = (0..config.batch_size)
            .map(|i| {
                let index = (step * config.batch_size + i) as u64;
                let scenario = if i < config.broad_scenes() {
                    Scenario::Broad
                } else {
                    Scenario::General
                };
                let scene = generator.scene(
                    scenario,
                    Split::Train,
                    config.seed,
                    index,
                    config.input_size,
                )?;
                Ok(Sample::from_ground_truth(
                    &scene.image,
                    &scene.boxes(),
                    &spec,
                ))
            })
            .collect::<Result<Vec<Sample>, ScenesError>>()?;
        let refs: Vec<&Sample> = samples.iter().collect();
        let (loss, grads) = loss_and_gradients(&model, &refs, &device);
        let loss: f32 = loss.into_scalar();
        if loss.is_finite() {
            let lr = Schedule::WarmupCosine.learning_rate(step, config.steps, config.learning_rate);
            model = optimizer.step(lr, model, grads);
        }
        if recent.len() == 100 {
            recent.remove(0);
        }
        recent.push(loss as f64);
        on_step(step, config.steps, loss as f64);
    }
    let final_loss = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
    Ok((model, start.elapsed().as_secs_f64(), final_loss))
}

/// mAP@0.5 of `model` on `count` held-out scenes of `scenario`.
pub fn scenario_map<M: Detector>(
    model: &M,
    generator: &SceneGenerator,
    scenario: Scenario,
    seed: u64,
    count: usize,
) -> Result<f32, String> {
    let size = model.spec().input_size[0];
    let scenes = generator
        .scenes(scenario, Split::Test, count, eval_seed(seed), size)
        .map_err(|e| e.to_string())?;
    let boxes: Vec<_> = scenes.iter().map(|s| s.boxes()).collect();
    let pairs: Vec<_> = scenes
        .iter()
        .zip(&boxes)
        .map(|(s, b)| (&s.image, b.as_slice()))
        .collect();
    let report = pollster::block_on(evaluate(model, &pairs, 8, MAP_IOU, |_| {}))?;
    Ok(report.mean)
}
