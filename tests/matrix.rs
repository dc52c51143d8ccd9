//! Every (algorithm, shipped architecture, shipped workload) runs: each combination either
//! trains to a finite loss (or is reported as diverged) or is refused as incompatible with a
//! one-line reason in the user's terms. The incompatible set is listed here explicitly, so a
//! combination that stops working, or one that starts being refused, fails the test.
//!
//! Budgets are cut with `--set` (one short epoch) so the whole matrix takes seconds; the full
//! budgets run in the quickstart sweep.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lpsim::algo::{Algo, Hyper, ALGOS};
use lpsim::sweep::RunFailure;

fn shipped(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        // The sweep spec lives beside the workloads; it is not a workload.
        .filter(|p| p.file_stem().is_some_and(|s| s != "quickstart"))
        .collect();
    files.sort();
    files
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Combinations that cannot run, by construction: a sampling target is scored by a sampler's
/// chain, which the optimizers (`sgd`, `lp-sgd`) do not produce, and the SVRG family needs a
/// finite sum to take a full gradient over, which a sampling target does not have; and
/// `halp-linreg` pins HALP's 8-bit baselines of LP-SGD and LP-SVRG to a fixed grid of integer
/// codes (`delta` = 0.7, the paper's), which float weight formats do not hold.
fn expected_incompatible(workload: &str, algo: &str, arch: &str) -> bool {
    let float_weights = matches!(arch, "bf16" | "fp32" | "fp8" | "mxfp8");
    (workload == "gaussian-toy" && matches!(algo, "sgd" | "lp-sgd" | "svrg" | "lp-svrg" | "halp"))
        || (workload == "halp-linreg" && matches!(algo, "lp-sgd" | "lp-svrg") && float_weights)
}

/// A budget of two short epochs for every workload kind; a sampler keeps the second (burn-in
/// of one, one step-size cycle), as `--set` accepts only the algorithm's own hyperparameters.
fn short_budget(workload: &str, algo: Algo) -> BTreeMap<String, String> {
    let has = |name: &str| Hyper::defaults(algo).iter().any(|(n, _, _)| *n == name);
    let mut set = BTreeMap::new();
    set.insert("epochs".to_string(), "2".to_string());
    let len = match workload {
        "gaussian-toy" => "200",
        "halp-linreg" => "300",
        _ => "4",
    };
    set.insert("epoch_len".to_string(), len.to_string());
    if has("burn_in") {
        let burn = if workload == "gaussian-toy" {
            "200"
        } else {
            "1"
        };
        set.insert("burn_in".to_string(), burn.to_string());
    }
    if has("cycles") {
        set.insert("cycles".to_string(), "1".to_string());
    }
    // HALP on a network without an L2 term has no `mu` to derive: the user gives one.
    if algo == Algo::Halp && matches!(workload, "digits-mlp" | "digits-cnn" | "digits-resnet") {
        set.insert("mu".to_string(), "3".to_string());
    }
    set
}

#[test]
fn every_algorithm_runs_on_every_shipped_architecture_and_workload() {
    let workloads = shipped("workloads");
    let archs = shipped("arch");
    assert_eq!(workloads.len(), 7, "{workloads:?}");
    assert_eq!(archs.len(), 7, "{archs:?}");
    let mut problems = Vec::new();
    let mut ran = 0;
    for w in &workloads {
        let wname = stem(w);
        for &(algo, a_enum) in ALGOS {
            for a in &archs {
                let label = format!("{wname} x {algo} x {}", stem(a));
                let result = lpsim::run::run_paths(w, algo, a, 0, short_budget(&wname, a_enum));
                match (result, expected_incompatible(&wname, algo, &stem(a))) {
                    (Ok(r), false) => {
                        ran += 1;
                        let loss = r.metrics.get("train_loss").copied().unwrap_or(f64::NAN);
                        if !loss.is_finite() && r.diverged_at_epoch.is_none() {
                            problems
                                .push(format!("{label}: loss {loss} but not reported diverged"));
                        }
                        if r.cost.energy_pj.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                            problems.push(format!("{label}: energy {}", r.cost.energy_pj));
                        }
                    }
                    (Ok(_), true) => problems.push(format!("{label}: ran, expected incompatible")),
                    (Err(e), expected) => {
                        let msg = e.to_string();
                        if !e.incompatible() {
                            problems.push(format!("{label}: failed: {msg}"));
                        } else if !expected {
                            problems.push(format!("{label}: refused as incompatible: {msg}"));
                        } else if msg.contains('\n') || msg.contains("node `") || msg.len() > 200 {
                            problems
                                .push(format!("{label}: the reason is not one plain line: {msg}"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(
        ran,
        // Every combination but the Gaussian toy's five and halp-linreg's two grid baselines on
        // the four float architectures.
        7 * 14 * 7 - 5 * 7 - 2 * 4,
        "every compatible combination ran"
    );
}
