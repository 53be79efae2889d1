//! Transfer training (METHOD.md section 2) and the gradient-based update of
//! the history library after a round (section 3).
//!
//! A [`TrainingRun`] advances one step at a time (`step().await`), so the same
//! code drives a native loop ([`train`]) and a browser loop that yields to the
//! page between steps. Each step reads its record from the device once,
//! asynchronously.

use std::collections::HashSet;

use burn::module::ParamId;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::augment::{AugmentConfig, Augmenter};
use crate::detector::{Detector, model_device};
use crate::history::{
    Candidate, HistoryError, HistoryLibrary, HistoryPolicy, Selection, select_gradient_based,
    select_reservoir,
};
use crate::mixing::{
    MixRecord, MixScope, MixingRule, gradient_stats, mix, param_ids, stats_from_values,
};
use crate::sample::{Sample, batch};
use crate::schedule::Schedule;

/// Settings of a round of transfer training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the transfer samples (default 10).
    pub epochs: usize,
    /// Samples per transfer batch, and per history batch (default 8).
    pub batch_size: usize,
    /// Adam's learning rate (default 5e-4).
    pub learning_rate: f64,
    /// How `g_t` and `g_h` are mixed (default: the symmetric rule).
    pub rule: MixingRule,
    /// Which parameters the similarity is computed over (default: all).
    pub scope: MixScope,
    /// Seed of the per-epoch shuffles and of the augmentation.
    pub seed: u64,
    /// How the learning rate moves over the round (default: constant).
    #[serde(default)]
    pub schedule: Schedule,
    /// AdamW's decoupled weight decay; 0 keeps plain Adam (the default).
    #[serde(default)]
    pub weight_decay: f64,
    /// Augmentation of the transfer samples, drawn anew every epoch (default:
    /// none). History samples are replayed as they are.
    #[serde(default)]
    pub augment: AugmentConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 8,
            learning_rate: 5e-4,
            rule: MixingRule::Symmetric,
            scope: MixScope::All,
            seed: 0,
            schedule: Schedule::Constant,
            weight_decay: 0.0,
            augment: AugmentConfig::none(),
        }
    }
}

impl TrainConfig {
    /// Whether the learning rate is above zero and the weight decay not
    /// below, both finite.
    fn check_rates(&self) -> Result<(), TrainError> {
        let checks = [
            (
                "learning rate",
                self.learning_rate,
                "above zero",
                self.learning_rate > 0.0,
            ),
            (
                "weight decay",
                self.weight_decay,
                "not below zero",
                self.weight_decay >= 0.0,
            ),
        ];
        match checks
            .into_iter()
            .find(|&(_, value, _, in_range)| !(value.is_finite() && in_range))
        {
            Some((name, value, range, _)) => Err(TrainError::Setting { name, value, range }),
            None => Ok(()),
        }
    }
}

/// What one training step did; shown to the user as it happens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Epoch, from 0.
    pub epoch: usize,
    /// Step within the run, from 0.
    pub step: usize,
    /// Loss on the transfer batch.
    pub transfer_loss: f64,
    /// Loss on the history batch, when one was drawn.
    pub history_loss: Option<f64>,
    /// Similarity, weights and gradient norms of the mix.
    pub mix: MixRecord,
    /// Why the update was skipped, if it was (the weights and the optimizer
    /// state stay as they were, and the next step runs as usual).
    pub skipped: Option<SkipReason>,
}

/// Why a step's update was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Error)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The loss on the transfer batch is NaN or infinite.
    #[error("the loss on the transfer batch is not a finite number")]
    TransferLoss,
    /// The loss on the history batch is NaN or infinite.
    #[error("the loss on the history batch is not a finite number")]
    HistoryLoss,
    /// A gradient has a NaN or infinite value, or its squared norm overflows.
    #[error("a gradient is not a finite number")]
    Gradient,
}

impl SkipReason {
    /// The reason to skip a step whose read-back values are `values`: the
    /// transfer loss, the history loss (zero without a history batch), then
    /// the gradient statistics. `None` when all are finite.
    fn of(values: &[f32]) -> Option<Self> {
        let finite = |range: &[f32]| range.iter().all(|v| v.is_finite());
        if !finite(values.get(..1).unwrap_or(&[])) {
            Some(Self::TransferLoss)
        } else if !finite(values.get(1..2).unwrap_or(&[])) {
            Some(Self::HistoryLoss)
        } else if !finite(values.get(2..).unwrap_or(&[])) {
            Some(Self::Gradient)
        } else {
            None
        }
    }
}

/// Why training cannot run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// Nothing to train on.
    #[error("there are no transfer samples: give verdicts on at least one image before training")]
    NoTransferSamples,
    /// A zero batch size or epoch count.
    #[error(
        "batch size and epochs must be at least 1 (got batch size {batch_size}, epochs {epochs})"
    )]
    EmptySchedule {
        /// The batch size asked for.
        batch_size: usize,
        /// The epochs asked for.
        epochs: usize,
    },
    /// A learning rate or weight decay out of range.
    #[error("the {name} is {value} but must be a finite number {range}")]
    Setting {
        /// The setting, as the user knows it.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must be ("above zero", "not below zero").
        range: &'static str,
    },
    /// The caller's work between steps failed (reporting a step, checking
    /// the verdicts after an epoch, saving a checkpoint).
    #[error("{0}")]
    Caller(String),
    /// A tensor could not be read back from the device.
    #[error("reading results from the device failed: {0}")]
    Device(String),
    /// The history library update failed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// A round of transfer training in progress.
pub struct TrainingRun<'a, M: Detector> {
    model: Option<M>,
    optimizer: ModuleOptimizer,
    config: TrainConfig,
    transfer: &'a [Sample],
    history: &'a mut HistoryLibrary<Sample>,
    scope: Option<HashSet<ParamId>>,
    /// The parameters outside `scope`, whose gradients are only checked for
    /// finite values.
    rest: Option<HashSet<ParamId>>,
    order: Vec<usize>,
    rng: StdRng,
    epoch: usize,
    position: usize,
    step: usize,
}

impl<'a, M: Detector> TrainingRun<'a, M> {
    /// Prepares a round: `model` must live on an autodiff device.
    pub fn new(
        model: M,
        config: TrainConfig,
        transfer: &'a [Sample],
        history: &'a mut HistoryLibrary<Sample>,
    ) -> Result<Self, TrainError> {
        if transfer.is_empty() {
            return Err(TrainError::NoTransferSamples);
        }
        if config.batch_size == 0 || config.epochs == 0 {
            return Err(TrainError::EmptySchedule {
                batch_size: config.batch_size,
                epochs: config.epochs,
            });
        }
        config.check_rates()?;
        let scope: Option<HashSet<ParamId>> = match config.scope {
            MixScope::All => None,
            MixScope::Head => Some(model.head_param_ids().into_iter().collect()),
        };
        let rest = scope.as_ref().map(|head| {
            param_ids(&model)
                .into_iter()
                .filter(|id| !head.contains(id))
                .collect()
        });
        history.reset_cursor();
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut order: Vec<usize> = (0..transfer.len()).collect();
        order.shuffle(&mut rng);
        Ok(Self {
            model: Some(model),
            optimizer: if config.weight_decay > 0.0 {
                AdamWConfig::new()
                    .with_weight_decay(config.weight_decay as f32)
                    .init()
            } else {
                AdamConfig::new().init()
            },
            config,
            transfer,
            history,
            scope,
            rest,
            order,
            rng,
            epoch: 0,
            position: 0,
            step: 0,
        })
    }

    /// Steps in the whole round.
    pub fn total_steps(&self) -> usize {
        self.config.epochs * self.transfer.len().div_ceil(self.config.batch_size)
    }

    /// Steps done so far.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// Epochs completed so far.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Whether every epoch has run.
    pub fn is_finished(&self) -> bool {
        self.epoch >= self.config.epochs
    }

    /// The model as of the last completed step.
    pub fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the model is only taken during a step")
    }

    /// Ends the run (finished or cancelled) and returns the model as of the
    /// last completed step.
    pub fn into_model(mut self) -> M {
        self.model
            .take()
            .expect("the model is only taken during a step")
    }

    /// Runs the next step: `g_t` and `g_h` at the same parameters, the mix,
    /// and Adam's update. `Ok(None)` once the round is finished.
    pub async fn step(&mut self) -> Result<Option<StepRecord>, TrainError> {
        if self.is_finished() {
            return Ok(None);
        }
        let batch_size = self.config.batch_size;
        let end = (self.position + batch_size).min(self.order.len());
        let augmenter = Augmenter {
            config: self.config.augment,
            seed: self.config.seed,
        };
        let augmented: Vec<Sample> = if augmenter.config.is_active() {
            self.order[self.position..end]
                .iter()
                .map(|&i| augmenter.augment(self.transfer, i, self.epoch))
                .collect()
        } else {
            Vec::new()
        };
        let transfer: Vec<&Sample> = if augmented.is_empty() {
            self.order[self.position..end]
                .iter()
                .map(|&i| &self.transfer[i])
                .collect()
        } else {
            augmented.iter().collect()
        };
        let indices = if self.config.rule.needs_history() {
            self.history.next_batch_indices(batch_size)
        } else {
            Vec::new()
        };
        let history: Vec<&Sample> = indices
            .iter()
            .map(|&i| &self.history.members()[i])
            .collect();

        let model = self
            .model
            .take()
            .expect("the model is present between steps");
        let device = model_device(&model);
        let (loss_t, g_t) = loss_and_gradients(&model, &transfer, &device);
        let (loss_h, g_h) = if history.is_empty() {
            (None, GradientsParams::new())
        } else {
            let (loss, grads) = loss_and_gradients(&model, &history, &device);
            (Some(loss), grads)
        };

        let mut readout = vec![
            loss_t.clone(),
            loss_h.clone().unwrap_or_else(|| loss_t.zeros_like()),
        ];
        // The mix's statistics over its scope, then (head scope only) over
        // the other parameters, read only to see that they are finite.
        let stats_over = |scope: Option<&HashSet<ParamId>>| {
            gradient_stats(&model, &g_t, &g_h, scope).unwrap_or_else(|| Tensor::zeros([3], &device))
        };
        readout.push(stats_over(self.scope.as_ref()));
        if let Some(rest) = &self.rest {
            readout.push(stats_over(Some(rest)));
        }
        let values = match Tensor::cat(readout, 0).into_data_async().await {
            Ok(data) => data
                .try_to_vec::<f32>()
                .map_err(|e| TrainError::Device(format!("{e:?}"))),
            Err(e) => Err(TrainError::Device(format!("{e:?}"))),
        };
        let values = match values {
            Ok(values) => values,
            Err(e) => {
                self.model = Some(model);
                return Err(e);
            }
        };
        let stats = stats_from_values(values.get(2..5).unwrap_or(&[]));
        // With no history batch there is nothing to mix: plain fine-tuning.
        let rule = if history.is_empty() {
            MixingRule::TransferOnly
        } else {
            self.config.rule
        };
        let weights = rule.weights(stats);
        let skipped = SkipReason::of(&values);
        self.model = Some(if skipped.is_some() {
            model
        } else {
            let mixed = mix(&model, g_t, g_h, weights);
            let learning_rate = self.config.schedule.learning_rate(
                self.step,
                self.total_steps(),
                self.config.learning_rate,
            );
            self.optimizer.step(learning_rate, model, mixed)
        });

        let record = StepRecord {
            epoch: self.epoch,
            step: self.step,
            transfer_loss: values[0] as f64,
            history_loss: loss_h.map(|_| values[1] as f64),
            mix: MixRecord::new(stats, weights),
            skipped,
        };
        self.step += 1;
        self.position = end;
        if self.position >= self.order.len() {
            self.position = 0;
            self.epoch += 1;
            self.order.shuffle(&mut self.rng);
        }
        Ok(Some(record))
    }
}

/// The loss of `model` on `samples` (a one-element tensor) and its gradients.
pub(crate) fn loss_and_gradients<M: Detector>(
    model: &M,
    samples: &[&Sample],
    device: &Device,
) -> (Tensor<1>, GradientsParams) {
    let (images, targets) = batch(model.spec(), samples, device);
    let loss = model.loss(model.forward(images), &targets).total;
    let grads = GradientsParams::from_grads(loss.backward(), model);
    (loss.detach(), grads)
}

/// What [`train`] returns.
pub struct TrainOutcome<M> {
    /// The model after the last completed step.
    pub model: M,
    /// Every step's record, in order.
    pub records: Vec<StepRecord>,
    /// Whether the caller stopped the round before its end.
    pub cancelled: bool,
}

/// Whether training goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Run the next step.
    Continue,
    /// Stop now; the model keeps the last completed step.
    Cancel,
}

/// What a round asks its caller between steps ([`run_round`]).
pub trait RoundHooks<M: Detector> {
    /// At the end of every epoch but the last, with the model and the
    /// epochs done: [`Control::Cancel`] ends the round there, as reached
    /// rather than cancelled (`config.epochs` is then a budget). Called
    /// before [`RoundHooks::after_step`] of the step that ended the epoch.
    fn after_epoch(
        &mut self,
        model: &M,
        epochs: usize,
    ) -> impl Future<Output = Result<Control, TrainError>>;

    /// After every step, with its record, the steps done and planned, and
    /// the model after it: [`Control::Cancel`] stops the round (cancelled).
    fn after_step(
        &mut self,
        record: &StepRecord,
        done: usize,
        total: usize,
        model: &M,
    ) -> impl Future<Output = Result<Control, TrainError>>;
}

/// Runs a round step by step, asking `hooks` between steps; the same loop
/// natively (blocked on) and in the browser (awaited between the page's
/// events).
pub async fn run_round<M: Detector>(
    model: M,
    config: TrainConfig,
    transfer: &[Sample],
    history: &mut HistoryLibrary<Sample>,
    hooks: &mut impl RoundHooks<M>,
) -> Result<TrainOutcome<M>, TrainError> {
    let mut run = TrainingRun::new(model, config, transfer, history)?;
    let total = run.total_steps();
    let mut records = Vec::with_capacity(total);
    let mut cancelled = false;
    while let Some(record) = run.step().await? {
        let epoch_ended = record.epoch < run.epochs_done();
        let reached = epoch_ended
            && !run.is_finished()
            && hooks.after_epoch(run.model(), run.epochs_done()).await? == Control::Cancel;
        let control = hooks
            .after_step(&record, run.steps_done(), total, run.model())
            .await?;
        records.push(record);
        if run.is_finished() || reached {
            break;
        }
        if control == Control::Cancel {
            cancelled = true;
            break;
        }
    }
    Ok(TrainOutcome {
        model: run.into_model(),
        records,
        cancelled,
    })
}

/// Runs a whole round natively, calling `on_step` after every step with the
/// record and the total number of steps.
pub fn train<M: Detector>(
    model: M,
    config: TrainConfig,
    transfer: &[Sample],
    history: &mut HistoryLibrary<Sample>,
    on_step: impl FnMut(&StepRecord, usize) -> Control,
) -> Result<TrainOutcome<M>, TrainError> {
    train_until(model, config, transfer, history, on_step, |_, _| {
        Control::Continue
    })
}

/// Runs a round natively as [`train`] does, and at the end of every epoch
/// but the last asks `after_epoch` (with the model and the epochs done)
/// whether to go on, as [`RoundHooks::after_epoch`].
pub fn train_until<M: Detector>(
    model: M,
    config: TrainConfig,
    transfer: &[Sample],
    history: &mut HistoryLibrary<Sample>,
    on_step: impl FnMut(&StepRecord, usize) -> Control,
    after_epoch: impl FnMut(&M, usize) -> Control,
) -> Result<TrainOutcome<M>, TrainError> {
    let mut hooks = BlockingHooks {
        on_step,
        after_epoch,
    };
    pollster::block_on(run_round(model, config, transfer, history, &mut hooks))
}

/// [`RoundHooks`] from two plain callbacks, for [`train_until`].
struct BlockingHooks<S, E> {
    on_step: S,
    after_epoch: E,
}

impl<M, S, E> RoundHooks<M> for BlockingHooks<S, E>
where
    M: Detector,
    S: FnMut(&StepRecord, usize) -> Control,
    E: FnMut(&M, usize) -> Control,
{
    async fn after_epoch(&mut self, model: &M, epochs: usize) -> Result<Control, TrainError> {
        Ok((self.after_epoch)(model, epochs))
    }

    async fn after_step(
        &mut self,
        record: &StepRecord,
        _done: usize,
        total: usize,
        _model: &M,
    ) -> Result<Control, TrainError> {
        Ok((self.on_step)(record, total))
    }
}

/// Mean detection loss of `model` over `samples` without gradients, in
/// batches of `batch_size` (for reports and tests).
pub fn mean_loss<M: Detector>(model: &M, samples: &[Sample], batch_size: usize) -> f64 {
    let model = model.clone().no_grad();
    let device = model_device(&model);
    let mut total = 0.0;
    for chunk in samples.chunks(batch_size.max(1)) {
        let refs: Vec<&Sample> = chunk.iter().collect();
        let (images, targets) = batch(model.spec(), &refs, &device);
        let loss: f32 = model
            .loss(model.forward(images), &targets)
            .total
            .into_scalar();
        total += loss as f64 * chunk.len() as f64;
    }
    total / samples.len().max(1) as f64
}

/// The head-parameter gradient of the loss on one sample, flattened.
pub async fn sample_gradient<M: Detector>(
    model: &M,
    sample: &Sample,
) -> Result<Vec<f32>, TrainError> {
    let device = model_device(model);
    let (_, grads) = loss_and_gradients(model, &[sample], &device);
    let head: HashSet<ParamId> = model.head_param_ids().into_iter().collect();
    let flat = crate::mixing::flatten_gradients(model, &grads, &head, &device);
    let data = flat
        .into_data_async()
        .await
        .map_err(|e| TrainError::Device(format!("{e:?}")))?;
    data.try_to_vec::<f32>()
        .map_err(|e| TrainError::Device(format!("{e:?}")))
}

/// Updates the history library after a round: the transfer samples compete
/// with the members for a place, by gradient (METHOD.md section 3) or by
/// reservoir sampling (the baseline). Returns the selection applied.
pub async fn update_history<M: Detector>(
    model: &M,
    library: &mut HistoryLibrary<Sample>,
    newcomers: Vec<Sample>,
    policy: HistoryPolicy,
) -> Result<Selection, TrainError> {
    update_history_with(model, library, newcomers, policy, |_, _| {
        std::future::ready(())
    })
    .await
}

/// [`update_history`], awaiting `progress(done, total)` after each
/// per-sample gradient (the gradient-based policy computes one per member
/// and newcomer), e.g. to report it and let a page paint.
pub async fn update_history_with<M, P, F>(
    model: &M,
    library: &mut HistoryLibrary<Sample>,
    newcomers: Vec<Sample>,
    policy: HistoryPolicy,
    mut progress: P,
) -> Result<Selection, TrainError>
where
    M: Detector,
    P: FnMut(usize, usize) -> F,
    F: Future<Output = ()>,
{
    let mut rng = library.update_rng();
    let selection = match policy {
        HistoryPolicy::Reservoir => select_reservoir(
            library.seen(),
            library.len(),
            newcomers.len(),
            library.capacity(),
            &mut rng,
        )?,
        HistoryPolicy::GradientBased => {
            let total = library.len() + newcomers.len();
            let mut gradients = Vec::with_capacity(total);
            for sample in library.members().iter().chain(&newcomers) {
                gradients.push(sample_gradient(model, sample).await?);
                progress(gradients.len(), total).await;
            }
            let newcomer_grads = gradients.split_off(library.len());
            let member_grads = gradients;
            let dim = newcomer_grads.first().map_or(0, Vec::len);
            let mut mean = vec![0.0f32; dim];
            for g in &newcomer_grads {
                for (m, v) in mean.iter_mut().zip(g) {
                    *m += v / newcomer_grads.len() as f32;
                }
            }
            let member_classes: Vec<Vec<usize>> = library
                .members()
                .iter()
                .map(|s| s.target.classes())
                .collect();
            let newcomer_classes: Vec<Vec<usize>> =
                newcomers.iter().map(|s| s.target.classes()).collect();
            select_gradient_based(
                &candidates(&member_grads, &member_classes),
                &candidates(&newcomer_grads, &newcomer_classes),
                &mean,
                library.config(),
                &mut rng,
            )?
        }
    };
    library.apply(selection.clone(), newcomers)?;
    Ok(selection)
}

fn candidates<'a>(gradients: &'a [Vec<f32>], classes: &'a [Vec<usize>]) -> Vec<Candidate<'a>> {
    gradients
        .iter()
        .zip(classes)
        .map(|(gradient, classes)| Candidate { gradient, classes })
        .collect()
}
