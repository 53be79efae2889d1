//! Composing scenes: a background, digits scaled and placed where they do not
//! overlap much, then (transfer scenes) occlusion and lighting.

use std::f32::consts::TAU;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::data::{
    BROAD_PHOTOS, DigitSet, THIRD_PHOTOS, TRANSFER_PHOTOS, load_mnist, load_photos, load_uci,
};
use super::{Scenario, ScenesError, Split};
use crate::geometry::{BBox, LabeledBox};
use crate::image::Image;

/// Side of a scene in pixels unless asked otherwise; digit heights are
/// given for this size and scale with the scene.
pub const DEFAULT_SIZE: usize = 256;

/// The smallest scene side accepted, in pixels.
pub const MIN_SCENE_SIZE: usize = 64;

/// Most digits in one scene; every scene has at least one.
pub const MAX_DIGITS: usize = 6;

/// Coverage a pixel needs to count as ink for a digit's box.
pub const INK_THRESHOLD: f32 = 0.2;

/// Smallest photograph accepted: each half must give a crop of 32 pixels.
const MIN_PHOTO_WIDTH: usize = 64;
const MIN_PHOTO_HEIGHT: usize = 32;
/// Largest share of the smaller of two ink boxes that they may share.
const MAX_OVERLAP: f32 = 0.15;
/// Positions tried for one digit before giving it up.
const PLACEMENT_TRIES: usize = 30;
/// Chance that a transfer digit is partly occluded.
const OCCLUSION_CHANCE: f64 = 0.35;

/// Which digit set a scene's digit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigitSource {
    /// The MNIST digits ([`super::load_mnist`]).
    Mnist,
    /// The UCI digits ([`super::load_uci`]).
    Uci,
}

impl fmt::Display for DigitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigitSource::Mnist => "MNIST",
            DigitSource::Uci => "UCI",
        })
    }
}

/// How much a digit's strokes cover each pixel of a rectangle of the scene,
/// in `[0, 1]`, before colour, opacity, occlusion and lighting.
#[derive(Clone, Debug, PartialEq)]
pub struct InkPatch {
    /// Left edge in scene pixels.
    pub x: usize,
    /// Top edge in scene pixels.
    pub y: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Coverage, row-major, `width * height` values.
    pub coverage: Vec<f32>,
}

impl InkPatch {
    /// Coverage at scene pixel `(x, y)`; zero outside the patch.
    pub fn at(&self, x: usize, y: usize) -> f32 {
        if x < self.x || y < self.y || x >= self.x + self.width || y >= self.y + self.height {
            return 0.0;
        }
        self.coverage[(y - self.y) * self.width + (x - self.x)]
    }

    /// The tight box, in scene pixels, of the pixels covered more than
    /// [`INK_THRESHOLD`]; `None` when there are none.
    pub fn ink_box(&self) -> Option<BBox> {
        let mut bounds: Option<[usize; 4]> = None;
        for (i, &c) in self.coverage.iter().enumerate() {
            if c > INK_THRESHOLD {
                let (px, py) = (i % self.width, i / self.width);
                bounds = Some(match bounds {
                    None => [px, py, px, py],
                    Some([x0, y0, x1, y1]) => [x0.min(px), y0.min(py), x1.max(px), y1.max(py)],
                });
            }
        }
        bounds.map(|[x0, y0, x1, y1]| {
            BBox::new(
                (self.x + x0) as f32,
                (self.y + y0) as f32,
                (self.x + x1 + 1) as f32,
                (self.y + y1 + 1) as f32,
            )
        })
    }
}

/// One digit placed in a scene, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneObject {
    /// The ground-truth box and class (the digit).
    pub label: LabeledBox,
    /// The digit set it was drawn from.
    pub source: DigitSource,
    /// Its index in that digit set.
    pub digit: usize,
    /// Its coverage, from which the box was taken.
    pub ink: InkPatch,
    /// Whether part of it is hidden behind an occluder.
    pub occluded: bool,
}

/// A composed scene: the picture and the digits in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    /// The RGB picture, square.
    pub image: Image,
    /// The digits shown, in drawing order.
    pub objects: Vec<SceneObject>,
}

impl Scene {
    /// The ground-truth boxes, one per digit.
    pub fn boxes(&self) -> Vec<LabeledBox> {
        self.objects.iter().map(|o| o.label).collect()
    }
}

/// Composes scenes of every [`Scenario`] from loaded digits and photographs.
#[derive(Clone, Debug)]
pub struct SceneGenerator {
    mnist: DigitSet,
    uci: DigitSet,
    mnist_splits: [Vec<usize>; 2],
    uci_splits: [Vec<usize>; 2],
    transfer_photos: Vec<Image>,
    third_photos: Vec<Image>,
    broad_photos: Vec<Image>,
}

impl SceneGenerator {
    /// A generator over the given digits and photographs (the transfer
    /// scenario's, the third's, then the broad one's); refuses an empty split
    /// or photograph set and photographs under 64x32 pixels.
    pub fn new(
        mnist: DigitSet,
        uci: DigitSet,
        transfer_photos: Vec<Image>,
        third_photos: Vec<Image>,
        broad_photos: Vec<Image>,
    ) -> Result<Self, ScenesError> {
        let splits =
            |set: &DigitSet, digits: DigitSource| -> Result<[Vec<usize>; 2], ScenesError> {
                let [train, test] = Split::ALL.map(|split| set.split_indices(split));
                for (split, indices) in [(Split::Train, &train), (Split::Test, &test)] {
                    if indices.is_empty() {
                        return Err(ScenesError::EmptySplit { digits, split });
                    }
                }
                Ok([train, test])
            };
        let mnist_splits = splits(&mnist, DigitSource::Mnist)?;
        let uci_splits = splits(&uci, DigitSource::Uci)?;
        for (scenario, photos) in [
            (Scenario::Transfer, &transfer_photos),
            (Scenario::Third, &third_photos),
            (Scenario::Broad, &broad_photos),
        ] {
            if photos.is_empty() {
                return Err(ScenesError::NoPhotos { scenario });
            }
            if let Some((index, photo)) = photos
                .iter()
                .enumerate()
                .find(|(_, p)| p.width() < MIN_PHOTO_WIDTH || p.height() < MIN_PHOTO_HEIGHT)
            {
                return Err(ScenesError::PhotoTooSmall {
                    scenario,
                    index,
                    width: photo.width(),
                    height: photo.height(),
                    min_width: MIN_PHOTO_WIDTH,
                    min_height: MIN_PHOTO_HEIGHT,
                });
            }
        }
        Ok(Self {
            mnist,
            uci,
            mnist_splits,
            uci_splits,
            transfer_photos,
            third_photos,
            broad_photos,
        })
    }

    /// A generator over everything `scripts/fetch-data` put in `data_dir`.
    pub fn load(data_dir: &Path) -> Result<Self, ScenesError> {
        Self::new(
            load_mnist(data_dir)?,
            load_uci(data_dir)?,
            load_photos(data_dir, &TRANSFER_PHOTOS)?,
            load_photos(data_dir, &THIRD_PHOTOS)?,
            load_photos(data_dir, &BROAD_PHOTOS)?,
        )
    }

    /// The digit set behind `source`.
    pub fn digits(&self, source: DigitSource) -> &DigitSet {
        match source {
            DigitSource::Mnist => &self.mnist,
            DigitSource::Uci => &self.uci,
        }
    }

    /// Scene number `index` of `scenario` and `split` under `seed`, `size` x
    /// `size` pixels; the same arguments always give the same scene.
    pub fn scene(
        &self,
        scenario: Scenario,
        split: Split,
        seed: u64,
        index: u64,
        size: usize,
    ) -> Result<Scene, ScenesError> {
        if size < MIN_SCENE_SIZE {
            return Err(ScenesError::SceneTooSmall { size });
        }
        let mut rng = StdRng::seed_from_u64(scene_seed(seed, index, scenario, split));
        let background = match scenario {
            Scenario::General => dark_background(&mut rng, size),
            Scenario::Transfer => photo_crop(&mut rng, &self.transfer_photos, split, size),
            Scenario::Third => {
                let crop = photo_crop(&mut rng, &self.third_photos, split, size);
                brightened(&mut rng, crop)
            }
            Scenario::Broad => photo_crop(&mut rng, &self.broad_photos, split, size),
        };
        let wanted = rng.random_range(1..=MAX_DIGITS);
        let mut objects: Vec<SceneObject> = Vec::with_capacity(wanted);
        for _ in 0..4 * wanted {
            if objects.len() == wanted {
                break;
            }
            if let Some(object) = self.place_digit(&mut rng, scenario, split, size, &objects) {
                objects.push(object);
            }
        }
        let mut image = background.clone();
        for object in &objects {
            let (colour, opacity) = ink_colour(&mut rng, scenario, &image, &object.label.bbox);
            paint(&mut image, &object.ink, colour, opacity);
        }
        if scenario == Scenario::Transfer {
            occlude(
                &mut rng,
                &mut image,
                &background,
                &mut objects,
                &self.transfer_photos,
                split,
            );
        }
        if matches!(scenario, Scenario::Transfer | Scenario::Broad) {
            light(&mut rng, &mut image);
        }
        Ok(Scene { image, objects })
    }

    /// Scenes `0..count` of `scenario` and `split` under `seed`: element `i`
    /// is `self.scene(scenario, split, seed, i, size)`.
    pub fn scenes(
        &self,
        scenario: Scenario,
        split: Split,
        count: usize,
        seed: u64,
        size: usize,
    ) -> Result<Vec<Scene>, ScenesError> {
        (0..count as u64)
            .map(|index| self.scene(scenario, split, seed, index, size))
            .collect()
    }

    /// A digit of the scenario's source and split, scaled (and for the third
    /// scenario sheared), at a position where its ink box overlaps the boxes
    /// of `placed` little; `None` when no such position was found.
    fn place_digit(
        &self,
        rng: &mut StdRng,
        scenario: Scenario,
        split: Split,
        size: usize,
        placed: &[SceneObject],
    ) -> Option<SceneObject> {
        let source = match scenario {
            Scenario::Transfer => DigitSource::Uci,
            Scenario::General | Scenario::Third | Scenario::Broad => DigitSource::Mnist,
        };
        let pool = match source {
            DigitSource::Mnist => &self.mnist_splits[split_slot(split)],
            DigitSource::Uci => &self.uci_splits[split_slot(split)],
        };
        let set = self.digits(source);
        let digit = pool[rng.random_range(0..pool.len())];
        let scale = size as f32 / DEFAULT_SIZE as f32;
        let max_height = if scenario == Scenario::Third {
            64.0
        } else {
            80.0
        };
        let shape = DigitShape {
            ink_height: rng.random_range(20.0..=max_height) * scale,
            // UCI digits were stretched to fill their square: narrow them.
            aspect: match source {
                DigitSource::Uci => rng.random_range(0.65..0.95),
                DigitSource::Mnist => rng.random_range(0.85..1.15),
            },
            shear: match scenario {
                Scenario::Third => {
                    rng.random_range(0.15..0.4) * if rng.random_bool(0.8) { 1.0 } else { -1.0 }
                }
                _ => 0.0,
            },
            // UCI digits are 17-level blocks: a steep curve around the
            // middle grey turns the upscaled blur into strokes with edges
            // of random softness.
            contrast: match source {
                DigitSource::Uci => {
                    let low = rng.random_range(0.35..0.5);
                    Some((low, low + rng.random_range(0.1..0.2)))
                }
                DigitSource::Mnist => None,
            },
        };
        let mut ink = warp_digit(set.side(), set.digit(digit), &shape);
        if ink.width > size || ink.height > size {
            return None;
        }
        let local = ink.ink_box()?;
        for _ in 0..PLACEMENT_TRIES {
            let x = rng.random_range(0..=size - ink.width);
            let y = rng.random_range(0..=size - ink.height);
            let bbox = BBox::new(
                local.x0 + x as f32,
                local.y0 + y as f32,
                local.x1 + x as f32,
                local.y1 + y as f32,
            );
            if placed.iter().all(|o| {
                o.label.bbox.intersection(&bbox)
                    <= MAX_OVERLAP * o.label.bbox.area().min(bbox.area())
            }) {
                (ink.x, ink.y) = (x, y);
                return Some(SceneObject {
                    label: LabeledBox {
                        bbox,
                        class: set.label(digit),
                    },
                    source,
                    digit,
                    ink,
                    occluded: false,
                });
            }
        }
        None
    }
}

/// Where a split's digit indices are kept in the generator's arrays.
fn split_slot(split: Split) -> usize {
    match split {
        Split::Train => 0,
        Split::Test => 1,
    }
}

/// One seed per (seed, index, scenario, split), mixed with SplitMix64 so that
/// neighbouring indices give unrelated scenes.
fn scene_seed(seed: u64, index: u64, scenario: Scenario, split: Split) -> u64 {
    let scenario_tag = match scenario {
        Scenario::General => 1,
        Scenario::Transfer => 2,
        Scenario::Third => 3,
        Scenario::Broad => 4,
    };
    let tag = scenario_tag * 2 + split_slot(split) as u64;
    [index, tag]
        .iter()
        .fold(splitmix64(seed), |h, &v| splitmix64(h ^ v))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A plain dark grey, or the same with per-pixel noise.
fn dark_background(rng: &mut StdRng, size: usize) -> Image {
    let level = rng.random_range(0.0..0.25);
    let mut image = Image::filled(size, size, [level; 3]);
    if rng.random_bool(0.5) {
        let amplitude = rng.random_range(0.02..0.1);
        for y in 0..size {
            for x in 0..size {
                let v = (level + rng.random_range(-amplitude..amplitude)).clamp(0.0, 1.0);
                image.set(x, y, [v; 3]);
            }
        }
    }
    image
}

/// A random square crop of a random photograph, from its left half for
/// training and its right half for test, resampled to `size`.
fn photo_crop(rng: &mut StdRng, photos: &[Image], split: Split, size: usize) -> Image {
    let photo = &photos[rng.random_range(0..photos.len())];
    let half = photo.width() / 2;
    let left = match split {
        Split::Train => 0,
        Split::Test => photo.width() - half,
    };
    let max_side = half.min(photo.height());
    let side = rng.random_range(max_side / 2..=max_side);
    let x0 = left + rng.random_range(0..=half - side);
    let y0 = rng.random_range(0..=photo.height() - side);
    resample(photo, x0, y0, side, size)
}

/// The `side` x `side` square at `(x0, y0)` of `photo` resampled to `size`
/// x `size`: bilinear samples, several per output pixel when shrinking,
/// never reading outside the square.
fn resample(photo: &Image, x0: usize, y0: usize, side: usize, size: usize) -> Image {
    let step = side as f32 / size as f32;
    let n = step.ceil().max(1.0) as usize;
    let last = (side - 1) as f32;
    let mut out = Image::filled(size, size, [0.0; 3]);
    for oy in 0..size {
        for ox in 0..size {
            let mut sum = [0.0f32; 3];
            for sy in 0..n {
                let y = ((oy as f32 + (sy as f32 + 0.5) / n as f32) * step - 0.5).clamp(0.0, last);
                let (ya, fy) = (y.floor() as usize, y.fract());
                let yb = (ya + 1).min(side - 1);
                for sx in 0..n {
                    let x =
                        ((ox as f32 + (sx as f32 + 0.5) / n as f32) * step - 0.5).clamp(0.0, last);
                    let (xa, fx) = (x.floor() as usize, x.fract());
                    let xb = (xa + 1).min(side - 1);
                    let [a, b, c, d] = [(xa, ya), (xb, ya), (xa, yb), (xb, yb)]
                        .map(|(x, y)| photo.get(x0 + x, y0 + y));
                    for k in 0..3 {
                        sum[k] += (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy)
                            + (c[k] * (1.0 - fx) + d[k] * fx) * fy;
                    }
                }
            }
            out.set(ox, oy, sum.map(|s| s / (n * n) as f32));
        }
    }
    out
}

/// The crop lifted to bright values (`0.55 + 0.45 v`) under a paper tint.
fn brightened(rng: &mut StdRng, mut image: Image) -> Image {
    let tint = [
        1.0,
        rng.random_range(0.94..1.0),
        rng.random_range(0.82..0.95),
    ];
    for y in 0..image.height() {
        for x in 0..image.width() {
            let v = image.get(x, y);
            image.set(
                x,
                y,
                std::array::from_fn(|k| (0.55 + 0.45 * v[k]) * tint[k]),
            );
        }
    }
    image
}

/// How a source digit is drawn.
struct DigitShape {
    /// Height of the inked rows after scaling, in scene pixels.
    ink_height: f32,
    /// Horizontal over vertical scale.
    aspect: f32,
    /// Horizontal shift per pixel of height (positive leans right).
    shear: f32,
    /// Coverage curve `smoothstep(low, high, v)` applied after scaling.
    contrast: Option<(f32, f32)>,
}

/// The coverage of a source digit drawn with `shape`, on a patch at the
/// origin: bilinear samples, several per pixel when shrinking.
fn warp_digit(side: usize, digit: &[u8], shape: &DigitShape) -> InkPatch {
    let value = |x: isize, y: isize| -> f32 {
        if x < 0 || y < 0 || x >= side as isize || y >= side as isize {
            0.0
        } else {
            f32::from(digit[y as usize * side + x as usize]) / 255.0
        }
    };
    let inked_rows = digit
        .chunks_exact(side)
        .filter(|row| row.iter().any(|&v| f32::from(v) / 255.0 > INK_THRESHOLD))
        .count()
        .max(1);
    let scale_y = shape.ink_height / inked_rows as f32;
    let scale_x = scale_y * shape.aspect;
    let height = (side as f32 * scale_y).ceil() as usize;
    let width = (side as f32 * scale_x + shape.shear.abs() * height as f32).ceil() as usize;
    let (nx, ny) = (
        (1.0 / scale_x).ceil().max(1.0) as usize,
        (1.0 / scale_y).ceil().max(1.0) as usize,
    );
    let mut coverage = vec![0.0; width * height];
    for py in 0..height {
        for px in 0..width {
            let mut sum = 0.0;
            for sy in 0..ny {
                let y = py as f32 + (sy as f32 + 0.5) / ny as f32;
                let shift = if shape.shear >= 0.0 {
                    shape.shear * (height as f32 - y)
                } else {
                    -shape.shear * y
                };
                let v = y / scale_y - 0.5;
                for sx in 0..nx {
                    let x = px as f32 + (sx as f32 + 0.5) / nx as f32;
                    let u = (x - shift) / scale_x - 0.5;
                    let (u0, v0) = (u.floor(), v.floor());
                    let (fu, fv) = (u - u0, v - v0);
                    let (u0, v0) = (u0 as isize, v0 as isize);
                    sum += (value(u0, v0) * (1.0 - fu) + value(u0 + 1, v0) * fu) * (1.0 - fv)
                        + (value(u0, v0 + 1) * (1.0 - fu) + value(u0 + 1, v0 + 1) * fu) * fv;
                }
            }
            let c = sum / (nx * ny) as f32;
            coverage[py * width + px] = match shape.contrast {
                Some((low, high)) => smoothstep(low, high, c),
                None => c,
            };
        }
    }
    InkPatch {
        x: 0,
        y: 0,
        width,
        height,
        coverage,
    }
}

fn smoothstep(low: f32, high: f32, v: f32) -> f32 {
    let t = ((v - low) / (high - low)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// The colour and opacity of a digit's ink: light grey (general), a random
/// colour contrasting with what lies under the box (transfer; broad, grey
/// included), dark ink (third).
fn ink_colour(rng: &mut StdRng, scenario: Scenario, image: &Image, bbox: &BBox) -> ([f32; 3], f32) {
    // Any hue, light on a dark place or dark on a light one.
    let contrasting = |rng: &mut StdRng, saturation: Range<f32>, opacity: Range<f32>| {
        let value = if mean_luminance(image, bbox) > 0.5 {
            rng.random_range(0.0..0.3)
        } else {
            rng.random_range(0.7..1.0)
        };
        let colour = hsv(
            rng.random_range(0.0..1.0),
            rng.random_range(saturation),
            value,
        );
        (colour, rng.random_range(opacity))
    };
    match scenario {
        Scenario::General => ([rng.random_range(0.7..1.0); 3], 1.0),
        Scenario::Transfer => contrasting(rng, 0.4..1.0, 0.75..1.0),
        Scenario::Broad => contrasting(rng, 0.0..1.0, 0.8..1.0),
        Scenario::Third => {
            let colour = hsv(
                rng.random_range(0.0..1.0),
                rng.random_range(0.0..0.6),
                rng.random_range(0.0..0.25),
            );
            (colour, rng.random_range(0.85..1.0))
        }
    }
}

fn mean_luminance(image: &Image, bbox: &BBox) -> f32 {
    let (x0, y0, x1, y1) = (
        bbox.x0 as usize,
        bbox.y0 as usize,
        bbox.x1 as usize,
        bbox.y1 as usize,
    );
    let mut sum = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            let [r, g, b] = image.get(x, y);
            sum += 0.299 * r + 0.587 * g + 0.114 * b;
        }
    }
    sum / ((x1 - x0) * (y1 - y0)).max(1) as f32
}

/// RGB from hue, saturation and value, all in `[0, 1]`.
fn hsv(hue: f32, saturation: f32, value: f32) -> [f32; 3] {
    let h = hue.rem_euclid(1.0) * 6.0;
    let c = value * saturation;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let [r, g, b] = match h as usize {
        0 => [c, x, 0.0],
        1 => [x, c, 0.0],
        2 => [0.0, c, x],
        3 => [0.0, x, c],
        4 => [x, 0.0, c],
        _ => [c, 0.0, x],
    };
    let m = value - c;
    [r + m, g + m, b + m]
}

/// Blends `colour` over the image where the patch has coverage.
fn paint(image: &mut Image, ink: &InkPatch, colour: [f32; 3], opacity: f32) {
    for py in 0..ink.height {
        for px in 0..ink.width {
            let a = ink.coverage[py * ink.width + px] * opacity;
            if a > 0.0 {
                let (x, y) = (ink.x + px, ink.y + py);
                let under = image.get(x, y);
                image.set(
                    x,
                    y,
                    std::array::from_fn(|k| under[k] * (1.0 - a) + colour[k] * a),
                );
            }
        }
    }
}

/// Hides a strip (a quarter to a half of the box, from one side) of some
/// digits behind the background that was there or a crop of another
/// photograph; boxes stay the digits' full extent.
fn occlude(
    rng: &mut StdRng,
    image: &mut Image,
    background: &Image,
    objects: &mut [SceneObject],
    photos: &[Image],
    split: Split,
) {
    let mut other_photo: Option<Image> = None;
    for object in objects.iter_mut() {
        if !rng.random_bool(OCCLUSION_CHANCE) {
            continue;
        }
        let b = object.label.bbox;
        let (x0, y0, x1, y1) = (b.x0 as usize, b.y0 as usize, b.x1 as usize, b.y1 as usize);
        let share = rng.random_range(0.25..0.5);
        let dx = ((x1 - x0) as f32 * share).ceil() as usize;
        let dy = ((y1 - y0) as f32 * share).ceil() as usize;
        let (rx0, ry0, rx1, ry1) = match rng.random_range(0..4) {
            0 => (x0, y0, x0 + dx, y1),
            1 => (x1 - dx, y0, x1, y1),
            2 => (x0, y0, x1, y0 + dy),
            _ => (x0, y1 - dy, x1, y1),
        };
        let filler: &Image = if rng.random_bool(0.5) {
            background
        } else {
            other_photo.get_or_insert_with(|| photo_crop(rng, photos, split, image.width()))
        };
        for y in ry0..ry1 {
            for x in rx0..rx1 {
                image.set(x, y, filler.get(x, y));
            }
        }
        object.occluded = true;
    }
}

/// Multiplies the scene by a random gain that changes linearly across it.
fn light(rng: &mut StdRng, image: &mut Image) {
    let gain = rng.random_range(0.75..1.25);
    let amplitude = rng.random_range(0.0..0.4);
    let (sin, cos) = rng.random_range(0.0..TAU).sin_cos();
    let (w, h) = (image.width() as f32, image.height() as f32);
    for y in 0..image.height() {
        for x in 0..image.width() {
            let t = ((x as f32 + 0.5) / w - 0.5) * cos + ((y as f32 + 0.5) / h - 0.5) * sin;
            let factor = gain * (1.0 + amplitude * t);
            let v = image.get(x, y);
            image.set(x, y, v.map(|c| (c * factor).clamp(0.0, 1.0)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten-class digit sets whose digits are filled rectangles, and
    /// photographs whose left half is dark red and right half light blue.
    fn synthetic_generator() -> SceneGenerator {
        let digits = |side: usize, count: usize| {
            let mut pixels = Vec::new();
            for i in 0..count {
                let mut d = vec![0u8; side * side];
                for y in side / 6..side - side / 6 {
                    for x in side / 4..side - side / 4 - i % 2 {
                        d[y * side + x] = 255;
                    }
                }
                pixels.extend(d);
            }
            DigitSet::new(side, pixels, (0..count).map(|i| (i % 10) as u8).collect()).unwrap()
        };
        let photo = two_halves(128, 64);
        SceneGenerator::new(
            digits(28, 30),
            digits(8, 30),
            vec![photo.clone()],
            vec![photo.clone()],
            vec![photo],
        )
        .unwrap()
    }

    fn two_halves(width: usize, height: usize) -> Image {
        let mut photo = Image::filled(width, height, [0.5, 0.1, 0.1]);
        for y in 0..height {
            for x in width / 2..width {
                photo.set(x, y, [0.2, 0.6, 0.9]);
            }
        }
        photo
    }

    #[test]
    fn photo_crops_never_read_the_other_half() {
        let photos = [two_halves(101, 40)];
        let all_near = |image: &Image, rgb: [f32; 3]| {
            image
                .pixels()
                .chunks(3)
                .all(|p| p.iter().zip(rgb).all(|(a, b)| (a - b).abs() < 1e-5))
        };
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let train = photo_crop(&mut rng, &photos, Split::Train, 64);
            assert!(all_near(&train, [0.5, 0.1, 0.1]));
            let test = photo_crop(&mut rng, &photos, Split::Test, 64);
            assert!(all_near(&test, [0.2, 0.6, 0.9]));
        }
    }

    #[test]
    fn warped_digits_reach_the_asked_ink_height() {
        // 20 inked rows of 28, as in MNIST.
        let mut digit = vec![0u8; 28 * 28];
        for y in 4..24 {
            digit[y * 28 + 10..y * 28 + 18].fill(255);
        }
        for (ink_height, shear) in [(20.0, 0.0), (60.0, 0.3), (7.0, -0.2)] {
            let shape = DigitShape {
                ink_height,
                aspect: 1.0,
                shear,
                contrast: None,
            };
            let b = warp_digit(28, &digit, &shape).ink_box().unwrap();
            assert!(
                (b.height() - ink_height).abs() <= 2.0,
                "{ink_height}: {b:?}"
            );
        }
    }

    #[test]
    fn synthetic_scenes_have_tight_boxes_and_regenerate_alone() {
        let generator = synthetic_generator();
        for scenario in Scenario::ALL {
            let batch = generator.scenes(scenario, Split::Test, 3, 11, 96).unwrap();
            assert_eq!(
                batch[2],
                generator.scene(scenario, Split::Test, 11, 2, 96).unwrap()
            );
            assert_ne!(batch[0].image, batch[1].image);
            for scene in &batch {
                assert!((1..=MAX_DIGITS).contains(&scene.objects.len()));
                for object in &scene.objects {
                    assert_eq!(object.ink.ink_box(), Some(object.label.bbox));
                    assert_eq!(
                        object.label.class,
                        generator.digits(object.source).label(object.digit)
                    );
                    assert!(object.digit >= 20, "test digits are the last of each class");
                }
            }
        }
    }

    #[test]
    fn bad_sizes_and_inputs_are_refused() {
        let generator = synthetic_generator();
        let err = generator
            .scene(Scenario::General, Split::Train, 0, 0, 32)
            .unwrap_err();
        assert!(err.to_string().contains("at least 64"), "{err}");
        let digits = generator.digits(DigitSource::Mnist).clone();
        let uci = generator.digits(DigitSource::Uci).clone();
        let small = Image::filled(40, 40, [0.0; 3]);
        let err = SceneGenerator::new(digits.clone(), uci.clone(), vec![small], vec![], vec![])
            .unwrap_err();
        assert!(
            matches!(err, ScenesError::PhotoTooSmall { width: 40, .. }),
            "{err}"
        );
        let photo = || vec![two_halves(64, 64)];
        let err =
            SceneGenerator::new(digits.clone(), uci.clone(), photo(), vec![], photo()).unwrap_err();
        assert!(
            matches!(
                err,
                ScenesError::NoPhotos {
                    scenario: Scenario::Third
                }
            ),
            "{err}"
        );
        let err = SceneGenerator::new(digits, uci, photo(), photo(), vec![]).unwrap_err();
        assert!(
            matches!(
                err,
                ScenesError::NoPhotos {
                    scenario: Scenario::Broad
                }
            ),
            "{err}"
        );
    }
}
