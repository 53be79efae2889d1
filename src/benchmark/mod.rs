//! Benchmarks that print figures: the quality of every mixing rule on the
//! real-data scenarios (`veritune bench quality`) and the time and memory of
//! each step (`veritune bench speed`).

pub mod plot;
pub mod quality;
pub mod speed;

use serde::{Deserialize, Serialize};

/// Mean and sample standard deviation of a set of measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (zero for a single value).
    pub std: f64,
}

impl Spread {
    /// The spread of `values`; zeros when empty.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Self {
            mean,
            std: var.sqrt(),
        }
    }

    /// `mean ± std` with `digits` decimals.
    pub fn display(&self, digits: usize) -> String {
        format!("{:.digits$} ± {:.digits$}", self.mean, self.std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_mean_and_sample_deviation() {
        let s = Spread::of(&[1.0, 2.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        assert!((s.std - 1.0).abs() < 1e-12);
        assert_eq!(Spread::of(&[5.0]).std, 0.0);
        assert_eq!(s.display(2), "2.00 ± 1.00");
    }
}
