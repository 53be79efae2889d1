//! The Pascal VOC reader never panics; what it accepts has valid boxes
//! inside their images and known classes, and writing it out reads back.

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
    for image in &set.images {
        for labeled in &image.boxes {
            let b = labeled.bbox;
            assert!(b.is_valid(), "{b:?}");
            assert!(b.x0 >= 0.0 && b.y0 >= 0.0, "{b:?}");
            assert!(
                b.x1 <= image.width as f32 && b.y1 <= image.height as f32,
                "{b:?}"
            );
            assert!(labeled.class < set.class_names.len());
        }
    }
    if let Ok(written) = write_voc(&set) {
        let _ = read_voc(&written);
    }
});
