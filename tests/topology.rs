//! SCALE-Sim topology files (`lpsim cost --topology`): the reader, the conv-to-GEMM lowering
//! against SCALE-Sim v3.0.0 itself, and the command.

use std::path::{Path, PathBuf};

use lpsim::arch::{Architecture, Dataflow};
use lpsim::cost::topology::{parse, TopologyKind, MAX_GEMMS};
use lpsim::cost::{gemm_cycles, price_gemms, price_topology, read_topology, Gemm};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn arch_with(rows: u64, cols: u64, dataflow: Dataflow) -> Architecture {
    let mut a = Architecture::load(&root().join("arch/int8.json")).unwrap();
    a.compute.array.rows = rows;
    a.compute.array.cols = cols;
    a.compute.array.dataflow = dataflow;
    a
}

fn dataflow(s: &str) -> Dataflow {
    match s {
        "os" => Dataflow::Os,
        "ws" => Dataflow::Ws,
        "is" => Dataflow::Is,
        other => panic!("dataflow {other}"),
    }
}

/// One row of `scalesim_topology.csv`.
struct Row {
    topology: String,
    rows: u64,
    cols: u64,
    dataflow: String,
    name: String,
    cycles: u64,
    stall: u64,
    util_pct: f64,
    mapping_pct: f64,
}

fn reference() -> Vec<Row> {
    let text = include_str!("data/scalesim_topology.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "topology,rows,cols,dataflow,layer,name,total_cycles,stall_cycles,overall_util_pct,\
         mapping_efficiency_pct,compute_util_pct"
    );
    lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            Row {
                topology: c[0].into(),
                rows: c[1].parse().unwrap(),
                cols: c[2].parse().unwrap(),
                dataflow: c[3].into(),
                name: c[5].into(),
                cycles: c[6].parse().unwrap(),
                stall: c[7].parse().unwrap(),
                util_pct: c[8].parse().unwrap(),
                mapping_pct: c[9].parse().unwrap(),
            }
        })
        .collect()
}

/// `tests/data/scalesim_topology.csv` was produced by SCALE-Sim 3.0.0 itself reading the same
/// topology files (`tests/data/scalesim_topology.py`): for every file, array shape and dataflow,
/// each layer's compute cycles, utilization and mapping efficiency must agree exactly with
/// SCALE-Sim's (a depthwise layer is SCALE-Sim's one layer per channel, summed), and the
/// topology's total cycles are the sum of SCALE-Sim's layers.
#[test]
fn topology_cycles_match_scalesim_reference_table() {
    let rows = reference();
    let mut groups: Vec<(String, u64, u64, String)> = Vec::new();
    for r in &rows {
        let key = (r.topology.clone(), r.rows, r.cols, r.dataflow.clone());
        if groups.last() != Some(&key) {
            groups.push(key);
        }
    }
    // 4 files x 4 arrays x 3 dataflows.
    assert_eq!(groups.len(), 48);
    let mut layers_checked = 0;
    let mut dataflows_seen = std::collections::BTreeSet::new();
    for (file, r, c, df) in &groups {
        let topology = read_topology(&root().join(file)).unwrap();
        let arch = arch_with(*r, *c, dataflow(df));
        let priced = price_topology(&arch, &topology).unwrap();
        let mut ss = rows
            .iter()
            .filter(|x| (&x.topology, x.rows, x.cols, &x.dataflow) == (file, *r, *c, df));
        let mut total = 0;
        for layer in &priced.layers {
            let mine: Vec<&Row> = ss.by_ref().take(layer.count as usize).collect();
            assert_eq!(mine.len() as u64, layer.count, "{file} {layer:?}");
            for (i, x) in mine.iter().enumerate() {
                let want = if layer.count == 1 {
                    layer.name.clone()
                } else {
                    format!("{}Channel_{i}", layer.name)
                };
                assert_eq!(x.name, want, "{file} {r}x{c} {df}");
                assert_eq!(x.stall, 0);
                assert_eq!(x.cycles, mine[0].cycles, "channels are alike");
            }
            let cycles: u64 = mine.iter().map(|x| x.cycles).sum();
            let rep = &layer.report;
            let what = format!("{file} {r}x{c} {df} layer {}", layer.name);
            assert_eq!(rep.cycles, cycles, "{what}");
            assert_eq!(
                rep.macs,
                layer.m * layer.n * layer.k * layer.count,
                "{what}"
            );
            // SCALE-Sim's overall utilization: MACs / (cycles x rows x cols).
            let util = rep.macs as f64 / (rep.cycles * r * c) as f64 * 100.0;
            assert!((util - mine[0].util_pct).abs() < 1e-9, "{what}: {util}");
            let eff = rep.mapping_efficiency * 100.0;
            assert!((eff - mine[0].mapping_pct).abs() < 1e-9, "{what}: {eff}");
            total += cycles;
            layers_checked += 1;
        }
        assert!(ss.next().is_none(), "{file}: SCALE-Sim has more layers");
        assert_eq!(priced.total.cycles, total, "{file} {r}x{c} {df}");
        dataflows_seen.insert(df.clone());
    }
    assert_eq!(dataflows_seen.len(), 3);
    assert_eq!(layers_checked, 12 * (10 + 3 + 5 + 10));
}

/// The lowering and SCALE-Sim's closed form worked by hand on a few layers, every dataflow.
#[test]
fn closed_form_by_hand() {
    let t = read_topology(&root().join("topologies/lenet.csv")).unwrap();
    assert_eq!(t.kind, TopologyKind::Conv);
    // Conv1: 32x32x1 input, six 5x5 filters, stride 1: 28 x 28 = 784 pixels, window 25.
    let conv1 = t.layers[0].gemm;
    assert_eq!(
        conv1,
        Gemm {
            m: 784,
            n: 6,
            k: 25
        }
    );
    let cycles = |rows, cols, df, g| {
        gemm_cycles(&arch_with(rows, cols, df).compute.array, g)
            .unwrap()
            .cycles
    };
    // os: Sr = 784, Sc = 6, T = 25 -> 25 x 1 folds of 25 + 32 + 32 - 2 = 87 cycles, minus 1.
    assert_eq!(cycles(32, 32, Dataflow::Os, conv1), 25 * 87 - 1);
    // ws: Sr = 25, Sc = 6, T = 784 -> 1 fold of 2 x 32 + 32 + 784 - 2 = 878.
    assert_eq!(cycles(32, 32, Dataflow::Ws, conv1), 878 - 1);
    // is: Sr = 25, Sc = 784, T = 6 -> 25 folds of 64 + 32 + 6 - 2 = 100.
    assert_eq!(cycles(32, 32, Dataflow::Is, conv1), 25 * 100 - 1);

    let t = read_topology(&root().join("tests/data/topology/conv_mix.csv")).unwrap();
    // wide_s2: 11 x 17 input, 3 x 5 filter, 3 channels, 20 filters, stride 2:
    // E = (11 - 3) / 2 + 1 = 5, F = (17 - 5) / 2 + 1 = 7; M = 35, N = 20, K = 45.
    let wide = &t.layers[1];
    assert_eq!(wide.name, "wide_s2");
    assert_eq!(wide.conv.unwrap().ofmap(), (5, 7));
    assert_eq!(
        wide.gemm,
        Gemm {
            m: 35,
            n: 20,
            k: 45
        }
    );
    // 8 x 8 array. os: ceil(35/8) x ceil(20/8) = 15 folds of 45 + 14 = 59.
    assert_eq!(cycles(8, 8, Dataflow::Os, wide.gemm), 15 * 59 - 1);
    // ws: ceil(45/8) x ceil(20/8) = 18 folds of 16 + 8 + 35 - 2 = 57.
    assert_eq!(cycles(8, 8, Dataflow::Ws, wide.gemm), 18 * 57 - 1);
    // is: ceil(45/8) x ceil(35/8) = 30 folds of 16 + 8 + 20 - 2 = 42.
    assert_eq!(cycles(8, 8, Dataflow::Is, wide.gemm), 30 * 42 - 1);
    // nx1_s3: 16 x 10 input, 4 x 1 filter, stride 3: E = 12 / 3 + 1 = 5, F = 9 / 3 + 1 = 4.
    let nx1 = &t.layers[3];
    assert_eq!(nx1.gemm, Gemm { m: 20, n: 9, k: 8 });
    // stride_gt_filter: 13 x 13 input, 2 x 2 filter, stride 4. SCALE-Sim counts
    // ceil((13 - 2) / 4) + 1 = 4 rows and columns (a convolution without padding has 3: the
    // last window runs past the edge); its utilization in the reference table (35.29 % on
    // 8 x 8, os) is 16 x 6 x 12 MACs over its 51 cycles, so it does run 16 pixels.
    let sgf = &t.layers[9];
    assert_eq!(sgf.conv.unwrap().ofmap(), (4, 4));
    assert_eq!(sgf.gemm, Gemm { m: 16, n: 6, k: 12 });
    // whole_map: the filter covers the input, one output pixel.
    assert_eq!(
        t.layers[7].gemm,
        Gemm {
            m: 1,
            n: 11,
            k: 120
        }
    );
    // DP_depthwise: 5 channels, each its own GEMM of 36 pixels x 1 filter x 3 x 3 window.
    let dp = &t.layers[8];
    assert_eq!((dp.gemm, dp.count), (Gemm { m: 36, n: 1, k: 9 }, 5));
    // os on 8 x 8: ceil(36/8) = 5 folds of 9 + 14 = 23 per channel.
    let arch = arch_with(8, 8, Dataflow::Os);
    let priced = price_topology(&arch, &t).unwrap();
    assert_eq!(priced.layers[8].report.cycles, 5 * (5 * 23 - 1));
    // The total is every GEMM of the file priced one after another.
    let all = price_gemms(&arch, &t.gemms()).unwrap();
    assert_eq!(priced.total, all);
    assert_eq!(t.gemms().len(), 9 + 5);
}

/// Every broken file is refused with its file, line and what is wrong.
#[test]
fn broken_topologies_are_refused_with_line_and_column() {
    const CONV: &str = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, \
                        Channels, Num Filter, Strides,\n";
    const GEMM: &str = "Layer, M, N, K,\n";
    let conv = |rows: &str| format!("{CONV}{rows}");
    let cases: Vec<(String, &str)> =
        vec![
        ("".into(), "net.csv:1: empty file: expected a SCALE-Sim topology header"),
        (
            "name, a, b\nx, 1, 2\n".into(),
            "net.csv:1: expected a SCALE-Sim topology header, `Layer name, IFMAP Height, IFMAP \
             Width, Filter Height, Filter Width, Channels, Num Filter, Strides,` (conv) or \
             `Layer, M, N, K,` (GEMM)",
        ),
        (
            "Layer name, IFMAP Height, IFMAP Width, Filter Width\n".into(),
            "net.csv:1: column 4 of the header is `Filter Width`, expected `Filter Height`",
        ),
        (
            "Layer, M, N\n".into(),
            "net.csv:1: the header has 3 columns, expected 4",
        ),
        (
            "Layer, M, N, K, Batch,\n".into(),
            "net.csv:1: column 5 of the header is `Batch`: after `K` only `Sparsity` may follow",
        ),
        (CONV.into(), "net.csv:1: no layers after the header"),
        (
            conv("c1, 8, 8, 3, 3, 1, 4,\n"),
            "net.csv:2: 7 fields, expected 8 (Layer name, IFMAP Height",
        ),
        (
            conv("c1, 8, 8, 3, 3, 1, 4, 1, 1:1\n"),
            "net.csv:2: 9 fields, expected 8",
        ),
        (
            conv("c1, 8, 8, 3, 3, 1, 4, 1,#dw\n"),
            "net.csv:2: 9 fields, expected 8",
        ),
        (
            conv("c1, 8, 8, 3, 3, 1, 4, 1,\n\nc2, 8, 0, 3, 3, 1, 4, 1,\n"),
            "net.csv:4: column 3 `IFMAP Width` = `0`: expected a whole number >= 1",
        ),
        (
            conv("c1, 8, 8, 3, 3, 1, 4, 0,\n"),
            "net.csv:2: column 8 `Strides` = `0`: expected a whole number >= 1",
        ),
        (
            conv("c1, 8, 8, 3, 3, 1.5, 4, 1,\n"),
            "net.csv:2: column 6 `Channels` = `1.5`: expected a whole number >= 1",
        ),
        (
            conv("c1, 8, 8, 3, 3, -1, 4, 1,\n"),
            "net.csv:2: column 6 `Channels` = `-1`: expected a whole number >= 1",
        ),
        (
            conv("c1, 8, 8, 3, 3, 1, 99999999999999999999, 1,\n"),
            "net.csv:2: column 7 `Num Filter` = `99999999999999999999`: expected a whole number",
        ),
        (
            conv("c1, 2, 8, 3, 3, 1, 4, 1,\n"),
            "net.csv:2: column 4 `Filter Height` = 3 is larger than column 2 `IFMAP Height` = 2 \
             (no padding: pad the IFMAP in the file)",
        ),
        (
            conv("c1, 8, 4, 3, 5, 1, 4, 1,\n"),
            "net.csv:2: column 5 `Filter Width` = 5 is larger than column 3 `IFMAP Width` = 4",
        ),
        (
            conv(", 8, 8, 3, 3, 1, 4, 1,\n"),
            "net.csv:2: column 1 `Layer name` is empty",
        ),
        (
            conv("c1, 8, 8, 3, 3, 4294967296, 4, 1,\nc2, 8, 8, 8, 8, 1152921504606846976, 1, 1,\n"),
            "net.csv:3: layer `c2`: the window Filter Height x Filter Width x Channels does not \
             fit in 64 bits",
        ),
        (
            conv(&format!("DP1, 8, 8, 3, 3, {}, 1, 1,\n", MAX_GEMMS + 1)),
            "net.csv:2: the topology expands to more than 65536 GEMMs (a depthwise `DP` layer \
             is one GEMM per channel)",
        ),
        (
            format!("{GEMM}g, 4, 5\n"),
            "net.csv:2: 3 fields, expected 4 (Layer, M, N, K)",
        ),
        (
            format!("{GEMM}g, 4, 5, 0,\n"),
            "net.csv:2: column 4 `K` = `0`: expected a whole number >= 1",
        ),
        (
            "Layer, M, N, K, Sparsity,\ng, 4, 5, 6, 2:4,\n".into(),
            "net.csv:2: column 5 `Sparsity` = `2:4`: lpsim prices dense layers only; use `1:1` \
             or leave the column out",
        ),
        (
            "Layer, M, N, K, Sparsity,\ng, 4, 5, 6, dense,\n".into(),
            "net.csv:2: column 5 `Sparsity` = `dense`: expected N:M with whole numbers",
        ),
        (
            format!("{GEMM}g, 4, 5, 6, 7, 8\n"),
            "net.csv:2: 6 fields, expected 4",
        ),
        (
            // An unclosed quote runs to the end: the record is named by its last line.
            format!("{GEMM}g,\"4, 5, 6\n"),
            "net.csv:3: 2 fields, expected 4",
        ),
    ];
    for (text, want) in &cases {
        let err = parse(Path::new("net.csv"), text.as_bytes())
            .map(|t| format!("parsed: {t:?}"))
            .unwrap_or_else(|e| e.to_string());
        assert!(err.starts_with(want), "{text:?}\n got: {err}\nwant: {want}");
    }
    let bad = parse(
        Path::new("net.csv"),
        &b"Layer, M, N, K,\ng, 4, \xff, 6,\n"[..],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(bad, "net.csv:2: column 3 is not valid UTF-8");

    // What is accepted: trailing commas or not, blank lines, spaces, header names in any case,
    // a dense sparsity column.
    let ok = parse(
        Path::new("net.csv"),
        "\n layer NAME ,ifmap height,IFMAP Width,Filter Height,Filter Width,Channels,\
         Num Filter,Strides,sparsity\n\nc1,8,8,3,3,1,4,1\nc2, 8, 8, 3, 3, 1, 4, 1, 4:4,\n"
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(ok.layers.len(), 2);
    assert_eq!((ok.layers[0].line, ok.layers[1].line), (4, 5));
}

fn lpsim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = lpsim(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `lpsim cost --topology`: each layer's report is the `--gemm` report of its GEMM, the total
/// adds the layers, `--set` applies, the text table lists the layers; `--gemm` with
/// `--topology` and a broken file are refused.
#[test]
fn cli_cost_topology() {
    let base = [
        "cost",
        "--arch",
        "arch/int8.json",
        "--topology",
        "topologies/resnet_cifar_small.csv",
    ];
    let mut args = base.to_vec();
    args.push("--json");
    let v = json(&args);
    assert_eq!(v["kind"], "conv");
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 10);
    let mut cycles = 0;
    for l in layers {
        let gemm = format!("{},{},{}", l["m"], l["n"], l["k"]);
        let one = json(&[
            "cost",
            "--arch",
            "arch/int8.json",
            "--gemm",
            &gemm,
            "--json",
        ]);
        assert_eq!(l["report"], one["total"], "{}", l["name"]);
        assert_eq!(l["count"], 1);
        cycles += l["report"]["cycles"].as_u64().unwrap();
    }
    assert_eq!(layers[3]["name"], "Block2_a");
    // (34 - 3) / 2 + 1 = 16: 256 pixels, 32 filters, a 3 x 3 x 16 window.
    assert_eq!(
        (&layers[3]["m"], &layers[3]["n"], &layers[3]["k"]),
        (&256.into(), &32.into(), &144.into())
    );
    assert_eq!(layers[3]["line"], 5);
    assert_eq!(v["total"]["cycles"], cycles);

    let mut ws = args.clone();
    ws.extend(["--set", "compute.array.dataflow=ws"]);
    let ws = json(&ws);
    // The reference table has this file on SCALE-Sim: Conv1 on 32 x 32, ws.
    let want = reference()
        .into_iter()
        .find(|r| {
            r.topology.ends_with("resnet_cifar_small.csv")
                && (r.rows, r.cols, r.dataflow.as_str(), r.name.as_str()) == (32, 32, "ws", "Conv1")
        })
        .unwrap();
    assert_eq!(ws["layers"][0]["report"]["cycles"], want.cycles);
    assert_ne!(ws["total"]["cycles"], v["total"]["cycles"]);

    let text = String::from_utf8(lpsim(&base).stdout).unwrap();
    assert!(text.contains("layer"), "{text}");
    assert!(text.contains(" 4  Block2_a "), "{text}");
    assert!(
        text.contains("total of 10 layers (10 GEMMs):\narch          int8"),
        "{text}"
    );

    let gemm = json(&[
        "cost",
        "--arch",
        "arch/int8.json",
        "--topology",
        "tests/data/topology/gemm_mix.csv",
        "--json",
    ]);
    assert_eq!(gemm["kind"], "gemm");
    assert_eq!(gemm["layers"][1]["name"], "proj");
    assert_eq!(
        (&gemm["layers"][1]["m"], &gemm["layers"][1]["k"]),
        (&7.into(), &19.into())
    );

    let both = lpsim(&[
        "cost",
        "--arch",
        "arch/int8.json",
        "--topology",
        "topologies/lenet.csv",
        "--gemm",
        "1,2,3",
    ]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let neither = lpsim(&["cost", "--arch", "arch/int8.json"]);
    assert_eq!(neither.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&neither.stderr).contains("--gemm"));

    let broken = "tests/data/topology_broken/zero_n.csv";
    let out = lpsim(&["cost", "--arch", "arch/int8.json", "--topology", broken]);
    assert_eq!(out.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains(&format!(
            "{broken}:2: column 3 `N` = `0`: expected a whole number >= 1"
        )),
        "{msg}"
    );
    let huge = lpsim(&[
        "cost",
        "--arch",
        "arch/int8.json",
        "--topology",
        "tests/data/topology_broken/huge_gemm.csv",
    ]);
    assert_eq!(huge.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&huge.stderr);
    assert!(
        msg.contains(
            "layer `big` (line 3): M N K multiply-accumulates of GEMM 4294967296x4294967296x1 \
             (M,N,K) does not fit in 64 bits"
        ),
        "{msg}"
    );
    let missing = lpsim(&[
        "cost",
        "--arch",
        "arch/int8.json",
        "--topology",
        "no/such.csv",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("no/such.csv: cannot read the topology file"));
}
