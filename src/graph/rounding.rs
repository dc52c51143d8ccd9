//! How an op's exact result is rounded once to its output tensor's format: the vector unit's
//! exact-sum kernels where the format has them and the `f64` result is not already exact (the
//! executor checks, `loops::exact`), the vectorized `f32` kernels when every exact
//! value is an `f32` value (leaving the result in `f32`), else the `f64` fast paths
//! (`Quantizer::quantize_f64_judged`: block formats with integer elements, `fp32` nearest-even,
//! narrower floats through `f32` rounded to odd; the ones that round on the `f32` carrier
//! leave their result in `f32` too, `Quantizer::quantize_f64_narrowed`), else the `f64`
//! reference quantizer.

use std::borrow::Cow;

use super::exec::{ExecError, Path};
use super::plan::Route;
use super::value::Value;
use super::TensorMeta;
use crate::arith::{ElemOp, VectorRounding};
use crate::format::{range_events_f32, Quantizer, RangeCounts};
use crate::round::RandomStream;
use crate::scratch;
use crate::simd::multiversion;

/// Round `exact` once to `meta`'s format with its rounding unit, on the fast paths (`route`
/// and whether to leave the result in `f32`, fixed per node by the executor's plan) or the
/// reference (the same bits). With the rounded values, their range events where a kernel
/// judged them in its rounding pass or the `f32` path on its own buffers
/// ([`range_events_f32`]); else the caller judges the `f64` values.
pub(super) fn round_to(
    meta: &TensorMeta,
    (route, narrow_out): (Route, bool),
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
    if path == Path::Fast && route == Route::F32First {
        if let Some((dst, counts)) = round_f32(&q, exact, row) {
            return Ok((Value::Narrow(dst), counts));
        }
    }
    let src = exact.wide();
    if path == Path::Fast && narrow_out && q.format().fits_f32() {
        // Rounded on the `f32` carrier where the `f64` fast paths would round there anyway:
        // the values stay in `f32` for readers that take them so (`NodePlan::narrow_out`).
        let mut dst = vec![0.0f32; src.len()];
        if let Some(judged) = q.quantize_f64_narrowed(&src, &mut dst, 0, row) {
            return Ok((Value::Narrow(dst), judged));
        }
    }
    let mut dst = vec![0.0; src.len()];
    let judged = if path == Path::Reference {
        q.quantize_f64(&src, &mut dst, 0, row);
        None
    } else {
        q.quantize_f64_judged(&src, &mut dst, 0, row)
    };
    Ok((Value::Wide(Cow::Owned(dst)), judged))
}

/// [`round_to`] on the vectorized `f32` kernels when the format fits `f32` and every exact
/// value is an `f32` value (values on the `f32` carrier, or `f64` values that narrow exactly,
/// such as a bias added to a matmul's output): the kernels are proven bit-identical to the
/// `f64` reference on `f32` inputs, with the same random word per element. Returns the rounded
/// values, or `None` where it does not apply, and their range events (judged by the kernel on
/// the way, else on the `f32` buffers; `None` where a range end is not an `f32` value). The
/// `f32` buffers are the thread's scratch pair; the result is collected, not written over a
/// zeroed buffer.
pub(super) fn round_f32(
    q: &Quantizer,
    exact: &Value<'_>,
    row: usize,
) -> Option<(Vec<f32>, Option<RangeCounts>)> {
    if !q.format().fits_f32() {
        return None;
    }
    scratch::with_f32_pair(exact.len(), |narrowed, rounded| {
        let input: &[f32] = match exact {
            Value::Narrow(x) => x,
            Value::Wide(x) => {
                if !narrow_exact(x, narrowed) {
                    return None;
                }
                narrowed
            }
        };
        let counts = match q.quantize_f32_judged(input, rounded, 0, row).ok()? {
            Some(judged) => Some(judged),
            None => range_events_f32(&q.format(), input, rounded, row),
        };
        Some((rounded.to_vec(), counts))
    })
}

/// `src` narrowed to `f32` (rounded to nearest) into `narrow`, and whether every value is the
/// `f64` of its narrowed value (a NaN is not: it is left to the reference path, which fixes its
/// bits). One branch-free pass, multiversioned, so it vectorizes (a test that stops at the
/// first miss does not).
#[inline(always)]
fn narrow_exact_portable(src: &[f64], narrow: &mut [f32]) -> bool {
    let mut ok = true;
    for (n, &x) in narrow.iter_mut().zip(src) {
        let f = x as f32;
        ok &= f64::from(f) == x;
        *n = f;
    }
    ok
}

multiversion!(narrow_exact => narrow_exact_portable, (src: &[f64], narrow: &mut [f32]) -> bool);

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
    use crate::round::Rounding;

    /// The `f32` kernels take over only for `f32` values, and then give the reference's bits
    /// (same random word per element) for every kind of format and rounding unit.
    #[test]
    fn f32_kernels_round_as_the_reference_on_f32_values() {
        let s = RandomStream::new(5, 9);
        // Zeros among them: a zero stored as zero is not flushed.
        let src: Vec<f64> = (0..640)
            .map(|i| f64::from((s.normal_f64(i) * 3.0) as f32) * f64::from(i % 7 != 0))
            .collect();
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
                let q =
                    Quantizer::new(parse(spec).unwrap(), rounding.parse().unwrap(), 3, 4).unwrap();
                let mut reference = vec![0.0; 640];
                let (fast, counts) =
                    round_f32(&q, &Value::Wide(Cow::Borrowed(&src)), 64).expect(spec);
                q.quantize_f64(&src, &mut reference, 0, 64);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let fast: Vec<f64> = fast.iter().map(|&v| f64::from(v)).collect();
                assert_eq!(bits(&fast), bits(&reference), "{spec} {rounding}");
                // Judged on `f32` lanes, the range events of the `f64` judge.
                let f = q.format();
                assert_eq!(
                    counts,
                    Some(range_events(&f, &src, &reference, 64)),
                    "{spec}"
                );
            }
        }
        // Magnitudes from 2^-40 to 2^30, so values saturate and flush: where the `f32` path
        // takes them, the same bits and the same range events.
        let wide: Vec<f64> = src
            .iter()
            .enumerate()
            .map(|(i, &v)| v * 2f64.powi((i % 8) as i32 * 10 - 40))
            .collect();
        let mut events = RangeCounts::default();
        for spec in specs {
            let q = Quantizer::new(parse(spec).unwrap(), "sr".parse().unwrap(), 3, 4).unwrap();
            if let Some((fast, counts)) = round_f32(&q, &Value::Wide(Cow::Borrowed(&wide)), 64) {
                let mut reference = vec![0.0; wide.len()];
                q.quantize_f64(&wide, &mut reference, 0, 64);
                let f = q.format();
                let judged = range_events(&f, &wide, &reference, 64);
                assert_eq!(counts, Some(judged), "{spec}");
                assert!(fast
                    .iter()
                    .zip(&reference)
                    .all(|(&a, b)| f64::from(a).to_bits() == b.to_bits()));
                events.merge(&judged);
            }
        }
        assert!(events.saturated > 100 && events.flushed > 100, "{events:?}");
        // A value that is not an f32 value, a NaN, or a format wider than f32: the reference.
        let q = Quantizer::new(parse("bf16").unwrap(), Rounding::NearestEven, 0, 0).unwrap();
        assert_eq!(round_f32(&q, &Value::Wide(Cow::Borrowed(&[0.1])), 1), None);
        assert_eq!(
            round_f32(&q, &Value::Wide(Cow::Borrowed(&[f64::NAN])), 1),
            None
        );
        let wide = Quantizer::new(parse("fp64").unwrap(), Rounding::NearestEven, 0, 0).unwrap();
        assert_eq!(
            round_f32(&wide, &Value::Wide(Cow::Borrowed(&[1.0])), 1),
            None
        );
    }
}
