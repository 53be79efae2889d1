//! Learning-rate schedules over a run of optimizer steps: constant, or a
//! linear warm-up then a cosine decay (the pretraining's schedule, offered to
//! fine-tuning too). No tensors here.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How the learning rate moves from step to step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The peak learning rate at every step (the default).
    #[default]
    Constant,
    /// Linear warm-up over the first 3 % of the steps (at least one), then a
    /// cosine from the peak toward a hundredth of it, reached after the last step.
    WarmupCosine,
}

/// A schedule name that is not one of [`Schedule::ALL`].
#[derive(Debug, Error, PartialEq)]
#[error("unknown learning-rate schedule '{0}': use constant or warmup-cosine")]
pub struct UnknownSchedule(pub String);

impl Schedule {
    /// Every schedule.
    pub const ALL: [Schedule; 2] = [Schedule::Constant, Schedule::WarmupCosine];

    /// The name on the command line and in records.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::WarmupCosine => "warmup-cosine",
        }
    }

    /// The learning rate at `step` (from 0) of `steps`, for a peak of `peak`.
    pub fn learning_rate(&self, step: usize, steps: usize, peak: f64) -> f64 {
        match self {
            Schedule::Constant => peak,
            Schedule::WarmupCosine => {
                let warmup = (steps * 3 / 100).max(1);
                if step < warmup {
                    return peak * (step + 1) as f64 / warmup as f64;
                }
                let progress = ((step - warmup) as f64 / (steps - warmup).max(1) as f64).min(1.0);
                let floor = peak / 100.0;
                floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = UnknownSchedule;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Schedule::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| UnknownSchedule(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_cosine_warms_up_then_decays_to_a_hundredth() {
        let peak = 1e-3;
        let lr = |step| Schedule::WarmupCosine.learning_rate(step, 1000, peak);
        assert!(lr(0) < lr(20));
        assert!((lr(29) - peak).abs() < 1e-9);
        assert!(lr(500) < peak);
        assert!((lr(999) - peak / 100.0).abs() < 1e-6);
        // A short fine-tuning run: one warm-up step at the peak, then down.
        let short = |step| Schedule::WarmupCosine.learning_rate(step, 10, peak);
        assert!((short(0) - peak).abs() < 1e-12 && (short(1) - peak).abs() < 1e-12);
        assert!((2..10).all(|s| short(s) < short(s - 1)));
        assert!(short(9) < peak / 10.0);
    }

    #[test]
    fn constant_is_the_peak_and_names_read_back() {
        assert_eq!(Schedule::Constant.learning_rate(7, 10, 0.5), 0.5);
        for schedule in Schedule::ALL {
            assert_eq!(schedule.name().parse::<Schedule>(), Ok(schedule));
        }
        assert_eq!(
            "linear".parse::<Schedule>().unwrap_err().to_string(),
            "unknown learning-rate schedule 'linear': use constant or warmup-cosine"
        );
    }
}
