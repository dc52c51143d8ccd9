//! The general, order-exact sum of one output: the reference every fast path is tested against.
//!
//! It follows [`MacConfig`]'s semantics literally, one [`Adder::add`] per rounding, in the
//! configured [`Order`], drawing the random word of rounding `r` of output `o` at
//! [`MacConfig::random_index`]. `Order::Native` is not handled here (it is not order-exact).

use crate::arith::mac::{Adder, EventTally, MacConfig, Order};
use crate::round::RandomStream;

/// One output of the general path: `sum_k a[k] b[k]` as the MAC computes it. `o` is the
/// output's row-major number (for the random words); `scratch` is reused by the pairwise order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dot_general(
    cfg: &MacConfig,
    adder: &Adder,
    a: &[f32],
    b: &[f32],
    stream: &RandomStream,
    o: u64,
    scratch: &mut Vec<f64>,
    tally: &mut EventTally,
) -> f64 {
    let k = a.len();
    let word = |r: usize| stream.bits(MacConfig::random_index(o, k, r as u64));
    let p = |i: usize| cfg.product(f64::from(a[i]), f64::from(b[i]));
    let mut add = |x: f64, y: f64, r: usize| {
        let (v, e) = adder.add(x, y, word(r));
        tally.note(e);
        v
    };
    match cfg.order {
        Order::Sequential | Order::Native => (0..k).fold(0.0, |acc, i| add(acc, p(i), i)),
        Order::Chunk(c) => {
            let mut total = 0.0;
            for (ci, start) in (0..k).step_by(c).enumerate() {
                let end = (start + c).min(k);
                let chunk = (start..end).fold(0.0, |acc, i| add(acc, p(i), i));
                total = add(total, chunk, k + ci);
            }
            total
        }
        Order::Pairwise => {
            if k == 0 {
                return 0.0;
            }
            if k == 1 {
                let (v, e) = adder.round(p(0), word(0));
                tally.note(e);
                return v;
            }
            scratch.clear();
            scratch.extend((0..k).map(p));
            let mut len = k;
            let mut r = 0;
            while len > 1 {
                let half = len / 2;
                for t in 0..half {
                    scratch[t] = add(scratch[2 * t], scratch[2 * t + 1], r);
                    r += 1;
                }
                if len % 2 == 1 {
                    scratch[half] = scratch[len - 1];
                }
                len = len.div_ceil(2);
            }
            scratch[0]
        }
    }
}
