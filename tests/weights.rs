//! Weights as bytes: burnpack round trips exactly, carries the configuration,
//! and refuses files that do not fit; safetensors round trips too.

mod common;

use burn::tensor::Device;
use common::{parameters, tiny_detector};
use veritune::detector::fcos::FcosConfig;
use veritune::weights::{WeightsError, load_fcos, load_safetensors, save_fcos, to_safetensors};

#[test]
fn burnpack_round_trip_is_exact_and_keeps_the_configuration() {
    let device = Device::flex();
    let model = tiny_detector(&device);
    let bytes = pollster::block_on(save_fcos(&model)).expect("save");
    let loaded = load_fcos(&bytes, &device).expect("load");
    assert_eq!(loaded.config(), model.config());
    assert_eq!(parameters(&loaded), parameters(&model));
}

#[test]
fn truncated_or_foreign_weights_are_refused() {
    let device = Device::flex();
    let bytes = pollster::block_on(save_fcos(&tiny_detector(&device))).expect("save");
    let truncated = &bytes[..bytes.len() / 2];
    let err = load_fcos(truncated, &device).unwrap_err();
    assert!(matches!(err, WeightsError::Unreadable(_)), "{err}");
    let err = load_fcos(b"not weights at all", &device).unwrap_err();
    assert!(err.to_string().contains("not a readable burnpack"), "{err}");
}

#[test]
fn weights_of_another_shape_do_not_load() {
    let device = Device::flex();
    let bytes = pollster::block_on(save_fcos(&tiny_detector(&device))).expect("save");
    let other = FcosConfig::new(vec!["a".into(), "b".into(), "c".into()])
        .with_input_size(64)
        .with_width(4)
        .init(&device);
    let err = veritune::weights::load_burnpack(other, &bytes).unwrap_err();
    assert!(matches!(err, WeightsError::Mismatch(_)), "{err}");
}

#[test]
fn safetensors_round_trip_with_conventional_names() {
    let device = Device::flex();
    let model = tiny_detector(&device);
    let bytes = to_safetensors(&model).expect("safetensors");
    assert!(bytes.windows(22).any(|w| w == b"backbone.0.conv.weight"));
    let fresh = tiny_detector(&device);
    assert_ne!(parameters(&fresh), parameters(&model));
    let loaded = load_safetensors(fresh, &bytes).expect("load");
    assert_eq!(parameters(&loaded), parameters(&model));
}
