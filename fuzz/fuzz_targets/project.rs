//! Reading a project file never panics, and a file it accepts places every
//! image and the weights inside itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::project_file::{HEADER_LEN, check_manifest, manifest_length};

fuzz_target!(|data: &[u8]| {
    let size = data.len() as u64;
    let Ok(length) = manifest_length(&data[..data.len().min(HEADER_LEN)], size) else {
        return;
    };
    let json = &data[HEADER_LEN..HEADER_LEN + length];
    let Ok(manifest) = check_manifest(json, size) else {
        return;
    };
    let area = (HEADER_LEN + length) as u64;
    let end = |blob: &serde_json::Value| {
        blob["offset"].as_u64().unwrap() + blob["length"].as_u64().unwrap()
    };
    for image in manifest["images"].as_array().unwrap() {
        assert!(area + end(&image["blob"]) <= size);
    }
    if !manifest["weights"].is_null() {
        assert!(area + end(&manifest["weights"]) <= size);
    }
});
