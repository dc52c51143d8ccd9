//! What one executed step returns ([`super::exec`]): the kept tensors, the hardware actions and
//! work per scope (the plan's fixed part shared between steps, the kernels' part per step), and
//! the step's range health.

use std::collections::BTreeMap;
use std::sync::Arc;

use ndarray::ArrayD;

use crate::arith::ActionCounts;
use crate::cost::{Datapath, Scope, Work};
use crate::graph::RangeHealth;

/// What one executed step produced.
#[derive(Clone, Debug)]
pub struct StepResult {
    /// The tensors the step computed that the executor keeps, by name: every one for
    /// [`super::execute`], the graph's outputs for an [`super::Executor::new`] (the feeds, `Input` and `Param`
    /// nodes, are the caller's and are not copied back: until 2026-12 they were, a copy of the
    /// whole training set per step).
    pub values: BTreeMap<String, ArrayD<f64>>,
    /// Per scope of the graph ([`super::Graph::scopes`], in that order), the counts and work that are
    /// the same at every step (shared with the executor's plan, not copied per step).
    pub(super) fixed: Arc<[ScopeWork]>,
    /// Per scope, the counts the kernels reported from the values (GEMMs, the VC quantizer,
    /// image ops).
    pub(super) kernels: Vec<ActionCounts>,
    /// Range events of the step's roundings, per tensor role and format.
    pub range: RangeHealth,
    /// The unit that did the work (the graph's).
    pub datapath: Datapath,
}

impl StepResult {
    /// Per scope of the graph ([`super::Graph::scopes`], in that order): its fixed actions and work,
    /// and the actions its kernels reported; their sum is the scope's ([`StepResult::scopes`]).
    pub fn parts(&self) -> impl Iterator<Item = (&ScopeWork, &ActionCounts)> {
        self.fixed.iter().zip(&self.kernels)
    }

    /// The fixed counts and work per scope, shared by every step of one [`super::Executor`] (the same
    /// `Arc`: a driver may add them once per run of steps).
    pub fn fixed(&self) -> &Arc<[ScopeWork]> {
        &self.fixed
    }

    /// The actions and work per scope of the graph ([`super::Graph::scopes`], in that order).
    pub fn scopes(&self) -> Vec<ScopeWork> {
        self.parts()
            .map(|(fixed, kernel)| {
                let mut s = fixed.clone();
                s.counts.merge(kernel);
                s
            })
            .collect()
    }

    /// The hardware actions of the step (the sum of [`StepResult::scopes`]').
    pub fn counts(&self) -> ActionCounts {
        let mut counts = ActionCounts::new();
        for (fixed, kernel) in self.parts() {
            counts.merge(&fixed.counts);
            counts.merge(kernel);
        }
        counts
    }

    /// The shape of the step's work for the cycle model (the [`StepResult::scopes`]' together).
    pub fn work(&self) -> Work {
        let mut work = Work::default();
        for s in self.fixed.iter() {
            work.merge(&s.work);
        }
        work
    }
}

/// The actions and work of the nodes of one scope in a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeWork {
    /// The layer (or algorithm part) and pass.
    pub scope: Scope,
    /// Its hardware actions.
    pub counts: ActionCounts,
    /// Its work's shape for the cycle model.
    pub work: Work,
}
