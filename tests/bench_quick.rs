//! The quality pipeline on the committed meta-model and real scenes:
//! `veritune bench quality --quick` runs it end to end (simulated verdicts,
//! every mixing rule, mAP, the two-round history experiment, table, CSV and
//! plot), and verdicts are checked the same on an image and on its sample.

use std::process::Command;

use burn::tensor::Device;
use veritune::detector::{Detector, shown_detections};
use veritune::fidelity::{Asked, FidelityConfig};
use veritune::geometry::{BBox, LabeledBox};
use veritune::predict::{NMS_IOU, Reviewed, candidates, check_reviewed};
use veritune::sample::Sample;
use veritune::scenes::{DEFAULT_SIZE, Scenario, SceneGenerator, Split, data_dir};
use veritune::verdict::{ImageVerdicts, Judgement, ShownBox};
use veritune::weights::load_fcos;

/// Verdicts are checked after every epoch on the samples the session keeps
/// (the image stretched to the detector's input size) while the user gave
/// them on the image they saw: both give the same answer, the expected one.
#[test]
fn verdicts_are_checked_alike_on_an_image_and_on_its_sample() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/fcos-digits.bpk"
    ))
    .expect("the committed meta-model");
    let model = load_fcos(&bytes, &Device::flex()).expect("loads");
    let generator = SceneGenerator::load(&data_dir()).unwrap_or_else(|e| panic!("{e}"));
    let config = FidelityConfig::default();
    // A general scene where the meta-model shows at least two digits, seen
    // by the user at a size and aspect other than the detector's.
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

#[test]
fn quick_quality_benchmark_writes_every_result() {
    let output = std::env::temp_dir().join(format!("veritune-bench-quick-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_veritune"))
        .args(["bench", "quality", "--quick", "--output"])
        .arg(&output)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
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
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    for column in ["verdicts_honored", "history_agreement"] {
        let k = header
            .iter()
            .position(|h| *h == column)
            .unwrap_or_else(|| panic!("{column} missing from {header:?}"));
        for row in csv.lines().skip(1) {
            let value: f64 = row
                .split(',')
                .nth(k)
                .expect("a field")
                .parse()
                .expect("a number");
            assert!((0.0..=1.0).contains(&value), "{column} {value} in {row}");
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
