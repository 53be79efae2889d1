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
    veritune_fuzz::assert_boxes_inside(&dataset);
    let again = read_coco(&to_coco_json(&dataset)).expect("own output reads back");
    assert_eq!(again, dataset);
});
