//! Sweeps with a synthetic deterministic runner: grid order, hash stability, spec errors,
//! resumption after an interrupted sweep, byte-identical results, diverged and failed runs, plots.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use lpsim::cost::{HostWork, Pass};
use lpsim::report::{CostSummary, EpochRecord, LayerCost, RunConfig, RunReport};
use lpsim::sweep::{
    run_sweep, Mode, ProgressMode, RunSpec, Shard, SweepError, SweepSpec, SweepSummary,
};

/// A directory with two workloads and three architectures (named after their weight formats),
/// and the spec of a sweep over them: 2 workloads x 3 algos x 3 archs x 2 lr x 2 seeds = 72.
fn setup(name: &str) -> (PathBuf, SweepSpec) {
    let dir = common::scratch("sweep", name);
    for sub in ["workloads", "arch"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for w in ["toy-class", "toy-regress"] {
        std::fs::write(
            dir.join(format!("workloads/{w}.json")),
            format!("{{\"name\":\"{w}\"}}"),
        )
        .unwrap();
    }
    for a in ["fp32", "bf16", "e4m3fn"] {
        std::fs::write(
            dir.join(format!("arch/{a}.json")),
            format!("{{\"name\":\"{a}\"}}"),
        )
        .unwrap();
    }
    std::fs::write(dir.join("arch/README.md"), "not matched by *.json").unwrap();
    let spec = spec_in(&dir);
    (dir, spec)
}

fn spec_in(dir: &Path) -> SweepSpec {
    let d = dir.display();
    let text = format!(
        r#"{{
  "name": "toy",
  "workloads": ["{d}/workloads/toy-class.json", "{d}/workloads/toy-regress.json"],
  "algos": ["sgd", "lp-sgld-vc", "halp"],
  "archs": ["{d}/arch/*.json"],
  "seeds": [0, 1],
  "set": {{"lr": [0.05, 0.1]}}
}}"#
    );
    SweepSpec::from_json_str("toy.json", &text).unwrap()
}

/// The synthetic runner: a fake but deterministic report from the spec's fields. The `halp`
/// algorithm diverges on e4m3fn.
fn synthetic(spec: &RunSpec) -> Result<RunReport, String> {
    let arch = spec.arch_name();
    let bits = f64::from(
        arch.parse::<lpsim::Format>()
            .map_err(|e| e.to_string())?
            .bits(),
    );
    let lr: f64 = spec
        .set
        .get("lr")
        .map_or(Ok(0.1), |v| v.parse())
        .map_err(|e| format!("{e}"))?;
    let algo_k = match spec.algo.as_str() {
        "sgd" => 1.0,
        "lp-sgld-vc" => 2.0,
        _ => 3.0,
    };
    let seed = spec.seed as f64;
    let diverged = spec.algo == "halp" && arch == "e4m3fn";
    let classify = spec.workload_name() == "toy-class";
    let quality = 1.0 - 1.0 / bits - 0.01 * seed - lr * 0.1 + 0.003 * algo_k;
    let epochs: Vec<EpochRecord> = (1..=if diverged { 2 } else { 3 })
        .map(|e| {
            let loss = if diverged && e == 2 {
                f64::NAN
            } else {
                1.0 / (e as f64 * quality)
            };
            let metric = if classify {
                (
                    "test_accuracy".to_string(),
                    quality * (0.8 + 0.1 * e as f64 / 1.5),
                )
            } else {
                ("optimality_gap".to_string(), (1.0 - quality) / e as f64)
            };
            EpochRecord {
                epoch: e,
                metrics: [("train_loss".to_string(), loss), metric].into(),
                energy_pj: bits * bits * 10.0 * algo_k,
                cycles: bits * 4.0,
            }
        })
        .collect();
    let mut metrics: BTreeMap<String, f64> = epochs.last().unwrap().metrics.clone();
    if classify {
        metrics.insert("test_nll".into(), 1.0 - quality);
        metrics.insert("ece".into(), 0.01 * algo_k);
    }
    let energy: f64 = epochs.iter().map(|e| e.energy_pj).sum();
    Ok(RunReport {
        config: RunConfig {
            workload: spec.workload_name(),
            algo: spec.algo.clone(),
            arch: arch.clone(),
            seed: spec.seed,
            set: spec.set.clone(),
            hyper: [("lr".to_string(), lr)].into(),
            formats: [("weights".to_string(), arch)].into(),
        },
        cost: CostSummary {
            energy_pj: energy,
            cycles: bits * 12.0,
            stall_cycles: 1.0,
            time_s: bits * 12.0e-9,
            area_mm2: bits / 100.0,
            breakdown: [
                ("mac".to_string(), energy * 0.75),
                ("sram".to_string(), energy * 0.25),
            ]
            .into(),
            by_layer: vec![
                LayerCost {
                    layer: "dense0".into(),
                    pass: Pass::Forward,
                    energy_pj: energy * 0.75,
                    cycles: 10,
                    macs: 64,
                    read_bits: 512,
                    write_bits: 256,
                    random_bits: 0,
                },
                LayerCost {
                    layer: "update".into(),
                    pass: Pass::Update,
                    energy_pj: energy * 0.25,
                    cycles: (bits * 12.0) as u64 - 10,
                    macs: 0,
                    read_bits: 128,
                    write_bits: 128,
                    random_bits: 8 * bits as u64,
                },
            ],
            host: HostWork::default(),
        },
        epochs,
        metrics,
        diverged_at_epoch: diverged.then_some(2),
        range_health: Vec::new(),
        chain: None,
        classes: classify.then_some(10),
    })
}

fn sweep(
    spec: &SweepSpec,
    out: &Path,
    jobs: usize,
    runner: &(dyn Fn(&RunSpec) -> Result<RunReport, String> + Sync),
) -> SweepSummary {
    run_sweep(spec, out, jobs, runner, ProgressMode::Quiet, Mode::All).unwrap()
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn grid_order_is_fixed() {
    let (_dir, spec) = setup("order");
    let runs = spec.runs();
    assert_eq!(runs.len(), 72);
    let labels: Vec<String> = runs.iter().take(9).map(RunSpec::label).collect();
    assert_eq!(
        labels,
        [
            "toy-class sgd bf16 seed 0 lr=0.05",
            "toy-class sgd bf16 seed 1 lr=0.05",
            "toy-class sgd bf16 seed 0 lr=0.1",
            "toy-class sgd bf16 seed 1 lr=0.1",
            "toy-class sgd e4m3fn seed 0 lr=0.05",
            "toy-class sgd e4m3fn seed 1 lr=0.05",
            "toy-class sgd e4m3fn seed 0 lr=0.1",
            "toy-class sgd e4m3fn seed 1 lr=0.1",
            "toy-class sgd fp32 seed 0 lr=0.05",
        ]
    );
    assert_eq!(runs[12].label(), "toy-class lp-sgld-vc bf16 seed 0 lr=0.05");
    assert_eq!(runs[36].label(), "toy-regress sgd bf16 seed 0 lr=0.05");
    // Several set keys: sorted keys, the last one varying fastest.
    let d = spec.grids[0].workloads[0].display();
    let a = spec.grids[0].archs[0].display();
    let two = SweepSpec::from_json_str(
        "two.json",
        &format!(
            r#"{{"name":"t","workloads":["{d}"],"algos":["sgd"],"archs":["{a}"],
                 "set":{{"wd":[0,1],"lr":["a","b"]}}}}"#
        ),
    )
    .unwrap();
    let sets: Vec<String> = two
        .runs()
        .iter()
        .map(|r| format!("{:?}", r.set.values().collect::<Vec<_>>()))
        .collect();
    assert_eq!(
        sets,
        [
            r#"["a", "0"]"#,
            r#"["a", "1"]"#,
            r#"["b", "0"]"#,
            r#"["b", "1"]"#
        ]
    );
    assert_eq!(two.grids[0].seeds, [0], "seeds default to [0]");
}

#[test]
fn hash_is_stable_and_follows_file_contents() {
    // Golden value: changes only when the hash recipe, the fixture files or lpsim's version
    // (Cargo.toml) change.
    let fixture = RunSpec {
        workload_path: "tests/data/sweep/toy-workload.json".into(),
        algo: "lp-sgld-vc".into(),
        arch_path: "tests/data/sweep/toy-arch.json".into(),
        seed: 7,
        set: [("lr".to_string(), "0.05".to_string())].into(),
    };
    assert_eq!(fixture.hash().unwrap(), GOLDEN_HASH);

    let (dir, spec) = setup("hash");
    let run = spec.runs()[0].clone();
    let h = run.hash().unwrap();
    assert_eq!(h.len(), 16);
    assert_eq!(run.hash().unwrap(), h);
    let other_seed = RunSpec {
        seed: 9,
        ..run.clone()
    };
    assert_ne!(other_seed.hash().unwrap(), h);
    std::fs::write(
        dir.join("arch/bf16.json"),
        "{\"name\":\"bf16\",\"edited\":1}",
    )
    .unwrap();
    assert_ne!(
        run.hash().unwrap(),
        h,
        "editing the arch file changes the hash"
    );
    let missing = RunSpec {
        arch_path: dir.join("arch/nope.json"),
        ..run
    };
    let err = missing.hash().unwrap_err();
    assert!(matches!(err, SweepError::Read { .. }));
    assert!(err.to_string().contains("nope.json: cannot read"), "{err}");
}

const GOLDEN_HASH: &str = "f7cc85209f0621b3";

#[test]
fn spec_errors_name_the_file_and_the_json_path() {
    let (dir, spec) = setup("errors");
    let d = dir.display();
    let w = spec.grids[0].workloads[0].display();
    let cases = [
        (
            format!(
                r#"{{"name":"t","workloads":["{w}"],"algos":["sgd"],"archs":["{d}/arch/*.jsn"]}}"#
            ),
            "bad.json: archs[0] = ",
            "matches no file",
        ),
        (
            format!(r#"{{"name":"t","workloads":["{w}"],"algo":["sgd"],"archs":["{w}"]}}"#),
            "bad.json: algo: unknown field",
            "did you mean `algos`?",
        ),
        (
            format!(r#"{{"name":"t","workloads":["{w}"],"algos":[],"archs":["{w}"]}}"#),
            "bad.json: algos: ",
            "must list at least one entry",
        ),
        (
            format!(
                r#"{{"name":"t","workloads":["{w}"],"algos":["sgd"],"archs":["{w}"],"set":{{"lr":[0.1,null]}}}}"#
            ),
            "bad.json: set.lr[1]: ",
            "expected a string, number or boolean",
        ),
        (
            format!(
                r#"{{"name":"t","workloads":["{d}/arch/[.json"],"algos":["sgd"],"archs":["{w}"]}}"#
            ),
            "bad.json: workloads[0] = ",
            "invalid range pattern",
        ),
        (
            format!(
                r#"{{"name":"t","workloads":["{w}"],"algos":["sgd"],"archs":["{w}"],
                    "seeds":[0,1,2,3,4,5,6,7,8,9],
                    "set":{{"a":[1,2,3,4,5,6,7,8,9,10],"b":[1,2,3,4,5,6,7,8,9,10],
                            "c":[1,2,3,4,5,6,7,8,9,10],"d":[1,2,3,4,5,6,7,8,9,10],
                            "e":[1,2,3,4,5,6,7,8,9,10],"f":[1,2,3,4,5,6,7,8,9,10,11]}}}}"#
            ),
            "bad.json: the grid lists 1 workloads x 1 algorithms x 1 architectures x 1100000 \
             `set` combinations x 10 seeds: more than the 10000000 runs",
            "split it into several sweeps",
        ),
        (
            format!(
                r#"{{"name":"t","workloads":["{w}"],"algos":["sgd"],"archs":["{w}"],"seeds":[-1]}}"#
            ),
            "bad.json: seeds[0]: ",
            "expected a whole number",
        ),
        ("{\"name\": ".to_string(), "bad.json: not valid JSON", "EOF"),
    ];
    for (text, start, needle) in cases {
        let err = SweepSpec::from_json_str("bad.json", &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(start) && err.contains(needle), "{err}");
    }
    let err = SweepSpec::load(&dir.join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.json: cannot read"), "{err}");
}

#[test]
fn resume_after_an_interrupted_sweep_loses_no_finished_run() {
    let (dir, spec) = setup("resume");
    let out = dir.join("out");
    let total = spec.runs().len();
    let k = 20;

    // The "interrupted" sweep: the runner works for k runs, then fails.
    let calls = AtomicUsize::new(0);
    let finished = Mutex::new(BTreeSet::new());
    let flaky = |s: &RunSpec| {
        if calls.fetch_add(1, Ordering::SeqCst) < k {
            finished.lock().unwrap().insert(s.label());
            synthetic(s)
        } else {
            Err("interrupted".to_string())
        }
    };
    let first = sweep(&spec, &out, 2, &flaky);
    assert_eq!(
        (first.ran, first.reused, first.failed),
        (total, 0, total - k)
    );
    let csv = read(out.join("results.csv"));
    assert_eq!(
        csv.lines().count(),
        total + 1,
        "a row for every run, failed ones too"
    );
    assert_eq!(csv.matches(",failed,").count(), total - k);
    assert_eq!(csv.matches(",interrupted,").count(), total - k);

    // The rerun runs exactly the runs that had not finished.
    let again = Mutex::new(Vec::new());
    let counting = |s: &RunSpec| {
        again.lock().unwrap().push(s.label());
        synthetic(s)
    };
    let second = sweep(&spec, &out, 2, &counting);
    let again = again.into_inner().unwrap();
    let finished = finished.into_inner().unwrap();
    assert_eq!(again.len(), total - k);
    assert!(
        again.iter().all(|l| !finished.contains(l)),
        "a finished run ran again"
    );
    assert_eq!(
        (second.ran, second.reused, second.failed),
        (total - k, k, 0)
    );
    assert!(second.outcomes.iter().all(|o| o.result.is_ok()));

    // A stored run cut short (killed mid-write by something other than lpsim) is run again;
    // nothing else is.
    let victim = &second.outcomes[5].hash;
    let path = out.join("runs").join(format!("{victim}.json"));
    let text = read(path.clone());
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let third_calls = AtomicUsize::new(0);
    let third = sweep(&spec, &out, 1, &|s: &RunSpec| {
        third_calls.fetch_add(1, Ordering::SeqCst);
        synthetic(s)
    });
    assert_eq!(third_calls.into_inner(), 1);
    assert_eq!((third.ran, third.reused), (1, total - 1));

    // And all of it gives the same table as one uninterrupted sweep.
    let clean = dir.join("clean");
    sweep(&spec, &clean, 2, &synthetic);
    assert_eq!(
        read(out.join("results.csv")),
        read(clean.join("results.csv"))
    );
}

#[test]
fn the_same_sweep_twice_gives_byte_identical_results() {
    let (dir, spec) = setup("identical");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let first = sweep(&spec, &a, 2, &synthetic);
    sweep(&spec, &b, 1, &synthetic);
    let names: Vec<String> = first
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        assert_eq!(read(a.join(name)), read(b.join(name)), "{name} differs");
    }
    let csv = read(a.join("results.csv"));
    // Rerunning in place reuses every run and rewrites the same bytes.
    let rerun = sweep(&spec, &a, 2, &|_: &RunSpec| Err("must not run".to_string()));
    assert_eq!(rerun.reused, spec.runs().len());
    assert_eq!(read(a.join("results.csv")), csv);

    // Columns: what identifies the run, how it ended, the primary metrics, the cost, the other
    // metrics, then the details.
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "workload,algo,arch,seed,set.lr,status,at_chance,test_accuracy,optimality_gap,energy_pj,\
         cycles,stall_cycles,time_s,area_mm2,ece,test_nll,train_loss,energy_pj.mac,\
         energy_pj.sram,layer.dense0.forward.energy_pj,layer.dense0.forward.cycles,\
         layer.dense0.forward.macs,layer.dense0.forward.read_bits,\
         layer.dense0.forward.write_bits,layer.dense0.forward.random_bits,\
         layer.update.update.energy_pj,layer.update.update.cycles,layer.update.update.macs,\
         layer.update.update.read_bits,layer.update.update.write_bits,\
         layer.update.update.random_bits,weight_bits,diverged_at_epoch,error,hash,\
         workload_path,arch_path"
    );
    // bf16: 7680 pJ, 192 cycles; 3/4 of the energy in dense0's forward pass.
    let row = csv.lines().nth(1).unwrap();
    assert!(
        row.contains(",5760,10,64,512,256,0,1920,182,0,128,128,128,"),
        "{row}"
    );
    let md = read(a.join("report.md"));
    assert!(
        md.contains("| # | dense0 | update | forward | update |\n|---|---|---|---|---|\n| 1 | 5760 | 1920 | 5760 | 1920 |\n"),
        "{md}"
    );
    let row = csv.lines().nth(1).unwrap();
    assert!(
        row.starts_with("toy-class,sgd,bf16,0,0.05,ok,false,0.9355,,7680,192,1,"),
        "{row}"
    );
    assert!(row.contains(",0.01,0.0645,"), "ece, test_nll: {row}");
}

#[test]
fn diverged_and_failed_runs_are_reported() {
    let (dir, spec) = setup("diverged");
    let out = dir.join("out");
    let runner = |s: &RunSpec| {
        if s.algo == "sgd" && s.arch_name() == "fp32" && s.seed == 1 {
            panic!("synthetic panic");
        }
        synthetic(s)
    };
    let summary = sweep(&spec, &out, 2, &runner);
    let diverged = summary
        .outcomes
        .iter()
        .filter(|o| o.status() == "diverged")
        .count();
    assert_eq!(
        diverged,
        2 * 2 * 2,
        "halp on e4m3fn: 2 workloads x 2 lr x 2 seeds"
    );
    assert_eq!(summary.failed, 2 * 2);
    let csv = read(out.join("results.csv"));
    let halp = csv
        .lines()
        .find(|l| l.starts_with("toy-class,halp,e4m3fn,0,"))
        .unwrap();
    assert!(halp.contains(",diverged,,"), "{halp}");
    assert!(
        halp.contains(",8,2,"),
        "weight_bits, diverged_at_epoch: {halp}"
    );
    assert!(
        halp.contains(",NaN,"),
        "the NaN loss is written as NaN: {halp}"
    );
    assert!(csv.contains(",panicked: synthetic panic,"));
    assert!(csv.contains("toy-class,sgd,fp32,1,0.05,failed,,"));

    let json: serde_json::Value = serde_json::from_str(&read(out.join("results.json"))).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 72);
    let d = runs.iter().find(|r| r["status"] == "diverged").unwrap();
    assert_eq!(d["report"]["diverged_at_epoch"], 2);
    assert_eq!(d["report"]["metrics"]["train_loss"], "NaN");

    let md = read(out.join("report.md"));
    assert!(
        md.contains("72 runs: 60 ok, 8 diverged, 4 failed, 0 skipped as incompatible."),
        "{md}"
    );
    assert!(md.contains("- toy-class halp e4m3fn seed 0 lr=0.05 — diverged at epoch 2"));
    assert!(md.contains("- toy-class sgd fp32 seed 1 lr=0.05 — panicked: synthetic panic"));
    // The failed runs are retried by the next sweep, the diverged ones are kept.
    let rerun = sweep(&spec, &out, 2, &synthetic);
    assert_eq!((rerun.ran, rerun.failed), (4, 0));
}

/// A runner's error that says the combination cannot run.
struct Incompatible(String);

impl std::fmt::Display for Incompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl lpsim::sweep::RunFailure for Incompatible {
    fn incompatible(&self) -> bool {
        true
    }
}

#[test]
fn incompatible_runs_are_skipped_apart_from_failures() {
    let (dir, spec) = setup("incompatible");
    let out = dir.join("out");
    let runner = |s: &RunSpec| -> Result<RunReport, Incompatible> {
        if s.algo == "lp-sgld-vc" && s.arch_name() == "e4m3fn" {
            return Err(Incompatible(
                "lp-sgld-vc needs a grid this toy lacks".into(),
            ));
        }
        synthetic(s).map_err(Incompatible)
    };
    let summary = run_sweep(&spec, &out, 2, &runner, ProgressMode::Quiet, Mode::All).unwrap();
    assert_eq!(summary.failed, 0, "incompatible runs are not failures");
    assert_eq!(
        summary.incompatible,
        2 * 2 * 2,
        "2 workloads x 2 lr x 2 seeds"
    );
    let csv = read(out.join("results.csv"));
    let row = csv
        .lines()
        .find(|l| l.starts_with("toy-class,lp-sgld-vc,e4m3fn,0,"))
        .unwrap();
    assert!(
        row.starts_with("toy-class,lp-sgld-vc,e4m3fn,0,0.05,skipped: incompatible,,")
            && row.contains(",lp-sgld-vc needs a grid this toy lacks,"),
        "{row}"
    );
    let md = read(out.join("report.md"));
    assert!(
        md.contains("72 runs: 56 ok, 8 diverged, 0 failed, 8 skipped as incompatible."),
        "{md}"
    );
    let apart = md
        .split("## Skipped: incompatible combinations")
        .nth(1)
        .unwrap();
    assert!(apart.contains("- toy-class lp-sgld-vc e4m3fn seed 0 lr=0.05 — lp-sgld-vc needs"));
    assert!(!md.contains("## Failed runs"), "{md}");
}

#[test]
fn a_real_incompatible_combination_is_skipped_not_failed() {
    // HALP needs a training set: on the Gaussian toy (a sampling target) the real runner refuses
    // it as incompatible, before any training.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = lpsim::run::prepare(&RunSpec {
        workload_path: root.join("workloads/gaussian-toy.json"),
        algo: "halp".into(),
        arch_path: root.join("arch/fp32.json"),
        seed: 0,
        set: BTreeMap::new(),
    })
    .map(|_| ());
    assert!(spec.is_ok(), "the run resolves: {spec:?}");
    let err = lpsim::run::run_paths(
        &root.join("workloads/gaussian-toy.json"),
        "halp",
        &root.join("arch/fp32.json"),
        0,
        BTreeMap::new(),
    )
    .unwrap_err();
    use lpsim::sweep::RunFailure;
    assert!(err.incompatible(), "{err}");
}

/// The filled data markers (radius 4) of a plot, as (cx, cy), leaving out the legend's (in the
/// panel right of x = 900).
fn plot_markers(svg: &str) -> Vec<(i64, i64)> {
    let attr = |c: &str, name: &str| -> Option<i64> {
        let at = c.find(&format!(" {name}=\""))? + name.len() + 3;
        c[at..at + c[at..].find('"')?].parse().ok()
    };
    svg.split("<circle")
        .skip(1)
        .filter(|c| c.contains(" r=\"4\"") && c.contains("stroke=\"none\""))
        .filter_map(|c| Some((attr(c, "cx")?, attr(c, "cy")?)))
        .filter(|p| p.0 < 900)
        .collect()
}

#[test]
fn report_tables_and_plots() {
    let (dir, spec) = setup("plots");
    let out = dir.join("out");
    let summary = sweep(&spec, &out, 2, &synthetic);
    let names: BTreeSet<String> = summary
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = [
        "results.csv",
        "results.json",
        "report.md",
        "pareto-toy-class.svg",
        "bits-toy-class.svg",
        "pareto-toy-regress.svg",
        "bits-toy-regress.svg",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, expected);

    let md = read(out.join("report.md"));
    assert!(md.contains("## toy-class\n"));
    assert!(md.contains("## toy-regress\n"));
    // Numbered configurations: identity, the primary metric, the cost, the other metrics.
    assert!(
        md.contains(
            "| # | algorithm | architecture | set | test_accuracy | energy (pJ) | cycles | \
             area (mm²) | ece | test_nll | train_loss | ok runs | diverged | not learning |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| # | algorithm | architecture | set | optimality_gap | energy (pJ) | cycles | \
             area (mm²) | train_loss | ok runs | diverged | not learning |"
        ),
        "{md}"
    );
    // Seeds aggregated: mean ± std over two seeds; the first configuration is number 1.
    assert!(
        md.contains("| 1 | sgd | bf16 | lr=0.05 | 0.9305 ± 0.007071 | 7680 | 192.0 | 0.1600 |"),
        "{md}"
    );
    assert!(md.contains("Best test_error for the energy (the Pareto front"));
    assert!(md.contains("Best optimality_gap for the energy"));
    assert!(md.contains("![pareto-toy-class.svg](pareto-toy-class.svg)"));
    // halp on e4m3fn diverged in every seed: set apart, with its number (3 x 2 lr per algo).
    assert!(md.contains("- 15 halp/e4m3fn lr=0.05 — diverged"), "{md}");

    let pareto = read(out.join("pareto-toy-class.svg"));
    assert!(pareto.starts_with("<svg") && pareto.trim_end().ends_with("</svg>"));
    let texts = common::svg_texts(&pareto);
    for label in [
        "sgd",
        "lp-sgld-vc",
        "halp",
        "Pareto front",
        "1  sgd/bf16 lr=0.05  [front]",
        "2  sgd/bf16 lr=0.1",
        "Not learning (not drawn):",
        "15  halp/e4m3fn lr=0.05: diverged",
        "1",
        "18",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "pareto plot lacks {label}: {texts:?}"
        );
    }
    // 18 configurations, two diverged: 16 points, each numbered; no number for the diverged.
    assert_eq!(plot_markers(&pareto).len(), 16);
    assert!(!texts.iter().any(|t| t == "15" || t == "16"), "{texts:?}");

    // The bit-width plot: an x slot per architecture (by bits), and within it an x position per
    // algorithm and lr, so no two configurations share an x.
    let bits = read(out.join("bits-toy-class.svg"));
    let texts = common::svg_texts(&bits);
    for label in [
        "e4m3fn (8)",
        "bf16 (16)",
        "fp32 (32)",
        "architecture (bits per weight)",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "bits plot lacks {label}: {texts:?}"
        );
    }
    let markers = plot_markers(&bits);
    assert_eq!(markers.len(), 16);
    let xs: BTreeSet<i64> = markers.iter().map(|m| m.0).collect();
    assert_eq!(
        xs.len(),
        markers.len(),
        "two configurations share an x: {markers:?}"
    );
    let regress = common::svg_texts(&read(out.join("pareto-toy-regress.svg")));
    assert!(regress.iter().any(|t| t.contains("optimality_gap")));
}

/// A classifier at chance level (accuracy 0.1 of 10 classes) and the cheapest of all is set
/// apart: never on the Pareto front, not drawn, listed with its reason, `at_chance` in the CSV.
#[test]
fn chance_level_runs_are_never_on_the_pareto_front() {
    let (dir, spec) = setup("chance");
    let out = dir.join("out");
    let chance = |s: &RunSpec| {
        let mut r = synthetic(s)?;
        if s.algo == "sgd" && s.arch_name() == "e4m3fn" && r.classes.is_some() {
            r.metrics.insert("test_accuracy".into(), 0.1);
            r.metrics.insert("test_nll".into(), 10f64.ln());
        }
        Ok(r)
    };
    sweep(&spec, &out, 2, &chance);
    let md = read(out.join("report.md"));
    let class = md.split("## toy-class").nth(1).unwrap();
    let class = class.split("## toy-regress").next().unwrap();
    let front = class
        .split("Best test_error for the energy")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap();
    // sgd on e4m3fn is the cheapest configuration (number 3 and 4: two lr values).
    assert!(!front.contains("sgd/e4m3fn"), "{front}");
    assert!(
        front.contains("| 1 | sgd/bf16 lr=0.05 |") || front.contains("lp-sgld-vc/e4m3fn"),
        "{front}"
    );
    assert!(
        class.contains(
            "- 3 sgd/e4m3fn lr=0.05 — at chance: test_accuracy 0.1000 with 10 classes (chance \
             0.1000, learning above 0.1900)"
        ),
        "{class}"
    );
    assert!(
        class.contains("| 3 | sgd | e4m3fn | lr=0.05 | 0.1000 |"),
        "{class}"
    );
    assert!(class.contains("| 2/2 | 0 | at chance |"), "{class}");
    // On the same sweep without the chance runs, sgd on e4m3fn is on the front.
    let clean = dir.join("clean");
    sweep(&spec, &clean, 2, &synthetic);
    let clean_md = read(clean.join("report.md"));
    let clean_front = clean_md
        .split("Best test_error for the energy")
        .nth(1)
        .unwrap();
    assert!(clean_front
        .split("\n\n")
        .nth(1)
        .unwrap()
        .contains("| 3 | sgd/e4m3fn lr=0.05 |"));

    let texts = common::svg_texts(&read(out.join("pareto-toy-class.svg")));
    assert!(
        texts
            .iter()
            .any(|t| t == "3  sgd/e4m3fn lr=0.05: at chance"),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t == "3" || t == "4"), "{texts:?}");
    assert!(!texts
        .iter()
        .any(|t| t.starts_with("3  sgd/e4m3fn lr=0.05  [front]")));

    let csv = read(out.join("results.csv"));
    let row = csv
        .lines()
        .find(|l| l.starts_with("toy-class,sgd,e4m3fn,0,0.05,"))
        .unwrap();
    assert!(
        row.starts_with("toy-class,sgd,e4m3fn,0,0.05,ok,true,0.1,"),
        "{row}"
    );
    let regress = csv
        .lines()
        .find(|l| l.starts_with("toy-regress,sgd,e4m3fn,0,0.05,"))
        .unwrap();
    assert!(
        regress.starts_with("toy-regress,sgd,e4m3fn,0,0.05,ok,,,"),
        "not judged: {regress}"
    );
}

#[test]
fn never_replaces_a_users_results_file() {
    let (dir, spec) = setup("foreign");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("results.csv"), "my,own,table\n").unwrap();
    let err = run_sweep(&spec, &out, 1, &synthetic, ProgressMode::Quiet, Mode::All).unwrap_err();
    assert!(err
        .to_string()
        .contains("results.csv: exists and was not written by lpsim"));
    assert_eq!(read(out.join("results.csv")), "my,own,table\n");
}

#[test]
fn sweep_command_summarizes_and_fails_when_a_run_failed() {
    use lpsim::cli::sweep::{sweep_command, Args};
    let (dir, _) = setup("command");
    let d = dir.display();
    let spec_path = dir.join("quick.json");
    std::fs::write(
        &spec_path,
        format!(
            r#"{{"name":"quick","workloads":["{d}/workloads/toy-class.json"],"algos":["sgd"],
                 "archs":["{d}/arch/bf16.json","{d}/arch/fp32.json"],"out":"{d}/from-spec"}}"#
        ),
    )
    .unwrap();
    let args = Args {
        spec: spec_path,
        out: None,
        jobs: 1,
        dry_run: false,
        shard: None,
        merge: false,
        slurm: false,
        shards: 4,
        partition: None,
        time: None,
        cpus: 1,
        submit: false,
    };
    let summary = sweep_command(&args, &synthetic).unwrap();
    assert_eq!(summary.outcomes.len(), 2);
    assert!(
        dir.join("from-spec/results.csv").exists(),
        "the spec's `out` is used"
    );

    let args = Args {
        out: Some(dir.join("explicit")),
        ..args
    };
    let err = sweep_command(&args, &|s: &RunSpec| {
        if s.arch_name() == "fp32" {
            Err("no fp32 today".to_string())
        } else {
            synthetic(s)
        }
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("1 of 2 runs failed"), "{err}");
    assert!(
        dir.join("explicit/results.csv").exists(),
        "results are written anyway"
    );
}

#[test]
fn globs_match_at_any_depth_but_never_hidden_files() {
    let (dir, _) = setup("globs");
    let deep = dir.join("arch/more/deeper");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("fp8.json"), "{}").unwrap();
    std::fs::write(dir.join("arch/.hidden.json"), "{}").unwrap();
    let d = dir.display();
    let w = format!("{d}/workloads/toy-class.json");
    let text = |archs: &str| {
        format!(r#"{{"name":"t","workloads":["{w}"],"algos":["sgd"],"archs":["{archs}"]}}"#)
    };
    let archs = |pattern: &str| -> Vec<String> {
        let spec = SweepSpec::from_json_str("g.json", &text(pattern)).unwrap();
        let root = dir.join("arch");
        spec.grids[0]
            .archs
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect()
    };
    assert_eq!(
        archs(&format!("{d}/arch/*.json")),
        ["bf16.json", "e4m3fn.json", "fp32.json"]
    );
    assert_eq!(
        archs(&format!("{d}/arch/**/*.json")),
        [
            "bf16.json",
            "e4m3fn.json",
            "fp32.json",
            "more/deeper/fp8.json"
        ]
    );
    assert_eq!(
        archs(&format!("{d}/arch/[be]*.json")),
        ["bf16.json", "e4m3fn.json"]
    );
}

#[test]
fn a_million_runs_are_planned_and_repeats_dropped_in_order() {
    let (dir, _) = setup("million");
    let d = dir.display();
    let seeds: Vec<String> = (0..1000).map(|s| s.to_string()).collect();
    let lrs: Vec<String> = (0..167).map(|i| format!("\"{i}\"")).collect();
    // Two grids of 2 x 3 x 167 x 1000 = 1,002,000 runs each: the second repeats the first.
    let grid = format!(
        r#"{{"workloads":["{d}/workloads/*.json"],"algos":["sgd"],"archs":["{d}/arch/*.json"],
            "seeds":[{}],"set":{{"lr":[{}]}}}}"#,
        seeds.join(","),
        lrs.join(",")
    );
    let text = format!(r#"{{"name":"big","grids":[{grid},{grid}]}}"#);
    let spec = SweepSpec::from_json_str("big.json", &text).unwrap();
    let plan = lpsim::sweep::plan_sweep(&spec, &dir.join("out")).unwrap();
    assert_eq!(plan.runs.len(), 1_002_000);
    assert!(plan.stored.is_empty());
    assert!(!dir.join("out").exists(), "planning writes nothing");
    let first = &plan.runs[0].0;
    assert_eq!((first.seed, first.set["lr"].as_str()), (0, "0"));
    let last = &plan.runs[1_001_999].0;
    assert_eq!((last.seed, last.set["lr"].as_str()), (999, "166"));
    assert!(last.workload_path.ends_with("toy-regress.json"));
    let hashes: std::collections::HashSet<&String> = plan.runs.iter().map(|r| &r.1).collect();
    assert_eq!(hashes.len(), 1_002_000, "every run has its own hash");
}

#[test]
fn grids_concatenate_in_order_and_run_each_configuration_once() {
    let (dir, _) = setup("grids");
    let d = dir.display();
    let text = format!(
        r#"{{
  "name": "two-grids",
  "grids": [
    {{ "workloads": ["{d}/workloads/toy-class.json"], "algos": ["sgd"], "archs": ["{d}/arch/*.json"] }},
    {{ "workloads": ["{d}/workloads/toy-class.json"], "algos": ["sgd", "lp-sgld-vc"], "archs": ["{d}/arch/*.json"], "seeds": [0, 1] }}
  ]
}}"#
    );
    let spec = SweepSpec::from_json_str("grids.json", &text).unwrap();
    assert_eq!(spec.grids.len(), 2);
    let runs = spec.runs();
    let archs = spec.grids[0].archs.len();
    // Grid 1: sgd x archs x seed 0; grid 2 adds sgd seed 1 and lp-sgld-vc x 2 seeds.
    assert_eq!(runs.len(), archs + archs + 2 * archs);
    assert!(runs[..archs].iter().all(|r| r.algo == "sgd" && r.seed == 0));
    let mixed = r#"{"name": "x", "algos": ["sgd"], "grids": []}"#;
    let err = SweepSpec::from_json_str("bad.json", mixed)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.json"), "{err}");
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = common::scratch("sweep", "dry-run");
    let out = dir.join("out");
    let spec = SweepSpec::load(Path::new("workloads/quickstart.json")).unwrap();
    let n = spec.runs().len();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args(["sweep", "workloads/quickstart.json", "--dry-run", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{n} runs planned: 0 already done (their results are reused), {n} to run; nothing run"
        )),
        "{stdout}"
    );
    assert!(!out.exists());
}

/// The files a sweep writes, by name (`results.csv`, `results.json`, `report.md`, plots).
fn result_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.is_file().then(|| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
        })
        .collect()
}

fn shard(
    spec: &SweepSpec,
    out: &Path,
    runner: &(dyn Fn(&RunSpec) -> Result<RunReport, String> + Sync),
    s: Shard,
) -> SweepSummary {
    run_sweep(spec, out, 2, runner, ProgressMode::Quiet, Mode::Shard(s)).unwrap()
}

/// A runner that must not be called (a merge of a complete store runs nothing).
fn never(spec: &RunSpec) -> Result<RunReport, String> {
    panic!("ran {}", spec.label())
}

/// Issue 16: four shards running at once against one output directory split the grid (every
/// run in exactly one shard, 18 each), write no results, and the merge writes the same files,
/// byte for byte, as one sweep on one machine, running nothing.
#[test]
fn shards_split_the_grid_and_the_merge_equals_one_sweep() {
    let (dir, spec) = setup("shards");
    let single = dir.join("single");
    sweep(&spec, &single, 2, &synthetic);
    let out = dir.join("sharded");
    let summaries: Vec<SweepSummary> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (spec, out) = (&spec, &out);
                s.spawn(move || shard(spec, out, &synthetic, Shard { index: i, count: 4 }))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen: Vec<String> = Vec::new();
    for (i, sm) in summaries.iter().enumerate() {
        assert_eq!(
            sm.outcomes.len(),
            18,
            "shard {i}: balanced on equal estimates"
        );
        assert_eq!(sm.ran, 18);
        assert!(sm.files.is_empty(), "a shard writes no results");
        seen.extend(sm.outcomes.iter().map(|o| o.hash.clone()));
    }
    let mut all: Vec<String> = spec.runs().iter().map(|r| r.hash().unwrap()).collect();
    all.sort();
    seen.sort();
    assert_eq!(seen, all, "every run in exactly one shard");
    assert!(!out.join("results.csv").exists());
    // The same partition every time: a shard run again reuses all of its runs.
    let again = shard(&spec, &out, &never, Shard { index: 2, count: 4 });
    assert_eq!((again.ran, again.reused), (0, 18));
    let merged = run_sweep(&spec, &out, 2, &never, ProgressMode::Quiet, Mode::Merge).unwrap();
    assert_eq!((merged.ran, merged.reused), (0, 72));
    assert_eq!(
        result_files(&out),
        result_files(&single),
        "merge = one sweep, byte for byte"
    );
}

/// A run that fails in a shard is recorded; the merge reports it failed with its error and
/// runs nothing; resubmitting the shard reruns only it; the merge then equals one sweep.
/// Runs a killed shard never finished are run by the merge itself.
#[test]
fn failed_and_missing_runs_after_shards() {
    let (dir, spec) = setup("shard-failures");
    let single = dir.join("single");
    sweep(&spec, &single, 2, &synthetic);
    let out = dir.join("sharded");
    let flaky = |s: &RunSpec| {
        if s.seed == 1 && s.algo == "sgd" {
            Err("out of memory on node 7".to_string())
        } else {
            synthetic(s)
        }
    };
    let mut failed = 0;
    for i in 0..3 {
        let sm = shard(&spec, &out, &flaky, Shard { index: i, count: 3 });
        failed += sm.failed;
    }
    assert_eq!(
        failed, 12,
        "2 workloads x 3 archs x 2 lr with seed 1 and sgd"
    );
    let merged = run_sweep(&spec, &out, 2, &never, ProgressMode::Quiet, Mode::Merge).unwrap();
    assert_eq!((merged.ran, merged.failed), (0, 12));
    let csv = read(out.join("results.csv"));
    assert_eq!(csv.matches("out of memory on node 7").count(), 12, "{csv}");
    // Resubmitting reruns only the failures.
    let mut reran = 0;
    for i in 0..3 {
        reran += shard(&spec, &out, &synthetic, Shard { index: i, count: 3 }).ran;
    }
    assert_eq!(reran, 12);
    let failures = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".failed.json")
        })
        .count();
    assert_eq!(failures, 0, "a run that succeeds drops its failure record");
    // A shard killed mid-run: its unfinished runs are missing; the merge runs just them.
    let lost: Vec<PathBuf> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .take(5)
        .collect();
    for p in &lost {
        std::fs::remove_file(p).unwrap();
    }
    let merged = run_sweep(&spec, &out, 2, &synthetic, ProgressMode::Quiet, Mode::Merge).unwrap();
    assert_eq!((merged.ran, merged.reused, merged.failed), (5, 67, 0));
    assert_eq!(result_files(&out), result_files(&single));
}

#[test]
fn the_partition_is_balanced_by_estimated_cost() {
    // Real workloads: digits-mlp (an MLP on a larger file) outweighs iris-logistic; svrg-family
    // runs count three times. The largest shard's estimate stays within the largest single run
    // of the mean (the LPT bound), and the heavy runs spread over the shards.
    let root = env!("CARGO_MANIFEST_DIR");
    let text = format!(
        r#"{{"name": "bal", "workloads": ["{root}/workloads/digits-mlp.json",
            "{root}/workloads/iris-logistic.json"], "algos": ["sgd", "halp", "lp-sgld-vc"],
            "archs": ["{root}/arch/fp32.json", "{root}/arch/bf16.json"], "seeds": [0, 1, 2]}}"#
    );
    let spec = SweepSpec::from_json_str("bal.json", &text).unwrap();
    let runs: Vec<(RunSpec, String)> = spec
        .runs()
        .into_iter()
        .map(|r| {
            let h = r.hash().unwrap();
            (r, h)
        })
        .collect();
    let cost = lpsim::sweep::shard::estimates(&runs);
    let a = lpsim::sweep::shard::assign(&runs, &cost, 4);
    assert_eq!(a, lpsim::sweep::shard::assign(&runs, &cost, 4), "stable");
    let heavy = |r: &RunSpec| r.workload_path.ends_with("digits-mlp.json") && r.algo == "halp";
    let mut heavy_per_shard = [0; 4];
    let mut count = [0; 4];
    for ((r, _), &s) in runs.iter().zip(&a) {
        count[s] += 1;
        if heavy(r) {
            heavy_per_shard[s] += 1;
        }
    }
    // 6 heavy runs over 4 shards: 1 or 2 each.
    assert!(
        heavy_per_shard.iter().all(|&h| (1..=2).contains(&h)),
        "{heavy_per_shard:?}"
    );
    // Light runs fill the shards with fewer heavy ones.
    assert!(
        count.iter().max() > count.iter().min(),
        "{count:?}: balanced by cost, not count"
    );
}
