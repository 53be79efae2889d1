//! The Pascal VOC reader never panics; what it accepts has valid boxes
//! inside their images and known classes, and writing it out reads back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::formats::TextFile;
use veritune_fuzz::formats::voc::{read_voc, write_voc};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files = [TextFile {
        name: "x.xml".to_string(),
        text: text.to_string(),
    }];
    let Ok(set) = read_voc(&files) else {
        return;
    };
    veritune_fuzz::assert_boxes_inside(&set);
    let written = write_voc(&set).expect("an accepted set is writable");
    let again = read_voc(&written).expect("own output reads back");
    veritune_fuzz::assert_reads_back(&again, &set);
});
