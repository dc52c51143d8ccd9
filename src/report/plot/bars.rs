//! Horizontal stacked bars: one bar per category (a run's layers, top to bottom in model
//! order), split into segments (the passes), with each bar's total printed at its end. The
//! categories' names go on the vertical axis in an area as wide as the longest name, and the
//! image grows with the number of categories, so every name stays readable however deep the
//! model.

use plotters::prelude::*;

use super::axis::{from_zero, Axis};
use super::{px, text_w, Ticked, LEGEND_FONT, LEGEND_LINE, MARKER};

/// Height of one bar's row, pixels.
const ROW_H: u32 = 30;
/// Font size of the category names and the value labels, pixels.
const NAME_FONT: f64 = 13.0;

/// A horizontal stacked bar chart.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bars {
    /// Caption above the plot.
    pub title: String,
    /// The value axis's description.
    pub x_label: String,
    /// The bars' names, top to bottom.
    pub categories: Vec<String>,
    /// The segments, stacked left to right in this order: a legend name and one value per
    /// category (negative or non-finite values draw nothing).
    pub segments: Vec<(String, Vec<f64>)>,
    /// How a bar's total is printed at its end.
    pub value_label: Option<fn(f64) -> String>,
}

impl Bars {
    /// The drawable part of a segment's value.
    fn len(v: f64) -> f64 {
        if v.is_finite() && v > 0.0 {
            v
        } else {
            0.0
        }
    }

    /// Each category's total (the end of its bar).
    fn totals(&self) -> Vec<f64> {
        (0..self.categories.len())
            .map(|i| {
                self.segments
                    .iter()
                    .map(|(_, v)| v.get(i).copied().map_or(0.0, Self::len))
                    .sum()
            })
            .collect()
    }

    /// Whether any bar has a length.
    pub fn has_bars(&self) -> bool {
        self.totals().iter().any(|&t| t > 0.0)
    }

    /// Draw the chart as an SVG document carrying lpsim's marker comment.
    pub fn to_svg(&self) -> Result<String, String> {
        let totals = self.totals();
        let xa = from_zero(totals.iter().copied().fold(0.0, f64::max));
        let mut svg = String::new();
        self.draw(&xa, &totals, &mut svg)
            .map_err(|e| e.to_string())?;
        let at = svg.find('>').map_or(0, |i| i + 1);
        svg.insert_str(at, &format!("\n{MARKER}"));
        Ok(svg)
    }

    fn draw(
        &self,
        xa: &Axis,
        totals: &[f64],
        svg: &mut String,
    ) -> Result<(), Box<dyn std::error::Error + '_>> {
        let n = self.categories.len();
        let names_w = self
            .categories
            .iter()
            .map(|c| text_w(c, NAME_FONT))
            .fold(40.0, f64::max)
            .ceil() as u32
            + 20;
        let legend_w = self
            .segments
            .iter()
            .map(|(l, _)| 40.0 + text_w(l, LEGEND_FONT))
            .fold(0.0, f64::max)
            .ceil() as u32
            + 20;
        let plot_w = 900;
        let h = (140 + ROW_H * n as u32).max(300);
        let root = SVGBackend::with_string(svg, (plot_w + legend_w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(plot_w);
        // Category `i` at y = n - 1 - i, so the first is on top.
        let ya = Ticked {
            range: -0.5..n.max(1) as f64 - 0.5,
            ticks: (0..n).map(|i| i as f64).collect(),
        };
        let mut chart = ChartBuilder::on(&left)
            .caption(&self.title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(names_w)
            .build_cartesian_2d(Ticked::from(xa), ya)?;
        let name_of = |y: f64| {
            let k = y.round();
            if (y - k).abs() > 1e-9 || k < 0.0 || k as usize >= n {
                return String::new();
            }
            self.categories[n - 1 - k as usize].clone()
        };
        let tick_label = |v: f64| {
            xa.ticks
                .iter()
                .find(|t| (t.0 - v).abs() < 1e-9 * xa.range.end.max(1.0))
                .map_or(String::new(), |t| t.1.clone())
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(&self.x_label)
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| name_of(*v))
            .label_style(("sans-serif", NAME_FONT))
            .draw()?;
        for (i, total) in totals.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let mut x0 = 0.0;
            for (s, (_, values)) in self.segments.iter().enumerate() {
                let v = values.get(i).copied().map_or(0.0, Self::len);
                if v > 0.0 {
                    chart.draw_series([Rectangle::new(
                        [(x0, y - 0.32), (x0 + v, y + 0.32)],
                        color(s).filled(),
                    )])?;
                }
                x0 += v;
            }
            if let (Some(f), true) = (self.value_label, *total > 0.0) {
                let (bx, by) = chart.backend_coord(&(*total, y));
                left.draw(&Text::new(
                    f(*total),
                    px((f64::from(bx) + 6.0, f64::from(by) - NAME_FONT / 2.0)),
                    ("sans-serif", NAME_FONT).into_font(),
                ))?;
            }
        }
        let legend_font = ("sans-serif", LEGEND_FONT).into_font();
        let mut y = 40;
        for (s, (label, _)) in self.segments.iter().enumerate() {
            right.draw(&Rectangle::new(
                [(8, y - 6), (32, y + 6)],
                color(s).filled(),
            ))?;
            right.draw(&Text::new(label.clone(), (40, y - 7), legend_font.clone()))?;
            y += LEGEND_LINE as i32;
        }
        root.present()?;
        Ok(())
    }
}

/// The color of segment `s`: the palette's, as the line charts use it.
fn color(s: usize) -> RGBAColor {
    Palette99::pick(s).to_rgba()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_legend_entry_is_drawn_and_bars_stack() {
        let b = Bars {
            title: "Energy per layer".into(),
            x_label: "energy (pJ)".into(),
            categories: vec!["data".into(), "dense0".into(), "softmax_xent".into()],
            segments: vec![
                ("forward".into(), vec![1.0, 4.0, 0.0]),
                ("backward".into(), vec![0.0, 6.0, 2.0]),
            ],
            value_label: Some(|v| format!("{v} pJ")),
        };
        assert_eq!(b.totals(), [1.0, 10.0, 2.0]);
        let svg = b.to_svg().expect("drawn");
        for text in [
            "data",
            "dense0",
            "softmax_xent",
            "forward",
            "backward",
            "10 pJ",
        ] {
            assert!(
                svg.contains(&format!("\n{text}\n</text>")),
                "{text} missing: {svg}"
            );
        }
        // Three bars of one segment each, plus dense0's second and the two legend keys.
        assert_eq!(svg.matches("<rect").count() - 1, 6, "{svg}");
        assert!(!Bars::default().has_bars());
    }
}
