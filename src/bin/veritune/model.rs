//! Making models: an untrained small detector (`init`) and NanoDet-g from
//! its TensorFlow.js files (`import nanodet`).

use std::path::Path;

use burn::tensor::Device;
use veritune::detector::Detector;
use veritune::detector::fcos::FcosConfig;
use veritune::detector::nanodet::{NanoDet, NanoDetConfig};
use veritune::tfjs::GraphModel;

use crate::args::{ImportNanodetArgs, InitArgs};
use crate::io::{CliError, CliResult, write_model};

/// `veritune init`.
pub(crate) fn init(args: InitArgs) -> CliResult {
    create(args.classes, args.input_size, &args.output)
}

/// `veritune import nanodet`.
pub(crate) fn import(args: ImportNanodetArgs) -> CliResult {
    import_nanodet(&args.json, args.input_size, &args.output)
}

fn import_nanodet(json: &Path, input_size: usize, output: &Path) -> CliResult {
    let model = nanodet_from_tfjs(json, input_size)?;
    write_model(&model, output)?;
    eprintln!(
        "veritune: NanoDet-g at {input_size} px ({} classes) written to {}",
        model.spec().num_classes(),
        output.display()
    );
    Ok(())
}

/// NanoDet-g at `input_size` with the weights of the TensorFlow.js model `json`.
pub(crate) fn nanodet_from_tfjs(json: &Path, input_size: usize) -> CliResult<NanoDet> {
    let config = NanoDetConfig::coco().with_input_size(input_size);
    config
        .check()
        .map_err(|e| CliError::usage(format!("cannot import NanoDet (--input-size): {e}")))?;
    let text = std::fs::read_to_string(json).map_err(|e| CliError::read(json, e))?;
    let graph = GraphModel::parse(&text).map_err(|e| CliError::in_file(json, e))?;
    let folder = json.parent().unwrap_or(Path::new("."));
    let mut data = Vec::new();
    for name in graph.weight_files() {
        let path = folder.join(&name);
        data.extend(std::fs::read(&path).map_err(|source| CliError::WeightFile {
            path,
            model: json.to_path_buf(),
            source,
        })?);
    }
    let convolutions = graph
        .convolutions(&data)
        .map_err(|e| CliError::in_file(json, e))?;
    NanoDet::from_tfjs(&config, &convolutions, &Device::flex())
        .map_err(|e| CliError::in_file(json, e))
}

fn create(classes: Vec<String>, input_size: usize, output: &Path) -> CliResult {
    if classes.iter().any(|c| c.trim().is_empty()) {
        return Err(CliError::usage(
            "--classes has an empty class name: give names separated by commas",
        ));
    }
    let config = FcosConfig::new(classes).with_input_size(input_size);
    config.check().map_err(|e| {
        CliError::usage(format!(
            "cannot create the model (--classes, --input-size): {e}"
        ))
    })?;
    write_model(&config.init(&Device::flex()), output)
}
