//! The `veritune` command line, used as a person would: create a model,
//! predict, fine-tune on a COCO set, evaluate, use models in burnpack or
//! safetensors alike, and get one-line errors on bad input.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Scene;
use common::cli::{failure, init_model, init_model_as, text, veritune, workdir, write_set};

#[test]
fn init_predict_finetune_eval() {
    let dir = workdir("loop");
    let model = init_model(&dir);

    let transfer = dir.join("transfer");
    std::fs::create_dir_all(&transfer).unwrap();
    let annotations = write_set(&transfer, Scene::New, 4, 1);
    let history = dir.join("history");
    std::fs::create_dir_all(&history).unwrap();
    let history_annotations = write_set(&history, Scene::Old, 4, 2);

    let image = transfer.join("scène 0.png");
    let out = veritune(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        image.to_str().unwrap(),
        "--threshold",
        "0.0",
        "--candidates",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("predict prints JSON");
    assert_eq!(json[0]["width"], 64);
    assert!(json[0]["detections"].is_array() && json[0]["candidates"].is_array());

    let adapted = dir.join("adapted.bpk");
    let records = dir.join("steps.json");
    let library = dir.join("library");
    let out = veritune(&[
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--images",
        transfer.to_str().unwrap(),
        "--annotations",
        annotations.to_str().unwrap(),
        "--simulate-user",
        "--history-images",
        history.to_str().unwrap(),
        "--history-annotations",
        history_annotations.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--output",
        adapted.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
        "--history-output",
        library.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(
        std::fs::read(&adapted).unwrap(),
        std::fs::read(&model).unwrap()
    );
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records).unwrap()).unwrap();
    let steps = &records["steps"];
    assert_eq!(steps.as_array().map(Vec::len), Some(4));
    assert!(steps[0]["history_loss"].is_number());
    assert!(steps[0]["mix"]["similarity"].is_number());
    // The fidelity check of the adapted model: the simulated user's verdicts
    // and the history library's boxes, counted as the CLI printed them.
    let fidelity = &records["fidelity"];
    let (honored, verdicts) = (
        &fidelity["verdicts_honored"]["passed"],
        &fidelity["verdicts_honored"]["total"],
    );
    assert!(verdicts.as_u64() > Some(0), "{fidelity}");
    let (kept, boxes) = (
        &fidelity["history_agreement"]["passed"],
        &fidelity["history_agreement"]["total"],
    );
    assert!(boxes.as_u64() > Some(0), "{fidelity}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{honored} of {verdicts} verdicts honored, history kept"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("({kept} of {boxes} boxes)")),
        "{stderr}"
    );
    let not_honored: u64 = fidelity["not_honored"]
        .as_array()
        .expect("not honored per image")
        .iter()
        .map(|image| image["verdicts"].as_array().map_or(0, |v| v.len() as u64))
        .sum();
    assert_eq!(
        not_honored,
        verdicts.as_u64().unwrap() - honored.as_u64().unwrap()
    );
    // Then the history library is updated as the page updates it: the
    // reviewed images compete with its members, named by file.
    let update = &records["history_update"];
    let members = update["members"].as_array().expect("members");
    let admitted = update["admitted"].as_array().expect("admitted");
    let evicted = update["evicted"].as_array().expect("evicted");
    assert_eq!(update["offered"].as_u64(), Some(4), "{update}");
    assert!(!members.is_empty() && admitted.len() <= 4, "{update}");
    assert!(
        admitted.iter().all(|name| members.contains(name)),
        "{update}"
    );
    assert!(
        evicted.iter().all(|name| !members.contains(name)
            && name.as_str().is_some_and(|n| n.starts_with("history:"))),
        "{update}"
    );
    assert!(
        stderr.contains(&format!(
            "history library: {} of 4 reviewed images admitted, {} evicted, {} samples",
            admitted.len(),
            evicted.len(),
            members.len()
        )),
        "{stderr}"
    );
    // The updated library is written out, and the next run starts from it.
    let labels: serde_json::Value =
        serde_json::from_slice(&std::fs::read(library.join("labels.json")).unwrap()).unwrap();
    let written: Vec<&str> = labels["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| image["file_name"].as_str().unwrap())
        .collect();
    // The history images and the reviewed ones share their file names here:
    // a reviewed member is written as reviewed-<file>.
    let expected: Vec<String> = members
        .iter()
        .map(|name| {
            let name = name.as_str().unwrap();
            name.strip_prefix("history:")
                .map_or(format!("reviewed-{name}"), String::from)
        })
        .collect();
    assert_eq!(written, expected, "{update}");
    assert!(written.iter().all(|file| library.join(file).is_file()));
    assert!(!labels["annotations"].as_array().unwrap().is_empty());
    let again = dir.join("again.bpk");
    let out = veritune(&[
        "finetune",
        "--model",
        adapted.to_str().unwrap(),
        "--images",
        transfer.to_str().unwrap(),
        "--annotations",
        annotations.to_str().unwrap(),
        "--history-images",
        library.to_str().unwrap(),
        "--history-annotations",
        library.join("labels.json").to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--output",
        again.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("{} samples", members.len() + 4)),
        "the written library and the four reviewed images: {}",
        text(&out.stderr)
    );

    let out = veritune(&[
        "eval",
        "--model",
        adapted.to_str().unwrap(),
        "--images",
        transfer.to_str().unwrap(),
        "--annotations",
        annotations.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mean = report["mean"].as_f64().expect("mean");
    assert!((0.0..=1.0).contains(&mean));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_gets_a_one_line_message_naming_the_file() {
    let dir = workdir("errors");
    let model = init_model(&dir);
    let model = model.to_str().unwrap();

    let missing = failure(&["predict", "--model", "absent.bpk", "x.png"]);
    assert!(missing.contains("absent.bpk"), "{missing}");

    let junk = dir.join("junk.bpk");
    std::fs::write(&junk, b"0123456789").unwrap();
    let message = failure(&["predict", "--model", junk.to_str().unwrap(), "x.png"]);
    assert!(
        message.contains("junk.bpk") && message.contains("burnpack"),
        "{message}"
    );

    let not_image = dir.join("notes.png");
    std::fs::write(&not_image, b"hello").unwrap();
    let message = failure(&["predict", "--model", model, not_image.to_str().unwrap()]);
    assert!(message.contains("notes.png"), "{message}");

    let bad_json = dir.join("bad.json");
    std::fs::write(&bad_json, b"{\"images\": [").unwrap();
    let message = failure(&[
        "eval",
        "--model",
        model,
        "--images",
        dir.to_str().unwrap(),
        "--annotations",
        bad_json.to_str().unwrap(),
    ]);
    assert!(message.contains("bad.json"), "{message}");

    let message = failure(&[
        "init",
        "--classes",
        "a",
        "--input-size",
        "50",
        "--output",
        "x.bpk",
    ]);
    assert!(message.contains("multiple of 32"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn finetune_reads_verdicts_and_names_an_image_without_them() {
    use veritune::geometry::{BBox, LabeledBox};
    use veritune::verdict::ImageVerdicts;
    let dir = workdir("verdicts");
    let model = init_model(&dir);
    let annotations = write_set(&dir, Scene::New, 2, 3);
    let drawn = |x: f32| ImageVerdicts {
        shown: Vec::new(),
        drawn: vec![LabeledBox {
            bbox: BBox::new(x, x, x + 20.0, x + 20.0),
            class: 1,
        }],
        reviewed_classes: None,
    };
    let mut verdicts = std::collections::BTreeMap::from([("scène 0.png".to_string(), drawn(4.0))]);
    let file = dir.join("verdicts.json");
    std::fs::write(&file, serde_json::to_string(&verdicts).unwrap()).unwrap();
    let adapted = dir.join("adapted.bpk");
    let args = [
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--images",
        dir.to_str().unwrap(),
        "--annotations",
        annotations.to_str().unwrap(),
        "--verdicts",
        file.to_str().unwrap(),
        "--epochs",
        "1",
        "--rule",
        "transfer-only",
        "--output",
        adapted.to_str().unwrap(),
    ];
    let message = failure(&args);
    assert!(
        message.contains("verdicts.json") && message.contains("scène 1.png"),
        "{message}"
    );

    verdicts.insert("scène 1.png".to_string(), drawn(30.0));
    std::fs::write(&file, serde_json::to_string(&verdicts).unwrap()).unwrap();
    let out = veritune(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(adapted.is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `veritune finetune` of `model` on the images of `dir` with transfer-only
/// training in batches of two, written to `output`, with `more` arguments.
fn finetune_in_pairs(
    dir: &Path,
    model: &Path,
    annotations: &Path,
    output: &Path,
    more: &[&str],
) -> std::process::Output {
    let args = [
        &[
            "finetune",
            "--model",
            model.to_str().unwrap(),
            "--images",
            dir.to_str().unwrap(),
            "--annotations",
            annotations.to_str().unwrap(),
            "--batch-size",
            "2",
            "--rule",
            "transfer-only",
            "--output",
            output.to_str().unwrap(),
        ],
        more,
    ]
    .concat();
    veritune(&args)
}

#[test]
fn finetune_without_epochs_trains_until_every_verdict_is_honored_within_the_budget() {
    let dir = workdir("until-honored");
    let annotations = write_set(&dir, Scene::New, 2, 4);
    let model = init_model(&dir);
    let adapted = dir.join("adapted.bpk");
    let records = dir.join("records.json");
    let out = finetune_in_pairs(
        &dir,
        &model,
        &annotations,
        &adapted,
        &["--max-epochs", "2", "--records", records.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let records: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&records).unwrap()).unwrap();
    // One step per epoch; the verdicts are checked after the first epoch
    // (the second is the last of the budget, checked by the final report).
    let checks = records["epoch_checks"].as_array().expect("epoch checks");
    assert_eq!(checks.len(), 1, "{records}");
    assert_eq!(checks[0]["epochs"], 1);
    let (passed, total) = (
        &checks[0]["verdicts_honored"]["passed"],
        &checks[0]["verdicts_honored"]["total"],
    );
    assert!(total.as_u64() > Some(0));
    assert!(
        stderr.contains(&format!(
            "after epoch 1: {passed} of {total} verdicts honored"
        )),
        "{stderr}"
    );
    let steps = records["steps"].as_array().map(Vec::len);
    let final_check = &records["fidelity"]["verdicts_honored"];
    if passed == total {
        assert_eq!(steps, Some(1), "stopped once every verdict was honored");
        assert!(
            stderr.contains("every verdict honored after 1 of at most 2 epochs"),
            "{stderr}"
        );
    } else {
        assert_eq!(steps, Some(2), "trained on to the end of the budget");
        let all = final_check["passed"] == final_check["total"];
        let said = if all {
            "every verdict honored after 2 of at most 2 epochs"
        } else {
            "2 epochs ran out before every verdict was honored: try a larger --max-epochs"
        };
        assert!(stderr.contains(said), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn finetune_takes_a_schedule_weight_decay_and_augmentation_and_refuses_bad_ones() {
    let dir = workdir("recipe");
    let annotations = write_set(&dir, Scene::New, 2, 5);
    let model = init_model(&dir);
    let finetune = |name: &str, recipe: &[&str]| {
        let adapted = dir.join(name);
        let args = [&["--epochs", "2"], recipe].concat();
        let out = finetune_in_pairs(&dir, &model, &annotations, &adapted, &args);
        (out, adapted)
    };
    let (plain, plain_weights) = finetune("plain.bpk", &[]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let recipe = [
        "--schedule",
        "warmup-cosine",
        "--weight-decay",
        "0.05",
        "--augment",
        "full",
    ];
    let (tuned, tuned_weights) = finetune("recipe.bpk", &recipe);
    assert!(tuned.status.success(), "{}", text(&tuned.stderr));
    assert_ne!(
        std::fs::read(&plain_weights).unwrap(),
        std::fs::read(&tuned_weights).unwrap(),
        "the recipe changes what is trained"
    );
    let (negative, _) = finetune("negative.bpk", &["--weight-decay", "-1"]);
    assert!(!negative.status.success());
    assert!(
        text(&negative.stderr)
            .contains("the weight decay is -1 but must be a finite number not below zero"),
        "{}",
        text(&negative.stderr)
    );
    let (stopped, _) = finetune("stopped.bpk", &["--learning-rate", "-0.5"]);
    assert!(
        text(&stopped.stderr)
            .contains("--learning-rate: the learning rate is -0.5: give a number above 0"),
        "{}",
        text(&stopped.stderr)
    );
    let (unknown, _) = finetune("unknown.bpk", &["--augment", "heavy"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("unknown augmentation 'heavy': use none, jitter or full"),
        "{}",
        text(&unknown.stderr)
    );
    for refused in ["negative.bpk", "stopped.bpk", "unknown.bpk"] {
        assert!(!dir.join(refused).exists(), "{refused} written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn models_in_either_format_predict_and_continue_training() {
    use veritune::weights::WeightsFormat;
    let dir = workdir("formats");
    let annotations = write_set(&dir, Scene::New, 2, 4);
    let model = init_model_as(&dir, "meta.safetensors");
    let format_of = |path: &Path| WeightsFormat::detect(&std::fs::read(path).unwrap());
    assert_eq!(format_of(&model), WeightsFormat::Safetensors);

    let finetune = |from: &Path, to: &Path| {
        let out = veritune(&[
            "finetune",
            "--model",
            from.to_str().unwrap(),
            "--images",
            dir.to_str().unwrap(),
            "--annotations",
            annotations.to_str().unwrap(),
            "--epochs",
            "1",
            "--rule",
            "transfer-only",
            "--output",
            to.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let adapted = dir.join("adapted.bpk");
    finetune(&model, &adapted);
    assert_eq!(format_of(&adapted), WeightsFormat::Burnpack);
    let again = dir.join("again.safetensors");
    finetune(&adapted, &again);
    assert_eq!(format_of(&again), WeightsFormat::Safetensors);

    let image = dir.join("scène 0.png");
    let predict = |model: &Path| {
        let out = veritune(&[
            "predict",
            "--model",
            model.to_str().unwrap(),
            image.to_str().unwrap(),
            "--threshold",
            "0.0",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    assert_eq!(predict(&again)[0]["width"], 64);
    assert_eq!(predict(&adapted)[0]["width"], 64);
    // Training continued from the burnpack file: the weights moved. (After
    // two steps every score may still be below the candidate floor, so the
    // predictions themselves can be equal, both empty.)
    let load = |path: &Path| {
        veritune::weights::load_fcos(&std::fs::read(path).unwrap(), &burn::tensor::Device::flex())
            .expect("loads")
    };
    assert_ne!(
        common::parameters(&load(&again)),
        common::parameters(&load(&adapted))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    let dir = workdir("pipe");
    let model = init_model(&dir);
    write_set(&dir, Scene::New, 1, 1);
    // The reading end is closed before veritune writes: as `veritune predict … | head -c 0`.
    let mut child = Command::new(env!("CARGO_BIN_EXE_veritune"))
        .args(["predict", "--candidates", "--threshold", "0", "--model"])
        .arg(&model)
        .arg(dir.join("scène 0.png"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("the binary ends");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn annotation_classes_are_matched_to_the_model_by_name() {
    let dir = workdir("class-names");
    let model = init_model(&dir);
    let annotations = write_set(&dir, Scene::New, 3, 5);
    let eval = |file: &Path| {
        veritune(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--images",
            dir.to_str().unwrap(),
            "--annotations",
            file.to_str().unwrap(),
            "--json",
        ])
    };
    // Only the rings, as the one category of the file: numbered 0 there, 1 in the model.
    let mut coco: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&annotations).unwrap()).unwrap();
    let ring = coco["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ring")
        .unwrap()["id"]
        .clone();
    let rings: Vec<serde_json::Value> = coco["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["category_id"] == ring)
        .map(|a| {
            let mut a = a.clone();
            a["category_id"] = 7.into();
            a
        })
        .collect();
    assert!(!rings.is_empty());
    coco["annotations"] = rings.into();
    coco["categories"] = serde_json::json!([{"id": 7, "name": "ring"}]);
    let only_rings = dir.join("rings.json");
    std::fs::write(&only_rings, coco.to_string()).unwrap();
    let out = eval(&only_rings);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let classes = &report["classes"];
    assert_eq!(classes[0][0], "square");
    assert_eq!(classes[1][0], "ring");
    assert!(
        classes[0][1].is_null() && classes[1][1].is_number(),
        "no squares, some rings: {report}"
    );

    coco["categories"][0]["name"] = "triangle".into();
    let unknown = dir.join("unknown.json");
    std::fs::write(&unknown, coco.to_string()).unwrap();
    let refused = eval(&unknown);
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(
        message.contains("unknown.json has categories the model does not know (triangle); its classes are square, ring"),
        "{message}"
    );
}
