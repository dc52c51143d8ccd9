//! Issue 5: graph building errors, hand-computed action counts of one step, `lpsim graph`.

use std::collections::BTreeMap;
use std::path::Path;

use lpsim::algo::{train, Algo, Hyper, Targets, TrainData};
use lpsim::arch::Architecture;
use lpsim::arith::{ActionCounts, ActionKey};
use lpsim::format::Format;
use lpsim::graph::{execute, GraphBuilder, GraphError, Level, Op, Role, TensorMeta};
use lpsim::model::Model;
use lpsim::round::Rounding;
use ndarray::{array, ArrayD, IxDyn};

fn arch(name: &str) -> Architecture {
    Architecture::load(Path::new(&format!("arch/{name}.json"))).expect("arch")
}

fn t(name: &str, shape: &[usize], f: &str) -> TensorMeta {
    let f: Format = f.parse().expect("format");
    TensorMeta::new(
        name,
        shape,
        f,
        Rounding::NearestEven,
        Level::Inner,
        Role::Activations,
    )
}

/// How many `kind` actions of `text` (`A x B`, `F`, `A x B + C`, `F/R`) `c` counts.
fn count(c: &ActionCounts, kind: &str, text: &str) -> u64 {
    c.get(
        &ActionKey::parse(kind, text)
            .expect("a kind")
            .expect("a key"),
    )
}

/// Whether `c` counts no conversion.
fn no_quantize(c: &ActionCounts) -> bool {
    !c.actions
        .keys()
        .any(|k| matches!(k, ActionKey::Quantize { .. }))
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
    // Duplicate names, missing operands, unknown outputs, a VC quantizer onto E8M0 (no zero).
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
    b.add(
        Op::VcQuantize { v: 1e-3.into() },
        t("v", &[2], "e8m0fnu"),
        &[x],
    )
    .expect("v");
    let e = b.clone().build(&["v"]).expect_err("vc onto e8m0fnu");
    assert!(
        matches!(&e, GraphError::Format { node, .. } if node == "v"),
        "{e}"
    );
    assert!(e.to_string().contains("needs a format with a zero"), "{e}");
    // Floats with a zero, MX and QPyTorch's float are accepted.
    for f in [
        "bf16",
        "e4m3fn",
        "float:e=3,m=4,sub=off",
        "mxfp4",
        "qtorch:e=5,m=2",
    ] {
        let mut b = GraphBuilder::new(mac);
        let x = b.add(Op::Input, t("x", &[2], "fp32"), &[]).expect("x");
        b.add(Op::VcQuantize { v: 1e-3.into() }, t("v", &[2], f), &[x])
            .expect("v");
        b.build(&["v"]).expect(f);
    }
    // QPyTorch's fixed point has no VC counterpart: refused, naming the node and the way out.
    let mut b = GraphBuilder::new(mac);
    let x = b.add(Op::Input, t("x", &[2], "fp32"), &[]).expect("x");
    b.add(
        Op::VcQuantize { v: 1e-3.into() },
        t("v", &[2], "qfixed:wl=8,fl=4"),
        &[x],
    )
    .expect("v");
    let e = b.build(&["v"]).expect_err("vc onto qfixed");
    assert!(
        matches!(&e, GraphError::Format { node, .. } if node == "v"),
        "{e}"
    );
    assert!(e.to_string().contains("use `fixed:`"), "{e}");
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
        augment: None,
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
        &Model::linear(3, 0.0).unwrap(),
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
    assert_eq!(count(c, "fma", "fp32 x fp32 + fp32"), 15);
    assert_eq!(count(c, "add", "fp32"), 2); // resid
    assert_eq!(count(c, "mul", "fp32 x fp32"), 2); // scale by 1/B
    assert!(no_quantize(c), "every output is the unit's own fp32 rne");
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

/// The features are stored in `formats.input`: on the fp32 architecture with FP4 (`e2m1fn`)
/// data, one `lp-sgd` step of the linear model sees `x = [0.3, 1.2, 2.6]` as `[0.5, 1, 3]`
/// (rounded once when loaded, nearest even; not counted: done before training) and its gather
/// reads 2 rows x 3 x 4 bits from DRAM instead of 192; the targets stay `fp32`.
#[test]
fn the_features_are_stored_read_and_priced_in_the_input_format() {
    let overrides: BTreeMap<String, serde_json::Value> = [(
        "formats.input".to_string(),
        serde_json::Value::from("e2m1fn"),
    )]
    .into();
    let a =
        Architecture::load_with_overrides(Path::new("arch/fp32.json"), &overrides).expect("arch");
    let data = TrainData {
        x_train: array![[0.3, 1.2, 2.6], [0.3, 1.2, 2.6]],
        y_train: Targets::Values(array![1.0, 1.0]),
        x_test: array![[0.3, 1.2, 2.6]],
        y_test: Targets::Values(array![1.0]),
        augment: None,
    };
    let mut h = Hyper::new(Algo::LpSgd);
    for (k, v) in [
        ("epochs", 1.0),
        ("epoch_len", 1.0),
        ("batch", 2.0),
        ("decay", 0.0),
    ] {
        h.set(k, v).expect("hyper");
    }
    let out = train(
        Algo::LpSgd,
        &Model::linear(3, 0.0).unwrap(),
        Some(&data),
        &a,
        &h,
        1,
        &mut |_| {},
    )
    .expect("train");
    // w' = -lr x^T (x w - y) / 2 = lr x on the stored x (exact in fp32 for these values).
    let lr = h.get("lr");
    for (w, xi) in out.params[0].iter().zip([0.5, 1.0, 3.0]) {
        assert_eq!(*w, (lr * xi) as f32 as f64);
    }
    assert!(
        no_quantize(&out.tally.low),
        "e2m1fn values are fp32 MAC operands"
    );
    // DRAM reads as in the fp32 hand count (y 64, the index twice 64 each, w twice 96 each),
    // with x's 192 bits down to 24.
    let dram = out.tally.low.mem.get("DRAM").expect("DRAM");
    assert_eq!(dram.read_bits, 24 + 64 + 64 * 2 + 96 * 2);
}

#[test]
fn stochastic_ops_count_random_bits_and_conversions() {
    // lp-sgld-vc on int8 with fixed(8, 6) weights and gradients (rne): the VC quantizer's draws
    // (Case A: 128 + 64 bits per element when v > d^2/4) and the Gaussian toy's gradient noise
    // (32 bits per draw: one word of the counter-based normal generator).
    let overrides: BTreeMap<String, serde_json::Value> = [
        ("formats.weights", "fixed:wl=8,fl=6"),
        ("formats.gradients", "fixed:wl=8,fl=6"),
        ("formats.rounding.gradients", "rne"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
    .collect();
    let a =
        Architecture::load_with_overrides(Path::new("arch/int8.json"), &overrides).expect("arch");
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
        &Model::standard_gaussian(4).unwrap(),
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
    assert_eq!(count(c, "quantize", "fixed:wl=8,fl=6/rna"), 4);
    // Gradient noise: 4 x 32; gradient rounding (rne on int8 gradients): 0; VC: 4 x 192.
    assert_eq!(c.random_bits, 4 * 32 + 4 * 192);
}

#[test]
fn vc_onto_a_float_counts_each_case() {
    // v = 4e-3 on e4m3fn: mu = +-0.3 (step 2^-5) covers |mu| + 4 sqrt(v) with Delta = 2^-4,
    // Delta^2 / 4 < v: Case A (rna + 128 + 64 bits); mu = +-3 (step 2^-2, Delta^2 / 4 = 0.0156
    // > v): Case B (32-bit sr + 64 bits).
    let a = arch("fp32");
    let mut b = GraphBuilder::new(a.formats.mac);
    let x = b.add(Op::Input, t("x", &[4], "fp32"), &[]).expect("x");
    b.add(
        Op::VcQuantize { v: 4e-3.into() },
        t("w", &[4], "e4m3fn"),
        &[x],
    )
    .expect("w");
    let g = b.build(&["w"]).expect("graph");
    let mut feeds = BTreeMap::new();
    let mu = vec![0.3, 3.0, -0.3, -3.0];
    feeds.insert(
        "x".to_string(),
        ArrayD::from_shape_vec(IxDyn(&[4]), mu.clone()).expect("x"),
    );
    let r = execute(&g, &a, &feeds, 3, 0).expect("run");
    let c = &r.counts();
    assert_eq!(count(c, "quantize", "e4m3fn/rna"), 2);
    assert_eq!(count(c, "quantize", "e4m3fn/sr"), 2);
    assert_eq!(c.random_bits, 2 * (128 + 64) + 2 * (32 + 64));
    // Values of e4m3fn near mu: Case A within a few Delta, Case B on a neighbour of q.
    let e4m3: Format = "e4m3fn".parse().expect("format");
    for (&w, &m) in r.values["w"].iter().zip(&mu) {
        assert_eq!(e4m3.quantize_scalar(w, Rounding::NearestEven, 0), Some(w));
        assert!((w - m).abs() <= 0.5, "{w} from {m}");
    }
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
        dot.contains("label=\"w0 [8, 3] bfp:wl=8,size=col\""),
        "{dot}"
    );
    assert!(dot.contains("vc_quantize"));
    let json: serde_json::Value = serde_json::from_str(&run(&["--json"])).expect("json");
    let nodes = json["nodes"].as_array().expect("nodes");
    assert!(nodes
        .iter()
        .any(|n| n["name"] == "w0.next" && n["format"] == "bfp:wl=8,size=col"));
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
    let read: u64 = r.counts().mem.values().map(|m| m.read_bits).sum();
    assert_eq!(read, 3 * 2 * 32 + 3 * 32);
    feeds.insert("idx".to_string(), array![[4.0], [0.0], [0.0]].into_dyn());
    let e = execute(&g, &a, &feeds, 0, 0).expect_err("index");
    assert!(e.to_string().contains("index 4"), "{e}");
}

/// A mini-batch gathered from stored data is re-blocked (a `quantize` node `x.blocks`) exactly
/// when its format's blocks do not stay values of it when rows are picked: bfp8-32's blocks of
/// 32 span rows of 65 features but not rows of 64; bfp8's per-example (row) blocks never do.
#[test]
fn gathered_batches_are_reblocked_only_where_blocks_span_rows() {
    let reblocks = |name: &str, d: usize| {
        let model = Model::logistic(d, 3, 0.0).unwrap();
        let h = Hyper::new(Algo::LpSgd);
        let g = lpsim::algo::sgld::example_graph(Algo::LpSgd, &model, None, &arch(name), &h)
            .expect("graph");
        g.graph
            .inner()
            .node_weights()
            .any(|n| n.out.name == "x.blocks" && n.op == Op::Quantize)
    };
    assert!(reblocks("bfp8-32", 65));
    assert!(!reblocks("bfp8-32", 64));
    assert!(!reblocks("bfp8", 65));
    assert!(!reblocks("int8", 65));
}

#[test]
fn bias_add_adds_the_row_to_every_row_and_counts_like_add() {
    let a = arch("fp32");
    let mut b = GraphBuilder::new(a.formats.mac);
    let x = b.add(Op::Input, t("x", &[2, 3], "fp32"), &[]).expect("x");
    let bias = b.add(Op::Param, t("b", &[1, 3], "fp32"), &[]).expect("b");
    b.add(Op::BiasAdd, t("z", &[2, 3], "bf16"), &[x, bias])
        .expect("z");
    let g = b.build(&["z"]).expect("graph");
    let mut feeds = BTreeMap::new();
    let xv = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    feeds.insert("x".to_string(), xv.clone().into_dyn());
    // 3 + 2^-9 and 6 + 2^-9 are not bf16 values: each sum is rounded once, to nearest-even.
    let bv = array![[0.5, -2.0, 1.0 / 512.0]];
    feeds.insert("b".to_string(), bv.into_dyn());
    let res = execute(&g, &a, &feeds, 0, 0).expect("step");
    let want = array![[1.5, 0.0, 3.0], [4.5, 3.0, 6.0]].into_dyn();
    assert_eq!(res.values["z"], want);
    assert_eq!(count(&res.counts(), "add", "fp32"), 6);
    assert_eq!(count(&res.counts(), "quantize", "bf16/rne"), 6);
    assert_eq!(res.work().vector_ops, 6);
    // The bias must be one row as wide as the input.
    for shape in [[2, 3], [1, 2]] {
        let mut b = GraphBuilder::new(a.formats.mac);
        let x = b.add(Op::Input, t("x", &[2, 3], "fp32"), &[]).expect("x");
        let bias = b.add(Op::Param, t("b", &shape, "fp32"), &[]).expect("b");
        b.add(Op::BiasAdd, t("z", &[2, 3], "fp32"), &[x, bias])
            .expect("z");
        let e = b.build(&["z"]).expect_err("bias shape");
        assert!(
            matches!(&e, GraphError::Shape { node, .. } if node == "z"),
            "{e}"
        );
    }
}

/// A per-step scalar is read from the step's feeds: the same result as the constant, an error
/// naming it when missing or out of its op's range.
#[test]
fn per_step_scalars_are_fed_with_the_step() {
    use lpsim::graph::{ExecError, Scalar};
    let fp32 = arch("fp32");
    let graph = |std: Scalar| {
        let mut b = GraphBuilder::new(fp32.formats.mac);
        let x = b.add(Op::Input, t("x", &[4], "fp32"), &[]).expect("x");
        b.add(Op::GaussianNoise { std }, t("y", &[4], "fp32"), &[x])
            .expect("noise");
        b.build(&["y"]).expect("graph")
    };
    let x = ArrayD::from_shape_vec(IxDyn(&[4]), vec![1.0, -2.0, 0.5, 0.0]).expect("x");
    let mut feeds = BTreeMap::from([("x".to_string(), x)]);
    let constant = execute(&graph(Scalar::Const(0.25)), &fp32, &feeds, 3, 7).expect("const");
    let fed = graph(Scalar::Input("noise_std"));
    let missing = execute(&fed, &fp32, &feeds, 3, 7).unwrap_err();
    assert_eq!(missing, ExecError::MissingFeed("noise_std".into()));
    feeds.insert("noise_std".into(), ndarray::arr1(&[0.25]).into_dyn());
    let r = execute(&fed, &fp32, &feeds, 3, 7).expect("fed");
    assert_eq!(r.values["y"], constant.values["y"]);
    assert_ne!(r.values["y"], feeds["x"], "noise was added");
    for bad in [vec![-0.25], vec![f64::NAN], vec![0.1, 0.2]] {
        feeds.insert("noise_std".into(), ndarray::arr1(&bad).into_dyn());
        let e = execute(&fed, &fp32, &feeds, 3, 7).unwrap_err().to_string();
        assert!(e.starts_with("node `y`: scalar `noise_std` = "), "{e}");
        assert!(e.ends_with("a finite number >= 0"), "{e}");
    }
    assert_eq!(
        fed.scalar_inputs().into_iter().collect::<Vec<_>>(),
        ["noise_std"]
    );
    // An element of a vector feed (one scale per tensor): in range, or an error naming it.
    let element = graph(Scalar::Element("stds", 2));
    feeds.insert("stds".into(), ndarray::arr1(&[9.0, 9.0, 0.25]).into_dyn());
    let r = execute(&element, &fp32, &feeds, 3, 7).expect("element");
    assert_eq!(r.values["y"], constant.values["y"]);
    feeds.insert("stds".into(), ndarray::arr1(&[0.25, 0.25]).into_dyn());
    let e = execute(&element, &fp32, &feeds, 3, 7)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("node `y`: scalar `stds` = "), "{e}");
}

/// HALP's inner step on a linear model reads its code scale as per-epoch scalars: one graph
/// serves the run, and `lpsim graph` gives their values at the first epoch (scale 1).
#[test]
fn halps_inner_step_takes_its_scale_as_scalars() {
    let model = Model::linear(5, 0.0).unwrap();
    let mut h = Hyper::new(Algo::Halp);
    h.set("lr", 0.01).expect("lr");
    let g = lpsim::algo::step_graph(Algo::Halp, &model, None, &arch("int8"), &h).expect("graph");
    let scalars: BTreeMap<&str, f64> = g.scalars.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    assert_eq!(
        scalars,
        BTreeMap::from([("lr_over_scale", 0.01), ("scale", 1.0)])
    );
    assert_eq!(
        g.graph.scalar_inputs().into_iter().collect::<Vec<_>>(),
        ["lr_over_scale", "scale"]
    );
}
