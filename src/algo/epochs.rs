//! Per-epoch bookkeeping shared by the mini-batch and SVRG drivers: the actions and work of
//! each epoch, the samples kept, divergence.

use ndarray::Array2;

use crate::algo::{EpochStats, TrainOutcome};
use crate::arith::ActionCounts;
use crate::cost::Work;
use crate::graph::RangeHealth;

/// Per-epoch bookkeeping shared by the drivers: counts, samples, divergence.
#[derive(Default)]
pub(crate) struct Run {
    pub counts: ActionCounts,
    pub work: Work,
    /// Range events of the whole run.
    pub range: RangeHealth,
    epoch_counts: ActionCounts,
    epoch_work: Work,
    samples: Vec<Vec<Array2<f64>>>,
    /// The epochs (1-based, ascending) whose parameters are kept as samples (a sampler's
    /// [`crate::algo::samples::SampleSchedule::kept`]; none for the other algorithms).
    pub kept: Vec<u64>,
    pub diverged_at: Option<usize>,
}

impl Run {
    /// No steps yet, no samples to keep.
    pub fn new() -> Self {
        Run::default()
    }

    /// Add one step's actions and range events.
    pub fn add(&mut self, counts: &ActionCounts, work: Work, range: &RangeHealth) {
        self.range.merge(range);
        self.epoch_counts.merge(counts);
        self.epoch_work.gemms.extend(work.gemms);
        self.epoch_work.vector_ops += work.vector_ops;
    }

    /// Close epoch `epoch` (1-based) with parameters `params`: report it, keep a sample, and
    /// say whether the run diverged.
    pub fn end_epoch(
        &mut self,
        epoch: usize,
        params: &[Array2<f64>],
        train_loss: f64,
        on_epoch: &mut dyn FnMut(EpochStats),
    ) -> bool {
        let counts = std::mem::take(&mut self.epoch_counts);
        let work = std::mem::take(&mut self.epoch_work);
        self.counts.merge(&counts);
        self.work.gemms.extend(work.gemms.iter().copied());
        self.work.vector_ops += work.vector_ops;
        if self.keep_sample(epoch) {
            self.samples.push(params.to_vec());
        }
        on_epoch(EpochStats {
            epoch,
            train_loss,
            counts,
            work,
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
    pub fn finish(self, params: Vec<Array2<f64>>, chain: Option<Array2<f64>>) -> TrainOutcome {
        TrainOutcome {
            params,
            samples: self.samples,
            diverged_at: self.diverged_at,
            chain,
            counts: self.counts,
            work: self.work,
            range: self.range,
        }
    }
}
