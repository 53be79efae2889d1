//! `veritune bench quality --quick` runs the whole quality pipeline end to
//! end on the committed meta-model and real scenes: simulated verdicts, every
//! mixing rule, mAP, the two-round history experiment, table, CSV and plot.

use std::process::Command;

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
