//! Weights as bytes: burnpack round trips exactly, carries the configuration,
//! and refuses files that do not fit, before they touch a model; safetensors
//! round trips too.

mod common;

use std::collections::BTreeMap;

use burn::tensor::Device;
use common::{parameters, tiny_config, tiny_detector};
use veritune::detector::fcos::FcosConfig;
use veritune::weights::{
    ARCHITECTURE_KEY, CONFIG_KEY, FCOS_SMALL, FORMAT_KEY, PreflightError, WeightsError,
    load_burnpack, load_fcos, load_safetensors, preflight, save_fcos, to_burnpack, to_safetensors,
};

fn saved() -> Vec<u8> {
    pollster::block_on(save_fcos(&tiny_detector(&Device::flex()))).expect("save")
}

/// The tiny detector's weights with `metadata` instead of what `save_fcos` writes.
fn saved_with(metadata: &[(&str, &str)]) -> Vec<u8> {
    let metadata: BTreeMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pollster::block_on(to_burnpack(&tiny_detector(&Device::flex()), &metadata)).expect("save")
}

fn preflight_error(bytes: &[u8]) -> PreflightError {
    match load_fcos(bytes, &Device::flex()) {
        Err(WeightsError::Preflight(e)) => e,
        Err(other) => panic!("not a preflight error: {other}"),
        Ok(_) => panic!("loaded"),
    }
}

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
fn truncated_weights_are_refused_at_every_length() {
    let bytes = saved();
    let info = preflight(&bytes).expect("complete weights pass");
    assert_eq!(info.architecture, FCOS_SMALL);
    let step = (bytes.len() / 97).max(1);
    let mut cuts: Vec<usize> = (0..bytes.len()).step_by(step).collect();
    cuts.extend([1, 5, 9, 10, 11, bytes.len() - 1]);
    for cut in cuts {
        let err = preflight(&bytes[..cut]).expect_err("truncated");
        let message = err.to_string();
        assert!(
            message.contains("truncated") || message.contains("not veritune weights"),
            "cut at {cut}: {message}"
        );
    }
    assert!(matches!(
        preflight_error(&bytes[..6]),
        PreflightError::Truncated { part: "header", .. }
    ));
    assert!(matches!(
        preflight_error(&bytes[..200]),
        PreflightError::Truncated {
            part: "metadata",
            ..
        }
    ));
    let err = preflight_error(&bytes[..bytes.len() - 1]);
    assert!(matches!(err, PreflightError::Damaged(_)), "{err}");
}

#[test]
fn foreign_files_are_named_for_what_they_are() {
    let err = preflight_error(b"not weights at all");
    assert!(err.to_string().contains("burnpack signature"), "{err}");
    let safetensors = to_safetensors(&tiny_detector(&Device::flex())).expect("safetensors");
    let err = preflight_error(&safetensors);
    assert!(err.to_string().contains("safetensors"), "{err}");
    assert!(matches!(
        preflight_error(&[]),
        PreflightError::NotBurnpack { .. }
    ));
}

#[test]
fn weights_from_a_newer_veritune_are_refused_saying_so() {
    let config = serde_json::to_string(&tiny_config()).expect("json");
    let newer = saved_with(&[
        (FORMAT_KEY, "2"),
        (ARCHITECTURE_KEY, FCOS_SMALL),
        (CONFIG_KEY, &config),
    ]);
    let err = preflight_error(&newer);
    assert!(matches!(err, PreflightError::NewerFormat { .. }), "{err}");
    assert!(err.to_string().contains("newer veritune"), "{err}");

    let mut newer_container = saved();
    newer_container[4..6].copy_from_slice(&9u16.to_le_bytes());
    let err = preflight_error(&newer_container);
    assert!(
        matches!(err, PreflightError::NewerContainer { found: 9, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer veritune"), "{err}");

    let garbled = saved_with(&[
        (FORMAT_KEY, "one"),
        (ARCHITECTURE_KEY, FCOS_SMALL),
        (CONFIG_KEY, &config),
    ]);
    assert!(matches!(
        preflight_error(&garbled),
        PreflightError::BadFormatVersion { .. }
    ));
}

#[test]
fn weights_without_veritune_metadata_or_of_unknown_architectures_are_refused() {
    let config = serde_json::to_string(&tiny_config()).expect("json");
    assert_eq!(
        preflight_error(&saved_with(&[(CONFIG_KEY, &config)])),
        PreflightError::MissingMetadata(ARCHITECTURE_KEY)
    );
    let err = preflight_error(&saved_with(&[
        (ARCHITECTURE_KEY, "yolo-huge"),
        (CONFIG_KEY, &config),
    ]));
    assert_eq!(err, PreflightError::UnknownArchitecture("yolo-huge".into()));
    assert_eq!(
        preflight_error(&saved_with(&[(ARCHITECTURE_KEY, FCOS_SMALL)])),
        PreflightError::MissingMetadata(CONFIG_KEY)
    );
}

#[test]
fn an_absurd_configuration_is_refused_before_a_model_is_built() {
    let wide = serde_json::to_string(&tiny_config().with_width(1 << 20)).expect("json");
    let err = load_fcos(
        &saved_with(&[(ARCHITECTURE_KEY, FCOS_SMALL), (CONFIG_KEY, &wide)]),
        &Device::flex(),
    )
    .expect_err("refused");
    assert!(matches!(err, WeightsError::BadConfig(_)), "{err}");
    assert!(err.to_string().contains("`width`"), "{err}");
    let err = load_fcos(
        &saved_with(&[
            (ARCHITECTURE_KEY, FCOS_SMALL),
            (CONFIG_KEY, "{\"width\": 4"),
        ]),
        &Device::flex(),
    )
    .expect_err("refused");
    assert!(matches!(err, WeightsError::BadConfig(_)), "{err}");
}

#[test]
fn weights_of_another_model_do_not_load_and_leave_it_as_it_was() {
    let device = Device::flex();
    let bytes = saved();
    let other = FcosConfig::new(vec!["a".into(), "b".into(), "c".into()])
        .with_input_size(64)
        .with_width(4)
        .init(&device);
    let kept = other.clone();
    let before = parameters(&kept);
    let err = load_burnpack(other, &bytes).unwrap_err();
    match &err {
        WeightsError::ShapeMismatch {
            tensor,
            expected,
            found,
        } => {
            assert_eq!(tensor, "head.classifier.bias");
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[3][..], &[2][..])
            );
        }
        other => panic!("not a shape mismatch: {other}"),
    }
    assert!(
        err.to_string()
            .contains("[2] in the file but [3] in the model"),
        "{err}"
    );
    assert_eq!(parameters(&kept), before);

    let wider = tiny_config().with_width(8).init(&device);
    let err = load_burnpack(wider, &bytes).unwrap_err();
    assert!(matches!(err, WeightsError::ShapeMismatch { .. }), "{err}");
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
