//! The application core: what the CLI, the page's wasm module and the
//! benchmarks do with a detector and a user's verdicts, written once. No
//! wasm and no command line here; the shells convert their inputs and call in.

pub mod labels;
pub mod library;
pub mod options;
pub mod review;
pub mod reviews;
pub mod run;
