//! What veritune exchanges with its PyTorch quality peer
//! (`bench/peer/torch_quality.py`, run by `scripts/bench-peer-quality`).
//!
//! veritune writes, for every (N, seed) of the quality benchmark, the same
//! verified transfer scenes its own runs fine-tune on, with the boxes the
//! simulated user left on them (confirmed, corrected and drawn; rejected ones
//! are gone), and the meta-model's weights. The peer fine-tunes the meta-model
//! on each run in PyTorch, by its own recipe, and writes the weights back
//! beside the run. veritune then measures those weights on the benchmark's
//! held-out scenes with its own mAP code, so both sides are scored alike.
//!
//! A peer folder:
//!
//! - `weights.safetensors`: the meta-model (veritune's safetensors export);
//! - `spec.json`: the detector's [`DetectorSpec`](crate::detector::DetectorSpec) (input size, preprocessing);
//! - `n{N}-s{seed}/run.json`: `{"n": N, "seed": seed}`;
//! - `n{N}-s{seed}/images.safetensors`: `images`, `[N, 3, H, W]`, RGB in 0..1;
//! - `n{N}-s{seed}/targets.json`: per image, its boxes
//!   `{"bbox": [x0, y0, x1, y1], "class": k}` in input pixels;
//! - written by the peer: `n{N}-s{seed}/peer.safetensors` (the fine-tuned
//!   weights, the same names and metadata) and `peer.json` (`{"recipe": ...}`).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, TensorData};
use serde::{Deserialize, Serialize};

use super::f32_safetensors;
use super::quality::{Baseline, QualityConfig, TestSets, verified_transfer};
use crate::detector::Detector;
use crate::detector::fcos::Fcos;
use crate::geometry::LabeledBox;
use crate::scenes::SceneGenerator;
use crate::weights::{WeightsFormat, load_fcos, save_detector};

/// The fine-tuned weights the peer writes into a run's folder.
pub const PEER_WEIGHTS: &str = "peer.safetensors";

/// One fine-tuning run handed to the peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRun {
    /// Verified transfer images.
    pub n: usize,
    /// Benchmark seed (it draws the images, as in veritune's own runs).
    pub seed: u64,
}

impl PeerRun {
    /// The run's folder name under a peer folder.
    pub fn folder(&self) -> String {
        format!("n{}-s{}", self.n, self.seed)
    }
}

/// A box of `targets.json`.
#[derive(Serialize)]
struct PeerBox {
    bbox: [f32; 4],
    class: usize,
}

/// What the peer says about its recipe in `peer.json`.
#[derive(Deserialize)]
struct PeerRecipe {
    recipe: String,
}

/// The peer's figures for one run, measured like [`super::quality::QualityRow`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    /// Verified transfer images.
    pub n: usize,
    /// Benchmark seed.
    pub seed: u64,
    /// The peer's recipe, as it names it.
    pub recipe: String,
    /// Transfer mAP@0.5 after fine-tuning.
    pub transfer_map: f64,
    /// General mAP@0.5 after fine-tuning.
    pub general_map: f64,
    /// General mAP@0.5 lost.
    pub forgetting: f64,
}

/// Writes every (N, seed) run of `config` into `dir`: the scenes veritune's
/// own runs verify on `meta`'s predictions, with the simulated user's boxes.
pub fn write_peer_runs(
    meta: &Fcos,
    generator: &SceneGenerator,
    config: &QualityConfig,
    dir: &Path,
) -> Result<Vec<PeerRun>, String> {
    let write = |path: PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let create = |path: &Path| {
        std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    create(dir)?;
    let weights = pollster::block_on(save_detector(meta, WeightsFormat::Safetensors))
        .map_err(|e| e.to_string())?;
    write(dir.join("weights.safetensors"), &weights)?;
    write(dir.join("spec.json"), &to_json(meta.spec())?)?;
    let mut runs = Vec::new();
    for &seed in &config.seeds {
        for &n in &config.sizes {
            let run = PeerRun { n, seed };
            let verified = verified_transfer(meta, generator, config, n, seed)?;
            let targets: Vec<Vec<PeerBox>> = verified
                .verdicts
                .iter()
                .map(|v| {
                    v.shown
                        .iter()
                        .filter_map(|b| b.user_label())
                        .chain(v.drawn.iter().copied())
                        .map(|LabeledBox { bbox, class }| PeerBox {
                            bbox: [bbox.x0, bbox.y0, bbox.x1, bbox.y1],
                            class,
                        })
                        .collect()
                })
                .collect();
            let [width, height] = meta.spec().input_size;
            let mut pixels = Vec::with_capacity(n * 3 * width * height);
            for scene in &verified.scenes {
                pixels.extend(
                    scene
                        .image
                        .resized(width, height)
                        .to_planar([0.0; 3], [1.0; 3]),
                );
            }
            let images = TensorData::new(pixels, [n, 3, height, width]);
            let folder = dir.join(run.folder());
            create(&folder)?;
            write(folder.join("run.json"), &to_json(&run)?)?;
            write(folder.join("targets.json"), &to_json(&targets)?)?;
            write(
                folder.join("images.safetensors"),
                &f32_safetensors(vec![("images".into(), images)])?,
            )?;
            runs.push(run);
        }
    }
    Ok(runs)
}

/// The peer's fine-tuned weights of every run in `dir`, measured on `tests`
/// against the meta-model's `baseline`; a run without weights is an error
/// naming it.
pub fn measure_peer_runs(
    dir: &Path,
    tests: &TestSets,
    baseline: &Baseline,
) -> Result<Vec<PeerRow>, String> {
    let read = |path: PathBuf| {
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("run.json").is_file())
        .collect();
    folders.sort();
    if folders.is_empty() {
        return Err(format!(
            "{} holds no peer run: write them with --peer-data first",
            dir.display()
        ));
    }
    let device = Device::flex();
    let mut rows = Vec::new();
    for folder in folders {
        let run: PeerRun = from_json(&read(folder.join("run.json"))?, &folder)?;
        let weights = folder.join(PEER_WEIGHTS);
        if !weights.is_file() {
            return Err(format!(
                "{} is missing: run the peer (scripts/bench-peer-quality) first",
                weights.display()
            ));
        }
        let model = load_fcos(&read(weights.clone())?, &device)
            .map_err(|e| format!("{}: {e}", weights.display()))?;
        let recipe: PeerRecipe = from_json(&read(folder.join("peer.json"))?, &folder)?;
        let measured = tests.measure(&model)?;
        rows.push(PeerRow {
            n: run.n,
            seed: run.seed,
            recipe: recipe.recipe,
            transfer_map: measured.transfer_map,
            general_map: measured.general_map,
            forgetting: baseline.general_map - measured.general_map,
        });
    }
    Ok(rows)
}

/// `peer-quality.csv`: one line per run.
pub fn peer_csv(rows: &[PeerRow]) -> String {
    let mut out = String::from("n,seed,recipe,transfer_map,general_map,forgetting\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{:.5},{:.5},{:.5}\n",
            r.n, r.seed, r.recipe, r.transfer_map, r.general_map, r.forgetting
        ));
    }
    out
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(value).map_err(|e| e.to_string())
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8], folder: &Path) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{}: {e}", folder.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_has_the_issue_s_columns_and_one_line_per_run() {
        let row = PeerRow {
            n: 20,
            seed: 1,
            recipe: "ultralytics".into(),
            transfer_map: 0.5,
            general_map: 0.9,
            forgetting: 0.08,
        };
        assert_eq!(
            peer_csv(&[row]),
            "n,seed,recipe,transfer_map,general_map,forgetting\n20,1,ultralytics,0.50000,0.90000,0.08000\n"
        );
        assert_eq!(PeerRun { n: 20, seed: 1 }.folder(), "n20-s1");
    }
}
