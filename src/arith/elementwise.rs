//! Elementwise kernels of the vector unit: `x + y`, `x - y`, `x y`, `c x` and `a x + y`, each
//! result rounded to an output format with a rounding unit.
//!
//! Sums and products are rounded exactly once: a product is split exactly into `p + e`
//! (`e = fma(x, y, -p)`, Dekker/Kahan's TwoProduct) and `round(p + e)` goes through the same exact
//! two-term rounding as the MAC's adder ([`Adder`]). `axpy` is the unfused unit of a vector lane
//! without FMA: `round(round(a x) + y)`, two roundings, as such hardware computes it. The random
//! word of element `i` is `stream.bits(i)` (`a x` of axpy uses `stream.bits(n + i)` for a slice
//! of `n`), so results do not depend on the number of threads.

use rayon::prelude::*;

use crate::arith::mac::{Adder, EventTally, MacError};
use crate::arith::ActionCounts;
use crate::format::Format;
use crate::round::{RandomStream, Rounding};

/// An elementwise operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ElemOp {
    /// `x + y`.
    Add,
    /// `x - y`.
    Sub,
    /// `x y`.
    Mul,
    /// `c x` (`y` unused).
    Scale(f64),
    /// `a x + y`, unfused.
    Axpy(f64),
}

/// The exact product `x y` as `p + e` (finite, no underflow of the error term assumed: the
/// error of a product of values of formats that fit `f64` is representable unless it is below
/// `2^-1074`, where it is lost only for results far below every format's range).
#[inline(always)]
fn two_prod(x: f64, y: f64) -> (f64, f64) {
    let p = x * y;
    if !p.is_finite() {
        return (p, 0.0);
    }
    (p, x.mul_add(y, -p))
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Compute `out[i] = op(x[i], y[i])` rounded to `format` with `rounding`, in parallel, and
/// report the actions (adds or multiplies in the output format, random bits, range events).
/// `y` may be empty for [`ElemOp::Scale`].
pub fn elementwise(
    op: ElemOp,
    x: &[f64],
    y: &[f64],
    out: &mut [f64],
    format: Format,
    rounding: Rounding,
    stream: RandomStream,
) -> Result<ActionCounts, MacError> {
    let n = x.len();
    let needs_y = !matches!(op, ElemOp::Scale(_));
    if out.len() != n || (needs_y && y.len() != n) {
        return Err(MacError::Shape(format!(
            "elementwise: x has {n} elements, y {}, out {}",
            y.len(),
            out.len()
        )));
    }
    let unit = Adder::new("output", format, rounding)?;
    let word = |i: usize| stream.bits(i as u64);
    let tally = out
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, o)| {
            let mut t = EventTally::default();
            for (j, slot) in o.iter_mut().enumerate() {
                let i = c * CHUNK + j;
                let yi = if needs_y { y[i] } else { 0.0 };
                let (v, e) = match op {
                    ElemOp::Add => unit.add(x[i], yi, word(i)),
                    ElemOp::Sub => unit.add(x[i], -yi, word(i)),
                    ElemOp::Mul => {
                        let (p, e) = two_prod(x[i], yi);
                        unit.add(p, e, word(i))
                    }
                    ElemOp::Scale(k) => {
                        let (p, e) = two_prod(k, x[i]);
                        unit.add(p, e, word(i))
                    }
                    ElemOp::Axpy(a) => {
                        let (p, e) = two_prod(a, x[i]);
                        let (ax, e1) = unit.add(p, e, stream.bits((n + i) as u64));
                        t.note(e1);
                        unit.add(ax, yi, word(i))
                    }
                };
                t.note(e);
                *slot = v;
            }
            t
        })
        .reduce(EventTally::default, EventTally::plus);
    let mut counts = ActionCounts::new();
    let n64 = n as u64;
    let roundings = match op {
        ElemOp::Add | ElemOp::Sub => {
            counts.record_add(&format, n64);
            n64
        }
        ElemOp::Mul | ElemOp::Scale(_) => {
            counts.record_mul(&format, &format, n64);
            n64
        }
        ElemOp::Axpy(_) => {
            counts.record_mul(&format, &format, n64);
            counts.record_add(&format, n64);
            2 * n64
        }
    };
    counts.random_bits += roundings * u64::from(rounding.random_bits());
    counts.overflows += tally.overflows;
    counts.saturations += tally.saturations;
    counts.wraps += tally.wraps;
    Ok(counts)
}
