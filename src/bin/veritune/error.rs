//! What can go wrong in a command, each told to the user as one sentence
//! that names what was wrong (the file, the option) and what to do.

use std::error::Error;
use std::fmt::Display;
use std::path::{Path, PathBuf};

use thiserror::Error;
use veritune::app::options::OptionsError;

/// A library error (or a library's sentence) carried inside a [`CliError`].
pub(crate) type Cause = Box<dyn Error + Send + Sync>;

/// Why a command failed.
#[derive(Debug, Error)]
pub(crate) enum CliError {
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file could not be written; nothing was left half-written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A folder could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A weight file that a TensorFlow.js model names could not be read.
    #[error(
        "cannot read {}, a weight file {} names: {source}; keep it beside the model.json",
        path.display(),
        model.display()
    )]
    WeightFile {
        path: PathBuf,
        model: PathBuf,
        source: std::io::Error,
    },
    /// A file could not be copied.
    #[error("cannot copy {} to {}: {source}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    /// An output path that does not end in a file name.
    #[error("{} is not a file name: give a path ending in a file name", .0.display())]
    NotAFileName(PathBuf),
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    /// The page could not be served on the port.
    #[error("cannot serve on 127.0.0.1:{port}: {source}")]
    Serve { port: u16, source: std::io::Error },
    /// Labels of classes the model does not have.
    #[error(
        "{} has categories the model does not know ({unknown}); its classes are {classes}: name the categories as the model's classes",
        file.display()
    )]
    UnknownClasses {
        file: PathBuf,
        unknown: String,
        classes: String,
    },
    /// A training or display option out of range; names the option.
    #[error("{flag}: {source}", flag = .0.flag(), source = .0)]
    Option(#[from] OptionsError),
    /// An option, or a combination of options, refused before anything ran;
    /// the sentence names the option and what to give.
    #[error("{0}")]
    Usage(String),
    /// The content of a file (or of an image in one) that the library
    /// refused; `place` names it.
    #[error("{place}: {source}")]
    Invalid { place: String, source: Cause },
    /// A step of the command failed (loading data, training, measuring).
    #[error("{0}")]
    Failed(Cause),
}

impl CliError {
    /// An option refused, in a sentence naming it and what to give.
    pub(crate) fn usage(sentence: impl Into<String>) -> Self {
        Self::Usage(sentence.into())
    }

    /// The content at `place` (a file, an image in one) refused for `cause`.
    pub(crate) fn invalid(place: impl Display, cause: impl Into<Cause>) -> Self {
        Self::Invalid {
            place: place.to_string(),
            source: cause.into(),
        }
    }

    /// The content of the file at `path` refused for `cause`.
    pub(crate) fn in_file(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::invalid(path.display(), cause)
    }

    /// A step of the command that failed for `cause`.
    pub(crate) fn failed(cause: impl Into<Cause>) -> Self {
        Self::Failed(cause.into())
    }

    /// Reading `path` failed.
    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Self::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Writing `path` failed.
    pub(crate) fn write(path: &Path, source: std::io::Error) -> Self {
        Self::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A command's outcome: done, or the sentence that says why not.
pub(crate) type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_reads_as_one_sentence_naming_what_was_wrong() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        assert_eq!(
            CliError::read(Path::new("model.bpk"), missing).to_string(),
            "cannot read model.bpk: No such file"
        );
        assert_eq!(
            CliError::NotAFileName(PathBuf::from("out/")).to_string(),
            "out/ is not a file name: give a path ending in a file name"
        );
        assert_eq!(
            CliError::in_file(Path::new("labels.json"), "image 3 has no width").to_string(),
            "labels.json: image 3 has no width"
        );
        assert_eq!(
            CliError::usage("--steps must be at least 1").to_string(),
            "--steps must be at least 1"
        );
    }

    #[test]
    fn a_library_error_stays_reachable_as_the_source() {
        let error = CliError::in_file(
            Path::new("a.bpk"),
            std::io::Error::other("truncated at byte 12"),
        );
        let source = error.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("truncated at byte 12"));
    }
}
