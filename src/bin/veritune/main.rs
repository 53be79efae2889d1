//! The `veritune` command line: predict, fine-tune and evaluate detectors,
//! convert and export labels, pretrain, benchmark, and serve the page.
//! `main` parses and dispatches; each command lives in its own module, its
//! options in `args`.

mod args;
mod bench;
mod error;
mod eval;
mod finetune;
mod io;
mod labels;
mod model;
mod page;
mod predict;
mod pretrain;

use std::process::ExitCode;

use clap::Parser;

use args::{Bench, Cli, Command, Import, Labels};
use io::CliResult;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("veritune: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Init(args) => model::init(args),
        Command::Import {
            which: Import::Nanodet(args),
        } => model::import(args),
        Command::Predict(args) => predict::run(args),
        Command::Finetune(args) => finetune::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Pretrain(args) => pretrain::run(args),
        Command::Labels {
            which: Labels::Convert(args),
        } => labels::convert(args),
        Command::Labels {
            which: Labels::Export(args),
        } => labels::export(args),
        Command::Bench {
            which: Bench::Quality(args),
        } => bench::quality(args),
        Command::Bench {
            which: Bench::Speed(args),
        } => bench::speed(args),
        Command::Bench {
            which: Bench::SpeedOne(args),
        } => bench::speed_one(args),
        Command::Serve(args) => page::serve(args),
        Command::Samples(args) => page::samples(args),
    }
}
