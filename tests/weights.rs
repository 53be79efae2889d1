//! Weights as bytes: burnpack and safetensors round trip exactly, carry the
//! configuration, are told apart by content, and files that do not fit are
//! refused; safetensors use PyTorch's names and still read burn's.

mod common;

use std::collections::BTreeMap;

use burn::tensor::Device;
use common::{parameters, tiny_config, tiny_detector};
use veritune::detector::fcos::FcosConfig;
use veritune::detector::nanodet::NanoDetConfig;
use veritune::weights::{
    ARCHITECTURE_KEY, AnyDetector, CONFIG_KEY, FCOS_SMALL, FORMAT_KEY, PreflightError,
    UnknownWeightsFormat, WeightsError, WeightsFormat, load_burnpack, load_detector, load_fcos,
    load_safetensors, preflight, read_fcos_config, read_spec, save_fcos, to_burnpack,
    to_safetensors,
};

fn saved() -> Vec<u8> {
    pollster::block_on(save_fcos(
        &tiny_detector(&Device::flex()),
        WeightsFormat::Burnpack,
    ))
    .expect("save")
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
    let bytes = pollster::block_on(save_fcos(&model, WeightsFormat::Burnpack)).expect("save");
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
    let err = load_fcos(b"not weights at all", &Device::flex()).unwrap_err();
    assert!(err.to_string().contains("not veritune weights"), "{err}");
}

#[test]
fn foreign_files_are_named_for_what_they_are() {
    let err = preflight_error(b"not weights at all");
    assert!(err.to_string().contains("burnpack signature"), "{err}");
    assert!(err.to_string().contains("safetensors"), "{err}");
    assert!(matches!(preflight_error(&[]), PreflightError::NotBurnpack));
    // safetensors are accepted, but only with veritune's metadata.
    let foreign = pollster::block_on(to_safetensors(
        &tiny_detector(&Device::flex()),
        &BTreeMap::new(),
    ))
    .expect("safetensors");
    assert_eq!(
        preflight_error(&foreign),
        PreflightError::MissingMetadata(ARCHITECTURE_KEY)
    );
    let ours = pollster::block_on(save_fcos(
        &tiny_detector(&Device::flex()),
        WeightsFormat::Safetensors,
    ))
    .expect("safetensors");
    let info = preflight(&ours).expect("veritune's safetensors pass");
    assert_eq!(info.format, WeightsFormat::Safetensors);
    assert_eq!(info.architecture, FCOS_SMALL);
    let err = preflight_error(&ours[..ours.len() / 2]);
    assert!(matches!(err, PreflightError::Safetensors(_)), "{err}");
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
fn either_architecture_saves_and_describes_itself_through_any_detector() {
    // The page's session holds an `AnyDetector` and saves through it.
    let device = Device::flex();
    let nanodet = NanoDetConfig {
        class_names: vec!["a".into(), "b".into()],
        ..NanoDetConfig::coco()
    }
    .with_input_size(64)
    .init(&device);
    for model in [
        AnyDetector::from(tiny_detector(&device)),
        AnyDetector::from(nanodet),
    ] {
        let bytes = pollster::block_on(model.save(WeightsFormat::Burnpack)).expect("save");
        assert_eq!(&read_spec(&bytes).expect("spec"), model.spec());
        let loaded = load_detector(&bytes, &device).expect("load");
        assert_eq!(
            std::mem::discriminant(&loaded),
            std::mem::discriminant(&model)
        );
        let again = pollster::block_on(loaded.save(WeightsFormat::Burnpack)).expect("save again");
        assert!(again == bytes, "the round trip changed the bytes");
    }
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
fn weights_formats_are_named_burnpack_and_safetensors() {
    assert_eq!("burnpack".parse(), Ok(WeightsFormat::Burnpack));
    assert_eq!("SafeTensors".parse(), Ok(WeightsFormat::Safetensors));
    let err = "onnx".parse::<WeightsFormat>().unwrap_err();
    assert_eq!(err, UnknownWeightsFormat("onnx".into()));
    assert!(err.to_string().contains("burnpack or safetensors"), "{err}");
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
