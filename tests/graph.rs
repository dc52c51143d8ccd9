//! Issue 5: graph building errors, hand-computed action counts of one step, `lpsim graph`.

use std::collections::BTreeMap;
use std::path::Path;

use lpsim::algo::{train, Algo, Hyper, ModelShape, Targets, TrainData};
use lpsim::arch::Architecture;
use lpsim::format::Format;
use lpsim::graph::{execute, GraphBuilder, GraphError, Level, Op, TensorMeta};
use lpsim::round::Rounding;
use ndarray::{array, ArrayD, IxDyn};

fn arch(name: &str) -> Architecture {
    Architecture::load(Path::new(&format!("arch/{name}.json"))).expect("arch")
}

fn t(name: &str, shape: &[usize], f: &str) -> TensorMeta {
    let f: Format = f.parse().expect("format");
    TensorMeta::new(name, shape, f, Rounding::NearestEven, Level::Inner)
}

#[test]
fn building_rejects_bad_shapes_formats_cycles_and_names() {
    let mac = arch("int8").formats.mac;
    // Inner dimensions differ.
    let mut b = GraphBuilder::new(mac);
    let x = b
        .add(Op::Input, t("x", &[2, 3], "fixed:wl=8,fl=6"), &[])
        .expect("x");
    let w = b
        .add(Op::Param, t("w", &[4, 1], "fixed:wl=8,fl=6"), &[])
        .expect("w");
    let mm = Op::MatMul {
        transpose_a: false,
        transpose_b: false,
    };
    b.add(mm, t("z", &[2, 1], "int32"), &[x, w]).expect("node");
    let e = b.build(&["z"]).expect_err("shape");
    assert!(
        matches!(&e, GraphError::Shape { node, .. } if node == "z"),
        "{e}"
    );
    // An operand that is not a value of the MAC's input format.
    let mut b = GraphBuilder::new(mac);
    let x = b.add(Op::Input, t("x", &[2, 3], "fp32"), &[]).expect("x");
    let w = b
        .add(Op::Param, t("w", &[3, 1], "fixed:wl=8,fl=6"), &[])
        .expect("w");
    b.add(mm, t("z", &[2, 1], "int32"), &[x, w]).expect("node");
    let e = b.build(&["z"]).expect_err("format");
    assert!(
        matches!(&e, GraphError::Format { node, .. } if node == "z"),
        "{e}"
    );
    assert!(e.to_string().contains("quantize it first"));
    // A cycle.
    let mut b = GraphBuilder::new(mac);
    let p = b.add_node(Op::Relu, t("p", &[2], "fp32")).expect("p");
    let q = b.add_node(Op::Relu, t("q", &[2], "fp32")).expect("q");
    b.connect(p, q, 0);
    b.connect(q, p, 0);
    let e = b.build(&[]).expect_err("cycle");
    assert!(
        matches!(&e, GraphError::Cycle(n) if n == "p" || n == "q"),
        "{e}"
    );
    // Duplicate names, missing operands, unknown outputs, a VC quantizer onto a float.
    let mut b = GraphBuilder::new(mac);
    b.add(Op::Input, t("x", &[2], "fp32"), &[]).expect("x");
    let e = b
        .add(Op::Input, t("x", &[2], "fp32"), &[])
        .expect_err("dup");
    assert_eq!(e, GraphError::DuplicateName("x".into()));
    b.add_node(Op::Add, t("s", &[2], "fp32")).expect("s");
    let e = b.clone().build(&[]).expect_err("arity");
    assert!(
        matches!(&e, GraphError::Arity { node, expected: 2, .. } if node == "s"),
        "{e}"
    );
    let mut b = GraphBuilder::new(mac);
    let x = b.add(Op::Input, t("x", &[2], "fp32"), &[]).expect("x");
    b.add(Op::VcQuantize { v: 1e-3 }, t("v", &[2], "bf16"), &[x])
        .expect("v");
    let e = b.clone().build(&["v"]).expect_err("vc onto a float");
    assert!(
        matches!(&e, GraphError::Format { node, .. } if node == "v"),
        "{e}"
    );
    let mut b = GraphBuilder::new(mac);
    b.add(Op::Input, t("x", &[2], "fp32"), &[]).expect("x");
    assert_eq!(
        b.build(&["y"]).expect_err("output"),
        GraphError::UnknownOutput("y".into())
    );
}

#[test]
fn one_sgd_step_counts_equal_the_hand_count() {
    // Linear model, d = 3, batch 2, fp32 arch: z = x w (2x3x1), resid = z - y, err = resid / 2,
    // grad = x^T err (3x2x1), w' = w - lr grad.
    let a = arch("fp32");
    let data = TrainData {
        x_train: array![[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]],
        y_train: Targets::Values(array![1.0, 1.0]),
        x_test: array![[1.0, 2.0, 3.0]],
        y_test: Targets::Values(array![1.0]),
    };
    let mut h = Hyper::new(Algo::Sgd);
    for (k, v) in [
        ("epochs", 1.0),
        ("epoch_len", 1.0),
        ("batch", 2.0),
        ("decay", 0.0),
    ] {
        h.set(k, v).expect("hyper");
    }
    let out = train(
        Algo::Sgd,
        &ModelShape::Linear { d: 3 },
        Some(&data),
        &a,
        &h,
        1,
        &mut |_| {},
    )
    .expect("train");
    // sgd is full precision: all of its work is on the full-precision unit.
    assert_eq!(out.tally.low, lpsim::arith::ActionCounts::default());
    assert_eq!(out.tally.low_work, lpsim::cost::Work::default());
    let c = &out.tally.full;
    // Fused MACs: 2*3 + 3*2 in the array, 3 axpy on the vector unit.
    assert_eq!(c.fma.get("fp32 x fp32 + fp32"), Some(&15));
    assert_eq!(c.add.get("fp32"), Some(&2)); // resid
    assert_eq!(c.mul.get("fp32 x fp32"), Some(&2)); // scale by 1/B
    assert!(
        c.quantize.is_empty(),
        "every output is the unit's own fp32 rne"
    );
    assert_eq!(c.random_bits, 0);
    // DRAM: the gathers read the batch rows of x (192 bits) and y (64) and the int32 index
    // (64) each; w is read twice (96 each); w' is written (96).
    let dram = c.mem.get("DRAM").expect("DRAM");
    assert_eq!(
        (dram.read_bits, dram.write_bits),
        (192 + 64 + 64 * 2 + 96 * 2, 96)
    );
    // SRAM: the gathered x (192) and y (64) are written once, x read twice and y once; z,
    // resid, err each written (64) and read once; grad written and read (96).
    let sram = c.mem.get("SRAM").expect("SRAM");
    assert_eq!(
        (sram.read_bits, sram.write_bits),
        (192 * 2 + 64 + 64 * 3 + 96, 192 + 64 + 64 * 3 + 96)
    );
    assert_eq!(out.tally.full_work.gemms.len(), 2);
    assert_eq!(out.tally.full_work.vector_ops, 2 + 2 + 3);
    // And the value (both rows equal, so any mini-batch): w' = -lr x^T (x w - y) / 2 = lr x.
    let lr = h.get("lr");
    for (w, xi) in out.params[0].iter().zip([1.0, 2.0, 3.0]) {
        assert_eq!(*w, lr * xi);
    }
}

#[test]
fn stochastic_ops_count_random_bits_and_conversions() {
    // lp-sgld-vc on int8: the VC quantizer's draws (Case A: 128 + 64 bits per element when
    // v > d^2/4) and the Gaussian toy's gradient noise (128 bits) plus its rounding (8 bits).
    let a = arch("int8");
    let mut h = Hyper::new(Algo::LpSgldVc);
    for (k, v) in [
        ("epochs", 1.0),
        ("epoch_len", 1.0),
        ("temperature", 1.0),
        ("lr", 1e-2),
    ] {
        h.set(k, v).expect("hyper");
    }
    let out = train(
        Algo::LpSgldVc,
        &ModelShape::Gaussian { dim: 4 },
        None,
        &a,
        &h,
        1,
        &mut |_| {},
    )
    .expect("train");
    // d = 2^-6: d^2/4 = 6.1e-5 < v = 2e-2: Case A for all 4 elements.
    let c = &out.tally.low;
    assert_eq!(out.tally.full, lpsim::arith::ActionCounts::default());
    assert_eq!(c.quantize.get("fixed:wl=8,fl=6/rna"), Some(&4));
    // Gradient noise: 4 x 128; gradient rounding (rne on int8 gradients): 0; VC: 4 x 192.
    assert_eq!(c.random_bits, 4 * 128 + 4 * 192);
}

#[test]
fn executor_checks_feeds() {
    let mac = arch("fp32").formats.mac;
    let mut b = GraphBuilder::new(mac);
    let x = b.add(Op::Input, t("x", &[2], "fp32"), &[]).expect("x");
    b.add(Op::Relu, t("r", &[2], "fp32"), &[x]).expect("r");
    let g = b.build(&["r"]).expect("graph");
    let a = arch("fp32");
    let mut feeds = BTreeMap::new();
    assert!(execute(&g, &a, &feeds, 0, 0).is_err());
    feeds.insert(
        "x".to_string(),
        ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, -1.0, 2.0]).expect("a"),
    );
    assert!(execute(&g, &a, &feeds, 0, 0).is_err());
    feeds.insert(
        "x".to_string(),
        ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0, -1.0]).expect("a"),
    );
    let r = execute(&g, &a, &feeds, 0, 0).expect("run");
    assert_eq!(r.values["r"].as_slice().expect("slice"), &[1.0, 0.0]);
}

#[test]
fn lpsim_graph_prints_dot_with_edge_formats_and_json() {
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"))
            .args([
                "graph",
                "--algo",
                "lp-sgld-vc",
                "--arch",
                "arch/bfp8.json",
                "--model",
                "logistic",
            ])
            .args(["--features", "8", "--classes", "3"])
            .args(extra)
            .output()
            .expect("run lpsim");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let dot = run(&[]);
    assert!(dot.starts_with("digraph"));
    assert!(
        dot.contains("label=\"w0 [8, 3] bfp:wl=8,size=32\""),
        "{dot}"
    );
    assert!(dot.contains("vc_quantize"));
    let json: serde_json::Value = serde_json::from_str(&run(&["--json"])).expect("json");
    let nodes = json["nodes"].as_array().expect("nodes");
    assert!(nodes
        .iter()
        .any(|n| n["name"] == "w0.next" && n["format"] == "bfp:wl=8,size=32"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args([
            "graph",
            "--algo",
            "lp-sgld-vc",
            "--arch",
            "arch/bfp8.json",
            "--set",
            "bits=8",
        ])
        .output()
        .expect("run lpsim");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("allowed: batch"));
}

#[test]
fn gather_picks_rows_checks_shapes_and_indices_and_reads_only_its_rows() {
    let a = arch("fp32");
    let mac = a.formats.mac;
    let build = |out: TensorMeta| {
        let mut b = GraphBuilder::new(mac);
        let data = b
            .add(Op::Input, t("data", &[4, 2], "fp32"), &[])
            .expect("data");
        let idx = b
            .add(Op::Input, t("idx", &[3, 1], "int32"), &[])
            .expect("idx");
        b.add(Op::Gather, out, &[data, idx]).expect("gather");
        b.build(&["rows"])
    };
    let e = build(t("rows", &[3, 3], "fp32")).expect_err("shape");
    assert!(
        matches!(&e, GraphError::Shape { node, .. } if node == "rows"),
        "{e}"
    );
    let e = build(t("rows", &[3, 2], "bf16")).expect_err("format");
    assert!(
        matches!(&e, GraphError::Format { node, .. } if node == "rows"),
        "{e}"
    );
    let g = build(t("rows", &[3, 2], "fp32")).expect("builds");
    let mut feeds = BTreeMap::new();
    let data = array![[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]];
    feeds.insert("data".to_string(), data.into_dyn());
    feeds.insert("idx".to_string(), array![[3.0], [0.0], [3.0]].into_dyn());
    let r = execute(&g, &a, &feeds, 0, 0).expect("runs");
    let want = ArrayD::from_shape_vec(IxDyn(&[3, 2]), vec![6.0, 7.0, 0.0, 1.0, 6.0, 7.0]).unwrap();
    assert_eq!(r.values["rows"], want);
    // Three rows of two fp32 values and three int32 indices are read, not the whole data.
    let read: u64 = r.counts.mem.values().map(|m| m.read_bits).sum();
    assert_eq!(read, 3 * 2 * 32 + 3 * 32);
    feeds.insert("idx".to_string(), array![[4.0], [0.0], [0.0]].into_dyn());
    let e = execute(&g, &a, &feeds, 0, 0).expect_err("index");
    assert!(e.to_string().contains("index 4"), "{e}");
}
