//! Weights as bytes: burnpack and safetensors round trip exactly, carry the
//! configuration, are told apart by content, and files that do not fit are
//! refused; safetensors use PyTorch's names and still read burn's.

mod common;

use burn::tensor::Device;
use common::{parameters, tiny_detector};
use veritune::detector::fcos::FcosConfig;
use veritune::weights::{
    WeightsError, WeightsFormat, load_fcos, load_safetensors, read_fcos_config, save_fcos,
};

#[test]
fn burnpack_round_trip_is_exact_and_keeps_the_configuration() {
    let device = Device::flex();
    let model = tiny_detector(&device);
    let bytes = pollster::block_on(save_fcos(&model, WeightsFormat::Burnpack)).expect("save");
    let loaded = load_fcos(&bytes, &device).expect("load");
    assert_eq!(loaded.config(), model.config());
    assert_eq!(parameters(&loaded), parameters(&model));
}

#[test]
fn truncated_or_foreign_weights_are_refused() {
    let device = Device::flex();
    let bytes = pollster::block_on(save_fcos(&tiny_detector(&device), WeightsFormat::Burnpack))
        .expect("save");
    let truncated = &bytes[..bytes.len() / 2];
    let err = load_fcos(truncated, &device).unwrap_err();
    assert!(matches!(err, WeightsError::Unreadable(_)), "{err}");
    let err = load_fcos(b"not weights at all", &device).unwrap_err();
    assert!(err.to_string().contains("not a readable burnpack"), "{err}");
}

#[test]
fn weights_of_another_shape_do_not_load() {
    let device = Device::flex();
    let bytes = pollster::block_on(save_fcos(&tiny_detector(&device), WeightsFormat::Burnpack))
        .expect("save");
    let other = FcosConfig::new(vec!["a".into(), "b".into(), "c".into()])
        .with_input_size(64)
        .with_width(4)
        .init(&device);
    let err = veritune::weights::load_burnpack(other, &bytes).unwrap_err();
    assert!(matches!(err, WeightsError::Mismatch(_)), "{err}");
}

fn contains(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

#[test]
fn safetensors_round_trip_is_exact_with_pytorch_names_and_the_configuration() {
    let device = Device::flex();
    let model = tiny_detector(&device);
    let bytes = pollster::block_on(save_fcos(&model, WeightsFormat::Safetensors)).expect("save");
    assert_eq!(WeightsFormat::detect(&bytes), WeightsFormat::Safetensors);
    for name in [
        "backbone.0.conv.weight",
        "backbone.0.norm.weight",
        "backbone.0.norm.bias",
    ] {
        assert!(contains(&bytes, name), "{name}");
    }
    assert!(!contains(&bytes, "norm.gamma") && !contains(&bytes, "norm.beta"));
    assert_eq!(&read_fcos_config(&bytes).expect("config"), model.config());
    let loaded = load_fcos(&bytes, &device).expect("load");
    assert_eq!(loaded.config(), model.config());
    assert_eq!(parameters(&loaded), parameters(&model));
}

#[test]
fn burnpack_is_told_from_safetensors_and_by_file_name() {
    let bytes = pollster::block_on(save_fcos(
        &tiny_detector(&Device::flex()),
        WeightsFormat::Burnpack,
    ))
    .expect("save");
    assert_eq!(WeightsFormat::detect(&bytes), WeightsFormat::Burnpack);
    assert_eq!(WeightsFormat::detect(b"short"), WeightsFormat::Burnpack);
    assert_eq!(
        WeightsFormat::for_file_name("run 1/adapted.SafeTensors"),
        WeightsFormat::Safetensors
    );
    assert_eq!(
        WeightsFormat::for_file_name("adapted.bpk"),
        WeightsFormat::Burnpack
    );
}

#[test]
fn safetensors_with_burns_own_names_still_load() {
    use burn::store::{ModuleSnapshot, SafetensorsStore};
    let device = Device::flex();
    let model = tiny_detector(&device);
    let mut store = SafetensorsStore::from_bytes(None);
    model.save_into(&mut store).expect("burn's writer");
    let bytes = store.get_bytes().expect("bytes");
    assert!(contains(&bytes, "backbone.0.norm.gamma"));
    let loaded = load_safetensors(tiny_detector(&device), &bytes).expect("load");
    assert_eq!(parameters(&loaded), parameters(&model));
}

#[test]
fn safetensors_that_do_not_fit_are_refused() {
    let device = Device::flex();
    let bytes = pollster::block_on(save_fcos(
        &tiny_detector(&device),
        WeightsFormat::Safetensors,
    ))
    .expect("save");
    let other = FcosConfig::new(vec!["a".into(), "b".into(), "c".into()])
        .with_input_size(64)
        .with_width(4)
        .init(&device);
    let err = load_safetensors(other, &bytes).unwrap_err();
    assert!(matches!(err, WeightsError::Mismatch(_)), "{err}");
    let truncated = &bytes[..bytes.len() - 10];
    let err = load_fcos(truncated, &device).unwrap_err();
    assert!(err.to_string().contains("safetensors"), "{err}");
}
