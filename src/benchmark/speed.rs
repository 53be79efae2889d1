//! The speed benchmark (`veritune bench speed`): milliseconds per forward
//! pass, per training step of the method (two backward passes, the mix,
//! Adam) and per plain step at the same and at twice the batch, the cost of
//! the gradient-based history update, and peak memory, on every backend this
//! build has.
//!
//! Each measurement runs in a process of its own (see [`measure`]), so its
//! peak resident memory is its own; the CLI starts them and gathers the
//! figures, with those of the PyTorch peer (`bench/peer/torch_speed.py`),
//! which reads the files [`write_peer_files`] writes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::detector::nanodet::NanoDet;
use crate::detector::{Detector, input_batch};
use crate::geometry::{BBox, LabeledBox};
use crate::history::{HistoryConfig, HistoryLibrary, HistoryPolicy};
use crate::image::Image;
use crate::mixing::MixingRule;
use crate::sample::Sample;
use crate::trainer::{TrainConfig, TrainError, TrainingRun, update_history};
use crate::verdict::TrainingTarget;
use crate::weights::{
    AnyDetector, StoredDetector, WeightsError, WeightsFormat, load_detector, save_detector,
};

/// A burn backend the benchmark can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's flex CPU backend (always built).
    Flex,
    /// burn's wgpu backend (feature `bench-wgpu`): Vulkan, on a GPU or on
    /// Mesa's software driver.
    Wgpu,
    /// burn's NdArray CPU backend (feature `bench-ndarray`).
    NdArray,
}

impl Backend {
    /// Every backend, built or not.
    pub const ALL: [Backend; 3] = [Backend::Flex, Backend::Wgpu, Backend::NdArray];

    /// The backends this build has.
    pub fn built() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_built()).collect()
    }

    /// Whether this build has the backend.
    pub fn is_built(self) -> bool {
        match self {
            Backend::Flex => true,
            Backend::Wgpu => cfg!(feature = "bench-wgpu"),
            Backend::NdArray => cfg!(feature = "bench-ndarray"),
        }
    }

    /// The backend's name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
            Backend::NdArray => "ndarray",
        }
    }

    /// The backend's default device; an error when this build lacks it.
    pub fn device(self) -> Result<Device, SpeedError> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "bench-wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(feature = "bench-ndarray")]
            #[allow(deprecated)]
            Backend::NdArray => Ok(Device::ndarray()),
            #[allow(unreachable_patterns)]
            other => Err(SpeedError::NotBuilt(other)),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = SpeedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| SpeedError::UnknownBackend(s.to_string()))
    }
}

/// What one measurement times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// A forward pass at the batch size, without gradients.
    Forward,
    /// A training step with transfer samples only (one backward pass).
    PlainStep,
    /// A plain step at twice the batch size: the ideal cost of a mixed step.
    PlainStep2x,
    /// The method's step: transfer and history batches, two backward
    /// passes, the statistics and the mix (symmetric rule), Adam.
    MixedStep,
    /// One per-sample gradient of the gradient-based history update (the
    /// update computes one per member and newcomer).
    HistoryGradient,
    /// The method's step with NanoDet's backbone frozen (the neck and head
    /// train; the page's default for NanoDet). The small detector has no
    /// backbone to freeze: for it this is the mixed step. Not in
    /// [`Measure::ALL`]: asked for by name.
    MixedStepFrozen,
}

impl Measure {
    /// Every measurement, in table order.
    pub const ALL: [Measure; 5] = [
        Measure::Forward,
        Measure::PlainStep,
        Measure::PlainStep2x,
        Measure::MixedStep,
        Measure::HistoryGradient,
    ];

    /// Every measurement that can be asked for by name.
    pub const SELECTABLE: [Measure; 6] = [
        Measure::Forward,
        Measure::PlainStep,
        Measure::PlainStep2x,
        Measure::MixedStep,
        Measure::HistoryGradient,
        Measure::MixedStepFrozen,
    ];

    /// The measurement's name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Forward => "forward",
            Measure::PlainStep => "plain-step",
            Measure::PlainStep2x => "plain-step-2x",
            Measure::MixedStep => "mixed-step",
            Measure::HistoryGradient => "history-gradient",
            Measure::MixedStepFrozen => "mixed-step-frozen",
        }
    }

    /// Images one timed operation passes through the network at `batch`.
    pub fn images(self, batch: usize) -> usize {
        match self {
            Measure::Forward | Measure::PlainStep => batch,
            Measure::PlainStep2x | Measure::MixedStep | Measure::MixedStepFrozen => 2 * batch,
            Measure::HistoryGradient => 1,
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Measure {
    type Err = SpeedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::SELECTABLE
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| SpeedError::UnknownMeasure(s.to_string()))
    }
}

/// How long and how often each measurement runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeedSettings {
    /// Images per batch (transfer and history batches alike).
    pub batch: usize,
    /// Untimed runs first (kernel compilation, autotuning, allocator warm-up).
    pub warmup: usize,
    /// Timed runs.
    pub repeats: usize,
}

/// The times of one measurement and the memory its process needed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Milliseconds of each timed run.
    pub ms: Vec<f64>,
    /// The process's peak resident memory (Linux `VmHWM`), when known.
    pub peak_rss_bytes: Option<u64>,
}

impl Measurement {
    /// The median of the timed runs, in milliseconds.
    pub fn median_ms(&self) -> f64 {
        median(&self.ms)
    }
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// What went wrong in a speed measurement.
#[derive(Debug, thiserror::Error)]
pub enum SpeedError {
    /// The backend was not compiled into this build.
    #[error(
        "the {0} backend is not in this build: build with `--features bench-{0}` (scripts/bench-speed does)"
    )]
    NotBuilt(Backend),
    /// A backend name nobody knows.
    #[error("unknown backend '{0}': use flex, wgpu or ndarray")]
    UnknownBackend(String),
    /// A measurement name nobody knows.
    #[error(
        "unknown measurement '{0}': use forward, plain-step, plain-step-2x, mixed-step, history-gradient or mixed-step-frozen"
    )]
    UnknownMeasure(String),
    /// The settings cannot be measured.
    #[error("the batch size and the number of timed runs must be at least 1")]
    EmptySettings,
    /// The weights did not load.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The device reported an error.
    #[error("the device failed: {0}")]
    Device(String),
    /// A file for the peer could not be written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Times `measure` for the detector of `weights` on `backend`: `warmup`
/// untimed runs, then `repeats` timed ones, each ended by a device sync. The
/// peak memory is the whole process's, so call this once per process.
pub fn measure(
    weights: &[u8],
    backend: Backend,
    measure: Measure,
    settings: SpeedSettings,
) -> Result<Measurement, SpeedError> {
    if settings.batch == 0 || settings.repeats == 0 {
        return Err(SpeedError::EmptySettings);
    }
    let device = backend.device()?;
    let device = match measure {
        Measure::Forward => device,
        _ => device.autodiff(),
    };
    let model =
        load_detector(weights, &device)?.with_frozen_backbone(measure == Measure::MixedStepFrozen);
    let ms = match model {
        AnyDetector::Fcos(model) => time_measure(*model, &device, measure, settings)?,
        AnyDetector::NanoDet(model) => time_measure(*model, &device, measure, settings)?,
    };
    Ok(Measurement {
        ms,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

fn time_measure<M: Detector>(
    model: M,
    device: &Device,
    measure: Measure,
    settings: SpeedSettings,
) -> Result<Vec<f64>, SpeedError> {
    let SpeedSettings {
        batch,
        warmup,
        repeats,
    } = settings;
    let spec = model.spec().clone();
    let sync = || {
        device
            .sync()
            .map_err(|e| SpeedError::Device(format!("{e:?}")))
    };
    let timed = |mut run: Box<dyn FnMut() -> Result<(), SpeedError> + '_>| {
        let mut ms = Vec::with_capacity(repeats);
        for k in 0..warmup + repeats {
            let start = Instant::now();
            run()?;
            sync()?;
            if k >= warmup {
                ms.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        Ok::<_, SpeedError>(ms)
    };
    match measure {
        Measure::Forward => {
            let samples = synthetic_samples(&spec, batch, 0);
            let images: Vec<&Image> = samples.iter().map(|s| &s.image).collect();
            let input = input_batch(&spec, &images, device);
            timed(Box::new(|| {
                model.predictions(model.forward(input.clone()));
                Ok(())
            }))
        }
        Measure::PlainStep
        | Measure::PlainStep2x
        | Measure::MixedStep
        | Measure::MixedStepFrozen => {
            let (size, rule) = match measure {
                Measure::PlainStep => (batch, MixingRule::TransferOnly),
                Measure::PlainStep2x => (2 * batch, MixingRule::TransferOnly),
                _ => (batch, MixingRule::default()),
            };
            let transfer = synthetic_samples(&spec, size, 0);
            let mut history = HistoryLibrary::with_members(
                HistoryConfig::default(),
                synthetic_samples(&spec, batch, 1),
            )
            .map_err(TrainError::from)?;
            let config = TrainConfig {
                epochs: warmup + repeats,
                batch_size: size,
                rule,
                ..TrainConfig::default()
            };
            let mut run = TrainingRun::new(model, config, &transfer, &mut history)?;
            timed(Box::new(move || {
                pollster::block_on(run.step())?;
                Ok(())
            }))
        }
        Measure::HistoryGradient => {
            // A library of `batch` members offered `batch` newcomers: one
            // gradient per sample; the time per gradient is reported.
            let members = synthetic_samples(&spec, batch, 1);
            let newcomers = synthetic_samples(&spec, batch, 0);
            let per_update = (2 * batch) as f64;
            let totals = timed(Box::new(|| {
                let mut library =
                    HistoryLibrary::with_members(HistoryConfig::default(), members.clone())
                        .map_err(TrainError::from)?;
                pollster::block_on(update_history(
                    &model,
                    &mut library,
                    newcomers.clone(),
                    HistoryPolicy::GradientBased,
                ))?;
                Ok(())
            }))?;
            Ok(totals.into_iter().map(|ms| ms / per_update).collect())
        }
    }
}

/// `n` deterministic samples at the detector's input size: coloured noise
/// with one to four boxes of random classes, so the losses and the label
/// assignment do the work real images give them.
pub fn synthetic_samples(spec: &crate::detector::DetectorSpec, n: usize, seed: u64) -> Vec<Sample> {
    let [width, height] = spec.input_size;
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let pixels: Vec<f32> = (0..width * height * 3).map(|_| rng.random()).collect();
            let image = Image::from_rgb(width, height, pixels)
                .expect("the pixel count matches the size by construction");
            let boxes: Vec<LabeledBox> = (0..rng.random_range(1..=4))
                .map(|_| {
                    let (w, h) = (width as f32, height as f32);
                    let bw = rng.random_range(0.1..0.5) * w;
                    let bh = rng.random_range(0.1..0.5) * h;
                    let x0 = rng.random_range(0.0..w - bw);
                    let y0 = rng.random_range(0.0..h - bh);
                    LabeledBox {
                        bbox: BBox::new(x0, y0, x0 + bw, y0 + bh),
                        class: rng.random_range(0..spec.num_classes()),
                    }
                })
                .collect();
            Sample {
                image,
                target: TrainingTarget::from_ground_truth(&boxes),
            }
        })
        .collect()
}

/// The machine in one line: the CPU's model name and its logical cores (Linux).
pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cpu} ({}), {cores} logical cores available",
        vector_instructions()
    )
}

/// The widest x86 vector instructions the CPU offers (flex picks its kernels by them at run time).
fn vector_instructions() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2 with FMA";
        }
        "no AVX2"
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::env::consts::ARCH
}

/// The process's peak resident memory in bytes (Linux `VmHWM`); `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Writes what the PyTorch peer needs into `dir`: `weights.safetensors`,
/// `input.safetensors` (`images`, the preprocessed batch),
/// `reference.safetensors` (this build's flex forward outputs on it, for the
/// peer's parity check) and `targets.json` (the batch's boxes).
pub fn write_peer_files(weights: &[u8], batch: usize, dir: &Path) -> Result<(), SpeedError> {
    let device = Device::flex();
    match load_detector(weights, &device)? {
        AnyDetector::Fcos(model) => {
            let outputs = |model: &crate::detector::fcos::Fcos, input: Tensor<4>| {
                let out = model.forward(input);
                vec![
                    ("class_logits".to_string(), out.class_logits),
                    ("box_logits".to_string(), out.box_logits),
                ]
            };
            write_peer_model(&*model, batch, dir, outputs)
        }
        AnyDetector::NanoDet(model) => {
            let outputs = |model: &NanoDet, input: Tensor<4>| {
                let out = model.forward(input);
                out.levels
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| (format!("level.{i}"), t))
                    .collect()
            };
            write_peer_model(&*model, batch, dir, outputs)
        }
    }
}

fn write_peer_model<M: StoredDetector>(
    model: &M,
    batch: usize,
    dir: &Path,
    outputs: impl Fn(&M, Tensor<4>) -> Vec<(String, Tensor<4>)>,
) -> Result<(), SpeedError> {
    let device = Device::flex();
    let spec = model.spec();
    let samples = synthetic_samples(spec, batch, 0);
    let images: Vec<&Image> = samples.iter().map(|s| &s.image).collect();
    let input = input_batch(spec, &images, &device);
    let reference = outputs(model, input.clone());
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| SpeedError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let weights = pollster::block_on(save_detector(model, WeightsFormat::Safetensors))?;
    write("weights.safetensors", &weights)?;
    write(
        "input.safetensors",
        &tensors_file(vec![("images".to_string(), input.into_data())])?,
    )?;
    write(
        "reference.safetensors",
        &tensors_file(
            reference
                .into_iter()
                .map(|(name, t)| (name, t.into_data()))
                .collect(),
        )?,
    )?;
    let targets: Vec<Vec<serde_json::Value>> = samples
        .iter()
        .map(|s| {
            s.target
                .positives
                .iter()
                .map(|p| {
                    let b = p.label.bbox;
                    serde_json::json!({ "bbox": [b.x0, b.y0, b.x1, b.y1], "class": p.label.class })
                })
                .collect()
        })
        .collect();
    let json = serde_json::to_vec_pretty(&targets).map_err(|e| SpeedError::Write {
        path: "targets.json".into(),
        message: e.to_string(),
    })?;
    write("targets.json", &json)
}

/// f32 tensors as a safetensors file.
fn tensors_file(tensors: Vec<(String, TensorData)>) -> Result<Vec<u8>, SpeedError> {
    super::f32_safetensors(tensors).map_err(|message| SpeedError::Write {
        path: "a safetensors file".into(),
        message,
    })
}

/// One line of the speed table: a measurement of one model on one backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeedRow {
    /// The model's name in the table, e.g. `nanodet-g 320`.
    pub model: String,
    /// The backend.
    pub backend: Backend,
    /// What was timed.
    pub measure: Measure,
    /// The figures.
    pub measurement: Measurement,
}

/// What the PyTorch peer measured for one model (`bench/peer/torch_speed.py`'s JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerFigures {
    /// PyTorch's version.
    #[serde(default)]
    pub torch_version: String,
    /// CPU threads PyTorch used.
    #[serde(default)]
    pub threads: usize,
    /// Largest absolute difference from veritune's outputs, per output.
    #[serde(default)]
    pub parity: BTreeMap<String, f64>,
    /// Milliseconds of each timed forward pass.
    #[serde(default)]
    pub forward_ms: Vec<f64>,
    /// Milliseconds of each timed plain step.
    #[serde(default)]
    pub plain_step_ms: Vec<f64>,
    /// Milliseconds of each timed plain step at twice the batch.
    #[serde(default)]
    pub plain_step_2x_ms: Vec<f64>,
    /// Milliseconds of each timed mixed step.
    #[serde(default)]
    pub mixed_step_ms: Vec<f64>,
    /// The peer process's peak resident memory.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
}

impl PeerFigures {
    /// The peer's times for `measure`, when it measures it.
    pub fn ms(&self, measure: Measure) -> Option<&[f64]> {
        let ms = match measure {
            Measure::Forward => &self.forward_ms,
            Measure::PlainStep => &self.plain_step_ms,
            Measure::PlainStep2x => &self.plain_step_2x_ms,
            Measure::MixedStep => &self.mixed_step_ms,
            Measure::HistoryGradient | Measure::MixedStepFrozen => return None,
        };
        (!ms.is_empty()).then_some(ms.as_slice())
    }
}

/// The speed table in Markdown: one line per measurement with the median,
/// the range, images per second and peak memory, PyTorch's median and the
/// ratio veritune / PyTorch where the peer ran; then the method's overhead
/// (mixed step / plain step at twice the batch) per model and backend.
pub fn render_table(
    rows: &[SpeedRow],
    peers: &BTreeMap<String, PeerFigures>,
    batch: usize,
) -> String {
    let mib = |b: Option<u64>| {
        b.map_or("-".to_string(), |b| {
            format!("{:.0}", b as f64 / (1 << 20) as f64)
        })
    };
    let mut out = String::from(
        "| model | backend | measure | median ms | range ms | images/s | peak MiB | PyTorch ms | PyTorch peak MiB | veritune / PyTorch |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let m = &row.measurement;
        let med = m.median_ms();
        let (lo, hi) =
            m.ms.iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
        let per_second = row.measure.images(batch) as f64 / (med / 1e3);
        let peer = peers.get(&row.model);
        let peer_ms = peer.and_then(|p| p.ms(row.measure)).map(median);
        let (peer_cell, peak_cell, ratio_cell) = match (peer, peer_ms) {
            (Some(p), Some(pm)) => (
                format!("{pm:.1}"),
                mib(p.peak_rss_bytes),
                format!("{:.2}", med / pm),
            ),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {med:.1} | {lo:.1}–{hi:.1} | {per_second:.1} | {} | {peer_cell} | {peak_cell} | {ratio_cell} |\n",
            row.model,
            row.backend,
            row.measure,
            mib(m.peak_rss_bytes),
        ));
    }
    let overheads: Vec<String> = rows
        .iter()
        .filter(|r| r.measure == Measure::MixedStep)
        .filter_map(|mixed| {
            let plain = rows.iter().find(|r| {
                r.measure == Measure::PlainStep2x
                    && r.model == mixed.model
                    && r.backend == mixed.backend
            })?;
            Some(format!(
                "- {} on {}: mixed step / plain step at batch {}: {:.2}",
                mixed.model,
                mixed.backend,
                2 * batch,
                mixed.measurement.median_ms() / plain.measurement.median_ms()
            ))
        })
        .collect();
    if !overheads.is_empty() {
        out.push_str("\nThe method's overhead (ideal: about 1):\n\n");
        out.push_str(&overheads.join("\n"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::fcos::FcosConfig;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        for m in Measure::ALL {
            assert_eq!(m.name().parse::<Measure>().unwrap(), m);
        }
        assert!(matches!(
            "cuda".parse::<Backend>(),
            Err(SpeedError::UnknownBackend(_))
        ));
        assert!(Backend::built().contains(&Backend::Flex));
    }

    #[test]
    fn the_table_has_ratios_where_the_peer_ran_and_the_overhead() {
        let row = |measure, ms: &[f64]| SpeedRow {
            model: "m".into(),
            backend: Backend::Flex,
            measure,
            measurement: Measurement {
                ms: ms.to_vec(),
                peak_rss_bytes: Some(3 << 20),
            },
        };
        let rows = [
            row(Measure::Forward, &[10.0, 30.0, 20.0]),
            row(Measure::PlainStep2x, &[100.0]),
            row(Measure::MixedStep, &[110.0]),
            row(Measure::HistoryGradient, &[5.0]),
        ];
        let peer = PeerFigures {
            forward_ms: vec![10.0],
            peak_rss_bytes: Some(2 << 20),
            ..PeerFigures::default()
        };
        let table = render_table(&rows, &BTreeMap::from([("m".to_string(), peer)]), 4);
        assert!(
            table.contains(
                "| m | flex | forward | 20.0 | 10.0–30.0 | 200.0 | 3 | 10.0 | 2 | 2.00 |"
            ),
            "{table}"
        );
        assert!(
            table
                .contains("| m | flex | mixed-step | 110.0 | 110.0–110.0 | 72.7 | 3 | - | - | - |"),
            "{table}"
        );
        assert!(
            table.contains("| m | flex | history-gradient | 5.0 | 5.0–5.0 | 200.0 |"),
            "{table}"
        );
        assert!(
            table.contains("- m on flex: mixed step / plain step at batch 8: 1.10"),
            "{table}"
        );
    }

    #[test]
    fn every_measurement_runs_on_a_tiny_detector() {
        let config = FcosConfig::new(vec!["a".into(), "b".into()]).with_input_size(64);
        let bytes = pollster::block_on(save_detector(
            &config.init(&Device::flex()),
            WeightsFormat::Burnpack,
        ))
        .unwrap();
        let settings = SpeedSettings {
            batch: 2,
            warmup: 1,
            repeats: 2,
        };
        for m in Measure::SELECTABLE {
            let result = measure(&bytes, Backend::Flex, m, settings).unwrap();
            assert_eq!(result.ms.len(), 2, "{m}");
            assert!(
                result.ms.iter().all(|ms| ms.is_finite() && *ms > 0.0),
                "{m}: {:?}",
                result.ms
            );
        }
    }

    #[test]
    fn peer_files_hold_the_batch_and_the_reference_outputs() {
        let config = FcosConfig::new(vec!["a".into()]).with_input_size(64);
        let bytes = pollster::block_on(save_detector(
            &config.init(&Device::flex()),
            WeightsFormat::Burnpack,
        ))
        .unwrap();
        let dir = std::env::temp_dir().join(format!("veritune-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_peer_files(&bytes, 3, &dir).unwrap();
        let input = std::fs::read(dir.join("input.safetensors")).unwrap();
        let input = safetensors::SafeTensors::deserialize(&input).unwrap();
        assert_eq!(input.tensor("images").unwrap().shape(), &[3, 3, 64, 64]);
        let reference = std::fs::read(dir.join("reference.safetensors")).unwrap();
        let reference = safetensors::SafeTensors::deserialize(&reference).unwrap();
        assert_eq!(
            reference.tensor("class_logits").unwrap().shape()[..2],
            [3, 1]
        );
        let targets: Vec<Vec<serde_json::Value>> =
            serde_json::from_slice(&std::fs::read(dir.join("targets.json")).unwrap()).unwrap();
        assert_eq!(targets.len(), 3);
        assert!(targets.iter().all(|t| (1..=4).contains(&t.len())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
