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
