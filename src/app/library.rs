//! The history library as the application keeps it: every member under a
//! name the user's images and sample files go by, in library order, through
//! pushes and updates (METHOD.md section 3).

use std::future::Future;

use serde::Serialize;
use thiserror::Error;

use crate::detector::Detector;
use crate::history::{HistoryConfig, HistoryLibrary, HistoryPolicy};
use crate::sample::Sample;
use crate::trainer::{TrainError, update_history_with};

/// A history library whose members have names.
#[derive(Clone, Debug)]
pub struct NamedHistory {
    library: HistoryLibrary<Sample>,
    /// The name of each member, in library order.
    names: Vec<String>,
}

/// A sample the library cannot take.
#[derive(Debug, Error, PartialEq)]
pub enum PushError {
    /// The name is taken.
    #[error("'{0}' is already in the history library")]
    Taken(String),
    /// No room left.
    #[error("the history library is full ({0} samples)")]
    Full(usize),
}

/// What an update of the library did, by name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NamedUpdate {
    /// The members after it, in library order.
    pub members: Vec<String>,
    /// The newcomers that came in.
    pub admitted: Vec<String>,
    /// The members that left.
    pub evicted: Vec<String>,
    /// How many newcomers were offered.
    pub offered: usize,
}

impl Default for NamedHistory {
    fn default() -> Self {
        Self::new(HistoryConfig::default())
    }
}

impl NamedHistory {
    /// An empty library with `config`.
    pub fn new(config: HistoryConfig) -> Self {
        Self {
            library: HistoryLibrary::new(config),
            names: Vec::new(),
        }
    }

    /// The samples, in library order (what training replays).
    pub fn library(&self) -> &HistoryLibrary<Sample> {
        &self.library
    }

    /// The samples, for a training run's batch walk.
    pub fn library_mut(&mut self) -> &mut HistoryLibrary<Sample> {
        &mut self.library
    }

    /// The members' names, in library order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether a member goes by `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Adds `sample` under `name` at the end of the library.
    pub fn push(&mut self, name: String, sample: Sample) -> Result<(), PushError> {
        if self.contains(&name) {
            return Err(PushError::Taken(name));
        }
        let capacity = self.library.capacity();
        if self.library.len() >= capacity {
            return Err(PushError::Full(capacity));
        }
        let mut members = self.library.members().to_vec();
        members.push(sample);
        self.library = HistoryLibrary::with_members(self.library.config().clone(), members)
            .map_err(|_| PushError::Full(capacity))?;
        self.names.push(name);
        Ok(())
    }

    /// Lets `newcomers` (named samples not in the library) compete with the
    /// members for a place under `policy`, by the gradients of `model`,
    /// awaiting `progress(done, total)` after each gradient. On error the
    /// library stays as it was.
    pub async fn update<M, P, F>(
        &mut self,
        model: &M,
        newcomers: Vec<(String, Sample)>,
        policy: HistoryPolicy,
        progress: P,
    ) -> Result<NamedUpdate, TrainError>
    where
        M: Detector,
        P: FnMut(usize, usize) -> F,
        F: Future<Output = ()>,
    {
        let (newcomer_names, samples): (Vec<String>, Vec<Sample>) = newcomers.into_iter().unzip();
        let selection =
            update_history_with(model, &mut self.library, samples, policy, progress).await?;
        let names = std::mem::take(&mut self.names);
        let kept = selection.arrange(names.clone(), Vec::new());
        let evicted = names
            .iter()
            .filter(|name| !kept.contains(name))
            .cloned()
            .collect();
        let update = NamedUpdate {
            admitted: selection.arrange(Vec::new(), newcomer_names.clone()),
            evicted,
            offered: newcomer_names.len(),
            members: selection.arrange(names, newcomer_names),
        };
        self.names = update.members.clone();
        Ok(update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::fcos::FcosConfig;
    use crate::geometry::{BBox, LabeledBox};
    use crate::image::Image;
    use burn::tensor::Device;

    fn sample(shade: f32, class: usize) -> Sample {
        let spec = FcosConfig::new(vec!["a".into(), "b".into()])
            .with_input_size(32)
            .spec();
        let object = LabeledBox {
            bbox: BBox::new(4.0, 4.0, 20.0, 20.0),
            class,
        };
        Sample::from_ground_truth(&Image::filled(32, 32, [shade; 3]), &[object], &spec)
    }

    fn small(capacity: usize) -> NamedHistory {
        NamedHistory::new(HistoryConfig {
            capacity,
            ..HistoryConfig::default()
        })
    }

    #[test]
    fn members_keep_their_names_and_a_name_or_a_place_is_not_given_twice() {
        let mut history = small(2);
        history.push("a".into(), sample(0.1, 0)).unwrap();
        assert_eq!(
            history.push("a".into(), sample(0.2, 0)),
            Err(PushError::Taken("a".into()))
        );
        history.push("b".into(), sample(0.3, 1)).unwrap();
        assert_eq!(
            history.push("c".into(), sample(0.4, 0)),
            Err(PushError::Full(2))
        );
        assert_eq!(history.names(), ["a", "b"]);
        assert_eq!(history.library().members()[1], sample(0.3, 1));
        assert!(history.contains("b") && !history.contains("c"));
    }

    #[test]
    fn an_update_names_who_came_in_and_who_left_in_library_order() {
        let model = FcosConfig::new(vec!["a".into(), "b".into()])
            .with_input_size(32)
            .with_width(4)
            .init(&Device::flex().autodiff());
        let mut history = small(3);
        for (name, shade) in [("a", 0.1), ("b", 0.2), ("c", 0.3)] {
            history.push(name.into(), sample(shade, 0)).unwrap();
        }
        let newcomers = vec![
            ("x".to_string(), sample(0.8, 1)),
            ("y".to_string(), sample(0.9, 1)),
        ];
        let update = pollster::block_on(history.update(
            &model,
            newcomers,
            HistoryPolicy::Reservoir,
            |_, _| std::future::ready(()),
        ))
        .unwrap();
        assert_eq!(update.offered, 2);
        assert_eq!(update.members.len(), 3);
        assert_eq!(history.names(), update.members.as_slice());
        assert!(!update.admitted.is_empty(), "{update:?}");
        assert_eq!(update.admitted.len(), update.evicted.len());
        for name in &update.admitted {
            assert!(["x", "y"].contains(&name.as_str()) && update.members.contains(name));
        }
        for name in &update.evicted {
            assert!(!update.members.contains(name));
        }
        // The samples moved with their names.
        for (name, member) in history.names().iter().zip(history.library().members()) {
            let class = member.target.positives[0].label.class;
            assert_eq!(
                class,
                usize::from(["x", "y"].contains(&name.as_str())),
                "{name}"
            );
        }
    }
}
