//! Bad input to the `veritune` binary: each case exits non-zero with one
//! line naming the file and what is wrong in it, and leaves no output file
//! behind, half-written or otherwise; an existing output stays as it was.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use common::cli::{failure, init_model, text, veritune, workdir, write_set};
use common::{Scene, tiny_config, tiny_detector};
use veritune::formats::coco::to_coco_json;
use veritune::formats::{ImageLabels, LabelSet};
use veritune::geometry::{BBox, LabeledBox};
use veritune::verdict::ImageVerdicts;
use veritune::weights::{
    ARCHITECTURE_KEY, CONFIG_KEY, FCOS_SMALL, FORMAT_KEY, WeightsFormat, save_fcos, to_burnpack,
    to_safetensors,
};

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn encoded(width: u32, height: u32, format: ::image::ImageFormat) -> Vec<u8> {
    let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 253) as u8).collect();
    let image = ::image::RgbImage::from_raw(width, height, pixels).expect("sized");
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encodes");
    bytes.into_inner()
}

/// The files in `dir` whose names end in `.partial` (temporary outputs).
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

/// Runs `predict` on `image` and returns its failure message.
fn predict_failure(model: &Path, image: &Path) -> String {
    failure(&["predict", "--model", path(model), path(image)])
}

#[test]
fn unusable_images_are_named_with_what_is_wrong() {
    let dir = workdir("bad-images");
    let model = init_model(&dir);
    let png = encoded(40, 30, ::image::ImageFormat::Png);
    let jpeg = encoded(40, 30, ::image::ImageFormat::Jpeg);
    let mut huge_jpeg = encoded(16, 16, ::image::ImageFormat::Jpeg);
    let sof = huge_jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("SOF0");
    huge_jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF; 4]);
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "cut.png",
            png[..png.len() / 2].to_vec(),
            "damaged or truncated",
        ),
        (
            "cut.jpg",
            jpeg[..jpeg.len() - 30].to_vec(),
            "damaged or truncated",
        ),
        ("notes.jpg", b"shopping list".to_vec(), "not an image"),
        (
            "anim.png",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            "GIF image",
        ),
        ("empty.png", Vec::new(), "not an image"),
        ("bomb.jpg", huge_jpeg, "65535x65535"),
    ];
    for (name, bytes, expected) in cases {
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        let message = predict_failure(&model, &file);
        assert!(
            message.contains(name) && message.contains(expected),
            "{name}: {message}"
        );
    }
    let message = predict_failure(&model, &dir.join("absent.png"));
    assert!(message.contains("absent.png"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_huge_image_is_downscaled_and_its_boxes_reported_in_its_own_pixels() {
    let dir = workdir("huge-image");
    let model = init_model(&dir);
    let wide = dir.join("panorama.png");
    std::fs::write(&wide, encoded(6000, 200, ::image::ImageFormat::Png)).unwrap();
    let out = veritune(&[
        "predict",
        "--model",
        path(&model),
        path(&wide),
        "--threshold",
        "0",
        "--candidates",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (json[0]["width"].as_u64(), json[0]["height"].as_u64()),
        (Some(6000), Some(200))
    );
    // Candidates (if the untrained model has any above 0.05) are in the
    // file's pixels, beyond the 4096 px it was decoded at.
    for candidate in json[0]["candidates"].as_array().expect("candidates") {
        let right = candidate["x1"].as_f64().expect("x1");
        assert!(right <= 6000.5, "{candidate}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `name`: a COCO document over `scène 0.png` (`width` x 64) with
/// one annotation of `bbox`.
fn coco_with(dir: &Path, name: &str, width: u32, bbox: &str) -> PathBuf {
    let json = format!(
        r#"{{"images": [{{"id": 1, "file_name": "scène 0.png", "width": {width}, "height": 64}}],
            "annotations": [{{"id": 17, "image_id": 1, "category_id": 1, "bbox": {bbox}}}],
            "categories": [{{"id": 1, "name": "square"}}]}}"#
    );
    let file = dir.join(name);
    std::fs::write(&file, json).unwrap();
    file
}

#[test]
fn bad_annotations_name_the_file_and_the_annotation() {
    let dir = workdir("bad-coco");
    let model = init_model(&dir);
    write_set(&dir, Scene::New, 1, 1);
    let output = dir.join("adapted.bpk");
    let finetune = |annotations: &Path| {
        failure(&[
            "finetune",
            "--model",
            path(&model),
            "--images",
            path(&dir),
            "--annotations",
            path(annotations),
            "--epochs",
            "1",
            "--output",
            path(&output),
        ])
    };
    let cases = [
        (
            "zero.json",
            64,
            "[10, 10, 0, 5]",
            "annotation 17",
            "zero area",
        ),
        (
            "negative.json",
            64,
            "[10, 10, -3, 5]",
            "annotation 17",
            "negative width",
        ),
        (
            "outside.json",
            64,
            "[70, 10, 5, 5]",
            "annotation 17",
            "outside its 64x64 image",
        ),
        ("short.json", 64, "[1, 2, 3]", "line", "bbox"),
        ("size.json", 640, "[1, 2, 3, 4]", "'scène 0.png'", "640x64"),
    ];
    for (name, width, bbox, what, problem) in cases {
        let message = finetune(&coco_with(&dir, name, width, bbox));
        assert!(
            message.contains(name) && message.contains(what) && message.contains(problem),
            "{message}"
        );
        assert!(!output.exists(), "no output after a failure");
    }
    let truncated = dir.join("cut.json");
    let full = std::fs::read_to_string(dir.join("annotations.json")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let message = finetune(&truncated);
    assert!(
        message.contains("cut.json") && message.contains("line"),
        "{message}"
    );
    // Two images of one file name: verdicts and the library name images by file.
    let twice = dir.join("twice.json");
    std::fs::write(
        &twice,
        r#"{"images": [{"id": 1, "file_name": "scène 0.png", "width": 64, "height": 64},
                       {"id": 2, "file_name": "scène 0.png", "width": 64, "height": 64}],
            "categories": [{"id": 1, "name": "square"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]}]}"#,
    )
    .unwrap();
    let message = finetune(&twice);
    assert!(
        message.contains("twice.json") && message.contains("two images are named 'scène 0.png'"),
        "{message}"
    );
    assert!(!output.exists(), "no output after a failure");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_verdicts_name_the_file_the_image_and_the_field() {
    let dir = workdir("bad-verdicts");
    let model = init_model(&dir);
    let annotations = write_set(&dir, Scene::New, 1, 2);
    let output = dir.join("adapted.bpk");
    std::fs::write(&output, b"the previous weights").unwrap();
    let verdicts_file = dir.join("verdicts.json");
    let run = |verdicts: &str| {
        std::fs::write(&verdicts_file, verdicts).unwrap();
        failure(&[
            "finetune",
            "--model",
            path(&model),
            "--images",
            path(&dir),
            "--annotations",
            path(&annotations),
            "--verdicts",
            path(&verdicts_file),
            "--epochs",
            "1",
            "--output",
            path(&output),
        ])
    };
    let drawn = |x0: f32, x1: f32, class: usize| {
        let verdicts = BTreeMap::from([(
            "scène 0.png".to_string(),
            ImageVerdicts {
                shown: Vec::new(),
                drawn: vec![LabeledBox {
                    bbox: BBox::new(x0, 4.0, x1, 20.0),
                    class,
                }],
                reviewed_classes: None,
            },
        )]);
        serde_json::to_string(&verdicts).unwrap()
    };
    let image = "image 'scène 0.png'";
    let cases = [
        (
            drawn(70.0, 90.0, 0),
            vec![
                image,
                "`drawn[0].bbox` [70, 4, 90, 20] lies outside the 64x64 image",
            ],
        ),
        (
            drawn(10.0, 10.0, 0),
            vec![image, "`drawn[0].bbox` [10, 4, 10, 20] has no area"],
        ),
        (
            drawn(4.0, 20.0, 5),
            vec![
                image,
                "`drawn[0].bbox` has class 5, but the model has 2 classes",
            ],
        ),
        (
            r#"{"scène 0.png": {"shown": [], "drawn": [{"bbox": 3}]}}"#.to_string(),
            vec!["not a valid verdicts file", "line 1 column"],
        ),
    ];
    for (verdicts, expected) in &cases {
        let message = run(verdicts);
        assert!(message.contains("verdicts.json"), "{message}");
        for part in expected {
            assert!(message.contains(part), "{part}: {message}");
        }
        assert_eq!(std::fs::read(&output).unwrap(), b"the previous weights");
    }
    assert!(partial_files(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tiny detector's weights with `metadata` instead of what `save_fcos` writes.
fn weights_with(metadata: &[(&str, &str)]) -> Vec<u8> {
    let metadata: BTreeMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pollster::block_on(to_burnpack(&tiny_detector(&Device::flex()), &metadata)).expect("save")
}

#[test]
fn bad_weights_are_refused_before_anything_is_written() {
    let dir = workdir("bad-weights");
    let annotations = write_set(&dir, Scene::New, 1, 3);
    let good = pollster::block_on(save_fcos(
        &tiny_detector(&Device::flex()),
        WeightsFormat::Burnpack,
    ))
    .expect("save");
    let config = serde_json::to_string(&tiny_config()).unwrap();
    let mut newer_container = good.clone();
    newer_container[4..6].copy_from_slice(&7u16.to_le_bytes());
    let cases: [(&str, Vec<u8>, &str); 8] = [
        ("half.bpk", good[..good.len() / 2].to_vec(), "damaged"),
        ("header.bpk", good[..7].to_vec(), "truncated"),
        ("meta.bpk", good[..100].to_vec(), "truncated"),
        (
            "newer.bpk",
            weights_with(&[
                (FORMAT_KEY, "2"),
                (ARCHITECTURE_KEY, FCOS_SMALL),
                (CONFIG_KEY, &config),
            ]),
            "made by a newer veritune",
        ),
        ("container.bpk", newer_container, "made by a newer veritune"),
        (
            "yolo.bpk",
            weights_with(&[(ARCHITECTURE_KEY, "yolo-huge"), (CONFIG_KEY, &config)]),
            "'yolo-huge' detector",
        ),
        (
            "tensors.safetensors",
            pollster::block_on(to_safetensors(
                &tiny_detector(&Device::flex()),
                &BTreeMap::new(),
            ))
            .expect("safetensors"),
            "not written by veritune",
        ),
        (
            "wide.bpk",
            weights_with(&[
                (ARCHITECTURE_KEY, FCOS_SMALL),
                (
                    CONFIG_KEY,
                    &serde_json::to_string(&tiny_config().with_width(1 << 20)).unwrap(),
                ),
            ]),
            "`width` is 1048576",
        ),
    ];
    let output = dir.join("adapted.bpk");
    for (name, bytes, expected) in cases {
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        let message = failure(&[
            "finetune",
            "--model",
            path(&file),
            "--images",
            path(&dir),
            "--annotations",
            path(&annotations),
            "--output",
            path(&output),
        ]);
        assert!(
            message.contains(name) && message.contains(expected),
            "{name}: {message}"
        );
        assert!(!output.exists(), "{name}: no output after a failure");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weights_of_a_model_with_other_classes_are_named_as_such() {
    let dir = workdir("other-classes");
    let model = init_model(&dir);
    let json = to_coco_json(&LabelSet {
        class_names: vec!["a".into(), "b".into(), "c".into()],
        images: vec![ImageLabels {
            file_name: "scène 0.png".into(),
            width: 64,
            height: 64,
            boxes: Vec::new(),
        }],
    });
    write_set(&dir, Scene::New, 1, 4);
    let three = dir.join("three.json");
    std::fs::write(&three, json).unwrap();
    let message = failure(&[
        "eval",
        "--model",
        path(&model),
        "--images",
        path(&dir),
        "--annotations",
        path(&three),
    ]);
    assert!(
        message.contains(
            "three.json has categories the model does not know (a, b, c); its classes are square, ring"
        ),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nonsense_settings_are_refused() {
    let dir = workdir("settings");
    let model = init_model(&dir);
    let annotations = write_set(&dir, Scene::New, 1, 5);
    for (flag, value) in [
        ("--learning-rate", "NaN"),
        ("--learning-rate", "0"),
        ("--threshold", "2"),
    ] {
        let message = failure(&[
            "finetune",
            "--model",
            path(&model),
            "--images",
            path(&dir),
            "--annotations",
            path(&annotations),
            "--output",
            path(&dir.join("out.bpk")),
            flag,
            value,
        ]);
        assert!(message.contains(flag), "{message}");
    }
    let message = failure(&[
        "init",
        "--classes",
        "a",
        "--input-size",
        "4096",
        "--output",
        path(&dir.join("big.bpk")),
    ]);
    assert!(message.contains("`input_size` is 4096"), "{message}");
    let pretrain = |extra: &[&str]| {
        let output = dir.join("pretrained.bpk");
        let manifest = dir.join("pretrained.json");
        let mut args = vec![
            "pretrain",
            "--steps",
            "1",
            "--output",
            path(&output),
            "--manifest",
            path(&manifest),
        ];
        args.extend_from_slice(extra);
        let message = failure(&args);
        assert!(!output.exists() && !manifest.exists(), "{message}");
        message
    };
    let message = pretrain(&["--broad-share", "1.5"]);
    assert!(message.contains("--broad-share is 1.5"), "{message}");
    let message = pretrain(&["--init", path(&model)]);
    assert!(
        message.contains("takes 64-pixel inputs, pretraining makes 256-pixel scenes"),
        "{message}"
    );
    let message = pretrain(&["--width", "0"]);
    assert!(
        message.contains("--width: `width` is 0 but must be between 1 and 128"),
        "{message}"
    );
    let message = pretrain(&["--width", "24", "--init", path(&model)]);
    assert!(
        message.contains("keeps its own: leave --width out"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_finite_steps_are_reported_and_training_goes_on() {
    let dir = workdir("non-finite");
    let model = init_model(&dir);
    let annotations = write_set(&dir, Scene::New, 4, 6);
    let output = dir.join("adapted.bpk");
    let records = dir.join("steps.json");
    // A learning rate this large throws the weights so far that the next
    // losses overflow: those steps are skipped and said so.
    let out = veritune(&[
        "finetune",
        "--model",
        path(&model),
        "--images",
        path(&dir),
        "--annotations",
        path(&annotations),
        "--rule",
        "transfer-only",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--learning-rate",
        "1e30",
        "--output",
        path(&output),
        "--records",
        path(&records),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped: the loss on the transfer batch is not a finite number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("steps had a non-finite loss or gradient"),
        "{stderr}"
    );
    let steps: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records).unwrap()).unwrap();
    let steps = steps["steps"].as_array().expect("records");
    assert_eq!(steps.len(), 4);
    assert!(steps[0]["skipped"].is_null());
    assert!(
        steps.iter().any(|s| s["skipped"] == "transfer_loss"),
        "{steps:?}"
    );
    assert!(output.is_file());
    assert!(partial_files(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
