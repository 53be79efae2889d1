//! `veritune predict`: boxes (and candidates) of a model on images, as JSON.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;
use veritune::app::options::check_threshold;
use veritune::dataset::{ImageFile, file_scale, read_image_file};
use veritune::detector::{Detector, shown_detections};
use veritune::geometry::Detection;
use veritune::image::Image;
use veritune::predict::{NMS_IOU, candidates};
use veritune::with_any_detector;

use crate::args::PredictArgs;
use crate::io::{CliError, CliResult, load_model, progress, write_json};

/// `veritune predict`.
pub(crate) fn run(args: PredictArgs) -> CliResult {
    predict(
        &args.model,
        &args.images,
        args.threshold,
        args.candidates,
        args.output.as_deref(),
    )
}

/// Candidates on each image, with a progress bar.
pub(crate) fn all_candidates<M: Detector>(
    model: &M,
    images: &[&Image],
) -> CliResult<Vec<Vec<Detection>>> {
    let bar = progress(images.len(), "predicting");
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(8) {
        out.extend(pollster::block_on(candidates(model, chunk, 8)).map_err(CliError::failed)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

#[derive(Serialize)]
struct PredictedBox {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
    class: usize,
    class_name: String,
    score: f32,
}

#[derive(Serialize)]
struct ImagePrediction {
    file: String,
    width: usize,
    height: usize,
    detections: Vec<PredictedBox>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<Vec<PredictedBox>>,
}

fn predict(
    model: &Path,
    images: &[PathBuf],
    threshold: f32,
    with_candidates: bool,
    output: Option<&Path>,
) -> CliResult {
    check_threshold(threshold)?;
    with_any_detector!(&load_model(model, &Device::flex())?, model => {
        predict_with(model, images, threshold, with_candidates, output)
    })
}

fn predict_with<M: Detector>(
    model: &M,
    images: &[PathBuf],
    threshold: f32,
    with_candidates: bool,
    output: Option<&Path>,
) -> CliResult {
    let names = &model.spec().class_names;
    let decoded = images
        .iter()
        .map(|p| read_image_file(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::failed)?;
    let refs: Vec<&Image> = decoded.iter().map(|file| &file.image).collect();
    let all = all_candidates(model, &refs)?;
    // Boxes in the file's own pixels (the image is smaller when downscaled).
    let boxes = |file: &ImageFile, detections: &[Detection]| -> Vec<PredictedBox> {
        let (sx, sy) = file_scale(file.file_size, &file.image);
        detections
            .iter()
            .map(|d| {
                let bbox = d.bbox.scale(1.0 / sx, 1.0 / sy);
                PredictedBox {
                    x0: bbox.x0,
                    y0: bbox.y0,
                    x1: bbox.x1,
                    y1: bbox.y1,
                    class: d.class,
                    class_name: names.get(d.class).cloned().unwrap_or_default(),
                    score: d.score,
                }
            })
            .collect()
    };
    let report: Vec<ImagePrediction> = images
        .iter()
        .zip(&decoded)
        .zip(&all)
        .map(|((path, file), candidates)| ImagePrediction {
            file: path.display().to_string(),
            width: file.file_size.0,
            height: file.file_size.1,
            detections: boxes(file, &shown_detections(candidates, threshold, NMS_IOU)),
            candidates: with_candidates.then(|| boxes(file, candidates)),
        })
        .collect();
    write_json(&report, output)
}
