//! `veritune::metrics::mean_average_precision` against pycocotools' COCOeval
//! (AP at IoU 0.5, area "all", maxDets 100) on fixture sets with the tricky
//! cases: duplicates, false positives above true positives, classes without
//! detections or without ground truth, images without ground truth, IoU at,
//! just above and just below 0.5, ties in score and IoU, and more than 100
//! detections of a class in one image.
//!
//! The test installs pycocotools and numpy from PyPI into a virtual
//! environment at `target/pyenv` when they are not there yet, and fails when
//! Python or pip does.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::python::{fixture_json, python_with};
use serde_json::{Value, json};
use veritune::formats::coco::to_coco_json;
use veritune::formats::{ImageLabels, LabelSet};
use veritune::geometry::{BBox, Detection, LabeledBox};
use veritune::metrics::{ImageEval, mean_average_precision};

/// Largest difference allowed with pycocotools, per class and for the mean.
const TOLERANCE: f64 = 1e-3;

/// A fixture set: its images and how many classes it has.
struct Fixture {
    num_classes: usize,
    images: Vec<ImageEval>,
}

#[test]
fn hand_written_tricky_cases_match_pycocotools() {
    compare_with_pycocotools("hand_written", &hand_written());
}

#[test]
fn seeded_random_scenes_match_pycocotools() {
    compare_with_pycocotools("random_sparse", &random_fixture(0x5eed_0001, 12, 3, false));
}

#[test]
fn seeded_random_crowded_scenes_match_pycocotools() {
    compare_with_pycocotools("random_crowded", &random_fixture(0x5eed_0002, 40, 4, true));
}

/// Writes `fixture` as COCO ground truth and results, runs pycocotools on
/// them and checks that veritune gives the same APs.
fn compare_with_pycocotools(name: &str, fixture: &Fixture) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("pycocotools")
        .join(name);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create the fixture folder {}: {e}", dir.display()));
    let ground_truth_path = dir.join("ground_truth.json");
    let detections_path = dir.join("detections.json");
    write(&ground_truth_path, &ground_truth_json(fixture));
    write(&detections_path, &detections_json(fixture));

    let expected = run_pycocotools(&ground_truth_path, &detections_path);
    let report = mean_average_precision(&fixture.images, fixture.num_classes, 0.5);

    let mut max_diff = 0.0f64;
    for (class, ours) in report.per_class.iter().enumerate() {
        let theirs = expected["per_category"][(class + 1).to_string()].as_f64();
        match (ours, theirs) {
            (Some(ours), Some(theirs)) => {
                let diff = (f64::from(*ours) - theirs).abs();
                max_diff = max_diff.max(diff);
                assert!(
                    diff <= TOLERANCE,
                    "{name}: class {class}: veritune AP {ours}, pycocotools {theirs}"
                );
            }
            (None, None) => {}
            _ => panic!("{name}: class {class}: veritune AP {ours:?}, pycocotools {theirs:?}"),
        }
    }
    let theirs = expected["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: pycocotools gave no mean AP: {expected}"));
    let diff = (f64::from(report.mean) - theirs).abs();
    max_diff = max_diff.max(diff);
    assert!(
        diff <= TOLERANCE,
        "{name}: veritune mAP {}, pycocotools {theirs}",
        report.mean
    );
    println!(
        "{name}: mAP@0.5 veritune {:.6} pycocotools {theirs:.6}, per class {:?}, max abs diff {max_diff:.2e}",
        report.mean, report.per_class
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text)
        .unwrap_or_else(|e| panic!("cannot write the fixture file {}: {e}", path.display()));
}

/// The ground truth as COCO JSON: image `i` gets id `i + 1`, class `c`
/// category id `c + 1`.
fn ground_truth_json(fixture: &Fixture) -> String {
    to_coco_json(&LabelSet {
        class_names: (0..fixture.num_classes)
            .map(|c| format!("class {c}"))
            .collect(),
        images: fixture
            .images
            .iter()
            .enumerate()
            .map(|(i, image)| ImageLabels {
                file_name: format!("image_{i}.jpg"),
                width: 640,
                height: 640,
                boxes: image.ground_truth.clone(),
            })
            .collect(),
    })
}

/// The detections as a COCO results file, with the ids of `ground_truth_json`.
fn detections_json(fixture: &Fixture) -> String {
    let results: Vec<Value> = fixture
        .images
        .iter()
        .enumerate()
        .flat_map(|(i, image)| {
            image.detections.iter().map(move |d| {
                let (x, y) = (f64::from(d.bbox.x0), f64::from(d.bbox.y0));
                json!({
                    "image_id": i + 1,
                    "category_id": d.class + 1,
                    "bbox": [x, y, f64::from(d.bbox.x1) - x, f64::from(d.bbox.y1) - y],
                    "score": d.score,
                })
            })
        })
        .collect();
    // pycocotools cannot load an empty results list.
    assert!(
        !results.is_empty(),
        "a fixture needs at least one detection"
    );
    Value::Array(results).to_string()
}

/// Runs `tests/fixtures/coco_map.py` and returns its JSON answer.
fn run_pycocotools(ground_truth: &Path, detections: &Path) -> Value {
    fixture_json(python(), "coco_map.py", &[ground_truth, detections])
}

/// The virtual environment's Python, with pycocotools and numpy importable;
/// set up once per test run.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        python_with(
            &["numpy", "pycocotools>=2.0.7"],
            "import numpy, pycocotools.coco, pycocotools.cocoeval",
        )
    })
}

fn truth(x0: f32, y0: f32, x1: f32, y1: f32, class: usize) -> LabeledBox {
    LabeledBox {
        bbox: BBox::new(x0, y0, x1, y1),
        class,
    }
}

fn detect(x0: f32, y0: f32, x1: f32, y1: f32, class: usize, score: f32) -> Detection {
    Detection {
        bbox: BBox::new(x0, y0, x1, y1),
        class,
        score,
    }
}

/// Five classes: 2 has ground truth but no detection, 3 detections but no
/// ground truth; image 2 has no ground truth.
fn hand_written() -> Fixture {
    // A hundredth of a pixel would not be exact in binary; 1/64 is.
    let sliver = 1.0 / 64.0;
    let images = vec![
        ImageEval {
            ground_truth: vec![
                truth(10.0, 10.0, 60.0, 60.0, 0),
                truth(100.0, 100.0, 150.0, 180.0, 0),
                truth(200.0, 50.0, 260.0, 120.0, 1),
            ],
            detections: vec![
                // Three detections of one object: one hit, two duplicates.
                detect(10.0, 10.0, 60.0, 60.0, 0, 0.9),
                detect(12.0, 10.0, 62.0, 60.0, 0, 0.85),
                detect(10.0, 12.0, 60.0, 62.0, 0, 0.8),
                detect(102.0, 100.0, 150.0, 178.0, 0, 0.6),
                // A false positive scored above the true positive.
                detect(400.0, 400.0, 450.0, 450.0, 1, 0.95),
                detect(200.0, 50.0, 260.0, 120.0, 1, 0.7),
                detect(10.0, 10.0, 60.0, 60.0, 3, 0.5),
            ],
        },
        ImageEval {
            ground_truth: vec![
                truth(30.0, 30.0, 90.0, 90.0, 2),
                // Two objects the first detection overlaps equally.
                truth(10.0, 200.0, 20.0, 210.0, 1),
                truth(12.0, 200.0, 22.0, 210.0, 1),
                truth(300.0, 0.0, 400.0, 100.0, 4),
                truth(300.0, 150.0, 400.0, 250.0, 4),
                truth(300.0, 300.0, 400.0, 400.0, 4),
                truth(450.0, 300.0, 550.0, 400.0, 4),
                truth(500.0, 10.0, 540.0, 50.0, 0),
            ],
            detections: vec![
                detect(11.0, 200.0, 21.0, 210.0, 1, 0.9),
                detect(8.0, 200.0, 18.0, 210.0, 1, 0.8),
                // IoU exactly 0.5, just above, just below (in y and in x).
                detect(300.0, 0.0, 400.0, 200.0, 4, 0.7),
                detect(300.0, 150.0, 400.0, 350.0 - sliver, 4, 0.7),
                detect(300.0, 300.0, 400.0, 500.0 + sliver, 4, 0.75),
                detect(450.0, 300.0, 650.0 + sliver, 400.0, 4, 0.7),
                // Score ties with image 0's duplicate and within this image.
                detect(500.0, 10.0, 540.0, 50.0, 0, 0.8),
                detect(600.0, 600.0, 640.0, 640.0, 0, 0.8),
                detect(30.0, 30.0, 90.0, 90.0, 3, 0.99),
            ],
        },
        ImageEval {
            ground_truth: Vec::new(),
            detections: vec![
                detect(10.0, 10.0, 60.0, 60.0, 0, 0.65),
                detect(0.0, 0.0, 5.0, 5.0, 1, 0.3),
                detect(0.0, 0.0, 50.0, 50.0, 3, 0.4),
            ],
        },
        ImageEval {
            ground_truth: vec![
                truth(0.0, 0.0, 20.0, 20.0, 0),
                truth(50.0, 50.0, 70.0, 90.0, 4),
            ],
            detections: vec![detect(50.0, 50.0, 70.0, 90.0, 4, 0.55)],
        },
    ];
    Fixture {
        num_classes: 5,
        images,
    }
}

/// SplitMix64: a tiny generator whose sequence never changes between builds.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Whether an event of probability `percent`% happens.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Quarter-pixel steps in `0..n` pixels: exact in binary, so pycocotools
    /// reads the very same boxes.
    fn pixels(&mut self, n: u64) -> f32 {
        self.below(4 * n) as f32 / 4.0
    }

    /// Scores on a 0.05 grid, so that ties are common.
    fn score(&mut self) -> f32 {
        (self.below(20) + 1) as f32 * 0.05
    }
}

/// Random scenes: up to five objects per image (some images have none), each
/// found zero to two times by a jittered box (IoU around 0.5 included),
/// sometimes with the wrong class, plus stray false positives. `crowded`
/// adds an image with more than 100 detections of one class.
fn random_fixture(seed: u64, num_images: usize, num_classes: usize, crowded: bool) -> Fixture {
    let mut rng = SplitMix64(seed);
    let classes = num_classes as u64;
    let mut images: Vec<ImageEval> = (0..num_images)
        .map(|_| {
            let mut image = ImageEval::default();
            for _ in 0..rng.below(6) {
                let (x, y) = (rng.pixels(500), rng.pixels(500));
                let (w, h) = (8.0 + rng.pixels(120), 8.0 + rng.pixels(120));
                let class = rng.below(classes) as usize;
                image.ground_truth.push(truth(x, y, x + w, y + h, class));
                if !rng.chance(80) {
                    continue;
                }
                for _ in 0..=rng.below(2) {
                    let dx = (rng.pixels(w as u64) - w / 2.0) / 2.0;
                    let dy = (rng.pixels(h as u64) - h / 2.0) / 2.0;
                    let (sw, sh) = (
                        w * (0.75 + rng.pixels(2) / 4.0),
                        h * (0.75 + rng.pixels(2) / 4.0),
                    );
                    let class = if rng.chance(10) {
                        rng.below(classes) as usize
                    } else {
                        class
                    };
                    let score = rng.score();
                    image.detections.push(detect(
                        x + dx,
                        y + dy,
                        x + dx + sw,
                        y + dy + sh,
                        class,
                        score,
                    ));
                }
            }
            for _ in 0..rng.below(4) {
                let (x, y) = (rng.pixels(560), rng.pixels(560));
                let (w, h) = (4.0 + rng.pixels(80), 4.0 + rng.pixels(80));
                let class = rng.below(classes) as usize;
                let score = rng.score();
                image
                    .detections
                    .push(detect(x, y, x + w, y + h, class, score));
            }
            image
        })
        .collect();
    if crowded {
        // 120 boxes of class 0 on three objects: the true positives scored
        // lowest fall outside the best 100.
        let mut image = ImageEval {
            ground_truth: vec![
                truth(10.0, 10.0, 110.0, 110.0, 0),
                truth(200.0, 10.0, 300.0, 110.0, 0),
                truth(400.0, 10.0, 500.0, 110.0, 0),
            ],
            detections: Vec::new(),
        };
        for i in 0..120u16 {
            let object = &image.ground_truth[usize::from(i % 3)].bbox;
            let shift = rng.pixels(40);
            let bbox = BBox::new(object.x0 + shift, object.y0, object.x1 + shift, object.y1);
            image.detections.push(Detection {
                bbox,
                class: 0,
                score: rng.score(),
            });
        }
        images.insert(num_images / 2, image);
    }
    Fixture {
        num_classes,
        images,
    }
}
