//! Axes fitted to the data: linear, logarithmic (drawn as a linear axis over `log10` of the values,
//! with ticks lpsim picks, since plotters' own log axis labels only powers of ten and so shows no
//! label on a range inside one decade) and categorical.

use std::ops::Range;

/// How values map onto an axis.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Scale {
    /// Values as they are.
    #[default]
    Linear,
    /// `log10` of the values; values <= 0 cannot be drawn.
    Log,
    /// Named slots at 0, 1, 2, ...: a value `i` (with an offset below ±0.5 to spread points
    /// within a slot) is drawn in slot `round(i)`.
    Categories(Vec<String>),
}

/// An axis as drawn: its range and its labelled ticks, both in axis coordinates.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Axis {
    /// The span of the axis.
    pub range: Range<f64>,
    /// Tick positions and their labels.
    pub ticks: Vec<(f64, String)>,
}

/// Margin on each side of a log axis, as a fraction of the data's span in decades ...
const LOG_MARGIN: f64 = 0.06;
/// ... but at least this many decades (so points at the ends are not cut by the frame).
const LOG_MIN_MARGIN: f64 = 0.03;
/// Half the span, in decades, of a log axis around data that are all equal.
const LOG_EQUAL_HALF_SPAN: f64 = 0.15;

impl Scale {
    /// A log scale when every value is positive and they span at least a factor of 10 (an
    /// optimality gap from 1e-10 to 5e3, a variance error from 0.08 to 2), else linear.
    pub fn fit(values: impl Iterator<Item = f64>) -> Scale {
        let (lo, hi) = min_max(values.filter(|v| v.is_finite()));
        if lo > 0.0 && hi >= 10.0 * lo {
            Scale::Log
        } else {
            Scale::Linear
        }
    }

    /// Where `v` goes in axis coordinates; `None` when it cannot be drawn (NaN, infinite, <= 0
    /// on a log axis).
    pub fn coord(&self, v: f64) -> Option<f64> {
        match self {
            _ if !v.is_finite() => None,
            Scale::Log if v <= 0.0 => None,
            Scale::Log => Some(v.log10()),
            _ => Some(v),
        }
    }

    /// The axis for `values` (raw, not yet in axis coordinates; undrawable ones are ignored),
    /// fitted to them with a small margin: on a log axis a few hundredths of a decade, never a
    /// whole empty decade. Every axis has at least two labelled ticks.
    pub fn axis(&self, values: impl Iterator<Item = f64>) -> Axis {
        let (lo, hi) = min_max(values.filter_map(|v| self.coord(v)));
        match self {
            Scale::Categories(names) => Axis {
                range: -0.5..names.len().max(1) as f64 - 0.5,
                ticks: names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i as f64, n.clone()))
                    .collect(),
            },
            Scale::Log => {
                let range = if !lo.is_finite() {
                    0.0..1.0
                } else if lo == hi {
                    lo - LOG_EQUAL_HALF_SPAN..hi + LOG_EQUAL_HALF_SPAN
                } else {
                    let pad = (LOG_MARGIN * (hi - lo)).max(LOG_MIN_MARGIN);
                    lo - pad..hi + pad
                };
                let ticks = log_ticks(&range);
                Axis { range, ticks }
            }
            Scale::Linear => {
                let range = if !lo.is_finite() {
                    0.0..1.0
                } else if lo == hi {
                    let pad = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
                    lo - pad..hi + pad
                } else {
                    let pad = 0.05 * (hi - lo);
                    lo - pad..hi + pad
                };
                let ticks = linear_ticks(&range)
                    .into_iter()
                    .map(|(v, step)| (v, label(v, step)))
                    .collect();
                Axis { range, ticks }
            }
        }
    }
}

/// A linear axis from 0 to a little above `max` (bars grow from 0; the room beyond the longest
/// bar holds its value label), with round ticks.
pub fn from_zero(max: f64) -> Axis {
    let hi = if max.is_finite() && max > 0.0 {
        1.18 * max
    } else {
        1.0
    };
    let range = 0.0..hi;
    let ticks = linear_ticks(&range)
        .into_iter()
        .map(|(v, step)| (v, label(v, step)))
        .collect();
    Axis { range, ticks }
}

/// The smallest and largest of `values` (`(inf, -inf)` for none).
fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Four to ten round ticks inside `range` (the largest step of 1, 2 or 5 times a power of ten
/// that fits four times in the span), each with its step (for its label's precision).
fn linear_ticks(range: &Range<f64>) -> Vec<(f64, f64)> {
    let span = range.end - range.start;
    let raw = span / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [5.0, 2.0, 1.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s <= raw)
        .unwrap_or(mag);
    let first = (range.start / step).ceil() as i64;
    let last = (range.end / step).floor() as i64;
    (first..=last)
        .map(|k| (k as f64 * step, step))
        .filter(|(v, _)| range.contains(v))
        .collect()
}

/// Ticks of a log axis whose `range` is in decades (log10): powers of ten when the range holds
/// at least three, else 1, 2, 5 times powers of ten, else every integer multiple of a power of
/// ten; when even those give fewer than two (a range within a factor of about 1.5), round linear
/// ticks. Positions are log10 of the tick values.
fn log_ticks(range: &Range<f64>) -> Vec<(f64, String)> {
    let k0 = range.start.floor() as i32;
    let k1 = range.end.ceil() as i32;
    let within = |mults: &[f64]| -> Vec<(f64, String)> {
        (k0..=k1)
            .flat_map(|k| mults.iter().map(move |&m| (m, k)))
            .map(|(m, k)| (m.log10() + f64::from(k), m * 10f64.powi(k), 10f64.powi(k)))
            .filter(|(p, _, _)| range.contains(p))
            .map(|(p, v, step)| (p, label(v, step)))
            .collect()
    };
    let decades = within(&[1.0]);
    if decades.len() >= 3 {
        return decades;
    }
    let one_two_five = within(&[1.0, 2.0, 5.0]);
    if one_two_five.len() >= 3 {
        return one_two_five;
    }
    let all = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if all.len() >= 3 {
        return all;
    }
    // Within a factor of about 3, round linear steps (1.5e7, 2e7, 2.5e7, ...) place more labels.
    let raw = 10f64.powf(range.start)..10f64.powf(range.end);
    linear_ticks(&raw)
        .into_iter()
        .filter(|(v, _)| *v > 0.0 && range.contains(&v.log10()))
        .map(|(v, step)| (v.log10(), label(v, step)))
        .collect()
}

/// A tick label for `v` on an axis with ticks `step` apart: as many digits as the step needs,
/// plain for moderate magnitudes, else in scientific notation (`2e9`, `1.5e-7`).
fn label(v: f64, step: f64) -> String {
    let a = v.abs();
    let step_exp = step.abs().log10().floor() as i32;
    if a < 1e-12 * step.abs() {
        "0".to_string()
    } else if (1e-3..1e4).contains(&a) {
        let d = (-step_exp).max(0) as usize;
        format!("{v:.d$}")
    } else {
        let d = (a.log10().floor() as i32 - step_exp).clamp(0, 6) as usize;
        format!("{v:.d$e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(a: &Axis) -> Vec<f64> {
        a.ticks.iter().map(|t| 10f64.powf(t.0)).collect()
    }

    #[test]
    fn log_axis_is_fitted_to_the_data_not_to_whole_decades() {
        let a = Scale::Log.axis([2e9, 3.3e9, 5e9].into_iter());
        let (lo, hi) = (10f64.powf(a.range.start), 10f64.powf(a.range.end));
        assert!((1e9..2e9).contains(&lo), "{lo}");
        assert!(hi > 5e9 && hi <= 1e10, "{hi}");
        // Within a decade: the multiples 2, 3, 4, 5 x 1e9 are labelled.
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["2e9", "3e9", "4e9", "5e9"]);
        // The old axis (whole decades) would have been 1e9..1e10; a factor 2.5 of data now
        // spans less than a factor 3.5 of axis.
        assert!(hi / lo < 3.5);
    }

    #[test]
    fn a_log_axis_spanning_a_factor_of_three_gets_at_least_three_labels() {
        // The quickstart's iris energies: 1.2e7 to 2.9e7 had only the labels 2e7 and 3e7.
        let a = Scale::Log.axis([1.2e7, 1.9e7, 2.9e7].into_iter());
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        let v: Vec<f64> = labels.iter().map(|l| l.parse().unwrap()).collect();
        assert!((3..=10).contains(&v.len()), "{labels:?}");
        assert!(
            v.iter().any(|&x| x < 2e7),
            "a label left of 2e7: {labels:?}"
        );
    }

    #[test]
    fn log_axis_over_many_decades_labels_powers_of_ten() {
        let a = Scale::Log.axis([1.5e-10, 3e-3, 5.6e3].into_iter());
        let v = values(&a);
        assert!(v.len() >= 3);
        for x in &v {
            assert!((x.log10() - x.log10().round()).abs() < 1e-9, "{x}");
        }
        // The margin is a few hundredths of a decade per side, not a decade.
        assert!(a.range.start > (1.5e-10f64).log10() - 1.0);
        assert!(a.range.end < (5.6e3f64).log10() + 1.0);
    }

    #[test]
    fn every_axis_has_two_labels() {
        for data in [
            vec![1.01e10, 1.02e10],
            vec![7.0e7],
            vec![2e9, 5e9],
            vec![0.9, 0.99],
            vec![3.0],
            vec![],
        ] {
            for s in [Scale::Log, Scale::Linear] {
                let a = s.axis(data.iter().copied());
                assert!(a.ticks.len() >= 2, "{s:?} {data:?}: {:?}", a.ticks);
                if s == Scale::Linear {
                    assert!((4..=10).contains(&a.ticks.len()), "{data:?}: {:?}", a.ticks);
                }
                let mut labels: Vec<&String> = a.ticks.iter().map(|t| &t.1).collect();
                labels.dedup();
                assert_eq!(labels.len(), a.ticks.len(), "distinct labels {:?}", a.ticks);
                for (p, _) in &a.ticks {
                    assert!(a.range.contains(p));
                }
                for x in &data {
                    assert!(
                        a.range.contains(&s.coord(*x).unwrap()),
                        "{x} in {:?}",
                        a.range
                    );
                }
            }
        }
    }

    #[test]
    fn fit_picks_log_for_wide_positive_data() {
        assert_eq!(Scale::fit([1e-10, 5e3].into_iter()), Scale::Log);
        assert_eq!(Scale::fit([0.03, 0.2].into_iter()), Scale::Linear);
        assert_eq!(Scale::fit([0.0, 5e3].into_iter()), Scale::Linear);
        assert_eq!(Scale::fit([-1.0, 5e3].into_iter()), Scale::Linear);
    }

    #[test]
    fn categories_are_slots() {
        let a = Scale::Categories(vec!["a".into(), "b".into()]).axis([0.1, 1.2].into_iter());
        assert_eq!(a.range, -0.5..1.5);
        assert_eq!(a.ticks, vec![(0.0, "a".into()), (1.0, "b".into())]);
    }

    #[test]
    fn labels_have_the_digits_the_step_needs() {
        assert_eq!(label(0.05, 0.01), "0.05");
        assert_eq!(label(2e9, 1e9), "2e9");
        assert_eq!(label(2.05e10, 5e8), "2.05e10");
        assert_eq!(label(120.0, 20.0), "120");
    }
}
