//! The action counts of one GEMM on an architecture, without executing it: what `lpsim cost
//! --gemm` prices, and what later issues reuse for the GEMMs of a step graph.

use crate::arch::{Architecture, Dataflow};
use crate::arith::ActionCounts;
use crate::cost::cycles::{ceil_div, Gemm};
use crate::format::Format;

/// Bits of `count` element accesses of a `[rows, cols]` tensor in `f` (block formats include
/// their shared scales, amortized over the tensor's elements).
fn bits(f: &Format, count: u64, [rows, cols]: [u64; 2]) -> u64 {
    (count as f64 * f.storage_bits((rows * cols) as usize, cols as usize)).ceil() as u64
}

/// Word accesses of the array to its innermost memory level, as SCALE-Sim counts them
/// (COSTMODEL.md section D): `(A reads, B reads, C writes)`.
pub fn sram_accesses(arch: &Architecture, g: Gemm) -> (u64, u64, u64) {
    let a = &arch.compute.array;
    let Gemm { m, n, k } = g;
    match a.dataflow {
        Dataflow::Os => (
            m * k * ceil_div(n, a.cols),
            k * n * ceil_div(m, a.rows),
            m * n,
        ),
        Dataflow::Ws => (
            m * k * ceil_div(n, a.cols),
            k * n,
            m * n * ceil_div(k, a.rows),
        ),
        Dataflow::Is => (
            m * k,
            k * n * ceil_div(m, a.cols),
            m * n * ceil_div(k, a.rows),
        ),
    }
}

/// The actions of `C = A B` with A (`M x K`, activations format) and B (`K x N`, weights
/// format) on `arch`:
/// - `M N K` MACs of `formats.mac`: `fma["a x b + acc"]` if fused, else `mul["a x b"]` and
///   `add["acc"]` (plus a `quantize` of each product if `product` is a format);
/// - `M N` conversions of the outputs to the activations format with its rounding unit (none if
///   the accumulator already is that format);
/// - memory, level 0 being the outermost and the last the innermost: every level but the
///   innermost reads A and B once and receives C once; every level but the outermost is filled
///   with A and B once and drains C once; the innermost serves the array with SCALE-Sim's
///   per-dataflow access counts ([`sram_accesses`]), C's extra writes being partial sums in the
///   accumulator format. Sizes are in each tensor's format bits.
pub fn gemm_counts(arch: &Architecture, g: Gemm) -> ActionCounts {
    let f = &arch.formats;
    let mac = &f.mac;
    let macs = g.macs();
    let mut c = ActionCounts::new();
    if mac.fused {
        c.record_fma(&mac.a, &mac.b, &mac.acc, macs);
    } else {
        c.record_mul(&mac.a, &mac.b, macs);
        if let Some(p) = mac.product {
            c.record_quantize(&p, mac.acc_rounding, macs);
        }
        c.record_add(&mac.acc, macs);
    }
    let outputs = g.m * g.n;
    if mac.acc != f.activations {
        c.record_quantize(&f.activations, f.rounding.activations, outputs);
    }
    let (a_shape, b_shape, c_shape) = ([g.m, g.k], [g.k, g.n], [g.m, g.n]);
    let a_bits = bits(&f.activations, g.m * g.k, a_shape);
    let b_bits = bits(&f.weights, g.k * g.n, b_shape);
    let c_bits = bits(&f.activations, outputs, c_shape);
    let last = arch.memory.len() - 1;
    for (i, level) in arch.memory.iter().enumerate() {
        if i < last {
            c.record_read(&level.name, a_bits + b_bits);
            c.record_write(&level.name, c_bits);
        }
        if i > 0 {
            c.record_write(&level.name, a_bits + b_bits);
            c.record_read(&level.name, c_bits);
        }
    }
    let (a_reads, b_reads, c_writes) = sram_accesses(arch, g);
    let inner = &arch.innermost().name;
    c.record_read(
        inner,
        bits(&f.activations, a_reads, a_shape) + bits(&f.weights, b_reads, b_shape),
    );
    c.record_write(
        inner,
        c_bits + bits(&mac.acc, c_writes.saturating_sub(outputs), c_shape),
    );
    c
}
