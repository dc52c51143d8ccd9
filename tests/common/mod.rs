//! Helpers shared by the integration tests: format lists, rounding modes, bit-exact comparison
//! and a small deterministic generator of test inputs.
#![allow(dead_code)]

use std::path::PathBuf;

use lpsim::{Format, Rounding};

/// Every deterministic rounding mode lpsim has.
pub const DET_MODES: [Rounding; 6] = [
    Rounding::NearestEven,
    Rounding::NearestAway,
    Rounding::TowardZero,
    Rounding::Up,
    Rounding::Down,
    Rounding::Odd,
];

/// The aliases that name block formats (the OCP MX ones), in `ALIASES` order.
pub fn block_aliases() -> Vec<&'static str> {
    let block = |a: &&str| matches!(fmt(a), Format::Block(_));
    lpsim::format::ALIASES
        .iter()
        .copied()
        .filter(block)
        .collect()
}

/// Parse a format spec, panicking with the spec on failure.
pub fn fmt(spec: &str) -> Format {
    spec.parse()
        .unwrap_or_else(|e| panic!("format `{spec}` does not parse: {e}"))
}

/// Bit-exact equality of carrier values, except that any two NaNs of the same sign are equal.
pub fn same(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        a.is_nan() && b.is_nan() && a.is_sign_negative() == b.is_sign_negative()
    } else {
        a.to_bits() == b.to_bits()
    }
}

/// SplitMix64: a tiny fixed-seed generator for test inputs (independent of lpsim's RNG).
#[derive(Clone, Debug)]
pub struct Gen(pub u64);

impl Gen {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// A value with a random sign and a log-uniform magnitude in `[2^lo, 2^hi)`, with a random
    /// full-precision `f64` significand.
    pub fn log_uniform(&mut self, lo: i32, hi: i32) -> f64 {
        let e = lo + (self.next_u64() % (hi - lo) as u64) as i32;
        let m = 1.0 + self.unit();
        let v = m * 2f64.powi(e);
        if self.next_u64() & 1 == 1 {
            -v
        } else {
            v
        }
    }
}

/// The finite values of a scalar format, sorted ascending, distinct (`-0` and `+0` both kept,
/// `-0` first).
pub fn finite_values(f: &Format) -> Vec<f64> {
    let mut v: Vec<f64> = (0..1u64 << f.bits())
        .map(|c| f.decode(c).unwrap())
        .filter(|x| x.is_finite())
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v.dedup_by(|a, b| a.to_bits() == b.to_bits());
    v
}

/// The next `f64` toward +infinity (`f64::next_up` is newer than the crate's MSRV).
pub fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

/// The next `f64` toward -infinity.
pub fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

/// The next `f32` toward +infinity.
pub fn next_up_f32(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let b = x.to_bits();
    f32::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

/// The next `f32` toward -infinity.
pub fn next_down_f32(x: f32) -> f32 {
    -next_up_f32(-x)
}

/// A fresh empty directory for one test (`group` and `name` keep tests apart).
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lpsim-test-{group}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The contents of the `<text>` elements of an SVG document, trimmed.
pub fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// Overrides (architecture JSON paths) that give `arch/int8.json` per-tensor scaled 8-bit
/// integers (`bfp:wl=8,size=tensor`) for every tensor and MAC input, with an `fp32`
/// accumulator: an integer machine whose tensors carry a scale, on which the HALP paper's 8-bit
/// algorithms run (`fixed:wl=8,fl=6` without a scale cannot hold a residual of hundreds).
pub const INT8_TENSOR: [(&str, &str); 8] = [
    ("formats.weights", "bfp:wl=8,size=tensor"),
    ("formats.activations", "bfp:wl=8,size=tensor"),
    ("formats.gradients", "bfp:wl=8,size=tensor"),
    ("formats.updates", "bfp:wl=8,size=tensor"),
    ("formats.mac.a", "bfp:wl=8,size=tensor"),
    ("formats.mac.b", "bfp:wl=8,size=tensor"),
    ("formats.mac.accumulator", "fp32"),
    // The features stay fp32, as in the `halp-linreg` workload, so the optimum is the exact one.
    ("formats.input", "fp32"),
];

/// A shipped architecture file with `overrides` (JSON path, value as on the command line).
pub fn arch_with(file: &str, overrides: &[(&str, &str)]) -> lpsim::arch::Architecture {
    let map = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), lpsim::arch::override_value(v)))
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    lpsim::arch::Architecture::load_with_overrides(&path, &map).unwrap_or_else(|e| panic!("{e}"))
}

/// `arch/int8.json` with [`INT8_TENSOR`].
pub fn int8_tensor() -> lpsim::arch::Architecture {
    arch_with("arch/int8.json", &INT8_TENSOR)
}

/// [`INT8_TENSOR`] as `lpsim run --set arch.<path>=<value>` arguments.
pub fn int8_tensor_set() -> Vec<String> {
    INT8_TENSOR
        .iter()
        .map(|(k, v)| format!("arch.{k}={v}"))
        .collect()
}

/// A version-1 `.npy` file: `header` (the dict literal) padded to 64 bytes, then `data`.
pub fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend(data);
    b
}

/// Run the `lpsim` binary with `args` in `dir` (default: the test's own, the crate root), `stdin` on its
/// standard input.
pub fn lpsim_in(dir: Option<&std::path::Path>, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lpsim"));
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run lpsim");
    // The binary may exit before reading its input: a broken pipe is fine.
    let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes());
    child.wait_with_output().unwrap()
}
