//! A matmul node on the graph's MAC (see `graph/exec.rs`): `arith::gemm` on `f32` operands, or
//! `arith::gemm_f64` for the fused fp64 multiply-add; on the fast path, a kernel whose
//! accumulators are `f32` values writes them in `f32` (`arith::gemm_f32`) and they stay on that
//! carrier. The kernel's counts are added, and the accumulator values judged at the
//! accumulator's bounds under [`Role::Accumulator`].

use std::borrow::Cow;

use ndarray::ArrayView2;

use super::exec::Path;
use super::value::Value;
use super::{RangeHealth, Role};
use crate::arith::{gemm, gemm_f32, gemm_f64, ActionCounts, GemmOutput, MacConfig, MacError};
use crate::format::{bound_events, bound_events_f32, Format};
use crate::round::RandomStream;

/// A matrix operand: its value, its two dimensions, and whether it is read transposed.
pub(super) type Operand<'v, 'a> = (&'v Value<'a>, &'v [usize], bool);

/// `A B` under `mac` as the node's value (see the module docs), its counts added to `counts`
/// and its accumulator values judged into `range`.
pub(super) fn matmul(
    mac: &MacConfig,
    (a, a_shape, ta): Operand<'_, '_>,
    (b, b_shape, tb): Operand<'_, '_>,
    random: RandomStream,
    path: Path,
    counts: &mut ActionCounts,
    range: &mut RangeHealth,
) -> Result<Value<'static>, MacError> {
    let acc = mac.acc;
    // Operands hold values of the MAC's input formats (checked when the graph was built):
    // `f32` values, unless the MAC is the fused fp64 multiply-add.
    if !(mac.a.fits_f32() && mac.b.fits_f32()) {
        let (a, b) = (a.wide(), b.wide());
        let res = gemm_f64(mac, view(&a, a_shape, ta), view(&b, b_shape, tb))?;
        return Ok(wide_output(res, counts, range, acc));
    }
    // Narrowed in memory order (`f32` values as they are), then transposed as views (a
    // transposed view read element by element would stride through memory).
    let (a, b) = (a.narrow(), b.narrow());
    let (a, b) = (view(&a, a_shape, ta), view(&b, b_shape, tb));
    let narrow = match path {
        Path::Fast => gemm_f32(mac, a, b, random)?,
        Path::Reference => None,
    };
    let Some((c, res)) = narrow else {
        return Ok(wide_output(gemm(mac, a, b, random)?, counts, range, acc));
    };
    counts.merge(&res);
    // A new array, so in standard order.
    let c = c.into_raw_vec_and_offset().0;
    // Judged on `f32` lanes where the bounds are `f32` values, else as `f64` values.
    Ok(match bound_events_f32(&acc, &c) {
        Some(events) => {
            range.record(Role::Accumulator, acc, events);
            Value::Narrow(c)
        }
        None => {
            let c = Value::Narrow(c).into_wide();
            range.record(Role::Accumulator, acc, bound_events(&acc, &c));
            Value::Wide(Cow::Owned(c))
        }
    })
}

/// A matrix operand (`shape` its two dimensions) as a 2-D view, transposed when `t`.
fn view<'a, A>(x: &'a [A], shape: &[usize], t: bool) -> ArrayView2<'a, A> {
    let v = ArrayView2::from_shape((shape[0], shape[1]), x).expect("checked matrix");
    if t {
        v.reversed_axes()
    } else {
        v
    }
}

/// A GEMM's `f64` output as the node's value: its counts added, its accumulator values judged
/// at the accumulator's bounds.
fn wide_output(
    res: GemmOutput,
    counts: &mut ActionCounts,
    range: &mut RangeHealth,
    acc: Format,
) -> Value<'static> {
    counts.merge(&res.counts);
    let c = if res.c.is_standard_layout() {
        res.c.into_raw_vec_and_offset().0
    } else {
        res.c.iter().copied().collect()
    };
    range.record(Role::Accumulator, acc, bound_events(&acc, &c));
    Value::Wide(Cow::Owned(c))
}
