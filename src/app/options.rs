//! Training options: what a user may ask of a run, each detector's
//! defaults, and the checks, in one place for the CLI and the page.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::mixing::MixingRule;
use crate::trainer::TrainConfig;
use crate::weights::AnyDetector;

/// The most epochs one run may take.
pub const MAX_EPOCHS: usize = 200;
/// The largest batch.
pub const MAX_BATCH_SIZE: usize = 64;

/// What the user asks of a training run; whatever is `None` takes the
/// detector's default ([`TrainSettings::defaults`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Epochs: exactly that many, or at most that many until honored.
    pub epochs: Option<usize>,
    /// Stop after the first epoch that honors every verdict.
    pub until_honored: Option<bool>,
    /// Samples per transfer batch and per history batch.
    pub batch_size: Option<usize>,
    /// Adam's learning rate.
    pub learning_rate: Option<f64>,
    /// How the transfer and history gradients are mixed.
    pub rule: Option<MixingRule>,
    /// The display threshold the boxes were shown and verdicts are checked at.
    pub threshold: Option<f32>,
    /// NanoDet only: train the neck and head, keep the backbone as it is.
    pub freeze_backbone: Option<bool>,
}

/// A run's settings, every default filled in and every value checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Epochs: exactly that many, or at most that many until honored.
    pub epochs: usize,
    /// Stop after the first epoch that honors every verdict.
    pub until_honored: bool,
    /// Samples per transfer batch and per history batch.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// How the transfer and history gradients are mixed.
    pub rule: MixingRule,
    /// The display threshold the boxes were shown and verdicts are checked at.
    pub threshold: f32,
    /// Train the neck and head only (NanoDet).
    pub freeze_backbone: bool,
}

/// A training option the run cannot take, said as what to give instead.
#[derive(Debug, Error, PartialEq)]
pub enum OptionsError {
    /// Epochs out of range.
    #[error("epochs is {0}: give a whole number from 1 to {MAX_EPOCHS}")]
    Epochs(usize),
    /// Batch size out of range.
    #[error("the batch size is {0}: give a whole number from 1 to {MAX_BATCH_SIZE}")]
    BatchSize(usize),
    /// Learning rate not a finite number above 0.
    #[error("the learning rate is {0}: give a number above 0 (such as 0.001)")]
    LearningRate(f64),
    /// Threshold outside [0, 1].
    #[error("the score threshold is {0}: give a number from 0 to 1")]
    Threshold(f32),
    /// A frozen backbone asked of a detector without one to freeze.
    #[error(
        "the small digits detector always trains whole: a frozen backbone is for NanoDet weights"
    )]
    NoBackboneToFreeze,
}

impl TrainSettings {
    /// The defaults for `model`, chosen by measurement (bench/results/fidelity.md
    /// for NanoDet: every verdict on the sample photographs honored with one
    /// run, the history kept): at most 30 epochs until every verdict is
    /// honored, batch 8, the symmetric rule, threshold 0.5; NanoDet at Adam
    /// 3e-3 with its backbone frozen, the digits detector at 1e-3.
    pub fn defaults(model: &AnyDetector) -> Self {
        let nanodet = matches!(model, AnyDetector::NanoDet(_));
        Self {
            epochs: 30,
            until_honored: true,
            batch_size: 8,
            learning_rate: if nanodet { 3e-3 } else { 1e-3 },
            rule: MixingRule::Symmetric,
            threshold: 0.5,
            freeze_backbone: nanodet,
        }
    }

    /// The trainer's configuration for these settings (everything else at
    /// its defaults).
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            rule: self.rule,
            ..TrainConfig::default()
        }
    }
}

impl TrainOptions {
    /// The settings of a run of `model` with these options, or the first
    /// option it cannot take.
    pub fn settings(&self, model: &AnyDetector) -> Result<TrainSettings, OptionsError> {
        let defaults = TrainSettings::defaults(model);
        let settings = TrainSettings {
            epochs: self.epochs.unwrap_or(defaults.epochs),
            until_honored: self.until_honored.unwrap_or(defaults.until_honored),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            learning_rate: self.learning_rate.unwrap_or(defaults.learning_rate),
            rule: self.rule.unwrap_or(defaults.rule),
            threshold: self.threshold.unwrap_or(defaults.threshold),
            freeze_backbone: self.freeze_backbone.unwrap_or(defaults.freeze_backbone),
        };
        check_threshold(settings.threshold)?;
        if !(1..=MAX_EPOCHS).contains(&settings.epochs) {
            return Err(OptionsError::Epochs(settings.epochs));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&settings.batch_size) {
            return Err(OptionsError::BatchSize(settings.batch_size));
        }
        let rate = settings.learning_rate;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(OptionsError::LearningRate(rate));
        }
        if settings.freeze_backbone && !matches!(model, AnyDetector::NanoDet(_)) {
            return Err(OptionsError::NoBackboneToFreeze);
        }
        Ok(settings)
    }
}

impl OptionsError {
    /// The command-line option the error is about.
    pub fn flag(&self) -> &'static str {
        match self {
            Self::Epochs(_) => "--epochs",
            Self::BatchSize(_) => "--batch-size",
            Self::LearningRate(_) => "--learning-rate",
            Self::Threshold(_) => "--threshold",
            Self::NoBackboneToFreeze => "--freeze-backbone",
        }
    }
}

/// Refuses a display threshold outside [0, 1] (or not a number).
pub fn check_threshold(threshold: f32) -> Result<(), OptionsError> {
    if (0.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(OptionsError::Threshold(threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::fcos::FcosConfig;
    use burn::tensor::Device;

    fn digits() -> AnyDetector {
        FcosConfig::new(vec!["a".into()])
            .with_input_size(64)
            .with_width(4)
            .init(&Device::flex())
            .into()
    }

    #[test]
    fn what_is_left_out_takes_the_detector_s_default() {
        let model = digits();
        let settings = TrainOptions::default().settings(&model).unwrap();
        assert_eq!(settings, TrainSettings::defaults(&model));
        assert_eq!(settings.learning_rate, 1e-3);
        assert!(settings.until_honored && !settings.freeze_backbone);
        let asked = TrainOptions {
            epochs: Some(3),
            until_honored: Some(false),
            learning_rate: Some(5e-4),
            rule: Some(MixingRule::TransferOnly),
            ..TrainOptions::default()
        };
        let settings = asked.settings(&model).unwrap();
        assert_eq!((settings.epochs, settings.until_honored), (3, false));
        let config = settings.train_config();
        assert_eq!(config.epochs, 3);
        assert_eq!(config.learning_rate, 5e-4);
        assert_eq!(config.rule, MixingRule::TransferOnly);
        assert_eq!(config.batch_size, 8);
    }

    #[test]
    fn options_out_of_range_are_refused_with_what_to_give() {
        let model = digits();
        let refused = |options: TrainOptions| options.settings(&model).unwrap_err().to_string();
        assert_eq!(
            refused(TrainOptions {
                epochs: Some(0),
                ..TrainOptions::default()
            }),
            "epochs is 0: give a whole number from 1 to 200"
        );
        assert!(
            refused(TrainOptions {
                batch_size: Some(65),
                ..TrainOptions::default()
            })
            .starts_with("the batch size is 65")
        );
        for rate in [0.0, -1e-3, f64::INFINITY, f64::NAN] {
            let message = refused(TrainOptions {
                learning_rate: Some(rate),
                ..TrainOptions::default()
            });
            assert!(message.starts_with("the learning rate is"), "{message}");
        }
        assert!(
            refused(TrainOptions {
                threshold: Some(1.5),
                ..TrainOptions::default()
            })
            .contains("from 0 to 1")
        );
        assert!(
            refused(TrainOptions {
                freeze_backbone: Some(true),
                ..TrainOptions::default()
            })
            .contains("always trains whole")
        );
    }
}
