//! Benchmarks that print figures: the quality of every mixing rule on the
//! real-data scenarios (`veritune bench quality`) and the time and memory of
//! each step (`veritune bench speed`).

pub mod peer;
pub mod plot;
pub mod quality;
pub mod speed;

use std::collections::HashMap;

use burn::tensor::TensorData;
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

/// A safetensors file of float tensors, by name; the reason when a tensor
/// holds other values.
pub(crate) fn f32_safetensors(tensors: Vec<(String, TensorData)>) -> Result<Vec<u8>, String> {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, data)| {
            let values = data.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok((name, data.shape().to_vec(), bytes))
        })
        .collect::<Result<_, String>>()?;
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.as_str(), view))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None::<HashMap<String, String>>).map_err(|e| e.to_string())
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
