//! A training run as the user asks for it (the issue's "train until the
//! verdicts are honored"): a round of gradient-mixed steps that, when asked,
//! checks the verdicts on the reviewed images at the end of every epoch (a
//! forward pass, no backward) and stops at the first epoch that honors them
//! all. The CLI blocks on it; the page's wasm module awaits it between
//! events. Each shell reports the steps its own way ([`StepReporter`]).

use crate::detector::Detector;
use crate::fidelity::{EpochCheck, FidelityConfig, verdicts_honored};
use crate::history::HistoryLibrary;
use crate::predict::{Reviewed, check_reviewed};
use crate::sample::Sample;
use crate::trainer::{Control, RoundHooks, StepRecord, TrainConfig, TrainError, run_round};

/// The reviewed images a run checks after each epoch, and how.
#[derive(Clone, Copy)]
pub struct UntilHonored<'a> {
    /// The reviewed images with their verdicts.
    pub reviewed: &'a [Reviewed<'a>],
    /// The display threshold and matching rules of the check.
    pub config: FidelityConfig,
}

/// One finished step, as a run reports it.
pub struct StepDone<'a, M> {
    /// The step's record.
    pub record: &'a StepRecord,
    /// Steps done so far, this one included.
    pub done: usize,
    /// Steps the run plans (its budget when training until honored).
    pub total: usize,
    /// The check made at the end of the epoch this step ended, if any.
    pub check: Option<EpochCheck>,
    /// The model after the step.
    pub model: &'a M,
}

/// How a shell follows a run: told of every step, it says whether to go on.
pub trait StepReporter<M> {
    /// Reports `step`; [`Control::Cancel`] stops the run after it. An error
    /// (a progress callback that failed, a checkpoint not saved) ends the run.
    fn report(
        &mut self,
        step: StepDone<'_, M>,
    ) -> impl Future<Output = Result<Control, TrainError>>;
}

/// What a run ends with.
pub struct RunOutcome<M> {
    /// The model after the last completed step.
    pub model: M,
    /// Every step's record, in order.
    pub records: Vec<StepRecord>,
    /// Whether the shell stopped the run before its end.
    pub cancelled: bool,
    /// The checks made at the ends of epochs (training until honored).
    pub epoch_checks: Vec<EpochCheck>,
}

/// Trains `model` on the `transfer` samples with the `history` library for
/// at most `config.epochs` epochs; with `until_honored`, stops after the
/// first epoch (but the last) that honors every verdict. `reporter` hears of
/// every step.
pub async fn run<M: Detector>(
    model: M,
    config: TrainConfig,
    transfer: &[Sample],
    history: &mut HistoryLibrary<Sample>,
    until_honored: Option<UntilHonored<'_>>,
    reporter: &mut impl StepReporter<M>,
) -> Result<RunOutcome<M>, TrainError> {
    let mut hooks = Hooks {
        until_honored,
        reporter,
        epoch_checks: Vec::new(),
        pending: None,
    };
    let outcome = run_round(model, config, transfer, history, &mut hooks).await?;
    Ok(RunOutcome {
        model: outcome.model,
        records: outcome.records,
        cancelled: outcome.cancelled,
        epoch_checks: hooks.epoch_checks,
    })
}

/// The round's hooks of a run: the check after each epoch, then the report.
struct Hooks<'a, R> {
    until_honored: Option<UntilHonored<'a>>,
    reporter: &'a mut R,
    epoch_checks: Vec<EpochCheck>,
    /// The check of the epoch the current step ended, for its report.
    pending: Option<EpochCheck>,
}

impl<M: Detector, R: StepReporter<M>> RoundHooks<M> for Hooks<'_, R> {
    async fn after_epoch(&mut self, model: &M, epochs: usize) -> Result<Control, TrainError> {
        let Some(until) = self.until_honored else {
            return Ok(Control::Continue);
        };
        let checks = check_reviewed(model, until.reviewed, &until.config, 8)
            .await
            .map_err(|e| TrainError::Caller(format!("checking the verdicts failed: {e}")))?;
        let check = EpochCheck {
            epochs,
            verdicts_honored: verdicts_honored(checks.iter().map(Vec::as_slice)),
        };
        self.epoch_checks.push(check);
        self.pending = Some(check);
        Ok(if check.verdicts_honored.all() {
            Control::Cancel
        } else {
            Control::Continue
        })
    }

    async fn after_step(
        &mut self,
        record: &StepRecord,
        done: usize,
        total: usize,
        model: &M,
    ) -> Result<Control, TrainError> {
        let step = StepDone {
            record,
            done,
            total,
            check: self.pending.take(),
            model,
        };
        self.reporter.report(step).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::fcos::FcosConfig;
    use crate::geometry::{BBox, LabeledBox};
    use crate::history::HistoryConfig;
    use crate::image::Image;
    use crate::mixing::MixingRule;
    use crate::verdict::ImageVerdicts;
    use burn::tensor::Device;

    /// Counts the steps reported and the checks among them; cancels after
    /// `cancel_after` steps.
    struct Counting {
        steps: usize,
        checks: Vec<usize>,
        cancel_after: usize,
    }

    impl<M> StepReporter<M> for Counting {
        async fn report(&mut self, step: StepDone<'_, M>) -> Result<Control, TrainError> {
            self.steps += 1;
            assert_eq!(step.done, self.steps);
            if let Some(check) = step.check {
                self.checks.push(check.epochs);
            }
            Ok(if self.steps >= self.cancel_after {
                Control::Cancel
            } else {
                Control::Continue
            })
        }
    }

    fn sample_and_verdicts(spec: &crate::detector::DetectorSpec) -> (Image, Sample, ImageVerdicts) {
        let image = Image::filled(64, 64, [0.2; 3]);
        let drawn = LabeledBox {
            bbox: BBox::new(8.0, 8.0, 40.0, 40.0),
            class: 0,
        };
        let sample = Sample::from_ground_truth(&image, &[drawn], spec);
        let verdicts = ImageVerdicts {
            drawn: vec![drawn],
            ..ImageVerdicts::default()
        };
        (image, sample, verdicts)
    }

    fn config(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 1,
            learning_rate: 1e-4,
            rule: MixingRule::TransferOnly,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn a_run_reports_every_step_and_the_check_after_each_epoch_but_the_last() {
        let model = FcosConfig::new(vec!["a".into()])
            .with_input_size(64)
            .init(&Device::flex().autodiff());
        let (image, sample, verdicts) = sample_and_verdicts(model.spec());
        let reviewed = [Reviewed {
            image: &image,
            verdicts: &verdicts,
            size: [64, 64],
        }];
        let until = UntilHonored {
            reviewed: &reviewed,
            // Nothing is shown at this threshold: the drawn box stays not honored.
            config: FidelityConfig {
                score_threshold: 1.0,
                ..FidelityConfig::default()
            },
        };
        let mut reporter = Counting {
            steps: 0,
            checks: Vec::new(),
            cancel_after: usize::MAX,
        };
        let mut history = HistoryLibrary::new(HistoryConfig::default());
        let transfer = [sample.clone(), sample];
        let outcome = pollster::block_on(run(
            model.clone(),
            config(3),
            &transfer,
            &mut history,
            Some(until),
            &mut reporter,
        ))
        .expect("runs");
        assert_eq!(
            outcome.records.len(),
            6,
            "two steps per epoch, three epochs"
        );
        assert_eq!(reporter.steps, 6);
        assert_eq!(
            reporter.checks,
            vec![1, 2],
            "reported with the step that ended each epoch"
        );
        let checked: Vec<usize> = outcome.epoch_checks.iter().map(|c| c.epochs).collect();
        assert_eq!(checked, vec![1, 2]);
        assert!(
            outcome
                .epoch_checks
                .iter()
                .all(|c| !c.verdicts_honored.all())
        );
        assert!(!outcome.cancelled);

        // A reporter that says stop: the run ends after that step, cancelled.
        let mut reporter = Counting {
            steps: 0,
            checks: Vec::new(),
            cancel_after: 3,
        };
        let outcome = pollster::block_on(run(
            model,
            config(3),
            &transfer,
            &mut history,
            None,
            &mut reporter,
        ))
        .expect("runs");
        assert_eq!(outcome.records.len(), 3);
        assert!(outcome.cancelled);
        assert!(outcome.epoch_checks.is_empty() && reporter.checks.is_empty());
    }
}
