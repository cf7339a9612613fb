//! The report's plots, drawn with plotters' SVG backend (no font library: the backend writes
//! `<text>` elements and the viewer renders them).

use std::error::Error;
use std::ops::Range;

use plotters::chart::MeshStyle;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::closed_loop::Summary;
use crate::run::EvaluationRecord;

/// One plot of the report.
pub(super) struct Plot {
    /// Its file, relative to the run directory.
    pub file: &'static str,
    /// What it shows: its caption and the report's link text.
    pub title: &'static str,
    draw: fn(&Drawing<'_>, &str, &[EvaluationRecord], &Summary) -> Drawn,
}

/// The plots of every report.
pub(super) const PLOTS: [Plot; 4] = [
    Plot {
        file: "plots/best_so_far.svg",
        title: "Best validation accuracy so far",
        draw: best_so_far,
    },
    Plot {
        file: "plots/accuracy.svg",
        title: "Validation accuracy per iteration",
        draw: accuracy,
    },
    Plot {
        file: "plots/outcomes.svg",
        title: "Evaluations by outcome",
        draw: outcomes,
    },
    Plot {
        file: "plots/accuracy_vs_params.svg",
        title: "Validation accuracy against parameters",
        draw: accuracy_vs_params,
    },
];

impl Plot {
    /// The plot of a run's evaluations as SVG text.
    pub fn svg(
        &self,
        evaluations: &[EvaluationRecord],
        summary: &Summary,
    ) -> Result<String, String> {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            (self.draw)(&root, self.title, evaluations, summary).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(text)
    }
}

type Drawing<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn Error>>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

const SIZE: (u32, u32) = (800, 480);
const FONT: &str = "sans-serif";
/// Successful evaluations.
const VALID: RGBColor = RGBColor(31, 119, 180);
/// Failed evaluations.
const FAILED: RGBColor = RGBColor(214, 39, 40);
/// The `ok` bar.
const OK: RGBColor = RGBColor(44, 160, 44);
const POINT_RADIUS: u32 = 4;

fn best_so_far(
    root: &Drawing<'_>,
    caption: &str,
    evaluations: &[EvaluationRecord],
    _: &Summary,
) -> Drawn {
    let mut best: Option<f64> = None;
    let points: Vec<(f64, f64)> = evaluations
        .iter()
        .filter_map(|r| {
            if let Some(score) = r.outcome.score() {
                best = Some(best.map_or(score, |b| b.max(score)));
            }
            best.map(|b| (r.iteration as f64, b))
        })
        .collect();
    let mut chart = iteration_chart(
        root,
        caption,
        evaluations,
        padded(points.iter().map(|p| p.1), 0.0..1.0),
    )?;
    chart.draw_series(LineSeries::new(
        points.iter().copied(),
        VALID.stroke_width(2),
    ))?;
    chart.draw_series(
        points
            .iter()
            .map(|&p| Circle::new(p, POINT_RADIUS, VALID.filled())),
    )?;
    Ok(())
}

fn accuracy(
    root: &Drawing<'_>,
    caption: &str,
    evaluations: &[EvaluationRecord],
    _: &Summary,
) -> Drawn {
    let mut chart = iteration_chart(root, caption, evaluations, -0.02..1.02)?;
    let valid = evaluations
        .iter()
        .filter_map(|r| r.outcome.score().map(|s| (r.iteration as f64, s)));
    chart
        .draw_series(valid.map(|p| Circle::new(p, POINT_RADIUS, VALID.filled())))?
        .label("trained")
        .legend(|(x, y)| legend_mark(x, y, VALID));
    let failed = evaluations
        .iter()
        .filter(|r| r.outcome.score().is_none())
        .map(|r| (r.iteration as f64, 0.0));
    chart
        .draw_series(failed.map(|p| Circle::new(p, POINT_RADIUS, FAILED.filled())))?
        .label("failed (drawn at 0)")
        .legend(|(x, y)| legend_mark(x, y, FAILED));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    Ok(())
}

fn outcomes(root: &Drawing<'_>, caption: &str, _: &[EvaluationRecord], summary: &Summary) -> Drawn {
    let bars: Vec<(&str, usize, RGBColor)> = std::iter::once(("ok", summary.valid, OK))
        .chain(
            summary
                .failures
                .iter()
                .map(|(kind, &count)| (kind.as_str(), count, FAILED)),
        )
        .collect();
    let highest = bars.iter().map(|b| b.1).max().unwrap_or(0);
    // A usize range includes its end: one segment per bar.
    let mut chart = builder(root, caption)
        .build_cartesian_2d((0..bars.len() - 1).into_segmented(), 0..highest + 1)?;
    let name = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => bars.get(*i).map_or_else(String::new, |b| b.0.to_string()),
        _ => String::new(),
    };
    styled(&mut chart.configure_mesh(), "outcome", "evaluations")
        .disable_x_mesh()
        .x_labels(bars.len())
        .x_label_formatter(&name)
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, &(_, count, color))| {
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0),
                (SegmentValue::Exact(i + 1), count),
            ],
            color.filled(),
        );
        bar.set_margin(0, 0, 10, 10);
        bar
    }))?;
    Ok(())
}

fn accuracy_vs_params(
    root: &Drawing<'_>,
    caption: &str,
    evaluations: &[EvaluationRecord],
    _: &Summary,
) -> Drawn {
    let points: Vec<(f64, f64)> = evaluations
        .iter()
        .filter_map(|r| Some((r.outcome.params? as f64, r.outcome.score()?)))
        .collect();
    let (low, high) = points
        .iter()
        .map(|p| p.0.max(1.0))
        .fold(None, |range: Option<(f64, f64)>, x| {
            Some(range.map_or((x, x), |(lo, hi)| (lo.min(x), hi.max(x))))
        })
        .unwrap_or((1e4, 1e6));
    let mut chart = builder(root, caption).build_cartesian_2d(
        (low / 2.0..high * 2.0)
            .log_scale()
            .with_key_points(log_ticks(low / 2.0, high * 2.0)),
        padded(points.iter().map(|p| p.1), 0.0..1.0),
    )?;
    styled(
        &mut chart.configure_mesh(),
        "parameters (log scale)",
        "validation accuracy",
    )
    .x_label_formatter(&|&x| si(x))
    .y_label_formatter(&|y| format!("{y:.2}"))
    .draw()?;
    chart.draw_series(
        points
            .iter()
            .map(|&p| Circle::new(p, POINT_RADIUS, VALID.filled())),
    )?;
    Ok(())
}

/// A chart of validation accuracy (`accuracy` on the y axis) over the run's iterations.
fn iteration_chart<'a, 'b>(
    root: &'a Drawing<'b>,
    caption: &str,
    evaluations: &[EvaluationRecord],
    accuracy: Range<f64>,
) -> Result<Chart<'a, 'b>, Box<dyn Error>> {
    let first = evaluations.first().map_or(0, |r| r.iteration) as f64;
    let last = evaluations.last().map_or(0, |r| r.iteration) as f64;
    let mut chart = builder(root, caption).build_cartesian_2d(first - 0.5..last + 0.5, accuracy)?;
    styled(
        &mut chart.configure_mesh(),
        "iteration",
        "validation accuracy",
    )
    .x_label_formatter(&|&x| {
        // Only whole iterations are labelled.
        if (x - x.round()).abs() < 1e-9 {
            format!("{}", x.round() as i64)
        } else {
            String::new()
        }
    })
    .y_label_formatter(&|y| format!("{y:.2}"))
    .draw()?;
    Ok(chart)
}

/// A chart builder with the report's caption font, margins and label areas.
fn builder<'a, 'b, 's>(
    root: &'a Drawing<'s>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'s>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, (FONT, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60);
    builder
}

/// The report's mesh: axis descriptions, label fonts, a light minor grid.
fn styled<'m, 'a, 'b, 's, X: Ranged, Y: Ranged>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, SVGBackend<'s>>,
    x: &str,
    y: &str,
) -> &'m mut MeshStyle<'a, 'b, X, Y, SVGBackend<'s>> {
    mesh.x_desc(x)
        .y_desc(y)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(BLACK.mix(0.04))
}

/// A non-empty range around `values` with a margin (`empty` when there are none).
fn padded(values: impl Iterator<Item = f64>, empty: Range<f64>) -> Range<f64> {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if low > high {
        return empty;
    }
    let margin = ((high - low) * 0.1).max(0.01);
    low - margin..high + margin
}

/// Round numbers from `low` to `high` for a log axis: 1, 2 and 5 times powers of ten, or the
/// powers of ten alone over more than three decades.
fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    let mantissas: &[f64] = if high / low > 1e3 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut decade = 10f64.powf(low.log10().floor());
    let mut ticks = Vec::new();
    while decade <= high {
        let range = low..=high;
        ticks.extend(
            mantissas
                .iter()
                .map(|m| m * decade)
                .filter(|t| range.contains(t)),
        );
        decade *= 10.0;
    }
    ticks
}

fn legend_mark(x: i32, y: i32, color: RGBColor) -> Rectangle<(i32, i32)> {
    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
}

/// `1.2M`, `340k`, `900`.
fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if x >= 1e3 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

fn trim(x: f64) -> String {
    let text = format!("{x:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_round_and_never_empty() {
        assert_eq!(
            log_ticks(60_000.0, 5_000_000.0),
            [1e5, 2e5, 5e5, 1e6, 2e6, 5e6]
        );
        assert_eq!(log_ticks(0.5, 2e6), [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]);
        // The narrowest range a plot asks for: half to twice a single value.
        for x in [1.0, 3.0, 7.5, 123_456.0] {
            assert!(!log_ticks(x / 2.0, x * 2.0).is_empty(), "{x}");
        }
        assert_eq!(si(120_000.0), "120k");
        assert_eq!(si(2_500_000.0), "2.5M");
        assert_eq!(si(500.0), "500");
    }
}
