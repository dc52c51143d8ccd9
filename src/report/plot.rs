//! SVG charts drawn with `plotters` (SVG backend only: text becomes `<text>` elements, so no
//! fonts are needed). One small description, [`Chart`], covers every plot lpsim draws: lines per
//! epoch, scatter plots with labelled points, and a marked Pareto front.

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::io::MARKER;

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Markers only.
    Points,
    /// A line with a marker at each point.
    LinePoints,
    /// A thick line with large markers: the Pareto front.
    Front,
}

/// One labelled series of a chart.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y) points; points that cannot be drawn on the axes (NaN, inf, <= 0 on a log axis)
    /// are left out.
    pub points: Vec<(f64, f64)>,
    /// How to draw it.
    pub style: Style,
}

/// A whole chart: axes, series, point labels.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chart {
    /// Caption above the plot.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The series, drawn in order with the palette's colors.
    pub series: Vec<Series>,
    /// Text drawn next to single points (`algo/arch` in the sweep's scatter plots).
    pub labels: Vec<(f64, f64, String)>,
}

const SIZE: (u32, u32) = (900, 560);

impl Chart {
    /// Whether `(x, y)` can be drawn on this chart's axes.
    fn drawable(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
    }

    /// Whether any series has a point to draw.
    pub fn has_points(&self) -> bool {
        self.series
            .iter()
            .any(|s| s.points.iter().any(|&p| self.drawable(p)))
    }

    /// Draw the chart as an SVG document carrying lpsim's marker comment.
    pub fn to_svg(&self) -> Result<String, String> {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&p| self.drawable(p))
            .collect();
        let xr = axis_range(pts.iter().map(|p| p.0), self.log_x);
        let yr = axis_range(pts.iter().map(|p| p.1), self.log_y);
        let mut svg = String::new();
        match (self.log_x, self.log_y) {
            (false, false) => self.draw(xr, yr, &mut svg),
            (true, false) => self.draw(xr.log_scale(), yr, &mut svg),
            (false, true) => self.draw(xr, yr.log_scale(), &mut svg),
            (true, true) => self.draw(xr.log_scale(), yr.log_scale(), &mut svg),
        }
        .map_err(|e| e.to_string())?;
        // The marker goes after the opening tag, so the document still starts with `<svg`.
        let at = svg.find('>').map_or(0, |i| i + 1);
        svg.insert_str(at, &format!("\n{MARKER}"));
        Ok(svg)
    }

    fn draw<X, Y>(
        &self,
        xs: X,
        ys: Y,
        svg: &mut String,
    ) -> Result<(), Box<dyn std::error::Error + '_>>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(xs, ys)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, s) in self.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|&p| self.drawable(p))
                .collect();
            let legend_color = color;
            let anno =
                match s.style {
                    Style::Points => chart
                        .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?,
                    Style::LinePoints => chart
                        .draw_series(LineSeries::new(pts, color.stroke_width(2)).point_size(3))?,
                    Style::Front => chart
                        .draw_series(LineSeries::new(pts, color.stroke_width(3)).point_size(7))?,
                };
            anno.label(s.label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], legend_color.stroke_width(3))
            });
        }
        let labels = self.labels.iter().filter(|l| self.drawable((l.0, l.1)));
        chart.draw_series(
            labels.map(|(x, y, t)| Text::new(t.clone(), (*x, *y), ("sans-serif", 11))),
        )?;
        if !self.series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()?;
        }
        root.present()?;
        Ok(())
    }
}

/// An axis range covering `values` with a margin; a default when there are none, a widened one
/// when they are all equal.
/// A tick label: plain for moderate magnitudes, scientific otherwise.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-3..1e4).contains(&a) {
        format!("{}", (v * 1e4).round() / 1e4)
    } else {
        format!("{v:.1e}")
    }
}

fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    match (lo.is_finite(), log) {
        (false, false) => 0.0..1.0,
        (false, true) => 1.0..10.0,
        // Whole decades, so the axis always carries at least two labelled powers of ten.
        (true, true) => {
            let a = 10f64.powf(lo.log10().floor());
            let b = 10f64.powf(hi.log10().ceil());
            if a < b {
                a..b
            } else {
                a..b * 10.0
            }
        }
        (true, false) if lo == hi => lo - 1.0..hi + 1.0,
        (true, false) => {
            let pad = (hi - lo) * 0.05;
            lo - pad..hi + pad
        }
    }
}
