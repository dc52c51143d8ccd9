//! [`CostReport`]: the priced result of a run or a GEMM.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cost::cycles::Gemm;

/// Traffic and transfer time at one memory level.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelReport {
    /// Level name.
    pub name: String,
    /// Bits read.
    pub read_bits: u64,
    /// Bits written.
    pub write_bits: u64,
    /// Cycles the level needs for its traffic: `ceil((read + write) / bandwidth)`.
    pub cycles: u64,
    /// Energy of the traffic, pJ.
    pub energy_pj: f64,
}

/// Energy, cycles, utilization and area of a piece of work on one architecture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostReport {
    /// Architecture name.
    pub arch: String,
    /// GEMMs run on the array.
    pub gemms: Vec<Gemm>,
    /// Multiply-accumulates on the array.
    pub macs: u64,
    /// Compute cycles: SCALE-Sim's "Total Cycles" per GEMM (`folds x per_fold - 1`, summed)
    /// plus the vector unit's cycles; stalls excluded.
    pub cycles: u64,
    /// Cycles the slowest memory level or the random-number source adds beyond compute
    /// (transfers assumed overlapped with compute).
    pub stall_cycles: u64,
    /// `cycles + stall_cycles`.
    pub total_cycles: u64,
    /// Cycles the random-number source needs: `ceil(random_bits / bits_per_cycle)`.
    pub rng_cycles: u64,
    /// Wall time of `total_cycles` at the clock, ns.
    pub time_ns: f64,
    /// Total energy, pJ.
    pub energy_pj: f64,
    /// Energy per component (`compute`, `rounding`, `rng`, each memory level, and
    /// `full_precision`: the full-precision unit's compute and rounding), pJ.
    pub breakdown: BTreeMap<String, f64>,
    /// Energy per action kind (`mul`, `add`, `fma`, `quantize`, `rng_bit`, `read`, `write`), pJ.
    pub by_action: BTreeMap<String, f64>,
    /// `macs / (total_cycles x rows x cols)` of the low-precision array: SCALE-Sim's overall
    /// utilization (equal to it when nothing stalls), 0..=1.
    pub utilization: f64,
    /// Mean fraction of PEs mapped per fold over all GEMMs' folds (SCALE-Sim's mapping
    /// efficiency), 0..=1.
    pub mapping_efficiency: f64,
    /// Per memory level.
    pub memory: Vec<LevelReport>,
    /// Total chip area, mm².
    pub area_mm2: f64,
    /// Area per component, mm².
    pub area_breakdown: BTreeMap<String, f64>,
}
