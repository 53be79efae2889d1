//! The method's promise on a small two-scenario problem: fine-tuning on a new
//! scene with the default (symmetric) mixing rule keeps the old scene's loss
//! clearly lower than plain fine-tuning, at a comparable new-scene loss.

mod common;

use burn::tensor::Device;
use common::{Scene, samples, tiny_detector};
use veritune::history::{HistoryConfig, HistoryLibrary};
use veritune::mixing::MixingRule;
use veritune::trainer::{Control, TrainConfig, mean_loss, train};

struct Figures {
    old_loss: f64,
    new_loss: f64,
}

fn fine_tune(seed: u64, rule: MixingRule) -> (Figures, Figures) {
    let device = Device::flex().autodiff();
    burn::tensor::Device::seed(&device, seed);
    let old_train = samples(Scene::Old, 48, seed);
    let old_test = samples(Scene::Old, 24, seed + 1000);
    let new_train = samples(Scene::New, 16, seed + 2000);
    let new_test = samples(Scene::New, 24, seed + 3000);

    // The meta-model: trained on the old scene only.
    let mut empty = HistoryLibrary::new(HistoryConfig::default());
    let pretrain = TrainConfig {
        epochs: 12,
        learning_rate: 3e-3,
        rule: MixingRule::TransferOnly,
        seed,
        ..TrainConfig::default()
    };
    let meta = train(
        tiny_detector(&device),
        pretrain,
        &old_train,
        &mut empty,
        |_, _| Control::Continue,
    )
    .expect("pretraining runs")
    .model;
    let before = Figures {
        old_loss: mean_loss(&meta, &old_test, 8),
        new_loss: mean_loss(&meta, &new_test, 8),
    };

    let mut history =
        HistoryLibrary::with_members(HistoryConfig::default(), old_train).expect("history fits");
    let config = TrainConfig {
        epochs: 12,
        learning_rate: 2e-3,
        rule,
        seed,
        ..TrainConfig::default()
    };
    let adapted = train(meta, config, &new_train, &mut history, |_, _| {
        Control::Continue
    })
    .expect("fine-tuning runs")
    .model;
    let after = Figures {
        old_loss: mean_loss(&adapted, &old_test, 8),
        new_loss: mean_loss(&adapted, &new_test, 8),
    };
    (before, after)
}

#[test]
fn symmetric_mixing_forgets_less_than_transfer_only() {
    for seed in [1, 2, 3] {
        let (before, plain) = fine_tune(seed, MixingRule::TransferOnly);
        let (_, mixed) = fine_tune(seed, MixingRule::Symmetric);
        println!(
            "seed {seed}: meta-model old {:.3} new {:.3} | transfer-only old {:.3} new {:.3} | symmetric old {:.3} new {:.3}",
            before.old_loss,
            before.new_loss,
            plain.old_loss,
            plain.new_loss,
            mixed.old_loss,
            mixed.new_loss
        );
        assert!(
            mixed.old_loss < 0.7 * plain.old_loss,
            "seed {seed}: old-scene loss {:.3} (symmetric) is not clearly below {:.3} (transfer-only)",
            mixed.old_loss,
            plain.old_loss
        );
        assert!(
            mixed.new_loss < 1.5 * plain.new_loss && mixed.new_loss < 0.8 * before.new_loss,
            "seed {seed}: new-scene loss {:.3} (symmetric) is not comparable to {:.3} (transfer-only) or did not improve on {:.3}",
            mixed.new_loss,
            plain.new_loss,
            before.new_loss
        );
    }
}
