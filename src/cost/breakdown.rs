//! A run's cost per [`Scope`] (layer or algorithm part, and pass): the parts of
//! [`price_tally`]'s totals.
//!
//! - energy, multiply-accumulates, memory traffic and random bits are additive: each scope's
//!   own actions and work are priced on their datapath as [`price_tally`] prices the run's, so
//!   the parts add up to the totals (exactly for the integer counts, to rounding for energy);
//! - cycles are not additive as they stand (the vector unit's `ceil(ops / lanes)`, stalls that
//!   exist only for the whole run), so each datapath's cycles are split into parts that add up
//!   exactly: every GEMM's own cycles go to its scope; the vector unit's cycles are shared in
//!   proportion to each scope's vector operations, the stall cycles in proportion to each
//!   scope's load on the run's bottleneck (the slowest memory level's bits or the random bits),
//!   both by the largest-remainder method.

use super::{
    gemm_cycles, price_on, price_tally, total_of, CostError, CostReport, Datapath, Gemm, Scope,
    Tally,
};
use crate::arch::{Architecture, Array};
use crate::arith::ActionCounts;

/// The cost of one scope of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeCost {
    /// The layer (or algorithm part) and the pass.
    pub scope: Scope,
    /// Energy, pJ (compute, rounding, random bits and memory traffic of its actions).
    pub energy_pj: f64,
    /// Its share of the run's cycles (compute and stalls; see the module docs).
    pub cycles: u64,
    /// Multiply-accumulates on the arrays.
    pub macs: u64,
    /// Bits read, summed over memory levels.
    pub read_bits: u64,
    /// Bits written, summed over memory levels.
    pub write_bits: u64,
    /// Random bits drawn.
    pub random_bits: u64,
}

/// Price every scope of `tally` on `arch` (see the module docs), in scope order.
pub fn price_scopes(arch: &Architecture, tally: &Tally) -> Result<Vec<ScopeCost>, CostError> {
    let parts: Vec<(&Scope, &Tally)> = tally.scopes.iter().collect();
    let mut cycles = vec![0u64; parts.len()];
    for datapath in [Datapath::LowPrecision, Datapath::FullPrecision] {
        for (c, share) in cycles
            .iter_mut()
            .zip(cycle_shares(arch, tally, &parts, datapath)?)
        {
            *c = c
                .checked_add(share)
                .ok_or_else(|| CostError::Overflow("a scope's cycles".into()))?;
        }
    }
    parts
        .iter()
        .zip(cycles)
        .map(|(&(scope, part), cycles)| {
            let priced = price_tally(arch, part)?;
            let bits = |f: fn(&super::LevelReport) -> u64| {
                total_of("a scope's memory traffic", priced.memory.iter().map(f))
            };
            Ok(ScopeCost {
                scope: *scope,
                energy_pj: priced.energy_pj,
                cycles,
                macs: priced.macs,
                read_bits: bits(|l| l.read_bits)?,
                write_bits: bits(|l| l.write_bits)?,
                random_bits: part.low.random_bits.saturating_add(part.full.random_bits),
            })
        })
        .collect()
}

/// One datapath's actions and work in a tally.
type Side = fn(&Tally) -> (&ActionCounts, &super::Work);

/// Each scope's share of the cycles `datapath` spends in the run (summing to them exactly).
fn cycle_shares(
    arch: &Architecture,
    tally: &Tally,
    parts: &[(&Scope, &Tally)],
    datapath: Datapath,
) -> Result<Vec<u64>, CostError> {
    let (array, side): (&Array, Side) = match datapath {
        Datapath::LowPrecision => (&arch.compute.array, |t| (&t.low, &t.low_work)),
        Datapath::FullPrecision => (&arch.full_precision.array, |t| (&t.full, &t.full_work)),
    };
    let (counts, work) = side(tally);
    if *counts == ActionCounts::default() && *work == super::Work::default() {
        return Ok(vec![0; parts.len()]);
    }
    let total: CostReport = price_on(arch, array, counts, work)?;
    let gemm_cycles_of = |gemms: &[Gemm]| -> Result<u64, CostError> {
        let each = gemms
            .iter()
            .map(|&g| gemm_cycles(array, g).map(|m| m.cycles))
            .collect::<Result<Vec<_>, _>>()?;
        total_of("the compute cycles", each)
    };
    let gemm: Vec<u64> = parts
        .iter()
        .map(|(_, p)| gemm_cycles_of(&side(p).1.gemms))
        .collect::<Result<_, _>>()?;
    // The vector unit's cycles: what the compute cycles hold beyond the GEMMs'.
    let vector_cycles = total.cycles - total_of("the compute cycles", gemm.iter().copied())?;
    let vector = apportion(
        vector_cycles,
        &parts
            .iter()
            .map(|(_, p)| side(p).1.vector_ops)
            .collect::<Vec<_>>(),
    );
    // The stalls, by the load on the slowest resource (a memory level or the random source).
    let bottleneck = total
        .memory
        .iter()
        .map(|l| (l.cycles, Some(l.name.as_str())))
        .chain([(total.rng_cycles, None)])
        .fold((0, None), |best, r| if r.0 > best.0 { r } else { best });
    let load: Vec<u64> = parts
        .iter()
        .map(|(_, p)| {
            let c = side(p).0;
            match bottleneck.1 {
                Some(level) => c
                    .mem
                    .get(level)
                    .map_or(0, |t| t.read_bits.saturating_add(t.write_bits)),
                None => c.random_bits,
            }
        })
        .collect();
    let stall = apportion(total.stall_cycles, &load);
    Ok((0..parts.len())
        .map(|i| gemm[i] + vector[i] + stall[i])
        .collect())
}

/// `total` split in proportion to `weights` into integers that sum to it exactly (the
/// largest-remainder method; ties go to the earlier weight). All-zero weights give everything
/// to the first part.
fn apportion(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let mut shares = vec![0u64; weights.len()];
    if weights.is_empty() {
        return shares;
    }
    if sum == 0 {
        shares[0] = total;
        return shares;
    }
    let t = u128::from(total);
    let mut rest: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    let mut given = 0u64;
    for (i, &w) in weights.iter().enumerate() {
        let exact = t * u128::from(w);
        // `exact / sum <= total`, so it fits.
        shares[i] = (exact / sum) as u64;
        given += shares[i];
        rest.push((exact % sum, i));
    }
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rest.iter().take((total - given) as usize) {
        shares[i] += 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn apportion_follows_the_weights_and_gives_the_remainder_to_the_largest_fractions() {
        assert_eq!(apportion(10, &[1, 1, 2]), [3, 2, 5]);
        assert_eq!(apportion(7, &[0, 5, 0]), [0, 7, 0]);
        assert_eq!(apportion(3, &[0, 0]), [3, 0]);
        assert_eq!(apportion(0, &[4, 9]), [0, 0]);
    }

    proptest! {
        #[test]
        fn apportion_sums_exactly_and_stays_within_one_of_the_exact_share(
            total in 0u64..u64::MAX,
            weights in prop::collection::vec(0u64..1 << 40, 1..12),
        ) {
            let s = apportion(total, &weights);
            prop_assert_eq!(s.iter().map(|&x| u128::from(x)).sum::<u128>(), u128::from(total));
            let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
            for (share, &w) in s.iter().zip(&weights) {
                if let Some(floor) = (u128::from(total) * u128::from(w)).checked_div(sum) {
                    prop_assert!(u128::from(*share) == floor || u128::from(*share) == floor + 1);
                }
            }
        }
    }
}
