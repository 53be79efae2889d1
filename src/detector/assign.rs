//! Label assignment for anchor-free detectors: which output locations are
//! positives for which object, and which are forced to background by a
//! negative region (a rejected false detection). Pure logic, no tensors.

use crate::geometry::{BBox, LabeledBox};
use crate::verdict::TrainingTarget;

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
    pub positives: Vec<Option<LabeledBox>>,
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

/// Assigns `target` to `locations`: each location matched by positives takes
/// the smallest of them; then every location matched by a negative region is
/// made background, whatever positives matched it.
pub fn assign(locations: &[Location], target: &TrainingTarget, radius: f32) -> Assignment {
    let mut positives: Vec<Option<LabeledBox>> = vec![None; locations.len()];
    for label in &target.positives {
        for i in matching_locations(locations, &label.bbox, radius) {
            let smaller = positives[i].is_none_or(|p| label.bbox.area() < p.bbox.area());
            if smaller {
                positives[i] = Some(*label);
            }
        }
    }
    let mut suppressed = vec![false; locations.len()];
    for region in &target.negatives {
        for i in matching_locations(locations, region, radius) {
            suppressed[i] = true;
            positives[i] = None;
        }
    }
    Assignment {
        positives,
        suppressed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(a.positives.iter().flatten().all(|p| p.class == 2));
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
        assert_eq!(a.positives[centre].map(|p| p.class), Some(1));
    }

    #[test]
    fn negative_regions_are_background_and_never_positive() {
        let grid = grid_locations(64, 64, 8);
        let object = label(16.0, 16.0, 48.0, 48.0, 3);
        let target = TrainingTarget {
            positives: vec![object],
            negatives: vec![BBox::new(20.0, 20.0, 44.0, 44.0)],
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
}
