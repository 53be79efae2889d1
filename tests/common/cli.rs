//! Running the built `veritune` binary as a person would, in a folder of its
//! own, with synthetic images and annotations.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::SeedableRng;
use rand::rngs::StdRng;
use veritune::formats::coco::to_coco_json;
use veritune::formats::{ImageLabels, LabelSet};

use super::{SIZE, Scene, scene};

/// Runs `veritune` with `args`.
pub fn veritune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veritune"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// An empty folder for the test `name`.
pub fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("veritune-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `n` synthetic scenes as PNG files plus their COCO annotations.
pub fn write_set(dir: &Path, kind: Scene, n: usize, seed: u64) -> PathBuf {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = Vec::new();
    for i in 0..n {
        let (image, target) = scene(kind, &mut rng);
        let bytes: Vec<u8> = image
            .pixels()
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8)
            .collect();
        let file_name = format!("scène {i}.png");
        ::image::save_buffer(
            dir.join(&file_name),
            &bytes,
            SIZE as u32,
            SIZE as u32,
            ::image::ExtendedColorType::Rgb8,
        )
        .expect("png");
        images.push(ImageLabels {
            file_name,
            width: SIZE as u32,
            height: SIZE as u32,
            boxes: target.positives.iter().map(|p| p.label).collect(),
        });
    }
    let path = dir.join("annotations.json");
    let dataset = LabelSet {
        class_names: vec!["square".into(), "ring".into()],
        images,
    };
    std::fs::write(&path, to_coco_json(&dataset)).expect("coco");
    path
}

/// Creates an untrained two-class 64 px model in `dir` with `veritune init`.
pub fn init_model(dir: &Path) -> PathBuf {
    init_model_as(dir, "meta.bpk")
}

/// Creates an untrained two-class 64 px model `dir/file_name` with
/// `veritune init` (safetensors for a `.safetensors` name, else burnpack).
pub fn init_model_as(dir: &Path, file_name: &str) -> PathBuf {
    let model = dir.join(file_name);
    let out = veritune(&[
        "init",
        "--classes",
        "square,ring",
        "--input-size",
        "64",
        "--output",
        model.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    model
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command expected to fail and returns its one-line message.
pub fn failure(args: &[&str]) -> String {
    let out = veritune(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let message = text(&out.stderr);
    assert_eq!(message.trim_end().lines().count(), 1, "one line: {message}");
    assert!(!message.contains("panicked"), "{message}");
    message
}
