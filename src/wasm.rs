//! The browser API (wasm-bindgen): a [`Session`] that loads meta-model bytes
//! (the small detector or NanoDet-g), picks WebGPU or the CPU fallback,
//! predicts on RGBA pixels, keeps the verified samples and the history
//! library, trains step by step without freezing the page, and exports the
//! adapted weights. The benchmark page (`www/bench.js`) times the same
//! session, with two more calls: a batched forward pass and one per-sample
//! history gradient.
//!
//! Every method reports failure as a rejected promise or thrown `Error` with a
//! sentence; a Rust panic cannot be caught on wasm, so [`install_panic_hook`]
//! hands its message to `globalThis.__veritunePanic` for the page to reject
//! whatever is pending.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::app::labels;
use crate::app::options::{self, TrainOptions, TrainSettings};
use crate::app::review::Reviewer;
use crate::app::reviews::{ReviewStats, Reviews};
use crate::app::run::{StepDone, StepReporter, UntilHonored, run};
use crate::detector::{
    Detector, DetectorSpec, input_batch, model_device, shown_detections, shown_indices,
};
use crate::fidelity::{EpochCheck, FidelityConfig, Tally, check_image};
use crate::formats::import::SkippedClass;
use crate::formats::{Format, TextFile};
use crate::geometry::{Detection, LabeledBox};
use crate::history::HistoryPolicy;
use crate::image::Image;
use crate::mixing::MixingRule;
use crate::predict::{NMS_IOU, boxes_kept, candidates};
use crate::project_file::{check_manifest, manifest_length};
use crate::sample::Sample;
use crate::trainer::{Control, SkipReason, StepRecord, TrainError, sample_gradient};
use crate::verdict::{Category, ImageVerdicts, Judgement, ShownBox, TargetConfig};
use crate::weights::{AnyDetector, WeightsFormat, load_detector, with_any_detector};

/// Forwards warnings and errors of the `log` crate (burn and cubecl report
/// WebGPU shader and validation failures there) to the browser console.
struct ConsoleLog;

impl log::Log for ConsoleLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = JsValue::from_str(&format!("{}: {}", record.target(), record.args()));
        match record.level() {
            log::Level::Error => web_sys::console::error_1(&message),
            _ => web_sys::console::warn_1(&message),
        }
    }

    fn flush(&self) {}
}

static CONSOLE_LOG: ConsoleLog = ConsoleLog;

unsafe extern "C" {
    /// The static constructors of the module (burn's kernel registry among
    /// them), synthesised by the linker.
    fn __wasm_call_ctors();
}

/// Runs the static constructors once, when the module is instantiated.
/// Without an explicit call the linker treats the module as a command and
/// runs every constructor again at the start of every exported function:
/// each call from JavaScript, down to a `JsValue` handle, cost milliseconds,
/// and a prediction of the small detector on the CPU took seconds.
#[wasm_bindgen(start)]
fn run_constructors() {
    // SAFETY: called once, by wasm-bindgen's start hook, before any other
    // export; the constructors only register entries in static tables.
    unsafe { __wasm_call_ctors() }
}

/// Sends panic messages to `globalThis.__veritunePanic(message)` (and the
/// console), and warnings and errors from burn's log to the console.
#[wasm_bindgen(js_name = installPanicHook)]
pub fn install_panic_hook() {
    if log::set_logger(&CONSOLE_LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    std::panic::set_hook(Box::new(|info| {
        let message = format!("veritune crashed: {info}");
        web_sys::console::error_1(&JsValue::from_str(&message));
        let global = js_sys::global();
        if let Ok(callback) = js_sys::Reflect::get(&global, &JsValue::from_str("__veritunePanic"))
            && let Some(callback) = callback.dyn_ref::<js_sys::Function>()
        {
            let _ = callback.call1(&JsValue::NULL, &JsValue::from_str(&message));
        }
    }));
}

/// Panics on purpose, so that tests can check a crash reaches the page
/// through [`install_panic_hook`] instead of leaving it waiting.
#[wasm_bindgen(js_name = panicForTest)]
pub fn panic_for_test() {
    panic!("panic requested by a test");
}

/// The indices of the `candidates` shown at `threshold` (score at or above
/// it, then class-aware NMS), by descending score: the boxes the page shows.
#[wasm_bindgen(js_name = shownIndices)]
pub fn shown_indices_at(candidates: JsValue, threshold: f32) -> Result<Vec<u32>, JsError> {
    check_threshold(threshold)?;
    let candidates: Vec<Detection> = from_js(candidates, "the candidate list")?;
    Ok(shown_indices(&candidates, threshold, NMS_IOU)
        .into_iter()
        .map(|i| i as u32)
        .collect())
}

/// An image's categories from its `verdicts` (`correct`, or
/// `missed_detection` and/or `false_detection`); none while a shown box is
/// not judged.
#[wasm_bindgen(js_name = imageCategories)]
pub fn image_categories(verdicts: JsValue) -> Result<JsValue, JsError> {
    let verdicts = verdicts_from_js(verdicts)?;
    to_js(&verdicts.categories())
}

/// Refuses a score threshold outside 0..=1.
fn check_threshold(threshold: f32) -> Result<(), JsError> {
    options::check_threshold(threshold).map_err(error)
}

/// Each verdict given on an image, honored or not by the model's candidates
/// on it now (`candidates`, image pixels; shown as at `threshold`, after
/// NMS): `[{asked, index, label, honored}]` as [`check_image`] decides, the
/// rule `veritune finetune` reports with.
#[wasm_bindgen(js_name = checkVerdicts)]
pub fn check_verdicts(
    verdicts: JsValue,
    candidates: JsValue,
    threshold: f32,
) -> Result<JsValue, JsError> {
    check_threshold(threshold)?;
    let verdicts = verdicts_from_js(verdicts)?;
    let candidates: Vec<Detection> = from_js(candidates, "the candidate list")?;
    let config = FidelityConfig {
        score_threshold: threshold,
        ..FidelityConfig::default()
    };
    let shown = shown_detections(&candidates, threshold, NMS_IOU);
    to_js(&check_image(&verdicts, &shown, &config))
}

/// The length of the manifest a project file's first bytes (`head`)
/// announce, for a file of `file_len` bytes; an error is a sentence to put
/// after the file's name.
#[wasm_bindgen(js_name = projectManifestLength)]
pub fn project_manifest_length(head: &[u8], file_len: f64) -> Result<usize, JsError> {
    manifest_length(head, file_len as u64).map_err(error)
}

/// A project file's manifest (`json`, the bytes after its header), checked
/// against a file of `file_len` bytes (see [`crate::project_file`]); an error
/// is a sentence to put after the file's name.
#[wasm_bindgen(js_name = checkProjectManifest)]
pub fn check_project_manifest(json: &[u8], file_len: f64) -> Result<JsValue, JsError> {
    to_js(&check_manifest(json, file_len as u64).map_err(error)?)
}

fn error(message: impl std::fmt::Display) -> JsError {
    JsError::new(&message.to_string())
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    json(value).map_err(error)
}

/// `value` as a plain JavaScript value (objects, not maps).
fn json<T: Serialize>(value: &T) -> Result<JsValue, String> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| e.to_string())
}

fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| error(format!("{what} is malformed: {e}")))
}

/// Lets the browser run its event loop before continuing: paint and input
/// on the page, messages (a cancel) in a worker. `setTimeout` is looked up
/// on the global object, which is a window on the page and a worker scope
/// in a worker.
async fn yield_to_page() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let scheduled = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .map(|set_timeout| set_timeout.call2(&global, &resolve, &JsValue::from(0)));
        if !matches!(scheduled, Some(Ok(_))) {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Whether `navigator.gpu` exists.
fn has_webgpu() -> bool {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &JsValue::from_str("navigator"))
        .and_then(|navigator| js_sys::Reflect::get(&navigator, &JsValue::from_str("gpu")))
        .is_ok_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

/// The device to run on, its name and, for the CPU fallback, why.
async fn pick_device(prefer_webgpu: bool) -> (Device, &'static str, String) {
    if !prefer_webgpu {
        return (
            Device::flex(),
            "cpu",
            "WebGPU was turned off for this session".into(),
        );
    }
    if !has_webgpu() {
        return (
            Device::flex(),
            "cpu",
            "this browser has no WebGPU (navigator.gpu is missing)".into(),
        );
    }
    match Device::wgpu_options()
        .graphics_api(burn::tensor::wgpu::WgpuBackend::WebGpu)
        .init_async()
        .await
    {
        Ok(device) => (device, "webgpu", String::new()),
        Err(e) => (
            Device::flex(),
            "cpu",
            format!("no WebGPU adapter could be used ({e})"),
        ),
    }
}

/// A stable hex digest of the base model's bytes (FNV-1a, 64 bit).
fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

struct Inner {
    /// `None` while a training run holds it.
    model: Option<AnyDetector>,
    /// The reviewed images and the history library.
    reviews: Reviews,
}

/// One user's fine-tuning session in the page.
#[wasm_bindgen]
pub struct Session {
    inner: Rc<RefCell<Inner>>,
    cancel: Rc<Cell<bool>>,
    backend: &'static str,
    notice: String,
    base_hash: String,
    class_names: Vec<String>,
    input_size: usize,
}

#[derive(Serialize)]
struct Prediction {
    shown: Vec<Detection>,
    candidates: Vec<Detection>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    samples: usize,
    correct: usize,
    missed: usize,
    false_detections: usize,
    history: usize,
}

impl From<ReviewStats> for Stats {
    fn from(s: ReviewStats) -> Self {
        Self {
            samples: s.samples,
            correct: s.correct,
            missed: s.missed,
            false_detections: s.false_detections,
            history: s.history,
        }
    }
}

/// The page's training options ([`TrainOptions`]; left out: the detector's
/// default), and whether it wants the weights after every step.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrainRequest {
    epochs: Option<usize>,
    rule: Option<String>,
    batch_size: Option<usize>,
    learning_rate: Option<f64>,
    /// Pass the weights after every step to the step callback (burnpack),
    /// so the page can keep the last completed step.
    #[serde(default)]
    checkpoint: bool,
    freeze_backbone: Option<bool>,
    until_honored: Option<bool>,
    threshold: Option<f32>,
}

impl TrainRequest {
    fn options(&self) -> Result<TrainOptions, JsError> {
        Ok(TrainOptions {
            epochs: self.epochs,
            until_honored: self.until_honored,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            rule: self
                .rule
                .as_deref()
                .map(str::parse::<MixingRule>)
                .transpose()
                .map_err(error)?,
            threshold: self.threshold,
            freeze_backbone: self.freeze_backbone,
        })
    }
}

/// A run's settings as the page shows them ([`TrainSettings`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrainSettingsJs {
    epochs: usize,
    until_honored: bool,
    batch_size: usize,
    learning_rate: f64,
    rule: &'static str,
    threshold: f32,
    freeze_backbone: bool,
}

impl From<TrainSettings> for TrainSettingsJs {
    fn from(s: TrainSettings) -> Self {
        Self {
            epochs: s.epochs,
            until_honored: s.until_honored,
            batch_size: s.batch_size,
            learning_rate: s.learning_rate,
            rule: s.rule.name(),
            threshold: s.threshold,
            freeze_backbone: s.freeze_backbone,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrainResult {
    records: Vec<StepRecordJs>,
    cancelled: bool,
    /// The checks made at the ends of epochs, when training until honored.
    epoch_checks: Vec<EpochCheckJs>,
}

/// A step's record for the page ([`StepRecord`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepRecordJs {
    epoch: usize,
    step: usize,
    transfer_loss: f64,
    history_loss: Option<f64>,
    mix: MixJs,
    /// Why the update was skipped: `transfer_loss`, `history_loss` or `gradient`.
    skipped: Option<SkipReason>,
}

/// The mix of a step for the page ([`crate::mixing::MixRecord`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MixJs {
    similarity: f64,
    a_t: f64,
    a_h: f64,
    norm_t: f64,
    norm_h: f64,
}

impl From<&StepRecord> for StepRecordJs {
    fn from(record: &StepRecord) -> Self {
        let mix = &record.mix;
        Self {
            epoch: record.epoch,
            step: record.step,
            transfer_loss: record.transfer_loss,
            history_loss: record.history_loss,
            mix: MixJs {
                similarity: mix.similarity,
                a_t: mix.a_t,
                a_h: mix.a_h,
                norm_t: mix.norm_t,
                norm_h: mix.norm_h,
            },
            skipped: record.skipped,
        }
    }
}

/// The verdicts honored after an epoch, for the page ([`EpochCheck`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpochCheckJs {
    epochs: usize,
    verdicts_honored: Tally,
}

impl From<&EpochCheck> for EpochCheckJs {
    fn from(check: &EpochCheck) -> Self {
        Self {
            epochs: check.epochs,
            verdicts_honored: check.verdicts_honored,
        }
    }
}

/// An image's verdicts as the page sends them ([`ImageVerdicts`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageVerdictsJs {
    shown: Vec<ShownBox>,
    drawn: Vec<LabeledBox>,
    /// The page's target classes when it shows only some.
    #[serde(default)]
    reviewed_classes: Option<Vec<usize>>,
}

impl From<ImageVerdictsJs> for ImageVerdicts {
    fn from(verdicts: ImageVerdictsJs) -> Self {
        Self {
            shown: verdicts.shown,
            drawn: verdicts.drawn,
            reviewed_classes: verdicts.reviewed_classes,
        }
    }
}

/// An image the page sends with the candidates shown on it and the verdicts
/// given on them.
fn judged_image(
    rgba: &[u8],
    width: usize,
    height: usize,
    candidates: JsValue,
    verdicts: JsValue,
) -> Result<(Image, Vec<Detection>, ImageVerdicts), JsError> {
    let image = Image::from_rgba8(width, height, rgba).map_err(error)?;
    let candidates: Vec<Detection> = from_js(candidates, "the candidate list")?;
    Ok((image, candidates, verdicts_from_js(verdicts)?))
}

/// The verdicts in a JavaScript value the page sent.
fn verdicts_from_js(value: JsValue) -> Result<ImageVerdicts, JsError> {
    from_js::<ImageVerdictsJs>(value, "the verdicts").map(ImageVerdicts::from)
}

/// Follows a run for the page: each step goes to its callback (with the
/// weights after it when the page keeps checkpoints), then the page's events
/// run, then a cancel is read before the next step.
struct PageReporter<'a> {
    on_step: &'a js_sys::Function,
    checkpoint: bool,
    cancel: &'a Cell<bool>,
}

impl PageReporter<'_> {
    /// The callback's arguments for `step`: `(record, done, total, weights, check)`.
    async fn arguments<M: Detector + Into<AnyDetector>>(
        &self,
        step: &StepDone<'_, M>,
    ) -> Result<js_sys::Array, String> {
        let weights = if self.checkpoint {
            let model: AnyDetector = step.model.clone().into();
            let bytes = model
                .save(WeightsFormat::Burnpack)
                .await
                .map_err(|e| e.to_string())?;
            js_sys::Uint8Array::from(bytes.as_slice()).into()
        } else {
            JsValue::UNDEFINED
        };
        let check = match &step.check {
            Some(check) => json(&EpochCheckJs::from(check))?,
            None => JsValue::UNDEFINED,
        };
        Ok(js_sys::Array::of5(
            &json(&StepRecordJs::from(step.record))?,
            &JsValue::from(step.done),
            &JsValue::from(step.total),
            &weights,
            &check,
        ))
    }
}

impl<M: Detector + Into<AnyDetector>> StepReporter<M> for PageReporter<'_> {
    async fn report(&mut self, step: StepDone<'_, M>) -> Result<Control, TrainError> {
        let arguments = self.arguments(&step).await.map_err(TrainError::Caller)?;
        self.on_step
            .apply(&JsValue::NULL, &arguments)
            .map_err(|e| TrainError::Caller(format!("the progress callback failed: {e:?}")))?;
        // The yield lets a cancel in (a click on the page, a message in the
        // worker); it is read before the next step starts.
        yield_to_page().await;
        Ok(if self.cancel.get() {
            Control::Cancel
        } else {
            Control::Continue
        })
    }
}

#[derive(Serialize)]
struct SampleResult {
    categories: Vec<Category>,
}

/// A reviewed image for label export as the page sends it: its name,
/// working and original size (boxes are in working pixels) and verdicts.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewedImageJs {
    name: String,
    width: u32,
    height: u32,
    original_width: u32,
    original_height: u32,
    verdicts: ImageVerdictsJs,
}

impl From<ReviewedImageJs> for labels::ReviewedImage {
    fn from(image: ReviewedImageJs) -> Self {
        Self {
            name: image.name,
            size: [image.width, image.height],
            original: [image.original_width, image.original_height],
            verdicts: image.verdicts.into(),
        }
    }
}

/// An open image for label import as the page sends it: its name, working
/// size and the boxes shown on it.
#[derive(Deserialize)]
struct OpenImageJs {
    name: String,
    width: u32,
    height: u32,
    shown: Vec<Detection>,
}

impl From<OpenImageJs> for labels::OpenImage {
    fn from(image: OpenImageJs) -> Self {
        Self {
            name: image.name,
            size: [image.width, image.height],
            shown: image.shown,
        }
    }
}

/// The verdicts an import gives one open image, for the page.
#[derive(Serialize)]
struct ImportedVerdictsJs {
    index: usize,
    objects: usize,
    judgements: Vec<Judgement>,
    drawn: Vec<LabeledBox>,
}

/// What label files give the open images, for the page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportResult {
    format: &'static str,
    images: Vec<ImportedVerdictsJs>,
    not_open: Vec<String>,
    repeated: Vec<String>,
    unknown_classes: Vec<SkippedClass>,
}

impl From<labels::VerdictImport> for ImportResult {
    fn from(import: labels::VerdictImport) -> Self {
        Self {
            format: import.format.name(),
            images: import
                .images
                .into_iter()
                .map(|image| ImportedVerdictsJs {
                    index: image.index,
                    objects: image.objects,
                    judgements: image.judgements,
                    drawn: image.drawn,
                })
                .collect(),
            not_open: import.not_open,
            repeated: import.repeated,
            unknown_classes: import.unknown_classes,
        }
    }
}

/// The session's helpers that JavaScript does not see (wasm-bindgen exports
/// no generic methods).
impl Session {
    /// The verified sample `id`.
    fn sample(&self, id: &str) -> Result<Sample, JsError> {
        self.inner
            .borrow()
            .reviews
            .get(id)
            .map(|verified| verified.sample.clone())
            .ok_or_else(|| error(format!("there is no sample '{id}'")))
    }

    /// [`Session::forward`] on `model`: the batch is built from the samples
    /// in place (no copy of their pixels) before anything is awaited.
    async fn forward_sum<M: Detector>(&self, model: &M, ids: &[String]) -> Result<f32, JsError> {
        if ids.is_empty() {
            return Err(error("a forward pass needs at least one sample"));
        }
        let model = model.clone().no_grad();
        let device = model_device(&model);
        let input = {
            let inner = self.inner.borrow();
            let images = ids
                .iter()
                .map(|id| {
                    inner
                        .reviews
                        .get(id)
                        .map(|verified| &verified.sample.image)
                        .ok_or_else(|| error(format!("there is no sample '{id}'")))
                })
                .collect::<Result<Vec<&Image>, JsError>>()?;
            input_batch(model.spec(), &images, &device)
        };
        let sum = model.predictions(model.forward(input)).sum();
        let data = sum
            .into_data_async()
            .await
            .map_err(|e| error(format!("the device failed: {e:?}")))?;
        let values = data
            .try_to_vec::<f32>()
            .map_err(|e| error(format!("the device failed: {e:?}")))?;
        Ok(values.first().copied().unwrap_or(f32::NAN))
    }
}

#[wasm_bindgen]
impl Session {
    /// Loads meta-model bytes (burnpack or safetensors, of any architecture
    /// veritune knows) on WebGPU when `prefer_webgpu` and available, else on
    /// the CPU.
    pub async fn create(model_bytes: Vec<u8>, prefer_webgpu: bool) -> Result<Session, JsError> {
        let (device, backend, notice) = pick_device(prefer_webgpu).await;
        let model = load_detector(&model_bytes, &device.clone().autodiff()).map_err(error)?;
        let spec = model.spec().clone();
        Ok(Session {
            inner: Rc::new(RefCell::new(Inner {
                model: Some(model),
                reviews: Reviews::default(),
            })),
            cancel: Rc::new(Cell::new(false)),
            backend,
            notice,
            base_hash: digest(&model_bytes),
            class_names: spec.class_names,
            input_size: spec.input_size[0],
        })
    }

    /// `"webgpu"` or `"cpu"`.
    pub fn backend(&self) -> String {
        self.backend.to_string()
    }

    /// Why the CPU fallback is used; empty on WebGPU.
    pub fn notice(&self) -> String {
        self.notice.clone()
    }

    /// The model's class names.
    #[wasm_bindgen(js_name = classNames)]
    pub fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    /// Square input side of the model in pixels.
    #[wasm_bindgen(js_name = inputSize)]
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Digest of the meta-model's bytes, for the manifest.
    #[wasm_bindgen(js_name = baseModelHash)]
    pub fn base_model_hash(&self) -> String {
        self.base_hash.clone()
    }

    /// The settings of a run the page asks for, the current detector's
    /// defaults filled in and every option checked.
    fn settings(&self, request: &TrainRequest) -> Result<TrainSettings, JsError> {
        request
            .options()?
            .settings(&self.current_model()?)
            .map_err(error)
    }

    fn current_model(&self) -> Result<AnyDetector, JsError> {
        self.inner
            .borrow()
            .model
            .clone()
            .ok_or_else(|| error("training is running: wait for it to finish or cancel it first"))
    }

    /// The settings a run with `options` (as [`Session::train`] takes them)
    /// would have, the detector's defaults filled in: `{epochs, untilHonored,
    /// batchSize, learningRate, rule, threshold, freezeBackbone}`; `{}` gives
    /// the defaults. An option out of range is an error saying what to give.
    #[wasm_bindgen(js_name = trainSettings)]
    pub fn train_settings(&self, options: JsValue) -> Result<JsValue, JsError> {
        let request: TrainRequest = from_js(options, "the training options")?;
        to_js(&TrainSettingsJs::from(self.settings(&request)?))
    }

    /// Boxes on an RGBA image: `{shown, candidates}` in image pixels.
    pub async fn predict(
        &self,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        threshold: f32,
    ) -> Result<JsValue, JsError> {
        let image = Image::from_rgba8(width, height, &rgba).map_err(error)?;
        let model = self.current_model()?;
        let mut all = with_any_detector!(&model, model => candidates(model, &[&image], 1).await)
            .map_err(error)?;
        let candidates = all.pop().unwrap_or_default();
        let shown = shown_detections(&candidates, threshold, NMS_IOU);
        to_js(&Prediction { shown, candidates })
    }

    /// The review path for images shown at `threshold`, for the current detector.
    fn reviewer(spec: &DetectorSpec, threshold: f32) -> Result<Reviewer<'_>, JsError> {
        check_threshold(threshold)?;
        Ok(Reviewer {
            spec,
            target: TargetConfig {
                score_threshold: threshold,
                ..TargetConfig::default()
            },
        })
    }

    /// Stores (or replaces) the verified sample `id`: its pixels, the
    /// candidates it was shown from, the user's verdicts and the score
    /// threshold the boxes were shown at.
    #[wasm_bindgen(js_name = setSample)]
    #[allow(clippy::too_many_arguments)] // the page's arguments, as wasm-bindgen passes them
    pub fn set_sample(
        &self,
        id: String,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        candidates: JsValue,
        verdicts: JsValue,
        threshold: f32,
    ) -> Result<JsValue, JsError> {
        let (image, candidates, verdicts) =
            judged_image(&rgba, width, height, candidates, verdicts)?;
        let model = self.current_model()?;
        let reviewer = Self::reviewer(model.spec(), threshold)?;
        let categories = self
            .inner
            .borrow_mut()
            .reviews
            .review(
                &reviewer,
                id,
                &image,
                [width, height],
                &verdicts,
                &candidates,
            )
            .map_err(error)?;
        to_js(&SampleResult { categories })
    }

    /// Forgets the sample `id` (no error when absent).
    #[wasm_bindgen(js_name = removeSample)]
    pub fn remove_sample(&self, id: String) {
        self.inner.borrow_mut().reviews.remove(&id);
    }

    /// Adds the history sample `id` (a name the page finds it by again) with
    /// its ground-truth boxes at the end of the library.
    #[wasm_bindgen(js_name = addHistory)]
    pub fn add_history(
        &self,
        id: String,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        boxes: JsValue,
    ) -> Result<(), JsError> {
        let image = Image::from_rgba8(width, height, &rgba).map_err(error)?;
        let boxes: Vec<LabeledBox> = from_js(boxes, "the history boxes")?;
        let model = self.current_model()?;
        self.push_history(id, Sample::from_ground_truth(&image, &boxes, model.spec()))
    }

    /// Adds the history sample `id` made from a reviewed image (as
    /// [`Session::set_sample`] makes it) at the end of the library: a
    /// transfer sample an earlier update admitted, put back on resume.
    #[wasm_bindgen(js_name = addHistorySample)]
    #[allow(clippy::too_many_arguments)] // the page's arguments, as wasm-bindgen passes them
    pub fn add_history_sample(
        &self,
        id: String,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        candidates: JsValue,
        verdicts: JsValue,
        threshold: f32,
    ) -> Result<(), JsError> {
        let (image, candidates, verdicts) =
            judged_image(&rgba, width, height, candidates, verdicts)?;
        let model = self.current_model()?;
        let review = Self::reviewer(model.spec(), threshold)?
            .review(&image, [width, height], &verdicts, &candidates)
            .map_err(error)?;
        self.push_history(id, review.sample)
    }

    fn push_history(&self, id: String, sample: Sample) -> Result<(), JsError> {
        self.inner
            .borrow_mut()
            .reviews
            .push_history(id, sample)
            .map_err(error)
    }

    /// The names of the history members, in library order.
    #[wasm_bindgen(js_name = historyIds)]
    pub fn history_ids(&self) -> Vec<String> {
        self.inner.borrow().reviews.history().names().to_vec()
    }

    /// Counts of samples per category and of history samples.
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(&Stats::from(self.inner.borrow().reviews.stats()))
    }

    /// History agreement: how many of the history library's boxes the model
    /// shows now at `threshold` (`{passed, total}`), a forward pass over its
    /// members.
    #[wasm_bindgen(js_name = historyAgreement)]
    pub async fn history_agreement(&self, threshold: f32) -> Result<JsValue, JsError> {
        check_threshold(threshold)?;
        let model = self.current_model()?;
        let members = self
            .inner
            .borrow()
            .reviews
            .history()
            .library()
            .members()
            .to_vec();
        let images: Vec<&Image> = members.iter().map(|m| &m.image).collect();
        let labels: Vec<Vec<LabeledBox>> = members.iter().map(Sample::labels).collect();
        let config = FidelityConfig {
            score_threshold: threshold,
            ..FidelityConfig::default()
        };
        let kept = with_any_detector!(&model, model => boxes_kept(model, &images, &labels, &config, 8).await);
        to_js(&kept.map_err(|e| error(format!("the device failed: {e}")))?)
    }

    /// Stops a running training after its current step.
    pub fn cancel(&self) {
        self.cancel.set(true);
    }

    /// Trains on the verified samples with the history library, calling
    /// `on_step(record, done, total, weights, check)` after each step
    /// (`weights`: the burnpack bytes after the step when the options ask
    /// for `checkpoint`, else undefined; `check`: with `untilHonored`, at the
    /// end of each epoch but the last, `{epochs, verdicts_honored: {passed,
    /// total}}`, else undefined) and yielding to the page in between. With
    /// `untilHonored` it stops after the first epoch that honors every
    /// verdict, checked at `threshold`. Resolves with `{records, cancelled,
    /// epochChecks}`.
    pub async fn train(
        &self,
        options: JsValue,
        on_step: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let request: TrainRequest = from_js(options, "the training options")?;
        let settings = self.settings(&request)?;
        let config = settings.train_config();
        let fidelity = FidelityConfig {
            score_threshold: settings.threshold,
            ..FidelityConfig::default()
        };
        let (model, inputs, mut history) = {
            let mut inner = self.inner.borrow_mut();
            let model = inner
                .model
                .take()
                .ok_or_else(|| error("training is already running"))?;
            (
                model,
                inner.reviews.run_inputs(),
                inner.reviews.take_history(),
            )
        };
        let reviewed = inputs.reviewed();
        let until_honored = settings.until_honored.then_some(UntilHonored {
            reviewed: &reviewed,
            config: fidelity,
        });
        let model = model.with_frozen_backbone(settings.freeze_backbone);
        self.cancel.set(false);
        let mut reporter = PageReporter {
            on_step: &on_step,
            checkpoint: request.checkpoint,
            cancel: &self.cancel,
        };
        let result = with_any_detector!(&model, model => {
            run(
                model.clone(),
                config,
                &inputs.transfer,
                history.library_mut(),
                until_honored,
                &mut reporter,
            )
            .await
            .map(|outcome| (AnyDetector::from(outcome.model), outcome.records, outcome.cancelled, outcome.epoch_checks))
        });
        let mut inner = self.inner.borrow_mut();
        inner.reviews.put_history(history);
        match result {
            Ok((trained, records, cancelled, epoch_checks)) => {
                inner.model = Some(trained);
                to_js(&TrainResult {
                    records: records.iter().map(StepRecordJs::from).collect(),
                    cancelled,
                    epoch_checks: epoch_checks.iter().map(EpochCheckJs::from).collect(),
                })
            }
            Err(e) => {
                inner.model = Some(model);
                Err(error(e))
            }
        }
    }

    /// Updates the history library after a training run (METHOD.md section
    /// 3, gradient-based): the verified samples not yet in it compete with
    /// its members for a place, by per-sample gradients of the current
    /// model. Calls `on_progress(done, total)` after each gradient and
    /// yields to the page in between; resolves with `{members, admitted,
    /// evicted, offered}` (sample names, members in library order). On error
    /// the library stays as it was.
    #[wasm_bindgen(js_name = updateHistory)]
    pub async fn update_history(&self, on_progress: js_sys::Function) -> Result<JsValue, JsError> {
        let (model, mut history, newcomers) = {
            let mut inner = self.inner.borrow_mut();
            let model = inner
                .model
                .take()
                .ok_or_else(|| error("training is running: wait for it to finish first"))?;
            let newcomers = inner.reviews.newcomers();
            (model, inner.reviews.take_history(), newcomers)
        };
        let result = with_any_detector!(&model, model => {
            history
                .update(model, newcomers, HistoryPolicy::GradientBased, |done, total| {
                    let _ = on_progress.call2(
                        &JsValue::NULL,
                        &JsValue::from(done),
                        &JsValue::from(total),
                    );
                    yield_to_page()
                })
                .await
        });
        let mut inner = self.inner.borrow_mut();
        inner.model = Some(model);
        inner.reviews.put_history(history);
        to_js(&result.map_err(error)?)
    }

    /// The current weights as `format` bytes: `"burnpack"` (the default) or
    /// `"safetensors"`; the CLI loads either.
    #[wasm_bindgen(js_name = exportWeights)]
    pub async fn export_weights(&self, format: Option<String>) -> Result<Vec<u8>, JsError> {
        let format = match format {
            Some(name) => name.parse().map_err(error)?,
            None => WeightsFormat::Burnpack,
        };
        let model = self.current_model()?;
        model.save(format).await.map_err(error)
    }

    /// One forward pass without gradients over the verified samples `ids` as
    /// one batch, up to the per-location predictions as [`Session::predict`]
    /// computes them, for the benchmark page; resolves with the predictions'
    /// sum, read asynchronously, so the device has finished when it resolves.
    pub async fn forward(&self, ids: Vec<String>) -> Result<f32, JsError> {
        let model = self.current_model()?;
        with_any_detector!(&model, model => self.forward_sum(model, &ids).await)
    }

    /// One per-sample gradient of the history update (the head's parameters,
    /// as [`Session::update_history`] computes one per member and newcomer)
    /// on the verified sample `id`, for the benchmark page; resolves with
    /// its length once it has been read.
    #[wasm_bindgen(js_name = sampleGradient)]
    pub async fn sample_gradient(&self, id: String) -> Result<usize, JsError> {
        let model = self.current_model()?;
        let sample = self.sample(&id)?;
        let gradient = with_any_detector!(&model, model => sample_gradient(model, &sample).await);
        Ok(gradient.map_err(error)?.len())
    }

    /// The labels the verdicts of `images` (reviewed images: `{name, width,
    /// height, originalWidth, originalHeight, verdicts}`) give, in the
    /// original images' pixels, as `format` (`coco`, `yolo` or `voc`): a COCO
    /// JSON file, or a ZIP archive of the YOLO files with `classes.txt` or of
    /// the Pascal VOC files.
    #[wasm_bindgen(js_name = exportLabels)]
    pub fn export_labels(&self, format: String, images: JsValue) -> Result<Vec<u8>, JsError> {
        let format: Format = format.parse().map_err(error)?;
        let images: Vec<ReviewedImageJs> = from_js(images, "the reviewed images")?;
        let images = images
            .into_iter()
            .map(labels::ReviewedImage::from)
            .collect();
        labels::export_labels(&self.class_names, format, images).map_err(error)
    }

    /// Verdicts from label files (`[{name, text}]`: one COCO JSON, YOLO
    /// `.txt` files with `classes.txt`, or Pascal VOC `.xml` files) for the
    /// open `images` (`[{name, width, height, shown}]`, sizes and boxes in
    /// working pixels): entries go to images by file name, classes to the
    /// model's by name, and each matched image gets the verdicts a careful
    /// user would give knowing those objects (confirm the shown boxes that
    /// match one, reject the others, draw the objects none matched). Resolves
    /// with `{format, images: [{index, objects, judgements, drawn}], notOpen,
    /// repeated, unknownClasses: [{name, boxes}]}`.
    #[wasm_bindgen(js_name = importLabels)]
    pub fn import_label_files(&self, files: JsValue, images: JsValue) -> Result<JsValue, JsError> {
        let files: Vec<TextFile> = from_js(files, "the label files")?;
        let images: Vec<OpenImageJs> = from_js(images, "the open images")?;
        let open: Vec<labels::OpenImage> = images.into_iter().map(Into::into).collect();
        let import = labels::import_verdicts(&files, &open, &self.class_names).map_err(error)?;
        to_js(&ImportResult::from(import))
    }
}
