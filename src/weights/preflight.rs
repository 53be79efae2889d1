//! The checks weight bytes pass before any tensor is made: the container
//! (burnpack: signature, version, header, metadata, every tensor's extent;
//! safetensors: header, every tensor's extent) and veritune's metadata
//! (format version, architecture, configuration).
//! No tensors and no device here, so a bad file is refused before it can
//! touch a model.

use std::collections::BTreeMap;

use burn_pack::{Bytes, HEADER_SIZE, Header, MAGIC_NUMBER, Reader};
use safetensors::SafeTensors;
use thiserror::Error;

/// Metadata key naming the architecture.
pub const ARCHITECTURE_KEY: &str = "veritune.architecture";
/// Metadata key holding the detector configuration as JSON.
pub const CONFIG_KEY: &str = "veritune.config";
/// Metadata key holding the file format version.
pub const FORMAT_KEY: &str = "veritune.format";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: &str = "1";
/// The architecture name of the small FCOS-style detector.
pub const FCOS_SMALL: &str = "fcos-small";
/// The architecture name of NanoDet-g, the pretrained COCO detector.
pub const NANODET_G: &str = "nanodet-g";
/// The architectures this build can load.
pub const ARCHITECTURES: &[&str] = &[FCOS_SMALL, NANODET_G];

/// The two weight file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsFormat {
    /// burn's burnpack.
    Burnpack,
    /// Hugging Face's safetensors, loadable by PyTorch's `safetensors` reader.
    Safetensors,
}

impl WeightsFormat {
    /// The format of `bytes`, told by content: safetensors when they start
    /// with a header length followed by a JSON object that fits in them,
    /// burnpack otherwise.
    pub fn detect(bytes: &[u8]) -> Self {
        let header = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        let fits = header.is_some_and(|n| n >= 2 && n <= (bytes.len() - 8) as u64);
        if fits && bytes.get(8) == Some(&b'{') {
            WeightsFormat::Safetensors
        } else {
            WeightsFormat::Burnpack
        }
    }

    /// The format a file name asks for: safetensors for `.safetensors`,
    /// burnpack for anything else.
    pub fn for_file_name(name: &str) -> Self {
        let extension = name.rsplit_once('.').map(|(_, e)| e);
        if extension.is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) {
            WeightsFormat::Safetensors
        } else {
            WeightsFormat::Burnpack
        }
    }
}

/// What the preflight check found in weight bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsInfo {
    /// The container format.
    pub format: WeightsFormat,
    /// The architecture named in the metadata, one of [`ARCHITECTURES`].
    pub architecture: String,
    /// The detector configuration as stored (JSON).
    pub config: String,
    /// Every metadata entry.
    pub metadata: BTreeMap<String, String>,
    /// Every tensor's name and shape as stored (safetensors: PyTorch's
    /// names and layouts), in name order.
    pub tensors: Vec<(String, Vec<usize>)>,
}

/// Why weight bytes fail the preflight check.
#[derive(Debug, Error, PartialEq)]
pub enum PreflightError {
    /// The bytes end before the part the header promises.
    #[error(
        "the weights file is truncated: it has {len} bytes but its {part} needs {needed}; copy or export it again"
    )]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the part needs from the start of the file.
        needed: usize,
        /// `header` or `metadata`.
        part: &'static str,
    },
    /// The bytes start with neither the burnpack signature nor a
    /// safetensors header.
    #[error(
        "the file is not veritune weights: it starts with neither the burnpack signature nor a safetensors header; give a .bpk or .safetensors file exported by veritune"
    )]
    NotBurnpack,
    /// The bytes start as safetensors but their header or tensors are
    /// malformed or cut short.
    #[error("the safetensors weights file is damaged or truncated ({0}): copy or export it again")]
    Safetensors(String),
    /// The burnpack container is of a newer version than this build reads.
    #[error(
        "the weights file uses burnpack container version {found}, newer than version {supported} that this veritune reads: it was made by a newer veritune; update veritune"
    )]
    NewerContainer {
        /// The version found.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// The container's metadata or tensor table is inconsistent.
    #[error("the weights file is damaged or truncated ({0}): copy or export it again")]
    Damaged(String),
    /// A metadata entry veritune writes is absent.
    #[error(
        "the weights file has no '{0}' entry: it was not written by veritune; export it again from veritune"
    )]
    MissingMetadata(&'static str),
    /// The file was written by a newer veritune.
    #[error(
        "the weights file has format version {found}: it was made by a newer veritune (this one reads version {FORMAT_VERSION}); update veritune"
    )]
    NewerFormat {
        /// The version found.
        found: String,
    },
    /// The format version is not one any veritune writes.
    #[error(
        "the weights file has format version '{found}', which no veritune writes: the file is damaged; export it again"
    )]
    BadFormatVersion {
        /// The version found.
        found: String,
    },
    /// The architecture is not one this build knows.
    #[error(
        "the weights are for a '{0}' detector, which this veritune does not know: update veritune or load {FCOS_SMALL} or {NANODET_G} weights"
    )]
    UnknownArchitecture(String),
}

/// Checks weight bytes without making any tensor: the container is
/// burnpack (not newer than this build) or safetensors, complete (every
/// tensor's bytes present), and carries veritune's format version, a known
/// architecture and a configuration.
pub fn preflight(bytes: &[u8]) -> Result<WeightsInfo, PreflightError> {
    let magic = MAGIC_NUMBER.to_le_bytes();
    let start = &bytes[..bytes.len().min(magic.len())];
    if !bytes.is_empty() && magic.starts_with(start) {
        preflight_burnpack(bytes)
    } else if looks_like_safetensors(bytes) {
        preflight_safetensors(bytes)
    } else {
        Err(PreflightError::NotBurnpack)
    }
}

/// Whether bytes start as safetensors: an 8-byte little-endian header
/// length, then a JSON object.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.get(8) == Some(&b'{')
}

/// The safetensors container: the header parses and every tensor's bytes
/// are present.
fn preflight_safetensors(bytes: &[u8]) -> Result<WeightsInfo, PreflightError> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| PreflightError::Safetensors(e.to_string()))?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut tensors: Vec<(String, Vec<usize>)> = header
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, info.shape.clone()))
        .collect();
    tensors.sort();
    checked_metadata(WeightsFormat::Safetensors, metadata, tensors)
}

fn preflight_burnpack(bytes: &[u8]) -> Result<WeightsInfo, PreflightError> {
    if bytes.len() < HEADER_SIZE {
        return Err(PreflightError::Truncated {
            len: bytes.len(),
            needed: HEADER_SIZE,
            part: "header",
        });
    }
    let header = Header::from_bytes(bytes).map_err(damaged)?;
    if header.version > burn_pack::FORMAT_VERSION {
        return Err(PreflightError::NewerContainer {
            found: header.version,
            supported: burn_pack::FORMAT_VERSION,
        });
    }
    let metadata_end = HEADER_SIZE as u64 + u64::from(header.metadata_size);
    if (bytes.len() as u64) < metadata_end {
        return Err(PreflightError::Truncated {
            len: bytes.len(),
            needed: usize::try_from(metadata_end).unwrap_or(usize::MAX),
            part: "metadata",
        });
    }
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(damaged)?;
    let metadata = reader.metadata().clone();
    let tensors = reader
        .into_tensors()
        .map_err(damaged)?
        .into_iter()
        .map(|t| (t.name, t.shape.to_vec()))
        .collect();
    checked_metadata(WeightsFormat::Burnpack, metadata, tensors)
}

/// veritune's entries in the `metadata` of a container of `format`.
fn checked_metadata(
    format: WeightsFormat,
    metadata: BTreeMap<String, String>,
    tensors: Vec<(String, Vec<usize>)>,
) -> Result<WeightsInfo, PreflightError> {
    let entry = |key: &'static str| {
        metadata
            .get(key)
            .cloned()
            .ok_or(PreflightError::MissingMetadata(key))
    };
    check_format_version(&entry(FORMAT_KEY)?)?;
    let architecture = entry(ARCHITECTURE_KEY)?;
    if !ARCHITECTURES.contains(&architecture.as_str()) {
        return Err(PreflightError::UnknownArchitecture(architecture));
    }
    let config = entry(CONFIG_KEY)?;
    Ok(WeightsInfo {
        format,
        architecture,
        config,
        metadata,
        tensors,
    })
}

fn check_format_version(found: &str) -> Result<(), PreflightError> {
    let ours: u32 = FORMAT_VERSION
        .parse()
        .expect("FORMAT_VERSION is a whole number");
    match found.parse::<u32>() {
        Ok(version) if version == ours => Ok(()),
        Ok(version) if version > ours => Err(PreflightError::NewerFormat {
            found: found.to_string(),
        }),
        _ => Err(PreflightError::BadFormatVersion {
            found: found.to_string(),
        }),
    }
}

fn damaged(error: burn_pack::Error) -> PreflightError {
    PreflightError::Damaged(error.to_string())
}
