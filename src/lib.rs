//! veritune: verdict-driven, gradient-mixed fine-tuning of object detectors.
//!
//! The method is specified in `METHOD.md` (shipped in the steering repository as
//! `shared/METHOD.md`); `ARCHITECTURE.md` maps it onto these modules.

pub mod app;
pub mod augment;
#[cfg(not(target_arch = "wasm32"))]
pub mod benchmark;
#[cfg(not(target_arch = "wasm32"))]
pub mod dataset;
pub mod detector;
pub mod evaluate;
pub mod fidelity;
pub mod formats;
pub mod geometry;
pub mod history;
pub mod image;
pub mod metrics;
pub mod mixing;
pub mod predict;
#[cfg(not(target_arch = "wasm32"))]
pub mod pretrain;
pub mod project_file;
pub mod sample;
#[cfg(not(target_arch = "wasm32"))]
pub mod scenes;
pub mod schedule;
#[cfg(not(target_arch = "wasm32"))]
pub mod serve;
pub mod simulate;
pub mod tfjs;
pub mod trainer;
pub mod verdict;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
pub mod weights;
pub mod zip;
