//! End-to-end tests of `lpsim run`, `lpsim sweep` and `lpsim graph` on the shipped workloads,
//! shrunk with `--set` so each run takes a fraction of a second: the files they write, the
//! figures of ALGORITHMS.md section 5 in miniature, divergence reported rather than crashing,
//! resumable and byte-identical sweeps, and the shipped quickstart spec.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use lpsim::report::RunReport;
use lpsim::sweep::SweepSpec;

fn lpsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn report(dir: &Path) -> RunReport {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json parses")
}

fn run(dir: &Path, workload: &str, algo: &str, arch: &str, set: &[&str]) -> RunReport {
    let out = dir.display().to_string();
    let mut args = vec![
        "run",
        "--workload",
        workload,
        "--algo",
        algo,
        "--arch",
        arch,
        "--out",
        &out,
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    let o = lpsim(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    report(dir)
}

#[test]
fn run_writes_the_report_and_the_gaussian_toy_separates_naive_from_vc() {
    let dir = common::scratch("run", "toy");
    let toy = "workloads/gaussian-toy.json";
    let short = ["epochs=10", "epoch_len=4000"];
    let var = |algo: &str| {
        let r = run(&dir.join(algo), toy, algo, "arch/int8.json", &short);
        assert_eq!(
            r.config.formats["weights"], "fixed:wl=8,fl=3",
            "the toy pins its format"
        );
        assert!(r.cost.energy_pj > 0.0 && r.cost.cycles > 0.0 && r.cost.area_mm2 > 0.0);
        assert_eq!(r.epochs.len(), 10);
        r.metrics["sample_var"]
    };
    // 32 chains x 3.6e4 kept steps: the variance's standard error is about 0.04.
    let (sgld, vc, naive) = (var("sgld"), var("lp-sgld-vc"), var("lp-sgld-naive"));
    assert!((sgld - 1.0).abs() < 0.15, "sgld variance {sgld}");
    assert!((vc - 1.0).abs() < 0.15, "lp-sgld-vc variance {vc}");
    assert!(naive > 1.35, "naive is too wide: {naive}");
    for f in ["report.json", "report.md", "loss.svg"] {
        assert!(dir.join("sgld").join(f).exists(), "{f} written");
    }
}

/// HALP's full gradients (1000 x 100 multiply-adds) are large enough to be split between two
/// threads, so the second run does split its work.
#[test]
fn one_thread_and_two_give_the_same_report() {
    let dir = common::scratch("run", "threads");
    let reports: Vec<String> = ["1", "2"]
        .iter()
        .map(|t| {
            let out = dir.join(t).display().to_string();
            let o = lpsim(&[
                "run",
                "--workload",
                "workloads/halp-linreg.json",
                "--algo",
                "halp",
                "--set",
                "epochs=4",
                "--threads",
                t,
                "--out",
                &out,
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::fs::read_to_string(dir.join(t).join("report.json")).expect("report.json")
        })
        .collect();
    assert_eq!(
        reports[0], reports[1],
        "the report depends on the thread count"
    );
    let o = lpsim(&[
        "run",
        "-w",
        "workloads/iris-logistic.json",
        "-a",
        "sgd",
        "--threads",
        "0",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid value '0' for '--threads") && err.contains("1..="),
        "{err}"
    );
}

#[test]
fn halp_goes_below_the_low_precision_floor() {
    let dir = common::scratch("run", "halp");
    let w = "workloads/halp-linreg.json";
    let gap = |algo: &str| {
        let r = run(&dir.join(algo), w, algo, "arch/fp32.json", &["epochs=6"]);
        r.metrics["optimality_gap"]
    };
    let (lp_svrg, halp) = (gap("lp-svrg"), gap("halp"));
    assert!(
        lp_svrg > 1.0,
        "lp-svrg stalls at the delta floor: {lp_svrg}"
    );
    assert!(
        halp < 1e-3 * lp_svrg,
        "halp {halp} is orders of magnitude below {lp_svrg}"
    );
}

#[test]
fn a_diverging_run_is_reported_not_a_crash() {
    let dir = common::scratch("run", "diverge");
    let r = run(
        &dir,
        "workloads/iris-logistic.json",
        "sgd",
        "arch/fp32.json",
        &["lr=1e30"],
    );
    assert_eq!(r.diverged_at_epoch, Some(1));
    assert!(r.metrics["train_loss"].is_nan());
}

#[test]
fn bad_input_gives_a_clear_error_and_a_nonzero_exit() {
    for (args, want) in [
        (
            vec!["run", "--workload", "workloads/nope.json", "--algo", "sgd"],
            "nope.json",
        ),
        (
            vec![
                "run",
                "--workload",
                "workloads/iris-logistic.json",
                "--algo",
                "sgdd",
            ],
            "unknown algorithm",
        ),
        (
            vec![
                "run",
                "--workload",
                "workloads/iris-logistic.json",
                "--algo",
                "sgd",
                "--set",
                "lrr=1",
            ],
            "lrr",
        ),
        (
            vec![
                "run",
                "--workload",
                "workloads/iris-logistic.json",
                "--algo",
                "sgd",
                "--set",
                "arch.compute.array.rows=0",
            ],
            "compute.array.rows = 0",
        ),
        (
            vec!["sweep", "workloads/iris-logistic.json"],
            "iris-logistic.json",
        ),
    ] {
        let o = lpsim(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_sweep_resumes_and_repeats_byte_for_byte() {
    let dir = common::scratch("run", "sweep");
    let spec = dir.join("spec.json");
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        &spec,
        format!(
            r#"{{"name": "tiny", "workloads": ["{root}/workloads/iris-logistic.json"],
                "algos": ["sgd", "lp-sgld-vc"], "archs": ["{root}/arch/bfp8.json", "{root}/arch/int8.json"],
                "seeds": [0, 1], "set": {{"epochs": [2]}}}}"#
        ),
    )
    .unwrap();
    let out: PathBuf = dir.join("out");
    let sweep = || {
        let o = lpsim(&[
            "sweep",
            &spec.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--jobs",
            "2",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            std::fs::read(out.join("results.csv")).unwrap(),
        )
    };
    let (first, csv1) = sweep();
    assert!(first.contains("8 runs: 8 ran, 0 reused"), "{first}");
    let (second, csv2) = sweep();
    assert!(second.contains("8 runs: 0 ran, 8 reused"), "{second}");
    assert_eq!(csv1, csv2, "results.csv is byte-identical");
    std::fs::remove_file(out.join("results.csv")).unwrap();
    let (third, csv3) = sweep();
    assert!(third.contains("0 ran, 8 reused"), "{third}");
    assert_eq!(csv1, csv3);
}

#[test]
fn the_quickstart_spec_names_only_shipped_files_and_algorithms() {
    // Cargo runs integration tests from the package root, where the spec's relative paths point.
    let spec = SweepSpec::load(Path::new("workloads/quickstart.json")).expect("parses");
    let runs = spec.runs();
    assert!(runs.len() > 100, "{} runs", runs.len());
    for r in &runs {
        assert!(r.workload_path.exists() && r.arch_path.exists(), "{r:?}");
        r.algo
            .parse::<lpsim::algo::Algo>()
            .expect("a known algorithm");
    }
}

#[test]
fn graph_prints_a_workload_step_with_each_edge_format() {
    let o = lpsim(&[
        "graph",
        "--algo",
        "lp-sgld-vc",
        "--workload",
        "workloads/digits-logistic.json",
        "--arch",
        "arch/bfp8.json",
        "--dot",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dot = String::from_utf8_lossy(&o.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("bfp:wl=8,size=32"),
        "edges show formats: {dot}"
    );
    assert!(dot.contains("vc_quantize"), "{dot}");
}

#[test]
fn an_l2_term_the_algorithms_lack_is_refused_not_dropped() {
    let dir = common::scratch("run", "l2");
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/workloads/digits-mlp.json")).unwrap();
    let text = text.replace(r#""hidden": [32]"#, r#""hidden": [32], "l2": 0.001"#);
    let text = text.replace("workloads/data/", &format!("{root}/workloads/data/"));
    let w = dir.join("digits-mlp.json");
    std::fs::write(&w, text).unwrap();
    let o = lpsim(&[
        "run",
        "--workload",
        w.to_str().unwrap(),
        "--algo",
        "sgd",
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("model.l2 = 0.001") && err.contains("no L2 term"),
        "{err}"
    );
}
