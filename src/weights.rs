//! Saving and loading detector weights as bytes: burnpack (burn's own format,
//! with the detector's configuration in its metadata) and safetensors.
//!
//! Writing reads every parameter with one asynchronous transaction, so it works
//! where only asynchronous reads exist (WebGPU in the browser). Reading first
//! passes the bytes through [`preflight`], then compares every tensor's shape
//! with the model's, so that bad bytes are refused before they touch a model.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::store::burn_pack::{self, Writer};
use burn::store::{ModuleRecord, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Bytes, Device, Tensor, Transaction};
use thiserror::Error;

use crate::detector::fcos::{Fcos, FcosConfig};

mod preflight;

pub use preflight::{
    ARCHITECTURE_KEY, ARCHITECTURES, CONFIG_KEY, FCOS_SMALL, FORMAT_KEY, FORMAT_VERSION,
    PreflightError, WeightsInfo, preflight,
};

/// Why weights cannot be written or read.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// The bytes cannot be encoded or decoded as burnpack.
    #[error(
        "the weights are not a readable burnpack file ({0}): the file may be truncated or of another format"
    )]
    Unreadable(String),
    /// The bytes failed the preflight check.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The stored configuration is malformed.
    #[error("the detector configuration stored with the weights is invalid: {0}")]
    BadConfig(String),
    /// A tensor's shape differs from the model's.
    #[error(
        "the weights do not fit this detector: tensor '{tensor}' is {found:?} in the file but {expected:?} in the model, so the weights are for another number of classes or another width; load them with the detector they were made for"
    )]
    ShapeMismatch {
        /// The tensor's name.
        tensor: String,
        /// Its shape in the model.
        expected: Vec<usize>,
        /// Its shape in the file.
        found: Vec<usize>,
    },
    /// The file lacks tensors the model has, or has tensors the model lacks.
    #[error(
        "the weights do not fit this detector: the file lacks {missing:?} and has {unexpected:?} that the model does not; load them with the detector they were made for"
    )]
    TensorNames {
        /// The model's tensors absent from the file.
        missing: Vec<String>,
        /// The file's tensors absent from the model.
        unexpected: Vec<String>,
    },
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

/// Walks a module's float parameters, naming each by its module path and
/// noting its shape; registers their values in a read transaction when
/// `transaction` starts as `Some`.
struct Collect {
    path: Vec<String>,
    entries: Vec<(String, ParamId, Vec<usize>)>,
    transaction: Option<Transaction>,
}

impl Collect {
    fn walk<M: Module>(model: &M, read_values: bool) -> Self {
        let mut collect = Collect {
            path: Vec::new(),
            entries: Vec::new(),
            transaction: read_values.then(Transaction::default),
        };
        model.visit(&mut collect);
        collect
    }
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.transform_for_save().val();
        self.entries
            .push((self.path.join("."), param.id, tensor.shape().to_vec()));
        if let Some(transaction) = self.transaction.take() {
            self.transaction = Some(transaction.register(tensor));
        }
    }
}

/// The model's parameters as a burnpack file with `metadata`, read from the
/// device with one asynchronous transaction.
pub async fn to_burnpack<M: Module>(
    model: &M,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, WeightsError> {
    let collect = Collect::walk(model, true);
    let data = match collect.transaction {
        Some(transaction) if !collect.entries.is_empty() => transaction
            .execute_async()
            .await
            .map_err(|e| WeightsError::Device(format!("{e:?}")))?,
        _ => Vec::new(),
    };
    let tensors = collect
        .entries
        .into_iter()
        .zip(data)
        .map(|((path, id, _), data)| {
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

/// Loads burnpack bytes into `model`, which must have exactly the same
/// parameters: the bytes pass [`preflight`] and every shape is compared
/// before any value is loaded; on error the model is dropped unchanged.
pub fn load_burnpack<M: Module>(model: M, bytes: &[u8]) -> Result<M, WeightsError> {
    let info = preflight(bytes)?;
    load_checked(model, bytes, &info)
}

fn load_checked<M: Module>(model: M, bytes: &[u8], info: &WeightsInfo) -> Result<M, WeightsError> {
    check_shapes(&model, &info.tensors)?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| WeightsError::Unreadable(e.to_string()))?;
    model
        .try_load_record(record)
        .map_err(|e| WeightsError::Mismatch(e.to_string()))
}

/// Whether the file's `tensors` (name, shape) are exactly the model's.
fn check_shapes<M: Module>(
    model: &M,
    tensors: &[(String, Vec<usize>)],
) -> Result<(), WeightsError> {
    let expected: BTreeMap<String, Vec<usize>> = Collect::walk(model, false)
        .entries
        .into_iter()
        .map(|(path, _, shape)| (path, shape))
        .collect();
    let found: BTreeMap<&str, &Vec<usize>> = tensors.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let missing: Vec<String> = expected
        .keys()
        .filter(|name| !found.contains_key(name.as_str()))
        .cloned()
        .collect();
    let unexpected: Vec<String> = found
        .keys()
        .filter(|name| !expected.contains_key(**name))
        .map(|name| name.to_string())
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(WeightsError::TensorNames {
            missing,
            unexpected,
        });
    }
    match expected
        .iter()
        .find(|(name, shape)| found[name.as_str()] != *shape)
    {
        Some((tensor, shape)) => Err(WeightsError::ShapeMismatch {
            tensor: tensor.clone(),
            expected: shape.clone(),
            found: found[tensor.as_str()].clone(),
        }),
        None => Ok(()),
    }
}

/// The small detector's weights and configuration as one burnpack file.
pub async fn save_fcos(model: &Fcos) -> Result<Vec<u8>, WeightsError> {
    let config = serde_json::to_string(model.config())
        .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    let metadata = BTreeMap::from([
        (ARCHITECTURE_KEY.to_string(), FCOS_SMALL.to_string()),
        (CONFIG_KEY.to_string(), config),
    ]);
    to_burnpack(model, &metadata).await
}

/// A small detector built from the configuration in a burnpack file and
/// loaded with its weights, on `device`; the configuration is checked before
/// the detector is built.
pub fn load_fcos(bytes: &[u8], device: &Device) -> Result<Fcos, WeightsError> {
    let info = preflight(bytes)?;
    if info.architecture != FCOS_SMALL {
        return Err(PreflightError::UnknownArchitecture(info.architecture).into());
    }
    let config: FcosConfig =
        serde_json::from_str(&info.config).map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    config
        .check()
        .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    load_checked(config.init(device), bytes, &info)
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
