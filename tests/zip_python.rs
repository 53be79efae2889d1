//! Archives from `veritune::zip` read back with Python's `zipfile`: the CRC
//! check passes and every entry comes back stored, under its UTF-8 name,
//! with its bytes.

mod common;

use std::path::Path;

use common::python::{fixture_json, python_with};
use serde_json::Value;
use veritune::zip::write_zip;

#[test]
fn python_reads_the_archive_with_names_and_contents() {
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let files: [(&str, &[u8]); 4] = [
        ("classes.txt", b"cat\ntraffic light\n"),
        ("photos/café 画像.xml", b"<annotation/>\n"),
        ("empty.txt", b""),
        ("deep/a/b/bytes.bin", &binary),
    ];
    let zip = write_zip(files).expect("archive");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zip_python");
    std::fs::create_dir_all(&dir).expect("test folder");
    let file = dir.join("labels.zip");
    std::fs::write(&file, &zip).expect("archive file");

    let python = python_with(&[], "import zipfile");
    let dump = fixture_json(&python, "zip_dump.py", &[&file]);
    assert_eq!(dump["bad"], Value::Null, "every CRC checks out");
    let entries = dump["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), files.len());
    for (entry, (name, data)) in entries.iter().zip(files) {
        assert_eq!(entry["name"], name);
        assert_eq!(entry["method"], 0, "{name} is stored");
        assert_eq!(
            entry["flags"].as_u64().expect("flags") & 0x800,
            0x800,
            "{name}: UTF-8 flag"
        );
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(entry["hex"], hex, "{name}: contents");
    }
}
