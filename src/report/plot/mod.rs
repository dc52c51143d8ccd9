//! SVG charts drawn with `plotters` (SVG backend only: text becomes `<text>` elements, so no
//! fonts are needed). One small description, [`Chart`], covers every plot lpsim draws: lines per
//! epoch, scatter plots with numbered points, a marked Pareto front, categorical axes.
//!
//! What a reader sees at a glance: axes fitted to the data ([`axis`]: a log axis spans the data
//! plus a few hundredths of a decade, never whole empty decades, and always shows at least two
//! labelled ticks); point labels that never overlap one another or a marker ([`layout`]); and
//! the legend and the key of the numbered points in a panel to the right of the plotting area,
//! so they never cover data.

mod axis;
mod bars;
mod layout;

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use axis::Axis;
pub(crate) use axis::Scale;
pub(crate) use bars::Bars;
use layout::{place_labels, Rect};

use super::io::MARKER;

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Filled markers only.
    Points,
    /// A line with a marker at each point.
    LinePoints,
    /// A black line with large hollow markers around the points it joins: the Pareto front.
    Front,
}

impl Style {
    /// Radius of the style's markers, pixels.
    fn radius(self) -> f64 {
        match self {
            Style::Points => 4.0,
            Style::LinePoints => 3.0,
            Style::Front => 7.0,
        }
    }
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

/// A whole chart: axes, series, point labels, and the key beside it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chart {
    /// Caption above the plot.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// How x values map onto the axis.
    pub x_scale: Scale,
    /// How y values map onto the axis.
    pub y_scale: Scale,
    /// The series, drawn in order with the palette's colors.
    pub series: Vec<Series>,
    /// Short text at single points (the numbers of the sweep's configurations), placed by
    /// [`layout::place_labels`].
    pub labels: Vec<(f64, f64, String)>,
    /// Lines of text in the panel to the right, below the legend (what the numbers stand for).
    pub key: Vec<String>,
}

/// Width of the plotting part of the SVG (the panel comes on top), and its least height.
const PLOT_W: u32 = 900;
const MIN_H: u32 = 560;
/// Font sizes of the legend, the key and the point labels, pixels.
const LEGEND_FONT: f64 = 12.0;
const KEY_FONT: f64 = 11.0;
const LABEL_FONT: f64 = 11.0;
/// Line spacing of the legend and of the key, pixels.
const LEGEND_LINE: u32 = 18;
const KEY_LINE: u32 = 15;
/// An upper bound on the width of one character of the sans-serif fonts, as a fraction of the
/// font size (DejaVu Sans digits are 0.64 em; lower-case letters less): label boxes are sized
/// with it, so real text never pokes out of the box the layout reserved.
const CHAR_W: f64 = 0.65;
/// Widest panel, pixels (longer key lines run past the edge rather than widen the image).
const MAX_PANEL_W: f64 = 480.0;

/// The width of `text` in a font of `size` pixels, an upper bound (see [`CHAR_W`]).
fn text_w(text: &str, size: f64) -> f64 {
    CHAR_W * size * text.chars().count() as f64
}

impl Chart {
    /// `(x, y)` in axis coordinates, if it can be drawn.
    fn coord(&self, (x, y): (f64, f64)) -> Option<(f64, f64)> {
        Some((self.x_scale.coord(x)?, self.y_scale.coord(y)?))
    }

    /// Whether any series has a point to draw.
    pub fn has_points(&self) -> bool {
        self.series
            .iter()
            .any(|s| s.points.iter().any(|&p| self.coord(p).is_some()))
    }

    /// Width of the panel beside the plot and height of the whole image, pixels.
    fn panel_size(&self) -> (u32, u32) {
        if self.series.is_empty() && self.key.is_empty() {
            return (0, MIN_H);
        }
        let legend = self
            .series
            .iter()
            .map(|s| 40.0 + text_w(&s.label, LEGEND_FONT))
            .fold(0.0, f64::max);
        let key = self
            .key
            .iter()
            .map(|k| text_w(k, KEY_FONT))
            .fold(0.0, f64::max);
        let w = (legend.max(key) + 30.0).min(MAX_PANEL_W);
        let lines = 40 + LEGEND_LINE * self.series.len() as u32 + KEY_LINE * self.key.len() as u32;
        (w.ceil() as u32, (lines + 30).max(MIN_H))
    }

    /// Draw the chart as an SVG document carrying lpsim's marker comment.
    pub fn to_svg(&self) -> Result<String, String> {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&p| self.coord(p).is_some())
            .collect();
        let xa = self.x_scale.axis(pts.iter().map(|p| p.0));
        let ya = self.y_scale.axis(pts.iter().map(|p| p.1));
        let mut svg = String::new();
        self.draw(&xa, &ya, &mut svg).map_err(|e| e.to_string())?;
        // The marker goes after the opening tag, so the document still starts with `<svg`.
        let at = svg.find('>').map_or(0, |i| i + 1);
        svg.insert_str(at, &format!("\n{MARKER}"));
        Ok(svg)
    }

    fn draw(
        &self,
        xa: &Axis,
        ya: &Axis,
        svg: &mut String,
    ) -> Result<(), Box<dyn std::error::Error + '_>> {
        let (panel_w, h) = self.panel_size();
        let root = SVGBackend::with_string(svg, (PLOT_W + panel_w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(PLOT_W);
        let mut chart = ChartBuilder::on(&left)
            .caption(&self.title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(Ticked::from(xa), Ticked::from(ya))?;
        let tick_label = |a: &Axis, v: f64| {
            a.ticks
                .iter()
                .find(|t| (t.0 - v).abs() < 1e-9)
                .map_or(String::new(), |t| t.1.clone())
        };
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| tick_label(xa, *v))
            .y_label_formatter(&|v| tick_label(ya, *v))
            .label_style(("sans-serif", 12))
            .draw()?;

        let mut obstacles: Vec<(f64, f64, f64)> = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i, s.style);
            let pts: Vec<(f64, f64)> = s.points.iter().filter_map(|&p| self.coord(p)).collect();
            for p in &pts {
                let (px, py) = chart.backend_coord(p);
                obstacles.push((f64::from(px), f64::from(py), s.style.radius()));
            }
            match s.style {
                Style::Points => {
                    chart
                        .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
                }
                Style::LinePoints => {
                    chart.draw_series(LineSeries::new(pts, color.stroke_width(2)).point_size(3))?;
                }
                Style::Front => {
                    chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
                    chart.draw_series(
                        pts.into_iter()
                            .map(|p| Circle::new(p, 7, color.stroke_width(2))),
                    )?;
                }
            }
        }

        // The point labels, placed in pixels inside the plotting area.
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let area = Rect {
            x0: f64::from(xr.start),
            y0: f64::from(yr.start),
            x1: f64::from(xr.end),
            y1: f64::from(yr.end),
        };
        let labels: Vec<((f64, f64), &str)> = self
            .labels
            .iter()
            .filter_map(|(x, y, t)| {
                let (px, py) = chart.backend_coord(&self.coord((*x, *y))?);
                Some(((f64::from(px), f64::from(py)), t.as_str()))
            })
            .collect();
        let anchors: Vec<(f64, f64)> = labels.iter().map(|l| l.0).collect();
        let sizes: Vec<(f64, f64)> = labels
            .iter()
            .map(|l| (text_w(l.1, LABEL_FONT) + 2.0, LABEL_FONT + 2.0))
            .collect();
        let anchor_r = Style::Front.radius();
        let boxes = place_labels(&anchors, &sizes, anchor_r, &obstacles, area);
        let label_font = ("sans-serif", LABEL_FONT).into_font();
        let leader = BLACK.mix(0.4).stroke_width(1);
        for ((anchor, text), b) in labels.iter().zip(&boxes) {
            let Some(b) = b else { continue };
            let end = b.nearest(*anchor);
            let dist = ((end.0 - anchor.0).powi(2) + (end.1 - anchor.1).powi(2)).sqrt();
            if dist > anchor_r + 3.0 {
                left.draw(&PathElement::new(vec![px(*anchor), px(end)], leader))?;
            }
            left.draw(&Text::new(
                text.to_string(),
                px((b.x0 + 1.0, b.y0 + 1.0)),
                label_font.clone(),
            ))?;
        }

        // The panel: the legend, then the key.
        let legend_font = ("sans-serif", LEGEND_FONT).into_font();
        let mut y = 40;
        for (i, s) in self.series.iter().enumerate() {
            let color = series_color(i, s.style);
            let mid = (20, y);
            match s.style {
                Style::Points => right.draw(&Circle::new(mid, 4, color.filled()))?,
                Style::LinePoints => {
                    right.draw(&PathElement::new(
                        vec![(8, y), (32, y)],
                        color.stroke_width(2),
                    ))?;
                    right.draw(&Circle::new(mid, 3, color.stroke_width(1)))?;
                }
                Style::Front => {
                    right.draw(&PathElement::new(
                        vec![(8, y), (32, y)],
                        color.stroke_width(2),
                    ))?;
                    right.draw(&Circle::new(mid, 7, color.stroke_width(2)))?;
                }
            }
            right.draw(&Text::new(
                s.label.clone(),
                (40, y - 7),
                legend_font.clone(),
            ))?;
            y += LEGEND_LINE as i32;
        }
        y += 6;
        let key_font = ("sans-serif", KEY_FONT).into_font();
        for line in self.key.iter() {
            if !line.is_empty() {
                right.draw(&Text::new(line.clone(), (8, y - 6), key_font.clone()))?;
            }
            y += KEY_LINE as i32;
        }
        root.present()?;
        Ok(())
    }
}

/// A linear axis in axis coordinates whose mesh lines and labels are exactly the [`Axis`]'s
/// ticks (plotters' own numeric axes pick their ticks themselves).
struct Ticked {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl From<&Axis> for Ticked {
    fn from(a: &Axis) -> Ticked {
        Ticked {
            range: a.range.clone(),
            ticks: a.ticks.iter().map(|t| t.0).collect(),
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (lo, hi): (i32, i32)) -> i32 {
        let t = (v - self.range.start) / (self.range.end - self.range.start);
        lo + (t * f64::from(hi - lo)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Bold mesh lines at the ticks, no light ones.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// The color of series `i`: black for a Pareto front, else the palette's `i`th.
fn series_color(i: usize, style: Style) -> RGBAColor {
    match style {
        Style::Front => BLACK.to_rgba(),
        _ => Palette99::pick(i).to_rgba(),
    }
}

/// A pixel position rounded to plotters' integer coordinates.
fn px((x, y): (f64, f64)) -> (i32, i32) {
    (x.round() as i32, y.round() as i32)
}
