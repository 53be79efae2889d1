//! The review path: verdicts given on an image, checked against it and
//! brought to its pixels, become a training target, then a sample
//! (METHOD.md section 1).

use crate::detector::DetectorSpec;
use crate::geometry::Detection;
use crate::image::Image;
use crate::sample::Sample;
use crate::verdict::{ImageVerdicts, TargetConfig, VerdictError, build_target};

/// An image as the user reviewed it: its checked verdicts and its sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    /// The verdicts, checked and cut to the image, in its pixels.
    pub verdicts: ImageVerdicts,
    /// What training learns from the image.
    pub sample: Sample,
}

/// Reviews images for one detector.
#[derive(Clone, Debug)]
pub struct Reviewer<'a> {
    /// The detector's spec: its classes and input size.
    pub spec: &'a DetectorSpec,
    /// The thresholds of METHOD.md section 1.
    pub target: TargetConfig,
}

impl Reviewer<'_> {
    /// The review of `image` from `verdicts` given on a `given_on` = `[width,
    /// height]` picture of it (the image file, which `image` may have been
    /// downscaled from) and the detector's `candidates` on `image` (any
    /// score, before NMS). A box that is not finite, has no area, lies
    /// outside the picture or names a class the detector lacks is refused,
    /// naming it; boxes that stick out are cut to the picture.
    pub fn review(
        &self,
        image: &Image,
        given_on: [usize; 2],
        verdicts: &ImageVerdicts,
        candidates: &[Detection],
    ) -> Result<Review, VerdictError> {
        let [width, height] = given_on.map(|side| side.max(1) as f32);
        let verdicts = verdicts
            .fit_to_image(width, height, self.spec.class_names.len())?
            .scaled(image.width() as f32 / width, image.height() as f32 / height);
        let target = build_target(&verdicts, candidates, &self.target)?;
        Ok(Review {
            sample: Sample::new(image, &target, self.spec),
            verdicts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::fcos::FcosConfig;
    use crate::geometry::{BBox, LabeledBox};
    use crate::verdict::{Judgement, ShownBox, VerdictError};

    fn spec() -> DetectorSpec {
        FcosConfig::new(vec!["a".into(), "b".into()])
            .with_input_size(64)
            .spec()
    }

    fn reviewed_on(given_on: [usize; 2], verdicts: &ImageVerdicts) -> Result<Review, VerdictError> {
        let spec = spec();
        let reviewer = Reviewer {
            spec: &spec,
            target: TargetConfig::default(),
        };
        reviewer.review(&Image::filled(100, 50, [0.5; 3]), given_on, verdicts, &[])
    }

    fn drawn(bbox: BBox, class: usize) -> ImageVerdicts {
        ImageVerdicts {
            drawn: vec![LabeledBox { bbox, class }],
            ..ImageVerdicts::default()
        }
    }

    #[test]
    fn verdicts_given_on_the_file_come_to_the_image_and_then_to_the_input() {
        // Given on the 200 x 100 file the 100 x 50 image was downscaled from;
        // the box sticks out on the right and is cut there.
        let r = reviewed_on([200, 100], &drawn(BBox::new(20.0, 10.0, 220.0, 90.0), 1)).unwrap();
        assert_eq!(r.verdicts.drawn[0].bbox, BBox::new(10.0, 5.0, 100.0, 45.0));
        // The 100 x 50 image is stretched to the 64 x 64 input.
        let positive = r.sample.target.positives[0];
        assert_eq!(positive.label.class, 1);
        let b = positive.label.bbox;
        let expected = [6.4, 6.4, 64.0, 57.6];
        for (got, want) in [b.x0, b.y0, b.x1, b.y1].into_iter().zip(expected) {
            assert!((got - want).abs() < 1e-4, "{b:?}");
        }
        assert_eq!((r.sample.image.width(), r.sample.image.height()), (64, 64));
    }

    #[test]
    fn boxes_the_image_cannot_hold_are_refused_by_name() {
        let outside = reviewed_on([100, 50], &drawn(BBox::new(120.0, 10.0, 140.0, 20.0), 0));
        assert!(
            matches!(outside, Err(VerdictError::OutsideImage { .. })),
            "{outside:?}"
        );
        let class = reviewed_on([100, 50], &drawn(BBox::new(10.0, 10.0, 20.0, 20.0), 2));
        assert!(
            matches!(class, Err(VerdictError::UnknownClass { class: 2, .. })),
            "{class:?}"
        );
        let unjudged = ImageVerdicts::new([Detection {
            bbox: BBox::new(10.0, 10.0, 20.0, 20.0),
            class: 0,
            score: 0.9,
        }]);
        assert!(matches!(
            reviewed_on([100, 50], &unjudged),
            Err(VerdictError::Unjudged { index: 0 })
        ));
        let rejected = ImageVerdicts {
            shown: vec![ShownBox {
                judgement: Some(Judgement::Rejected),
                ..unjudged.shown[0]
            }],
            ..ImageVerdicts::default()
        };
        let r = reviewed_on([100, 50], &rejected).unwrap();
        assert!(r.sample.target.is_pure_negative());
    }
}
