//! Importing label files into the page's open images never panics, whatever
//! the files; every imported box is valid, inside its image, of a model class.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::formats::import::import_labels;
use veritune_fuzz::formats::{ImageSize, TextFile};

fuzz_target!(|data: &[u8]| {
    // NUL-separated: the model's classes (comma separated), then file name
    // and text pairs. Each label file has an open image of its stem.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let classes: Vec<String> = parts
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    let mut files = Vec::new();
    while let (Some(name), Some(text)) = (parts.next(), parts.next()) {
        files.push(TextFile {
            name: name.to_string(),
            text: text.to_string(),
        });
    }
    let open: Vec<ImageSize> = files
        .iter()
        .enumerate()
        .map(|(k, f)| ImageSize {
            file_name: format!(
                "{}.jpg",
                f.name
                    .rsplit_once('.')
                    .map_or(f.name.as_str(), |(stem, _)| stem)
            ),
            width: 16 + 37 * k as u32,
            height: 24 + 11 * k as u32,
        })
        .collect();
    let Ok(import) = import_labels(&files, &open, &classes) else {
        return;
    };
    for image in &import.images {
        let size = &open[image.index];
        veritune_fuzz::assert_inside(&image.boxes, size.width, size.height, classes.len());
    }
});
