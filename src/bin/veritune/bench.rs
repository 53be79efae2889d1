//! `veritune bench`: the quality benchmark (and its PyTorch peer's runs) and
//! the speed benchmark, each measurement of which runs in a process of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use veritune::benchmark::peer::{measure_peer_runs, peer_csv, write_peer_runs};
use veritune::benchmark::plot::plot_quality;
use veritune::benchmark::quality::{
    Baseline, QualityConfig, QualityRow, RoundsRow, TestSets, csv, markdown, parse_csv,
    rounds_markdown, run_quality, run_rounds, summarize,
};
use veritune::benchmark::speed::{
    self, Backend, Measure, Measurement, PeerFigures, SpeedRow, SpeedSettings,
};
use veritune::detector::Detector;
use veritune::detector::fcos::Fcos;
use veritune::scenes::{SceneGenerator, data_dir};
use veritune::weights::{WeightsFormat, load_fcos, read_spec, save_detector};

use crate::args::{QualityArgs, SpeedArgs, SpeedModel, SpeedOneArgs};
use crate::io::{
    CliError, CliResult, create_dir, log, progress, read_json, read_model_bytes, write_file,
    write_json, write_text,
};
use crate::model::nanodet_from_tfjs;

/// `veritune bench quality`.
pub(crate) fn quality(args: QualityArgs) -> CliResult {
    let QualityArgs {
        quick,
        model,
        sizes,
        seeds,
        rules,
        merge,
        rounds_only,
        peer_data,
        peer_results,
        epochs,
        learning_rate,
        held_out,
        scenes,
        rounds_n,
        recipe,
        output,
    } = args;
    if !merge.is_empty() {
        return bench_merge(&merge, &output);
    }
    let mut config = if quick {
        QualityConfig::quick()
    } else {
        QualityConfig::full()
    };
    if let Some(sizes) = sizes {
        config.sizes = sizes;
    }
    if let Some(seeds) = seeds {
        config.seeds = seeds;
    }
    if let Some(rules) = rules {
        config.rules = rules;
    }
    if let Some(epochs) = epochs {
        config.training.epochs = epochs;
    }
    if let Some(learning_rate) = learning_rate {
        config.training.learning_rate = learning_rate;
    }
    config.held_out = held_out;
    if let Some(scenes) = scenes {
        config.test_scenes = scenes;
    }
    if rounds_only {
        config.sizes.clear();
    }
    config.training = recipe.apply(config.training);
    config.target.confirmed_label = recipe.confirmed_label;
    let rounds_n = if quick { rounds_n.min(5) } else { rounds_n };
    if let Some(dir) = peer_data {
        return bench_peer_data(&model, &config, &dir);
    }
    if let Some(dir) = peer_results {
        return bench_peer_results(&model, &config, &dir, &output);
    }
    bench_quality(&model, &config, rounds_n, &output)
}

/// `veritune bench speed`.
pub(crate) fn speed(args: SpeedArgs) -> CliResult {
    let SpeedArgs {
        models: which_models,
        fcos,
        nanodet,
        nanodet_sizes,
        backends,
        measures,
        batch,
        warmup,
        repeats,
        peer_python,
        output,
    } = args;
    let mut models = Vec::new();
    if which_models.contains(&SpeedModel::Fcos) {
        models.push(("fcos-small".to_string(), read_model_bytes(&fcos)?));
    }
    if which_models.contains(&SpeedModel::Nanodet) {
        for size in nanodet_sizes {
            let model = nanodet_from_tfjs(&nanodet, size)?;
            let bytes = pollster::block_on(save_detector(&model, WeightsFormat::Burnpack))
                .map_err(CliError::failed)?;
            models.push((format!("nanodet-g {size}"), bytes));
        }
    }
    let settings = SpeedSettings {
        batch,
        warmup,
        repeats,
    };
    let backends = backends.unwrap_or_else(Backend::built);
    let measures = measures.unwrap_or_else(|| Measure::ALL.to_vec());
    bench_speed(
        &models,
        &backends,
        &measures,
        settings,
        peer_python.as_deref(),
        output.as_deref(),
    )
}

/// `veritune bench speed-one`: one measurement of `bench speed`, in this process.
pub(crate) fn speed_one(args: SpeedOneArgs) -> CliResult {
    let SpeedOneArgs {
        weights,
        backend,
        measure,
        batch,
        warmup,
        repeats,
    } = args;
    let settings = SpeedSettings {
        batch,
        warmup,
        repeats,
    };
    let result = speed::measure(&read_model_bytes(&weights)?, backend, measure, settings)
        .map_err(CliError::failed)?;
    write_json(&result, None)
}

/// The command-line options of `settings`, as the measuring processes and the peer take them.
fn settings_args(settings: SpeedSettings) -> [String; 6] {
    [
        "--batch".into(),
        settings.batch.to_string(),
        "--warmup".into(),
        settings.warmup.to_string(),
        "--repeats".into(),
        settings.repeats.to_string(),
    ]
}

/// Runs `command` (its errors shown as they come) and reads the JSON figures
/// it prints; `what` names it in the messages.
fn figures_of<T: serde::de::DeserializeOwned>(
    mut command: std::process::Command,
    what: &str,
) -> CliResult<T> {
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| {
            CliError::invalid(
                format_args!("{what}: cannot run {}", command.get_program().display()),
                e,
            )
        })?;
    if !output.status.success() {
        return Err(CliError::failed(format!(
            "{what}: the measurement failed ({})",
            output.status
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| CliError::invalid(format_args!("{what}: unreadable figures"), e))
}

/// Runs every measurement in a process of its own (this binary's hidden
/// `bench speed-one`), then the PyTorch peer per model, and prints the table.
fn bench_speed(
    models: &[(String, Vec<u8>)],
    backends: &[Backend],
    measures: &[Measure],
    settings: SpeedSettings,
    peer_python: Option<&Path>,
    output: Option<&Path>,
) -> CliResult {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::invalid("cannot find veritune's own binary", e))?;
    let scratch = std::env::temp_dir().join(format!("veritune-bench-speed-{}", std::process::id()));
    create_dir(&scratch)?;
    let mut rows = Vec::new();
    let mut peers = BTreeMap::new();
    for (index, (name, bytes)) in models.iter().enumerate() {
        let weights = scratch.join(format!("model-{index}.bpk"));
        write_file(&weights, bytes)?;
        for &backend in backends {
            for &measure in measures {
                eprintln!("{name} on {backend}: {measure}…");
                let mut command = std::process::Command::new(&exe);
                command
                    .args(["bench", "speed-one", "--weights"])
                    .arg(&weights)
                    .args(["--backend", backend.name(), "--measure", measure.name()])
                    .args(settings_args(settings));
                let measurement: Measurement =
                    figures_of(command, &format!("{name} on {backend}, {measure}"))?;
                eprintln!("  median {:.1} ms", measurement.median_ms());
                rows.push(SpeedRow {
                    model: name.clone(),
                    backend,
                    measure,
                    measurement,
                });
            }
        }
        if let Some(python) = peer_python {
            let dir = scratch.join(format!("peer-{index}"));
            create_dir(&dir)?;
            speed::write_peer_files(bytes, settings.batch, &dir).map_err(CliError::failed)?;
            let arch = read_spec(bytes).map_err(CliError::failed)?.architecture;
            eprintln!("{name}: the PyTorch peer…");
            let mut command = std::process::Command::new(python);
            command
                .arg("bench/peer/torch_speed.py")
                .args(["--arch", &arch, "--dir"])
                .arg(&dir)
                .args(settings_args(settings));
            let figures: PeerFigures = figures_of(command, &format!("{name}, the PyTorch peer"))?;
            for (output, diff) in &figures.parity {
                eprintln!("  parity {output}: max |veritune - PyTorch| = {diff:.2e}");
            }
            peers.insert(name.clone(), figures);
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let table = format!(
        "Machine: {}. Batch {}, {} untimed then {} timed runs per figure; each figure in a process of its own.\n\n{}",
        speed::machine_description(),
        settings.batch,
        settings.warmup,
        settings.repeats,
        speed::render_table(&rows, &peers, settings.batch)
    );
    println!("{table}");
    if let Some(path) = output {
        write_file(path, table.as_bytes())?;
    }
    Ok(())
}

fn bench_quality(
    model: &Path,
    config: &QualityConfig,
    rounds_n: usize,
    output: &Path,
) -> CliResult {
    create_dir(output)?;
    let (meta, generator) = meta_and_scenes(model, &Device::flex().autodiff())?;
    let tests =
        TestSets::new(&generator, config, meta.spec().input_size[0]).map_err(CliError::failed)?;
    let baseline = tests.measure(&meta).map_err(CliError::failed)?;
    eprintln!(
        "meta-model: general mAP@0.5 {:.3}, transfer {:.3}, third {:.3}",
        baseline.general_map, baseline.transfer_map, baseline.third_map
    );
    let total = config.sizes.len() * config.seeds.len() * config.rules.len();
    let bar = progress(total, "fine-tuning");
    let rows = run_quality(&meta, &generator, config, &tests, &baseline, |row| {
        bar.inc(1);
        let line = format!(
            "N={:<3} seed {} {:<14} transfer {:.3} general {:.3} forgetting {:+.3} ({:.0} s)",
            row.n,
            row.seed,
            row.rule.name(),
            row.transfer_map,
            row.general_map,
            row.forgetting,
            row.seconds
        );
        log(&bar, line);
    })
    .map_err(CliError::failed)?;
    bar.finish_and_clear();
    write_json(&baseline, Some(&output.join("baseline.json")))?;
    write_json(config, Some(&output.join("config.json")))?;
    write_quality(&baseline, &rows, output)?;
    if rounds_n > 0 {
        let rounds = run_rounds(&meta, &generator, config, &tests, rounds_n, |row| {
            eprintln!(
                "rounds seed {} {}: general {:.3} transfer {:.3} third {:.3}",
                row.seed,
                row.policy,
                row.after_round_2.general_map,
                row.after_round_2.transfer_map,
                row.after_round_2.third_map
            );
        })
        .map_err(CliError::failed)?;
        let table = rounds_markdown(&rounds);
        println!("{table}");
        write_text(&output.join("rounds.md"), &table)?;
        write_json(&rounds, Some(&output.join("rounds.json")))?;
    }
    eprintln!("veritune: results written to {}", output.display());
    Ok(())
}

/// The digits meta-model at `model` on `device`, and the scene generator
/// over the data `scripts/fetch-data` wrote.
fn meta_and_scenes(model: &Path, device: &Device) -> CliResult<(Fcos, SceneGenerator)> {
    let meta =
        load_fcos(&read_model_bytes(model)?, device).map_err(|e| CliError::in_file(model, e))?;
    let generator = SceneGenerator::load(&data_dir()).map_err(CliError::failed)?;
    Ok((meta, generator))
}

fn bench_peer_data(model: &Path, config: &QualityConfig, dir: &Path) -> CliResult {
    let (meta, generator) = meta_and_scenes(model, &Device::flex())?;
    let runs = write_peer_runs(&meta, &generator, config, dir).map_err(CliError::failed)?;
    eprintln!(
        "veritune: {} runs for the PyTorch peer written to {}",
        runs.len(),
        dir.display()
    );
    Ok(())
}

fn bench_peer_results(
    model: &Path,
    config: &QualityConfig,
    dir: &Path,
    output: &Path,
) -> CliResult {
    create_dir(output)?;
    let (meta, generator) = meta_and_scenes(model, &Device::flex())?;
    let tests =
        TestSets::new(&generator, config, meta.spec().input_size[0]).map_err(CliError::failed)?;
    let baseline = tests.measure(&meta).map_err(CliError::failed)?;
    let rows = measure_peer_runs(dir, &tests, &baseline).map_err(CliError::failed)?;
    write_json(&baseline, Some(&output.join("baseline.json")))?;
    let csv = peer_csv(&rows);
    print!("{csv}");
    write_text(&output.join("peer-quality.csv"), &csv)
}

/// Writes the table, CSV and plot of `rows`, and prints the table.
fn write_quality(baseline: &Baseline, rows: &[QualityRow], output: &Path) -> CliResult {
    let summary = summarize(rows);
    let table = markdown(baseline, &summary);
    println!("{table}");
    write_text(&output.join("quality.md"), &table)?;
    write_text(&output.join("quality.csv"), &csv(rows))?;
    plot_quality(&summary, &output.join("quality.svg")).map_err(CliError::failed)
}

fn bench_merge(parts: &[PathBuf], output: &Path) -> CliResult {
    create_dir(output)?;
    let mut rows = Vec::new();
    let mut rounds: Vec<RoundsRow> = Vec::new();
    let mut baseline = None;
    for part in parts {
        baseline = Some(read_json::<Baseline>(&part.join("baseline.json"))?);
        let csv_path = part.join("quality.csv");
        let text = std::fs::read_to_string(&csv_path).map_err(|e| CliError::read(&csv_path, e))?;
        rows.extend(parse_csv(&text).map_err(|e| CliError::in_file(&csv_path, e))?);
        let rounds_path = part.join("rounds.json");
        if rounds_path.is_file() {
            rounds.extend(read_json::<Vec<RoundsRow>>(&rounds_path)?);
        }
    }
    let baseline =
        baseline.ok_or_else(|| CliError::usage("--merge needs at least one results folder"))?;
    write_json(&baseline, Some(&output.join("baseline.json")))?;
    write_quality(&baseline, &rows, output)?;
    if !rounds.is_empty() {
        let table = rounds_markdown(&rounds);
        println!("{table}");
        write_text(&output.join("rounds.md"), &table)?;
        write_json(&rounds, Some(&output.join("rounds.json")))?;
    }
    Ok(())
}
