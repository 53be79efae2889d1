//! What the page needs from the command line: `serve` (the loopback server)
//! and `samples` (the sample images and history libraries it embeds).

use std::path::Path;

use burn::tensor::Device;
use serde::Serialize;
use veritune::dataset::read_image;
use veritune::detector::{Detector, shown_detections};
use veritune::formats::coco::to_coco_json;
use veritune::formats::{ImageLabels, LabelSet};
use veritune::geometry::Detection;
use veritune::geometry::LabeledBox;
use veritune::image::Image;
use veritune::predict::NMS_IOU;
use veritune::scenes::{DIGIT_CLASSES, Scenario, SceneGenerator, Split, data_dir};
use veritune::with_any_detector;

use crate::args::{SamplesArgs, ServeArgs};
use crate::io::{CliError, CliResult, create_dir, load_model, write_json};
use crate::predict::all_candidates;

/// `veritune serve`.
pub(crate) fn serve(args: ServeArgs) -> CliResult {
    let ServeArgs { port, root } = args;
    if !root.join("index.html").is_file() {
        return Err(CliError::usage(format!(
            "{} has no index.html: run scripts/run, or pass --root with the page folder",
            root.display()
        )));
    }
    veritune::serve::serve(&root, port, |address| {
        println!(
            "veritune: serving {} on {address} (Ctrl+C stops)",
            root.display()
        );
    })
    .map_err(|source| CliError::Serve { port, source })
}

/// `veritune samples`.
pub(crate) fn samples(args: SamplesArgs) -> CliResult {
    write_samples(&args.root, args.transfer, args.history)?;
    match args.nanodet {
        Some(weights) => write_photo_samples(&args.root, &weights),
        None => Ok(()),
    }
}

#[derive(Serialize)]
struct HistoryEntry {
    file: String,
    boxes: Vec<LabeledBox>,
}

/// Writes an image in the format its file name's extension says (PNG, JPEG).
fn write_image(path: &Path, image: &Image) -> CliResult {
    let bytes: Vec<u8> = image
        .pixels()
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    ::image::save_buffer(
        path,
        &bytes,
        image.width() as u32,
        image.height() as u32,
        ::image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| CliError::write(path, std::io::Error::other(e)))
}

/// The photographs (in `data/photos/`) the page opens as the user's images
/// when NanoDet is its model: everyday objects NanoDet finds, misses or
/// mistakes.
const SAMPLE_PHOTOS: [&str; 9] = [
    "dog.jpg",
    "horses.jpg",
    "person.jpg",
    "giraffe.jpg",
    "kite.jpg",
    "eagle.jpg",
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
];

/// The photographs of NanoDet's history library, none of them a sample photo.
const HISTORY_PHOTOS: [&str; 16] = [
    "camera.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "scream.jpg",
    "rocket.jpg",
    "clock_motion.png",
    "coins.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "moon.png",
    "ihc.png",
    "page.png",
    "text.png",
];

/// The score at which NanoDet's own predictions become the history photos'
/// boxes (the page's default display threshold).
const PSEUDO_LABEL_SCORE: f32 = 0.5;

/// NanoDet's boxes on the history photographs that were checked by hand and
/// found wrong, as (photograph, class): false detections are not what the
/// model knows, and as history labels they would pull against a user who
/// rejects the same mistake. These photographs keep their other boxes.
const FALSE_PSEUDO_LABELS: [(&str, &str); 3] = [
    ("coins.png", "clock"),
    ("hubble_deep_field.jpg", "person"),
    ("retina.jpg", "bed"),
];

/// What the page says about NanoDet's history library (`about` in its index).
#[derive(Serialize)]
struct PhotoHistoryIndex {
    about: String,
    samples: Vec<HistoryEntry>,
}

/// Writes `samples/photos/` (the sample photographs) and
/// `samples/photo-history/` (the history photographs with NanoDet's own
/// predictions at or above [`PSEUDO_LABEL_SCORE`] as their boxes, less
/// [`FALSE_PSEUDO_LABELS`]: no package holds photographs with human-drawn
/// COCO boxes).
fn write_photo_samples(root: &Path, weights: &Path) -> CliResult {
    let photos = data_dir().join("photos");
    let folders = [
        root.join("samples/photos"),
        root.join("samples/photo-history"),
    ];
    for folder in &folders {
        create_dir(folder)?;
    }
    for name in SAMPLE_PHOTOS {
        copy_photo(&photos.join(name), &folders[0].join(name))?;
    }
    write_json(&SAMPLE_PHOTOS, Some(&folders[0].join("index.json")))?;
    let decoded = HISTORY_PHOTOS
        .iter()
        .map(|name| copy_photo(&photos.join(name), &folders[1].join(name)))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&Image> = decoded.iter().collect();
    let (class_names, candidates) = with_any_detector!(&load_model(weights, &Device::flex())?, model => {
        (model.spec().class_names.clone(), all_candidates(model, &refs)?)
    });
    let samples = candidates
        .iter()
        .zip(HISTORY_PHOTOS)
        .map(|(candidates, file)| HistoryEntry {
            file: file.to_string(),
            boxes: shown_detections(candidates, PSEUDO_LABEL_SCORE, NMS_IOU)
                .iter()
                .filter(|d| !FALSE_PSEUDO_LABELS.contains(&(file, class_names[d.class].as_str())))
                .map(Detection::labeled)
                .collect(),
        })
        .collect::<Vec<HistoryEntry>>();
    write_coco_labels(
        &folders[1],
        &class_names,
        samples
            .iter()
            .zip(&decoded)
            .map(|(entry, image)| (entry.file.clone(), image, entry.boxes.clone())),
    )?;
    let index = PhotoHistoryIndex {
        about: format!(
            "photographs from scikit-image and Debian's darknet package; their boxes are NanoDet's own predictions at score {PSEUDO_LABEL_SCORE} or more, checked by hand and the false ones dropped (pseudo-labels: no package holds photographs with human-drawn boxes of the COCO classes), so they keep what NanoDet already does right rather than teach it anything"
        ),
        samples,
    };
    write_json(&index, Some(&folders[1].join("index.json")))?;
    eprintln!(
        "veritune: {} sample photographs and {} history photographs written under {}",
        SAMPLE_PHOTOS.len(),
        HISTORY_PHOTOS.len(),
        root.display()
    );
    Ok(())
}

/// Writes `labels.json` in `folder`: COCO labels of its images, given as
/// (file name, image, boxes).
fn write_coco_labels<'a>(
    folder: &Path,
    class_names: &[String],
    images: impl IntoIterator<Item = (String, &'a Image, Vec<LabeledBox>)>,
) -> CliResult {
    let labels = LabelSet {
        class_names: class_names.to_vec(),
        images: images
            .into_iter()
            .map(|(file_name, image, boxes)| ImageLabels {
                file_name,
                width: image.width() as u32,
                height: image.height() as u32,
                boxes,
            })
            .collect(),
    };
    let path = folder.join("labels.json");
    std::fs::write(&path, to_coco_json(&labels)).map_err(|e| CliError::write(&path, e))
}

/// The longest side of an image the page labels without scaling it down
/// (`MAX_SIDE` in www/image-list.js).
const PAGE_MAX_SIDE: usize = 1024;

/// Copies a photograph, or writes it scaled down to [`PAGE_MAX_SIDE`] when
/// it is larger, so that the page never has to; returns the image as written.
fn copy_photo(from: &Path, to: &Path) -> CliResult<Image> {
    let image = read_image(from).map_err(CliError::failed)?;
    let (w, h) = (image.width(), image.height());
    let longest = w.max(h);
    if longest <= PAGE_MAX_SIDE {
        std::fs::copy(from, to).map_err(|source| CliError::Copy {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            source,
        })?;
        return Ok(image);
    }
    let scaled = |side: usize| (side * PAGE_MAX_SIDE).div_ceil(longest).max(1);
    let image = image.resized(scaled(w), scaled(h));
    write_image(to, &image)?;
    Ok(image)
}

fn write_samples(root: &Path, transfer: usize, history: usize) -> CliResult {
    let generator = SceneGenerator::load(&data_dir()).map_err(CliError::failed)?;
    let size = veritune::scenes::DEFAULT_SIZE;
    let folders = [root.join("samples/transfer"), root.join("samples/history")];
    for folder in &folders {
        create_dir(folder)?;
    }
    // Held-out transfer scenes (never used for training) and the meta-model's own training scenes.
    let transfer_scenes = generator
        .scenes(Scenario::Transfer, Split::Test, transfer, 7, size)
        .map_err(CliError::failed)?;
    let mut names = Vec::new();
    let mut truth = Vec::new();
    for (i, scene) in transfer_scenes.iter().enumerate() {
        let name = format!("transfer-{i:02}.png");
        write_image(&folders[0].join(&name), &scene.image)?;
        truth.push((name.clone(), &scene.image, scene.boxes()));
        names.push(name);
    }
    write_json(&names, Some(&folders[0].join("index.json")))?;
    // Their true boxes, for a user who wants to try importing labels (and
    // for tests that script a careful user).
    write_coco_labels(&folders[0], &DIGIT_CLASSES.map(String::from), truth)?;
    let history_scenes = generator
        .scenes(Scenario::General, Split::Train, history, 0, size)
        .map_err(CliError::failed)?;
    let mut entries = Vec::new();
    for (i, scene) in history_scenes.iter().enumerate() {
        let file = format!("general-{i:02}.png");
        write_image(&folders[1].join(&file), &scene.image)?;
        entries.push(HistoryEntry {
            file,
            boxes: scene.boxes(),
        });
    }
    write_json(&entries, Some(&folders[1].join("index.json")))?;
    eprintln!(
        "veritune: {transfer} transfer and {history} history samples written under {}",
        root.display()
    );
    Ok(())
}
