//! Image decoding never panics, and what it accepts fits the size limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::dataset::decode_image;
use veritune_fuzz::image::MAX_SIDE;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = decode_image(data) {
        let image = &file.image;
        assert!(image.width().max(image.height()) <= MAX_SIDE);
        assert!(image.width() <= file.file_size.0 && image.height() <= file.file_size.1);
    }
});
