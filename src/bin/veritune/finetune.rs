//! `veritune finetune`: verdicts (given, simulated or the ground truth) to
//! targets, fine-tuning with gradient mixing for a fixed number of epochs or
//! until every verdict is honored, then the fidelity report and the weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use indicatif::ProgressBar;
use serde::Serialize;
use veritune::app::library::NamedUpdate;
use veritune::app::options::TrainOptions;
use veritune::app::review::Reviewer;
use veritune::app::reviews::Reviews;
use veritune::app::run::{self as training_run, StepDone, StepReporter, UntilHonored};
use veritune::dataset::{
    AnnotatedImage, AnnotatedSet, file_scale, read_annotated_set, read_verdicts,
};
use veritune::detector::{Detector, shown_detections};
use veritune::fidelity::{
    Asked, EpochCheck, FidelityConfig, Tally, VerdictCheck, history_agreement, verdicts_honored,
};
use veritune::formats::coco::to_coco_json;
use veritune::formats::{ImageLabels, LabelSet};
use veritune::geometry::Detection;
use veritune::geometry::LabeledBox;
use veritune::history::HistoryPolicy;
use veritune::image::Image;
use veritune::mixing::MixScope;
use veritune::predict::{NMS_IOU, Reviewed, check_reviewed};
use veritune::sample::Sample;
use veritune::simulate::simulated_verdicts;
use veritune::trainer::{Control, StepRecord, TrainConfig, TrainError};
use veritune::verdict::{ConfirmedLabel, ImageVerdicts, TargetConfig};
use veritune::weights::StoredDetector;
use veritune::with_any_detector;

use crate::args::FinetuneArgs;
use crate::io::{
    CliError, CliResult, create_dir, load_model, log, matched_to_model, progress, write_file,
    write_json, write_model, write_text,
};
use crate::predict::all_candidates;

/// `veritune finetune`.
pub(crate) fn run(args: FinetuneArgs) -> CliResult {
    let FinetuneArgs {
        model,
        images,
        annotations,
        verdicts,
        simulate_user,
        history_images,
        history_annotations,
        history_output,
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
    } = args;
    let device = Device::flex().autodiff();
    let loaded = load_model(&model, &device)?;
    let settings = TrainOptions {
        epochs: epochs.or(max_epochs),
        until_honored: Some(epochs.is_none()),
        batch_size,
        learning_rate,
        rule: Some(rule),
        threshold,
        freeze_backbone,
    }
    .settings(&loaded)?;
    let config = recipe.apply(TrainConfig {
        scope: if head_only {
            MixScope::Head
        } else {
            MixScope::All
        },
        seed,
        ..settings.train_config()
    });
    let targets = match (verdicts, simulate_user) {
        (Some(path), _) => TargetSource::Verdicts(path),
        (None, true) => TargetSource::SimulatedUser,
        (None, false) => TargetSource::GroundTruth,
    };
    let history = history_images.zip(history_annotations);
    let job = FinetuneJob {
        images: &images,
        annotations: &annotations,
        targets,
        history,
        threshold: settings.threshold,
        freeze_backbone: settings.freeze_backbone,
        confirmed: recipe.confirmed_label,
        until_honored: settings.until_honored,
        config,
        output: &output,
        records: records.as_deref(),
        history_output: history_output.as_deref(),
    };
    let loaded = loaded.with_frozen_backbone(settings.freeze_backbone);
    with_any_detector!(&loaded, model => finetune_with(model.clone(), job))
}

enum TargetSource {
    GroundTruth,
    SimulatedUser,
    Verdicts(PathBuf),
}

struct FinetuneJob<'a> {
    images: &'a Path,
    annotations: &'a Path,
    targets: TargetSource,
    history: Option<(PathBuf, PathBuf)>,
    threshold: f32,
    freeze_backbone: bool,
    /// What a confirmed box's weak candidate gives its positive.
    confirmed: ConfirmedLabel,
    /// Stop after the first epoch that honors every verdict (`config.epochs`
    /// is then the budget).
    until_honored: bool,
    config: TrainConfig,
    output: &'a Path,
    records: Option<&'a Path>,
    /// Where to write the history library after its update.
    history_output: Option<&'a Path>,
}

fn finetune_with<M: StoredDetector>(model: M, args: FinetuneJob) -> CliResult {
    let spec = model.spec().clone();
    let set = read_annotated_set(args.annotations, args.images).map_err(CliError::failed)?;
    let set = matched_to_model(set, &model, args.annotations)?;
    let reviewer = Reviewer {
        spec: &spec,
        target: TargetConfig {
            score_threshold: args.threshold,
            confirmed_label: args.confirmed,
            ..TargetConfig::default()
        },
    };
    // What the user said of each image (the ground truth counts as drawn
    // boxes), on the picture it was said on and the candidates it judged.
    let given: Vec<Given> = match &args.targets {
        TargetSource::GroundTruth => set
            .images
            .iter()
            .map(|image| {
                let verdicts = ImageVerdicts {
                    drawn: image.boxes.clone(),
                    ..ImageVerdicts::default()
                };
                (verdicts, loaded_size(image), Vec::new())
            })
            .collect(),
        TargetSource::SimulatedUser => {
            let refs: Vec<&Image> = set.images.iter().map(|i| &i.image).collect();
            let all = all_candidates(&model, &refs)?;
            set.images
                .iter()
                .zip(all)
                .map(|(image, candidates)| {
                    let shown = shown_detections(&candidates, args.threshold, NMS_IOU);
                    let verdicts = simulated_verdicts(&shown, &image.boxes, 0.5);
                    (verdicts, loaded_size(image), candidates)
                })
                .collect()
        }
        TargetSource::Verdicts(path) => {
            let verdicts = read_verdicts(path).map_err(CliError::failed)?;
            given_in_file(&model, &set.images, &verdicts, path)?
        }
    };
    // Reviewed into samples, kept by file name as the page keeps its images.
    let mut reviews = Reviews::default();
    for (image, (verdicts, given_on, candidates)) in set.images.iter().zip(&given) {
        if reviews.get(&image.file_name).is_some() {
            return Err(CliError::in_file(
                args.annotations,
                format!(
                    "two images are named '{}': verdicts and the history library name images by file, so give each its own",
                    image.file_name
                ),
            ));
        }
        reviews
            .review(
                &reviewer,
                image.file_name.clone(),
                &image.image,
                *given_on,
                verdicts,
                candidates,
            )
            .map_err(|e| {
                // Named as the user gave the verdicts: in a file, or on the image.
                let place = match &args.targets {
                    TargetSource::Verdicts(path) => {
                        format!("{}, image '{}'", path.display(), image.file_name)
                    }
                    _ => image.file_name.clone(),
                };
                CliError::invalid(place, e)
            })?;
    }
    let mut history_set = None;
    if let Some((folder, annotations)) = &args.history {
        let read = read_annotated_set(annotations, folder).map_err(CliError::failed)?;
        let library = history_set.insert(matched_to_model(read, &model, annotations)?);
        for image in &library.images {
            // Named as the page names its sample history, apart from the reviewed images.
            let sample = Sample::from_ground_truth(&image.image, &image.boxes, &spec);
            reviews
                .push_history(format!("history:{}", image.file_name), sample)
                .map_err(|e| CliError::in_file(annotations, e))?;
        }
    } else if args.config.rule.needs_history() {
        eprintln!(
            "veritune: no history library given (--history-images, --history-annotations): this is plain fine-tuning"
        );
    }
    let budget = args.config.epochs;
    let fidelity_config = FidelityConfig {
        score_threshold: args.threshold,
        ..FidelityConfig::default()
    };
    let inputs = reviews.run_inputs();
    let reviewed = inputs.reviewed();
    // The reviewed images the library's update will offer (those not in it).
    let newcomers = reviews.newcomers();
    let mut history = reviews.take_history();
    let until_honored = args.until_honored.then_some(UntilHonored {
        reviewed: &reviewed,
        config: fidelity_config,
    });
    let mut reporter = ProgressReporter {
        bar: progress(0, "training"),
    };
    let outcome = pollster::block_on(training_run::run(
        model,
        args.config,
        &inputs.transfer,
        history.library_mut(),
        until_honored,
        &mut reporter,
    ))
    .map_err(CliError::failed)?;
    reporter.bar.finish_and_clear();
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
        &reviews,
        history_set.as_ref(),
        args.threshold,
    )?;
    fidelity.print(&spec.class_names);
    let history_update = if history_set.is_some() {
        // METHOD.md section 3, as the page does after a run: the reviewed
        // images compete with the members for a place, by gradient.
        let bar = progress(0, "updating the history library");
        let update = pollster::block_on(history.update(
            &outcome.model,
            newcomers,
            HistoryPolicy::GradientBased,
            |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                std::future::ready(())
            },
        ))
        .map_err(|e| CliError::failed(format!("updating the history library failed: {e}")))?;
        bar.finish_and_clear();
        eprintln!(
            "veritune: history library: {} of {} reviewed images admitted, {} evicted, {} samples",
            update.admitted.len(),
            update.offered,
            update.evicted.len(),
            update.members.len()
        );
        if let (Some(dir), Some((folder, _)), Some(library)) =
            (args.history_output, &args.history, &history_set)
        {
            let sources = LibrarySources {
                history: (folder, library),
                reviewed: (args.images, &set, &reviews),
            };
            write_history_library(dir, &update.members, &sources, &spec.class_names)?;
        }
        Some(update)
    } else {
        None
    };
    if args.until_honored {
        let epochs = outcome.records.last().map_or(0, |r| r.epoch + 1);
        if fidelity.verdicts_honored.all() {
            eprintln!("veritune: every verdict honored after {epochs} of at most {budget} epochs");
        } else {
            let unfreeze = if args.freeze_backbone {
                ", or train the whole model (--freeze-backbone false)"
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
                epoch_checks: &outcome.epoch_checks,
                fidelity: &fidelity,
                history_update: history_update.as_ref(),
            },
            Some(path),
        )?;
    }
    Ok(())
}

/// What `finetune --records` writes: every step, the check after each epoch
/// (training until the verdicts are honored), the fidelity check, then what
/// the history library's update did (with a library).
#[derive(Serialize)]
struct FinetuneRecords<'a> {
    steps: &'a [StepRecord],
    epoch_checks: &'a [EpochCheck],
    fidelity: &'a FidelityReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    history_update: Option<&'a NamedUpdate>,
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
    reviews: &Reviews,
    history: Option<&AnnotatedSet>,
    threshold: f32,
) -> CliResult<FidelityReport> {
    let config = FidelityConfig {
        score_threshold: threshold,
        ..FidelityConfig::default()
    };
    let shown_on = |images: &[AnnotatedImage]| -> CliResult<Vec<Vec<Detection>>> {
        let refs: Vec<&Image> = images.iter().map(|i| &i.image).collect();
        Ok(all_candidates(model, &refs)?
            .iter()
            .map(|c| shown_detections(c, threshold, NMS_IOU))
            .collect())
    };
    let reviewed = reviewed_images(set, reviews);
    let checks = pollster::block_on(check_reviewed(model, &reviewed, &config, 8))
        .map_err(CliError::failed)?;
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

/// Where the history library's members come from: the history images with
/// their ground truth, and the reviewed images with their verdicts (each set
/// with its folder).
struct LibrarySources<'a> {
    history: (&'a Path, &'a AnnotatedSet),
    reviewed: (&'a Path, &'a AnnotatedSet, &'a Reviews),
}

/// Writes the history library's `members` (names as the library gives them:
/// `history:<file>` or a reviewed image's file) to `dir`, as a folder that
/// `--history-images` and `--history-annotations` read back: each member's
/// image file, copied, and `labels.json` (COCO, the model's classes) with
/// its boxes in the file's pixels: a history image's ground truth, a
/// reviewed image's confirmed, corrected and drawn boxes. A reviewed image
/// named as a history member is written as `reviewed-<file>`.
fn write_history_library(
    dir: &Path,
    members: &[String],
    sources: &LibrarySources<'_>,
    class_names: &[String],
) -> CliResult {
    let (history_folder, history) = sources.history;
    let (reviewed_folder, reviewed, reviews) = sources.reviewed;
    let mut by_name: BTreeMap<String, (PathBuf, &AnnotatedImage, Vec<LabeledBox>)> = history
        .images
        .iter()
        .map(|image| {
            let source = history_folder.join(&image.file_name);
            let entry = (source, image, image.boxes.clone());
            (format!("history:{}", image.file_name), entry)
        })
        .collect();
    for image in &reviewed.images {
        let Some(verified) = reviews.get(&image.file_name) else {
            continue;
        };
        let source = reviewed_folder.join(&image.file_name);
        by_name.insert(
            image.file_name.clone(),
            (source, image, verified.verdicts.user_labels()),
        );
    }
    let history_files: Vec<&str> = members
        .iter()
        .filter_map(|name| name.strip_prefix("history:"))
        .collect();
    create_dir(dir)?;
    let mut images = Vec::with_capacity(members.len());
    for name in members {
        let (source, image, boxes) = by_name.get(name).ok_or_else(|| {
            CliError::failed(format!(
                "the history library has a member '{name}' that is neither a history image nor a reviewed one"
            ))
        })?;
        let file_name = match name.strip_prefix("history:") {
            Some(file) => file.to_string(),
            None if history_files.contains(&name.as_str()) => format!("reviewed-{name}"),
            None => name.clone(),
        };
        let target = dir.join(&file_name);
        if let Some(parent) = target.parent() {
            create_dir(parent)?;
        }
        let bytes = std::fs::read(source).map_err(|e| CliError::read(source, e))?;
        write_file(&target, &bytes)?;
        let (sx, sy) = file_scale(image.file_size, &image.image);
        images.push(ImageLabels {
            file_name,
            width: image.file_size.0 as u32,
            height: image.file_size.1 as u32,
            boxes: boxes
                .iter()
                .map(|b| LabeledBox {
                    bbox: b.bbox.scale(1.0 / sx, 1.0 / sy),
                    ..*b
                })
                .collect(),
        });
    }
    let labels = LabelSet {
        class_names: class_names.to_vec(),
        images,
    };
    write_text(&dir.join("labels.json"), &to_coco_json(&labels))?;
    eprintln!(
        "veritune: the history library ({} samples) written to {}: pass --history-images {} --history-annotations {} next time",
        members.len(),
        dir.display(),
        dir.display(),
        dir.join("labels.json").display()
    );
    Ok(())
}

/// The images of `set` with the verdicts `reviews` keeps for them, in the
/// loaded images' pixels and in the set's order.
fn reviewed_images<'a>(set: &'a AnnotatedSet, reviews: &'a Reviews) -> Vec<Reviewed<'a>> {
    set.images
        .iter()
        .filter_map(|image| {
            let verified = reviews.get(&image.file_name)?;
            Some(Reviewed {
                image: &image.image,
                verdicts: &verified.verdicts,
                size: loaded_size(image),
            })
        })
        .collect()
}

/// Follows a run on a progress bar: the loss and similarity of each step, a
/// skipped step, and the verdicts honored after each epoch when training
/// until they all are.
struct ProgressReporter {
    bar: ProgressBar,
}

impl<M> StepReporter<M> for ProgressReporter {
    async fn report(&mut self, step: StepDone<'_, M>) -> Result<Control, TrainError> {
        let (bar, record) = (&self.bar, step.record);
        bar.set_length(step.total as u64);
        bar.set_message(format!(
            "epoch {} loss {:.3} s {:+.2}",
            record.epoch + 1,
            record.transfer_loss,
            record.mix.similarity
        ));
        if let Some(reason) = record.skipped {
            log(
                bar,
                format!(
                    "veritune: step {} (epoch {}) skipped: {reason}; the weights were kept as they were and training goes on",
                    record.step + 1,
                    record.epoch + 1
                ),
            );
        }
        if let Some(check) = step.check {
            log(
                bar,
                format!(
                    "veritune: after epoch {}: {} of {} verdicts honored",
                    check.epochs, check.verdicts_honored.passed, check.verdicts_honored.total
                ),
            );
        }
        bar.set_position(step.done as u64);
        Ok(Control::Continue)
    }
}

/// The size of an image as loaded (where its annotations' boxes are).
fn loaded_size(image: &AnnotatedImage) -> [usize; 2] {
    [image.image.width(), image.image.height()]
}

/// What the user said of each image, from the verdicts file at `path`:
/// the verdicts, on the image file's pixels (which the loaded image may be
/// downscaled from), and the detector's candidates they judged.
fn given_in_file<M: Detector>(
    model: &M,
    images: &[AnnotatedImage],
    verdicts: &BTreeMap<String, ImageVerdicts>,
    path: &Path,
) -> CliResult<Vec<Given>> {
    let refs: Vec<&Image> = images.iter().map(|i| &i.image).collect();
    let all = all_candidates(model, &refs)?;
    images
        .iter()
        .zip(all)
        .map(|(image, candidates)| {
            let verdict = verdicts.get(&image.file_name).ok_or_else(|| {
                CliError::in_file(path, format!("no verdicts for '{}': review every image or remove it from the annotations", image.file_name))
            })?;
            let (width, height) = image.file_size;
            Ok((verdict.clone(), [width, height], candidates))
        })
        .collect()
}

/// An image's verdicts, the `[width, height]` of the picture they were
/// given on, and the candidates they judged.
type Given = (ImageVerdicts, [usize; 2], Vec<Detection>);
