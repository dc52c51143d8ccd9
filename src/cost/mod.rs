//! The cost model: prices [`ActionCounts`] on an [`Architecture`] in energy (Accelergy-style,
//! `sum over actions of count x energy per action`), cycles (SCALE-Sim's closed form for GEMMs on
//! the systolic array, the vector unit for elementwise work, bandwidth stalls per memory level)
//! and area.
//!
//! Entry points: [`gemm_counts`] (the actions of one GEMM), [`price`] (counts + the work's shape
//! -> [`CostReport`]) and [`price_gemm`] (both, for `lpsim cost --gemm`).

pub mod area;
pub mod cycles;
pub mod energy;
mod gemm;
mod report;

pub use cycles::{gemm_cycles, Gemm, GemmCycles};
pub use gemm::{gemm_counts, sram_accesses};
pub use report::{CostReport, LevelReport};

use std::collections::BTreeMap;

use thiserror::Error;

use crate::arch::Architecture;
use crate::arith::ActionCounts;
use crate::cost::energy::{node_factor, Action, ENERGY_NODE_EXPONENT};
use crate::suggest::suggestion;

/// Counts that cannot be priced on an architecture.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CostError {
    /// An `ActionCounts` key that does not parse back to formats.
    #[error("cannot price {kind}[\"{key}\"]: {reason}")]
    BadKey {
        /// `mul`, `add`, `fma` or `quantize`.
        kind: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Traffic at a memory level the architecture does not have.
    #[error("architecture `{arch}` has no memory level `{level}`{hint}; levels: {levels}")]
    UnknownLevel {
        /// Architecture name.
        arch: String,
        /// The level in the counts.
        level: String,
        /// A suggestion, or empty.
        hint: String,
        /// The levels it has.
        levels: String,
    },
    /// A figure (cycles, counts, bits) that does not fit in 64 bits: the work is too large for
    /// the architecture's model to price, or a bandwidth too small.
    #[error("{0} does not fit in 64 bits")]
    Overflow(String),
    /// Random bits are needed but the architecture has no random-number source.
    #[error("architecture `{0}` has no random-number source but the counts draw random bits")]
    NoRng(String),
}

/// 2^64 as `f64`: a figure computed in `f64` at or above it does not fit a `u64` count.
pub(crate) const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// The shape of the work the counts came from, for the cycle model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// GEMMs on the systolic array.
    pub gemms: Vec<Gemm>,
    /// Elementwise operations on the vector unit.
    pub vector_ops: u64,
}

/// Energy of one action on `arch`, pJ: the override if the file gives one, else the default
/// table scaled to the arch's node.
pub fn action_pj(arch: &Architecture, action: &Action) -> f64 {
    arch.energy
        .overrides
        .get(&action.to_string())
        .copied()
        .unwrap_or_else(|| {
            action.default_pj() * node_factor(arch.technology.node_nm, ENERGY_NODE_EXPONENT)
        })
}

/// Price `counts` (from executing or from [`gemm_counts`]) of `work` on `arch`.
pub fn price(
    arch: &Architecture,
    counts: &ActionCounts,
    work: &Work,
) -> Result<CostReport, CostError> {
    let mut breakdown: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_action: BTreeMap<String, f64> = BTreeMap::new();
    let mut charge = |component: &str, kind: &str, pj: f64| {
        *breakdown.entry(component.to_string()).or_default() += pj;
        *by_action.entry(kind.to_string()).or_default() += pj;
    };
    for (kind, map, component) in [
        ("mul", &counts.mul, "compute"),
        ("add", &counts.add, "compute"),
        ("fma", &counts.fma, "compute"),
        ("quantize", &counts.quantize, "rounding"),
    ] {
        for (key, &n) in map {
            let action = Action::parse(kind, key).map_err(|reason| CostError::BadKey {
                kind: kind.to_string(),
                key: key.clone(),
                reason,
            })?;
            charge(component, kind, n as f64 * action_pj(arch, &action));
        }
    }
    charge(
        "rng",
        "rng_bit",
        counts.random_bits as f64 * action_pj(arch, &Action::RngBit),
    );

    let mut memory = Vec::new();
    for (name, t) in &counts.mem {
        let level = arch
            .memory
            .iter()
            .find(|l| &l.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = arch.memory.iter().map(|l| l.name.as_str()).collect();
                CostError::UnknownLevel {
                    arch: arch.name.clone(),
                    level: name.clone(),
                    hint: suggestion(name, &names),
                    levels: names.join(", "),
                }
            })?;
        let read = t.read_bits as f64 * level.read_pj_per_bit;
        let write = t.write_bits as f64 * level.write_pj_per_bit;
        charge(name, "read", read);
        charge(name, "write", write);
        // Cycles in f64, refused (not saturated) when they exceed 64 bits.
        let traffic = t.read_bits as f64 + t.write_bits as f64;
        let cycles = (traffic / level.bandwidth_bits_per_cycle).ceil();
        if cycles >= TWO_POW_64 {
            return Err(CostError::Overflow(format!(
                "the cycles of memory level `{name}` ({traffic:e} bits at {:e} bits per cycle)",
                level.bandwidth_bits_per_cycle
            )));
        }
        memory.push(LevelReport {
            name: name.clone(),
            read_bits: t.read_bits,
            write_bits: t.write_bits,
            cycles: cycles as u64,
            energy_pj: read + write,
        });
    }

    let c = &arch.compute;
    let rng_cycles = match (counts.random_bits, c.rng.bits_per_cycle) {
        (0, _) => 0,
        (_, 0) => return Err(CostError::NoRng(arch.name.clone())),
        (bits, rate) => bits.div_ceil(rate),
    };
    let mapped: Vec<GemmCycles> = work
        .gemms
        .iter()
        .map(|&g| gemm_cycles(&c.array, g))
        .collect::<Result<_, _>>()?;
    let compute_cycles = total(
        "the compute cycles",
        mapped
            .iter()
            .map(|m| m.cycles)
            .chain([work.vector_ops.div_ceil(c.vector.lanes)]),
    )?;
    let slowest = memory
        .iter()
        .map(|l| l.cycles)
        .chain([rng_cycles])
        .max()
        .unwrap_or(0);
    let stall_cycles = slowest.saturating_sub(compute_cycles);
    let total_cycles = compute_cycles + stall_cycles;
    let macs = total(
        "the multiply-accumulates",
        work.gemms
            .iter()
            .map(Gemm::macs)
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    let folds = total("the folds", mapped.iter().map(|m| m.folds))?;
    let area_breakdown = area::area_mm2(arch);
    Ok(CostReport {
        arch: arch.name.clone(),
        gemms: work.gemms.clone(),
        macs,
        cycles: compute_cycles,
        stall_cycles,
        total_cycles,
        rng_cycles,
        time_ns: total_cycles as f64 / arch.technology.clock_ghz,
        energy_pj: breakdown.values().sum(),
        breakdown,
        by_action,
        utilization: ratio(
            macs as f64,
            total_cycles as f64 * c.array.rows as f64 * c.array.cols as f64,
        ),
        mapping_efficiency: ratio(
            mapped
                .iter()
                .map(|m| m.mapping_efficiency * m.folds as f64)
                .sum(),
            folds as f64,
        ),
        memory,
        area_mm2: area_breakdown.values().sum(),
        area_breakdown,
    })
}

/// The sum of `terms`, or [`CostError::Overflow`] naming `what`.
fn total(what: &str, terms: impl IntoIterator<Item = u64>) -> Result<u64, CostError> {
    terms
        .into_iter()
        .try_fold(0u64, u64::checked_add)
        .ok_or_else(|| CostError::Overflow(what.to_string()))
}

/// `a / b`, 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Price one GEMM on `arch` (`lpsim cost --gemm M,N,K`).
pub fn price_gemm(arch: &Architecture, g: Gemm) -> Result<CostReport, CostError> {
    price(
        arch,
        &gemm_counts(arch, g)?,
        &Work {
            gemms: vec![g],
            vector_ops: 0,
        },
    )
}
