//! `veritune labels`: conversion between COCO, YOLO and VOC, and the labels
//! a verdicts file gives.

use std::path::Path;

use veritune::dataset::{
    image_sizes, read_coco_file, read_verdicts, read_voc_folder, read_yolo_folder, write_labels,
};
use veritune::formats::{Format, LabelSet, labels_from_verdicts};
use veritune::weights::read_spec;

use crate::args::{ConvertArgs, ExportArgs};
use crate::io::{CliError, CliResult, read_model_bytes};

/// `veritune labels convert`.
pub(crate) fn convert(args: ConvertArgs) -> CliResult {
    convert_labels(
        args.from,
        args.to,
        &args.input,
        &args.output,
        args.images.as_deref(),
    )
}

/// `veritune labels export`.
pub(crate) fn export(args: ExportArgs) -> CliResult {
    export_labels(
        &args.verdicts,
        &args.images,
        &args.model,
        args.to,
        &args.output,
    )
}

fn convert_labels(
    from: Format,
    to: Format,
    input: &Path,
    output: &Path,
    images: Option<&Path>,
) -> CliResult {
    let set = match (from, images) {
        (Format::Coco, _) => read_coco_file(input),
        (Format::Yolo, Some(images)) => read_yolo_folder(input, images),
        (Format::Yolo, None) => {
            return Err(CliError::usage(
                "YOLO label files hold no image sizes: pass the folder of the images with --images",
            ));
        }
        (Format::Voc, _) => read_voc_folder(input),
    }
    .map_err(CliError::failed)?;
    write_label_set(&set, to, output)
}

fn export_labels(
    verdicts: &Path,
    images: &Path,
    model: &Path,
    to: Format,
    output: &Path,
) -> CliResult {
    let spec = read_spec(&read_model_bytes(model)?).map_err(|e| CliError::in_file(model, e))?;
    let judged = read_verdicts(verdicts).map_err(CliError::failed)?;
    let sizes = image_sizes(images).map_err(CliError::failed)?;
    let set = labels_from_verdicts(&spec.class_names, &sizes, &judged)
        .map_err(|e| CliError::in_file(verdicts, e))?;
    write_label_set(&set, to, output)
}

fn write_label_set(set: &LabelSet, to: Format, output: &Path) -> CliResult {
    write_labels(to, set, output).map_err(CliError::failed)?;
    let boxes: usize = set.images.iter().map(|i| i.boxes.len()).sum();
    eprintln!(
        "veritune: {} images, {boxes} boxes and {} classes written to {} as {to}",
        set.images.len(),
        set.class_names.len(),
        output.display()
    );
    Ok(())
}
