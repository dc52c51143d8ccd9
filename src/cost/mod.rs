//! The cost model: prices [`ActionCounts`] on an [`Architecture`] in energy (Accelergy-style,
//! `sum over actions of count x energy per action`), cycles (SCALE-Sim's closed form for GEMMs on
//! the systolic array, the vector unit for elementwise work, bandwidth stalls per memory level)
//! and area.
//!
//! Entry points: [`gemm_counts`] (the actions of one GEMM), [`price`] (counts + the work's shape
//! -> [`CostReport`]), [`price_tally`] (a run's work on both datapaths), [`price_gemm`] (one
//! GEMM, for `lpsim cost --gemm`) and [`price_topology`] (a SCALE-Sim topology file's layers,
//! for `lpsim cost --topology`; the reader is in [`topology`]).
//!
//! A run's work is tallied per [`Datapath`]: the low-precision datapath (the architecture's MAC
//! on `compute.array`) and the full-precision unit (`full_precision`). Their phases alternate
//! (HALP's full gradient, then its inner loop) and do not overlap, so [`price_tally`] prices each
//! on its own array and adds the cycles; the full-precision unit's compute and rounding energy is
//! the cost component `full_precision`, its memory traffic and random bits go to the shared
//! memory levels and random-number source.
//!
//! A tally also keeps its work per [`Scope`] (a layer or the algorithm's update, and a pass);
//! [`price_scopes`] prices each scope so that the parts add up to [`price_tally`]'s totals.

pub mod area;
mod breakdown;
pub mod cycles;
pub mod energy;
mod gemm;
mod report;
mod scope;
pub mod topology;

pub use breakdown::{price_scopes, ScopeCost};
pub use cycles::{gemm_cycles, Gemm, GemmCycles};
pub use gemm::{gemm_counts, sram_accesses};
pub use report::{CostReport, LevelReport};
pub use scope::{Part, Pass, Scope};
pub use topology::{price_topology, read_topology, PricedLayer, PricedTopology, Topology};

use std::collections::{BTreeMap, HashMap};

use thiserror::Error;

use serde::{Deserialize, Serialize};

use crate::arch::{Architecture, Array, MemoryLevel};
use crate::arith::{ActionCounts, ActionKey};
use crate::cost::energy::{node_factor, Action, ENERGY_NODE_EXPONENT};
use crate::suggest::suggestion;

/// Counts that cannot be priced on an architecture.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CostError {
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

impl Work {
    /// Append `other`'s GEMMs and add its vector operations (stopping at 2^64 - 1, which
    /// pricing refuses, as for [`ActionCounts::merge`]).
    pub fn merge(&mut self, other: &Work) {
        self.gemms.extend(other.gemms.iter().copied());
        self.vector_ops = self.vector_ops.saturating_add(other.vector_ops);
    }

    /// The work of `n` repetitions: the GEMMs `n` times over, the vector operations times `n`
    /// (stopping at 2^64 - 1, as [`Work::merge`]).
    pub fn times(&self, n: u64) -> Work {
        let copies = usize::try_from(n).unwrap_or(usize::MAX);
        let mut gemms = Vec::with_capacity(self.gemms.len().saturating_mul(copies));
        for _ in 0..n {
            gemms.extend_from_slice(&self.gemms);
        }
        Work {
            gemms,
            vector_ops: self.vector_ops.saturating_mul(n),
        }
    }
}

/// Which unit of the architecture does a piece of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Datapath {
    /// The low-precision datapath: `formats.mac` on `compute.array`, the vector unit computing
    /// in `compute.vector.format`.
    LowPrecision,
    /// The full-precision unit: `full_precision.mac` on `full_precision.array`, the vector unit
    /// computing in `full_precision.format`.
    FullPrecision,
}

/// Work done on the host, not the accelerator (the training mini-batch's augmentation): counted
/// and reported beside the accelerator's cost, not priced (the architecture files describe the
/// accelerator only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostWork {
    /// Pixel values written into augmented images.
    pub elements: u64,
    /// Bytes moved: every augmented value read and written once, at the stored format's width.
    pub bytes: u64,
}

impl HostWork {
    /// Add `other` (stopping at 2^64 - 1).
    pub fn merge(&mut self, other: &HostWork) {
        self.elements = self.elements.saturating_add(other.elements);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// The actions and the work's shape of a run (or an epoch), by [`Datapath`], in total and per
/// [`Scope`], and the host's work beside them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Actions on the low-precision datapath.
    pub low: ActionCounts,
    /// Work on the low-precision datapath.
    pub low_work: Work,
    /// Actions on the full-precision unit.
    pub full: ActionCounts,
    /// Work on the full-precision unit.
    pub full_work: Work,
    /// The same actions and work per scope, each a tally of its own (whose `scopes` is empty):
    /// the totals above are their sum.
    pub scopes: BTreeMap<Scope, Tally>,
    /// Work on the host (not priced).
    pub host: HostWork,
}

impl Tally {
    /// Add one step's actions and work done on `datapath` for `scope`: to the totals and to
    /// the scope's part (work of no action and no shape adds nothing).
    pub fn add(&mut self, scope: Scope, datapath: Datapath, counts: &ActionCounts, work: &Work) {
        if *counts == ActionCounts::default() && *work == Work::default() {
            return;
        }
        self.add_total(datapath, counts, work);
        self.scopes
            .entry(scope)
            .or_default()
            .add_total(datapath, counts, work);
    }

    /// Add actions and work to the totals only.
    fn add_total(&mut self, datapath: Datapath, counts: &ActionCounts, work: &Work) {
        let (c, w) = match datapath {
            Datapath::LowPrecision => (&mut self.low, &mut self.low_work),
            Datapath::FullPrecision => (&mut self.full, &mut self.full_work),
        };
        c.merge(counts);
        w.merge(work);
    }

    /// Add everything in `other`, totals, scopes and host work.
    pub fn merge(&mut self, other: &Tally) {
        self.host.merge(&other.host);
        self.add_total(Datapath::LowPrecision, &other.low, &other.low_work);
        self.add_total(Datapath::FullPrecision, &other.full, &other.full_work);
        for (scope, part) in &other.scopes {
            let mine = self.scopes.entry(*scope).or_default();
            mine.add_total(Datapath::LowPrecision, &part.low, &part.low_work);
            mine.add_total(Datapath::FullPrecision, &part.full, &part.full_work);
        }
    }
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

/// Price `counts` (from executing or from [`gemm_counts`]) of `work` on `arch`'s low-precision
/// datapath.
pub fn price(
    arch: &Architecture,
    counts: &ActionCounts,
    work: &Work,
) -> Result<CostReport, CostError> {
    price_on(arch, &arch.compute.array, counts, work)
}

/// Price a run's [`Tally`] on `arch` (see the module docs): each datapath on its own array,
/// cycles added, the full-precision unit's compute and rounding as the component
/// `full_precision`. Utilization and mapping efficiency are the low-precision array's.
pub fn price_tally(arch: &Architecture, tally: &Tally) -> Result<CostReport, CostError> {
    let mut total = price(arch, &tally.low, &tally.low_work)?;
    if tally.full == ActionCounts::default() && tally.full_work == Work::default() {
        return Ok(total);
    }
    let full = price_on(
        arch,
        &arch.full_precision.array,
        &tally.full,
        &tally.full_work,
    )?;
    for (component, pj) in &full.breakdown {
        let key = match component.as_str() {
            "compute" | "rounding" => "full_precision",
            other => other,
        };
        *total.breakdown.entry(key.to_string()).or_default() += pj;
    }
    for (kind, pj) in &full.by_action {
        *total.by_action.entry(kind.clone()).or_default() += pj;
    }
    let index: HashMap<String, usize> = total
        .memory
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.clone(), i))
        .collect();
    for level in &full.memory {
        match index.get(&level.name).map(|&i| &mut total.memory[i]) {
            Some(l) => {
                l.read_bits += level.read_bits;
                l.write_bits += level.write_bits;
                l.cycles += level.cycles;
                l.energy_pj += level.energy_pj;
            }
            None => total.memory.push(level.clone()),
        }
    }
    total.gemms.extend(full.gemms.iter().copied());
    total.macs += full.macs;
    total.cycles += full.cycles;
    total.stall_cycles += full.stall_cycles;
    total.total_cycles += full.total_cycles;
    total.rng_cycles += full.rng_cycles;
    total.time_ns += full.time_ns;
    total.energy_pj += full.energy_pj;
    let a = &arch.compute.array;
    let low_macs = total_of(
        "the multiply-accumulates",
        tally
            .low_work
            .gemms
            .iter()
            .map(Gemm::macs)
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    total.utilization = ratio(
        low_macs as f64,
        total.total_cycles as f64 * a.rows as f64 * a.cols as f64,
    );
    Ok(total)
}

/// Price `counts` of `work` with its GEMMs on `array`.
fn price_on(
    arch: &Architecture,
    array: &Array,
    counts: &ActionCounts,
    work: &Work,
) -> Result<CostReport, CostError> {
    if counts.saturated() || work.vector_ops == u64::MAX {
        return Err(CostError::Overflow(
            "a count of the actions (their sum over the work)".into(),
        ));
    }
    let mut breakdown: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_action: BTreeMap<String, f64> = BTreeMap::new();
    let mut charge = |component: &str, kind: &str, pj: f64| {
        *breakdown.entry(component.to_string()).or_default() += pj;
        *by_action.entry(kind.to_string()).or_default() += pj;
    };
    for (key, &n) in &counts.actions {
        let component = match key {
            ActionKey::Quantize { .. } => "rounding",
            _ => "compute",
        };
        charge(
            component,
            key.kind(),
            n as f64 * action_pj(arch, &Action::Key(*key)),
        );
    }
    charge(
        "rng",
        "rng_bit",
        counts.random_bits as f64 * action_pj(arch, &Action::RngBit),
    );

    // A map, not a scan per level: an architecture may list very many levels.
    let levels: HashMap<&str, &MemoryLevel> =
        arch.memory.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut memory = Vec::new();
    for (name, t) in &counts.mem {
        let level = *levels.get(name.as_str()).ok_or_else(|| {
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
        .map(|&g| gemm_cycles(array, g))
        .collect::<Result<_, _>>()?;
    let compute_cycles = total_of(
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
    let macs = total_of(
        "the multiply-accumulates",
        work.gemms
            .iter()
            .map(Gemm::macs)
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    let folds = total_of("the folds", mapped.iter().map(|m| m.folds))?;
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
            total_cycles as f64 * array.rows as f64 * array.cols as f64,
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
fn total_of(what: &str, terms: impl IntoIterator<Item = u64>) -> Result<u64, CostError> {
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

/// One GEMM's own report (a row of [`PricedGemms`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricedGemm {
    /// Rows of the output.
    pub m: u64,
    /// Columns of the output.
    pub n: u64,
    /// The reduction.
    pub k: u64,
    /// Its price on its own.
    pub report: CostReport,
}

/// GEMMs priced one by one and together: what `lpsim cost --gemm ... --json` prints and
/// `lpsim.cost` returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricedGemms {
    /// All of them, one after another ([`price_gemms`]).
    pub total: CostReport,
    /// Each on its own, in the order given.
    pub gemms: Vec<PricedGemm>,
}

/// Price each of `gemms` on its own and all of them together.
pub fn price_gemm_list(arch: &Architecture, gemms: &[Gemm]) -> Result<PricedGemms, CostError> {
    let each = gemms
        .iter()
        .map(|&g| {
            Ok(PricedGemm {
                m: g.m,
                n: g.n,
                k: g.k,
                report: price_gemm(arch, g)?,
            })
        })
        .collect::<Result<Vec<_>, CostError>>()?;
    Ok(PricedGemms {
        total: price_gemms(arch, gemms)?,
        gemms: each,
    })
}

/// Price one GEMM on `arch` (`lpsim cost --gemm M,N,K`).
pub fn price_gemm(arch: &Architecture, g: Gemm) -> Result<CostReport, CostError> {
    price_gemms(arch, &[g])
}

/// Price several GEMMs run one after another on `arch` (`lpsim cost --gemm A --gemm B`): their
/// actions added, their cycles added (each GEMM folds onto the array on its own).
pub fn price_gemms(arch: &Architecture, gemms: &[Gemm]) -> Result<CostReport, CostError> {
    let mut counts = ActionCounts::default();
    for &g in gemms {
        counts.merge(&gemm_counts(arch, g)?);
    }
    price(
        arch,
        &counts,
        &Work {
            gemms: gemms.to_vec(),
            vector_ops: 0,
        },
    )
}
