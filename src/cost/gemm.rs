//! The action counts of one GEMM on an architecture, without executing it: what `lpsim cost
//! --gemm` prices, and what later issues reuse for the GEMMs of a step graph.

use crate::arch::{Architecture, Dataflow};
use crate::arith::ActionCounts;
use crate::cost::cycles::{ceil_div, checked, Gemm};
use crate::cost::{CostError, TWO_POW_64};
use crate::format::Format;

/// Bits occupied by `count` element accesses of a `[rows, cols]` tensor in `f` (block formats
/// include their shared scales, amortized over the tensor's elements); `None` when that exceeds
/// 64 bits.
fn bits(f: &Format, count: u64, [rows, cols]: [u64; 2]) -> Option<u64> {
    let len = rows.checked_mul(cols)? as usize;
    let b = (count as f64 * f.storage_bits(len, cols as usize)).ceil();
    (b < TWO_POW_64).then_some(b as u64)
}

/// Word accesses of the array to its innermost memory level, as SCALE-Sim counts them
/// (docs/cost-model.md): `(A reads, B reads, C writes)`; [`CostError::Overflow`] when one
/// exceeds 64 bits.
pub fn sram_accesses(arch: &Architecture, g: Gemm) -> Result<(u64, u64, u64), CostError> {
    let a = &arch.compute.array;
    let Gemm { m, n, k } = g;
    let mul = |terms: &[u64]| checked(terms, u64::checked_mul);
    let counts = match a.dataflow {
        Dataflow::Os => (
            mul(&[m, k, ceil_div(n, a.cols)]),
            mul(&[k, n, ceil_div(m, a.rows)]),
            mul(&[m, n]),
        ),
        Dataflow::Ws => (
            mul(&[m, k, ceil_div(n, a.cols)]),
            mul(&[k, n]),
            mul(&[m, n, ceil_div(k, a.rows)]),
        ),
        Dataflow::Is => (
            mul(&[m, k]),
            mul(&[k, n, ceil_div(m, a.cols)]),
            mul(&[m, n, ceil_div(k, a.rows)]),
        ),
    };
    match counts {
        (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
        _ => Err(g.overflow("the memory accesses")),
    }
}

/// The actions of `C = A B` with A (`M x K`, activations format) and B (`K x N`, weights
/// format) on `arch`:
/// - the MACs: exactly what the emulated GEMM of `formats.mac` reports for this shape
///   ([`MacConfig::counts`](crate::arith::MacConfig::counts), the one counting model): fused
///   multiply-adds or multiplies and adds per the accumulation order, product roundings, and
///   the accumulator's random bits;
/// - `M N` conversions of the outputs to the activations format with its rounding unit (none if
///   the accumulator already is that format);
/// - memory, level 0 being the outermost and the last the innermost: every level but the
///   innermost reads A and B once and receives C once; every level but the outermost is filled
///   with A and B once and drains C once; the innermost serves the array with SCALE-Sim's
///   per-dataflow access counts ([`sram_accesses`]), C's extra writes being partial sums in the
///   accumulator format. Sizes are in each tensor's format bits.
///
/// Every count is computed with checked (or saturating, then checked) arithmetic: a GEMM whose
/// counts (or the random bits they draw, or a level's total traffic) exceed 64 bits is
/// [`CostError::Overflow`].
pub fn gemm_counts(arch: &Architecture, g: Gemm) -> Result<ActionCounts, CostError> {
    let f = &arch.formats;
    let overflow = || g.overflow("the memory traffic in bits");
    let fits = |v: Option<u64>| v.ok_or_else(overflow);
    let add = |terms: &[u64]| fits(checked(terms, u64::checked_add));
    g.macs()?;
    let outputs = fits(g.m.checked_mul(g.n))?;
    let mut c = f.mac.counts(outputs, g.k);
    if f.mac.acc != f.activations {
        c.record_quantize(&f.activations, f.rounding.activations, outputs);
    }
    if c.saturated() {
        return Err(
            g.overflow("the MAC actions (products, roundings, or the random bits they draw)")
        );
    }
    let (a_shape, b_shape, c_shape) = ([g.m, g.k], [g.k, g.n], [g.m, g.n]);
    let a_bits = fits(bits(&f.activations, fits(g.m.checked_mul(g.k))?, a_shape))?;
    let b_bits = fits(bits(&f.weights, fits(g.k.checked_mul(g.n))?, b_shape))?;
    let c_bits = fits(bits(&f.activations, outputs, c_shape))?;
    let ab_bits = add(&[a_bits, b_bits])?;
    let (a_reads, b_reads, c_writes) = sram_accesses(arch, g)?;
    let inner_reads = add(&[
        fits(bits(&f.activations, a_reads, a_shape))?,
        fits(bits(&f.weights, b_reads, b_shape))?,
    ])?;
    let inner_writes = add(&[
        c_bits,
        fits(bits(&f.mac.acc, c_writes.saturating_sub(outputs), c_shape))?,
    ])?;
    // A middle level's totals, and the innermost level's: its own traffic plus fill and drain.
    add(&[ab_bits, c_bits])?;
    add(&[inner_reads, c_bits])?;
    add(&[inner_writes, ab_bits])?;

    let last = arch.memory.len() - 1;
    for (i, level) in arch.memory.iter().enumerate() {
        if i < last {
            c.record_read(&level.name, ab_bits);
            c.record_write(&level.name, c_bits);
        }
        if i > 0 {
            c.record_write(&level.name, ab_bits);
            c.record_read(&level.name, c_bits);
        }
    }
    let inner = &arch.innermost().name;
    c.record_read(inner, inner_reads);
    c.record_write(inner, inner_writes);
    Ok(c)
}
