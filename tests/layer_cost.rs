//! The cost per layer and pass (`cost::price_scopes`, `report.json`'s `cost.by_layer`): for
//! every algorithm on the shipped workloads (a Gaussian target, linear and logistic
//! regression, an MLP), the parts add up to the run's totals (exactly for the integer counts:
//! cycles, multiply-accumulates, bits moved, random bits; to rounding for energy), the layers
//! are named by the model in order, and the work outside the layers is never dropped.

use std::collections::BTreeMap;

use lpsim::algo::{train, Hyper, ALGOS};
use lpsim::cost::{price_scopes, price_tally, Pass, ScopeCost};
use lpsim::run::{prepare, run_one};
use lpsim::sweep::RunSpec;

fn spec(workload: &str, algo: &str, arch: &str, set: &[(&str, &str)]) -> RunSpec {
    RunSpec {
        workload_path: format!("workloads/{workload}.json").into(),
        algo: algo.into(),
        arch_path: format!("arch/{arch}.json").into(),
        seed: 3,
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The workloads an algorithm runs on here, each shrunk to a fraction of a second.
fn workloads(algo: &str) -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let svrg = matches!(algo, "svrg" | "lp-svrg" | "halp");
    let mut w = vec![
        ("digits-mlp", vec![("epochs", "3")]),
        ("digits-logistic", vec![("epochs", "3")]),
    ];
    if svrg {
        w[0].1.push(("epoch_len", "20"));
        if algo == "halp" {
            w[0].1.push(("mu", "3"));
        }
        w[1].1.push(("epoch_len", "20"));
        w.push(("halp-linreg", vec![("epochs", "3"), ("epoch_len", "50")]));
    } else if algo.contains("sgld") {
        w.push(("gaussian-toy", vec![("epochs", "3"), ("epoch_len", "200")]));
    }
    w
}

fn names(parts: &[ScopeCost]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for p in parts {
        let n = p.scope.part.to_string();
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    seen
}

#[test]
fn every_algorithm_breaks_its_cost_down_by_layer_and_the_parts_add_up() {
    for &(algo, _) in ALGOS {
        for (workload, set) in workloads(algo) {
            let what = format!("{algo} on {workload}");
            let mut set = set.clone();
            let a: lpsim::algo::Algo = algo.parse().expect("algo");
            if Hyper::new(a).values().contains_key("burn_in") {
                set.push(("burn_in", "0"));
            }
            let p = prepare(&spec(workload, algo, "bfp8", &set)).expect("prepare");
            let out = train(
                p.algo,
                &p.model,
                p.data.as_ref(),
                &p.arch,
                &p.hyper,
                3,
                &mut |_| {},
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            let total = price_tally(&p.arch, &out.tally).expect("priced");
            let parts = price_scopes(&p.arch, &out.tally).expect("priced per scope");
            assert!(parts.len() >= 2, "{what}: {parts:?}");
            let sum = |f: fn(&ScopeCost) -> u64| parts.iter().map(f).sum::<u64>();
            assert_eq!(sum(|c| c.cycles), total.total_cycles, "{what}: cycles");
            assert_eq!(sum(|c| c.macs), total.macs, "{what}: MACs");
            let read: u64 = total.memory.iter().map(|l| l.read_bits).sum();
            let write: u64 = total.memory.iter().map(|l| l.write_bits).sum();
            assert_eq!(sum(|c| c.read_bits), read, "{what}: bits read");
            assert_eq!(sum(|c| c.write_bits), write, "{what}: bits written");
            let random = out.tally.low.random_bits + out.tally.full.random_bits;
            assert_eq!(sum(|c| c.random_bits), random, "{what}: random bits");
            let energy: f64 = parts.iter().map(|c| c.energy_pj).sum();
            assert!(
                (energy - total.energy_pj).abs() <= 1e-9 * total.energy_pj,
                "{what}: energy {energy} vs {}",
                total.energy_pj
            );
            assert!(total.energy_pj > 0.0, "{what}");
            // The names, in report order: the data, the model's layers, its loss, the update.
            let n = names(&parts);
            let layers: Vec<String> = p
                .model
                .layer_parts()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert!(n.contains(&"update".to_string()), "{what}: {n:?}");
            if workload == "digits-mlp" {
                assert_eq!(layers, ["dense0", "relu0", "dense1"], "{what}");
            }
            if algo != "halp" || workload != "digits-mlp" {
                // Every layer and the loss do work of their own (HALP's bit-centred MLP
                // layers are its driver's own ops, counted under `update`, except in the
                // epoch's full pass).
                // (A Gaussian target's `parameter0` is its parameter itself: no op.)
                for l in layers.iter().filter(|l| *l != "parameter0") {
                    assert!(n.contains(l), "{what}: {l} missing from {n:?}");
                }
                let loss = p.model.loss_part().to_string();
                assert!(n.contains(&loss), "{what}: {loss} missing from {n:?}");
            }
            let ordered: Vec<_> = parts.iter().map(|c| c.scope).collect();
            let mut sorted = ordered.clone();
            sorted.sort();
            assert_eq!(ordered, sorted, "{what}: in report order");
        }
    }
}

#[test]
fn an_mlp_runs_forward_and_backward_in_each_layer_and_the_report_carries_it() {
    let r = run_one(&spec(
        "digits-mlp",
        "lp-sgld-vc",
        "bfp8",
        &[("epochs", "3"), ("burn_in", "0")],
    ))
    .expect("run");
    let rows: Vec<(String, Pass)> = r
        .cost
        .by_layer
        .iter()
        .map(|c| (c.layer.clone(), c.pass))
        .collect();
    let want = [
        ("data", Pass::Forward),
        ("dense0", Pass::Forward),
        ("dense0", Pass::Backward),
        ("relu0", Pass::Forward),
        ("relu0", Pass::Backward),
        ("dense1", Pass::Forward),
        ("dense1", Pass::Backward),
        ("softmax_xent", Pass::Backward),
        ("update", Pass::Update),
    ];
    let want: Vec<(String, Pass)> = want.iter().map(|(l, p)| (l.to_string(), *p)).collect();
    assert_eq!(rows, want);
    let layer = |name: &str, pass: Pass| {
        r.cost
            .by_layer
            .iter()
            .find(|c| c.layer == name && c.pass == pass)
            .expect("row")
    };
    // dense0 is 64 -> 32 on 1437 examples, dense1 32 -> 10: the forward products' MACs per
    // example are the layers' weights; the backward pass of dense0 computes only the weight
    // gradient (its input is the data), dense1's also the error it sends back.
    let examples = layer("dense0", Pass::Forward).macs / (64 * 32);
    assert_eq!(layer("dense0", Pass::Forward).macs, examples * 64 * 32);
    assert_eq!(layer("dense1", Pass::Forward).macs, examples * 32 * 10);
    assert_eq!(layer("dense0", Pass::Backward).macs, examples * 64 * 32);
    assert_eq!(layer("dense1", Pass::Backward).macs, 2 * examples * 32 * 10);
    assert_eq!(layer("relu0", Pass::Forward).macs, 0);
    // The variance-corrected update draws random bits.
    assert!(layer("update", Pass::Update).random_bits > 0);
    let cycles: u64 = r.cost.by_layer.iter().map(|c| c.cycles).sum();
    assert_eq!(cycles as f64, r.cost.cycles);
    let energy: f64 = r.cost.by_layer.iter().map(|c| c.energy_pj).sum();
    assert!((energy - r.cost.energy_pj).abs() <= 1e-9 * r.cost.energy_pj);
}
