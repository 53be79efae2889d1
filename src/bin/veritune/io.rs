//! What every command shares: reading models and inputs, writing outputs
//! whole or not at all, progress bars, and the checks of common options.

use std::path::Path;

use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use veritune::dataset::{AnnotatedSet, write_atomically};
use veritune::detector::Detector;
use veritune::formats::class_map;
use veritune::weights::{AnyDetector, StoredDetector, WeightsFormat, load_detector, save_detector};

pub(crate) use crate::error::{CliError, CliResult};

/// The bytes of a weights file, or a sentence naming it.
pub(crate) fn read_model_bytes(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| CliError::read(path, e))
}

/// The detector in a weights file (either architecture) on `device`.
pub(crate) fn load_model(path: &Path, device: &Device) -> CliResult<AnyDetector> {
    load_detector(&read_model_bytes(path)?, device).map_err(|e| CliError::in_file(path, e))
}

/// Writes `bytes` to `path` whole or not at all: into a temporary file
/// beside it, then renamed over it, so a failure never leaves a half-written
/// file (nor touches an existing one).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> CliResult {
    if path.file_name().is_none() {
        return Err(CliError::NotAFileName(path.to_path_buf()));
    }
    write_atomically(path, bytes).map_err(|e| CliError::write(path, e))
}

/// Writes a detector's weights: safetensors for a `.safetensors` name, else burnpack.
pub(crate) fn write_model<M: StoredDetector>(model: &M, path: &Path) -> CliResult {
    let format = WeightsFormat::for_file_name(&path.to_string_lossy());
    let bytes = pollster::block_on(save_detector(model, format)).map_err(CliError::failed)?;
    write_file(path, &bytes)
}

/// Writes `value` as pretty JSON to `path`, or to standard output.
pub(crate) fn write_json(value: &impl Serialize, path: Option<&Path>) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(CliError::failed)?;
    match path {
        Some(path) => write_file(path, (text + "\n").as_bytes()),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{text}").and_then(|()| out.flush()) {
                // The reader stopped reading (`veritune predict … | head`): nothing to report.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                result => result.map_err(CliError::Stdout),
            }
        }
    }
}

/// Writes `text` to `path` whole or not at all.
pub(crate) fn write_text(path: &Path, text: &str) -> CliResult {
    write_file(path, text.as_bytes())
}

/// Creates a folder and its parents.
pub(crate) fn create_dir(path: &Path) -> CliResult {
    std::fs::create_dir_all(path).map_err(|source| CliError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a JSON file into `T`, naming the file on failure.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> CliResult<T> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::read(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::invalid(format_args!("{} is not valid", path.display()), e))
}

/// A progress bar of `len` items, hidden when standard error is not a terminal.
pub(crate) fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// Prints `line` above the progress bar, or on standard error when the bar is
/// hidden (output not a terminal), where it would drop the line.
pub(crate) fn log(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Refuses a learning rate that is not a positive finite number.
pub(crate) fn check_learning_rate(learning_rate: f64) -> CliResult {
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        return Err(CliError::usage(format!(
            "--learning-rate {learning_rate} must be a finite number above 0 (e.g. 5e-4)"
        )));
    }
    Ok(())
}

/// `set` with its classes numbered as the model's, matched by name; a class
/// the model does not have is an error naming it and the file.
pub(crate) fn matched_to_model<M: Detector>(
    mut set: AnnotatedSet,
    model: &M,
    file: &Path,
) -> CliResult<AnnotatedSet> {
    let names = &model.spec().class_names;
    let to_model = class_map(&set.class_names, names);
    let unknown: Vec<&str> = set
        .class_names
        .iter()
        .zip(&to_model)
        .filter(|(_, class)| class.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(CliError::UnknownClasses {
            file: file.to_path_buf(),
            unknown: unknown.join(", "),
            classes: names.join(", "),
        });
    }
    for image in &mut set.images {
        for b in &mut image.boxes {
            if let Some(class) = to_model[b.class] {
                b.class = class;
            }
        }
    }
    set.class_names = names.clone();
    Ok(set)
}
