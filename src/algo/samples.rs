//! Which parameter samples a sampler keeps: for the Bayesian model average of a data set, the
//! parameters at the end of chosen epochs; for the Gaussian target, the chain's rows at chosen
//! steps. Both are counted in *units*: epochs for mini-batch budgets, steps for the Gaussian
//! target's step budget (its "epochs" are only reporting intervals).
//!
//! The rule (workloads/README.md, `train`), for units `1..=units`:
//! 1. the candidates are the units after the first `burn_in`;
//! 2. cyclical step sizes (cSGLD, docs/algorithms.md) keep only the candidates that end inside
//!    their cycle's *sampling window*: the last `save_per_cycle` units of the cycle (LP-SGLD
//!    saves the last 5 of each 35-epoch cycle), but at most its second half, where the cosine
//!    step size is below half its peak. A cycle shorter than `2 save_per_cycle` units therefore
//!    keeps the units ending in its second half, never every unit. Cycles are those of the step
//!    size, `floor(total_steps / cycles)` steps each (the steps left over start a partial cycle,
//!    as in the reference's `k mod floor(K / M)`), so they need not align with units;
//! 3. of those, the first and every `thin`-th after it (Stan's thinning);
//! 4. of those, the last `samples` (0 = all).

use crate::algo::AlgoError;

/// The sample-keeping rule of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleSchedule {
    /// Units of the run (epochs, or steps).
    pub units: u64,
    /// Steps per unit (1 when the units are steps).
    pub unit_len: u64,
    /// Units discarded at the start.
    pub burn_in: u64,
    /// Keep every `thin`-th candidate (>= 1).
    pub thin: u64,
    /// Keep at most the last `samples` (0 = all).
    pub samples: u64,
    /// Cyclical step size: `(cycle length in steps, save_per_cycle units)`.
    pub cycle: Option<(u64, u64)>,
}

impl SampleSchedule {
    /// The rule, checked: `burn_in` below `units`, `thin` >= 1, and at least one unit kept.
    pub fn new(
        units: u64,
        unit_len: u64,
        burn_in: u64,
        thin: u64,
        samples: u64,
        cycle: Option<(u64, u64)>,
    ) -> Result<Self, AlgoError> {
        let bad = |name: &str, reason: String| AlgoError::BadHyper {
            name: name.into(),
            reason,
        };
        if burn_in >= units {
            return Err(bad(
                "burn_in",
                format!("{burn_in}: must be below the run's {units} epochs (steps for a Gaussian target)"),
            ));
        }
        if thin < 1 {
            return Err(bad("thin", format!("{thin}: must be at least 1")));
        }
        let s = SampleSchedule {
            units,
            unit_len: unit_len.max(1),
            burn_in,
            thin,
            samples,
            cycle,
        };
        if s.kept().is_empty() {
            return Err(bad(
                "save_per_cycle",
                format!(
                    "no sample would be kept: no epoch after burn_in = {burn_in} ends in the \
                     sampling window of its cycle; lower burn_in or cycles"
                ),
            ));
        }
        Ok(s)
    }

    /// Whether unit `u` (1-based) ends inside its cycle's sampling window (always, without a
    /// cyclical step size).
    fn in_window(&self, u: u64) -> bool {
        let Some((c, save)) = self.cycle else {
            return true;
        };
        let c = c.max(1);
        let last_step = u * self.unit_len - 1;
        // Steps from this unit's last step to the end of its cycle, that step included.
        let left = c - last_step % c;
        left <= save.saturating_mul(self.unit_len) && 2 * left <= c
    }

    /// The kept units, 1-based, ascending.
    pub fn kept(&self) -> Vec<u64> {
        let candidates = (self.burn_in + 1..=self.units).filter(|&u| self.in_window(u));
        let thinned: Vec<u64> = candidates.step_by(self.thin as usize).collect();
        let skip = match self.samples {
            0 => 0,
            n => thinned.len().saturating_sub(n as usize),
        };
        thinned[skip..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_in_thin_and_samples_pick_exact_epochs() {
        let kept = |b, t, s| SampleSchedule::new(10, 7, b, t, s, None).unwrap().kept();
        assert_eq!(kept(0, 1, 0), (1..=10).collect::<Vec<_>>());
        assert_eq!(kept(4, 1, 0), vec![5, 6, 7, 8, 9, 10]);
        assert_eq!(kept(4, 2, 0), vec![5, 7, 9]);
        assert_eq!(kept(2, 3, 0), vec![3, 6, 9]);
        assert_eq!(kept(2, 3, 2), vec![6, 9]);
        assert_eq!(kept(0, 1, 3), vec![8, 9, 10]);
        assert_eq!(kept(9, 5, 0), vec![10]);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(SampleSchedule::new(10, 1, 10, 1, 0, None).is_err());
        assert!(SampleSchedule::new(10, 1, 0, 0, 0, None).is_err());
    }

    #[test]
    fn aligned_cycles_keep_their_last_save_per_cycle_epochs() {
        // LP-SGLD's cSGLD: 245 epochs, 7 cycles of 35, the last 5 of each.
        let s = SampleSchedule::new(245, 3, 0, 1, 0, Some((35 * 3, 5))).unwrap();
        let want: Vec<u64> = (0..7).flat_map(|k| 35 * k + 31..=35 * k + 35).collect();
        assert_eq!(s.kept(), want);
        // Burn-in and thinning apply to those.
        let s = SampleSchedule::new(245, 3, 40, 2, 0, Some((35 * 3, 5))).unwrap();
        assert_eq!(&s.kept()[..4], &[66, 68, 70, 102]);
    }

    #[test]
    fn short_cycles_keep_their_second_half_never_every_epoch() {
        // 20 epochs of 7 steps in 7 cycles of 20 steps (2.86 epochs): windows of 10 steps.
        let s = SampleSchedule::new(20, 7, 0, 1, 0, Some((20, 5))).unwrap();
        assert_eq!(s.kept(), vec![2, 5, 8, 11, 13, 14, 16, 17, 19, 20]);
        // Two-epoch cycles keep the second epoch of each.
        let s = SampleSchedule::new(20, 10, 0, 1, 0, Some((20, 5))).unwrap();
        assert_eq!(s.kept(), (1..=10).map(|k| 2 * k).collect::<Vec<_>>());
    }

    #[test]
    fn a_window_missed_by_every_epoch_after_burn_in_is_refused() {
        // One cycle of 100 steps over 10 epochs of 10: the window is epochs 6..=10; burn-in 9
        // leaves epoch 10, kept; a partial cycle after the last full one holds no window.
        assert_eq!(
            SampleSchedule::new(10, 10, 9, 1, 0, Some((100, 5)))
                .unwrap()
                .kept(),
            vec![10]
        );
        // 10 epochs of 10 steps in cycles of 95: epoch 10 ends at step 99, 5 steps into the
        // partial second cycle (its high step size): nothing after burn-in 9.
        assert!(SampleSchedule::new(10, 10, 9, 1, 0, Some((95, 5))).is_err());
    }
}
