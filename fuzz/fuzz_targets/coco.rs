//! The COCO reader never panics; what it accepts has valid boxes inside
//! their images, and writing it out reads back equal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::formats::coco::{read_coco, to_coco_json};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dataset) = read_coco(json) else {
        return;
    };
    for image in &dataset.images {
        for labeled in &image.boxes {
            let b = labeled.bbox;
            assert!(b.is_valid(), "{b:?}");
            assert!(b.x0 >= 0.0 && b.y0 >= 0.0, "{b:?}");
            assert!(
                b.x1 <= image.width as f32 && b.y1 <= image.height as f32,
                "{b:?}"
            );
            assert!(labeled.class < dataset.class_names.len());
        }
    }
    let again = read_coco(&to_coco_json(&dataset)).expect("own output reads back");
    assert_eq!(again, dataset);
});
