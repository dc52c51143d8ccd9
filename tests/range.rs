//! Range health (issue 11 item 7): the counting function against hand counts on small tensors
//! of every kind of format, and end to end: a run whose activations saturate reports it and
//! warns, the same run in fp32 reports zeros, and a sweep's files carry the figures.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use lpsim::algo::{Algo, Hyper};
use lpsim::format::{bound_events, range_events, RangeCounts};
use lpsim::graph::{GraphBuilder, Level, Op, Role, TensorMeta};
use lpsim::model::Model;
use lpsim::report::RunReport;
use lpsim::{Quantizer, Rounding};

/// `exact` rounded to `spec` with nearest-even by the reference quantizer (rows of `row`).
fn stored(spec: &str, exact: &[f64], row: usize) -> Vec<f64> {
    stored_with(spec, Rounding::NearestEven, exact, row)
}

fn stored_with(spec: &str, rounding: Rounding, exact: &[f64], row: usize) -> Vec<f64> {
    let q = Quantizer::new(common::fmt(spec), rounding, 0, 0).expect("quantizer");
    let mut out = vec![0.0; exact.len()];
    q.quantize_f64(exact, &mut out, 0, row);
    out
}

fn counts(values: u64, saturated: u64, flushed: u64, nan: u64) -> RangeCounts {
    RangeCounts {
        values,
        saturated,
        flushed,
        nan,
    }
}

/// Fixed point (8, 6), saturating: range [-2, 127/64], step 1/64.
#[test]
fn fixed_point_counts_saturation_underflow_and_nan_by_hand() {
    let exact = [
        0.5,           // in range
        1.99,          // above 127/64 = 1.984375: saturated
        2.5,           // saturated
        -2.0,          // the most negative code: in range
        -2.01,         // saturated
        -3.0,          // saturated
        0.004,         // below half a step: flushed
        -0.007,        // flushed
        0.0,           // an exact zero is not a flush
        f64::NAN,      // NaN (stored as 0: fixed point has no NaN)
        f64::INFINITY, // saturated
        1.984375,      // the largest value: in range
    ];
    let s = stored("fixed:wl=8,fl=6", &exact, exact.len());
    assert_eq!((s[1], s[2], s[5], s[9]), (1.984375, 1.984375, -2.0, 0.0));
    let f = common::fmt("fixed:wl=8,fl=6");
    assert_eq!(range_events(&f, &exact, &s, 4), counts(12, 5, 2, 1));
}

/// A wrapping integer: an overflow stored as a wrapped value is counted as saturated.
#[test]
fn a_wrapped_integer_counts_as_saturated() {
    let exact = [130.0, -129.0, 100.0, 0.4];
    let s = stored("int8", &exact, 4);
    assert_eq!(s, [-126.0, 127.0, 100.0, 0.0], "int8 wraps");
    assert_eq!(
        range_events(&common::fmt("int8"), &exact, &s, 4),
        counts(4, 2, 1, 0)
    );
}

/// fp16 overflows to infinity; below half its smallest subnormal a value flushes to (signed)
/// zero.
#[test]
fn a_float_with_infinities_counts_overflow_and_flush_by_hand() {
    let exact = [
        1.0,
        70000.0,       // overflows to inf
        -1e6,          // to -inf
        65504.0,       // the largest value
        65519.0,       // above it, rounds down to it: saturated
        1e-8,          // below half the smallest subnormal (2^-25): flushed to 0
        3e-8,          // above half: the smallest subnormal, not a flush
        -1e-9,         // flushed to -0
        f64::NAN,      // NaN
        f64::INFINITY, // saturated
        0.0,
        -0.0,
    ];
    let s = stored("fp16", &exact, exact.len());
    assert_eq!(
        (s[1], s[2], s[4]),
        (f64::INFINITY, f64::NEG_INFINITY, 65504.0)
    );
    assert!(s[6] > 0.0 && s[7] == 0.0);
    assert_eq!(
        range_events(&common::fmt("fp16"), &exact, &s, 1),
        counts(12, 4, 2, 1)
    );
}

/// A saturating float, and `e4m3fn`, whose overflow is NaN: both are saturation events (an
/// overflow), not NaNs of the computation.
#[test]
fn saturating_floats_and_overflow_to_nan_count_as_saturated() {
    // 0.0005 is below half the smallest subnormal 2^-9.
    let exact = [300.0, 500.0, -1000.0, 0.0005, f64::NAN];
    let sat = "float:e=4,m=3,special=fn,sat=on";
    let s = stored(sat, &exact, 5);
    assert_eq!(&s[..3], &[288.0, 448.0, -448.0]);
    assert_eq!(
        range_events(&common::fmt(sat), &exact, &s, 5),
        counts(5, 2, 1, 1)
    );
    let s = stored("e4m3fn", &exact, 5);
    assert!(s[1].is_nan() && s[2].is_nan(), "e4m3fn overflows to NaN");
    assert_eq!(
        range_events(&common::fmt("e4m3fn"), &exact, &s, 5),
        counts(5, 2, 1, 1)
    );
    // QPyTorch's e5m2 saturates at 1.75 * 2^16 (its largest binade is 2^(2^(e-1)), one above
    // IEEE's) and has no NaN.
    let exact = [114688.0, 120000.0, f64::NAN];
    let spec = "qtorch:e=5,m=2";
    let s = stored_with(spec, Rounding::NearestAway, &exact, 3);
    assert_eq!(s, [114688.0, 114688.0, 114688.0]);
    assert_eq!(
        range_events(&common::fmt(spec), &exact, &s, 3),
        counts(3, 1, 0, 1)
    );
}

/// bfp with blocks of 4: each block's range is the element range (8, 6) times its scale.
#[test]
fn block_formats_judge_each_block_against_its_own_range() {
    let exact = [
        // amax 1.5: scale 1, range +-127/64, step 1/64.
        1.5,
        -0.75,
        0.001, // flushed
        0.0,
        // amax 3.99: scale 2, range +-127/32 = 3.96875, step 1/32.
        3.99, // saturated
        1.0,
        -2.0,
        0.01, // flushed
        // An infinity: every element reads NaN; the infinity itself saturated.
        1.0,
        f64::INFINITY,
        2.0,
        0.5,
        // A short last block with a NaN: both NaN.
        f64::NAN,
        0.25,
    ];
    let spec = "bfp:wl=8,size=4";
    let s = stored(spec, &exact, exact.len());
    assert_eq!((s[2], s[4], s[7]), (0.0, 3.96875, 0.0));
    assert!(s[8..].iter().all(|v| v.is_nan()));
    assert_eq!(
        range_events(&common::fmt(spec), &exact, &s, exact.len()),
        counts(14, 2, 2, 5)
    );
    // MX clips the block maximum: e4m3 elements reach 1.75 x 2^8 while the scale puts the
    // block's largest magnitude in [2^8, 2^9).
    let exact = [1.9, 1.0, 1.0, 0.5];
    let spec = "mx:elem=e4m3fn,size=2";
    let s = stored(spec, &exact, 4);
    assert_eq!(s, [1.75, 1.0, 1.0, 0.5]);
    assert_eq!(
        range_events(&common::fmt(spec), &exact, &s, 4),
        counts(4, 1, 0, 0)
    );
    // `size=row` groups by the row length given.
    let exact = [3.99, 0.01, 1.0, 0.01];
    let spec = "bfp:wl=8,size=row";
    let s = stored(spec, &exact, 2);
    assert_eq!(
        range_events(&common::fmt(spec), &exact, &s, 2),
        counts(4, 1, 1, 0),
        "row 1 (scale 2) saturates 3.99 and flushes 0.01; row 2 (scale 1) keeps 0.01"
    );
}

/// `size=col` blocks are columns: each column is judged against its own scale, so a column's
/// clipped maximum counts even when another column holds larger values (as one block of the
/// whole tensor, 1.99 would sit inside the range +-127 of the scale 2^6).
#[test]
fn column_blocks_judge_each_column_against_its_own_range() {
    // [3, 2]: column 0 has amax 1.99 (scale 1, range +-127/64 = 1.984375, step 1/64),
    // column 1 amax 100 (scale 2^6, range +-127, step 1: 0.25 flushes).
    let exact = [1.99, 100.0, 0.5, 1.0, 0.25, 0.25];
    let spec = "bfp:wl=8,size=col";
    let s = stored(spec, &exact, 2);
    assert_eq!(s, [1.984375, 100.0, 0.5, 1.0, 0.25, 0.0]);
    assert_eq!(
        range_events(&common::fmt(spec), &exact, &s, 2),
        counts(6, 1, 1, 0)
    );
    // A column holding a NaN reads NaN; the other column is judged as before.
    let exact = [1.99, f64::NAN, 0.5, 1.0];
    let s = stored(spec, &exact, 2);
    assert!(s[1].is_nan() && s[3].is_nan());
    assert_eq!(
        range_events(&common::fmt(spec), &exact, &s, 2),
        counts(4, 1, 0, 2)
    );
}

/// Accumulator values are judged without their exact sums: NaN, and saturated when infinite or
/// at an end of the range.
#[test]
fn accumulator_values_at_the_bound_count_as_saturated() {
    let acc = common::fmt("fixed:wl=32,fl=12");
    let (max, min) = ((2f64.powi(31) - 1.0) / 4096.0, -(2f64.powi(31)) / 4096.0);
    assert_eq!(
        bound_events(&acc, &[max, min, 1.0, f64::NAN, 0.0]),
        counts(5, 2, 0, 1)
    );
    let fp32 = common::fmt("fp32");
    let top = f64::from(f32::MAX);
    assert_eq!(
        bound_events(&fp32, &[f64::INFINITY, f64::NEG_INFINITY, 3.0, top, -1.0]),
        counts(5, 3, 0, 0)
    );
    // An unsigned format's zero is an ordinary value.
    assert_eq!(
        bound_events(&common::fmt("uint8"), &[0.0, 255.0, 3.0]),
        counts(3, 1, 0, 0)
    );
}

/// Every tensor of a step graph has the role of what it holds; a conversion to a MAC format
/// keeps the role of what it converts (fp8's errors become e4m3fn MAC operands: gradients).
#[test]
fn step_graph_tensors_carry_their_roles() {
    let arch = lpsim::arch::Architecture::load(Path::new("arch/fp8.json")).expect("arch");
    let model = Model::mlp(4, &[3], 2, 0.0).unwrap();
    let hyper = Hyper::new(Algo::LpSgldF);
    let g = lpsim::algo::step_graph(Algo::LpSgldF, &model, None, &arch, &hyper)
        .expect("graph")
        .graph;
    let want = |name: &str| match name {
        "idx" | "x_all" | "y_all" | "x" | "y" | "x@mac.a" => Role::Data,
        n if n.starts_with('w') || n.starts_with("qw") => Role::Weights,
        "z0" | "zb0" | "h0" | "z1" | "zb1" => Role::Activations,
        n if n.starts_with("mu") => Role::Updates,
        _ => Role::Gradients,
    };
    let mut gradients = Vec::new();
    for &i in g.order() {
        let t = &g.node(i).out;
        assert_eq!(t.role, want(&t.name), "{}", t.name);
        if t.role == Role::Gradients {
            gradients.push(t.name.as_str());
        }
    }
    gradients.sort_unstable();
    assert_eq!(
        gradients,
        [
            "err1",
            "err1@mac.b",
            "err2",
            "err2@mac.a",
            "err2@mac.b",
            "gh1",
            "grad0",
            "grad1",
            "gradb0",
            "gradb1",
        ]
    );
}

/// The executor judges each output under its tensor's role and format, and every matmul's
/// accumulator values: on int8 hardware, `z = x w = 6.75` fits the fixed(32, 12) accumulator
/// but saturates the fixed(8, 6) output; `z * 1e-50` in fp32 flushes to zero; the gather (a
/// copy) is not judged.
#[test]
fn the_executor_judges_outputs_by_role_and_the_accumulator() {
    // An integer MAC whose operands are fixed(8, 6) values and whose accumulator is fixed(32, 12).
    let q = "fixed:wl=8,fl=6";
    let overrides: BTreeMap<String, serde_json::Value> = [
        ("formats.mac.a", q),
        ("formats.mac.b", q),
        ("formats.mac.accumulator", "fixed:wl=32,fl=12"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
    .collect();
    let arch =
        lpsim::arch::Architecture::load_with_overrides(Path::new("arch/int8.json"), &overrides)
            .expect("arch");
    let t = |name: &str, shape: &[usize], f: &str, role: Role| {
        TensorMeta::new(
            name,
            shape,
            common::fmt(f),
            Rounding::NearestEven,
            Level::Inner,
            role,
        )
    };
    let mut b = GraphBuilder::new(arch.formats.mac);
    let data = b
        .add(Op::Input, t("data", &[2, 3], q, Role::Data), &[])
        .unwrap();
    let idx = b
        .add(Op::Input, t("idx", &[1, 1], "int32", Role::Data), &[])
        .unwrap();
    let x = b
        .add(Op::Gather, t("x", &[1, 3], q, Role::Data), &[data, idx])
        .unwrap();
    let w = b
        .add(Op::Param, t("w", &[3, 1], q, Role::Weights), &[])
        .unwrap();
    let mm = Op::MatMul {
        transpose_a: false,
        transpose_b: false,
    };
    let z = b
        .add(mm, t("z", &[1, 1], q, Role::Activations), &[x, w])
        .unwrap();
    let tiny = Op::Scale { c: 1e-50.into() };
    b.add(tiny, t("s", &[1, 1], "fp32", Role::Gradients), &[z])
        .unwrap();
    let g = b.build(&["s"]).expect("graph");
    let mut feeds = BTreeMap::new();
    feeds.insert(
        "data".to_string(),
        ndarray::array![[1.5; 3], [0.0; 3]].into_dyn(),
    );
    feeds.insert("idx".to_string(), ndarray::array![[0.0]].into_dyn());
    feeds.insert(
        "w".to_string(),
        ndarray::array![[1.5], [1.5], [1.5]].into_dyn(),
    );
    let r = lpsim::graph::execute(&g, &arch, &feeds, 0, 0).expect("runs");
    assert_eq!(r.values["z"][[0, 0]], 1.984375);
    assert_eq!(r.values["s"][[0, 0]], 0.0);
    let got: Vec<(Role, String, RangeCounts)> = r
        .range
        .entries()
        .iter()
        .map(|e| (e.role, e.format.to_string(), e.counts))
        .collect();
    assert_eq!(
        got,
        [
            (
                Role::Accumulator,
                "fixed:wl=32,fl=12".into(),
                counts(1, 0, 0, 0)
            ),
            (Role::Activations, q.into(), counts(1, 1, 0, 0)),
            (Role::Gradients, "fp32".into(), counts(1, 0, 1, 0)),
        ]
    );
}

fn lpsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

/// `lpsim run` of digits-logistic with sgd for 2 epochs on fp32 with extra `--set`s; returns the
/// report, its Markdown and the command's standard error.
fn run(dir: &Path, set: &[&str]) -> (RunReport, String, String) {
    let out = dir.display().to_string();
    let mut args = vec![
        "run",
        "--workload",
        "workloads/digits-logistic.json",
        "--algo",
        "lp-sgd",
        "--arch",
        "arch/fp32.json",
        "--out",
        &out,
        "--set",
        "epochs=2",
        // The data are stored in the input format, which defaults to the activations': pin it,
        // so that only the activations change.
        "--set",
        "arch.formats.input=fp32",
    ];
    for s in set {
        args.extend(["--set", s]);
    }
    let o = lpsim(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    let json = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    (serde_json::from_str(&json).expect("parses"), md, stderr)
}

#[test]
fn saturating_activations_are_reported_and_warned_and_fp32_reports_zeros() {
    let dir = common::scratch("range", "run");
    let (bad, md, stderr) = run(
        &dir.join("fixed"),
        &["arch.formats.activations=fixed:wl=8,fl=6"],
    );
    let act = bad
        .range_health
        .iter()
        .find(|r| r.role == "activations" && r.format == "fixed:wl=8,fl=6")
        .expect("an activations record in the fixed format");
    // The two matmuls of a step are the logits (activations) and the weight gradient, stored
    // in the accumulator's format, the size of the weights stored by the step.
    let of = |role: &str| -> u64 {
        bad.range_health
            .iter()
            .filter(|r| r.role == role)
            .map(|r| r.values)
            .sum()
    };
    assert_eq!(of("accumulator"), act.values + of("weights"));
    assert_eq!(act.values % 10, 0, "a multiple of the 10 classes");
    assert!(
        act.saturated_fraction() > 0.01,
        "logits saturate at 1.98: {act:?}"
    );
    let warning = format!(
        "WARNING: activations saturated {:.1}% of values (format fixed:wl=8,fl=6)",
        100.0 * act.saturated_fraction()
    );
    assert!(md.contains(&warning), "{md}");
    assert!(md.contains("## Range health"), "{md}");
    assert!(stderr.contains(&warning), "{stderr}");
    assert_eq!(bad.range_warnings(), vec![warning]);
    // The accumulator's flushes are not judged, and the JSON leaves them out.
    let acc = bad
        .range_health
        .iter()
        .find(|r| r.role == "accumulator")
        .expect("an accumulator record");
    assert_eq!(acc.flushed, None);
    let roles: Vec<&str> = bad.range_health.iter().map(|r| r.role.as_str()).collect();
    assert_eq!(
        roles,
        ["data", "weights", "activations", "gradients", "accumulator"]
    );

    let (good, md, stderr) = run(&dir.join("fp32"), &[]);
    assert!(!good.range_health.is_empty());
    for r in &good.range_health {
        assert_eq!(
            (r.saturated, r.flushed.unwrap_or(0), r.nan),
            (0, 0, 0),
            "{r:?}"
        );
        assert!(r.values > 0, "{r:?}");
    }
    assert!(
        !md.contains("WARNING") && !stderr.contains("WARNING"),
        "{md}"
    );
    let data = good
        .range_health
        .iter()
        .find(|r| r.role == "data")
        .expect("data");
    // digits: 1437 training images x (64 pixels + the bias feature), judged once.
    assert_eq!(data.values, 1437 * 65);
}

#[test]
fn a_sweep_lists_range_figures_per_role_and_its_warnings() {
    let dir = common::scratch("range", "sweep");
    let spec = dir.join("spec.json");
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        &spec,
        format!(
            r#"{{"name": "range", "workloads": ["{root}/workloads/iris-logistic.json"],
                "algos": ["lp-sgd"], "archs": ["{root}/arch/fp32.json"],
                "set": {{"epochs": [2], "arch.formats.input": ["fp32"],
                         "arch.formats.activations": ["fp32", "fixed:wl=4,fl=3"]}}}}"#
        ),
    )
    .unwrap();
    let out: PathBuf = dir.join("out");
    let o = lpsim(&[
        "sweep",
        &spec.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines().map(csv_fields);
    let header = lines.next().unwrap();
    let rows: Vec<Vec<String>> = lines.collect();
    assert_eq!(rows.len(), 2);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    for role in ["data", "weights", "activations", "gradients", "accumulator"] {
        for kind in ["sat", "ftz", "nan"] {
            col(&format!("{kind}_{role}"));
        }
    }
    let act_fmt = col("set.arch.formats.activations");
    let value = |row: &[String], name: &str| -> f64 { row[col(name)].parse().expect(name) };
    for row in &rows {
        let sat = value(row, "sat_activations");
        if row[act_fmt] == "fp32" {
            assert_eq!(sat, 0.0, "{row:?}");
        } else {
            assert!(sat > 0.01, "{row:?}");
        }
        assert_eq!(row[col("ftz_accumulator")], "", "not judged");
        assert_eq!(value(row, "nan_gradients"), 0.0);
    }
    // results.json carries the counts; report.md lists the warning of the saturating run.
    let json = std::fs::read_to_string(out.join("results.json")).unwrap();
    assert!(json.contains("\"range_health\""));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    // The warnings come after the results, with their count up front.
    let (at, tables) = (md.find("## Range warnings"), md.find("| # |"));
    assert!(at.is_some() && tables.is_some() && at > tables, "{md}");
    assert!(md.contains("Range warnings (a tensor role saturated more than 1% of its values): 1, listed at the end"), "{md}");
    let warned: Vec<&str> = md.lines().filter(|l| l.contains("WARNING")).collect();
    assert_eq!(warned.len(), 1, "{md}");
    assert!(
        warned[0].contains("activations saturated") && warned[0].contains("fixed:wl=4,fl=3"),
        "{md}"
    );
}

/// The fields of one CSV line (RFC 4180 quoting, as `results.csv` writes it).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}
