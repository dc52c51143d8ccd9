//! Shards of a sweep: a stable partition of its runs over `N` processes (Slurm array tasks),
//! balanced by an estimate of each run's cost.
//!
//! Every shard plans the whole grid (the same spec gives the same runs, hashes and estimates
//! everywhere) and assigns the runs with the longest-processing-time rule: runs in decreasing
//! order of estimated cost (ties by hash), each to the shard with the least estimated work so
//! far (ties to the lowest index). The assignment depends only on the spec and the files it
//! names, so `N` processes started with `--shard 0/N` .. `--shard N-1/N` split the grid without
//! talking to each other, and none of them writes anything but its own runs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::RunSpec;
use crate::workload::{Budget, DataSpec, ModelSpec, Workload};

/// Shard `index` of `count` (`--shard I/N`, 0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards, `>= 1`.
    pub count: usize,
}

/// The largest number of shards (a Slurm array is limited to far fewer by default).
pub const MAX_SHARDS: usize = 100_000;

impl FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 <= I < N <= MAX_SHARDS`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}`: expected I/N, shard I of N with 0 <= I < N <= {MAX_SHARDS} \
                 (e.g. 0/4; Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Bytes of the data files a workload names (0 when they cannot be read: the run will fail,
/// cheaply, wherever it lands).
fn data_bytes(data: &DataSpec, workload_file: &Path) -> f64 {
    let size = |p: &PathBuf| {
        let p = crate::workload::data::resolve_path(p, workload_file);
        std::fs::metadata(p).map_or(0.0, |m| m.len() as f64)
    };
    match data {
        DataSpec::Csv(s) => size(&s.path),
        DataSpec::Npy(s) => size(&s.features),
        DataSpec::Images(s) => {
            let files = s.images.iter().chain(&s.batches);
            let total: f64 = files.map(size).sum();
            if s.limit > 0 {
                // A limited read touches at most `limit` examples of the files.
                total.min(s.limit as f64 * 4096.0)
            } else {
                total
            }
        }
        DataSpec::Regression(s) => (s.samples * s.features * 8) as f64,
        DataSpec::Gaussian(s) => (s.dimension * 8) as f64,
    }
}

/// An estimate of a workload's training work, in arbitrary units: its budget (epochs, or
/// steps / 1000 for a sampling target) times the size of its data (bytes of its files, or of
/// the generated table) times its model's width (`1 + sum of hidden widths / 32` for an MLP).
fn workload_work(path: &Path) -> f64 {
    let Ok(w) = Workload::load(path) else {
        return 1.0;
    };
    let budget = match w.budget {
        Budget::Epochs { epochs, .. } => epochs as f64,
        Budget::Steps { steps, .. } => steps as f64 / 1000.0,
    };
    let width = match &w.model {
        ModelSpec::Mlp(m) => 1.0 + m.hidden.iter().sum::<usize>() as f64 / 32.0,
        _ => 1.0,
    };
    budget.max(1e-3) * (1024.0 + data_bytes(&w.data, path)) * width
}

/// An algorithm's work relative to SGD's on the same budget: the SVRG family takes a full
/// gradient per epoch and two batch gradients per step.
fn algo_factor(algo: &str) -> f64 {
    match algo {
        "svrg" | "lp-svrg" | "halp" => 3.0,
        _ => 1.0,
    }
}

/// The estimated cost of every run (arbitrary units, see `workload_work` and
/// `algo_factor`); each workload file is read once.
pub fn estimates(runs: &[(RunSpec, String)]) -> Vec<f64> {
    let mut per_workload: HashMap<&Path, f64> = HashMap::new();
    runs.iter()
        .map(|(spec, _)| {
            let w = *per_workload
                .entry(spec.workload_path.as_path())
                .or_insert_with(|| workload_work(&spec.workload_path));
            w * algo_factor(&spec.algo)
        })
        .collect()
}

/// The shard of every run (`runs` in grid order with their hashes, `cost` their
/// [`estimates`]), by the rule in the module docs.
pub fn assign(runs: &[(RunSpec, String)], cost: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<(f64, &str, usize)> = runs
        .iter()
        .enumerate()
        .map(|(i, (_, hash))| (cost[i], hash.as_str(), i))
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut load = vec![0.0f64; count.max(1)];
    let mut shard = vec![0; runs.len()];
    for (cost, _, i) in order {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(&b.0)))
            .expect("at least one shard");
        load[least] += cost;
        shard[i] = least;
    }
    shard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse() {
        assert_eq!("3/4".parse(), Ok(Shard { index: 3, count: 4 }));
        assert_eq!(" 0 / 1 ".parse(), Ok(Shard { index: 0, count: 1 }));
        for bad in ["4/4", "0/0", "1", "-1/4", "a/b", "1/100001", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("expected I/N"), "{bad}: {e}");
        }
        assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
    }
}
