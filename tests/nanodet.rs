//! NanoDet-g imported from its TensorFlow.js files (`scripts/fetch-data` puts
//! them in `data/nanodet/`): the same files run in TensorFlow.js itself
//! (`tests/nanodet_tfjs.mjs`, Node with `@tensorflow/tfjs` from `npm ci`) and
//! in veritune give the same six outputs on real photographs; the import
//! works at 416 and 320 px; `veritune predict` finds the astronaut;
//! `veritune finetune` trains it.
//! Without the files, Node or the package every test fails saying which
//! script installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Tensor};
use common::cli::{text, veritune, workdir};
use common::parameters;
use veritune::dataset::read_image;
use veritune::detector::nanodet::{COCO_CLASSES, NanoDet, NanoDetConfig, NanoDetOutput};
use veritune::detector::{ChannelOrder, Detector, Preprocessing, input_batch};
use veritune::formats::coco::to_coco_json;
use veritune::formats::{ImageLabels, LabelSet};
use veritune::geometry::{BBox, LabeledBox};
use veritune::image::Image;
use veritune::scenes::data_dir;
use veritune::tfjs::GraphModel;
use veritune::weights::{AnyDetector, load_detector};

/// The photographs of the parity test and the class each shows: scikit-image's
/// and Debian darknet's.
const PHOTOS: [(&str, &str); 5] = [
    ("astronaut.png", "person"),
    ("coffee.png", "cup"),
    ("chelsea.png", "cat"),
    ("giraffe.jpg", "giraffe"),
    ("eagle.jpg", "bird"),
];

fn model_json() -> PathBuf {
    let path = data_dir().join("nanodet").join("nanodet.json");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-data",
        path.display()
    );
    path
}

fn photo(name: &str) -> Image {
    let path = data_dir().join("photos").join(name);
    read_image(&path).unwrap_or_else(|e| panic!("{e}: run scripts/fetch-data"))
}

fn imported(input_size: usize) -> NanoDet {
    let json = model_json();
    let graph = GraphModel::parse(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut data = Vec::new();
    for name in graph.weight_files() {
        data.extend(std::fs::read(json.with_file_name(name)).unwrap());
    }
    let convolutions = graph.convolutions(&data).unwrap();
    let config = NanoDetConfig::coco().with_input_size(input_size);
    NanoDet::from_tfjs(&config, &convolutions, &Device::flex()).unwrap()
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

/// The six outputs in the TensorFlow.js model's layout, under its names.
fn tfjs_outputs(output: &NanoDetOutput) -> Vec<(String, Vec<f32>)> {
    (0..3)
        .map(|l| (l, output.scores(l)))
        .chain((0..3).map(|l| (l + 3, output.distribution_logits(l))))
        .map(|(i, t)| {
            let name = if i == 0 {
                "Identity".to_string()
            } else {
                format!("Identity_{i}")
            };
            (name, values(t))
        })
        .collect()
}

/// Runs `tests/nanodet_tfjs.mjs` on `inputs`, failing with what to install
/// when Node or `@tensorflow/tfjs` is missing.
fn run_tfjs(json: &Path, inputs: &[PathBuf]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("node_modules/@tensorflow/tfjs/package.json")
            .is_file(),
        "@tensorflow/tfjs is not installed in node_modules: run scripts/node-deps (npm ci)"
    );
    let output = Command::new("node")
        .arg(root.join("tests/nanodet_tfjs.mjs"))
        .arg(json)
        .args(inputs)
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): install Node.js 20 or later, then run scripts/node-deps")
        });
    assert!(
        output.status.success(),
        "tests/nanodet_tfjs.mjs failed: {}",
        text(&output.stderr)
    );
    println!("{}", text(&output.stdout));
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn outputs_match_tensorflow_js_on_photographs() {
    let model = imported(416);
    let dir = workdir("nanodet-parity");
    let device = Device::flex();
    let mut inputs = Vec::new();
    let mut ours = Vec::new();
    for (name, _) in PHOTOS {
        let input = input_batch(model.spec(), &[&photo(name)], &device);
        let path = dir.join(format!("{name}.f32"));
        let bytes: Vec<u8> = values(input.clone())
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(&path, bytes).unwrap();
        inputs.push(path);
        ours.push(tfjs_outputs(&model.forward(input)));
    }
    run_tfjs(&model_json(), &inputs);
    let mut worst = 0.0f32;
    for (input, outputs) in inputs.iter().zip(&ours) {
        for (name, values) in outputs {
            let theirs = read_f32(&PathBuf::from(format!("{}.{name}.f32", input.display())));
            assert_eq!(theirs.len(), values.len(), "{name}");
            let diff = values
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            println!("{}: {name} max abs difference {diff:.2e}", input.display());
            worst = worst.max(diff);
        }
    }
    assert!(worst <= 1e-3, "largest difference {worst}");
}

/// Mean over the photographs of the best score of the class each shows.
fn mean_confidence(model: &NanoDet, preprocessing: &Preprocessing) -> f32 {
    let device = Device::flex();
    let mut spec = model.spec().clone();
    spec.preprocessing = preprocessing.clone();
    let names = &spec.class_names;
    let mut total = 0.0;
    for (photo_name, class) in PHOTOS {
        let class = names.iter().position(|n| n == class).unwrap();
        let input = input_batch(&spec, &[&photo(photo_name)], &device);
        let scores = values(model.predictions(model.forward(input)));
        let best = scores
            .chunks_exact(4 + names.len())
            .map(|row| row[4 + class])
            .fold(0.0f32, f32::max);
        println!("{photo_name}: {} {best:.3}", names[class]);
        total += best;
    }
    total / PHOTOS.len() as f32
}

#[test]
fn nanodet_normalisation_scores_the_photographs_better_than_rgb_over_255() {
    let model = imported(416);
    let chosen = model.spec().preprocessing.clone();
    assert_eq!(chosen.channel_order, ChannelOrder::Bgr);
    let human = Preprocessing {
        mean: [0.0; 3],
        std: [1.0; 3],
        channel_order: ChannelOrder::Rgb,
    };
    let ours = mean_confidence(&model, &chosen);
    let theirs = mean_confidence(&model, &human);
    println!("mean confidence: BGR mean/std {ours:.3}, RGB / 255 {theirs:.3}");
    assert!(ours > theirs, "{ours} vs {theirs}");
}

#[test]
fn the_import_runs_at_320_pixels() {
    let model = imported(320);
    let device = Device::flex();
    let input = input_batch(model.spec(), &[&photo("astronaut.png")], &device);
    let output = model.forward(input);
    let sides: Vec<[usize; 4]> = output.levels.iter().map(|l| l.dims()).collect();
    assert_eq!(
        sides,
        vec![[1, 124, 40, 40], [1, 124, 20, 20], [1, 124, 10, 10]]
    );
    let predictions = values(model.predictions(output));
    let person = predictions
        .chunks_exact(4 + model.spec().num_classes())
        .map(|row| row[4])
        .fold(0.0f32, f32::max);
    assert!(person > 0.5, "best person score {person}");
}

/// Imports NanoDet with `veritune import nanodet` into `dir`, with `args`.
fn import(dir: &Path, args: &[&str]) -> PathBuf {
    let weights = dir.join("nanodet.bpk");
    let json = model_json();
    let mut all = vec![
        "import",
        "nanodet",
        "--json",
        json.to_str().unwrap(),
        "--output",
        weights.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = veritune(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    weights
}

fn nanodet_of(weights: &Path) -> NanoDet {
    match load_detector(&std::fs::read(weights).unwrap(), &Device::flex()).unwrap() {
        AnyDetector::NanoDet(model) => *model,
        AnyDetector::Fcos(_) => panic!("{} holds the small detector", weights.display()),
    }
}

#[test]
fn finetuning_at_320_trains_the_head_and_keeps_a_frozen_backbone() {
    let dir = workdir("nanodet-finetune");
    let weights = import(&dir, &["--input-size", "320"]);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    // The astronaut (512 x 512) and the coffee cup (600 x 400), as NanoDet sees them.
    let labelled = [
        (
            "astronaut.png",
            512,
            512,
            BBox::new(14.0, 14.0, 364.0, 508.0),
            0,
        ),
        (
            "coffee.png",
            600,
            400,
            BBox::new(146.0, 11.0, 425.0, 398.0),
            41,
        ),
    ];
    let mut labels = Vec::new();
    for (name, width, height, bbox, class) in labelled {
        assert_eq!(COCO_CLASSES[class], ["person", "cup"][labels.len()]);
        std::fs::copy(data_dir().join("photos").join(name), images.join(name)).unwrap();
        labels.push(ImageLabels {
            file_name: name.into(),
            width,
            height,
            boxes: vec![LabeledBox { bbox, class }],
        });
    }
    let annotations = dir.join("annotations.json");
    let set = LabelSet {
        class_names: COCO_CLASSES.iter().map(|c| c.to_string()).collect(),
        images: labels,
    };
    std::fs::write(&annotations, to_coco_json(&set)).unwrap();
    let tuned = dir.join("tuned.bpk");
    let records = dir.join("records.json");
    let out = veritune(&[
        "finetune",
        "--model",
        weights.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--annotations",
        annotations.to_str().unwrap(),
        "--rule",
        "transfer-only",
        "--freeze-backbone",
        "--epochs",
        "1",
        "--batch-size",
        "1",
        "--learning-rate",
        "1e-4",
        "--output",
        tuned.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records).unwrap()).unwrap();
    let records = records["steps"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    for record in records {
        println!("step {}: loss {}", record["step"], record["transfer_loss"]);
        assert!(record["transfer_loss"].as_f64().unwrap().is_finite());
        assert!(record["skipped"].is_null(), "{record}");
    }
    let tuned = nanodet_of(&tuned);
    assert!(tuned.config().freeze_backbone);
    let (before, after) = (parameters(&nanodet_of(&weights)), parameters(&tuned));
    let changed = |prefix: &str| {
        before
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .any(|(path, values)| &after[path] != values)
    };
    assert!(changed("head.") && changed("neck."));
    assert!(!changed("backbone."));
}

#[test]
fn predict_finds_the_astronaut() {
    let dir = workdir("nanodet-predict");
    let weights = import(&dir, &[]);
    let astronaut = data_dir().join("photos/astronaut.png");
    let out = veritune(&[
        "predict",
        "--model",
        weights.to_str().unwrap(),
        astronaut.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let detections = report[0]["detections"].as_array().unwrap();
    println!("{detections:?}");
    let person = detections
        .iter()
        .find(|d| d["class_name"] == "person")
        .expect("a person above the threshold");
    // The astronaut fills most of the 512 x 512 photograph's left and middle.
    let width = person["x1"].as_f64().unwrap() - person["x0"].as_f64().unwrap();
    let height = person["y1"].as_f64().unwrap() - person["y0"].as_f64().unwrap();
    assert!(width > 200.0 && height > 300.0, "{person}");
}

#[test]
fn a_graph_of_another_model_is_refused_with_a_sentence() {
    let dir = workdir("nanodet-wrong");
    let json = dir.join("model.json");
    std::fs::write(
        &json,
        r#"{"format": "graph-model", "modelTopology": {"node": []}, "weightsManifest": [{"paths": [], "weights": []}]}"#,
    )
    .unwrap();
    let out = veritune(&[
        "import",
        "nanodet",
        "--json",
        json.to_str().unwrap(),
        "--output",
        dir.join("x.bpk").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let message = text(&out.stderr);
    assert!(message.contains("0 convolutions"), "{message}");
    assert!(!dir.join("x.bpk").exists());
}
