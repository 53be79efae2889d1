//! `veritune pretrain`: the digits meta-model, and its manifest.

use std::path::Path;

use veritune::detector::Detector;
use veritune::detector::fcos::FcosConfig;
use veritune::pretrain::{PretrainConfig, PretrainManifest, scenario_map};
use veritune::scenes::{Scenario, SceneGenerator, data_dir};

use crate::args::PretrainArgs;
use crate::io::{
    CliError, CliResult, check_learning_rate, progress, read_json, read_model_bytes, write_json,
    write_model,
};

/// `veritune pretrain`.
pub(crate) fn run(args: PretrainArgs) -> CliResult {
    if let (Some(_), Some(init)) = (args.width, &args.init) {
        return Err(CliError::usage(format!(
            "--width sets the width of a detector made from random weights, and {} keeps its own: leave --width out",
            init.display()
        )));
    }
    pretrain(
        PretrainConfig {
            steps: args.steps,
            batch_size: args.batch_size,
            learning_rate: args.learning_rate,
            seed: args.seed,
            eval_scenes: args.eval_scenes,
            broad_share: args.broad_share,
            width: args.width.unwrap_or(PretrainConfig::default().width),
            init: args.init.map(|path| path.display().to_string()),
            ..PretrainConfig::default()
        },
        &args.output,
        &args.manifest,
    )
}

fn pretrain(mut config: PretrainConfig, output: &Path, manifest: &Path) -> CliResult {
    if config.steps == 0 || config.batch_size == 0 {
        return Err(CliError::usage(
            "--steps and --batch-size must be at least 1",
        ));
    }
    if !(0.0..=1.0).contains(&config.broad_share) {
        return Err(CliError::usage(format!(
            "--broad-share is {}: give a share from 0 to 1",
            config.broad_share
        )));
    }
    check_learning_rate(config.learning_rate)?;
    let init = match &config.init {
        Some(path) => {
            let bytes = read_model_bytes(Path::new(path))?;
            let model =
                veritune::weights::load_fcos(&bytes, &veritune::pretrain::pretrain_device())
                    .map_err(|e| CliError::invalid(path, e))?;
            let size = model.spec().input_size[0];
            if size != config.input_size {
                return Err(CliError::usage(format!(
                    "{path} takes {size}-pixel inputs, pretraining makes {}-pixel scenes: give a digits model of that size",
                    config.input_size
                )));
            }
            config.width = model.config().width;
            Some(model)
        }
        None => {
            FcosConfig::new(vec!["digit".into()])
                .with_width(config.width)
                .check()
                .map_err(|e| CliError::usage(format!("--width: {e}")))?;
            None
        }
    };
    // The starting model's own manifest, beside it under the same name.
    let init_manifest = match &config.init {
        Some(path) => {
            let beside = Path::new(path).with_extension("json");
            if beside.is_file() {
                Some(Box::new(read_json::<PretrainManifest>(&beside)?))
            } else {
                None
            }
        }
        None => None,
    };
    let generator = SceneGenerator::load(&data_dir()).map_err(CliError::failed)?;
    let bar = progress(config.steps, "pretraining");
    let (model, train_seconds, final_loss) =
        veritune::pretrain::pretrain(&generator, &config, init, |step, _, loss| {
            bar.set_position(step as u64 + 1);
            bar.set_message(format!("pretraining, loss {loss:.3}"));
            if bar.is_hidden() && (step + 1) % 100 == 0 {
                eprintln!("step {}/{}: loss {loss:.3}", step + 1, config.steps);
            }
        })
        .map_err(CliError::failed)?;
    bar.finish_and_clear();
    write_model(&model, output)?;
    let mut maps = Vec::new();
    for scenario in Scenario::ALL {
        let map = scenario_map(
            &model,
            &generator,
            scenario,
            config.seed,
            config.eval_scenes,
        )
        .map_err(CliError::failed)?;
        eprintln!(
            "veritune: {} mAP@0.5 on {} held-out scenes: {map:.4}",
            scenario.name(),
            config.eval_scenes
        );
        maps.push(map);
    }
    let record = PretrainManifest {
        parameters: burn::module::Module::num_params(&model),
        general_map: maps[0],
        transfer_map: maps[1],
        third_map: maps[2],
        broad_map: maps[3],
        train_seconds,
        final_loss,
        init_manifest,
        config,
    };
    write_json(&record, Some(manifest))
}
