//! Weights exported as safetensors read back with Python's `safetensors`
//! package (`safetensors.numpy.load_file`, the reader PyTorch users have):
//! the same tensors under PyTorch's conventional names, with their shapes,
//! every value, and the detector's configuration in the metadata.
//!
//! The test installs safetensors and numpy from PyPI into the virtual
//! environment at `target/pyenv` when they are not there yet, and fails when
//! Python or pip does.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use common::python::{fixture_json, python_with};
use common::{parameters, tiny_detector};
use veritune::detector::fcos::FcosConfig;
use veritune::weights::{WeightsFormat, save_fcos};

/// PyTorch's name of a burn parameter: GroupNorm's `gamma` and `beta` are
/// `weight` and `bias` (every norm of the detector is a field named `norm`).
fn pytorch_name(burn_path: &str) -> String {
    let renamed = burn_path
        .strip_suffix(".norm.gamma")
        .map(|p| format!("{p}.norm.weight"))
        .or_else(|| {
            burn_path
                .strip_suffix(".norm.beta")
                .map(|p| format!("{p}.norm.bias"))
        });
    renamed.unwrap_or_else(|| burn_path.to_string())
}

#[test]
fn python_reads_the_exported_safetensors_with_conventional_names() {
    let model = tiny_detector(&Device::flex());
    let bytes = pollster::block_on(save_fcos(&model, WeightsFormat::Safetensors)).expect("export");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("safetensors_python");
    std::fs::create_dir_all(&dir).expect("test folder");
    let file = dir.join("fcos.safetensors");
    std::fs::write(&file, &bytes).expect("weights file");

    let python = python_with(&["numpy", "safetensors"], "import numpy, safetensors.numpy");
    let dump = fixture_json(&python, "safetensors_dump.py", &[&file]);

    let expected: BTreeMap<String, Vec<f32>> = parameters(&model)
        .into_iter()
        .map(|(path, values)| (pytorch_name(&path), values))
        .collect();
    let tensors = dump["tensors"].as_object().expect("tensors");
    let names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    let expected_names: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(names, expected_names);
    for name in [
        "backbone.0.conv.weight",
        "backbone.0.norm.weight",
        "backbone.0.norm.bias",
        "head.tower.1.norm.weight",
        "head.classifier.bias",
        "lateral_c3.weight",
    ] {
        assert!(tensors.contains_key(name), "{name} missing from {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("gamma") || n.ends_with("beta"))
    );

    let shape = |name: &str| tensors[name]["shape"].clone();
    // Width 4: the first convolution maps 3 channels to 4 with a 3x3 kernel.
    assert_eq!(
        shape("backbone.0.conv.weight"),
        serde_json::json!([4, 3, 3, 3])
    );
    assert_eq!(shape("backbone.0.norm.weight"), serde_json::json!([4]));
    assert_eq!(shape("head.classifier.bias"), serde_json::json!([2]));
    for (name, values) in &expected {
        let tensor = &tensors[name.as_str()];
        assert_eq!(tensor["dtype"], "float32", "{name}");
        let dims: usize = tensor["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dimension") as usize)
            .product();
        assert_eq!(dims, values.len(), "{name}");
        let read: Vec<f32> = tensor["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| v.as_f64().expect("number") as f32)
            .collect();
        assert_eq!(&read, values, "{name}");
    }

    let metadata = &dump["metadata"];
    assert_eq!(metadata["format"], "pt");
    assert_eq!(metadata["veritune.architecture"], "fcos-small");
    let config: FcosConfig = serde_json::from_str(
        metadata["veritune.config"]
            .as_str()
            .expect("configuration JSON"),
    )
    .expect("the configuration parses");
    assert_eq!(&config, model.config());
}
