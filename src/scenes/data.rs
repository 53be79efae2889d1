//! The digits and photographs `scripts/fetch-data` writes to `data/`, read
//! into memory.

use std::path::{Path, PathBuf};

use super::{ScenesError, Split};
use crate::dataset::read_image;
use crate::image::Image;

/// Photographs (file names in `data/photos/`) that transfer scenes are
/// cropped from: colour and grey photographs of people, animals, objects,
/// textures and the sky.
pub const TRANSFER_PHOTOS: [&str; 11] = [
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "rocket.jpg",
];

/// Photographs (file names in `data/photos/`) that third-scenario scenes are
/// cropped from; none is in [`TRANSFER_PHOTOS`].
pub const THIRD_PHOTOS: [&str; 5] = [
    "clock_motion.png",
    "ihc.png",
    "moon.png",
    "page.png",
    "text.png",
];

/// Photographs (file names in `data/photos/`) that broad scenes are cropped
/// from, for pretraining only: everyday scenes from Debian's darknet package
/// and scikit-image's motorcycles; none is in [`TRANSFER_PHOTOS`] or
/// [`THIRD_PHOTOS`].
pub const BROAD_PHOTOS: [&str; 9] = [
    "dog.jpg",
    "eagle.jpg",
    "giraffe.jpg",
    "horses.jpg",
    "kite.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "person.jpg",
    "scream.jpg",
];

/// Share of each class's digits, in file order, that training scenes draw
/// from; test scenes draw from the rest.
pub const TRAIN_SHARE: f64 = 0.8;

/// Greyscale square digits with their classes: 0 is no ink, 255 full ink.
#[derive(Clone, Debug, PartialEq)]
pub struct DigitSet {
    side: usize,
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl DigitSet {
    /// Checks that `pixels` holds one `side` x `side` digit per label and
    /// that every label is a digit; the error says what is wrong.
    pub(super) fn new(side: usize, pixels: Vec<u8>, labels: Vec<u8>) -> Result<Self, String> {
        let per_digit = side * side;
        if per_digit == 0 || !pixels.len().is_multiple_of(per_digit) {
            return Err(format!(
                "it has {} bytes, not a whole number of {side}x{side} digits",
                pixels.len()
            ));
        }
        if pixels.len() / per_digit != labels.len() {
            return Err(format!(
                "it holds {} digits but there are {} labels",
                pixels.len() / per_digit,
                labels.len()
            ));
        }
        if labels.is_empty() {
            return Err("it holds no digits".into());
        }
        if let Some(bad) = labels.iter().find(|&&l| l > 9) {
            return Err(format!("a label is {bad}, not a digit"));
        }
        Ok(Self {
            side,
            pixels,
            labels,
        })
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no digits (never true for a loaded set).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Width and height of every digit, in pixels.
    pub fn side(&self) -> usize {
        self.side
    }

    /// The class (the digit shown) of digit `index`; panics past [`Self::len`].
    pub fn label(&self, index: usize) -> usize {
        usize::from(self.labels[index])
    }

    /// The row-major ink values of digit `index`; panics past [`Self::len`].
    pub fn digit(&self, index: usize) -> &[u8] {
        let n = self.side * self.side;
        &self.pixels[index * n..(index + 1) * n]
    }

    /// The indices of the digits in `split`, ascending: of each class's
    /// digits in file order, the first [`TRAIN_SHARE`] (rounded down) are
    /// training digits and the rest test digits.
    pub fn split_indices(&self, split: Split) -> Vec<usize> {
        let mut totals = [0usize; 10];
        for &l in &self.labels {
            totals[usize::from(l)] += 1;
        }
        let train_counts = totals.map(|t| (t as f64 * TRAIN_SHARE).floor() as usize);
        let mut seen = [0usize; 10];
        let mut indices = Vec::new();
        for (i, &l) in self.labels.iter().enumerate() {
            let class = usize::from(l);
            let is_train = seen[class] < train_counts[class];
            seen[class] += 1;
            if is_train == (split == Split::Train) {
                indices.push(i);
            }
        }
        indices
    }
}

/// Where the scene data lives: `$VERITUNE_DATA` when set and not empty,
/// otherwise `data/` in the crate's source folder.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("VERITUNE_DATA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
    }
}

/// Loads the 10,000 MNIST digits (28x28) from `data_dir`.
pub fn load_mnist(data_dir: &Path) -> Result<DigitSet, ScenesError> {
    load_digits(data_dir, "mnist.u8", "mnist-labels.u8", 28)
}

/// Loads the 1,797 UCI digits (8x8) from `data_dir`.
pub fn load_uci(data_dir: &Path) -> Result<DigitSet, ScenesError> {
    load_digits(data_dir, "uci-digits.u8", "uci-labels.u8", 8)
}

/// Decodes the photographs named `names` from `data_dir/photos/`, in order.
pub fn load_photos(data_dir: &Path, names: &[&str]) -> Result<Vec<Image>, ScenesError> {
    names
        .iter()
        .map(|name| {
            let path = data_dir.join("photos").join(name);
            if !path.is_file() {
                return Err(ScenesError::Missing { path });
            }
            read_image(&path).map_err(|source| ScenesError::Photo { source })
        })
        .collect()
}

fn load_digits(
    data_dir: &Path,
    pixels_file: &str,
    labels_file: &str,
    side: usize,
) -> Result<DigitSet, ScenesError> {
    let pixels_path = data_dir.join(pixels_file);
    let pixels = read_file(&pixels_path)?;
    let labels = read_file(&data_dir.join(labels_file))?;
    DigitSet::new(side, pixels, labels).map_err(|reason| ScenesError::Malformed {
        path: pixels_path,
        reason,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, ScenesError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScenesError::Missing {
            path: path.to_path_buf(),
        },
        _ => ScenesError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_photograph_sets_share_no_photograph() {
        let sets: [&[&str]; 3] = [&TRANSFER_PHOTOS, &THIRD_PHOTOS, &BROAD_PHOTOS];
        let mut all: Vec<&str> = sets.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), sets.iter().map(|s| s.len()).sum::<usize>());
    }

    #[test]
    fn each_class_gives_its_first_eighty_percent_to_training() {
        // Class 3 has ten digits, class 5 has five, interleaved.
        let labels: Vec<u8> = (0..15).map(|i| if i % 3 == 0 { 5 } else { 3 }).collect();
        let set = DigitSet::new(2, vec![0; 60], labels).unwrap();
        assert_eq!(set.split_indices(Split::Train), (0..12).collect::<Vec<_>>());
        assert_eq!(set.split_indices(Split::Test), vec![12, 13, 14]);
    }

    #[test]
    fn malformed_digit_files_are_described() {
        assert!(
            DigitSet::new(2, vec![0; 7], vec![1, 2])
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            DigitSet::new(2, vec![0; 8], vec![1])
                .unwrap_err()
                .contains("2 digits but there are 1 labels")
        );
        assert!(
            DigitSet::new(2, vec![0; 4], vec![10])
                .unwrap_err()
                .contains("not a digit")
        );
    }

    #[test]
    fn missing_data_says_to_run_the_fetch_script() {
        let dir =
            std::env::temp_dir().join(format!("veritune-scenes-missing-{}", std::process::id()));
        let err = load_mnist(&dir).unwrap_err().to_string();
        assert!(
            err.contains("mnist.u8") && err.ends_with("run scripts/fetch-data"),
            "{err}"
        );
        let err = load_photos(&dir, &["brick.png"]).unwrap_err().to_string();
        assert!(
            err.contains("brick.png") && err.contains("run scripts/fetch-data"),
            "{err}"
        );
    }
}
