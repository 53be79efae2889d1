//! An RGB image in memory, the one pixel format the library trains and predicts on.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The longest side, in pixels, of an image veritune keeps in memory: larger
/// image files are downscaled to it when decoded, keeping their aspect ratio.
pub const MAX_SIDE: usize = 4096;

/// The most pixels an image may have to be decoded or built at all (64
/// megapixels, e.g. 8000 x 8000): larger images are refused before any pixel
/// is allocated.
pub const MAX_PIXELS: u64 = 64_000_000;

/// An RGB image, row-major, interleaved channels in `[0, 1]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    width: usize,
    height: usize,
    pixels: Vec<f32>,
}

/// Why pixels cannot become an [`Image`].
#[derive(Debug, Error, PartialEq)]
pub enum ImageError {
    /// The pixel buffer does not match the stated size.
    #[error(
        "the image is said to be {width}x{height} with {channels} channels ({expected} values) but has {actual} values: the file is truncated or the size is wrong"
    )]
    SizeMismatch {
        /// Stated width.
        width: usize,
        /// Stated height.
        height: usize,
        /// Channels per pixel.
        channels: usize,
        /// Values the size calls for.
        expected: usize,
        /// Values present.
        actual: usize,
    },
    /// Width or height is zero.
    #[error("the image has no pixels ({width}x{height}): open a non-empty image")]
    Empty {
        /// Stated width.
        width: usize,
        /// Stated height.
        height: usize,
    },
    /// More pixels than [`MAX_PIXELS`].
    #[error(
        "the image is {width}x{height} pixels, more than the {} megapixels veritune handles: downscale it first",
        MAX_PIXELS / 1_000_000
    )]
    TooLarge {
        /// Stated width.
        width: usize,
        /// Stated height.
        height: usize,
    },
}

impl Image {
    /// An image from interleaved RGB values in `[0, 1]`.
    pub fn from_rgb(width: usize, height: usize, pixels: Vec<f32>) -> Result<Self, ImageError> {
        check_size(width, height, 3, pixels.len())?;
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// An image from 8-bit RGBA bytes (a canvas' `ImageData`); alpha is dropped.
    pub fn from_rgba8(width: usize, height: usize, rgba: &[u8]) -> Result<Self, ImageError> {
        check_size(width, height, 4, rgba.len())?;
        let pixels = rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]].map(|v| v as f32 / 255.0))
            .collect();
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// An image from 8-bit RGB bytes.
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Result<Self, ImageError> {
        check_size(width, height, 3, rgb.len())?;
        Self::from_rgb(
            width,
            height,
            rgb.iter().map(|&v| v as f32 / 255.0).collect(),
        )
    }

    /// A single-colour image.
    pub fn filled(width: usize, height: usize, rgb: [f32; 3]) -> Self {
        Self {
            width,
            height,
            pixels: rgb.repeat(width * height),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Interleaved RGB values, row-major.
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// The RGB value at `(x, y)`.
    pub fn get(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Sets the RGB value at `(x, y)`.
    pub fn set(&mut self, x: usize, y: usize, rgb: [f32; 3]) {
        let i = (y * self.width + x) * 3;
        self.pixels[i..i + 3].copy_from_slice(&rgb);
    }

    /// The image stretched to `width` x `height` with bilinear sampling
    /// (pixel centres aligned, as in most vision libraries).
    pub fn resized(&self, width: usize, height: usize) -> Image {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let sx = self.width as f32 / width as f32;
        let sy = self.height as f32 / height as f32;
        let mut out = Image::filled(width, height, [0.0; 3]);
        for y in 0..height {
            let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (self.height - 1) as f32);
            let (y0, wy) = (fy.floor() as usize, fy.fract());
            let y1 = (y0 + 1).min(self.height - 1);
            for x in 0..width {
                let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (self.width - 1) as f32);
                let (x0, wx) = (fx.floor() as usize, fx.fract());
                let x1 = (x0 + 1).min(self.width - 1);
                let [a, b, c, d] =
                    [(x0, y0), (x1, y0), (x0, y1), (x1, y1)].map(|(x, y)| self.get(x, y));
                let rgb = std::array::from_fn(|k| {
                    (a[k] * (1.0 - wx) + b[k] * wx) * (1.0 - wy)
                        + (c[k] * (1.0 - wx) + d[k] * wx) * wy
                });
                out.set(x, y, rgb);
            }
        }
        out
    }

    /// The values as planar `[3, height, width]` (channels first), each
    /// channel normalised as `(v - mean) / std`.
    pub fn to_planar(&self, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
        let plane = self.width * self.height;
        let mut out = vec![0.0; 3 * plane];
        for (i, px) in self.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (px[c] - mean[c]) / std[c];
            }
        }
        out
    }
}

/// The size an image of `width` x `height` is kept at: unchanged when its
/// longest side is at most [`MAX_SIDE`], else scaled down so that the longest
/// side is [`MAX_SIDE`] (aspect ratio kept, each side at least 1).
pub fn fitted_size(width: usize, height: usize) -> (usize, usize) {
    let longest = width.max(height);
    if longest <= MAX_SIDE {
        return (width, height);
    }
    let scale = |side: usize| {
        ((side as f64 * MAX_SIDE as f64 / longest as f64).round() as usize).clamp(1, MAX_SIDE)
    };
    (scale(width), scale(height))
}

/// Whether an image of `width` x `height` is within [`MAX_PIXELS`].
pub fn check_pixel_count(width: usize, height: usize) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Empty { width, height });
    }
    match (width as u64).checked_mul(height as u64) {
        Some(pixels) if pixels <= MAX_PIXELS => Ok(()),
        _ => Err(ImageError::TooLarge { width, height }),
    }
}

fn check_size(
    width: usize,
    height: usize,
    channels: usize,
    actual: usize,
) -> Result<(), ImageError> {
    check_pixel_count(width, height)?;
    let expected = width * height * channels;
    if expected != actual {
        return Err(ImageError::SizeMismatch {
            width,
            height,
            channels,
            expected,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgba_drops_alpha_and_scales_to_unit_range() {
        let img = Image::from_rgba8(2, 1, &[255, 0, 51, 7, 0, 255, 0, 255]).unwrap();
        assert_eq!(img.get(0, 0), [1.0, 0.0, 0.2]);
        assert_eq!(img.get(1, 0), [0.0, 1.0, 0.0]);
    }

    #[test]
    fn wrong_buffer_sizes_are_reported() {
        assert!(matches!(
            Image::from_rgba8(2, 2, &[0; 15]),
            Err(ImageError::SizeMismatch {
                expected: 16,
                actual: 15,
                ..
            })
        ));
        assert_eq!(
            Image::from_rgb(0, 5, vec![]),
            Err(ImageError::Empty {
                width: 0,
                height: 5
            })
        );
    }

    #[test]
    fn absurd_sizes_are_refused_before_any_allocation() {
        assert_eq!(
            Image::from_rgba8(usize::MAX, 3, &[]),
            Err(ImageError::TooLarge {
                width: usize::MAX,
                height: 3
            })
        );
        let err = Image::from_rgb8(9000, 9000, &[]).unwrap_err();
        assert!(err.to_string().contains("9000x9000"), "{err}");
    }

    #[test]
    fn fitted_size_caps_the_longest_side_and_keeps_the_aspect_ratio() {
        assert_eq!(fitted_size(640, 480), (640, 480));
        assert_eq!(fitted_size(MAX_SIDE, 10), (MAX_SIDE, 10));
        assert_eq!(fitted_size(8192, 6144), (4096, 3072));
        assert_eq!(fitted_size(3000, 6000), (2048, 4096));
        assert_eq!(fitted_size(1_000_000, 1), (4096, 1));
    }

    #[test]
    fn resizing_keeps_flat_colours_and_planar_layout_is_channel_first() {
        let img = Image::filled(5, 3, [0.2, 0.4, 0.6]).resized(8, 8);
        assert_eq!((img.width(), img.height()), (8, 8));
        assert!(img.pixels().chunks(3).all(|p| (p[1] - 0.4).abs() < 1e-6));
        let planar = img.to_planar([0.0, 0.5, 0.0], [1.0, 1.0, 2.0]);
        assert!((planar[0] - 0.2).abs() < 1e-6);
        assert!((planar[64] + 0.1).abs() < 1e-6);
        assert!((planar[128] - 0.3).abs() < 1e-6);
    }
}
