//! The quality pipeline on the committed meta-model and real scenes:
//! `veritune bench quality --quick` runs it end to end (simulated verdicts,
//! every mixing rule, mAP, the two-round history experiment, table, CSV and
//! plot), verdicts are checked the same on an image and on its sample, and
//! gradient mixing forgets less than plain fine-tuning.

use std::process::Command;

use burn::tensor::Device;
use veritune::benchmark::quality::parse_csv;
use veritune::detector::fcos::Fcos;
use veritune::detector::{Detector, shown_detections};
use veritune::fidelity::{Asked, FidelityConfig};
use veritune::geometry::{BBox, Detection, LabeledBox};
use veritune::image::Image;
use veritune::mixing::MixingRule;
use veritune::predict::{NMS_IOU, Reviewed, boxes_kept, candidates, check_reviewed};
use veritune::sample::Sample;
use veritune::scenes::{DEFAULT_SIZE, Scenario, SceneGenerator, Split, data_dir};
use veritune::verdict::{ImageVerdicts, Judgement, ShownBox};
use veritune::weights::load_fcos;

/// The committed meta-model and a general scene where it shows at least two
/// digits, seen by the user at 300x200 (a size and aspect other than the
/// detector's), with the boxes it shows there.
fn meta_model_and_scene(config: &FidelityConfig) -> (Fcos, Image, Vec<Detection>) {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/fcos-digits.bpk"
    ))
    .expect("the committed meta-model");
    let model = load_fcos(&bytes, &Device::flex()).expect("loads");
    let generator = SceneGenerator::load(&data_dir()).unwrap_or_else(|e| panic!("{e}"));
    let (image, shown) = (0..20)
        .find_map(|index| {
            let scene = generator
                .scene(Scenario::General, Split::Test, 3, index, DEFAULT_SIZE)
                .expect("a scene");
            let image = scene.image.resized(300, 200);
            let found = pollster::block_on(candidates(&model, &[&image], 1)).expect("predicts");
            let shown = shown_detections(&found[0], config.score_threshold, NMS_IOU);
            (shown.len() >= 2).then_some((image, shown))
        })
        .expect("a scene with two digits shown");
    (model, image, shown)
}

/// History agreement counts the library's boxes the model still shows, image
/// by image; an image without boxes (a background, which `boxes_kept` does
/// not run the model on) counts for nothing and shifts nothing.
#[test]
fn history_agreement_counts_the_boxes_still_shown() {
    let config = FidelityConfig::default();
    let (model, image, shown) = meta_model_and_scene(&config);
    let mut labels: Vec<LabeledBox> = shown
        .iter()
        .map(|d| LabeledBox {
            bbox: d.bbox,
            class: d.class,
        })
        .collect();
    // A box where the scene has no digit: not shown.
    labels.push(LabeledBox {
        bbox: BBox::new(0.0, 0.0, 12.0, 12.0),
        class: 3,
    });
    let background = Image::filled(300, 200, [0.5, 0.5, 0.5]);
    let kept = pollster::block_on(boxes_kept(
        &model,
        &[&background, &image],
        &[vec![], labels],
        &config,
        8,
    ))
    .expect("runs");
    assert_eq!((kept.passed, kept.total), (shown.len(), shown.len() + 1));
}

/// Verdicts are checked after every epoch on the samples the session keeps
/// (the image stretched to the detector's input size) while the user gave
/// them on the image they saw: both give the same answer, the expected one.
#[test]
fn verdicts_are_checked_alike_on_an_image_and_on_its_sample() {
    let config = FidelityConfig::default();
    let (model, image, shown) = meta_model_and_scene(&config);
    // The first box rejected, the others confirmed, and a digit drawn in a
    // corner where there is none.
    let verdicts = ImageVerdicts {
        shown: shown
            .iter()
            .enumerate()
            .map(|(k, d)| ShownBox {
                detection: *d,
                judgement: Some(if k == 0 {
                    Judgement::Rejected
                } else {
                    Judgement::Confirmed
                }),
            })
            .collect(),
        drawn: vec![LabeledBox {
            bbox: BBox::new(0.0, 0.0, 12.0, 12.0),
            class: 3,
        }],
        reviewed_classes: None,
    };
    let sample = Sample::from_ground_truth(&image, &[], model.spec());
    assert_ne!(sample.image.width(), image.width());
    let check = |on| {
        let reviewed = Reviewed {
            image: on,
            verdicts: &verdicts,
            size: [300, 200],
        };
        pollster::block_on(check_reviewed(&model, &[reviewed], &config, 8)).expect("checks")
    };
    let on_image = check(&image);
    assert_eq!(on_image, check(&sample.image));
    let asked: Vec<(Asked, bool)> = on_image[0].iter().map(|c| (c.asked, c.honored)).collect();
    let mut expected = vec![(Asked::Rejected, false)];
    expected.extend((1..shown.len()).map(|_| (Asked::Confirmed, true)));
    expected.push((Asked::Drawn, false));
    assert_eq!(asked, expected);
}

/// Runs `veritune bench quality --quick` with `settings` into a fresh folder
/// named after `name`; returns that folder.
fn quick_quality(name: &str, settings: &[&str]) -> std::path::PathBuf {
    let output = std::env::temp_dir().join(format!("veritune-{name}-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_veritune"))
        .args(["bench", "quality", "--quick"])
        .args(settings)
        .arg("--output")
        .arg(&output)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    output
}

#[test]
fn quick_quality_benchmark_writes_every_result() {
    let output = quick_quality("bench-quick", &[]);
    let table = std::fs::read_to_string(output.join("quality.md")).expect("table");
    for rule in [
        "symmetric",
        "transfer-only",
        "replay",
        "agem",
        "pcgrad",
        "smooth",
    ] {
        assert!(
            table.contains(&format!("| 5 | {rule} |")),
            "{rule} missing from\n{table}"
        );
    }
    let csv = std::fs::read_to_string(output.join("quality.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 1 + 6);
    // The fidelity columns: fractions of the verdicts honored and of the
    // history library's boxes still shown, measured for every run.
    let header = csv.lines().next().expect("header");
    for name in ["verdicts_honored", "history_agreement"] {
        assert!(
            header.split(',').any(|h| h == name),
            "{name} missing from {header}"
        );
    }
    for row in parse_csv(&csv).expect("rows") {
        for value in [row.verdicts_honored, row.history_agreement] {
            assert!((0.0..=1.0).contains(&value), "{row:?}");
        }
    }
    assert!(
        table.contains("| verdicts honored | history kept |"),
        "{table}"
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(output.join("config.json")).expect("the settings"),
    )
    .expect("json");
    assert_eq!(config["training"]["schedule"], "constant", "{config}");
    let svg = std::fs::read_to_string(output.join("quality.svg")).expect("plot");
    assert!(svg.starts_with("<svg") && svg.contains("transfer mAP@0.5"));
    let rounds = std::fs::read_to_string(output.join("rounds.md")).expect("rounds table");
    assert!(rounds.contains("gradientbased") && rounds.contains("reservoir"));
    // The meta-model detects general digits: the pipeline measured something real.
    let baseline: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(output.join("baseline.json")).expect("baseline"),
    )
    .expect("json");
    assert!(
        baseline["general_map"].as_f64().expect("general mAP") > 0.5,
        "{baseline}"
    );
    std::fs::remove_dir_all(&output).expect("clean up");
}

/// Epochs and learning rate long enough for plain fine-tuning to forget the
/// general scenes measurably (`--quick`'s own run is too short to tell the
/// rules apart).
const FORGETTING_EPOCHS: &str = "10";
const FORGETTING_RATE: &str = "2e-3";

/// METHOD.md's promise, in mAP on real scenes: fine-tuning on the transfer
/// scenes forgets the general ones, the symmetric mixing rule forgets less
/// because it meets conflicting gradients and mixes them, and its result is
/// not plain replay's.
#[test]
fn gradient_mixing_forgets_less_than_plain_fine_tuning() {
    let output = quick_quality(
        "forgetting",
        &[
            "--rules",
            "symmetric,transfer-only,replay",
            "--epochs",
            FORGETTING_EPOCHS,
            "--learning-rate",
            FORGETTING_RATE,
            "--rounds-n",
            "0",
        ],
    );
    let csv = std::fs::read_to_string(output.join("quality.csv")).expect("csv");
    let rows = parse_csv(&csv).expect("rows");
    let of = |rule: MixingRule| {
        rows.iter()
            .find(|r| r.rule == rule)
            .unwrap_or_else(|| panic!("no {rule} row in\n{csv}"))
    };
    let plain = of(MixingRule::TransferOnly);
    let mixed = of(MixingRule::Symmetric);
    let replay = of(MixingRule::Replay);
    assert!(
        plain.forgetting > 0.0,
        "plain fine-tuning forgets nothing:\n{csv}"
    );
    assert!(
        mixed.forgetting < plain.forgetting,
        "symmetric {} against plain {}:\n{csv}",
        mixed.forgetting,
        plain.forgetting
    );
    assert!(mixed.conflicting_steps > 0, "{csv}");
    assert_ne!(
        (mixed.general_map, mixed.transfer_map),
        (replay.general_map, replay.transfer_map),
        "symmetric mixing trained exactly as replay:\n{csv}"
    );
    std::fs::remove_dir_all(&output).expect("clean up");
}

/// The PyTorch quality peer's exchange: `--peer-data` writes each run's
/// verified scenes, their boxes and the meta-model; weights handed back
/// unchanged as the peer's are measured by `--peer-results` exactly as the
/// meta-model (no forgetting, the same transfer mAP as its baseline).
#[test]
fn peer_runs_handed_back_unchanged_measure_as_the_meta_model() {
    let dir = std::env::temp_dir().join(format!("veritune-peer-data-{}", std::process::id()));
    quick_quality(
        "peer-write",
        &["--sizes", "2", "--peer-data", dir.to_str().unwrap()],
    );
    let run = dir.join("n2-s0");
    let targets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("targets.json")).expect("targets")).unwrap();
    assert_eq!(targets.as_array().map(Vec::len), Some(2), "{targets}");
    let images = std::fs::read(run.join("images.safetensors")).expect("images");
    let images = safetensors::SafeTensors::deserialize(&images).expect("a safetensors file");
    assert_eq!(
        images.tensor("images").expect("images").shape(),
        [2, 3, DEFAULT_SIZE, DEFAULT_SIZE]
    );
    std::fs::copy(
        dir.join("weights.safetensors"),
        run.join("peer.safetensors"),
    )
    .unwrap();
    std::fs::write(run.join("peer.json"), r#"{"recipe": "unchanged"}"#).unwrap();

    let output = quick_quality("peer-read", &["--peer-results", dir.to_str().unwrap()]);
    let csv = std::fs::read_to_string(output.join("peer-quality.csv")).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "n,seed,recipe,transfer_map,general_map,forgetting"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(row[..3], ["2", "0", "unchanged"], "{csv}");
    assert_eq!(row[5], "0.00000", "{csv}");
    let baseline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(output.join("baseline.json")).unwrap()).unwrap();
    let transfer: f64 = row[3].parse().unwrap();
    assert!(
        (transfer - baseline["transfer_map"].as_f64().unwrap()).abs() < 1e-5,
        "{csv} against {baseline}"
    );
    for folder in [dir, output] {
        std::fs::remove_dir_all(folder).expect("clean up");
    }
}
