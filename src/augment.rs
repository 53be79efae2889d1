//! Augmentation of training samples on the fly: geometric jitter (scale,
//! translation, horizontal flip), colour jitter (brightness, contrast,
//! saturation, hue), mosaics of four samples and copy-paste of objects onto
//! other samples. Pure Rust on pixels and boxes, before any tensor, so it is
//! the same natively and in the browser; every draw comes from a seed.

use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::geometry::BBox;
use crate::image::Image;
use crate::sample::Sample;
use crate::verdict::{Positive, TrainingTarget};

/// The grey that fills pixels an affine jitter uncovers.
const FILL: [f32; 3] = [0.5; 3];

/// How strongly samples are augmented. [`AugmentConfig::none`] changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Flip horizontally with probability one half (only for classes that
    /// look the same mirrored: not for digits).
    pub flip: bool,
    /// Scale by a factor drawn from `[1 - scale, 1 + scale]`.
    pub scale: f32,
    /// Shift by up to this fraction of the side, each direction.
    pub translate: f32,
    /// Multiply the intensity by a factor from `[1 - brightness, 1 + brightness]`.
    pub brightness: f32,
    /// Stretch around the mean grey by a factor from `[1 - contrast, 1 + contrast]`.
    pub contrast: f32,
    /// Move away from or toward grey by a factor from `[1 - saturation, 1 + saturation]`.
    pub saturation: f32,
    /// Rotate the hue by up to this fraction of a turn, each direction.
    pub hue: f32,
    /// Probability that a sample becomes a mosaic of itself and three others.
    pub mosaic: f32,
    /// Probability that an object of another sample is pasted onto this one.
    pub copy_paste: f32,
    /// A box cut by the image border or covered by a pasted object is kept
    /// while at least this fraction of its area stays visible.
    pub min_visible: f32,
}

impl AugmentConfig {
    /// No augmentation at all.
    pub fn none() -> Self {
        Self {
            flip: false,
            scale: 0.0,
            translate: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
            mosaic: 0.0,
            copy_paste: 0.0,
            min_visible: 0.25,
        }
    }

    /// Whether any augmentation is switched on.
    pub fn is_active(&self) -> bool {
        *self
            != Self {
                min_visible: self.min_visible,
                ..Self::none()
            }
    }
}

impl Default for AugmentConfig {
    /// No augmentation: each change is switched on where measured to help.
    fn default() -> Self {
        Self::none()
    }
}

/// The strengths of augmentation the command line and the benchmarks offer
/// by name: each is one step further than the one before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AugmentPreset {
    /// No augmentation (the default).
    #[default]
    None,
    /// Geometric and colour jitter: scale ±25 %, shift up to 10 % of the
    /// side, brightness and contrast ±30 %, saturation ±50 %, hue ±1.5 % of
    /// a turn (about Ultralytics' colour defaults, with milder geometry for
    /// few images).
    Jitter,
    /// Jitter, and half the samples made mosaics of four, and half given an
    /// object pasted from another sample.
    Full,
}

/// A preset name that is not one of [`AugmentPreset::ALL`].
#[derive(Debug, Error, PartialEq)]
#[error("unknown augmentation '{0}': use none, jitter or full")]
pub struct UnknownAugmentPreset(pub String);

impl AugmentPreset {
    /// Every preset, weakest first.
    pub const ALL: [AugmentPreset; 3] = [
        AugmentPreset::None,
        AugmentPreset::Jitter,
        AugmentPreset::Full,
    ];

    /// The name on the command line and in records.
    pub fn name(&self) -> &'static str {
        match self {
            AugmentPreset::None => "none",
            AugmentPreset::Jitter => "jitter",
            AugmentPreset::Full => "full",
        }
    }

    /// The preset's settings; `flip` adds horizontal flips (only for
    /// classes that look the same mirrored).
    pub fn config(&self, flip: bool) -> AugmentConfig {
        let jitter = AugmentConfig {
            flip,
            scale: 0.25,
            translate: 0.1,
            brightness: 0.3,
            contrast: 0.3,
            saturation: 0.5,
            hue: 0.015,
            ..AugmentConfig::none()
        };
        match self {
            AugmentPreset::None => AugmentConfig {
                flip,
                ..AugmentConfig::none()
            },
            AugmentPreset::Jitter => jitter,
            AugmentPreset::Full => AugmentConfig {
                mosaic: 0.5,
                copy_paste: 0.5,
                ..jitter
            },
        }
    }
}

impl FromStr for AugmentPreset {
    type Err = UnknownAugmentPreset;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        AugmentPreset::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| UnknownAugmentPreset(name.to_string()))
    }
}

/// The geometric part of one draw: output pixel `p` shows input pixel
/// `(p - centre - shift) / scale + centre`, mirrored first when `flip`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Zoom factor (above 1 enlarges).
    pub scale: f32,
    /// Shift in pixels, x and y.
    pub shift: [f32; 2],
    /// Mirror left to right.
    pub flip: bool,
}

impl Affine {
    /// The identity.
    pub const IDENTITY: Affine = Affine {
        scale: 1.0,
        shift: [0.0, 0.0],
        flip: false,
    };

    fn forward(&self, x: f32, y: f32, width: f32, height: f32) -> (f32, f32) {
        let x = if self.flip { width - x } else { x };
        let (cx, cy) = (width / 2.0, height / 2.0);
        (
            (x - cx) * self.scale + cx + self.shift[0],
            (y - cy) * self.scale + cy + self.shift[1],
        )
    }

    fn map_box(&self, b: &BBox, width: f32, height: f32) -> BBox {
        let (ax, ay) = self.forward(b.x0, b.y0, width, height);
        let (bx, by) = self.forward(b.x1, b.y1, width, height);
        BBox::new(ax.min(bx), ay.min(by), ax.max(bx), ay.max(by))
    }
}

/// The colour part of one draw, factors of 1 and a hue turn of 0 changing nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Colour {
    /// Intensity factor.
    pub brightness: f32,
    /// Contrast factor around the image's mean grey.
    pub contrast: f32,
    /// Saturation factor around each pixel's grey.
    pub saturation: f32,
    /// Hue rotation, in turns.
    pub hue: f32,
}

impl Colour {
    /// No change.
    pub const IDENTITY: Colour = Colour {
        brightness: 1.0,
        contrast: 1.0,
        saturation: 1.0,
        hue: 0.0,
    };
}

fn luma([r, g, b]: [f32; 3]) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// `image` with `colour` applied, clamped to `[0, 1]`; boxes do not move.
pub fn recolour(image: &Image, colour: &Colour) -> Image {
    let pixels = image.pixels();
    let count = (pixels.len() / 3).max(1) as f32;
    let mean = pixels
        .chunks_exact(3)
        .map(|p| luma([p[0], p[1], p[2]]))
        .sum::<f32>()
        / count
        * colour.brightness;
    // Hue: a rotation about the grey axis (1, 1, 1) by `hue` turns.
    let angle = colour.hue * std::f32::consts::TAU;
    let (sin, cos) = angle.sin_cos();
    let third = (1.0 - cos) / 3.0;
    let root = (1.0f32 / 3.0).sqrt() * sin;
    let rotation = [
        [cos + third, third - root, third + root],
        [third + root, cos + third, third - root],
        [third - root, third + root, cos + third],
    ];
    let mut out = Vec::with_capacity(pixels.len());
    for p in pixels.chunks_exact(3) {
        let rgb = [p[0], p[1], p[2]].map(|v| v * colour.brightness);
        let rgb = rotation.map(|row| row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2]);
        let grey = luma(rgb);
        let rgb = rgb.map(|v| grey + (v - grey) * colour.saturation);
        out.extend(rgb.map(|v| (mean + (v - mean) * colour.contrast).clamp(0.0, 1.0)));
    }
    Image::from_rgb(image.width(), image.height(), out).expect("same size")
}

/// Keeps `moved` (a box after a change) when at least `min_visible` of
/// `whole`'s area stays visible in it; `None` drops it.
fn kept(moved: BBox, whole: &BBox, min_visible: f32) -> Option<BBox> {
    let area = whole.area();
    (moved.is_valid() && area > 0.0 && moved.area() >= min_visible * area).then_some(moved)
}

/// The sample with `affine` applied: pixels resampled (bilinear, uncovered
/// pixels grey), positives moved and cut to the image (dropped when less than
/// `min_visible` of them stays inside), negative regions moved and cut.
pub fn transform(sample: &Sample, affine: &Affine, min_visible: f32) -> Sample {
    if *affine == Affine::IDENTITY {
        return sample.clone();
    }
    let image = &sample.image;
    let (w, h) = (image.width(), image.height());
    let (wf, hf) = (w as f32, h as f32);
    let (cx, cy) = (wf / 2.0, hf / 2.0);
    let mut out = Image::filled(w, h, FILL);
    for y in 0..h {
        for x in 0..w {
            // Pixel centres: invert the forward map.
            let sx = (x as f32 + 0.5 - cx - affine.shift[0]) / affine.scale + cx;
            let sy = (y as f32 + 0.5 - cy - affine.shift[1]) / affine.scale + cy;
            let sx = if affine.flip { wf - sx } else { sx };
            if let Some(rgb) = bilinear(image, sx - 0.5, sy - 0.5) {
                out.set(x, y, rgb);
            }
        }
    }
    let move_box = |b: &BBox| {
        let moved = affine.map_box(b, wf, hf);
        (moved, moved.clip(wf, hf))
    };
    let positives = sample
        .target
        .positives
        .iter()
        .filter_map(|p| {
            let (moved, clipped) = move_box(&p.label.bbox);
            kept(clipped, &moved, min_visible)?;
            Some(p.map_boxes(|b| move_box(b).1))
        })
        .collect();
    let negatives = sample
        .target
        .negatives
        .iter()
        .map(|b| move_box(b).1)
        .filter(BBox::is_valid)
        .collect();
    Sample {
        image: out,
        target: TrainingTarget {
            positives,
            negatives,
            trained_classes: sample.target.trained_classes.clone(),
        },
    }
}

/// The pixel at continuous position `(x, y)` (pixel centres at integers),
/// `None` outside the image.
fn bilinear(image: &Image, x: f32, y: f32) -> Option<[f32; 3]> {
    let (w, h) = (image.width() as f32, image.height() as f32);
    if x < -0.5 || y < -0.5 || x > w - 0.5 || y > h - 0.5 {
        return None;
    }
    let x = x.clamp(0.0, w - 1.0);
    let y = y.clamp(0.0, h - 1.0);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = (
        (x0 + 1).min(image.width() - 1),
        (y0 + 1).min(image.height() - 1),
    );
    let (wx, wy) = (x.fract(), y.fract());
    let [a, b, c, d] = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)].map(|(x, y)| image.get(x, y));
    Some(std::array::from_fn(|k| {
        (a[k] * (1.0 - wx) + b[k] * wx) * (1.0 - wy) + (c[k] * (1.0 - wx) + d[k] * wx) * wy
    }))
}

/// Four samples of the same size in a 2 x 2 grid (reading order), each
/// shrunk to a quarter, with their targets. Their trained classes must agree
/// (see [`can_mix`]).
pub fn mosaic(samples: [&Sample; 4]) -> Sample {
    let (w, h) = (samples[0].image.width(), samples[0].image.height());
    let (hw, hh) = (w / 2, h / 2);
    let mut out = Image::filled(w, h, FILL);
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for (k, sample) in samples.iter().enumerate() {
        let (ox, oy) = ((k % 2) * hw, (k / 2) * hh);
        let small = sample.image.resized(hw, hh);
        for y in 0..hh {
            for x in 0..hw {
                out.set(ox + x, oy + y, small.get(x, y));
            }
        }
        let (sx, sy) = (
            hw as f32 / sample.image.width() as f32,
            hh as f32 / sample.image.height() as f32,
        );
        let place = |b: &BBox| {
            let s = b.scale(sx, sy);
            BBox::new(
                s.x0 + ox as f32,
                s.y0 + oy as f32,
                s.x1 + ox as f32,
                s.y1 + oy as f32,
            )
        };
        positives.extend(sample.target.positives.iter().map(|p| p.map_boxes(place)));
        negatives.extend(sample.target.negatives.iter().map(place));
    }
    Sample {
        image: out,
        target: TrainingTarget {
            positives,
            negatives,
            trained_classes: samples[0].target.trained_classes.clone(),
        },
    }
}

/// Whether two samples train the same classes, so their pixels and boxes can
/// be mixed into one sample.
pub fn can_mix(a: &Sample, b: &Sample) -> bool {
    a.target.trained_classes == b.target.trained_classes
        && a.image.width() == b.image.width()
        && a.image.height() == b.image.height()
}

/// `target` with `object` (a positive of `source`) copied onto it with its
/// label box's top-left corner at `at`: the pixels of its label box replace
/// the target's there, the object becomes a positive (its boxes cut to the
/// pasted pixels), and the target's boxes left less than `min_visible`
/// visible are dropped. The object must lie inside `source` and fit at `at`.
pub fn paste(
    target: &Sample,
    source: &Sample,
    object: &Positive,
    at: [usize; 2],
    min_visible: f32,
) -> Sample {
    let from = object.label.bbox;
    let (x0, y0) = (from.x0.floor() as usize, from.y0.floor() as usize);
    let (x1, y1) = (
        (from.x1.ceil() as usize).min(source.image.width()),
        (from.y1.ceil() as usize).min(source.image.height()),
    );
    let (pw, ph) = (
        (x1 - x0).min(target.image.width() - at[0]),
        (y1 - y0).min(target.image.height() - at[1]),
    );
    let mut image = target.image.clone();
    for y in 0..ph {
        for x in 0..pw {
            image.set(at[0] + x, at[1] + y, source.image.get(x0 + x, y0 + y));
        }
    }
    let (dx, dy) = (at[0] as f32 - x0 as f32, at[1] as f32 - y0 as f32);
    let cover = BBox::new(
        at[0] as f32,
        at[1] as f32,
        (at[0] + pw) as f32,
        (at[1] + ph) as f32,
    );
    let pasted = |b: &BBox| {
        BBox::new(
            (b.x0 + dx).max(cover.x0),
            (b.y0 + dy).max(cover.y0),
            (b.x1 + dx).min(cover.x1),
            (b.y1 + dy).min(cover.y1),
        )
    };
    let visible = |b: &BBox| b.area() - b.intersection(&cover);
    let mut positives: Vec<Positive> = target
        .target
        .positives
        .iter()
        .filter(|p| visible(&p.label.bbox) >= min_visible * p.label.bbox.area())
        .copied()
        .collect();
    positives.push(object.map_boxes(pasted));
    let negatives = target
        .target
        .negatives
        .iter()
        .filter(|b| visible(b) > 0.0)
        .copied()
        .collect();
    Sample {
        image,
        target: TrainingTarget {
            positives,
            negatives,
            trained_classes: target.target.trained_classes.clone(),
        },
    }
}

/// Augments samples with one configuration, each draw seeded by the run's
/// seed, the epoch and the sample's index, so a run is repeatable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmenter {
    /// What to do.
    pub config: AugmentConfig,
    /// The run's seed.
    pub seed: u64,
}

impl Augmenter {
    /// Sample `index` of `pool` (the samples it may be mixed with, itself
    /// included) augmented for `epoch`.
    pub fn augment(&self, pool: &[Sample], index: usize, epoch: usize) -> Sample {
        let c = &self.config;
        let sample = &pool[index];
        if !c.is_active() {
            return sample.clone();
        }
        let mut rng = StdRng::seed_from_u64(
            self.seed
                ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
        );
        let partners: Vec<&Sample> = pool
            .iter()
            .enumerate()
            .filter(|&(k, s)| k != index && can_mix(sample, s))
            .map(|(_, s)| s)
            .collect();
        let mut out = if !partners.is_empty() && rng.random::<f32>() < c.mosaic {
            let mut pick = || partners[rng.random_range(0..partners.len())];
            let mut four = [sample, pick(), pick(), pick()];
            // Where this sample lands in the grid.
            four.swap(0, rng.random_range(0..4));
            mosaic(four)
        } else {
            sample.clone()
        };
        if !partners.is_empty() && rng.random::<f32>() < c.copy_paste {
            let source = partners[rng.random_range(0..partners.len())];
            if !source.target.positives.is_empty() {
                let object =
                    source.target.positives[rng.random_range(0..source.target.positives.len())];
                let (w, h) = (out.image.width(), out.image.height());
                let (ow, oh) = (
                    (object.label.bbox.width().ceil() as usize).clamp(1, w),
                    (object.label.bbox.height().ceil() as usize).clamp(1, h),
                );
                let at = [rng.random_range(0..=w - ow), rng.random_range(0..=h - oh)];
                out = paste(&out, source, &object, at, c.min_visible);
            }
        }
        let (w, h) = (out.image.width() as f32, out.image.height() as f32);
        let mut uniform = |half: f32| {
            if half > 0.0 {
                rng.random_range(-half..=half)
            } else {
                0.0
            }
        };
        let affine = Affine {
            scale: 1.0 + uniform(c.scale),
            shift: [uniform(c.translate) * w, uniform(c.translate) * h],
            flip: false,
        };
        let colour = Colour {
            brightness: 1.0 + uniform(c.brightness),
            contrast: 1.0 + uniform(c.contrast),
            saturation: 1.0 + uniform(c.saturation),
            hue: uniform(c.hue),
        };
        let affine = Affine {
            flip: c.flip && rng.random::<bool>(),
            ..affine
        };
        let mut out = transform(&out, &affine, c.min_visible);
        if colour != Colour::IDENTITY {
            out.image = recolour(&out.image, &colour);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::LabeledBox;

    #[test]
    fn presets_go_one_step_further_each_and_names_read_back() {
        assert!(!AugmentPreset::None.config(false).is_active());
        assert!(AugmentPreset::None.config(true).is_active(), "flip alone");
        let jitter = AugmentPreset::Jitter.config(false);
        assert!(jitter.is_active() && !jitter.flip);
        assert_eq!((jitter.mosaic, jitter.copy_paste), (0.0, 0.0));
        let full = AugmentPreset::Full.config(true);
        assert!(full.flip && full.mosaic > 0.0 && full.copy_paste > 0.0);
        assert_eq!(
            AugmentConfig {
                flip: false,
                mosaic: 0.0,
                copy_paste: 0.0,
                ..full
            },
            jitter,
            "full is jitter plus mosaic and copy-paste"
        );
        for preset in AugmentPreset::ALL {
            assert_eq!(preset.name().parse::<AugmentPreset>(), Ok(preset));
        }
        assert_eq!(
            "heavy".parse::<AugmentPreset>().unwrap_err().to_string(),
            "unknown augmentation 'heavy': use none, jitter or full"
        );
    }

    /// A 32 x 32 sample: black, with a white object at (8, 8)-(16, 24) of
    /// class 1 and a rejected region at (20, 20)-(28, 28).
    fn sample() -> Sample {
        let mut image = Image::filled(32, 32, [0.0; 3]);
        for y in 8..24 {
            for x in 8..16 {
                image.set(x, y, [1.0, 0.5, 0.25]);
            }
        }
        Sample {
            image,
            target: TrainingTarget {
                positives: vec![Positive::from(LabeledBox {
                    bbox: BBox::new(8.0, 8.0, 16.0, 24.0),
                    class: 1,
                })],
                negatives: vec![BBox::new(20.0, 20.0, 28.0, 28.0)],
                trained_classes: None,
            },
        }
    }

    fn near(a: [f32; 3], b: [f32; 3]) -> bool {
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    fn close(a: BBox, b: BBox) -> bool {
        [a.x0 - b.x0, a.y0 - b.y0, a.x1 - b.x1, a.y1 - b.y1]
            .iter()
            .all(|d| d.abs() < 1e-4)
    }

    #[test]
    fn a_flip_mirrors_pixels_and_boxes() {
        let flipped = transform(
            &sample(),
            &Affine {
                flip: true,
                ..Affine::IDENTITY
            },
            0.25,
        );
        let b = flipped.target.positives[0].label.bbox;
        assert!(close(b, BBox::new(16.0, 8.0, 24.0, 24.0)), "{b:?}");
        assert_eq!(flipped.image.get(20, 10), [1.0, 0.5, 0.25]);
        assert_eq!(flipped.image.get(10, 10), [0.0; 3]);
        assert!(close(
            flipped.target.negatives[0],
            BBox::new(4.0, 20.0, 12.0, 28.0)
        ));
    }

    #[test]
    fn a_shift_moves_pixels_and_boxes_together() {
        let moved = transform(
            &sample(),
            &Affine {
                shift: [4.0, -2.0],
                ..Affine::IDENTITY
            },
            0.25,
        );
        assert!(close(
            moved.target.positives[0].label.bbox,
            BBox::new(12.0, 6.0, 20.0, 22.0)
        ));
        assert_eq!(moved.image.get(12, 6), [1.0, 0.5, 0.25]);
        assert_eq!(moved.image.get(11, 6), [0.0; 3]);
        // The uncovered column on the left is grey.
        assert_eq!(moved.image.get(1, 10), FILL);
    }

    #[test]
    fn boxes_that_leave_the_image_are_cut_or_dropped() {
        // Zoomed 2x about the centre: the object (8..16, 8..24) goes to
        // (0..16, 0..32) and is cut to the image; the negative region at
        // (20..28) goes to (24..40), cut to (24..32).
        let zoomed = transform(
            &sample(),
            &Affine {
                scale: 2.0,
                ..Affine::IDENTITY
            },
            0.25,
        );
        assert!(close(
            zoomed.target.positives[0].label.bbox,
            BBox::new(0.0, 0.0, 16.0, 32.0)
        ));
        assert!(close(
            zoomed.target.negatives[0],
            BBox::new(24.0, 24.0, 32.0, 32.0)
        ));
        // Shifted so that only 2 of the object's 8 columns stay inside: a
        // quarter of its area, kept at 0.25, dropped at 0.3.
        let far = Affine {
            shift: [-14.0, 0.0],
            ..Affine::IDENTITY
        };
        let cut = transform(&sample(), &far, 0.25);
        assert!(close(
            cut.target.positives[0].label.bbox,
            BBox::new(0.0, 8.0, 2.0, 24.0)
        ));
        assert!(transform(&sample(), &far, 0.3).target.positives.is_empty());
        // Shifted out entirely: no box, no negative region left.
        let gone = transform(
            &sample(),
            &Affine {
                shift: [40.0, 0.0],
                ..Affine::IDENTITY
            },
            0.25,
        );
        assert!(gone.target.positives.is_empty() && gone.target.negatives.is_empty());
        for b in zoomed.target.positives.iter().map(|p| p.label.bbox) {
            assert!(b.x0 >= 0.0 && b.y0 >= 0.0 && b.x1 <= 32.0 && b.y1 <= 32.0);
        }
    }

    #[test]
    fn a_positive_s_regression_box_moves_with_its_label() {
        let mut s = sample();
        s.target.positives[0].regression = Some(BBox::new(9.0, 8.0, 17.0, 24.0));
        let flipped = transform(
            &s,
            &Affine {
                flip: true,
                ..Affine::IDENTITY
            },
            0.25,
        );
        let p = flipped.target.positives[0];
        assert!(close(p.label.bbox, BBox::new(16.0, 8.0, 24.0, 24.0)));
        assert!(close(p.regression_box(), BBox::new(15.0, 8.0, 23.0, 24.0)));
        let m = mosaic([&s, &s, &s, &s]);
        assert!(close(
            m.target.positives[3].regression_box(),
            BBox::new(20.5, 20.0, 24.5, 28.0)
        ));
        let beside = paste(&s, &s, &s.target.positives[0], [20, 2], 0.25);
        assert!(close(
            beside.target.positives[1].regression_box(),
            BBox::new(21.0, 2.0, 28.0, 18.0)
        ));
    }

    #[test]
    fn colour_jitter_keeps_boxes_and_values_in_range() {
        let s = sample();
        let same = recolour(&s.image, &Colour::IDENTITY);
        assert!(
            same.pixels()
                .iter()
                .zip(s.image.pixels())
                .all(|(a, b)| (a - b).abs() < 1e-6)
        );
        let bright = recolour(
            &s.image,
            &Colour {
                brightness: 3.0,
                ..Colour::IDENTITY
            },
        );
        assert!(
            near(bright.get(10, 10), [1.0, 1.0, 0.75]),
            "{:?}",
            bright.get(10, 10)
        );
        let grey = recolour(
            &s.image,
            &Colour {
                saturation: 0.0,
                ..Colour::IDENTITY
            },
        );
        let [r, g, b] = grey.get(10, 10);
        assert!((r - g).abs() < 1e-6 && (g - b).abs() < 1e-6);
        // A third of a turn of hue sends red to green.
        let red = Image::filled(2, 2, [1.0, 0.0, 0.0]);
        let turned = recolour(
            &red,
            &Colour {
                hue: 1.0 / 3.0,
                ..Colour::IDENTITY
            },
        );
        let [r, g, b] = turned.get(0, 0);
        assert!(
            r.abs() < 1e-5 && (g - 1.0).abs() < 1e-5 && b.abs() < 1e-5,
            "{r} {g} {b}"
        );
        let wild = Colour {
            brightness: 1.8,
            contrast: 1.9,
            saturation: 1.9,
            hue: 0.4,
        };
        assert!(
            recolour(&s.image, &wild)
                .pixels()
                .iter()
                .all(|v| (0.0..=1.0).contains(v))
        );
    }

    #[test]
    fn a_mosaic_puts_each_sample_in_its_quarter() {
        let s = sample();
        let m = mosaic([&s, &s, &s, &s]);
        assert_eq!((m.image.width(), m.image.height()), (32, 32));
        let boxes: Vec<BBox> = m.target.positives.iter().map(|p| p.label.bbox).collect();
        assert_eq!(boxes.len(), 4);
        assert!(close(boxes[0], BBox::new(4.0, 4.0, 8.0, 12.0)));
        assert!(close(boxes[3], BBox::new(20.0, 20.0, 24.0, 28.0)));
        assert_eq!(m.target.negatives.len(), 4);
        assert!(near(m.image.get(21, 22), [1.0, 0.5, 0.25]));
    }

    #[test]
    fn a_pasted_object_brings_its_pixels_and_box_and_hides_what_it_covers() {
        let s = sample();
        let object = s.target.positives[0];
        // Pasted right over the original object: the old box is covered.
        let pasted = paste(&s, &s, &object, [8, 8], 0.25);
        assert_eq!(pasted.target.positives.len(), 1);
        // Pasted beside it: both boxes, the pixels copied.
        let beside = paste(&s, &s, &object, [20, 2], 0.25);
        assert_eq!(beside.target.positives.len(), 2);
        assert!(close(
            beside.target.positives[1].label.bbox,
            BBox::new(20.0, 2.0, 28.0, 18.0)
        ));
        assert_eq!(beside.target.positives[1].label.class, 1);
        assert_eq!(beside.image.get(20, 2), [1.0, 0.5, 0.25]);
        // It ends at row 18, above the negative region (rows 20..28): kept.
        assert_eq!(beside.target.negatives.len(), 1);
    }

    #[test]
    fn augmenting_is_repeatable_and_off_changes_nothing() {
        let pool = vec![sample(), sample(), sample(), sample()];
        let off = Augmenter {
            config: AugmentConfig::none(),
            seed: 1,
        };
        assert_eq!(off.augment(&pool, 2, 5), pool[2]);
        let on = Augmenter {
            config: AugmentConfig {
                flip: true,
                scale: 0.3,
                translate: 0.2,
                brightness: 0.3,
                contrast: 0.3,
                saturation: 0.5,
                hue: 0.05,
                mosaic: 0.5,
                copy_paste: 0.5,
                min_visible: 0.25,
            },
            seed: 1,
        };
        assert!(on.config.is_active() && !AugmentConfig::none().is_active());
        let mut differs = false;
        for epoch in 0..8 {
            let a = on.augment(&pool, 1, epoch);
            assert_eq!(a, on.augment(&pool, 1, epoch), "the same draw");
            differs |= a != pool[1];
            for p in &a.target.positives {
                let b = p.label.bbox;
                assert!(b.is_valid() && b.x0 >= 0.0 && b.y0 >= 0.0 && b.x1 <= 32.0 && b.y1 <= 32.0);
            }
        }
        assert!(differs);
    }
}
