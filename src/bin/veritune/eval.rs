//! `veritune eval`: mAP@0.5 of a model on annotated images.

use std::path::Path;

use burn::tensor::Device;
use serde::Serialize;
use veritune::dataset::read_annotated_set;
use veritune::detector::Detector;
use veritune::evaluate::evaluate;
use veritune::geometry::LabeledBox;
use veritune::image::Image;
use veritune::with_any_detector;

use crate::args::EvalArgs;
use crate::io::{CliError, CliResult, load_model, matched_to_model, progress, write_json};

/// `veritune eval`.
pub(crate) fn run(args: EvalArgs) -> CliResult {
    eval(
        &args.model,
        &args.images,
        &args.annotations,
        args.iou,
        args.json,
    )
}

#[derive(Serialize)]
struct EvalReport {
    classes: Vec<(String, Option<f32>)>,
    mean: f32,
}

fn eval(model: &Path, images: &Path, annotations: &Path, iou: f32, json: bool) -> CliResult {
    with_any_detector!(&load_model(model, &Device::flex())?, model => {
        eval_with(model, images, annotations, iou, json)
    })
}

fn eval_with<M: Detector>(
    model: &M,
    images: &Path,
    annotations: &Path,
    iou: f32,
    json: bool,
) -> CliResult {
    let set = read_annotated_set(annotations, images).map_err(CliError::failed)?;
    let set = matched_to_model(set, model, annotations)?;
    let pairs: Vec<(&Image, &[LabeledBox])> = set
        .images
        .iter()
        .map(|i| (&i.image, i.boxes.as_slice()))
        .collect();
    let bar = progress(pairs.len(), "evaluating");
    let report = pollster::block_on(evaluate(model, &pairs, 8, iou, |done| {
        bar.set_position(done as u64)
    }))
    .map_err(CliError::failed)?;
    bar.finish_and_clear();
    let names = &model.spec().class_names;
    let out = EvalReport {
        classes: names
            .iter()
            .cloned()
            .zip(report.per_class.iter().copied())
            .collect(),
        mean: report.mean,
    };
    if json {
        return write_json(&out, None);
    }
    println!("{:<20} AP@{iou}", "class");
    for (name, ap) in &out.classes {
        match ap {
            Some(ap) => println!("{name:<20} {ap:.4}"),
            None => println!("{name:<20} -"),
        }
    }
    println!("{:<20} {:.4}", "mean", out.mean);
    Ok(())
}
