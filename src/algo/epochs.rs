//! Per-epoch bookkeeping shared by the mini-batch and SVRG drivers: the actions and work of
//! each epoch, the samples kept, divergence.

use ndarray::{Array2, ArrayD};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::algo::{EpochStats, TrainOutcome};
use crate::cost::{Datapath, HostWork, Tally, Work};
use crate::graph::{RangeHealth, ScopeWork, StepResult};

/// Per-epoch bookkeeping shared by the drivers: counts, samples, divergence.
#[derive(Default)]
pub(crate) struct Run {
    /// Actions and work of the whole run, per datapath.
    pub tally: Tally,
    /// Range events of the whole run.
    pub range: RangeHealth,
    epoch_tally: Tally,
    /// The fixed counts and work per scope of the epoch's steps not yet in `epoch_tally`: each
    /// executor's ([`StepResult::fixed`]), its datapath and how many steps it ran. Added once
    /// per epoch times the steps rather than at every step (the same sums: counts are
    /// integers, and the GEMMs' cycles are summed whatever their order).
    fixed: Vec<(Arc<[ScopeWork]>, Datapath, u64)>,
    samples: Vec<Vec<ArrayD<f64>>>,
    /// The epochs (1-based, ascending) whose parameters are kept as samples (a sampler's
    /// [`crate::algo::samples::SampleSchedule::kept`]; none for the other algorithms).
    pub kept: Vec<u64>,
    pub diverged_at: Option<usize>,
    /// Epochs planned, and steps per epoch: what [`EpochStats`] reports as progress.
    plan: (usize, u64),
}

impl Run {
    /// No steps yet, no samples to keep; `epochs` of `epoch_len` steps each are planned.
    pub fn new(epochs: usize, epoch_len: u64) -> Self {
        Run {
            plan: (epochs, epoch_len),
            ..Run::default()
        }
    }

    /// Add one step's actions (on the datapath that did them, per scope) and range events.
    pub fn add(&mut self, step: &StepResult) {
        self.range.merge(&step.range);
        for (fixed, kernel) in step.parts() {
            let tally = &mut self.epoch_tally;
            tally.add(fixed.scope, step.datapath, kernel, &Work::default());
        }
        let dp = step.datapath;
        match self
            .fixed
            .iter_mut()
            .find(|(f, d, _)| Arc::ptr_eq(f, step.fixed()) && *d == dp)
        {
            Some((_, _, steps)) => *steps += 1,
            None => {
                // A step of a graph executed once (`execute`): at most a few kept apart.
                if self.fixed.len() >= 8 {
                    self.add_fixed();
                }
                self.fixed.push((Arc::clone(step.fixed()), dp, 1));
            }
        }
    }

    /// Add the fixed counts and work of the steps added since the last call to the epoch's
    /// tally.
    fn add_fixed(&mut self) {
        for (fixed, dp, steps) in self.fixed.drain(..) {
            for s in fixed.iter() {
                let counts = s.counts.times(steps);
                self.epoch_tally
                    .add(s.scope, dp, &counts, &s.work.times(steps));
            }
        }
    }

    /// Add work the host did for a step (augmenting its batch).
    pub fn add_host(&mut self, host: &HostWork) {
        self.epoch_tally.host.merge(host);
    }

    /// Close epoch `epoch` (1-based) with parameters `params`: report it, keep a sample, and
    /// say whether the run diverged.
    pub fn end_epoch(
        &mut self,
        epoch: usize,
        params: &[ArrayD<f64>],
        train_loss: f64,
        on_epoch: &mut dyn FnMut(EpochStats),
    ) -> bool {
        self.add_fixed();
        let tally = std::mem::take(&mut self.epoch_tally);
        self.tally.merge(&tally);
        if self.keep_sample(epoch) {
            self.samples.push(params.to_vec());
        }
        let (epochs, epoch_len) = self.plan;
        on_epoch(EpochStats {
            epoch,
            epochs,
            steps: (epoch as u64).saturating_mul(epoch_len),
            steps_total: (epochs as u64).saturating_mul(epoch_len),
            train_loss,
            tally,
            params: params.to_vec(),
        });
        if !train_loss.is_finite() || params.iter().any(|p| p.iter().any(|v| !v.is_finite())) {
            self.diverged_at = Some(epoch);
        }
        self.diverged_at.is_some()
    }

    /// Whether the parameters after `epoch` are a sample (one of [`Run::kept`]).
    fn keep_sample(&self, epoch: usize) -> bool {
        self.kept.binary_search(&(epoch as u64)).is_ok()
    }

    /// The outcome with the final parameters.
    pub fn finish(self, params: Vec<ArrayD<f64>>, chain: Option<Array2<f64>>) -> TrainOutcome {
        TrainOutcome {
            params,
            samples: self.samples,
            diverged_at: self.diverged_at,
            chain,
            tally: self.tally,
            derived: BTreeMap::new(),
            range: self.range,
        }
    }
}
