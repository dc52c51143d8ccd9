//! One run's report files: JSON round trip (NaN included), Markdown, SVG plots, the directory
//! naming, and never replacing a file lpsim did not write.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use lpsim::cost::{HostWork, Pass};
use lpsim::report::{
    pareto_front, run_dir, write_run, CostSummary, EpochRecord, LayerCost, RangeRecord,
    ReportError, RunConfig, RunReport,
};

fn scratch(name: &str) -> PathBuf {
    common::scratch("report", name)
}

fn map(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A classifier run of three epochs; `diverge` makes the last epoch's loss NaN.
fn report(diverge: bool) -> RunReport {
    let epochs = (1..=3)
        .map(|e| {
            let loss = if diverge && e == 3 {
                f64::NAN
            } else {
                1.0 / e as f64
            };
            EpochRecord {
                epoch: e,
                metrics: map(&[
                    ("train_loss", loss),
                    ("test_accuracy", 0.6 + 0.1 * e as f64),
                ]),
                energy_pj: 1000.0,
                cycles: 50.0,
            }
        })
        .collect();
    RunReport {
        config: RunConfig {
            workload: "digits-logistic".into(),
            algo: "lp-sgld-vc".into(),
            arch: "bf16".into(),
            seed: 3,
            set: [("lr".to_string(), "0.05".to_string())].into(),
            hyper: map(&[("lr", 0.05), ("epochs", 3.0)]),
            formats: [("weights".to_string(), "bf16".to_string())].into(),
        },
        epochs,
        metrics: map(&[
            ("test_accuracy", 0.9),
            ("test_nll", 0.3),
            ("ece", 0.02),
            ("train_loss", if diverge { f64::INFINITY } else { 0.33 }),
        ]),
        cost: CostSummary {
            energy_pj: 3000.0,
            cycles: 150.0,
            stall_cycles: 10.0,
            time_s: 1.5e-7,
            area_mm2: 0.25,
            breakdown: map(&[("mac", 2000.0), ("dram", 1000.0)]),
            by_layer: vec![
                layer("data", Pass::Forward, 500.0, 10, 0),
                layer("dense0", Pass::Forward, 1000.0, 60, 4096),
                layer("dense0", Pass::Backward, 1200.0, 70, 8192),
                layer("update", Pass::Update, 300.0, 10, 0),
            ],
            host: HostWork::default(),
        },
        diverged_at_epoch: diverge.then_some(3),
        chain: None,
        classes: Some(10),
        range_health: vec![
            range("weights", "bf16", 1000, 0, Some(25), 0),
            // 12.5 % saturated: warned.
            range("activations", "bf16", 800, 100, Some(0), 0),
            // Exactly 1 %: not above the threshold, no warning.
            range("gradients", "bf16", 1000, 10, Some(0), 2),
            range("accumulator", "fp32", 500, 0, None, 0),
        ],
    }
}

fn layer(name: &str, pass: Pass, energy_pj: f64, cycles: u64, macs: u64) -> LayerCost {
    LayerCost {
        layer: name.into(),
        pass,
        energy_pj,
        cycles,
        macs,
        read_bits: 2 * macs + 100,
        write_bits: macs + 10,
        random_bits: 7,
    }
}

fn range(
    role: &str,
    format: &str,
    values: u64,
    saturated: u64,
    flushed: Option<u64>,
    nan: u64,
) -> RangeRecord {
    RangeRecord {
        role: role.into(),
        format: format.into(),
        values,
        saturated,
        flushed,
        nan,
    }
}

#[test]
fn report_json_round_trips_with_nan_and_inf() {
    for diverge in [false, true] {
        let r = report(diverge);
        let json = serde_json::to_string_pretty(&r).unwrap();
        assert_eq!(
            json.matches("null").count(),
            usize::from(!diverge),
            "only `diverged_at_epoch` may be null; non-finite numbers are strings"
        );
        let back: RunReport = serde_json::from_str(&json).unwrap();
        // NaN != NaN, so compare the encodings.
        assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json);
        assert_eq!(back.diverged_at_epoch, r.diverged_at_epoch);
    }
}

#[test]
fn writes_json_markdown_and_plots() {
    let dir = scratch("files");
    let r = report(false);
    let written = write_run(&dir, &r).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "report.json",
            "loss.svg",
            "accuracy.svg",
            "energy.svg",
            "layers.svg",
            "report.md"
        ]
    );
    let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert_eq!(serde_json::from_str::<RunReport>(&json).unwrap(), r);

    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "# digits-logistic · lp-sgld-vc · bf16 · seed 3",
        "| --set | lr=0.05 |",
        "| test_accuracy | 0.9000 |",
        "| mac | 2000 | 66.7 % |",
        "## Per epoch",
        "![loss.svg](loss.svg)",
        "**WARNING: activations saturated 12.5% of values (format bf16)**",
        "## Range health",
        "| weights | `bf16` | 1000 | 0 % | 2.500 % | 0 % |",
        "| gradients | `bf16` | 1000 | 1.000 % | 0 % | 0.2000 % |",
        "| accumulator | `fp32` | 500 | 0 % | - | 0 % |",
        "## Cost per layer and pass",
        "| layer | pass | energy (pJ) | share | cycles | MACs | bits read | bits written | \
         random bits |",
        "| data | forward | 500.0 | 16.7 % | 10 | 0 | 100 | 10 | 7 |",
        "| dense0 | backward | 1200 | 40.0 % | 70 | 8192 | 16484 | 8202 | 7 |",
        "| **total** | | 3000 | 100.0 % | 150 | 12288 | 24976 | 12328 | 28 |",
        "![layers.svg](layers.svg)",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    assert_eq!(md.matches("WARNING").count(), 1, "only above 1 %:\n{md}");
    assert!(
        md.find("WARNING") < md.find("## Configuration"),
        "warnings come first"
    );
    for (file, label) in [
        ("loss.svg", "train_loss"),
        ("accuracy.svg", "test_accuracy"),
        ("energy.svg", "test_error"),
        ("layers.svg", "dense0"),
        ("layers.svg", "backward"),
        ("layers.svg", "2200 pJ"),
    ] {
        let svg = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(svg.starts_with("<svg"), "{file}");
        assert!(svg.trim_end().ends_with("</svg>"), "{file}");
        assert!(
            common::svg_texts(&svg).contains(&label.to_string()),
            "{file} lacks {label}"
        );
    }
    assert!(
        !dir.join("gap.svg").exists(),
        "no optimality gap, no gap plot"
    );
}

#[test]
fn run_report_puts_the_primary_metric_first_then_the_cost() {
    let dir = scratch("glance");
    write_run(&dir, &report(false)).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    // A one-line result before the configuration: the primary metric, then the cost.
    assert!(
        md.contains(
            "## Result\n\n| test_accuracy | energy (pJ) | cycles | time (s) | area (mm²) |\n\
             |---|---|---|---|---|\n| 0.9000 | 3000 | 150.0 | 1.500e-7 | 0.2500 |\n"
        ),
        "{md}"
    );
    assert!(md.find("## Result") < md.find("## Configuration"));
    // Final metrics: the primary one first, then the others by name.
    assert!(
        md.contains(
            "| metric | value |\n|---|---|\n| test_accuracy | 0.9000 |\n| ece | 0.02000 |\n\
             | test_nll | 0.3000 |\n| train_loss | 0.3300 |\n"
        ),
        "{md}"
    );
    // Per epoch: the primary metric, the cost, then the rest.
    assert!(
        md.contains(
            "| epoch | test_accuracy | energy (pJ) | cycles | train_loss |\n|---|---|---|---|---|\n\
             | 1 | 0.7000 | 1000 | 50.00 | 1.000 |\n"
        ),
        "{md}"
    );
    assert!(!md.contains("At chance level"), "{md}");

    // A classifier of 10 classes at 12 % accuracy is at chance, and says so.
    let mut r = report(false);
    r.metrics.insert("test_accuracy".into(), 0.12);
    assert_eq!(r.verdict(), lpsim::report::Verdict::AtChance);
    write_run(&dir, &r).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains(
            "**At chance level**: test_accuracy 0.1200 with 10 classes (chance 0.1000; a run \
             counts as learning above 0.1900, a tenth of the way from chance to 1)."
        ),
        "{md}"
    );
}

#[test]
fn gap_plot_on_a_log_scale_and_stale_plots_removed() {
    let dir = scratch("gap");
    let mut r = report(false);
    for (i, e) in r.epochs.iter_mut().enumerate() {
        e.metrics = map(&[("optimality_gap", 10f64.powi(-(i as i32)))]);
    }
    r.metrics = map(&[("optimality_gap", 0.01)]);
    write_run(&dir, &r).unwrap();
    let svg = std::fs::read_to_string(dir.join("gap.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(common::svg_texts(&svg).contains(&"optimality_gap".to_string()));
    assert!(!dir.join("accuracy.svg").exists());

    // A later run with no gap in the same directory removes lpsim's old gap plot.
    write_run(&dir, &report(false)).unwrap();
    assert!(!dir.join("gap.svg").exists());
}

#[test]
fn diverged_run_is_reported_not_a_crash() {
    let dir = scratch("diverged");
    write_run(&dir, &report(true)).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("**Diverged at epoch 3**"));
    let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(json.contains("\"train_loss\": \"inf\""));
    assert_eq!(
        serde_json::from_str::<RunReport>(&json)
            .unwrap()
            .diverged_at_epoch,
        Some(3)
    );
}

#[test]
fn never_replaces_a_users_file() {
    let dir = scratch("foreign");
    std::fs::write(dir.join("report.md"), "my notes\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me\n").unwrap();
    let err = write_run(&dir, &report(false)).unwrap_err();
    assert!(matches!(err, ReportError::NotOurs { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("report.md: exists and was not written by lpsim"));
    assert_eq!(
        std::fs::read_to_string(dir.join("report.md")).unwrap(),
        "my notes\n"
    );

    // Once the user's file is gone, lpsim writes, and rewrites its own files freely.
    std::fs::remove_file(dir.join("report.md")).unwrap();
    write_run(&dir, &report(false)).unwrap();
    write_run(&dir, &report(true)).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "keep me\n"
    );
    // No temporary files left behind.
    let stray: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty());

    // A JSON file that is not a run report is not ours either.
    let dir2 = scratch("foreign-json");
    std::fs::write(dir2.join("report.json"), "{\"mine\": true}").unwrap();
    assert!(matches!(
        write_run(&dir2, &report(false)),
        Err(ReportError::NotOurs { .. })
    ));
}

#[test]
fn run_directory_naming() {
    assert_eq!(
        run_dir("reports".as_ref(), "digits-logistic", "lp-sgld-vc", "bf16"),
        PathBuf::from("reports/digits-logistic-lp-sgld-vc-bf16")
    );
    assert_eq!(
        run_dir("reports".as_ref(), "a/b", "x y", ".."),
        PathBuf::from("reports/a_b-x_y-__")
    );
}

/// Brute force: i is on the front iff no j dominates it.
fn front_by_definition(pts: &[(f64, f64)]) -> Vec<usize> {
    let ok = |p: (f64, f64)| p.0.is_finite() && p.1.is_finite();
    (0..pts.len())
        .filter(|&i| ok(pts[i]))
        .filter(|&i| {
            !(0..pts.len()).any(|j| {
                ok(pts[j])
                    && pts[j].0 <= pts[i].0
                    && pts[j].1 <= pts[i].1
                    && (pts[j].0 < pts[i].0 || pts[j].1 < pts[i].1)
            })
        })
        .collect()
}

#[test]
fn pareto_front_matches_the_definition() {
    use proptest::prelude::*;
    let coord = prop_oneof![
        8 => (0u8..6).prop_map(f64::from),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ];
    proptest!(|(pts in proptest::collection::vec((coord.clone(), coord), 0..30))| {
        let mut got = pareto_front(&pts);
        // The front comes sorted by energy, then error.
        for w in got.windows(2) {
            let (a, b) = (pts[w[0]], pts[w[1]]);
            prop_assert!(a.0 < b.0 || (a.0 == b.0 && a.1 <= b.1));
        }
        got.sort_unstable();
        prop_assert_eq!(got, front_by_definition(&pts));
    });
}
