//! Saving and loading detector weights as bytes: burnpack (burn's own format,
//! with the detector's configuration in its metadata) and safetensors.
//!
//! Writing reads every parameter with one asynchronous transaction, so it works
//! where only asynchronous reads exist (WebGPU in the browser).

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::store::burn_pack::{self, Reader, Writer};
use burn::store::{ModuleRecord, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Bytes, Device, Tensor, Transaction};
use thiserror::Error;

use crate::detector::fcos::{Fcos, FcosConfig};

/// Metadata key naming the architecture.
pub const ARCHITECTURE_KEY: &str = "veritune.architecture";
/// Metadata key holding the detector configuration as JSON.
pub const CONFIG_KEY: &str = "veritune.config";
/// Metadata key holding the file format version.
pub const FORMAT_KEY: &str = "veritune.format";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// Why weights cannot be written or read.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// The bytes are not a burnpack file, or are truncated.
    #[error(
        "the weights are not a readable burnpack file ({0}): the file may be truncated or of another format"
    )]
    Unreadable(String),
    /// The file is burnpack but not one written by veritune.
    #[error(
        "the weights file has no '{0}' entry: it was not written by veritune, export it again from veritune"
    )]
    MissingMetadata(&'static str),
    /// The file was written by a newer veritune.
    #[error(
        "the weights file has format version {found} but this veritune reads version {FORMAT_VERSION}: update veritune"
    )]
    NewerFormat {
        /// The version found.
        found: String,
    },
    /// The architecture is not one this build knows.
    #[error("the weights are for a '{0}' detector, which this veritune does not know")]
    UnknownArchitecture(String),
    /// The stored configuration is malformed.
    #[error("the detector configuration stored with the weights is invalid: {0}")]
    BadConfig(String),
    /// Tensors do not fit the model (wrong shapes, missing or extra tensors).
    #[error("the weights do not fit this detector: {0}")]
    Mismatch(String),
    /// Reading from the device failed.
    #[error("reading the weights from the device failed: {0}")]
    Device(String),
    /// safetensors encoding or decoding failed.
    #[error("safetensors: {0}")]
    Safetensors(String),
}

struct Collect {
    path: Vec<String>,
    entries: Vec<(String, ParamId)>,
    transaction: Option<Transaction>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.entries.push((self.path.join("."), param.id));
        let transaction = self.transaction.take().unwrap_or_default();
        self.transaction = Some(transaction.register(param.transform_for_save().val()));
    }
}

/// The model's parameters as a burnpack file with `metadata`, read from the
/// device with one asynchronous transaction.
pub async fn to_burnpack<M: Module>(
    model: &M,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, WeightsError> {
    let mut collect = Collect {
        path: Vec::new(),
        entries: Vec::new(),
        transaction: None,
    };
    model.visit(&mut collect);
    let data = match collect.transaction {
        Some(transaction) => transaction
            .execute_async()
            .await
            .map_err(|e| WeightsError::Device(format!("{e:?}")))?,
        None => Vec::new(),
    };
    let tensors = collect
        .entries
        .into_iter()
        .zip(data)
        .map(|((path, id), data)| {
            let (bytes, shape, dtype) = data.into_parts();
            burn_pack::Tensor::new(path, dtype, shape, Some(id.val()), bytes)
        })
        .collect();
    let mut writer = Writer::new(tensors).with_metadata(FORMAT_KEY, FORMAT_VERSION);
    for (key, value) in metadata {
        writer = writer.with_metadata(key, value);
    }
    let bytes = writer
        .into_bytes()
        .map_err(|e| WeightsError::Unreadable(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// The metadata of a burnpack file, checking that veritune can read it.
pub fn read_metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>, WeightsError> {
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| WeightsError::Unreadable(e.to_string()))?;
    let metadata = reader.metadata().clone();
    let version = metadata
        .get(FORMAT_KEY)
        .ok_or(WeightsError::MissingMetadata(FORMAT_KEY))?;
    if version != FORMAT_VERSION {
        return Err(WeightsError::NewerFormat {
            found: version.clone(),
        });
    }
    Ok(metadata)
}

/// Loads burnpack bytes into `model`, which must have exactly the same
/// parameters; the model is untouched on error.
pub fn load_burnpack<M: Module>(model: M, bytes: &[u8]) -> Result<M, WeightsError> {
    read_metadata(bytes)?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| WeightsError::Unreadable(e.to_string()))?;
    model
        .try_load_record(record)
        .map_err(|e| WeightsError::Mismatch(e.to_string()))
}

/// The small detector's weights and configuration as one burnpack file.
pub async fn save_fcos(model: &Fcos) -> Result<Vec<u8>, WeightsError> {
    let config = serde_json::to_string(model.config())
        .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    let metadata = BTreeMap::from([
        (ARCHITECTURE_KEY.to_string(), "fcos-small".to_string()),
        (CONFIG_KEY.to_string(), config),
    ]);
    to_burnpack(model, &metadata).await
}

/// A small detector built from the configuration in a burnpack file and
/// loaded with its weights, on `device`.
pub fn load_fcos(bytes: &[u8], device: &Device) -> Result<Fcos, WeightsError> {
    let metadata = read_metadata(bytes)?;
    let architecture = metadata
        .get(ARCHITECTURE_KEY)
        .ok_or(WeightsError::MissingMetadata(ARCHITECTURE_KEY))?;
    if architecture != "fcos-small" {
        return Err(WeightsError::UnknownArchitecture(architecture.clone()));
    }
    let config: FcosConfig = serde_json::from_str(
        metadata
            .get(CONFIG_KEY)
            .ok_or(WeightsError::MissingMetadata(CONFIG_KEY))?,
    )
    .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    load_burnpack(config.init(device), bytes)
}

/// The model's parameters as safetensors bytes, named by module path
/// (e.g. `backbone.0.conv.weight`).
pub fn to_safetensors<M: Module>(model: &M) -> Result<Vec<u8>, WeightsError> {
    let mut store = SafetensorsStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| WeightsError::Safetensors(e.to_string()))?;
    store
        .get_bytes()
        .map_err(|e| WeightsError::Safetensors(e.to_string()))
}

/// Loads safetensors bytes into `model`; every parameter must be present with
/// its shape.
pub fn load_safetensors<M: Module>(mut model: M, bytes: &[u8]) -> Result<M, WeightsError> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    let result = model
        .load_from(&mut store)
        .map_err(|e| WeightsError::Safetensors(e.to_string()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(WeightsError::Mismatch(format!("{result}")));
    }
    Ok(model)
}
