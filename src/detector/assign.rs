//! Label assignment for anchor-free detectors: which output locations are
//! positives for which object, and which are forced to background by a
//! negative region (a rejected false detection). Pure logic, no tensors.

use crate::geometry::BBox;
use crate::verdict::{Positive, TrainingTarget};

/// The centre of one output cell in input pixels and the stride of its level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Location {
    /// Horizontal centre.
    pub x: f32,
    /// Vertical centre.
    pub y: f32,
    /// Stride of the feature level.
    pub stride: f32,
}

/// Cell centres of a `width` x `height` input at `stride`, row-major.
pub fn grid_locations(width: usize, height: usize, stride: usize) -> Vec<Location> {
    let (cols, rows) = (width.div_ceil(stride), height.div_ceil(stride));
    (0..rows)
        .flat_map(|r| {
            (0..cols).map(move |c| Location {
                x: (c as f32 + 0.5) * stride as f32,
                y: (r as f32 + 0.5) * stride as f32,
                stride: stride as f32,
            })
        })
        .collect()
}

/// What each location is trained towards in one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// The object a location must detect, `None` for background.
    pub positives: Vec<Option<Positive>>,
    /// Locations matched to a negative region (background, never positive).
    pub suppressed: Vec<bool>,
}

impl Assignment {
    /// Number of positive locations.
    pub fn num_positives(&self) -> usize {
        self.positives.iter().filter(|p| p.is_some()).count()
    }
}

/// Centre sampling: a location matches a box when it lies inside the box and
/// within `radius` strides of its centre. A box no location matches that way
/// (smaller than a cell) matches the location nearest its centre.
pub fn matching_locations(locations: &[Location], bbox: &BBox, radius: f32) -> Vec<usize> {
    let (cx, cy) = bbox.center();
    let inside: Vec<usize> = locations
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let r = radius * l.stride;
            bbox.contains(l.x, l.y) && (l.x - cx).abs() < r && (l.y - cy).abs() < r
        })
        .map(|(i, _)| i)
        .collect();
    if !inside.is_empty() || locations.is_empty() {
        return inside;
    }
    let distance = |l: &Location| (l.x - cx).powi(2) + (l.y - cy).powi(2);
    let nearest = (0..locations.len())
        .min_by(|&a, &b| distance(&locations[a]).total_cmp(&distance(&locations[b])))
        .expect("locations is not empty");
    vec![nearest]
}

/// Assigns `target` to `locations` with centre sampling
/// ([`matching_locations`]): each location matched by positives takes the
/// smallest of them; then every location matched by a negative region is
/// made background, whatever positives matched it.
pub fn assign(locations: &[Location], target: &TrainingTarget, radius: f32) -> Assignment {
    assign_by(locations, target, |bbox| {
        matching_locations(locations, bbox, radius)
            .into_iter()
            .map(|i| (i, -bbox.area()))
            .collect()
    })
}

/// Assigns `target` to `locations` with ATSS ([`atss_locations`]): each
/// location matched by positives takes the one whose anchor it overlaps
/// most; then every location a negative region matches the same way is made
/// background, whatever positives matched it.
pub fn assign_atss(locations: &[Location], target: &TrainingTarget, atss: &Atss) -> Assignment {
    assign_by(locations, target, |bbox| {
        atss_locations(locations, bbox, atss)
    })
}

/// The assignment of `target` when `matches` gives the locations a box
/// claims, each with a priority: where positives compete for a location the
/// highest priority wins; negative regions' locations become background.
fn assign_by(
    locations: &[Location],
    target: &TrainingTarget,
    matches: impl Fn(&BBox) -> Vec<(usize, f32)>,
) -> Assignment {
    let mut positives: Vec<Option<Positive>> = vec![None; locations.len()];
    let mut priorities = vec![f32::NEG_INFINITY; locations.len()];
    for positive in &target.positives {
        for (i, priority) in matches(&positive.label.bbox) {
            if positives[i].is_none() || priority > priorities[i] {
                positives[i] = Some(*positive);
                priorities[i] = priority;
            }
        }
    }
    let mut suppressed = vec![false; locations.len()];
    for region in &target.negatives {
        for (i, _) in matches(region) {
            suppressed[i] = true;
            positives[i] = None;
        }
    }
    Assignment {
        positives,
        suppressed,
    }
}

/// The settings of an ATSS assigner, which are the model's (GFL's
/// `assigner` and `octave_base_scale`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Atss {
    /// Candidates per level: the locations nearest a box's centre.
    pub top_k: usize,
    /// Side of the square anchor a location stands for, in strides.
    pub anchor_scale: f32,
}

/// Adaptive training sample selection (Zhang et al. 2020) for one box: on
/// each level the `top_k` locations nearest its centre are candidates; those
/// whose square anchor (`anchor_scale` strides) overlaps the box by at least
/// the candidates' mean IoU plus its standard deviation, and whose centre
/// lies inside the box, match it, each with that IoU. A box no location
/// matches that way (smaller than a cell) matches its best candidate.
pub fn atss_locations(locations: &[Location], bbox: &BBox, atss: &Atss) -> Vec<(usize, f32)> {
    let (cx, cy) = bbox.center();
    let distance = |l: &Location| (l.x - cx).powi(2) + (l.y - cy).powi(2);
    let mut strides: Vec<f32> = locations.iter().map(|l| l.stride).collect();
    strides.dedup();
    let mut candidates: Vec<(usize, f32)> = Vec::new();
    for stride in strides {
        let mut level: Vec<usize> = (0..locations.len())
            .filter(|&i| locations[i].stride == stride)
            .collect();
        level.sort_by(|&a, &b| distance(&locations[a]).total_cmp(&distance(&locations[b])));
        candidates.extend(level.into_iter().take(atss.top_k).map(|i| {
            let l = &locations[i];
            let half = atss.anchor_scale * l.stride / 2.0;
            let anchor = BBox::new(l.x - half, l.y - half, l.x + half, l.y + half);
            (i, anchor.iou(bbox))
        }));
    }
    if candidates.is_empty() {
        return candidates;
    }
    let n = candidates.len() as f32;
    let mean = candidates.iter().map(|(_, iou)| iou).sum::<f32>() / n;
    let variance = candidates
        .iter()
        .map(|(_, iou)| (iou - mean).powi(2))
        .sum::<f32>()
        / (n - 1.0).max(1.0);
    let threshold = mean + variance.sqrt();
    let matched: Vec<(usize, f32)> = candidates
        .iter()
        .copied()
        .filter(|&(i, iou)| iou >= threshold && bbox.contains(locations[i].x, locations[i].y))
        .collect();
    if !matched.is_empty() {
        return matched;
    }
    let best = candidates
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("candidates is not empty");
    vec![best]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::LabeledBox;

    fn label(x0: f32, y0: f32, x1: f32, y1: f32, class: usize) -> LabeledBox {
        LabeledBox {
            bbox: BBox::new(x0, y0, x1, y1),
            class,
        }
    }

    #[test]
    fn grid_covers_the_input_with_cell_centres() {
        let grid = grid_locations(32, 16, 8);
        assert_eq!(grid.len(), 8);
        assert_eq!((grid[0].x, grid[0].y), (4.0, 4.0));
        assert_eq!((grid[7].x, grid[7].y), (28.0, 12.0));
    }

    #[test]
    fn centre_sampling_picks_cells_near_the_centre() {
        let grid = grid_locations(64, 64, 8);
        let target = TrainingTarget::from_ground_truth(&[label(8.0, 8.0, 56.0, 56.0, 2)]);
        let a = assign(&grid, &target, 1.5);
        // Centre (32, 32): only cells at 28 and 36 are closer than 12 px on each axis.
        assert_eq!(a.num_positives(), 4);
        assert!(a.positives.iter().flatten().all(|p| p.label.class == 2));
    }

    #[test]
    fn a_tiny_box_still_gets_its_nearest_cell() {
        let grid = grid_locations(64, 64, 8);
        let target = TrainingTarget::from_ground_truth(&[label(17.0, 17.0, 19.0, 19.0, 0)]);
        let a = assign(&grid, &target, 1.5);
        assert_eq!(a.num_positives(), 1);
        assert!(a.positives[2 * 8 + 2].is_some());
    }

    #[test]
    fn overlapping_objects_go_to_the_smaller_box() {
        let grid = grid_locations(64, 64, 8);
        let big = label(0.0, 0.0, 64.0, 64.0, 0);
        let small = label(24.0, 24.0, 40.0, 40.0, 1);
        let a = assign(
            &grid,
            &TrainingTarget::from_ground_truth(&[big, small]),
            1.5,
        );
        let centre = 3 * 8 + 3;
        assert_eq!(a.positives[centre].map(|p| p.label.class), Some(1));
    }

    #[test]
    fn negative_regions_are_background_and_never_positive() {
        let grid = grid_locations(64, 64, 8);
        let object = label(16.0, 16.0, 48.0, 48.0, 3);
        let target = TrainingTarget {
            positives: vec![object.into()],
            negatives: vec![BBox::new(20.0, 20.0, 44.0, 44.0)],
            trained_classes: None,
        };
        let with = assign(&grid, &target, 1.5);
        let without = assign(&grid, &TrainingTarget::from_ground_truth(&[object]), 1.5);
        let suppressed: Vec<usize> = (0..grid.len()).filter(|&i| with.suppressed[i]).collect();
        assert!(!suppressed.is_empty());
        for &i in &suppressed {
            assert!(with.positives[i].is_none());
        }
        assert!(with.num_positives() < without.num_positives());
    }

    fn pyramid(size: usize) -> Vec<Location> {
        [8, 16, 32]
            .into_iter()
            .flat_map(|s| grid_locations(size, size, s))
            .collect()
    }

    /// NanoDet-m's settings: anchors of 5 strides.
    const ATSS_5: Atss = Atss {
        top_k: 9,
        anchor_scale: 5.0,
    };

    #[test]
    fn atss_picks_the_level_that_fits_the_box() {
        let grid = pyramid(256);
        // A 40 px box fits stride 8's 40 px anchors; a 160 px one stride 32's.
        for (side, stride) in [(40.0, 8.0), (160.0, 32.0)] {
            let bbox = BBox::new(100.0, 100.0, 100.0 + side, 100.0 + side);
            let matched = atss_locations(&grid, &bbox, &ATSS_5);
            assert!(!matched.is_empty());
            assert!(
                matched.iter().all(|&(i, _)| grid[i].stride == stride),
                "{side} px box: {:?}",
                matched
                    .iter()
                    .map(|&(i, _)| grid[i].stride)
                    .collect::<Vec<_>>()
            );
            assert!(
                matched
                    .iter()
                    .all(|&(i, _)| bbox.contains(grid[i].x, grid[i].y))
            );
        }
    }

    #[test]
    fn atss_gives_a_tiny_box_its_best_candidate() {
        let grid = pyramid(64);
        let matched = atss_locations(&grid, &BBox::new(17.0, 17.0, 19.0, 19.0), &ATSS_5);
        assert_eq!(matched.len(), 1);
    }

    #[test]
    fn atss_anchors_are_anchor_scale_strides_wide() {
        let grid = pyramid(256);
        // A 64 px box centred on a stride-8 cell centre: 8 strides of 8 px
        // exactly, so at scale 8 that cell's anchor is the box (IoU 1) and
        // the box goes to stride 8; at scale 5 the anchors are 40, 80 and
        // 160 px and its best overlap is under 1.
        let bbox = BBox::new(100.0 - 32.0, 100.0 - 32.0, 100.0 + 32.0, 100.0 + 32.0);
        let centre = grid
            .iter()
            .position(|l| l.stride == 8.0 && l.x == 100.0 && l.y == 100.0)
            .expect("a stride-8 cell centred at (100, 100)");
        let at_8 = atss_locations(
            &grid,
            &bbox,
            &Atss {
                anchor_scale: 8.0,
                ..ATSS_5
            },
        );
        let iou_at = |matched: &[(usize, f32)], i| matched.iter().find(|m| m.0 == i).map(|m| m.1);
        assert_eq!(iou_at(&at_8, centre), Some(1.0), "{at_8:?}");
        assert!(at_8.iter().all(|&(i, _)| grid[i].stride == 8.0));
        let at_5 = atss_locations(&grid, &bbox, &ATSS_5);
        assert!(at_5.iter().all(|&(_, iou)| iou < 1.0), "{at_5:?}");
    }

    #[test]
    fn atss_negative_regions_are_background_and_never_positive() {
        let grid = pyramid(128);
        let object = label(16.0, 16.0, 80.0, 80.0, 1);
        let target = TrainingTarget {
            positives: vec![object.into()],
            negatives: vec![object.bbox],
            trained_classes: None,
        };
        let plain = assign_atss(
            &grid,
            &TrainingTarget::from_ground_truth(&[object]),
            &ATSS_5,
        );
        let with = assign_atss(&grid, &target, &ATSS_5);
        assert!(plain.num_positives() > 0);
        assert_eq!(with.num_positives(), 0);
        for i in 0..grid.len() {
            assert_eq!(with.suppressed[i], plain.positives[i].is_some());
        }
    }
}
