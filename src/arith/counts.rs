//! `ActionCounts`: what a kernel or a graph step did, in hardware actions, before pricing.
//!
//! Counting is separate from pricing (see ARCHITECTURE.md): the counts of one run can be priced
//! on many architectures. Keys are canonical format and rounding specs, so the cost model can
//! parse them back to widths:
//! - `mul["A x B"]`: multiplies with input formats A and B;
//! - `add["F"]`: additions performed (and rounded) in format F;
//! - `fma["A x B + C"]`: fused multiply-adds into accumulator format C;
//! - `quantize["F/R"]`: conversions to format F with rounding unit R;
//! - `mem["level"]`: bits read and written at a memory level.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::format::Format;
use crate::round::Rounding;

/// Bits moved at one memory level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Bits read.
    pub read_bits: u64,
    /// Bits written.
    pub write_bits: u64,
}

/// Hardware actions counted while executing, keyed by format (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCounts {
    /// Multiplies by input-format pair `"A x B"`.
    pub mul: BTreeMap<String, u64>,
    /// Additions by the format they round to.
    pub add: BTreeMap<String, u64>,
    /// Fused multiply-adds by `"A x B + C"`.
    pub fma: BTreeMap<String, u64>,
    /// Conversions by `"F/R"` (format, rounding unit).
    pub quantize: BTreeMap<String, u64>,
    /// Random bits drawn by stochastic rounding units.
    pub random_bits: u64,
    /// Results that overflowed a float format's range (to infinity, NaN or its saturation value).
    pub overflows: u64,
    /// Results clamped by a saturating fixed-point unit.
    pub saturations: u64,
    /// Results wrapped around by a wrapping fixed-point unit.
    pub wraps: u64,
    /// Memory traffic by level name.
    pub mem: BTreeMap<String, Traffic>,
}

impl ActionCounts {
    /// No actions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `n` multiplies of `a` by `b`.
    pub fn record_mul(&mut self, a: &Format, b: &Format, n: u64) {
        *self.mul.entry(format!("{a} x {b}")).or_default() += n;
    }

    /// Record `n` additions rounded to `f`.
    pub fn record_add(&mut self, f: &Format, n: u64) {
        *self.add.entry(f.to_string()).or_default() += n;
    }

    /// Record `n` fused multiply-adds `a x b + acc`.
    pub fn record_fma(&mut self, a: &Format, b: &Format, acc: &Format, n: u64) {
        *self.fma.entry(format!("{a} x {b} + {acc}")).or_default() += n;
    }

    /// Record `n` conversions to `f` with rounding unit `r`, and the random bits they draw.
    pub fn record_quantize(&mut self, f: &Format, r: Rounding, n: u64) {
        *self.quantize.entry(format!("{f}/{r}")).or_default() += n;
        self.random_bits += n * u64::from(r.random_bits());
    }

    /// Record `bits` read at memory level `level`.
    pub fn record_read(&mut self, level: &str, bits: u64) {
        self.mem.entry(level.to_string()).or_default().read_bits += bits;
    }

    /// Record `bits` written at memory level `level`.
    pub fn record_write(&mut self, level: &str, bits: u64) {
        self.mem.entry(level.to_string()).or_default().write_bits += bits;
    }

    /// Add every count of `other` to `self`. A count that would pass 2^64 - 1 stays there
    /// ([`ActionCounts::saturated`]), and pricing refuses it, rather than wrapping to a small
    /// number.
    pub fn merge(&mut self, other: &ActionCounts) {
        for (dst, src) in [
            (&mut self.mul, &other.mul),
            (&mut self.add, &other.add),
            (&mut self.fma, &other.fma),
            (&mut self.quantize, &other.quantize),
        ] {
            for (k, v) in src {
                let n = dst.entry(k.clone()).or_default();
                *n = n.saturating_add(*v);
            }
        }
        for (dst, src) in [
            (&mut self.random_bits, other.random_bits),
            (&mut self.overflows, other.overflows),
            (&mut self.saturations, other.saturations),
            (&mut self.wraps, other.wraps),
        ] {
            *dst = dst.saturating_add(src);
        }
        for (k, t) in &other.mem {
            let e = self.mem.entry(k.clone()).or_default();
            e.read_bits = e.read_bits.saturating_add(t.read_bits);
            e.write_bits = e.write_bits.saturating_add(t.write_bits);
        }
    }

    /// Whether a count reached 2^64 - 1 when merging, so that it no longer counts exactly.
    pub fn saturated(&self) -> bool {
        let maps = [&self.mul, &self.add, &self.fma, &self.quantize];
        maps.iter().flat_map(|m| m.values()).any(|&n| n == u64::MAX)
            || [
                self.random_bits,
                self.overflows,
                self.saturations,
                self.wraps,
            ]
            .contains(&u64::MAX)
            || self
                .mem
                .values()
                .any(|t| t.read_bits == u64::MAX || t.write_bits == u64::MAX)
    }
}
