//! Range health by tensor role and format: the [`RangeCounts`] of every rounding the executor
//! did, summed per `(role, format)` over a step and, by the drivers, over a run.
//!
//! The key is the pair because one role is stored in several formats (an `fp32` master copy and
//! its low-precision weights; the activations and their conversion to the MAC's input format):
//! a saturating low-precision format must not be diluted by the full-precision values beside it.

use crate::format::{Format, RangeCounts};
use crate::graph::Role;

/// The range events of one role in one format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeEntry {
    /// What the values were.
    pub role: Role,
    /// The format they were stored in.
    pub format: Format,
    /// Their range events.
    pub counts: RangeCounts,
}

/// Range events per `(role, format)`, in the order the pairs were first recorded (a step
/// graph's topological order, so deterministic). Counts are integers: sums do not depend on
/// the order of merging or on the number of threads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeHealth {
    entries: Vec<RangeEntry>,
}

impl RangeHealth {
    /// Add `counts` to the pair `(role, format)`.
    pub fn record(&mut self, role: Role, format: Format, counts: RangeCounts) {
        // A handful of pairs per run: a linear search is cheaper than hashing.
        match self
            .entries
            .iter_mut()
            .find(|e| e.role == role && e.format == format)
        {
            Some(e) => e.counts.merge(&counts),
            None => self.entries.push(RangeEntry {
                role,
                format,
                counts,
            }),
        }
    }

    /// Add every pair of `other`.
    pub fn merge(&mut self, other: &RangeHealth) {
        for e in &other.entries {
            self.record(e.role, e.format, e.counts);
        }
    }

    /// The pairs in first-recorded order.
    pub fn entries(&self) -> &[RangeEntry] {
        &self.entries
    }
}
