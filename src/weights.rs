//! Saving and loading detector weights as bytes in two formats, both
//! carrying the detector's configuration in their metadata: burnpack (burn's
//! own format) and safetensors (Hugging Face's, with PyTorch's conventional
//! tensor names, e.g. `backbone.0.conv.weight`, `backbone.0.norm.weight`).
//! Loading tells the two apart by content.
//!
//! Writing reads every parameter with one asynchronous transaction, so it works
//! where only asynchronous reads exist (WebGPU in the browser). Reading first
//! passes the bytes through [`preflight`], then compares every tensor's shape
//! with the model's, so that bad bytes are refused before they touch a model.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::store::burn_pack::{self, Writer};
use burn::store::{
    BurnToPyTorchAdapter, ModuleAdapter, ModuleContext, ModuleRecord, ModuleSnapshot,
    PyTorchToBurnAdapter, SafetensorsStore, SafetensorsStoreError, bridge,
};
use burn::tensor::{Bytes, DType, Device, Tensor, TensorData, Transaction};
use safetensors::tensor::{Dtype, TensorView};
use thiserror::Error;

use crate::detector::fcos::{Fcos, FcosConfig};
use crate::detector::nanodet::{NanoDet, NanoDetConfig};
use crate::detector::{Detector, DetectorSpec};

mod preflight;

pub use preflight::{
    ARCHITECTURE_KEY, ARCHITECTURES, CONFIG_KEY, FCOS_SMALL, FORMAT_KEY, FORMAT_VERSION, NANODET_G,
    PreflightError, WeightsFormat, WeightsInfo, preflight,
};

/// Why weights cannot be written or read.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// The bytes cannot be encoded or decoded as burnpack.
    #[error(
        "the weights are not a readable burnpack file ({0}): the file may be truncated or of another format (veritune reads burnpack and safetensors)"
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

/// A weights format name that is not `burnpack` or `safetensors`.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("'{0}' is not a weights format: use burnpack or safetensors")]
pub struct UnknownWeightsFormat(pub String);

impl std::str::FromStr for WeightsFormat {
    type Err = UnknownWeightsFormat;

    /// `burnpack` or `safetensors`, in any case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            ("burnpack", WeightsFormat::Burnpack),
            ("safetensors", WeightsFormat::Safetensors),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, format)| format)
        .ok_or_else(|| UnknownWeightsFormat(name.to_string()))
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

/// Walks a module's float parameters, naming each by its module path and
/// noting its shape; registers their values in a read transaction when
/// `transaction` starts as `Some`.
struct Collect {
    path: Vec<String>,
    containers: Vec<String>,
    entries: Vec<(String, Vec<String>, ParamId, Vec<usize>)>,
    transaction: Option<Transaction>,
}

impl Collect {
    fn walk<M: Module>(model: &M, read_values: bool) -> Self {
        let mut collect = Collect {
            path: Vec::new(),
            containers: Vec::new(),
            entries: Vec::new(),
            transaction: read_values.then(Transaction::default),
        };
        model.visit(&mut collect);
        collect
    }
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
        let tensor = param.transform_for_save().val();
        self.entries.push((
            self.path.join("."),
            self.containers.clone(),
            param.id,
            tensor.shape().to_vec(),
        ));
        if let Some(transaction) = self.transaction.take() {
            self.transaction = Some(transaction.register(tensor));
        }
    }
}

/// Every float parameter of the model, read from the device with one
/// asynchronous transaction.
async fn read_parameters<M: Module>(model: &M) -> Result<Vec<Parameter>, WeightsError> {
    let collect = Collect::walk(model, true);
    let data = match collect.transaction {
        Some(transaction) if !collect.entries.is_empty() => transaction
            .execute_async()
            .await
            .map_err(|e| WeightsError::Device(format!("{e:?}")))?,
        _ => Vec::new(),
    };
    Ok(collect
        .entries
        .into_iter()
        .zip(data)
        .map(|((path, containers, id, _), data)| Parameter {
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
        .map(|(path, _, _, shape)| (path, shape))
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

/// A detector whose weights veritune saves with its architecture and
/// configuration.
pub trait StoredDetector: Detector {
    /// The architecture name stored in the metadata.
    const ARCHITECTURE: &'static str;
    /// The configuration stored in the metadata, as JSON.
    fn config_json(&self) -> Result<String, WeightsError>;
}

impl StoredDetector for Fcos {
    const ARCHITECTURE: &'static str = FCOS_SMALL;
    fn config_json(&self) -> Result<String, WeightsError> {
        serde_json::to_string(self.config()).map_err(|e| WeightsError::BadConfig(e.to_string()))
    }
}

impl StoredDetector for NanoDet {
    const ARCHITECTURE: &'static str = NANODET_G;
    fn config_json(&self) -> Result<String, WeightsError> {
        serde_json::to_string(self.config()).map_err(|e| WeightsError::BadConfig(e.to_string()))
    }
}

/// A detector's weights, architecture and configuration as one file in `format`.
pub async fn save_detector<D: StoredDetector>(
    model: &D,
    format: WeightsFormat,
) -> Result<Vec<u8>, WeightsError> {
    let metadata = BTreeMap::from([
        (ARCHITECTURE_KEY.to_string(), D::ARCHITECTURE.to_string()),
        (CONFIG_KEY.to_string(), model.config_json()?),
    ]);
    match format {
        WeightsFormat::Burnpack => to_burnpack(model, &metadata).await,
        WeightsFormat::Safetensors => to_safetensors(model, &metadata).await,
    }
}

/// The small detector's weights and configuration as one file in `format`.
pub async fn save_fcos(model: &Fcos, format: WeightsFormat) -> Result<Vec<u8>, WeightsError> {
    save_detector(model, format).await
}

/// The small detector's configuration stored with its weights (burnpack or
/// safetensors), checked, without loading the weights.
pub fn read_fcos_config(bytes: &[u8]) -> Result<FcosConfig, WeightsError> {
    fcos_config(&preflight(bytes)?)
}

/// The stored configuration of `info`'s architecture, which must be `expected`.
fn stored_config<C: serde::de::DeserializeOwned>(
    info: &WeightsInfo,
    expected: &str,
) -> Result<C, WeightsError> {
    if info.architecture != expected {
        return Err(PreflightError::UnknownArchitecture(info.architecture.clone()).into());
    }
    serde_json::from_str(&info.config).map_err(|e| WeightsError::BadConfig(e.to_string()))
}

/// The small detector's configuration from what [`preflight`] found.
fn fcos_config(info: &WeightsInfo) -> Result<FcosConfig, WeightsError> {
    let config: FcosConfig = stored_config(info, FCOS_SMALL)?;
    config
        .check()
        .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    Ok(config)
}

/// NanoDet's configuration from what [`preflight`] found.
fn nanodet_config(info: &WeightsInfo) -> Result<NanoDetConfig, WeightsError> {
    let config: NanoDetConfig = stored_config(info, NANODET_G)?;
    config
        .check()
        .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
    Ok(config)
}

/// Loads `bytes` (preflight already passed as `info`) into `model`.
fn load_into<M: Module>(model: M, bytes: &[u8], info: &WeightsInfo) -> Result<M, WeightsError> {
    match info.format {
        WeightsFormat::Burnpack => load_checked(model, bytes, info),
        WeightsFormat::Safetensors => load_safetensors(model, bytes),
    }
}

/// A small detector built from the configuration stored with its weights
/// (burnpack or safetensors, told by content) and loaded with them, on
/// `device`. The bytes pass [`preflight`] and the configuration is checked
/// before the detector is built; burnpack shapes are compared before any
/// value is loaded.
pub fn load_fcos(bytes: &[u8], device: &Device) -> Result<Fcos, WeightsError> {
    let info = preflight(bytes)?;
    load_into(fcos_config(&info)?.init(device), bytes, &info)
}

/// A detector of any architecture this build knows, as loaded from weights.
#[derive(Clone, Debug)]
pub enum AnyDetector {
    /// The small FCOS-style detector.
    Fcos(Box<Fcos>),
    /// NanoDet-g.
    NanoDet(Box<NanoDet>),
}

/// Evaluates `$body` with `$model` bound to the detector inside `$any` (an
/// `&AnyDetector`) as `&Fcos` or `&NanoDet`, whichever it holds: code
/// generic over [`StoredDetector`] is written once for every architecture.
#[macro_export]
macro_rules! with_any_detector {
    ($any:expr, $model:ident => $body:expr) => {
        match $any {
            $crate::weights::AnyDetector::Fcos($model) => {
                let $model: &$crate::detector::fcos::Fcos = $model;
                $body
            }
            $crate::weights::AnyDetector::NanoDet($model) => {
                let $model: &$crate::detector::nanodet::NanoDet = $model;
                $body
            }
        }
    };
}
#[cfg_attr(not(target_arch = "wasm32"), allow(unused_imports))]
pub use crate::with_any_detector;

impl AnyDetector {
    /// The same detector with its backbone frozen or trained, when it has
    /// one that can be ([`NanoDet::with_frozen_backbone`]); the small
    /// detector always trains whole and comes back unchanged.
    pub fn with_frozen_backbone(self, freeze: bool) -> Self {
        match self {
            Self::NanoDet(model) => Self::NanoDet(Box::new(model.with_frozen_backbone(freeze))),
            other => other,
        }
    }

    /// What the detector is (architecture's input size, classes, preprocessing).
    pub fn spec(&self) -> &DetectorSpec {
        with_any_detector!(self, model => model.spec())
    }

    /// The detector's weights, architecture and configuration as one file
    /// in `format` (see [`save_detector`]).
    pub async fn save(&self, format: WeightsFormat) -> Result<Vec<u8>, WeightsError> {
        with_any_detector!(self, model => save_detector(model, format).await)
    }
}

impl From<Fcos> for AnyDetector {
    fn from(model: Fcos) -> Self {
        AnyDetector::Fcos(Box::new(model))
    }
}

impl From<NanoDet> for AnyDetector {
    fn from(model: NanoDet) -> Self {
        AnyDetector::NanoDet(Box::new(model))
    }
}

/// The detector the weights are for (its architecture read from their
/// metadata), built from the stored configuration and loaded with them, with
/// the same checks as [`load_fcos`].
pub fn load_detector(bytes: &[u8], device: &Device) -> Result<AnyDetector, WeightsError> {
    let info = preflight(bytes)?;
    if info.architecture == NANODET_G {
        let model = nanodet_config(&info)?.init(device);
        return load_into(model, bytes, &info).map(AnyDetector::from);
    }
    load_into(fcos_config(&info)?.init(device), bytes, &info).map(AnyDetector::from)
}

/// What the detector of these weights is (architecture, input size, classes,
/// preprocessing), from the stored configuration, without loading the weights.
pub fn read_spec(bytes: &[u8]) -> Result<DetectorSpec, WeightsError> {
    let info = preflight(bytes)?;
    if info.architecture == NANODET_G {
        return Ok(nanodet_config(&info)?.spec());
    }
    Ok(fcos_config(&info)?.spec())
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
