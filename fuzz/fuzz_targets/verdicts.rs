//! The verdicts reader and the verdict rules never panic: boxes fitted to an
//! image are valid and inside it, and the target has one positive per
//! confirmed, corrected or drawn box and one negative per rejected box.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::dataset::parse_verdicts;
use veritune_fuzz::verdict::{Judgement, TargetConfig, build_target};

const WIDTH: f32 = 640.0;
const HEIGHT: f32 = 480.0;
const CLASSES: usize = 3;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(verdicts) = parse_verdicts(json) else {
        return;
    };
    for image in verdicts.values() {
        let Ok(fitted) = image.fit_to_image(WIDTH, HEIGHT, CLASSES) else {
            continue;
        };
        let boxes = fitted
            .shown
            .iter()
            .map(|s| s.detection.bbox)
            .chain(fitted.drawn.iter().map(|d| d.bbox));
        for b in boxes {
            assert!(
                b.is_valid() && b.x0 >= 0.0 && b.x1 <= WIDTH && b.y1 <= HEIGHT,
                "{b:?}"
            );
        }
        let Ok(target) = build_target(&fitted, &[], &TargetConfig::default()) else {
            assert!(!fitted.is_reviewed());
            continue;
        };
        let rejected = fitted
            .shown
            .iter()
            .filter(|s| s.judgement == Some(Judgement::Rejected))
            .count();
        assert_eq!(target.negatives.len(), rejected);
        assert_eq!(
            target.positives.len(),
            fitted.shown.len() - rejected + fitted.drawn.len()
        );
        assert!(target.positives.iter().all(|p| p.label.class < CLASSES));
    }
});
