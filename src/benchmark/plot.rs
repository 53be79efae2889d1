//! The quality benchmark's figure: transfer mAP@0.5 and forgetting against
//! the number of verified images, one line per mixing rule (SVG).

use std::path::Path;

use plotters::prelude::*;

use super::quality::QualitySummary;
use crate::mixing::MixingRule;

const COLOURS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Reads one figure off a summary row.
type Metric = fn(&QualitySummary) -> f64;

/// Draws the two panels into an SVG file at `path`.
pub fn plot_quality(summary: &[QualitySummary], path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, 2));
    let max_n = summary.iter().map(|s| s.n).max().unwrap_or(1) as f64;
    let metrics: [(&str, Metric); 2] = [
        ("transfer mAP@0.5", |s| s.transfer_map.mean),
        ("forgetting (general mAP before - after)", |s| {
            s.forgetting.mean
        }),
    ];
    for (panel, (title, value)) in panels.iter().zip(metrics) {
        let values: Vec<f64> = summary.iter().map(value).collect();
        let low = values.iter().copied().fold(0.0f64, f64::min) - 0.02;
        let high = values.iter().copied().fold(0.0f64, f64::max) + 0.02;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..max_n * 1.05, low..high)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("verified transfer images N")
            .draw()
            .map_err(|e| e.to_string())?;
        for (rule, colour) in MixingRule::ALL.iter().zip(COLOURS) {
            let points: Vec<(f64, f64)> = summary
                .iter()
                .filter(|s| s.rule == *rule)
                .map(|s| (s.n as f64, value(s)))
                .collect();
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(rule.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, colour.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
