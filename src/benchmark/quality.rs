//! The quality benchmark (issue: real-data scenarios): for N verified transfer
//! images, a simulated user gives verdicts, the targets follow METHOD.md
//! section 1, and the meta-model is fine-tuned with every mixing rule; transfer
//! and general mAP@0.5 and forgetting are measured on held-out scenes.
//! A second experiment runs two rounds (transfer, then the third scenario) and
//! compares the gradient-based history update with reservoir sampling.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::Spread;
use crate::app::review::Reviewer;
use crate::detector::fcos::Fcos;
use crate::detector::{Detector, shown_detections};
use crate::evaluate::{MAP_IOU, evaluate};
use crate::fidelity::{FidelityConfig, Tally, verdicts_honored};
use crate::geometry::LabeledBox;
use crate::history::{HistoryConfig, HistoryLibrary, HistoryPolicy};
use crate::image::Image;
use crate::mixing::MixingRule;
use crate::predict::{NMS_IOU, Reviewed, boxes_kept, candidates, check_reviewed};
use crate::pretrain::eval_seed;
use crate::sample::Sample;
use crate::scenes::{Scenario, Scene, SceneGenerator, Split};
use crate::simulate::simulated_verdicts;
use crate::trainer::{Control, TrainConfig, TrainOutcome, train, update_history};
use crate::verdict::{ImageVerdicts, TargetConfig};

/// Settings of the quality benchmark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityConfig {
    /// Numbers of verified transfer images.
    pub sizes: Vec<usize>,
    /// Seeds; each draws its own transfer images and shuffles.
    pub seeds: Vec<u64>,
    /// Rules compared.
    pub rules: Vec<MixingRule>,
    /// The settings of every fine-tuning run (epochs, batch, learning rate,
    /// schedule, weight decay, augmentation); each run sets its own rule and
    /// seed.
    pub training: TrainConfig,
    /// History samples (general training scenes of the meta-model).
    pub history_size: usize,
    /// Held-out scenes per scenario for mAP.
    pub test_scenes: usize,
    /// Seed the meta-model was pretrained with (its training scenes are the history).
    pub data_seed: u64,
    /// Which scenes the figures are measured on.
    pub held_out: HeldOut,
    /// How the simulated user's verdicts become training targets.
    #[serde(default)]
    pub target: TargetConfig,
}

/// The scenes a benchmark measures on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HeldOut {
    /// The held-out test scenes (the reported figures).
    Test,
    /// Validation scenes from the training split, never used for fine-tuning:
    /// where settings such as epochs and learning rate are chosen, so that
    /// the test scenes are never tuned on.
    Validation,
}

impl HeldOut {
    /// Split and seed of the scenes of this kind for a data seed.
    fn split_and_seed(self, data_seed: u64) -> (Split, u64) {
        match self {
            HeldOut::Test => (Split::Test, eval_seed(data_seed)),
            HeldOut::Validation => (Split::Train, 2000 + data_seed),
        }
    }
}

impl QualityConfig {
    /// The full benchmark.
    pub fn full() -> Self {
        Self {
            sizes: vec![5, 10, 20, 50],
            seeds: vec![0, 1, 2],
            rules: MixingRule::ALL.to_vec(),
            training: TrainConfig {
                epochs: 10,
                batch_size: 8,
                learning_rate: 5e-4,
                ..TrainConfig::default()
            },
            history_size: 256,
            test_scenes: 200,
            data_seed: 0,
            held_out: HeldOut::Test,
            target: TargetConfig::default(),
        }
    }

    /// The CI check of the pipeline: N = 5, one seed, two epochs, few scenes.
    pub fn quick() -> Self {
        let full = Self::full();
        Self {
            training: TrainConfig {
                epochs: 2,
                ..full.training.clone()
            },
            sizes: vec![5],
            seeds: vec![0],
            history_size: 32,
            test_scenes: 16,
            ..full
        }
    }
}

impl QualityConfig {
    /// The fine-tuning settings of one run.
    fn train_config(&self, rule: MixingRule, seed: u64) -> TrainConfig {
        TrainConfig {
            rule,
            seed,
            ..self.training.clone()
        }
    }
}

/// One fine-tuning run's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityRow {
    /// Verified transfer images.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Mixing rule.
    pub rule: MixingRule,
    /// Transfer mAP@0.5 after fine-tuning.
    pub transfer_map: f64,
    /// General mAP@0.5 after fine-tuning.
    pub general_map: f64,
    /// General mAP before minus after.
    pub forgetting: f64,
    /// Wall time of the fine-tuning in seconds.
    pub seconds: f64,
    /// The fraction of the simulated user's verdicts the fine-tuned model
    /// honors on the images it was trained on.
    pub verdicts_honored: f64,
    /// The fraction of the history library's boxes it still shows.
    pub history_agreement: f64,
    /// Steps whose transfer and history gradients conflicted (similarity
    /// below 0): the only steps where the default rule and replay differ.
    pub conflicting_steps: usize,
}

/// mAP@0.5 of `model` on scenes.
pub fn scenes_map<M: Detector>(model: &M, scenes: &[Scene]) -> Result<f64, String> {
    let boxes: Vec<Vec<LabeledBox>> = scenes.iter().map(Scene::boxes).collect();
    let pairs: Vec<(&Image, &[LabeledBox])> = scenes
        .iter()
        .zip(&boxes)
        .map(|(s, b)| (&s.image, b.as_slice()))
        .collect();
    let report = pollster::block_on(evaluate(model, &pairs, 8, MAP_IOU, |_| {}))?;
    Ok(report.mean as f64)
}

/// Scenes a simulated user verified on a model's predictions.
pub struct Verified {
    /// The scenes.
    pub scenes: Vec<Scene>,
    /// The verdicts given on each.
    pub verdicts: Vec<ImageVerdicts>,
    /// The transfer samples built from them (METHOD.md section 1).
    pub samples: Vec<Sample>,
}

impl Verified {
    /// `scenes` as a simulated user verifies them on the predictions of
    /// `model`, their targets built by `config`.
    pub fn new<M: Detector>(
        model: &M,
        scenes: Vec<Scene>,
        config: &TargetConfig,
    ) -> Result<Self, String> {
        let images: Vec<&Image> = scenes.iter().map(|s| &s.image).collect();
        let all = pollster::block_on(candidates(model, &images, 8))?;
        let reviewer = Reviewer {
            spec: model.spec(),
            target: *config,
        };
        let mut verdicts = Vec::with_capacity(scenes.len());
        let mut samples = Vec::with_capacity(scenes.len());
        for (scene, candidates) in scenes.iter().zip(&all) {
            let shown = shown_detections(candidates, config.score_threshold, NMS_IOU);
            let given = simulated_verdicts(&shown, &scene.boxes(), 0.5);
            let size = [scene.image.width(), scene.image.height()];
            let reviewed = reviewer
                .review(&scene.image, size, &given, candidates)
                .map_err(|e| e.to_string())?;
            samples.push(reviewed.sample);
            verdicts.push(reviewed.verdicts);
        }
        Ok(Self {
            scenes,
            verdicts,
            samples,
        })
    }

    /// How many of the verdicts `model` honors on these scenes.
    pub fn honored_by<M: Detector>(&self, model: &M) -> Result<Tally, String> {
        let reviewed: Vec<Reviewed> = self
            .scenes
            .iter()
            .zip(&self.verdicts)
            .map(|(scene, verdicts)| Reviewed {
                image: &scene.image,
                verdicts,
                size: [scene.image.width(), scene.image.height()],
            })
            .collect();
        let checks = pollster::block_on(check_reviewed(model, &reviewed, &fidelity_config(), 8))?;
        Ok(verdicts_honored(checks.iter().map(Vec::as_slice)))
    }
}

/// The fidelity rule at the simulated user's display threshold.
fn fidelity_config() -> FidelityConfig {
    FidelityConfig {
        score_threshold: TargetConfig::default().score_threshold,
        ..FidelityConfig::default()
    }
}

/// How many of the boxes of `scenes` `model` still shows.
fn agreement_on<M: Detector>(model: &M, scenes: &[Scene]) -> Result<Tally, String> {
    let labels: Vec<Vec<LabeledBox>> = scenes.iter().map(Scene::boxes).collect();
    let images: Vec<&Image> = scenes.iter().map(|s| &s.image).collect();
    pollster::block_on(boxes_kept(model, &images, &labels, &fidelity_config(), 8))
}

/// Scenes of one scenario and split.
fn scenes(
    generator: &SceneGenerator,
    scenario: Scenario,
    split: Split,
    count: usize,
    seed: u64,
    size: usize,
) -> Result<Vec<Scene>, String> {
    generator
        .scenes(scenario, split, count, seed, size)
        .map_err(|e| e.to_string())
}

/// The meta-model's own training scenes the history library holds.
fn general_scenes(
    generator: &SceneGenerator,
    config: &QualityConfig,
    spec_model: &Fcos,
) -> Result<Vec<Scene>, String> {
    let size = spec_model.spec().input_size[0];
    scenes(
        generator,
        Scenario::General,
        Split::Train,
        config.history_size,
        config.data_seed,
        size,
    )
}

/// The history library of `scenes` (from [`general_scenes`]).
fn general_history(
    scenes: &[Scene],
    config: &QualityConfig,
    spec_model: &Fcos,
) -> Result<HistoryLibrary<Sample>, String> {
    let members = scenes
        .iter()
        .map(|s| Sample::from_ground_truth(&s.image, &s.boxes(), spec_model.spec()))
        .collect();
    let history_config = HistoryConfig {
        capacity: config.history_size.max(1),
        ..HistoryConfig::default()
    };
    HistoryLibrary::with_members(history_config, members).map_err(|e| e.to_string())
}

/// `model` fine-tuned on `samples` with `history`, without interruption.
fn fine_tune(
    model: &Fcos,
    config: TrainConfig,
    samples: &[Sample],
    history: &mut HistoryLibrary<Sample>,
) -> Result<TrainOutcome<Fcos>, String> {
    train(model.clone(), config, samples, history, |_, _| {
        Control::Continue
    })
    .map_err(|e| e.to_string())
}

/// Seed of the transfer images drawn for a benchmark seed.
pub(crate) fn transfer_seed(seed: u64) -> u64 {
    1000 + seed
}

/// `n` training scenes of `scenario` for a benchmark seed, verified by the
/// simulated user on the predictions of `model`, their targets built by `target`.
pub(crate) fn verified_scenes(
    model: &Fcos,
    generator: &SceneGenerator,
    scenario: Scenario,
    n: usize,
    seed: u64,
    target: &TargetConfig,
) -> Result<Verified, String> {
    let size = model.spec().input_size[0];
    let scenes = scenes(generator, scenario, Split::Train, n, seed, size)?;
    Verified::new(model, scenes, target)
}

/// The `n` verified transfer scenes of benchmark `seed`, as every run of
/// `config` trains on them.
pub(crate) fn verified_transfer(
    meta: &Fcos,
    generator: &SceneGenerator,
    config: &QualityConfig,
    n: usize,
    seed: u64,
) -> Result<Verified, String> {
    let target = &config.target;
    verified_scenes(
        meta,
        generator,
        Scenario::Transfer,
        n,
        transfer_seed(seed),
        target,
    )
}

/// Figures of the meta-model before any fine-tuning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// General mAP@0.5.
    pub general_map: f64,
    /// Transfer mAP@0.5.
    pub transfer_map: f64,
    /// Third-scenario mAP@0.5.
    pub third_map: f64,
}

/// Held-out scenes of every scenario.
pub struct TestSets {
    /// General scenes.
    pub general: Vec<Scene>,
    /// Transfer scenes.
    pub transfer: Vec<Scene>,
    /// Third-scenario scenes.
    pub third: Vec<Scene>,
}

impl TestSets {
    /// The held-out scenes of `config.held_out` (for the test scenes, those
    /// the pretraining manifest reports on).
    pub fn new(
        generator: &SceneGenerator,
        config: &QualityConfig,
        size: usize,
    ) -> Result<Self, String> {
        let (split, seed) = config.held_out.split_and_seed(config.data_seed);
        let of = |scenario| scenes(generator, scenario, split, config.test_scenes, seed, size);
        Ok(Self {
            general: of(Scenario::General)?,
            transfer: of(Scenario::Transfer)?,
            third: of(Scenario::Third)?,
        })
    }

    /// mAP@0.5 of `model` on every scenario.
    pub fn measure<M: Detector>(&self, model: &M) -> Result<Baseline, String> {
        Ok(Baseline {
            general_map: scenes_map(model, &self.general)?,
            transfer_map: scenes_map(model, &self.transfer)?,
            third_map: scenes_map(model, &self.third)?,
        })
    }
}

/// Runs every (N, seed, rule) of `config` from `meta` (on an autodiff
/// device); `on_row` sees each row as it is measured.
pub fn run_quality(
    meta: &Fcos,
    generator: &SceneGenerator,
    config: &QualityConfig,
    tests: &TestSets,
    baseline: &Baseline,
    mut on_row: impl FnMut(&QualityRow),
) -> Result<Vec<QualityRow>, String> {
    let history_scenes = general_scenes(generator, config, meta)?;
    let base_history = general_history(&history_scenes, config, meta)?;
    let mut rows = Vec::new();
    for &seed in &config.seeds {
        for &n in &config.sizes {
            let transfer = verified_transfer(meta, generator, config, n, seed)?;
            for &rule in &config.rules {
                let mut history = base_history.clone();
                let train_config = config.train_config(rule, seed);
                let start = Instant::now();
                let outcome = fine_tune(meta, train_config, &transfer.samples, &mut history)?;
                let seconds = start.elapsed().as_secs_f64();
                let model = outcome.model;
                let general_map = scenes_map(&model, &tests.general)?;
                let row = QualityRow {
                    n,
                    seed,
                    rule,
                    transfer_map: scenes_map(&model, &tests.transfer)?,
                    general_map,
                    forgetting: baseline.general_map - general_map,
                    seconds,
                    verdicts_honored: transfer.honored_by(&model)?.fraction(),
                    history_agreement: agreement_on(&model, &history_scenes)?.fraction(),
                    conflicting_steps: outcome
                        .records
                        .iter()
                        .filter(|r| r.mix.similarity < 0.0)
                        .count(),
                };
                on_row(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// Figures of one (N, rule) over seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualitySummary {
    /// Verified transfer images.
    pub n: usize,
    /// Mixing rule.
    pub rule: MixingRule,
    /// Transfer mAP@0.5.
    pub transfer_map: Spread,
    /// General mAP@0.5.
    pub general_map: Spread,
    /// Forgetting.
    pub forgetting: Spread,
    /// Wall time in seconds.
    pub seconds: Spread,
    /// Fraction of the verdicts honored.
    pub verdicts_honored: Spread,
    /// Fraction of the history library's boxes still shown.
    pub history_agreement: Spread,
    /// Seeds measured.
    pub seeds: usize,
}

/// Mean and spread over seeds of each (N, rule), in N then rule order.
pub fn summarize(rows: &[QualityRow]) -> Vec<QualitySummary> {
    let mut keys: Vec<(usize, MixingRule)> = Vec::new();
    for row in rows {
        if !keys.contains(&(row.n, row.rule)) {
            keys.push((row.n, row.rule));
        }
    }
    keys.sort_by_key(|(n, rule)| (*n, MixingRule::ALL.iter().position(|r| r == rule)));
    keys.into_iter()
        .map(|(n, rule)| {
            let group: Vec<&QualityRow> =
                rows.iter().filter(|r| r.n == n && r.rule == rule).collect();
            let field = |f: fn(&QualityRow) -> f64| {
                Spread::of(&group.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            QualitySummary {
                n,
                rule,
                transfer_map: field(|r| r.transfer_map),
                general_map: field(|r| r.general_map),
                forgetting: field(|r| r.forgetting),
                seconds: field(|r| r.seconds),
                verdicts_honored: field(|r| r.verdicts_honored),
                history_agreement: field(|r| r.history_agreement),
                seeds: group.len(),
            }
        })
        .collect()
}

/// The summary as a markdown table.
pub fn markdown(baseline: &Baseline, summary: &[QualitySummary]) -> String {
    let mut out = format!(
        "Meta-model before fine-tuning: general mAP@0.5 {:.3}, transfer mAP@0.5 {:.3}.\n\n",
        baseline.general_map, baseline.transfer_map
    );
    out.push_str(
        "| N | rule | transfer mAP@0.5 | general mAP@0.5 | forgetting | verdicts honored | history kept | seconds | seeds |\n",
    );
    out.push_str("| ---: | --- | --- | --- | --- | --- | --- | --- | ---: |\n");
    for s in summary {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.n,
            s.rule,
            s.transfer_map.display(3),
            s.general_map.display(3),
            s.forgetting.display(3),
            s.verdicts_honored.display(3),
            s.history_agreement.display(3),
            s.seconds.display(1),
            s.seeds
        ));
    }
    out
}

/// Every row as CSV with a header.
pub fn csv(rows: &[QualityRow]) -> String {
    let mut out = String::from(
        "n,seed,rule,transfer_map,general_map,forgetting,seconds,verdicts_honored,history_agreement,conflicting_steps\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{:.5},{:.5},{:.5},{:.2},{:.5},{:.5},{}\n",
            r.n,
            r.seed,
            r.rule,
            r.transfer_map,
            r.general_map,
            r.forgetting,
            r.seconds,
            r.verdicts_honored,
            r.history_agreement,
            r.conflicting_steps
        ));
    }
    out
}

/// Rows back from [`csv`]'s text; the error names the bad line.
pub fn parse_csv(text: &str) -> Result<Vec<QualityRow>, String> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let bad = |what: &str| format!("line {}: {what}", i + 1);
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != 10 {
                return Err(bad("expected 10 comma-separated fields"));
            }
            let number = |k: usize| {
                fields[k]
                    .parse::<f64>()
                    .map_err(|_| bad("a figure is not a number"))
            };
            Ok(QualityRow {
                n: fields[0].parse().map_err(|_| bad("N is not a count"))?,
                seed: fields[1]
                    .parse()
                    .map_err(|_| bad("the seed is not a number"))?,
                rule: fields[2]
                    .parse()
                    .map_err(|e: crate::mixing::UnknownRule| bad(&e.to_string()))?,
                transfer_map: number(3)?,
                general_map: number(4)?,
                forgetting: number(5)?,
                seconds: number(6)?,
                verdicts_honored: number(7)?,
                history_agreement: number(8)?,
                conflicting_steps: fields[9]
                    .parse()
                    .map_err(|_| bad("the conflicting steps are not a count"))?,
            })
        })
        .collect()
}

/// One policy's figures after two rounds (transfer, then third scenario).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundsRow {
    /// History update policy between the rounds.
    pub policy: HistoryPolicy,
    /// Seed.
    pub seed: u64,
    /// mAP@0.5 after round 1 (transfer).
    pub after_round_1: Baseline,
    /// mAP@0.5 after round 2 (third scenario).
    pub after_round_2: Baseline,
}

/// Two rounds of adaptation with the default rule, `n` verified images each:
/// the transfer scenario, a history update by `policy`, then the third
/// scenario; for both policies and every seed of `config`.
pub fn run_rounds(
    meta: &Fcos,
    generator: &SceneGenerator,
    config: &QualityConfig,
    tests: &TestSets,
    n: usize,
    mut on_row: impl FnMut(&RoundsRow),
) -> Result<Vec<RoundsRow>, String> {
    let base_history = general_history(&general_scenes(generator, config, meta)?, config, meta)?;
    let mut rows = Vec::new();
    for &seed in &config.seeds {
        let train_config = config.train_config(MixingRule::Symmetric, seed);
        let transfer = verified_transfer(meta, generator, config, n, seed)?;
        let mut round_history = base_history.clone();
        let round_1 = fine_tune(
            meta,
            train_config.clone(),
            &transfer.samples,
            &mut round_history,
        )?
        .model;
        let after_round_1 = tests.measure(&round_1)?;
        let third = verified_scenes(
            &round_1,
            generator,
            Scenario::Third,
            n,
            transfer_seed(seed) + 500,
            &config.target,
        )?;
        for policy in [HistoryPolicy::GradientBased, HistoryPolicy::Reservoir] {
            let mut history = base_history.clone();
            pollster::block_on(update_history(
                &round_1,
                &mut history,
                transfer.samples.clone(),
                policy,
            ))
            .map_err(|e| e.to_string())?;
            let round_2 =
                fine_tune(&round_1, train_config.clone(), &third.samples, &mut history)?.model;
            let row = RoundsRow {
                policy,
                seed,
                after_round_1: after_round_1.clone(),
                after_round_2: tests.measure(&round_2)?,
            };
            on_row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The rounds experiment as a markdown table (mean ± spread over seeds).
pub fn rounds_markdown(rows: &[RoundsRow]) -> String {
    let mut out = String::from(
        "| history update | general after round 1 | transfer after round 1 | general after round 2 | transfer after round 2 | third after round 2 | seeds |\n| --- | --- | --- | --- | --- | --- | ---: |\n",
    );
    for policy in [HistoryPolicy::GradientBased, HistoryPolicy::Reservoir] {
        let group: Vec<&RoundsRow> = rows.iter().filter(|r| r.policy == policy).collect();
        if group.is_empty() {
            continue;
        }
        let spread = |f: fn(&RoundsRow) -> f64| {
            Spread::of(&group.iter().map(|r| f(r)).collect::<Vec<_>>()).display(3)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            policy,
            spread(|r| r.after_round_1.general_map),
            spread(|r| r.after_round_1.transfer_map),
            spread(|r| r.after_round_2.general_map),
            spread(|r| r.after_round_2.transfer_map),
            spread(|r| r.after_round_2.third_map),
            group.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_and_summaries_average_over_seeds() {
        let rows: Vec<QualityRow> = [(0, 0.5, 0.9), (1, 0.7, 0.8)]
            .into_iter()
            .map(|(seed, transfer_map, general_map)| QualityRow {
                n: 20,
                seed,
                rule: MixingRule::Pcgrad,
                transfer_map,
                general_map,
                forgetting: 0.95 - general_map,
                seconds: 3.0,
                verdicts_honored: 0.75,
                history_agreement: general_map,
                conflicting_steps: seed as usize,
            })
            .collect();
        let back = parse_csv(&csv(&rows)).unwrap();
        assert_eq!(back.len(), 2);
        assert!((back[1].forgetting - 0.15).abs() < 1e-4);
        assert!((back[1].history_agreement - 0.8).abs() < 1e-9);
        assert!((back[0].verdicts_honored - 0.75).abs() < 1e-9);
        assert_eq!(back[1].conflicting_steps, 1);
        let summary = summarize(&back);
        assert_eq!(summary.len(), 1);
        assert!((summary[0].transfer_map.mean - 0.6).abs() < 1e-9);
        assert_eq!(summary[0].seeds, 2);
        assert!(
            parse_csv("header\n1,2,nope,0,0,0,0,0,0,0\n")
                .unwrap_err()
                .contains("line 2")
        );
    }
}
