//! Scenes composed from the real digits and photographs in `data/`: they
//! regenerate exactly, their boxes are the digits' ink, the splits share no
//! digit, and the scenarios look different. Needs `scripts/fetch-data` first;
//! without the data every test fails saying so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use veritune::dataset::read_image;
use veritune::image::Image;
use veritune::scenes::{
    DEFAULT_SIZE, DIGIT_CLASSES, DigitSource, INK_THRESHOLD, MAX_DIGITS, Scenario, Scene,
    SceneGenerator, Split, data_dir,
};

fn generator() -> &'static SceneGenerator {
    static GENERATOR: OnceLock<SceneGenerator> = OnceLock::new();
    GENERATOR.get_or_init(|| SceneGenerator::load(&data_dir()).unwrap_or_else(|e| panic!("{e}")))
}

fn scenes(scenario: Scenario, split: Split, count: usize, seed: u64) -> Vec<Scene> {
    generator()
        .scenes(scenario, split, count, seed, DEFAULT_SIZE)
        .unwrap()
}

fn luminance([r, g, b]: [f32; 3]) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Mean over a scene's pixels of luminance and of colourfulness (the spread
/// between the largest and the smallest channel).
fn brightness_and_colour(image: &Image) -> (f32, f32) {
    let n = (image.width() * image.height()) as f32;
    let (mut bright, mut colour) = (0.0, 0.0);
    for p in image.pixels().chunks_exact(3) {
        bright += luminance([p[0], p[1], p[2]]);
        colour +=
            p.iter().copied().fold(f32::MIN, f32::max) - p.iter().copied().fold(f32::MAX, f32::min);
    }
    (bright / n, colour / n)
}

#[test]
fn the_same_seed_and_index_give_the_same_scene() {
    let g = generator();
    for scenario in Scenario::ALL {
        let a = g
            .scene(scenario, Split::Train, 42, 5, DEFAULT_SIZE)
            .unwrap();
        let b = g
            .scene(scenario, Split::Train, 42, 5, DEFAULT_SIZE)
            .unwrap();
        assert_eq!(a, b, "{scenario}");
        assert_eq!(
            (a.image.width(), a.image.height()),
            (DEFAULT_SIZE, DEFAULT_SIZE)
        );
        let batch = scenes(scenario, Split::Train, 6, 42);
        assert_eq!(
            batch[5], a,
            "{scenario}: a batch's scene {} is scene 5 alone",
            5
        );
        let other_seed = g
            .scene(scenario, Split::Train, 43, 5, DEFAULT_SIZE)
            .unwrap();
        assert_ne!(a.image, other_seed.image, "{scenario}");
        assert_ne!(batch[4].image, batch[5].image, "{scenario}");
    }
}

#[test]
fn general_boxes_are_tight_around_the_ink_and_all_ink_is_boxed() {
    let g = generator();
    for size in [DEFAULT_SIZE, 128] {
        for split in Split::ALL {
            for scene in g.scenes(Scenario::General, split, 25, 7, size).unwrap() {
                for object in &scene.objects {
                    let b = object.label.bbox;
                    assert!(b.is_valid() && b.x0 >= 0.0 && b.y0 >= 0.0, "{b:?}");
                    assert!(
                        b.x1 <= size as f32 && b.y1 <= size as f32,
                        "{b:?} in {size}"
                    );
                    assert_eq!([b.x0, b.y0, b.x1, b.y1].map(f32::fract), [0.0; 4]);
                    let (x0, y0, x1, y1) =
                        (b.x0 as usize, b.y0 as usize, b.x1 as usize, b.y1 as usize);
                    let ink = |x: usize, y: usize| object.ink.at(x, y) > INK_THRESHOLD;
                    // Each edge of the box touches ink...
                    assert!((x0..x1).any(|x| ink(x, y0)), "top row of {b:?} has no ink");
                    assert!(
                        (x0..x1).any(|x| ink(x, y1 - 1)),
                        "bottom row of {b:?} has no ink"
                    );
                    assert!(
                        (y0..y1).any(|y| ink(x0, y)),
                        "left column of {b:?} has no ink"
                    );
                    assert!(
                        (y0..y1).any(|y| ink(x1 - 1, y)),
                        "right column of {b:?} has no ink"
                    );
                    // ...and no ink lies outside it.
                    let p = &object.ink;
                    for y in p.y..p.y + p.height {
                        for x in p.x..p.x + p.width {
                            assert!(!ink(x, y) || b.contains(x as f32 + 0.5, y as f32 + 0.5));
                        }
                    }
                    // In the picture the ink is light on a dark background:
                    // the box's most covered pixel is brighter than any
                    // background pixel.
                    let (x, y) = (y0..y1)
                        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                        .max_by(|a, b| object.ink.at(a.0, a.1).total_cmp(&object.ink.at(b.0, b.1)))
                        .unwrap();
                    let brightest = luminance(scene.image.get(x, y));
                    assert!(brightest > 0.4, "{b:?}: ink luminance {brightest}");
                }
                // Every pixel brighter than the brightest background is some
                // digit's ink.
                for y in 0..size {
                    for x in 0..size {
                        if luminance(scene.image.get(x, y)) > 0.36 {
                            assert!(
                                scene.objects.iter().any(|o| o.ink.at(x, y) > 0.0),
                                "bright pixel ({x}, {y}) belongs to no digit"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn scenes_hold_one_to_six_digits_of_the_right_class_and_size() {
    let g = generator();
    for scenario in Scenario::ALL {
        let batch = scenes(scenario, Split::Test, 60, 3);
        let counts: Vec<usize> = batch.iter().map(|s| s.objects.len()).collect();
        assert!(
            counts.iter().all(|c| (1..=MAX_DIGITS).contains(c)),
            "{scenario}: {counts:?}"
        );
        assert!(
            counts.contains(&1) && counts.contains(&MAX_DIGITS),
            "{scenario}: {counts:?}"
        );
        let source = match scenario {
            Scenario::Transfer => DigitSource::Uci,
            Scenario::General | Scenario::Third | Scenario::Broad => DigitSource::Mnist,
        };
        for object in batch.iter().flat_map(|s| &s.objects) {
            assert_eq!(object.source, source);
            assert_eq!(object.label.class, g.digits(source).label(object.digit));
            assert!(object.label.class < DIGIT_CLASSES.len());
            let h = object.label.bbox.height();
            assert!(
                (15.0..=95.0).contains(&h),
                "{scenario}: a digit {h} pixels tall"
            );
        }
        let classes: BTreeSet<usize> = batch
            .iter()
            .flat_map(|s| s.boxes())
            .map(|b| b.class)
            .collect();
        assert_eq!(
            classes.len(),
            10,
            "{scenario}: every class appears in 60 scenes"
        );
    }
}

#[test]
fn train_and_test_scenes_share_no_digit() {
    let g = generator();
    for scenario in Scenario::ALL {
        let used = |split| -> BTreeSet<(DigitSource, usize)> {
            scenes(scenario, split, 100, 1)
                .iter()
                .flat_map(|s| s.objects.iter().map(|o| (o.source, o.digit)))
                .collect()
        };
        let (train, test) = (used(Split::Train), used(Split::Test));
        assert!(train.len() > 100 && test.len() > 100, "{scenario}");
        assert!(
            train.is_disjoint(&test),
            "{scenario}: {:?}",
            train.intersection(&test).next()
        );
        for (split, digits) in [(Split::Train, &train), (Split::Test, &test)] {
            let allowed: BTreeSet<(DigitSource, usize)> = [DigitSource::Mnist, DigitSource::Uci]
                .into_iter()
                .flat_map(|source| {
                    let indices = g.digits(source).split_indices(split);
                    indices.into_iter().map(move |i| (source, i))
                })
                .collect();
            assert!(digits.is_subset(&allowed), "{scenario} {split}");
        }
    }
    for source in [DigitSource::Mnist, DigitSource::Uci] {
        let set = g.digits(source);
        let train = set.split_indices(Split::Train);
        let test = set.split_indices(Split::Test);
        assert_eq!(train.len() + test.len(), set.len());
        // The first 80% of each class, rounded down: at most one digit per
        // class more than a fifth goes to test.
        let fifth = set.len() as f64 * 0.2;
        let test_share = test.len() as f64;
        assert!(
            test_share >= fifth && test_share <= fifth + 10.0,
            "{source}: {test_share}"
        );
    }
    assert_eq!(
        (
            g.digits(DigitSource::Mnist).len(),
            g.digits(DigitSource::Uci).len()
        ),
        (10_000, 1_797)
    );
}

#[test]
fn the_scenarios_look_clearly_different() {
    let stats = |scenario| -> (f32, f32) {
        let batch = scenes(scenario, Split::Test, 30, 5);
        let each: Vec<(f32, f32)> = batch
            .iter()
            .map(|s| brightness_and_colour(&s.image))
            .collect();
        let n = each.len() as f32;
        (
            each.iter().map(|s| s.0).sum::<f32>() / n,
            each.iter().map(|s| s.1).sum::<f32>() / n,
        )
    };
    let (general_bright, general_colour) = stats(Scenario::General);
    let (transfer_bright, transfer_colour) = stats(Scenario::Transfer);
    let (third_bright, _) = stats(Scenario::Third);
    assert_eq!(general_colour, 0.0, "general scenes are grey");
    assert!(
        general_bright < 0.25,
        "general scenes are dark: {general_bright}"
    );
    assert!(
        transfer_colour > 0.05,
        "transfer scenes are in colour: {transfer_colour}"
    );
    assert!(
        transfer_bright > general_bright + 0.1,
        "{transfer_bright} vs {general_bright}"
    );
    assert!(
        third_bright > 0.6,
        "third-scenario scenes are bright: {third_bright}"
    );

    // Polarity: whether each digit's ink is lighter than its scene.
    let lighter_ink = |scenario| -> Vec<bool> {
        let mut lighter = Vec::new();
        for scene in scenes(scenario, Split::Train, 10, 9) {
            let (mean, _) = brightness_and_colour(&scene.image);
            for object in &scene.objects {
                let p = &object.ink;
                let strokes: Vec<f32> = (p.y..p.y + p.height)
                    .flat_map(|y| (p.x..p.x + p.width).map(move |x| (x, y)))
                    .filter(|&(x, y)| p.at(x, y) > 0.9)
                    .map(|(x, y)| luminance(scene.image.get(x, y)))
                    .collect();
                lighter.push(strokes.iter().sum::<f32>() / strokes.len() as f32 > mean);
            }
        }
        lighter
    };
    assert!(lighter_ink(Scenario::General).iter().all(|&l| l));
    assert!(lighter_ink(Scenario::Third).iter().all(|&l| !l));

    // Broad scenes, for pretraining: in colour, on photographs, with light
    // and dark ink.
    let (broad_bright, broad_colour) = stats(Scenario::Broad);
    assert!(
        broad_colour > 0.05,
        "broad scenes are in colour: {broad_colour}"
    );
    assert!(
        broad_bright > general_bright + 0.1,
        "{broad_bright} vs {general_bright}"
    );
    let broad = lighter_ink(Scenario::Broad);
    assert!(
        broad.contains(&true) && broad.contains(&false),
        "broad scenes have light and dark ink: {broad:?}"
    );

    // Transfer scenes hide parts of some digits but keep their full boxes.
    let batch = scenes(Scenario::Transfer, Split::Train, 30, 5);
    let objects: Vec<_> = batch.iter().flat_map(|s| &s.objects).collect();
    let occluded = objects.iter().filter(|o| o.occluded).count();
    assert!(
        occluded * 5 > objects.len() && occluded * 2 < objects.len(),
        "{occluded} of {}",
        objects.len()
    );
    assert!(
        objects
            .iter()
            .all(|o| o.ink.ink_box() == Some(o.label.bbox))
    );
}

/// Writes `scene` as a PNG with each box outlined in its class's colour.
fn save_with_boxes(scene: &Scene, path: &Path) {
    const PALETTE: [[u8; 3]; 10] = [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
    ];
    let (w, h) = (scene.image.width(), scene.image.height());
    let mut rgb: Vec<u8> = scene
        .image
        .pixels()
        .iter()
        .map(|&v| (v * 255.0).round() as u8)
        .collect();
    for b in scene.boxes() {
        let (x0, y0) = (b.bbox.x0 as usize, b.bbox.y0 as usize);
        let (x1, y1) = (b.bbox.x1 as usize - 1, b.bbox.y1 as usize - 1);
        let outline = (x0..=x1)
            .flat_map(|x| [(x, y0), (x, y1)])
            .chain((y0..=y1).flat_map(|y| [(x0, y), (x1, y)]));
        for (x, y) in outline {
            rgb[(y * w + x) * 3..][..3].copy_from_slice(&PALETTE[b.class]);
        }
    }
    ::image::RgbImage::from_raw(w as u32, h as u32, rgb)
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn example_scenes_are_saved_for_a_person_to_look_at() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/scenes");
    std::fs::create_dir_all(&dir).unwrap();
    for scenario in Scenario::ALL {
        for split in Split::ALL {
            for (i, scene) in scenes(scenario, split, 3, 2024).iter().enumerate() {
                let path = dir.join(format!("{scenario}-{split}-{i}.png"));
                save_with_boxes(scene, &path);
                let back = read_image(&path).unwrap();
                assert_eq!((back.width(), back.height()), (DEFAULT_SIZE, DEFAULT_SIZE));
            }
        }
    }
}
