//! Project files (`<name>.veritune`, written by the page's `www/project.js`):
//! the bytes `VERITUNE-PROJECT`, a little-endian u32 with the length of a
//! UTF-8 JSON manifest, the manifest, then the blob area (image files and
//! weights, each placed by an `{offset, length}` in the manifest).
//!
//! Reading one is two checks on untrusted bytes, made before anything is
//! imported: [`manifest_length`] on the header, then [`check_manifest`] on
//! the manifest with the file's size. A file that passes names only blobs
//! that lie inside it.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// The first bytes of every project file.
pub const MAGIC: &[u8; 16] = b"VERITUNE-PROJECT";
/// The manifest's `format`.
pub const FORMAT: &str = "veritune-project";
/// The newest manifest version this code reads.
pub const FORMAT_VERSION: u64 = 1;
/// Bytes before the manifest: the magic and the manifest's length.
pub const HEADER_LEN: usize = MAGIC.len() + 4;

/// Why bytes are not a project file this code can open. The page puts the
/// file's name in front of the sentence.
#[derive(Debug, Error, PartialEq)]
pub enum ProjectFileError {
    /// Shorter than the header.
    #[error("is not a veritune project file: it is too short")]
    TooShort,
    /// No magic at the start.
    #[error("is not a veritune project file: it does not start with VERITUNE-PROJECT")]
    NoMagic,
    /// The announced manifest goes past the end of the file.
    #[error("is not a veritune project file: it is cut short (the manifest is incomplete)")]
    CutShort,
    /// The manifest is not JSON.
    #[error("is not a veritune project file: its manifest is not valid JSON ({0})")]
    NotJson(String),
    /// JSON, but not a veritune project's manifest.
    #[error("is not a veritune project file: its manifest is not a veritune project")]
    NotProject,
    /// No usable version number.
    #[error("is not a veritune project file: its manifest has no valid version")]
    NoVersion,
    /// Written by a newer veritune.
    #[error(
        "was saved by a newer veritune (project format {version}); this page reads format {FORMAT_VERSION} and older, so it cannot open it: use a newer veritune page"
    )]
    Newer {
        /// The file's format version.
        version: u64,
    },
    /// The project, images or runs are missing or of the wrong kind.
    #[error("is not a veritune project file: its manifest lacks the project, images or runs")]
    Incomplete,
    /// A blob is not an `{offset, length}` inside the file.
    #[error("is not a veritune project file: {what} lies outside the file (it may be cut short)")]
    BlobOutside {
        /// Which blob, as the user would name it ("image 3", "the weights").
        what: String,
    },
}

/// Where one blob lies, relative to the start of the blob area.
#[derive(Debug, Deserialize)]
struct BlobRef {
    offset: u64,
    length: u64,
}

/// The manifest length announced by a file's first [`HEADER_LEN`] bytes
/// (`head`), checked against the file's size `file_len`.
pub fn manifest_length(head: &[u8], file_len: u64) -> Result<usize, ProjectFileError> {
    if head.len() < HEADER_LEN || file_len < HEADER_LEN as u64 {
        return Err(ProjectFileError::TooShort);
    }
    if &head[..MAGIC.len()] != MAGIC {
        return Err(ProjectFileError::NoMagic);
    }
    let mut length = [0u8; 4];
    length.copy_from_slice(&head[MAGIC.len()..HEADER_LEN]);
    let length = u32::from_le_bytes(length);
    if HEADER_LEN as u64 + u64::from(length) > file_len {
        return Err(ProjectFileError::CutShort);
    }
    Ok(length as usize)
}

/// Checks a project file's manifest (`json`, the bytes after the header) for a
/// file of `file_len` bytes: a veritune project of a version this code reads,
/// with a project, a list of images and of runs, and every blob (each image's
/// `blob`, the `weights`) inside the blob area. Returns the manifest.
pub fn check_manifest(json: &[u8], file_len: u64) -> Result<Value, ProjectFileError> {
    let manifest: Value =
        serde_json::from_slice(json).map_err(|e| ProjectFileError::NotJson(e.to_string()))?;
    if manifest.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(ProjectFileError::NotProject);
    }
    let version = manifest
        .get("version")
        .and_then(Value::as_u64)
        .filter(|&v| v >= 1)
        .ok_or(ProjectFileError::NoVersion)?;
    if version > FORMAT_VERSION {
        return Err(ProjectFileError::Newer { version });
    }
    let images = manifest.get("images").and_then(Value::as_array);
    let runs_ok = manifest.get("runs").is_none_or(Value::is_array);
    let project_ok = manifest.get("project").is_some_and(Value::is_object);
    let Some(images) = images.filter(|_| runs_ok && project_ok) else {
        return Err(ProjectFileError::Incomplete);
    };
    let area = HEADER_LEN as u64 + json.len() as u64;
    let inside = |blob: Option<&Value>, what: String| -> Result<(), ProjectFileError> {
        let fits = blob
            .and_then(|b| BlobRef::deserialize(b).ok())
            .and_then(|b| area.checked_add(b.offset)?.checked_add(b.length))
            .is_some_and(|end| end <= file_len);
        if fits {
            Ok(())
        } else {
            Err(ProjectFileError::BlobOutside { what })
        }
    };
    for (k, image) in images.iter().enumerate() {
        inside(image.get("blob"), format!("image {}", k + 1))?;
    }
    match manifest.get("weights") {
        None | Some(Value::Null) => {}
        weights => inside(weights, "the weights".into())?,
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A whole project file: header, manifest, then `area` bytes of blobs.
    fn file(manifest: &Value, area: usize) -> Vec<u8> {
        let json = manifest.to_string().into_bytes();
        let mut bytes = MAGIC.to_vec();
        bytes.extend((json.len() as u32).to_le_bytes());
        bytes.extend(json);
        bytes.resize(bytes.len() + area, 7);
        bytes
    }

    /// Both checks on a whole file, as the page makes them.
    fn read(bytes: &[u8]) -> Result<Value, ProjectFileError> {
        let len = manifest_length(&bytes[..bytes.len().min(HEADER_LEN)], bytes.len() as u64)?;
        check_manifest(&bytes[HEADER_LEN..HEADER_LEN + len], bytes.len() as u64)
    }

    fn manifest() -> Value {
        json!({
            "format": FORMAT,
            "version": 1,
            "project": {"name": "Street"},
            "images": [{"id": "img-1", "blob": {"offset": 0, "length": 10}}],
            "runs": [],
            "weights": {"offset": 10, "length": 5},
        })
    }

    #[test]
    fn a_complete_file_is_read_back() {
        let read = read(&file(&manifest(), 15)).expect("a complete file");
        assert_eq!(read["project"]["name"], "Street");
    }

    #[test]
    fn each_fault_is_named() {
        let cases: Vec<(Vec<u8>, ProjectFileError)> = vec![
            (b"VERITUNE".to_vec(), ProjectFileError::TooShort),
            (
                file(&manifest(), 15)
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| if i == 0 { b'X' } else { b })
                    .collect(),
                ProjectFileError::NoMagic,
            ),
            (
                file(&manifest(), 15)[..HEADER_LEN + 8].to_vec(),
                ProjectFileError::CutShort,
            ),
            (
                file(&manifest(), 14),
                ProjectFileError::BlobOutside {
                    what: "the weights".into(),
                },
            ),
            (
                file(&json!({"format": "zip", "version": 1}), 0),
                ProjectFileError::NotProject,
            ),
            (
                file(&json!({"format": FORMAT, "version": 0}), 0),
                ProjectFileError::NoVersion,
            ),
            (
                file(&json!({"format": FORMAT, "version": 2}), 0),
                ProjectFileError::Newer { version: 2 },
            ),
            (
                file(
                    &json!({"format": FORMAT, "version": 1, "project": {}, "images": {}}),
                    0,
                ),
                ProjectFileError::Incomplete,
            ),
            (
                file(
                    &json!({"format": FORMAT, "version": 1, "project": {}, "images": [
                        {"blob": {"offset": 0, "length": 1}},
                        {"blob": {"offset": u64::MAX, "length": 2}},
                    ]}),
                    4,
                ),
                ProjectFileError::BlobOutside {
                    what: "image 2".into(),
                },
            ),
            (
                file(
                    &json!({"format": FORMAT, "version": 1, "project": {}, "images": [{"blob": {"offset": -1, "length": 1}}]}),
                    4,
                ),
                ProjectFileError::BlobOutside {
                    what: "image 1".into(),
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(read(&bytes).unwrap_err(), expected);
        }
        let mut not_json = MAGIC.to_vec();
        not_json.extend(3u32.to_le_bytes());
        not_json.extend(b"{x}");
        let err = read(&not_json).unwrap_err();
        assert!(matches!(err, ProjectFileError::NotJson(_)), "{err}");
        assert!(
            err.to_string()
                .contains("its manifest is not valid JSON (key must be a string"),
            "{err}"
        );
    }

    #[test]
    fn a_newer_format_says_what_to_do() {
        let err = read(&file(&json!({"format": FORMAT, "version": 9}), 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "was saved by a newer veritune (project format 9); this page reads format 1 and older, so it cannot open it: use a newer veritune page"
        );
    }
}
