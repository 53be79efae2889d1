//! The history library: a bounded set of past training samples that each epoch
//! mixes into the transfer batches, and its update after a round of transfer
//! training (METHOD.md section 3).
//!
//! The update is gradient-based sample selection in the manner of GSS: samples
//! whose gradients repeat directions the library (or the current transfer data)
//! already covers score high, newcomers with the lowest scores are admitted and,
//! once the library is full, the highest-scored members are evicted, while a
//! per-class floor keeps every class present. Reservoir sampling is kept as a
//! baseline. Gradients arrive as plain vectors computed elsewhere; no tensors here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What can go wrong when building or updating a history library.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HistoryError {
    /// More members were offered than the library may hold.
    #[error("{len} history members exceed the library capacity of {capacity}")]
    OverCapacity {
        /// Number of members offered.
        len: usize,
        /// The library capacity.
        capacity: usize,
    },
    /// A candidate gradient differs in length from the mean transfer gradient.
    #[error("a gradient has {found} entries where {expected} were expected")]
    GradientLength {
        /// Length of the mean transfer gradient.
        expected: usize,
        /// Length of the offending gradient.
        found: usize,
    },
    /// A selection names a member or newcomer that does not exist, or names one twice.
    #[error("the selection names {which} {index} which is out of range (of {len}) or repeated")]
    InvalidSelection {
        /// `"member"` or `"newcomer"`.
        which: &'static str,
        /// The offending index.
        index: usize,
        /// How many of that kind there are.
        len: usize,
    },
    /// A policy name that is not one of [`HistoryPolicy::NAMES`].
    #[error("unknown history policy {given:?}; expected one of: {}", HistoryPolicy::NAMES.join(", "))]
    UnknownPolicy {
        /// The name given.
        given: String,
    },
}

/// How the history library is updated after a round of transfer training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryPolicy {
    /// Gradient-based sample selection (the method): [`select_gradient_based`].
    #[default]
    GradientBased,
    /// Classic reservoir sampling (the baseline): [`select_reservoir`].
    Reservoir,
}

impl HistoryPolicy {
    /// The names the policies go by, in configuration files and on the command line.
    pub const NAMES: [&'static str; 2] = ["gradientbased", "reservoir"];

    /// The name of this policy, as written in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Self::GradientBased => Self::NAMES[0],
            Self::Reservoir => Self::NAMES[1],
        }
    }
}

impl fmt::Display for HistoryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HistoryPolicy {
    type Err = HistoryError;

    /// Parses a policy name, ignoring case and surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gradientbased" => Ok(Self::GradientBased),
            "reservoir" => Ok(Self::Reservoir),
            _ => Err(HistoryError::UnknownPolicy {
                given: s.to_owned(),
            }),
        }
    }
}

/// Settings of the history library and its gradient-based update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Most samples the library holds.
    pub capacity: usize,
    /// Least number of members kept per class, for every class present among the
    /// candidates of an update, as far as the candidates and the capacity allow.
    pub class_floor: usize,
    /// Number of random library subsets a candidate's gradient is compared with.
    pub subsets: usize,
    /// Number of members in each random subset.
    pub subset_size: usize,
    /// Seed of the random generator the update draws its subsets from.
    pub seed: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            capacity: 256,
            class_floor: 1,
            subsets: 3,
            subset_size: 10,
            seed: 0,
        }
    }
}

impl HistoryConfig {
    /// A random generator seeded from [`HistoryConfig::seed`], to be kept across rounds.
    pub fn rng(&self) -> StdRng {
        StdRng::seed_from_u64(self.seed)
    }
}

/// One sample offered to the gradient-based update, member or newcomer.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// The sample's loss gradient with respect to the head parameters.
    pub gradient: &'a [f32],
    /// The classes of the sample's labels; empty for a pure negative sample.
    pub classes: &'a [usize],
}

/// The outcome of an update: which members stay and which newcomers come in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Indices of the current members that stay, ascending.
    pub kept_members: Vec<usize>,
    /// Indices of the newcomers admitted, ascending.
    pub admitted: Vec<usize>,
    /// Redundancy score of each current member; empty for a policy that does not score.
    pub scores_members: Vec<f32>,
    /// Redundancy score of each newcomer; empty for a policy that does not score.
    pub scores_newcomers: Vec<f32>,
}

/// A bounded library of history samples with an in-order batch walk over it.
#[derive(Clone, Debug)]
pub struct HistoryLibrary<S> {
    members: Vec<S>,
    config: HistoryConfig,
    cursor: usize,
    seen: usize,
}

impl<S> HistoryLibrary<S> {
    /// An empty library.
    pub fn new(config: HistoryConfig) -> Self {
        Self {
            members: Vec::new(),
            config,
            cursor: 0,
            seen: 0,
        }
    }

    /// A library holding `members`, which count as seen; an error if they exceed the capacity.
    pub fn with_members(config: HistoryConfig, members: Vec<S>) -> Result<Self, HistoryError> {
        if members.len() > config.capacity {
            return Err(HistoryError::OverCapacity {
                len: members.len(),
                capacity: config.capacity,
            });
        }
        let seen = members.len();
        Ok(Self {
            members,
            config,
            cursor: 0,
            seen,
        })
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the library holds no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Most members the library holds.
    pub fn capacity(&self) -> usize {
        self.config.capacity
    }

    /// The library's settings.
    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// The members, in library order.
    pub fn members(&self) -> &[S] {
        &self.members
    }

    /// Number of samples ever offered to the library (initial members and all newcomers).
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Indices of the next `n` members in library order, wrapping around to the
    /// start (more than once if `n` exceeds the length); empty for an empty library.
    pub fn next_batch_indices(&mut self, n: usize) -> Vec<usize> {
        let len = self.members.len();
        if len == 0 {
            return Vec::new();
        }
        let start = self.cursor;
        self.cursor = (start + n % len) % len;
        (0..n).map(|k| (start + k % len) % len).collect()
    }

    /// The next `n` members in library order, as [`HistoryLibrary::next_batch_indices`].
    pub fn next_batch(&mut self, n: usize) -> Vec<&S> {
        let indices = self.next_batch_indices(n);
        indices.into_iter().map(|i| &self.members[i]).collect()
    }

    /// A random generator for the next update, seeded from the configured seed and
    /// the number of samples seen, so that successive rounds draw afresh yet reproducibly.
    pub fn update_rng(&self) -> StdRng {
        let round = (self.seen as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        StdRng::seed_from_u64(self.config.seed ^ round)
    }

    /// Restarts the batch walk at the first member.
    pub fn reset_cursor(&mut self) {
        self.cursor = 0;
    }

    /// Applies an update: keeps the selected members in their library order, then
    /// appends the admitted newcomers in their order, counts all `newcomers` as seen
    /// and restarts the batch walk. Leaves the library untouched and returns an
    /// error if the selection names a missing or repeated sample or would exceed
    /// the capacity.
    pub fn apply(&mut self, selection: Selection, newcomers: Vec<S>) -> Result<(), HistoryError> {
        let kept = checked_indices(selection.kept_members.clone(), self.members.len(), "member")?;
        let admitted = checked_indices(selection.admitted.clone(), newcomers.len(), "newcomer")?;
        let len = kept.len() + admitted.len();
        if len > self.config.capacity {
            return Err(HistoryError::OverCapacity {
                len,
                capacity: self.config.capacity,
            });
        }
        self.seen = self.seen.saturating_add(newcomers.len());
        self.members = selection.arrange(std::mem::take(&mut self.members), newcomers);
        self.cursor = 0;
        Ok(())
    }
}

impl Selection {
    /// `members` and `newcomers` (the samples, or anything standing for them
    /// such as their names) in the library order the selection gives: the
    /// kept members in their order, then the admitted newcomers in theirs.
    /// Indices past the end name nothing.
    pub fn arrange<T>(&self, members: Vec<T>, newcomers: Vec<T>) -> Vec<T> {
        let kept: BTreeSet<usize> = self.kept_members.iter().copied().collect();
        let admitted: BTreeSet<usize> = self.admitted.iter().copied().collect();
        members
            .into_iter()
            .enumerate()
            .filter(|(i, _)| kept.contains(i))
            .map(|(_, s)| s)
            .chain(
                newcomers
                    .into_iter()
                    .enumerate()
                    .filter(|(j, _)| admitted.contains(j))
                    .map(|(_, s)| s),
            )
            .collect()
    }
}

/// `indices` sorted, after checking each is below `len` and appears once.
fn checked_indices(
    mut indices: Vec<usize>,
    len: usize,
    which: &'static str,
) -> Result<Vec<usize>, HistoryError> {
    indices.sort_unstable();
    for (k, &index) in indices.iter().enumerate() {
        if index >= len || (k > 0 && indices[k - 1] == index) {
            return Err(HistoryError::InvalidSelection { which, index, len });
        }
    }
    Ok(indices)
}

/// Cosine similarity of `a` and `b - minus` (`minus` absent: `b`), computed in
/// `f64`; zero when either side is zero or the result is not finite.
fn cosine(a: &[f32], b: &[f64], minus: Option<&[f32]>) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (k, (&x, &y)) in a.iter().zip(b).enumerate() {
        let x = f64::from(x);
        let y = match minus {
            Some(m) => y - f64::from(m[k]),
            None => y,
        };
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denom = (na * nb).sqrt();
    let c = dot / denom;
    if denom > 0.0 && c.is_finite() {
        c.clamp(-1.0, 1.0) as f32
    } else {
        0.0
    }
}

/// Gradient-based selection of the next history library (METHOD.md section 3).
///
/// Each candidate's score is its largest cosine similarity with the summed
/// gradients of `config.subsets` random subsets of `config.subset_size` members
/// (a member is left out of the subsets it falls in) and with
/// `mean_transfer_gradient`; the cosine of a zero vector is 0, without members
/// only the transfer term counts, and an empty `mean_transfer_gradient` (a round
/// without transfer samples) adds no transfer term. A high score marks a sample whose direction the
/// library already has.
///
/// Newcomers are admitted in ascending score order while there is room; once the
/// library is full, a newcomer replaces the highest-scored member that scores
/// above it and is evictable, i.e. whose removal leaves each of its classes at or
/// above the floor `min(config.class_floor, candidates of that class)`. Before
/// that, newcomers of classes below the floor are admitted first (lowest scores
/// first), evicting evictable members if need be. The result never exceeds
/// `config.capacity`, holds `min(capacity, members + newcomers)` samples, and
/// depends only on its inputs and the state of `rng`. An error if there are more
/// members than the capacity or the gradients differ in length.
pub fn select_gradient_based(
    members: &[Candidate<'_>],
    newcomers: &[Candidate<'_>],
    mean_transfer_gradient: &[f32],
    config: &HistoryConfig,
    rng: &mut impl Rng,
) -> Result<Selection, HistoryError> {
    let capacity = config.capacity;
    if members.len() > capacity {
        return Err(HistoryError::OverCapacity {
            len: members.len(),
            capacity,
        });
    }
    let dim = match mean_transfer_gradient {
        [] => members
            .iter()
            .chain(newcomers)
            .next()
            .map_or(0, |c| c.gradient.len()),
        mean => mean.len(),
    };
    if let Some(c) = members
        .iter()
        .chain(newcomers)
        .find(|c| c.gradient.len() != dim)
    {
        return Err(HistoryError::GradientLength {
            expected: dim,
            found: c.gradient.len(),
        });
    }

    // Random member subsets, drawn once and shared by all candidates.
    let subsets: Vec<(BTreeSet<usize>, Vec<f64>)> = if members.is_empty() {
        Vec::new()
    } else {
        (0..config.subsets)
            .map(|_| {
                let amount = config.subset_size.min(members.len());
                let picked: BTreeSet<usize> = rand::seq::index::sample(rng, members.len(), amount)
                    .into_iter()
                    .collect();
                let mut sum = vec![0.0f64; dim];
                for &i in &picked {
                    for (s, &g) in sum.iter_mut().zip(members[i].gradient) {
                        *s += f64::from(g);
                    }
                }
                (picked, sum)
            })
            .collect()
    };
    let transfer: Vec<f64> = mean_transfer_gradient
        .iter()
        .map(|&g| f64::from(g))
        .collect();
    let score = |c: &Candidate<'_>, member: Option<usize>| -> f32 {
        subsets
            .iter()
            .map(|(picked, sum)| {
                let minus = member.filter(|i| picked.contains(i)).map(|_| c.gradient);
                cosine(c.gradient, sum, minus)
            })
            .fold(cosine(c.gradient, &transfer, None), f32::max)
    };
    let scores_members: Vec<f32> = members
        .iter()
        .enumerate()
        .map(|(i, c)| score(c, Some(i)))
        .collect();
    let scores_newcomers: Vec<f32> = newcomers.iter().map(|c| score(c, None)).collect();

    // Per-sample distinct classes, the per-class floors and the current counts.
    let distinct = |c: &Candidate<'_>| -> Vec<usize> {
        let set: BTreeSet<usize> = c.classes.iter().copied().collect();
        set.into_iter().collect()
    };
    let member_classes: Vec<Vec<usize>> = members.iter().map(distinct).collect();
    let newcomer_classes: Vec<Vec<usize>> = newcomers.iter().map(distinct).collect();
    let mut floor: BTreeMap<usize, usize> = BTreeMap::new();
    for &k in member_classes.iter().chain(&newcomer_classes).flatten() {
        *floor.entry(k).or_default() += 1;
    }
    for n in floor.values_mut() {
        *n = (*n).min(config.class_floor);
    }
    let mut count: BTreeMap<usize, usize> = BTreeMap::new();
    for &k in member_classes.iter().flatten() {
        *count.entry(k).or_default() += 1;
    }

    let mut kept = vec![true; members.len()];
    let mut size = members.len();
    let mut admitted = vec![false; newcomers.len()];
    let mut order: Vec<usize> = (0..newcomers.len()).collect();
    order.sort_by(|&a, &b| {
        scores_newcomers[a]
            .total_cmp(&scores_newcomers[b])
            .then(a.cmp(&b))
    });

    // The highest-scored member that may make room for `incoming`, if any
    // (ties go to the earlier member).
    let evictable = |kept: &[bool], count: &BTreeMap<usize, usize>, incoming: &[usize]| {
        (0..members.len())
            .filter(|&i| kept[i])
            .filter(|&i| {
                member_classes[i].iter().all(|k| {
                    let after = count[k] - 1 + usize::from(incoming.contains(k));
                    after >= floor[k]
                })
            })
            .fold(None, |best: Option<usize>, i| match best {
                Some(b) if scores_members[b] >= scores_members[i] => Some(b),
                _ => Some(i),
            })
    };

    // Floor first: newcomers of classes still below their floor.
    for &j in &order {
        let below = newcomer_classes[j]
            .iter()
            .any(|k| count.get(k).copied().unwrap_or(0) < floor[k]);
        if !below {
            continue;
        }
        if size >= capacity {
            match evictable(&kept, &count, &newcomer_classes[j]) {
                Some(i) => {
                    kept[i] = false;
                    size -= 1;
                    for k in &member_classes[i] {
                        *count.entry(*k).or_default() -= 1;
                    }
                }
                None => continue,
            }
        }
        admitted[j] = true;
        size += 1;
        for &k in &newcomer_classes[j] {
            *count.entry(k).or_default() += 1;
        }
    }

    // Then by score: fill free room, then replace higher-scored members.
    for &j in &order {
        if admitted[j] {
            continue;
        }
        if size >= capacity {
            match evictable(&kept, &count, &newcomer_classes[j]) {
                Some(i) if scores_members[i] > scores_newcomers[j] => {
                    kept[i] = false;
                    size -= 1;
                    for k in &member_classes[i] {
                        *count.entry(*k).or_default() -= 1;
                    }
                }
                _ => continue,
            }
        }
        admitted[j] = true;
        size += 1;
        for &k in &newcomer_classes[j] {
            *count.entry(k).or_default() += 1;
        }
    }

    Ok(Selection {
        kept_members: (0..members.len()).filter(|&i| kept[i]).collect(),
        admitted: (0..newcomers.len()).filter(|&j| admitted[j]).collect(),
        scores_members,
        scores_newcomers,
    })
}

/// Reservoir-sampling selection (the baseline): newcomers stream into a library
/// of `members_len` members after `seen_so_far` samples have been offered, each
/// new sample taking the place of a uniformly drawn slot with probability
/// `capacity / seen` once the library is full, so every sample seen stays with
/// the same probability. Scores are left empty. An error if `members_len`
/// exceeds `capacity`.
pub fn select_reservoir(
    seen_so_far: usize,
    members_len: usize,
    newcomers: usize,
    capacity: usize,
    rng: &mut impl Rng,
) -> Result<Selection, HistoryError> {
    if members_len > capacity {
        return Err(HistoryError::OverCapacity {
            len: members_len,
            capacity,
        });
    }
    #[derive(Clone, Copy)]
    enum Slot {
        Member(usize),
        Newcomer(usize),
    }
    let mut slots: Vec<Slot> = (0..members_len).map(Slot::Member).collect();
    for j in 0..newcomers {
        let seen = seen_so_far.saturating_add(j).saturating_add(1);
        if slots.len() < capacity {
            slots.push(Slot::Newcomer(j));
        } else {
            let r = rng.random_range(0..seen);
            if r < capacity {
                slots[r] = Slot::Newcomer(j);
            }
        }
    }
    let mut kept_members = Vec::new();
    let mut admitted = Vec::new();
    for slot in slots {
        match slot {
            Slot::Member(i) => kept_members.push(i),
            Slot::Newcomer(j) => admitted.push(j),
        }
    }
    kept_members.sort_unstable();
    admitted.sort_unstable();
    Ok(Selection {
        kept_members,
        admitted,
        scores_members: Vec::new(),
        scores_newcomers: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng;

    /// Unit vector along axis `k` of `dim`.
    fn axis(dim: usize, k: usize) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        v[k] = 1.0;
        v
    }

    fn candidates<'a>(grads: &'a [Vec<f32>], classes: &'a [Vec<usize>]) -> Vec<Candidate<'a>> {
        grads
            .iter()
            .zip(classes)
            .map(|(g, c)| Candidate {
                gradient: g,
                classes: c,
            })
            .collect()
    }

    fn config(capacity: usize) -> HistoryConfig {
        HistoryConfig {
            capacity,
            ..HistoryConfig::default()
        }
    }

    #[test]
    fn novel_samples_replace_redundant_ones() {
        let dim = 8;
        // Members: three nearly along e0 (redundant with the transfer mean) and
        // three along distinct axes e1..e3.
        let mut member_grads: Vec<Vec<f32>> = (0..3)
            .map(|k| {
                let mut v = axis(dim, 0);
                v[7] = 0.05 * (k as f32 + 1.0);
                v
            })
            .collect();
        member_grads.extend((1..4).map(|k| axis(dim, k)));
        // Newcomers: two redundant (exactly along e0), two novel (e4, e5).
        let newcomer_grads = vec![axis(dim, 0), axis(dim, 4), axis(dim, 0), axis(dim, 5)];
        let member_classes = vec![vec![0]; member_grads.len()];
        let newcomer_classes = vec![vec![0]; newcomer_grads.len()];
        let members = candidates(&member_grads, &member_classes);
        let newcomers = candidates(&newcomer_grads, &newcomer_classes);
        let cfg = config(6);
        let sel = select_gradient_based(&members, &newcomers, &axis(dim, 0), &cfg, &mut cfg.rng())
            .expect("valid inputs");

        assert_eq!(
            sel.admitted,
            vec![1, 3],
            "novel newcomers admitted, redundant ones not"
        );
        assert_eq!(sel.kept_members.len() + sel.admitted.len(), 6);
        for i in 3..6 {
            assert!(sel.kept_members.contains(&i), "novel member {i} kept");
        }
        let evicted_redundant = (0..3).filter(|i| !sel.kept_members.contains(i)).count();
        assert_eq!(evicted_redundant, 2, "two redundant members make room");
        assert!(sel.scores_newcomers[1] < 0.01 && sel.scores_newcomers[3] < 0.01);
        assert!(sel.scores_newcomers[0] > 0.99 && sel.scores_newcomers[2] > 0.99);
        for i in 0..3 {
            assert!(
                sel.scores_members[i] > 0.9,
                "redundant member {i} scores high"
            );
        }
        for i in 3..6 {
            assert!(
                sel.scores_members[i].abs() < 1e-6,
                "novel member {i} scores zero"
            );
        }
    }

    #[test]
    fn lone_class_newcomer_enters_a_full_library() {
        let dim = 4;
        // A full library of class 0 with novel (low-score) gradients.
        let member_grads: Vec<Vec<f32>> = (1..4).map(|k| axis(dim, k)).collect();
        let member_classes = vec![vec![0]; 3];
        // The class-1 newcomer is fully redundant with the transfer mean.
        let newcomer_grads = vec![axis(dim, 0)];
        let newcomer_classes = vec![vec![1]];
        let members = candidates(&member_grads, &member_classes);
        let newcomers = candidates(&newcomer_grads, &newcomer_classes);
        let cfg = config(3);
        let sel = select_gradient_based(&members, &newcomers, &axis(dim, 0), &cfg, &mut cfg.rng())
            .expect("valid inputs");
        assert_eq!(sel.admitted, vec![0]);
        assert_eq!(sel.kept_members.len(), 2);
    }

    #[test]
    fn class_floor_protects_the_last_member_of_a_class() {
        let dim = 7;
        // Member 0 is the only class-1 sample and fully redundant; members 1, 2
        // are class 0 and nearly as redundant.
        let near = |k: usize, w: f32| {
            let mut v = axis(dim, 0);
            v[k] = w;
            v
        };
        let member_grads = vec![axis(dim, 0), near(5, 0.1), near(6, 0.2)];
        let member_classes = vec![vec![1], vec![0], vec![0]];
        let newcomer_grads = vec![axis(dim, 2), axis(dim, 3), axis(dim, 4)];
        let newcomer_classes = vec![vec![0], vec![0], vec![0]];
        let members = candidates(&member_grads, &member_classes);
        let newcomers = candidates(&newcomer_grads, &newcomer_classes);
        let cfg = config(3);
        let sel = select_gradient_based(&members, &newcomers, &axis(dim, 0), &cfg, &mut cfg.rng())
            .expect("valid inputs");
        assert_eq!(sel.kept_members, vec![0], "the only class-1 member stays");
        assert_eq!(
            sel.admitted,
            vec![0, 1],
            "novel newcomers replace the class-0 members"
        );
        assert!(sel.scores_members[0] > sel.scores_newcomers[2]);
    }

    #[test]
    fn without_members_only_the_transfer_term_scores() {
        let dim = 3;
        let grads = vec![
            axis(dim, 0),
            vec![1.0, 1.0, 0.0],
            vec![-1.0, 0.0, 0.0],
            vec![0.0; 3],
        ];
        let classes = vec![vec![]; 4];
        let newcomers = candidates(&grads, &classes);
        let cfg = config(2);
        let sel = select_gradient_based(&[], &newcomers, &axis(dim, 0), &cfg, &mut cfg.rng())
            .expect("valid inputs");
        let expected = [1.0, std::f32::consts::FRAC_1_SQRT_2, -1.0, 0.0];
        for (s, e) in sel.scores_newcomers.iter().zip(expected) {
            assert!((s - e).abs() < 1e-6, "score {s} vs {e}");
        }
        assert_eq!(
            sel.admitted,
            vec![2, 3],
            "the two lowest scores fill the library"
        );
    }

    #[test]
    fn mismatched_gradient_length_is_an_error() {
        let grads = vec![vec![1.0, 0.0]];
        let classes = vec![vec![0]];
        let newcomers = candidates(&grads, &classes);
        let cfg = config(4);
        let err = select_gradient_based(&[], &newcomers, &[1.0, 0.0, 0.0], &cfg, &mut cfg.rng())
            .expect_err("lengths differ");
        assert_eq!(
            err,
            HistoryError::GradientLength {
                expected: 3,
                found: 2
            }
        );
        // Without a transfer mean, the candidates must still agree among themselves.
        let members = candidates(&grads, &classes);
        let longer = vec![vec![0.0, 1.0, 0.0]];
        let odd = candidates(&longer, &classes);
        assert!(select_gradient_based(&members, &odd, &[], &cfg, &mut cfg.rng()).is_err());
    }

    #[test]
    fn empty_transfer_mean_scores_against_the_library_only() {
        let dim = 3;
        let member_grads = vec![axis(dim, 0), axis(dim, 1)];
        let newcomer_grads = vec![axis(dim, 0), axis(dim, 2)];
        let classes = vec![vec![0]; 2];
        let members = candidates(&member_grads, &classes);
        let newcomers = candidates(&newcomer_grads, &classes);
        let cfg = config(3);
        let sel = select_gradient_based(&members, &newcomers, &[], &cfg, &mut cfg.rng())
            .expect("an empty mean is allowed");
        assert!(sel.scores_newcomers[0] > 0.7, "repeats a library direction");
        assert_eq!(sel.scores_newcomers[1], 0.0, "a new direction");
        assert_eq!(
            sel.admitted,
            vec![1],
            "one free place, for the novel sample"
        );
    }

    #[test]
    fn same_seed_same_selection() {
        let mut rng = StdRng::seed_from_u64(7);
        let dim = 16;
        let mut grads = || -> Vec<Vec<f32>> {
            (0..40)
                .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
                .collect()
        };
        let member_grads = grads();
        let newcomer_grads = grads();
        let classes: Vec<Vec<usize>> = (0..40).map(|i| vec![i % 5]).collect();
        let members = candidates(&member_grads, &classes);
        let newcomers = candidates(&newcomer_grads, &classes);
        let mean = vec![0.1; dim];
        let cfg = config(40);
        let run = |seed: u64| {
            select_gradient_based(
                &members,
                &newcomers,
                &mean,
                &cfg,
                &mut StdRng::seed_from_u64(seed),
            )
            .expect("valid inputs")
        };
        assert_eq!(run(3), run(3));
        assert_ne!(
            run(3).scores_members,
            run(4).scores_members,
            "different subsets, different member scores"
        );
    }

    #[test]
    fn next_batch_wraps_around_in_order() {
        let mut lib = HistoryLibrary::with_members(config(8), vec!['a', 'b', 'c', 'd', 'e'])
            .expect("within capacity");
        assert_eq!(lib.next_batch_indices(2), vec![0, 1]);
        assert_eq!(lib.next_batch_indices(2), vec![2, 3]);
        assert_eq!(lib.next_batch(2), vec![&'e', &'a']);
        assert_eq!(lib.next_batch_indices(7), vec![1, 2, 3, 4, 0, 1, 2]);
        assert_eq!(lib.next_batch_indices(1), vec![3]);
        lib.reset_cursor();
        assert_eq!(lib.next_batch_indices(1), vec![0]);

        let mut empty: HistoryLibrary<char> = HistoryLibrary::new(config(8));
        assert!(empty.next_batch_indices(3).is_empty());
        assert!(empty.next_batch(3).is_empty());
    }

    #[test]
    fn update_rng_changes_with_samples_seen() {
        let mut lib = HistoryLibrary::with_members(config(4), vec![1, 2]).expect("within capacity");
        let before: u64 = lib.update_rng().random();
        assert_eq!(before, lib.update_rng().random::<u64>(), "reproducible");
        let selection = Selection {
            kept_members: vec![0, 1],
            ..Selection::default()
        };
        lib.apply(selection, vec![3]).expect("valid selection");
        assert_ne!(
            before,
            lib.update_rng().random::<u64>(),
            "a new round draws afresh"
        );
    }

    #[test]
    fn with_members_over_capacity_is_an_error() {
        let err = HistoryLibrary::with_members(config(2), vec![1, 2, 3]).expect_err("too many");
        assert_eq!(
            err,
            HistoryError::OverCapacity {
                len: 3,
                capacity: 2
            }
        );
    }

    #[test]
    fn apply_keeps_order_appends_admitted_and_counts_seen() {
        let mut lib =
            HistoryLibrary::with_members(config(4), vec![10, 11, 12, 13]).expect("within capacity");
        lib.next_batch_indices(3);
        let selection = Selection {
            kept_members: vec![3, 0],
            admitted: vec![2, 0],
            ..Selection::default()
        };
        let names = selection.arrange(vec!["a", "b", "c", "d"], vec!["x", "y", "z"]);
        assert_eq!(names, vec!["a", "d", "x", "z"], "names follow the samples");
        lib.apply(selection, vec![20, 21, 22])
            .expect("valid selection");
        assert_eq!(lib.members(), &[10, 13, 20, 22]);
        assert_eq!(lib.seen(), 7);
        assert_eq!(lib.next_batch_indices(1), vec![0], "the walk restarts");
    }

    #[test]
    fn apply_rejects_bad_selections_untouched() {
        let mut lib = HistoryLibrary::with_members(config(3), vec![1, 2]).expect("within capacity");
        let out_of_range = Selection {
            kept_members: vec![0, 2],
            ..Selection::default()
        };
        assert!(matches!(
            lib.apply(out_of_range, vec![]),
            Err(HistoryError::InvalidSelection {
                which: "member",
                index: 2,
                len: 2
            })
        ));
        let repeated = Selection {
            admitted: vec![1, 1],
            ..Selection::default()
        };
        assert!(lib.apply(repeated, vec![5, 6]).is_err());
        let too_many = Selection {
            kept_members: vec![0, 1],
            admitted: vec![0, 1],
            ..Selection::default()
        };
        assert_eq!(
            lib.apply(too_many, vec![5, 6]),
            Err(HistoryError::OverCapacity {
                len: 4,
                capacity: 3
            })
        );
        assert_eq!(lib.members(), &[1, 2]);
        assert_eq!(lib.seen(), 2);
    }

    #[test]
    fn reservoir_is_roughly_uniform() {
        let capacity = 10;
        let total = 100;
        let runs = 2000;
        let mut hits = vec![0usize; total];
        for seed in 0..runs {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut lib: HistoryLibrary<usize> = HistoryLibrary::new(config(capacity));
            let mut next = 0;
            while next < total {
                let chunk: Vec<usize> = (next..(next + 7).min(total)).collect();
                next += chunk.len();
                let sel = select_reservoir(lib.seen(), lib.len(), chunk.len(), capacity, &mut rng)
                    .expect("within capacity");
                assert!(sel.scores_members.is_empty() && sel.scores_newcomers.is_empty());
                lib.apply(sel, chunk).expect("valid selection");
                assert_eq!(lib.len(), capacity.min(next));
            }
            assert_eq!(lib.seen(), total);
            for &item in lib.members() {
                hits[item] += 1;
            }
        }
        let expected = capacity as f64 / total as f64;
        for (item, &h) in hits.iter().enumerate() {
            let freq = h as f64 / runs as f64;
            assert!(
                (freq - expected).abs() < 0.05,
                "item {item} kept with frequency {freq}, expected about {expected}"
            );
        }
    }

    #[test]
    fn policy_names_round_trip_and_errors_list_them() {
        for policy in [HistoryPolicy::GradientBased, HistoryPolicy::Reservoir] {
            assert_eq!(policy.to_string().parse::<HistoryPolicy>(), Ok(policy));
            let json = serde_json::to_string(&policy).expect("serialisable");
            assert_eq!(json, format!("\"{}\"", policy.name()));
        }
        assert_eq!(" Reservoir ".parse(), Ok(HistoryPolicy::Reservoir));
        let message = "gss"
            .parse::<HistoryPolicy>()
            .expect_err("unknown")
            .to_string();
        assert!(message.contains("gss") && message.contains("gradientbased, reservoir"));
    }

    #[test]
    fn config_defaults_fill_missing_fields() {
        let cfg: HistoryConfig = serde_json::from_str(r#"{"capacity": 64}"#).expect("valid json");
        assert_eq!(
            cfg,
            HistoryConfig {
                capacity: 64,
                ..HistoryConfig::default()
            }
        );
        assert_eq!(HistoryConfig::default().capacity, 256);
        assert!(serde_json::from_str::<HistoryConfig>(r#"{"capacty": 64}"#).is_err());
    }

    /// A random sample: a gradient and its classes.
    type RandomSample = (Vec<f32>, Vec<usize>);

    /// Random capacity, members (within capacity) and newcomers for the property tests.
    fn update_case() -> impl Strategy<Value = (usize, Vec<RandomSample>, Vec<RandomSample>)> {
        let sample = (
            prop::collection::vec(-1.0f32..1.0, 4),
            prop::collection::vec(0usize..4, 0..3),
        );
        (0usize..12).prop_flat_map(move |capacity| {
            (
                Just(capacity),
                prop::collection::vec(sample.clone(), 0..=capacity),
                prop::collection::vec(sample.clone(), 0..15),
            )
        })
    }

    proptest! {
        #[test]
        fn gradient_selection_fills_but_never_exceeds_capacity(
            (capacity, members, newcomers) in update_case(),
            class_floor in 0usize..3,
            seed in any::<u64>(),
        ) {
            let cfg = HistoryConfig { capacity, class_floor, subsets: 2, subset_size: 3, seed };
            let m: Vec<Candidate> = members.iter().map(|(g, c)| Candidate { gradient: g, classes: c }).collect();
            let n: Vec<Candidate> = newcomers.iter().map(|(g, c)| Candidate { gradient: g, classes: c }).collect();
            let sel = select_gradient_based(&m, &n, &[0.5, -0.5, 0.0, 1.0], &cfg, &mut cfg.rng())
                .expect("valid inputs");
            let size = sel.kept_members.len() + sel.admitted.len();
            prop_assert_eq!(size, capacity.min(m.len() + n.len()));
            prop_assert!(sel.kept_members.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(sel.admitted.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(sel.kept_members.iter().all(|&i| i < m.len()));
            prop_assert!(sel.admitted.iter().all(|&j| j < n.len()));
            // Members are never evicted below their class floor.
            for class in 0..4 {
                let before = m.iter().filter(|c| c.classes.contains(&class)).count();
                let after = sel.kept_members.iter().filter(|&&i| m[i].classes.contains(&class)).count()
                    + sel.admitted.iter().filter(|&&j| n[j].classes.contains(&class)).count();
                prop_assert!(after >= before.min(class_floor), "class {} fell to {} from {}", class, after, before);
            }
            let mut lib = HistoryLibrary::with_members(cfg.clone(), members.clone()).expect("within capacity");
            lib.apply(sel, newcomers.clone()).expect("valid selection");
            prop_assert!(lib.len() <= capacity);
        }

        #[test]
        fn reservoir_fills_but_never_exceeds_capacity(
            capacity in 0usize..20,
            members_frac in 0.0f64..=1.0,
            newcomers in 0usize..40,
            extra_seen in 0usize..100,
            seed in any::<u64>(),
        ) {
            let members_len = (capacity as f64 * members_frac) as usize;
            let seen = members_len + extra_seen;
            let sel = select_reservoir(seen, members_len, newcomers, capacity, &mut StdRng::seed_from_u64(seed))
                .expect("within capacity");
            prop_assert_eq!(sel.kept_members.len() + sel.admitted.len(), capacity.min(members_len + newcomers));
            prop_assert!(sel.kept_members.iter().all(|&i| i < members_len));
            prop_assert!(sel.admitted.iter().all(|&j| j < newcomers));
        }
    }
}
