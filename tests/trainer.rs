//! The training loop as a user relies on it: every step recorded, the same
//! seed gives the same model, cancelling keeps the last completed step, a
//! non-finite step is skipped, and the history library absorbs a round.

mod common;

use burn::tensor::Device;
use common::{Scene, parameters, samples, tiny_detector};
use veritune::augment::AugmentConfig;
use veritune::history::{HistoryConfig, HistoryLibrary, HistoryPolicy};
use veritune::image::Image;
use veritune::mixing::{MixScope, MixingRule};
use veritune::sample::Sample;
use veritune::schedule::Schedule;
use veritune::trainer::{
    Control, SkipReason, TrainConfig, TrainError, TrainingRun, train, train_until, update_history,
};

fn config(rule: MixingRule) -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_size: 4,
        learning_rate: 1e-3,
        rule,
        scope: MixScope::All,
        seed: 7,
        ..TrainConfig::default()
    }
}

fn history() -> HistoryLibrary<Sample> {
    HistoryLibrary::with_members(HistoryConfig::default(), samples(Scene::Old, 8, 11))
        .expect("fits")
}

#[test]
fn every_step_is_recorded_with_its_mix() {
    let device = Device::flex().autodiff();
    let transfer = samples(Scene::New, 10, 1);
    let mut seen = Vec::new();
    let outcome = train(
        tiny_detector(&device),
        config(MixingRule::Symmetric),
        &transfer,
        &mut history(),
        |record, total| {
            seen.push((record.step, total));
            Control::Continue
        },
    )
    .expect("trains");
    // 10 samples in batches of 4: 3 steps per epoch, 2 epochs.
    assert_eq!(seen, (0..6).map(|s| (s, 6)).collect::<Vec<_>>());
    assert!(!outcome.cancelled);
    for record in &outcome.records {
        assert!(record.transfer_loss.is_finite() && record.history_loss.is_some());
        assert!((-1.0..=1.0).contains(&record.mix.similarity));
        assert!(record.mix.norm_t > 0.0 && record.mix.norm_h > 0.0);
        assert_eq!(record.skipped, None);
    }
    assert_eq!(outcome.records[3].epoch, 1);
}

#[test]
fn training_until_a_check_passes_stops_at_the_end_of_that_epoch() {
    let device = Device::flex().autodiff();
    let transfer = samples(Scene::New, 10, 1);
    let budget = TrainConfig {
        epochs: 5,
        ..config(MixingRule::Symmetric)
    };
    let until = |passes_after: usize| {
        let mut checked = Vec::new();
        let outcome = train_until(
            tiny_detector(&device),
            budget.clone(),
            &transfer,
            &mut history(),
            |_, _| Control::Continue,
            |_, epochs| {
                checked.push(epochs);
                if epochs >= passes_after {
                    Control::Cancel
                } else {
                    Control::Continue
                }
            },
        )
        .expect("trains");
        (outcome, checked)
    };
    // 10 samples in batches of 4: 3 steps per epoch.
    let (outcome, checked) = until(2);
    assert_eq!(
        checked,
        vec![1, 2],
        "checked after each epoch, stopped after the second"
    );
    assert_eq!(outcome.records.len(), 6);
    assert!(!outcome.cancelled, "stopping on the check is not a cancel");
    // A check that never passes: every epoch of the budget runs, and none is
    // checked after the last (the caller checks the final model itself).
    let (outcome, checked) = until(usize::MAX);
    assert_eq!(checked, vec![1, 2, 3, 4]);
    assert_eq!(outcome.records.len(), 15);
    assert!(!outcome.cancelled);
}

#[test]
fn the_same_seed_gives_the_same_model_and_cancelling_keeps_the_last_step() {
    let device = Device::flex().autodiff();
    let transfer = samples(Scene::New, 8, 2);
    let start = tiny_detector(&device);
    let run = |steps: usize| {
        let mut done = 0;
        train(
            start.clone(),
            config(MixingRule::Symmetric),
            &transfer,
            &mut history(),
            |_, _| {
                done += 1;
                if done >= steps {
                    Control::Cancel
                } else {
                    Control::Continue
                }
            },
        )
        .expect("trains")
    };
    let full_a = run(usize::MAX);
    let full_b = run(usize::MAX);
    assert_eq!(parameters(&full_a.model), parameters(&full_b.model));

    let cancelled = run(2);
    assert!(cancelled.cancelled);
    assert_eq!(cancelled.records.len(), 2);
    assert_eq!(cancelled.records, full_a.records[..2].to_vec());
    // The model after cancelling is the model of step 2: the same as a run
    // of exactly two steps (one epoch of two batches), and neither step 1's
    // nor the full run's.
    let mut two_steps = config(MixingRule::Symmetric);
    two_steps.epochs = 1;
    let exactly_two = train(
        start.clone(),
        two_steps,
        &transfer,
        &mut history(),
        |_, _| Control::Continue,
    )
    .expect("trains");
    assert_eq!(exactly_two.records.len(), 2);
    assert_eq!(parameters(&cancelled.model), parameters(&exactly_two.model));
    assert_ne!(parameters(&cancelled.model), parameters(&run(1).model));
    assert_ne!(parameters(&cancelled.model), parameters(&full_a.model));
}

#[test]
fn augmentation_schedule_and_weight_decay_each_change_training_repeatably() {
    let device = Device::flex().autodiff();
    let transfer = samples(Scene::New, 8, 4);
    let start = tiny_detector(&device);
    let run = |cfg: TrainConfig| {
        train(start.clone(), cfg, &transfer, &mut history(), |_, _| {
            Control::Continue
        })
        .expect("trains")
    };
    let plain = run(config(MixingRule::Symmetric));
    let augmented = TrainConfig {
        augment: AugmentConfig {
            scale: 0.2,
            translate: 0.1,
            brightness: 0.2,
            hue: 0.05,
            mosaic: 0.5,
            copy_paste: 0.5,
            ..AugmentConfig::none()
        },
        ..config(MixingRule::Symmetric)
    };
    let (a, b) = (run(augmented.clone()), run(augmented));
    assert_eq!(parameters(&a.model), parameters(&b.model), "seeded");
    // The first step already sees other pixels and boxes.
    assert_ne!(a.records[0].transfer_loss, plain.records[0].transfer_loss);

    // Warm-up and cosine: the same first step (one warm-up step at the peak),
    // then smaller steps.
    let cosine = run(TrainConfig {
        schedule: Schedule::WarmupCosine,
        ..config(MixingRule::Symmetric)
    });
    assert_eq!(cosine.records[..2], plain.records[..2]);
    assert_ne!(parameters(&cosine.model), parameters(&plain.model));

    let decayed = run(TrainConfig {
        weight_decay: 0.05,
        ..config(MixingRule::Symmetric)
    });
    assert_ne!(parameters(&decayed.model), parameters(&plain.model));
}

#[test]
fn a_non_finite_step_is_skipped_the_weights_kept_and_training_goes_on() {
    let device = Device::flex().autodiff();
    let mut transfer = samples(Scene::New, 4, 3);
    let size = transfer[0].image.width();
    transfer[0].image =
        Image::from_rgb(size, size, vec![f32::NAN; size * size * 3]).expect("sized");
    // Two epochs of single-sample steps: whatever the shuffle, a normal step
    // follows the first skipped one.
    let mut cfg = config(MixingRule::Symmetric);
    cfg.batch_size = 1;
    let mut library = history();
    let mut run =
        TrainingRun::new(tiny_detector(&device), cfg, &transfer, &mut library).expect("starts");
    let mut saw_skip = false;
    let mut trained_after_skip = false;
    while !run.is_finished() {
        let before = parameters(run.model());
        let record = pollster::block_on(run.step())
            .expect("steps")
            .expect("a step");
        let after = parameters(run.model());
        match record.skipped {
            Some(reason) => {
                assert_eq!(reason, SkipReason::TransferLoss);
                assert!(record.transfer_loss.is_nan());
                assert_eq!(after, before, "a skipped step changes no weight");
                saw_skip = true;
            }
            None => {
                assert!(record.transfer_loss.is_finite());
                assert_ne!(after, before, "a normal step trains");
                trained_after_skip |= saw_skip;
            }
        }
    }
    assert!(saw_skip, "the NaN image was trained on");
    assert!(trained_after_skip, "steps after the skipped one train");
    assert_eq!(
        serde_json::to_value(SkipReason::Gradient).expect("serialises"),
        "gradient"
    );
}

#[test]
fn training_without_samples_or_with_an_empty_schedule_is_refused() {
    let device = Device::flex().autodiff();
    let err = train(
        tiny_detector(&device),
        config(MixingRule::Symmetric),
        &[],
        &mut history(),
        |_, _| Control::Continue,
    )
    .err()
    .expect("refused");
    assert!(matches!(err, TrainError::NoTransferSamples));
    let mut cfg = config(MixingRule::Symmetric);
    cfg.batch_size = 0;
    let err = train(
        tiny_detector(&device),
        cfg,
        &samples(Scene::New, 2, 4),
        &mut history(),
        |_, _| Control::Continue,
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("batch size"), "{err}");
}

#[test]
fn a_learning_rate_or_weight_decay_out_of_range_is_refused_with_its_value() {
    let device = Device::flex().autodiff();
    let refused = |learning_rate: f64, weight_decay: f64| {
        let config = TrainConfig {
            learning_rate,
            weight_decay,
            ..config(MixingRule::Symmetric)
        };
        train(
            tiny_detector(&device),
            config,
            &samples(Scene::New, 2, 4),
            &mut history(),
            |_, _| Control::Continue,
        )
        .err()
        .map(|e| e.to_string())
    };
    assert_eq!(
        refused(0.0, 0.0).as_deref(),
        Some("the learning rate is 0 but must be a finite number above zero")
    );
    assert_eq!(
        refused(f64::NAN, 0.0).as_deref(),
        Some("the learning rate is NaN but must be a finite number above zero")
    );
    assert_eq!(
        refused(1e-3, -0.01).as_deref(),
        Some("the weight decay is -0.01 but must be a finite number not below zero")
    );
    assert_eq!(refused(1e-3, 0.01), None, "AdamW trains");
}

#[test]
fn head_only_scope_mixes_with_a_different_similarity() {
    let device = Device::flex().autodiff();
    let transfer = samples(Scene::New, 4, 5);
    let mut all = config(MixingRule::Symmetric);
    all.epochs = 1;
    let mut head = all.clone();
    head.scope = MixScope::Head;
    let model = tiny_detector(&device);
    let a = train(model.clone(), all, &transfer, &mut history(), |_, _| {
        Control::Continue
    })
    .expect("trains");
    let h = train(model, head, &transfer, &mut history(), |_, _| {
        Control::Continue
    })
    .expect("trains");
    assert_eq!(a.records[0].transfer_loss, h.records[0].transfer_loss);
    assert_ne!(a.records[0].mix.similarity, h.records[0].mix.similarity);
    assert!(h.records[0].mix.norm_t < a.records[0].mix.norm_t);
}

#[test]
fn the_history_library_takes_in_a_round_within_its_capacity() {
    let device = Device::flex().autodiff();
    let model = tiny_detector(&device);
    let config = HistoryConfig {
        capacity: 10,
        ..HistoryConfig::default()
    };
    for policy in [HistoryPolicy::GradientBased, HistoryPolicy::Reservoir] {
        let mut library =
            HistoryLibrary::with_members(config.clone(), samples(Scene::Old, 8, 6)).expect("fits");
        let newcomers = samples(Scene::New, 6, 7);
        pollster::block_on(update_history(
            &model,
            &mut library,
            newcomers.clone(),
            policy,
        ))
        .expect("updates");
        assert_eq!(library.len(), 10, "{policy}");
        let admitted = library
            .members()
            .iter()
            .filter(|m| newcomers.contains(m))
            .count();
        assert!(admitted >= 1, "{policy}: no transfer sample became history");
    }
}
