//! veritune's pure parsers and rules, compiled by path from `../src` so that
//! fuzzing builds neither burn nor its backends. Every module here must stay
//! free of tensors; the fuzz targets in `fuzz_targets/` drive them.

#[path = "../../src/dataset.rs"]
pub mod dataset;
#[path = "../../src/formats/mod.rs"]
pub mod formats;
#[path = "../../src/geometry.rs"]
pub mod geometry;
#[path = "../../src/image.rs"]
pub mod image;
/// The weights preflight check (`veritune::weights::preflight`).
#[path = "../../src/weights/preflight.rs"]
pub mod preflight;
#[path = "../../src/project_file.rs"]
pub mod project_file;
#[path = "../../src/tfjs.rs"]
pub mod tfjs;
#[path = "../../src/verdict.rs"]
pub mod verdict;

/// Panics unless every box of an accepted label set is valid, lies inside its
/// image and has a class of the set: what every annotation reader promises.
pub fn assert_boxes_inside(set: &formats::LabelSet) {
    for image in &set.images {
        assert_inside(
            &image.boxes,
            image.width,
            image.height,
            set.class_names.len(),
        );
    }
}

/// Panics unless each of `boxes` is valid, lies inside a `width` x `height`
/// image and has a class below `classes`.
pub fn assert_inside(boxes: &[geometry::LabeledBox], width: u32, height: u32, classes: usize) {
    for labeled in boxes {
        let b = labeled.bbox;
        assert!(b.is_valid(), "{b:?}");
        assert!(b.x0 >= 0.0 && b.y0 >= 0.0, "{b:?}");
        assert!(b.x1 <= width as f32 && b.y1 <= height as f32, "{b:?}");
        assert!(labeled.class < classes);
    }
}

/// Panics unless `again` (a label set written out and read back) has the
/// same classes, images and boxes as `set`; coordinates may differ by the
/// rounding of a text format (a thousandth of a pixel).
pub fn assert_reads_back(again: &formats::LabelSet, set: &formats::LabelSet) {
    assert_eq!(again.class_names, set.class_names);
    assert_eq!(again.images.len(), set.images.len());
    for (read, written) in again.images.iter().zip(&set.images) {
        assert_eq!(
            (&read.file_name, read.width, read.height),
            (&written.file_name, written.width, written.height)
        );
        assert_eq!(read.boxes.len(), written.boxes.len(), "{}", written.file_name);
        for (r, w) in read.boxes.iter().zip(&written.boxes) {
            assert_eq!(r.class, w.class);
            let (r, w) = (r.bbox, w.bbox);
            for (a, b) in [(r.x0, w.x0), (r.y0, w.y0), (r.x1, w.x1), (r.y1, w.y1)] {
                assert!((a - b).abs() <= 1e-3, "{r:?} read back from {w:?}");
            }
        }
    }
}
