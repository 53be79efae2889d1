//! Synthetic two-scenario scenes shared by the integration tests: squares
//! (class 0) and rings (class 1) on an "old" dark scene and a "new" bright,
//! noisy scene where bright squares are false detections.

#![allow(dead_code)]

pub mod cli;
pub mod python;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use veritune::detector::fcos::{Fcos, FcosConfig};
use veritune::geometry::{BBox, LabeledBox};
use veritune::image::Image;
use veritune::sample::Sample;
use veritune::verdict::TrainingTarget;

/// Input side of the test detector.
pub const SIZE: usize = 64;

/// Which scene to draw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scene {
    /// Bright shapes on a dark, clean background.
    Old,
    /// Dark shapes on a bright noisy background, plus bright squares the user
    /// rejected (negative regions).
    New,
}

/// The tiny test detector: two classes, 64 px input, width 4.
pub fn tiny_config() -> FcosConfig {
    FcosConfig::new(vec!["square".into(), "ring".into()])
        .with_input_size(SIZE)
        .with_width(4)
}

/// A fresh tiny detector on `device`.
pub fn tiny_detector(device: &burn::tensor::Device) -> Fcos {
    tiny_config().init(device)
}

fn draw_shape(image: &mut Image, bbox: &BBox, class: usize, colour: [f32; 3]) {
    let (x0, y0, x1, y1) = (
        bbox.x0 as usize,
        bbox.y0 as usize,
        bbox.x1 as usize,
        bbox.y1 as usize,
    );
    for y in y0..y1 {
        for x in x0..x1 {
            let edge = x < x0 + 3 || x + 3 >= x1 || y < y0 + 3 || y + 3 >= y1;
            if class == 0 || edge {
                image.set(x, y, colour);
            }
        }
    }
}

/// One scene with 1 to 2 objects (and, in the new scene, one rejected bright
/// square) and its target.
pub fn scene(kind: Scene, rng: &mut StdRng) -> (Image, TrainingTarget) {
    let mut image = match kind {
        Scene::Old => Image::filled(SIZE, SIZE, [0.05, 0.05, 0.1]),
        Scene::New => Image::filled(SIZE, SIZE, [0.7, 0.65, 0.5]),
    };
    if kind == Scene::New {
        for y in 0..SIZE {
            for x in 0..SIZE {
                let n = rng.random_range(-0.15..0.15);
                let [r, g, b] = image.get(x, y);
                image.set(x, y, [r + n, g + n, b + n]);
            }
        }
    }
    let mut target = TrainingTarget::default();
    let mut taken: Vec<BBox> = Vec::new();
    let objects = rng.random_range(1..=2) + usize::from(kind == Scene::New);
    for i in 0..objects {
        let negative = kind == Scene::New && i == 0;
        for _ in 0..20 {
            let side = rng.random_range(14.0..26.0f32);
            let x = rng.random_range(0.0..(SIZE as f32 - side)).floor();
            let y = rng.random_range(0.0..(SIZE as f32 - side)).floor();
            let bbox = BBox::new(x, y, x + side.floor(), y + side.floor());
            if taken.iter().any(|t| t.iou(&bbox) > 0.0) {
                continue;
            }
            taken.push(bbox);
            if negative {
                draw_shape(&mut image, &bbox, 0, [0.95, 0.95, 0.95]);
                target.negatives.push(bbox);
            } else {
                let class = rng.random_range(0..2);
                let colour = match kind {
                    Scene::Old => [0.95, 0.95, 0.9],
                    Scene::New => [0.1, 0.15, 0.3],
                };
                draw_shape(&mut image, &bbox, class, colour);
                target.positives.push(LabeledBox { bbox, class }.into());
            }
            break;
        }
    }
    (image, target)
}

/// `n` samples of a scene, deterministic under `seed`.
pub fn samples(kind: Scene, n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    let spec = tiny_config().spec();
    (0..n)
        .map(|_| {
            let (image, target) = scene(kind, &mut rng);
            Sample::new(&image, &target, &spec)
        })
        .collect()
}

/// Every float parameter of `module` by path, as plain values.
pub fn parameters(
    module: &impl burn::module::Module,
) -> std::collections::BTreeMap<String, Vec<f32>> {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Values {
        path: Vec<String>,
        out: std::collections::BTreeMap<String, Vec<f32>>,
    }
    impl ModuleVisitor for Values {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 parameters");
            self.out.insert(self.path.join("."), values);
        }
    }
    let mut values = Values {
        path: Vec::new(),
        out: Default::default(),
    };
    module.visit(&mut values);
    values.out
}
