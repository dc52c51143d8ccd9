//! The cost model: SCALE-Sim cycles, Horowitz energies, linearity, and `lpsim cost`.

use std::path::Path;

use lpsim::arch::{Architecture, Array, Dataflow};
use lpsim::arith::{gemm, ActionCounts, MacConfig};
use lpsim::cost::energy::{Action, HOROWITZ45_ENERGY};
use lpsim::cost::{gemm_counts, gemm_cycles, price, price_gemm, Gemm, Work};
use lpsim::round::{RandomStream, Rounding};
use lpsim::Format;
use ndarray::Array2;

fn arch(name: &str) -> Architecture {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Architecture::load(&root.join(format!("arch/{name}.json"))).unwrap()
}

fn f(s: &str) -> Format {
    s.parse().unwrap()
}

/// `tests/data/scalesim_cycles.csv` was produced by SCALE-Sim 3.0.0 itself
/// (`tests/data/scalesim_cycles.py`); every row must agree exactly.
#[test]
fn cycles_match_scalesim_reference_table() {
    let text = include_str!("data/scalesim_cycles.csv");
    let mut rows = 0;
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        let int = |i: usize| c[i].parse::<u64>().unwrap();
        let dataflow = match c[2] {
            "os" => Dataflow::Os,
            "ws" => Dataflow::Ws,
            _ => Dataflow::Is,
        };
        let array = Array {
            rows: int(0),
            cols: int(1),
            dataflow,
        };
        let g = Gemm {
            m: int(3),
            n: int(4),
            k: int(5),
        };
        let got = gemm_cycles(&array, g).unwrap();
        assert_eq!(got.cycles, int(6), "{line}");
        let util = g.macs().unwrap() as f64 / (got.cycles * array.rows * array.cols) as f64 * 100.0;
        assert!((util - c[8].parse::<f64>().unwrap()).abs() < 1e-9, "{line}");
        let eff = got.mapping_efficiency * 100.0;
        assert!((eff - c[9].parse::<f64>().unwrap()).abs() < 1e-9, "{line}");
        rows += 1;
    }
    assert_eq!(rows, 30);
}

#[test]
fn price_gemm_reports_scalesim_cycles_and_utilization() {
    let a = arch("fp32");
    let r = price_gemm(
        &a,
        Gemm {
            m: 128,
            n: 256,
            k: 512,
        },
    )
    .unwrap();
    assert_eq!(r.cycles, 18367);
    assert_eq!(r.stall_cycles, 0);
    assert_eq!(r.total_cycles, 18367);
    assert!((r.utilization * 100.0 - 89.20346273207383).abs() < 1e-9);
    assert!((r.time_ns - 18367.0).abs() < 1e-9);
    let sum: f64 = r.breakdown.values().sum();
    assert!((sum - r.energy_pj).abs() < 1e-6 * r.energy_pj);
    assert!(r.area_mm2 > 0.0);
}

#[test]
fn slow_memory_adds_stall_cycles() {
    let mut a = arch("fp32");
    a.memory[0].bandwidth_bits_per_cycle = 32.0;
    let g = Gemm {
        m: 64,
        n: 64,
        k: 64,
    };
    let r = price_gemm(&a, g).unwrap();
    // DRAM: A and B read, C written once, 32 bits each, at 32 bits per cycle.
    let dram = 3 * 64 * 64;
    assert_eq!(r.cycles, 503);
    assert_eq!(r.total_cycles, dram);
    assert_eq!(r.stall_cycles, dram - 503);
}

#[test]
fn horowitz_mac_energies() {
    let t = &HOROWITZ45_ENERGY;
    let int8 = t.mac(&f("int8"), &f("int8"), &f("int8"));
    let fp32 = t.mac(&f("fp32"), &f("fp32"), &f("fp32"));
    assert!((int8 - 0.23).abs() < 1e-12, "{int8}");
    assert!((fp32 - 4.6).abs() < 1e-12, "{fp32}");
    let fp16 = t.mac(&f("fp16"), &f("fp16"), &f("fp16"));
    let fp8 = t.mac(&f("e4m3fn"), &f("e4m3fn"), &f("e4m3fn"));
    let bf16 = t.mac(&f("bf16"), &f("bf16"), &f("bf16"));
    assert!(int8 < fp16 && fp8 < fp16 && fp16 < fp32, "{fp8} {fp16}");
    assert!(bf16 < fp32 && fp8 < bf16);
    assert_eq!(
        Action::parse("fma", "int8 x int8 + int8")
            .unwrap()
            .default_pj(),
        int8
    );
}

#[test]
fn energy_is_linear_in_counts() {
    let a = arch("int8");
    let g = Gemm { m: 16, n: 8, k: 4 };
    let once = gemm_counts(&a, g).unwrap();
    let mut twice = once.clone();
    twice.merge(&once);
    let work = Work {
        gemms: vec![g],
        vector_ops: 0,
    };
    let e1 = price(&a, &once, &work).unwrap().energy_pj;
    let e2 = price(&a, &twice, &work).unwrap().energy_pj;
    assert!((e2 - 2.0 * e1).abs() < 1e-9 * e1);

    // One action priced alone is count x energy per action.
    let mut c = ActionCounts::new();
    c.record_fma(&f("int8"), &f("int8"), &f("int8"), 1000);
    let r = price(&a, &c, &Work::default()).unwrap();
    assert!((r.energy_pj - 230.0).abs() < 1e-9);
    assert!((r.by_action["fma"] - 230.0).abs() < 1e-9);
}

/// A `rows x cols` matrix of values of `f`: a fixed pseudo-random sequence in [-1, 1), rounded
/// to `f` (small, so that no accumulator of the grid below overflows).
fn values(f: &Format, rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    Array2::from_shape_fn((rows, cols), |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        f.quantize_scalar(u, Rounding::NearestEven, 0)
            .expect("scalar") as f32
    })
}

/// One counting model (issue 13 item 5): for every accumulation order, fused or unfused, exact
/// or rounded products, deterministic or stochastic accumulators and several formats, the
/// counts `lpsim cost` prices for a GEMM it does not run are exactly the counts the emulated
/// GEMM reports, plus the conversion of the outputs to the activations format (done after the
/// MAC kernel, by the architecture) and the memory traffic (SCALE-Sim's; the emulator counts
/// none). Compared as whole `ActionCounts`, random bits included.
#[test]
fn cost_counts_are_what_the_emulated_gemm_counts() {
    let mut arch = arch("bf16");
    let orders = [
        "sequential",
        "pairwise",
        "chunk=1",
        "chunk=3",
        "chunk=8",
        "native",
    ];
    // (fused, product format)
    let units = [
        (true, None),
        (false, None),
        (false, Some("bf16")),
        (false, Some("e5m2")),
    ];
    let roundings = ["rne", "rtz", "sr", "sr:bits=8", "sr:bits=3"];
    let accs = ["fp32", "fp16", "bf16", "fixed:wl=24,fl=12"];
    let inputs = [("bf16", "bf16"), ("e4m3fn", "e5m2"), ("int8", "fp16")];
    let shapes = [(1, 1, 1), (2, 3, 5), (3, 2, 16), (1, 4, 9)];
    let mut compared = 0;
    for order in orders {
        for (fused, product) in units {
            for rounding in roundings {
                for acc in accs {
                    for (a_f, b_f) in inputs {
                        let cfg = MacConfig::new(
                            f(a_f),
                            f(b_f),
                            product.map(f),
                            fused,
                            f(acc),
                            rounding.parse().unwrap(),
                            order.parse().unwrap(),
                        )
                        .unwrap();
                        arch.formats.mac = cfg;
                        for (m, n, k) in shapes {
                            let a = values(&cfg.a, m, k, compared);
                            let b = values(&cfg.b, k, n, compared + 1);
                            let stream = RandomStream::new(compared, 0);
                            let out = gemm(&cfg, a.view(), b.view(), stream).unwrap();
                            let mut want = out.counts;
                            assert_eq!((want.overflows, want.saturations, want.wraps), (0, 0, 0));
                            let outputs = (m * n) as u64;
                            let f = &arch.formats;
                            if cfg.acc != f.activations {
                                want.record_quantize(
                                    &f.activations,
                                    f.rounding.activations,
                                    outputs,
                                );
                            }
                            let g = Gemm {
                                m: m as u64,
                                n: n as u64,
                                k: k as u64,
                            };
                            let mut got = gemm_counts(&arch, g).unwrap();
                            assert!(!got.mem.is_empty());
                            got.mem.clear();
                            assert_eq!(got, want, "{cfg:?} {m}x{n}x{k}");
                            compared += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(compared, 6 * 4 * 5 * 4 * 3 * 4);
}

/// The example: a bf16 architecture with an `sr:bits=8` accumulator prices the
/// 2,097,152 random bits (64^3 roundings of 8 bits) that `lpsim gemm` reports for the same MAC,
/// at `rng_bit` each, and the random-number source (256 bits per cycle) sets the cycles.
#[test]
fn cli_cost_prices_the_random_bits_lpsim_gemm_counts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |args: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let bf16 = root.join("arch/bf16.json");
    let cost = run(&[
        "cost",
        "--arch",
        bf16.to_str().unwrap(),
        "--gemm",
        "64,64,64",
        "--set",
        "formats.mac.acc_rounding=sr:bits=8",
        "--json",
    ]);
    let emulated = run(&[
        "gemm",
        "--m",
        "64",
        "--n",
        "64",
        "--k",
        "64",
        "--a-format",
        "bf16",
        "--b-format",
        "bf16",
        "--fused",
        "--acc",
        "fp32",
        "--acc-rounding",
        "sr:bits=8",
        "--json",
    ]);
    let bits = 64 * 64 * 64 * 8;
    assert_eq!(emulated["counts"]["random_bits"], bits);
    assert_eq!(
        emulated["counts"]["fma"]["bf16 x bf16 + fp32"],
        64 * 64 * 64
    );
    let t = &cost["total"];
    let rng = t["breakdown"]["rng"].as_f64().unwrap();
    assert!(
        (rng - bits as f64 * HOROWITZ45_ENERGY.reg_bit).abs() < 1e-9 * rng,
        "{rng}"
    );
    assert_eq!(t["rng_cycles"], bits / 256);
    assert_eq!(t["total_cycles"], bits / 256);
}

#[test]
fn overrides_replace_defaults_and_sr_is_charged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("arch/fp32.json")).unwrap();
    let text = text.replace(
        "\"overrides\": {}\n  },\n  \"area\"",
        "\"overrides\": {\"fma:int8 x int8 + int8\": 1.5, \"rng_bit\": 0.5}\n  },\n  \"area\"",
    );
    let a = Architecture::from_json_str("x.json", &text).unwrap();
    let mut c = ActionCounts::new();
    c.record_fma(&f("int8"), &f("int8"), &f("int8"), 10);
    c.record_quantize(&f("int8"), "sr:bits=8".parse().unwrap(), 4);
    let r = price(&a, &c, &Work::default()).unwrap();
    assert!((r.breakdown["compute"] - 15.0).abs() < 1e-12);
    assert!((r.breakdown["rng"] - 4.0 * 8.0 * 0.5).abs() < 1e-12);
    // Increment adder (8 bits) + the 8-bit SR adder per rounded value.
    assert!((r.breakdown["rounding"] - 4.0 * 2.0 * 0.03).abs() < 1e-12);
    assert_eq!(r.rng_cycles, 1);
}

#[test]
fn narrower_formats_cost_less_on_the_same_gemm() {
    let g = Gemm {
        m: 128,
        n: 256,
        k: 512,
    };
    let e = |n: &str| price_gemm(&arch(n), g).unwrap().energy_pj;
    assert!(e("fp8") < e("bf16") && e("bf16") < e("fp32"));
    assert!(e("int8") < e("bf16"));
}

#[test]
fn unknown_level_is_an_error() {
    let a = arch("fp32");
    let mut c = ActionCounts::new();
    c.record_read("SRAMM", 8);
    let err = price(&a, &c, &Work::default()).unwrap_err().to_string();
    assert!(
        err.contains("no memory level `SRAMM`; did you mean `SRAM`?"),
        "{err}"
    );
}

fn cost_cli(args: &[&str]) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args(["cost", "--arch"])
        .arg(root.join("arch/int8.json"))
        .args(args)
        .output()
        .unwrap()
}

fn cost_cli_json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cost_cli(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn cli_cost_prices_several_gemms_and_set_overrides() {
    let (a, b) = ("64,784,128", "64,128,10");
    let both = cost_cli_json(&["--gemm", a, "--gemm", b]);
    let one = |g: &str| cost_cli_json(&["--gemm", g])["total"].clone();
    let (ra, rb) = (one(a), one(b));
    assert_eq!(both["gemms"][0]["report"], ra);
    assert_eq!(both["gemms"][1]["report"], rb);
    assert_eq!(both["gemms"][1]["k"], 10);
    let t = &both["total"];
    // Energy and compute cycles add; so do the MACs.
    let e = |v: &serde_json::Value| v["energy_pj"].as_f64().unwrap();
    assert!((e(t) - e(&ra) - e(&rb)).abs() <= 1e-9 * e(t), "{t}");
    for key in ["cycles", "macs"] {
        assert_eq!(
            t[key].as_u64().unwrap(),
            ra[key].as_u64().unwrap() + rb[key].as_u64().unwrap(),
            "{key}"
        );
    }
    // The text output lists each GEMM, then the total.
    let text = String::from_utf8_lossy(&cost_cli(&["--gemm", a, "--gemm", b]).stdout).to_string();
    assert!(text.contains("  1                  64,784,128"), "{text}");
    assert!(
        text.contains("total of 2 GEMMs:\narch          int8"),
        "{text}"
    );

    // --set changes the architecture as `lpsim run --set arch.` does; a bigger array is
    // faster on this GEMM, and an `arch.` prefix is the same override.
    let rows = |set: &str| cost_cli_json(&["--gemm", a, "--set", set])["total"]["cycles"].clone();
    let base = ra["cycles"].as_u64().unwrap();
    assert!(rows("compute.array.rows=64").as_u64().unwrap() < base);
    assert_eq!(
        rows("compute.array.rows=64"),
        rows("arch.compute.array.rows=64")
    );
    let fp8 = cost_cli_json(&["--gemm", a, "--set", "formats.mac.a=e4m3fn"]);
    assert_ne!(fp8["total"]["energy_pj"], ra["energy_pj"]);

    for (set, needle) in [
        (
            "compute.array.rowz=64",
            "compute.array.rowz: unknown field; did you mean `rows`?",
        ),
        (
            "compute.array.rows=0",
            "compute.array.rows = 0: must be at least 1",
        ),
        ("rows", "`rows`: expected PATH=VALUE"),
    ] {
        let out = cost_cli(&["--gemm", a, "--set", set]);
        assert_eq!(out.status.code(), Some(2), "{set}");
        let msg = String::from_utf8_lossy(&out.stderr);
        assert!(msg.contains(needle), "{set}: {msg}");
    }
    let twice = cost_cli(&[
        "--gemm",
        a,
        "--set",
        "compute.array.rows=8",
        "--set",
        "arch.compute.array.rows=9",
    ]);
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("--set compute.array.rows is given twice")
    );
}

#[test]
fn cli_cost_json() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args(["cost", "--arch"])
        .arg(root.join("arch/bf16.json"))
        .args(["--gemm", "64,64,64", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["gemms"][0]["report"], all["total"]);
    let v = &all["total"];
    assert_eq!(v["cycles"], 503);
    assert_eq!(v["stall_cycles"], 0);
    for key in ["energy_pj", "utilization", "area_mm2"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(v["breakdown"]["compute"].as_f64().unwrap() > 0.0);

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"))
        .args(["cost", "--arch"])
        .arg(root.join("tests/data/arch_broken/out_of_range.json"))
        .args(["--gemm", "1,1,1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(
        msg.contains("compute.array.rows = 0: must be at least 1"),
        "{msg}"
    );
}
