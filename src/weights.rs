//! Saving and loading detector weights as bytes in two formats, both
//! carrying the detector's configuration in their metadata: burnpack (burn's
//! own format) and safetensors (Hugging Face's, with PyTorch's conventional
//! tensor names, e.g. `backbone.0.conv.weight`, `backbone.0.norm.weight`).
//! Loading tells the two apart by content.
//!
//! Writing reads every parameter with one asynchronous transaction, so it works
//! where only asynchronous reads exist (WebGPU in the browser).

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::store::burn_pack::{self, Reader, Writer};
use burn::store::{
    BurnToPyTorchAdapter, ModuleAdapter, ModuleContext, ModuleRecord, ModuleSnapshot,
    PyTorchToBurnAdapter, SafetensorsStore, SafetensorsStoreError, bridge,
};
use burn::tensor::{Bytes, DType, Device, Tensor, TensorData, Transaction};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
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
        "the weights are not a readable burnpack file ({0}): the file may be truncated or of another format (veritune reads burnpack and safetensors)"
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
    /// The bytes look like safetensors but cannot be read or written as such.
    #[error(
        "the weights are not a readable safetensors file ({0}): the file may be truncated; export it again"
    )]
    Safetensors(String),
    /// A parameter has a data type safetensors files from veritune do not hold.
    #[error("the parameter {name} has the data type {dtype:?}, which veritune does not export")]
    UnsupportedDtype {
        /// The parameter's path.
        name: String,
        /// Its data type.
        dtype: DType,
    },
}

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

/// One parameter read from the device.
struct Parameter {
    /// Its module path, e.g. `backbone.0.norm.gamma`.
    path: String,
    /// The container types from the model down to it, for burn's adapters.
    containers: Vec<String>,
    id: ParamId,
    data: TensorData,
}

struct Collect {
    path: Vec<String>,
    containers: Vec<String>,
    entries: Vec<(String, Vec<String>, ParamId)>,
    transaction: Option<Transaction>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.entries
            .push((self.path.join("."), self.containers.clone(), param.id));
        let transaction = self.transaction.take().unwrap_or_default();
        self.transaction = Some(transaction.register(param.transform_for_save().val()));
    }
}

/// Every float parameter of the model, read from the device with one
/// asynchronous transaction.
async fn read_parameters<M: Module>(model: &M) -> Result<Vec<Parameter>, WeightsError> {
    let mut collect = Collect {
        path: Vec::new(),
        containers: Vec::new(),
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
    Ok(collect
        .entries
        .into_iter()
        .zip(data)
        .map(|((path, containers, id), data)| Parameter {
            path,
            containers,
            id,
            data,
        })
        .collect())
}

/// The model's parameters as a burnpack file with `metadata`.
pub async fn to_burnpack<M: Module>(
    model: &M,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, WeightsError> {
    let tensors = read_parameters(model)
        .await?
        .into_iter()
        .map(|p| {
            let (bytes, shape, dtype) = p.data.into_parts();
            burn_pack::Tensor::new(p.path, dtype, shape, Some(p.id.val()), bytes)
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

/// The metadata of a burnpack or safetensors file, checking that veritune
/// can read it.
pub fn read_metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>, WeightsError> {
    let metadata: BTreeMap<String, String> = match WeightsFormat::detect(bytes) {
        WeightsFormat::Burnpack => Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| WeightsError::Unreadable(e.to_string()))?
            .metadata()
            .clone()
            .into_iter()
            .collect(),
        WeightsFormat::Safetensors => SafeTensors::read_metadata(bytes)
            .map_err(|e| WeightsError::Safetensors(e.to_string()))?
            .1
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
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

/// The metadata veritune stores with the small detector's weights.
fn fcos_metadata(model: &Fcos) -> Result<BTreeMap<String, String>, WeightsError> {
    let config = serde_json::to_string(model.config())
        .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    Ok(BTreeMap::from([
        (ARCHITECTURE_KEY.to_string(), "fcos-small".to_string()),
        (CONFIG_KEY.to_string(), config),
    ]))
}

/// The small detector's weights and configuration as one file in `format`.
pub async fn save_fcos(model: &Fcos, format: WeightsFormat) -> Result<Vec<u8>, WeightsError> {
    let metadata = fcos_metadata(model)?;
    match format {
        WeightsFormat::Burnpack => to_burnpack(model, &metadata).await,
        WeightsFormat::Safetensors => to_safetensors(model, &metadata).await,
    }
}

/// The small detector's configuration stored with its weights (burnpack or
/// safetensors), without loading the weights.
pub fn read_fcos_config(bytes: &[u8]) -> Result<FcosConfig, WeightsError> {
    let metadata = read_metadata(bytes)?;
    let architecture = metadata
        .get(ARCHITECTURE_KEY)
        .ok_or(WeightsError::MissingMetadata(ARCHITECTURE_KEY))?;
    if architecture != "fcos-small" {
        return Err(WeightsError::UnknownArchitecture(architecture.clone()));
    }
    serde_json::from_str(
        metadata
            .get(CONFIG_KEY)
            .ok_or(WeightsError::MissingMetadata(CONFIG_KEY))?,
    )
    .map_err(|e| WeightsError::BadConfig(e.to_string()))
}

/// A small detector built from the configuration stored with its weights
/// (burnpack or safetensors, told by content) and loaded with them, on
/// `device`.
pub fn load_fcos(bytes: &[u8], device: &Device) -> Result<Fcos, WeightsError> {
    let model = read_fcos_config(bytes)?.init(device);
    match WeightsFormat::detect(bytes) {
        WeightsFormat::Burnpack => load_burnpack(model, bytes),
        WeightsFormat::Safetensors => load_safetensors(model, bytes),
    }
}

/// The safetensors data type of a parameter.
fn safetensors_dtype(name: &str, dtype: DType) -> Result<Dtype, WeightsError> {
    match dtype {
        DType::F64 => Ok(Dtype::F64),
        DType::F32 | DType::Flex32 => Ok(Dtype::F32),
        DType::F16 => Ok(Dtype::F16),
        DType::BF16 => Ok(Dtype::BF16),
        other => Err(WeightsError::UnsupportedDtype {
            name: name.to_string(),
            dtype: other,
        }),
    }
}

/// The model's parameters as a safetensors file with `metadata` (plus
/// `format: pt`, as PyTorch's writers mark theirs), under PyTorch's names
/// and layouts: burn's module paths with normalisation `gamma`/`beta` as
/// `weight`/`bias` and linear weights transposed to `[out, in]`.
pub async fn to_safetensors<M: Module>(
    model: &M,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, WeightsError> {
    let mut tensors = Vec::new();
    for parameter in read_parameters(model).await? {
        let tensor = bridge::from_data(parameter.data, parameter.path, Some(parameter.id.val()));
        let tensor = BurnToPyTorchAdapter.adapt(tensor, ModuleContext::new(&parameter.containers));
        let name = tensor.name.clone();
        let data = bridge::into_data(tensor).map_err(|e| WeightsError::Device(e.to_string()))?;
        tensors.push((name, data));
    }
    let views = tensors
        .iter()
        .map(|(name, data)| {
            let dtype = safetensors_dtype(name, data.dtype())?;
            TensorView::new(dtype, data.shape().to_vec(), data.as_bytes())
                .map(|view| (name.as_str(), view))
                .map_err(|e| WeightsError::Safetensors(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut header: HashMap<String, String> = metadata.clone().into_iter().collect();
    header.insert(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string());
    header.insert("format".to_string(), "pt".to_string());
    safetensors::serialize(views, Some(header))
        .map_err(|e| WeightsError::Safetensors(e.to_string()))
}

/// Loads safetensors bytes into `model`; every parameter must be present
/// with its shape, under burn's or PyTorch's names, and no other tensor.
pub fn load_safetensors<M: Module>(mut model: M, bytes: &[u8]) -> Result<M, WeightsError> {
    let mut store =
        SafetensorsStore::from_bytes(Some(bytes.to_vec())).with_from_adapter(PyTorchToBurnAdapter);
    let result = model.load_from(&mut store).map_err(|e| match e {
        SafetensorsStoreError::ValidationFailed(reason)
        | SafetensorsStoreError::TensorNotFound(reason) => WeightsError::Mismatch(reason),
        other => WeightsError::Safetensors(other.to_string()),
    })?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(WeightsError::Mismatch(format!("{result}")));
    }
    Ok(model)
}
