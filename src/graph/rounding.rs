//! How an op's exact result is rounded once to its output tensor's format: the vector unit's
//! exact-sum kernels where the format has them and the `f64` result is not already exact (the
//! executor checks, `loops::exact`), the vectorized `f32` kernels when every exact value is an
//! `f32` value or, rounded to odd, where that is the one rounding (leaving the result in
//! `f32`), else the `f64` fast paths (`Quantizer::quantize_f64_judged`: block formats with
//! integer elements, `fp32` nearest-even), else the `f64` reference quantizer.

use std::borrow::Cow;

use super::exec::{ExecError, Path};
use super::plan::{NodePlan, Route};
use super::value::Value;
use super::TensorMeta;
use crate::arith::{ElemOp, VectorRounding};
use crate::format::{Quantizer, RangeCounts};
use crate::round::RandomStream;

/// Round `exact` once to `meta`'s format with its rounding unit, on the fast paths (as `plan`
/// routes the node) or the reference (the same bits). With the rounded values, their range
/// events where they were judged on the way; else the caller judges the `f64` values.
///
/// On the fast path, a format that fits `f32` is rounded on the `f32` kernels, the result left
/// in `f32` (the events judged by the kernel or on the `f32` buffers,
/// `Quantizer::quantize_f32_counted`): values on the `f32` carrier on [`Route::F32First`];
/// `f64` values on that route, or where the readers take `f32` (`NodePlan::narrow_out`),
/// through `Quantizer::quantize_f64_narrowed` (`f32` values as they are on that route, values
/// rounded to odd where that is the one rounding). Otherwise the `f64` fast paths.
pub(super) fn round_to(
    meta: &TensorMeta,
    plan: &NodePlan,
    exact: &Value<'_>,
    seed: u64,
    stream: u64,
    path: Path,
) -> Result<(Value<'static>, Option<RangeCounts>), ExecError> {
    let q = Quantizer::new(meta.format, meta.rounding, seed, stream).map_err(|error| {
        ExecError::Quantize {
            node: meta.name.clone(),
            error,
        }
    })?;
    let row = meta.shape.last().copied().unwrap_or(1);
    let f32_first = plan.route == Route::F32First;
    if path == Path::Fast && q.format().fits_f32() {
        // Rounded into a new `f32` buffer by `f`, unless it declines.
        let on_f32 = |f: &dyn Fn(&mut [f32]) -> Option<Option<RangeCounts>>| {
            let mut dst = vec![0.0f32; exact.len()];
            f(&mut dst).map(|judged| (Value::Narrow(dst), judged))
        };
        let rounded = match exact {
            Value::Narrow(x) if f32_first => {
                on_f32(&|dst| q.quantize_f32_counted(x, dst, 0, row).ok())
            }
            Value::Wide(x) if f32_first || plan.narrow_out => {
                on_f32(&|dst| q.quantize_f64_narrowed(x, dst, 0, row, f32_first))
            }
            _ => None,
        };
        if let Some(rounded) = rounded {
            return Ok(rounded);
        }
    }
    let src = exact.wide();
    let mut dst = vec![0.0; src.len()];
    let judged = if path == Path::Reference {
        q.quantize_f64(&src, &mut dst, 0, row);
        None
    } else {
        q.quantize_f64_judged(&src, &mut dst, 0, row)
    };
    Ok((Value::Wide(Cow::Owned(dst)), judged))
}

/// `op(x, y)` rounded once by the output format's vector unit `unit` (as
/// [`crate::arith::elementwise`]; the random word of element `i` is the one [`round_to`] would
/// draw). With `broadcast`, `ys` is a row added to every row of `xs`.
pub(super) fn round_exact(
    op: ElemOp,
    xs: &[f64],
    ys: &[f64],
    broadcast: bool,
    unit: &VectorRounding,
    seed: u64,
    stream: u64,
) -> Vec<f64> {
    let repeated: Vec<f64>;
    let ys = if broadcast && ys.len() != xs.len() && !ys.is_empty() {
        repeated = ys.iter().copied().cycle().take(xs.len()).collect();
        &repeated[..]
    } else {
        ys
    };
    let mut out = vec![0.0; xs.len()];
    unit.apply(op, xs, ys, &mut out, RandomStream::new(seed, stream));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{parse, range_events};
    use crate::graph::{Level, Role};

    /// `values` (10 rows of 64) rounded by [`round_to`] on the fast path, with the node's
    /// route and whether its readers take `f32`.
    fn round(
        spec: &str,
        rounding: &str,
        values: &Value<'_>,
        (route, narrow_out): (Route, bool),
    ) -> (Value<'static>, Option<RangeCounts>) {
        let (f, r) = (parse(spec).unwrap(), rounding.parse().unwrap());
        let meta = TensorMeta::new("t", &[10, 64], f, r, Level::Inner, Role::Activations);
        let plan = NodePlan {
            vector: None,
            route,
            zeroes_held: false,
            narrow_out,
            keep: false,
        };
        round_to(&meta, &plan, values, 3, 4, Path::Fast).unwrap()
    }

    /// The reference's rounding of `values` and its range events.
    fn reference(spec: &str, rounding: &str, values: &[f64]) -> (Vec<u64>, RangeCounts) {
        let f = parse(spec).unwrap();
        let q = Quantizer::new(f, rounding.parse().unwrap(), 3, 4).unwrap();
        let mut out = vec![0.0; values.len()];
        q.quantize_f64(values, &mut out, 0, 64);
        let events = range_events(&f, values, &out, 64);
        (out.iter().map(|x| x.to_bits()).collect(), events)
    }

    fn bits(v: &Value<'_>) -> Vec<u64> {
        v.wide().iter().map(|x| x.to_bits()).collect()
    }

    /// The `f32` kernels round `f32` values, on either carrier, and `f64` values through `f32`
    /// rounded to odd, with the reference's bits (same random word per element) and range
    /// events for every kind of format and rounding unit, leaving the result in `f32`.
    #[test]
    fn f32_kernels_round_as_the_reference() {
        let s = RandomStream::new(5, 9);
        // Zeros among them: a zero stored as zero is not flushed.
        let src: Vec<f64> = (0..640)
            .map(|i| f64::from((s.normal_f64(i) * 3.0) as f32) * f64::from(i % 7 != 0))
            .collect();
        let narrow: Vec<f32> = src.iter().map(|&v| v as f32).collect();
        // Not `f32` values: rounded to odd on the way.
        let inexact: Vec<f64> = src.iter().map(|&v| v * (1.0 + 1e-12)).collect();
        let specs = [
            "bf16",
            "e4m3fn",
            "e5m2",
            "fp16",
            "mxfp8",
            "mxint8",
            "bfp:wl=8,size=col",
            "bfp:wl=8,size=row",
            "bfp:wl=8,size=tensor",
            "bfp:wl=8,size=32",
            "fixed:wl=8,fl=4",
            "e2m1fn",
        ];
        for spec in specs {
            for rounding in ["rne", "sr", "sr:bits=8", "rtz"] {
                let (expect, events) = reference(spec, rounding, &src);
                // Blocks of integer elements with a deterministic rounding: `f64` values are
                // rounded on `f64`, faster there.
                let blocks = spec.starts_with("bfp") || spec.starts_with("mxint");
                let on_f64 = blocks && !rounding.starts_with("sr");
                for values in [
                    Value::Wide(Cow::Borrowed(&src)),
                    Value::Narrow(narrow.clone()),
                ] {
                    let wide = on_f64 && matches!(values, Value::Wide(_));
                    let (v, counts) = round(spec, rounding, &values, (Route::F32First, false));
                    assert_eq!(matches!(v, Value::Wide(_)), wide, "{spec} {rounding}");
                    assert_eq!(bits(&v), expect, "{spec} {rounding}");
                    if !wide {
                        assert_eq!(counts, Some(events), "{spec} {rounding}");
                    }
                }
                // Through `f32` rounded to odd where that is the one rounding (not 32 random
                // bits) and faster (not fixed point, nor integer blocks of fewer than 1024
                // values).
                let (expect, events) = reference(spec, rounding, &inexact);
                let wide = Value::Wide(Cow::Borrowed(&inexact));
                let (v, counts) = round(spec, rounding, &wide, (Route::F32First, false));
                let on_f32 = rounding != "sr" && !blocks && !spec.starts_with("fixed");
                assert_eq!(matches!(v, Value::Narrow(_)), on_f32, "{spec} {rounding}");
                assert_eq!(bits(&v), expect, "{spec} {rounding}");
                if on_f32 {
                    assert_eq!(counts, Some(events), "{spec} {rounding}");
                }
            }
        }
        // Magnitudes from 2^-40 to 2^30, so values saturate and flush: the same bits and the
        // same range events.
        let wide: Vec<f64> = src
            .iter()
            .enumerate()
            .map(|(i, &v)| v * 2f64.powi((i % 8) as i32 * 10 - 40))
            .collect();
        let mut events = RangeCounts::default();
        for spec in specs {
            let (expect, judged) = reference(spec, "sr", &wide);
            let values = Value::Wide(Cow::Borrowed(&wide));
            let (v, counts) = round(spec, "sr", &values, (Route::F32First, false));
            assert_eq!(bits(&v), expect, "{spec}");
            if let Some(counts) = counts {
                assert_eq!(counts, judged, "{spec}");
                events.merge(&judged);
            }
        }
        assert!(events.saturated > 100 && events.flushed > 100, "{events:?}");
    }

    /// `f64` values stay on `f64` where the route and the readers say so, and NaN and formats
    /// wider than `f32` take the reference's path.
    #[test]
    fn f64_values_stay_wide_where_planned() {
        let tenths: Vec<f64> = (0..640).map(|i| f64::from(i) * 0.1).collect();
        let tenths = Value::Wide(Cow::Borrowed(&tenths));
        let (expect, _) = reference("bf16", "sr:bits=8", &tenths.wide());
        for (plan, narrow) in [
            ((Route::F64, false), false),
            ((Route::F64, true), true),
            ((Route::F32First, false), true),
        ] {
            let (v, _) = round("bf16", "sr:bits=8", &tenths, plan);
            assert_eq!(matches!(v, Value::Narrow(_)), narrow, "{plan:?}");
            assert_eq!(bits(&v), expect, "{plan:?}");
        }
        let mut nan = vec![1.0; 640];
        nan[5] = f64::NAN;
        let nan = Value::Wide(Cow::Owned(nan));
        let (v, _) = round("bf16", "rne", &nan, (Route::F32First, true));
        assert!(matches!(v, Value::Wide(_)));
        assert_eq!(bits(&v), reference("bf16", "rne", &nan.wide()).0);
        let (v, _) = round("fp64", "rne", &tenths, (Route::F32First, true));
        assert!(matches!(v, Value::Wide(_)));
    }
}
