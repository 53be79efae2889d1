//! What a labeling session keeps beside its model: the reviewed images
//! keyed by image, each with its sample and the verdicts it came from, and
//! the history library keyed by name. Training takes its transfer samples
//! and the verdicts to honor from here; the history update offers the
//! reviewed images not yet in the library.

use std::collections::BTreeMap;

use crate::app::library::{NamedHistory, PushError};
use crate::app::review::{Review, Reviewer};
use crate::geometry::Detection;
use crate::image::Image;
use crate::predict::Reviewed;
use crate::sample::Sample;
use crate::verdict::{Category, ImageVerdicts, VerdictError};

/// A reviewed image: the sample trained on and the verdicts it came from,
/// in the pixels of its image.
#[derive(Clone, Debug)]
pub struct Verified {
    /// What training learns from the image.
    pub sample: Sample,
    /// The checked verdicts, in the image's pixels.
    pub verdicts: ImageVerdicts,
    /// `[width, height]` of the image.
    pub size: [usize; 2],
}

/// How many reviewed images of each kind, and history members, a session holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReviewStats {
    /// Reviewed images.
    pub samples: usize,
    /// Reviewed images whose every shown box was right.
    pub correct: usize,
    /// Reviewed images with a drawn (missed) box.
    pub missed: usize,
    /// Reviewed images with a rejected (false) box.
    pub false_detections: usize,
    /// History library members.
    pub history: usize,
}

/// A run's transfer samples and the verdicts to honor, in the same order.
#[derive(Clone, Debug)]
pub struct RunInputs {
    /// The reviewed images' samples.
    pub transfer: Vec<Sample>,
    /// Each sample's verdicts and image size.
    verdicts: Vec<(ImageVerdicts, [usize; 2])>,
}

impl RunInputs {
    /// The reviewed images with their verdicts, for the checks of a run
    /// that trains until they are honored.
    pub fn reviewed(&self) -> Vec<Reviewed<'_>> {
        self.transfer
            .iter()
            .zip(&self.verdicts)
            .map(|(sample, (verdicts, size))| Reviewed {
                image: &sample.image,
                verdicts,
                size: *size,
            })
            .collect()
    }
}

/// The reviewed images by id and the named history library.
#[derive(Clone, Debug, Default)]
pub struct Reviews {
    images: BTreeMap<String, Verified>,
    history: NamedHistory,
}

impl Reviews {
    /// Reviews `image` (verdicts given on a `given_on` picture of it, on the
    /// detector's `candidates`) and keeps it as `id`, in place of an earlier
    /// review of it; returns its categories.
    pub fn review(
        &mut self,
        reviewer: &Reviewer<'_>,
        id: String,
        image: &Image,
        given_on: [usize; 2],
        verdicts: &ImageVerdicts,
        candidates: &[Detection],
    ) -> Result<Vec<Category>, VerdictError> {
        let Review { sample, verdicts } = reviewer.review(image, given_on, verdicts, candidates)?;
        let categories = verdicts.categories();
        let size = [image.width(), image.height()];
        self.images.insert(
            id,
            Verified {
                sample,
                verdicts,
                size,
            },
        );
        Ok(categories)
    }

    /// Forgets the reviewed image `id` (nothing when there is none).
    pub fn remove(&mut self, id: &str) {
        self.images.remove(id);
    }

    /// The reviewed image `id`.
    pub fn get(&self, id: &str) -> Option<&Verified> {
        self.images.get(id)
    }

    /// What a run trains on and checks, copied out so the session can go
    /// on (predict, review) while the run awaits.
    pub fn run_inputs(&self) -> RunInputs {
        let (transfer, verdicts) = self
            .images
            .values()
            .map(|v| (v.sample.clone(), (v.verdicts.clone(), v.size)))
            .unzip();
        RunInputs { transfer, verdicts }
    }

    /// The reviewed images not in the history library, offered to its update.
    pub fn newcomers(&self) -> Vec<(String, Sample)> {
        self.images
            .iter()
            .filter(|(id, _)| !self.history.contains(id))
            .map(|(id, v)| (id.clone(), v.sample.clone()))
            .collect()
    }

    /// Adds `sample` to the history library as `name`.
    pub fn push_history(&mut self, name: String, sample: Sample) -> Result<(), PushError> {
        self.history.push(name, sample)
    }

    /// The history library.
    pub fn history(&self) -> &NamedHistory {
        &self.history
    }

    /// Takes the history library out for a run or an update (which hold it
    /// across awaits); [`Reviews::put_history`] puts it back.
    pub fn take_history(&mut self) -> NamedHistory {
        std::mem::take(&mut self.history)
    }

    /// Puts back the history library a run or an update took.
    pub fn put_history(&mut self, history: NamedHistory) {
        self.history = history;
    }

    /// How many reviewed images of each kind there are, and history members.
    pub fn stats(&self) -> ReviewStats {
        let count = |category: Category| {
            self.images
                .values()
                .filter(|v| v.verdicts.categories().contains(&category))
                .count()
        };
        ReviewStats {
            samples: self.images.len(),
            correct: count(Category::Correct),
            missed: count(Category::MissedDetection),
            false_detections: count(Category::FalseDetection),
            history: self.history.library().len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::fcos::FcosConfig;
    use crate::geometry::{BBox, LabeledBox};
    use crate::verdict::{Judgement, ShownBox, TargetConfig};

    #[test]
    fn reviews_are_kept_by_image_replaced_counted_and_offered_to_the_library() {
        let spec = FcosConfig::new(vec!["a".into()]).with_input_size(64).spec();
        let reviewer = Reviewer {
            spec: &spec,
            target: TargetConfig::default(),
        };
        let image = Image::filled(100, 50, [0.5; 3]);
        let shown = Detection {
            bbox: BBox::new(10.0, 10.0, 30.0, 30.0),
            class: 0,
            score: 0.9,
        };
        let judged = |judgement| ImageVerdicts {
            shown: vec![ShownBox {
                detection: shown,
                judgement: Some(judgement),
            }],
            ..ImageVerdicts::default()
        };
        let drawn = ImageVerdicts {
            drawn: vec![LabeledBox {
                bbox: BBox::new(50.0, 10.0, 70.0, 30.0),
                class: 0,
            }],
            ..ImageVerdicts::default()
        };
        let mut reviews = Reviews::default();
        let on = |reviews: &mut Reviews, id: &str, verdicts: &ImageVerdicts| {
            reviews.review(&reviewer, id.into(), &image, [200, 100], verdicts, &[shown])
        };
        assert_eq!(
            on(&mut reviews, "a", &judged(Judgement::Confirmed)),
            Ok(vec![Category::Correct])
        );
        assert_eq!(
            on(&mut reviews, "b", &drawn),
            Ok(vec![Category::MissedDetection])
        );
        // Given on a picture twice the image's size: kept in the image's pixels.
        let b = reviews.get("b").expect("kept");
        assert_eq!(b.verdicts.drawn[0].bbox, BBox::new(25.0, 5.0, 35.0, 15.0));
        assert_eq!(b.size, [100, 50]);
        // A new review of an image replaces the old one.
        assert_eq!(
            on(&mut reviews, "a", &judged(Judgement::Rejected)),
            Ok(vec![Category::FalseDetection])
        );
        let counts = |reviews: &Reviews| {
            let s = reviews.stats();
            (
                s.samples,
                s.correct,
                s.missed,
                s.false_detections,
                s.history,
            )
        };
        assert_eq!(counts(&reviews), (2, 0, 1, 1, 0));
        let inputs = reviews.run_inputs();
        assert_eq!(inputs.transfer.len(), 2);
        let first = inputs.reviewed()[0].verdicts.shown[0].judgement;
        assert_eq!(
            first,
            Some(Judgement::Rejected),
            "in id order, as the samples"
        );

        // A reviewed image in the library is no longer offered to its update.
        let sample = reviews.get("a").expect("kept").sample.clone();
        reviews.push_history("a".into(), sample).expect("room");
        let offered: Vec<String> = reviews.newcomers().into_iter().map(|(id, _)| id).collect();
        assert_eq!(offered, vec!["b".to_string()]);
        assert_eq!(counts(&reviews).4, 1);
        reviews.remove("b");
        assert_eq!(counts(&reviews), (1, 0, 0, 1, 1));
        assert!(reviews.get("b").is_none());
    }
}
