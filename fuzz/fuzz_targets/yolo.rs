//! The YOLO reader never panics; what it accepts has valid boxes inside
//! their images and known classes, and writing it out reads back the same.
//!
//! The input is a label file for a 640x480 image `x.png`, optionally
//! preceded by its class list and a line `---`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::formats::yolo::{CLASSES_FILE, read_yolo, write_yolo};
use veritune_fuzz::formats::{ImageSize, TextFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (classes, labels) = text.split_once("\n---\n").unwrap_or(("a\nb\nc\n", text));
    let classes = TextFile {
        name: CLASSES_FILE.to_string(),
        text: classes.to_string(),
    };
    let images = [ImageSize {
        file_name: "x.png".to_string(),
        width: 640,
        height: 480,
    }];
    let labels = [TextFile {
        name: "x.txt".to_string(),
        text: labels.to_string(),
    }];
    let Ok(set) = read_yolo(&classes, &images, &labels) else {
        return;
    };
    veritune_fuzz::assert_boxes_inside(&set);
    let files = write_yolo(&set).expect("an accepted set is writable");
    let again = read_yolo(&files[0], &images, &files[1..]).expect("own output reads back");
    veritune_fuzz::assert_reads_back(&again, &set);
});
