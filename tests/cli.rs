//! The `lpsim` binary (run via `CARGO_BIN_EXE_lpsim`): malformed format and rounding specs, bad
//! input lines and unreadable files each give a clear message on stderr naming the problem and
//! a non-zero exit; `lpsim quantize` writes the documented CSV (`input_hex,code_hex,output_hex,
//! output`, plus `block,scale_code_hex` for block formats) with values checked against the
//! library, `.npy` input and output round-trip (checked with `ndarray-npy`), and
//! `lpsim formats --json` lists every alias with its largest value equal to the reference
//! constants of ml_dtypes' `finfo(...).max` / `iinfo(...).max`.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::fmt;
use lpsim::format::ALIASES;
use lpsim::Rounding;
use ndarray::{Array1, Array2, ArrayD};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

fn lpsim(args: &[&str], stdin: &str) -> Output {
    common::lpsim_in(None, args, stdin)
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lpsim-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Assert failure with a non-zero exit, nothing on stdout, and every `needles` on stderr.
fn assert_fails(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    assert!(
        out.stdout.is_empty(),
        "stdout on failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
    assert!(err.lines().count() <= 3, "error should be short: {err}");
}

#[test]
fn malformed_format_specs() {
    let cases: &[(&str, &[&str])] = &[
        ("float:e=4", &["float:e=4", "missing `m=`"]),
        ("float:e=99,m=3", &["float:e=99,m=3", "e = 99", "1..=11"]),
        ("fixed:wl=8", &["fixed:wl=8", "missing `fl=`"]),
        ("bogus", &["bogus", "unknown format"]),
        ("mx:elem=fp32", &["mx:elem=fp32", "elem = `fp32`"]),
        ("float:e=4,m=3,special=odd", &["special = `odd`"]),
        ("float:e=4,m=3,color=red", &["unknown key `color`"]),
        ("bfp:wl=1", &["wl = 1"]),
        ("qtorch:e=9,m=2", &["e = 9"]),
        ("qtorch:e=8,m=0", &["e = 8 with m = 0", "m >= 1"]),
        ("qfixed:wl=8", &["qfixed:wl=8", "missing `fl=`"]),
        (
            "qfixed:wl=8,fl=4,clamp=maybe",
            &["clamp = `maybe`", "on or off"],
        ),
        ("qfixed:wl=8,fl=200", &["fl = 200", "-120..=149"]),
        ("qfixed:wl=8,fl=4,sat=off", &["unknown key `sat`", "clamp"]),
        (
            "fixed:wl=8,fl=4,clamp=off",
            &["`clamp` is QPyTorch's", "qfixed:"],
        ),
        ("qbfp:wl=23", &["wl = 23", "2..=22"]),
        ("qbfp:wl=8,size=0", &["size = `0`"]),
        ("fixed:wl=8,fl=x", &["fl = `x`"]),
    ];
    for (spec, needles) in cases {
        let out = lpsim(&["quantize", "--format", spec], "1\n");
        assert_fails(&out, needles);
        // The library says the same.
        assert!(spec.parse::<lpsim::Format>().is_err(), "{spec}");
    }
}

#[test]
fn bad_rounding_specs() {
    for (r, needle) in [
        ("nearest-odd", "unknown mode"),
        ("sr:bits=0", "bits = 0"),
        ("sr:bits=33", "bits = 33"),
        ("sr:8", "bits=N"),
    ] {
        let out = lpsim(&["quantize", "--format", "bf16", "--rounding", r], "1\n");
        assert_fails(&out, &[r, needle]);
        assert!(r.parse::<Rounding>().is_err());
    }
    // QPyTorch formats accept only rna and sr.
    let out = lpsim(&["quantize", "-f", "qtorch:e=5,m=2", "-r", "rne"], "1\n");
    assert_fails(&out, &["qtorch:e=5,m=2", "rna"]);
}

#[test]
fn bad_input_lines_name_the_line() {
    for (text, line, what) in [
        ("1.0\n2.0\nabc\n", "line 3", "abc"),
        ("0x3f80\n", "line 1", "0x3f80"),
        ("1\n\n0xzzzzzzzz\n", "line 3", "hex"),
        ("1,2\n", "line 1", "1,2"),
    ] {
        let out = lpsim(&["quantize", "-f", "e4m3fn"], text);
        assert_fails(&out, &[line, what]);
    }
}

#[test]
fn unreadable_and_missing_files() {
    let d = scratch("files");
    let missing = d.join("nope.txt");
    let out = lpsim(
        &["quantize", "-f", "bf16", "-i", missing.to_str().unwrap()],
        "",
    );
    assert_fails(&out, &["nope.txt", "cannot open"]);
    let missing_npy = d.join("nope.npy");
    let out = lpsim(
        &[
            "quantize",
            "-f",
            "bf16",
            "-i",
            missing_npy.to_str().unwrap(),
        ],
        "",
    );
    assert_fails(&out, &["nope.npy", "cannot read"]);
    // A directory is not a readable input.
    let out = lpsim(&["quantize", "-f", "bf16", "-i", d.to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
    // Not an array of floats.
    let bad = d.join("bad.npy");
    std::fs::write(&bad, b"not an npy file").unwrap();
    let out = lpsim(&["quantize", "-f", "bf16", "-i", bad.to_str().unwrap()], "");
    assert_fails(&out, &["bad.npy", "not a .npy file"]);
    let ints = d.join("ints.npy");
    let mut buf = Vec::new();
    Array1::from(vec![1i32, 2]).write_npy(&mut buf).unwrap();
    std::fs::write(&ints, buf).unwrap();
    let out = lpsim(
        &["quantize", "-f", "bf16", "-i", ints.to_str().unwrap()],
        "",
    );
    assert_fails(&out, &["ints.npy", "dtype int32", "float32 or float64"]);
    // An output in a directory that does not exist.
    let out = lpsim(
        &[
            "quantize",
            "-f",
            "bf16",
            "-o",
            d.join("no/such/dir/out.csv").to_str().unwrap(),
        ],
        "1\n",
    );
    assert_fails(&out, &["out.csv"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn quantize_csv_e4m3fn() {
    let out = lpsim(
        &["quantize", "--format", "e4m3fn"],
        "0.1\n3.14159\n500\n-0\nnan\n0x3f800000\n-inf\n 7.5e-4 \n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "input_hex,code_hex,output_hex,output");
    assert_eq!(
        &lines[1..],
        &[
            "3fb999999999999a,1d,3dd00000,0.1015625",
            "400921f9f01b866e,45,40500000,3.25",
            "407f400000000000,7f,7fc00000,NaN",
            "8000000000000000,80,80000000,-0",
            "7ff8000000000000,7f,7fc00000,NaN",
            "3f800000,38,3f800000,1",
            "fff0000000000000,ff,ffc00000,NaN",
            "3f489374bc6a7efa,00,00000000,0",
        ][..]
    );
    // Every row agrees with the library.
    let f = fmt("e4m3fn");
    for line in &lines[1..] {
        let cols: Vec<&str> = line.split(',').collect();
        let x = if cols[0].len() == 8 {
            f64::from(f32::from_bits(u32::from_str_radix(cols[0], 16).unwrap()))
        } else {
            f64::from_bits(u64::from_str_radix(cols[0], 16).unwrap())
        };
        let q = f.quantize_scalar(x, Rounding::NearestEven, 0).unwrap();
        assert_eq!(
            u64::from_str_radix(cols[1], 16).unwrap(),
            f.encode(q).unwrap()
        );
        let out = f32::from_bits(u32::from_str_radix(cols[2], 16).unwrap());
        assert!(common::same(f64::from(out), q), "{line}");
    }
}

#[test]
fn quantize_csv_modes_and_block() {
    // Directed rounding and a 16-bit code width.
    let out = lpsim(&["quantize", "-f", "bf16", "-r", "up"], "1.001\n");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().nth(1),
        Some("3ff004189374bc6a,3f81,3f810000,1.0078125")
    );
    // Block formats add the block index and the scale code.
    let input: String = (0..40)
        .map(|i| format!("{}\n", f64::from(i) * 0.37 - 3.0))
        .collect();
    let out = lpsim(&["quantize", "-f", "mxfp8"], &input);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "input_hex,code_hex,output_hex,output,block,scale_code_hex"
    );
    assert_eq!(lines.len(), 41);
    let lpsim::Format::Block(b) = fmt("mxfp8") else {
        unreachable!()
    };
    let xs: Vec<f64> = input.lines().map(|l| l.parse().unwrap()).collect();
    for (j, chunk) in xs.chunks(32).enumerate() {
        let mut q = vec![0.0; chunk.len()];
        let scale = b.quantize_block(chunk, &mut q, Rounding::NearestEven, |_| 0);
        for (i, v) in q.iter().enumerate() {
            let cols: Vec<&str> = lines[1 + j * 32 + i].split(',').collect();
            assert_eq!(cols.len(), 6);
            assert_eq!(cols[4], j.to_string());
            assert_eq!(cols[5], format!("{scale:02x}"));
            assert_eq!(
                u64::from_str_radix(cols[1], 16).unwrap(),
                b.encode_element(*v, scale)
            );
            assert_eq!(cols[2], format!("{:08x}", (*v as f32).to_bits()));
        }
    }
    // Stochastic rounding with a seed is reproducible and uses the seed.
    let run = |seed: &str| {
        lpsim(
            &["quantize", "-f", "e4m3fn", "-r", "sr", "--seed", seed],
            &input,
        )
        .stdout
    };
    assert_eq!(run("5"), run("5"));
    assert_ne!(run("5"), run("6"));
}

#[test]
fn npy_round_trip() {
    let d = scratch("npy");
    // f32 2-D input, f32-carrier format: output has the same shape and dtype.
    let x = Array2::from_shape_fn((4, 5), |(i, j)| (i as f32 - 1.5) * 0.77 + j as f32 * 0.013);
    let inp = d.join("in.npy");
    let outp = d.join("out.npy");
    let mut buf = Vec::new();
    x.write_npy(&mut buf).unwrap();
    std::fs::write(&inp, buf).unwrap();
    let out = lpsim(
        &[
            "quantize",
            "-f",
            "e5m2",
            "-r",
            "rtz",
            "-i",
            inp.to_str().unwrap(),
            "-o",
            outp.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y = ArrayD::<f32>::read_npy(std::fs::File::open(&outp).unwrap()).unwrap();
    assert_eq!(y.shape(), &[4, 5]);
    let f = fmt("e5m2");
    for (a, b) in x.iter().zip(y.iter()) {
        let q = f
            .quantize_scalar(f64::from(*a), Rounding::TowardZero, 0)
            .unwrap();
        assert_eq!(f64::from(*b), q);
    }
    // Quantizing the output again changes nothing (it is representable).
    let out2 = d.join("out2.npy");
    let out = lpsim(
        &[
            "quantize",
            "-f",
            "e5m2",
            "-i",
            outp.to_str().unwrap(),
            "-o",
            out2.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read(&outp).unwrap(), std::fs::read(&out2).unwrap());
    // f64 input to a format that needs the f64 carrier.
    let x64 = Array1::from(vec![0.1f64, 1.0 / 3.0, 1e300, -2.5e-310]);
    let inp64 = d.join("in64.npy");
    let mut buf = Vec::new();
    x64.write_npy(&mut buf).unwrap();
    std::fs::write(&inp64, buf).unwrap();
    let out64 = d.join("out64.npy");
    let out = lpsim(
        &[
            "quantize",
            "-f",
            "fp64",
            "-i",
            inp64.to_str().unwrap(),
            "-o",
            out64.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success());
    let y64 = ArrayD::<f64>::read_npy(std::fs::File::open(&out64).unwrap()).unwrap();
    assert_eq!(
        y64.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        x64.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // CSV output of .npy input: f32 inputs are printed with 8 hex digits.
    let csv = d.join("out.csv");
    let out = lpsim(
        &[
            "quantize",
            "-f",
            "bf16",
            "-i",
            inp.to_str().unwrap(),
            "-o",
            csv.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success());
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 21);
    assert_eq!(
        text.lines().nth(1).unwrap().split(',').next().unwrap(),
        format!("{:08x}", x[[0, 0]].to_bits())
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Largest finite values: ml_dtypes 0.6.0 `ml_dtypes.finfo(T).max` / `ml_dtypes.iinfo(T).max`
/// (and NumPy's finfo for fp16/fp32/fp64). tf32 is not in ml_dtypes: (2 - 2^-10) * 2^127.
/// MX formats: the element format's max; MXINT8's element is 1.984375 = 127/64 (OCP
/// Microscaling Formats v1.0, section 5.3).
const REFERENCE_MAX: &[(&str, f64)] = &[
    ("fp64", 1.797_693_134_862_315_7e308),
    ("fp32", 3.402_823_466_385_288_6e38),
    ("tf32", 3.401_162_134_214_653_5e38),
    ("bf16", 3.389_531_389_251_535_5e38),
    ("fp16", 65504.0),
    ("e5m2", 57344.0),
    ("e4m3fn", 448.0),
    ("e4m3fnuz", 240.0),
    ("e5m2fnuz", 57344.0),
    ("e3m2fn", 28.0),
    ("e2m3fn", 7.5),
    ("e2m1fn", 6.0),
    ("e8m0fnu", 1.701_411_834_604_692_3e38),
    ("int4", 7.0),
    ("int8", 127.0),
    ("int16", 32767.0),
    ("int32", 2147483647.0),
    ("uint8", 255.0),
    ("mxfp8", 448.0),
    ("mxfp8_e5m2", 57344.0),
    ("mxfp6", 28.0),
    ("mxfp6_e2m3", 7.5),
    ("mxfp4", 6.0),
    ("mxint8", 1.984375),
];

#[test]
fn formats_json_lists_every_alias_with_reference_max() {
    let out = lpsim(&["formats", "--json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ALIASES, "every alias, in order");
    assert_eq!(REFERENCE_MAX.len(), ALIASES.len());
    // serde_json's default float parser may be off by an ulp, so the numbers are read from the
    // text with Rust's correctly rounded parser.
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let maxes: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"max\":"))
        .map(|v| v.trim().trim_end_matches(',').parse().unwrap())
        .collect();
    assert_eq!(maxes.len(), rows.len());
    for ((row, (name, max)), got) in rows.iter().zip(REFERENCE_MAX).zip(maxes) {
        assert_eq!(row["name"], *name);
        assert_eq!(got, *max, "{name}: max");
        assert_eq!(
            row["bits"].as_u64().unwrap(),
            u64::from(fmt(name).bits()),
            "{name}: bits"
        );
    }
    // The human table lists the same names.
    let out = lpsim(&["formats"], "");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ALIASES {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name}"
        );
    }
}

/// `size=col` on a 2-D `.npy`: the CSV numbers each element's block by its column and gives
/// each column its own scale (column `j` holds values near `4^j`, scale code `127 + 2 j`).
#[test]
fn col_blocks_in_csv() {
    let d = scratch("colcsv");
    let x = Array2::from_shape_fn((3, 4), |(i, j)| {
        4f32.powi(j as i32) * (1.0 + i as f32 / 8.0)
    });
    let inp = d.join("in.npy");
    let mut buf = Vec::new();
    x.write_npy(&mut buf).unwrap();
    std::fs::write(&inp, buf).unwrap();
    let out = lpsim(
        &[
            "quantize",
            "-f",
            "bfp:wl=8,size=col",
            "-i",
            inp.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 12);
    for (k, r) in rows.iter().enumerate() {
        let j = k % 4;
        assert_eq!(r[4], j.to_string(), "element {k}: block");
        assert_eq!(r[5], format!("{:02x}", 127 + 2 * j), "element {k}: scale");
    }
}

#[test]
fn run_prints_a_line_per_epoch_when_piped_and_nothing_with_quiet() {
    let d = scratch("run-progress");
    let out_dir = d.join("r");
    let args = |quiet: bool| {
        let mut a = vec![
            "run",
            "--workload",
            "workloads/iris-logistic.json",
            "--algo",
            "lp-sgd",
            "--arch",
            "arch/int8.json",
            "--set",
            "epochs=3",
        ];
        a.extend(["--out", out_dir.to_str().unwrap()]);
        if quiet {
            a.push("--quiet");
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |quiet: bool| {
        let a = args(quiet);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = lpsim(&refs, "");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let err = run(false);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("epoch ")).collect();
    assert_eq!(lines.len(), 3, "{err}");
    // 120 training examples in batches of 16: 8 steps an epoch.
    for (i, l) in lines.iter().enumerate() {
        let e = i + 1;
        assert!(l.starts_with(&format!("epoch {e}/3: train_loss ")), "{l}");
        assert!(l.contains(", test_accuracy "), "{l}");
        assert!(l.contains(&format!("[step {}/24, ", 8 * e)), "{l}");
    }
    assert!(
        err.starts_with("iris-logistic lp-sgd int8 seed 0 epochs=3: running\n"),
        "{err}"
    );
    std::fs::remove_dir_all(&out_dir).unwrap();
    let quiet = run(true);
    assert!(!quiet.contains("epoch 1/3"), "{quiet}");
}

/// QPyTorch's unclamped fixed point has no codes: `lpsim quantize` leaves the code empty; the
/// clamped one writes its word.
#[test]
fn quantize_leaves_the_code_of_unbounded_qfixed_empty() {
    for (spec, line) in [
        (
            "qfixed:wl=8,fl=4,clamp=off",
            "4072c00000000000,,43960000,300",
        ),
        ("qfixed:wl=8,fl=4", "4072c00000000000,7f,40fe0000,7.9375"),
    ] {
        let out = lpsim(&["quantize", "-f", spec, "-r", "rne"], "300\n");
        assert!(out.status.success(), "{spec}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().nth(1), Some(line), "{spec}: {text}");
    }
}
