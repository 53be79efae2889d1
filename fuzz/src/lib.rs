//! veritune's pure parsers and rules, compiled by path from `../src` so that
//! fuzzing builds neither burn nor its backends. Every module here must stay
//! free of tensors; the fuzz targets in `fuzz_targets/` drive them.

#[path = "../../src/dataset.rs"]
pub mod dataset;
#[path = "../../src/formats/mod.rs"]
pub mod formats;
#[path = "../../src/geometry.rs"]
pub mod geometry;
#[path = "../../src/image.rs"]
pub mod image;
/// The weights preflight check (`veritune::weights::preflight`).
#[path = "../../src/weights/preflight.rs"]
pub mod preflight;
#[path = "../../src/verdict.rs"]
pub mod verdict;
