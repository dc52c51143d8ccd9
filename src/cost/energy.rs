//! Energy and area per action, Accelergy-style: a default table (`horowitz45`) plus per-action
//! overrides from the architecture file.
//!
//! Sources of the defaults (45 nm, 0.9 V):
//! - M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
//!   doi:10.1109/ISSCC.2014.6757323: int add 8/32 bit 0.03/0.1 pJ, int mult 8/32 bit 0.2/3.1 pJ,
//!   fp16/fp32 add 0.4/0.9 pJ, fp16/fp32 mult 1.1/3.7 pJ; SRAM 64-bit read from 8 KB / 32 KB /
//!   1 MB 10/20/100 pJ; DRAM 64-bit access 1.3-2.6 nJ (we take 1.3 nJ). Areas (µm²): int add 8/32
//!   bit 36/137, int mult 8/32 bit 282/3495, fp add 16/32 bit 1360/4184, fp mult 16/32 bit
//!   1640/7700 (secondary copies of the same slides).
//! - Register bit: 0.144 pJ per 16-bit register read in Accelergy's 45 nm reference outputs
//!   (simple_weight_stationary), i.e. 0.009 pJ/bit; register area 5 µm²/bit (a 45 nm flip-flop,
//!   declared estimate).
//! - SRAM bit area: 0.346 µm² 6T cell at 45 nm (Intel 45 nm) at 50 % array efficiency,
//!   0.69 µm²/bit (declared estimate).
//!
//! Bit-width rules (docs/cost-model.md; each rule goes exactly through the two table points it is
//! anchored on, and the table points themselves are returned as tabulated):
//! - integer adder: affine in width, `E(w) = a w + c` (through 8 and 32 bits);
//! - integer multiplier `wa x wb`: quadratic, `E = a wa wb + c` (through 8x8 and 32x32);
//! - float multiplier: quadratic in significand width, `E = a pa pb + b e` with `p = m + 1`
//!   significand bits and `e` the wider exponent (through fp16 and fp32);
//! - float adder: linear in width plus the alignment shifter, `E = a (e + p) + b p log2 p`
//!   (through fp16 and fp32), and never less than an integer adder of the same width;
//! - a fused MAC `a x b + c` = multiplier(a, b) + adder(c); a MAC whose operands are integers uses
//!   the integer rules, otherwise the float rules (an integer operand counts as `p = wl`, `e = 0`);
//! - block formats (bfp, MX) are priced by their element format; the shared scale is amortized;
//! - a rounding (quantize) unit to format F = an adder as wide as F's significand (the
//!   increment), plus for stochastic rounding with r random bits an r-bit adder; the r random
//!   bits are priced separately per bit (`rng_bit`: an LFSR flip-flop update, the register bit).
//!
//! Node scaling: defaults derived here are for 45 nm and multiplied by `(node/45)^1` for energy
//! (switched capacitance linear in feature size at a fixed supply voltage; a declared choice) and
//! `(node/45)^2` for area. Overrides and energies given in the file are taken as already at the
//! file's node.

use crate::arch::MemoryKind;
use crate::arith::ActionKey;
use crate::format::{Element, Format};
use crate::round::Rounding;
use crate::suggest::suggestion;

/// Exponent of the energy node-scaling rule `E(node) = E(45) * (node/45)^k`.
pub const ENERGY_NODE_EXPONENT: f64 = 1.0;
/// Exponent of the area node-scaling rule `A(node) = A(45) * (node/45)^k`.
pub const AREA_NODE_EXPONENT: f64 = 2.0;

/// The anchor points of one default table (energy in pJ or area in µm²) at 45 nm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchors {
    /// Integer adder, 8 and 32 bits.
    pub int_add: [f64; 2],
    /// Integer multiplier, 8x8 and 32x32 bits.
    pub int_mul: [f64; 2],
    /// Float adder, fp16 and fp32.
    pub fp_add: [f64; 2],
    /// Float multiplier, fp16 and fp32.
    pub fp_mul: [f64; 2],
    /// One register bit (read, or an LFSR flip-flop update).
    pub reg_bit: f64,
}

/// Horowitz ISSCC 2014 energies, pJ (see the module docs).
pub const HOROWITZ45_ENERGY: Anchors = Anchors {
    int_add: [0.03, 0.1],
    int_mul: [0.2, 3.1],
    fp_add: [0.4, 0.9],
    fp_mul: [1.1, 3.7],
    reg_bit: 0.009,
};

/// Horowitz ISSCC 2014 areas, µm² (see the module docs).
pub const HOROWITZ45_AREA: Anchors = Anchors {
    int_add: [36.0, 137.0],
    int_mul: [282.0, 3495.0],
    fp_add: [1360.0, 4184.0],
    fp_mul: [1640.0, 7700.0],
    reg_bit: 5.0,
};

/// SRAM area per bit at 45 nm, µm² (6T cell 0.346 µm² at 50 % array efficiency).
pub const SRAM_BIT_AREA_UM2: f64 = 0.692;

/// DRAM energy per bit, pJ: 1.3 nJ per 64-bit access (Horowitz).
pub const DRAM_PJ_PER_BIT: f64 = 1300.0 / 64.0;

/// SRAM 64-bit read energies (bytes, pJ) from Horowitz: 8 KB, 32 KB, 1 MB.
const SRAM_64BIT_READ: [(f64, f64); 3] = [(8192.0, 10.0), (32768.0, 20.0), (1048576.0, 100.0)];

/// The widths a rule needs from a format: significand bits, exponent bits, and whether it is a
/// float.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Operand {
    p: u32,
    e: u32,
    float: bool,
}

impl Operand {
    fn of(f: &Format) -> Self {
        let float = |e: u32, m: u32| Operand {
            p: m + 1,
            e,
            float: true,
        };
        let int = |w: u32| Operand {
            p: w,
            e: 0,
            float: false,
        };
        match f {
            Format::Float(x) => float(x.exp_bits(), x.man_bits()),
            Format::QTorch(x) => float(x.exp_bits(), x.man_bits()),
            Format::Fixed(x) => int(x.wl()),
            Format::QFixed(x) => int(x.wl()),
            Format::Block(b) => match b.element() {
                Element::Float(x) => float(x.exp_bits(), x.man_bits()),
                Element::Fixed(x) => int(x.wl()),
            },
        }
    }

    /// Total width in bits (sign included for floats).
    fn width(self) -> f64 {
        f64::from(self.p + self.e)
    }
}

/// Coefficients `(x, y)` of `E = x f(s) + y g(s)` through two anchor points, where `fa`, `fb`
/// are the two features `[f, g]` at the anchors and `ya`, `yb` their values (Cramer's rule).
fn fit2(fa: [f64; 2], fb: [f64; 2], ya: f64, yb: f64) -> [f64; 2] {
    let det = fa[0] * fb[1] - fa[1] * fb[0];
    [
        (ya * fb[1] - fa[1] * yb) / det,
        (fa[0] * yb - ya * fb[0]) / det,
    ]
}

/// Evaluate a two-feature rule at `f`, returning the tabulated value when `f` is an anchor.
fn rule(f: [f64; 2], fa: [f64; 2], fb: [f64; 2], y: [f64; 2]) -> f64 {
    if f == fa {
        return y[0];
    }
    if f == fb {
        return y[1];
    }
    let c = fit2(fa, fb, y[0], y[1]);
    c[0] * f[0] + c[1] * f[1]
}

const FP16: Operand = Operand {
    p: 11,
    e: 5,
    float: true,
};
const FP32: Operand = Operand {
    p: 24,
    e: 8,
    float: true,
};

impl Anchors {
    /// An integer adder of `w` bits.
    fn int_adder(&self, w: f64) -> f64 {
        rule([w, 1.0], [8.0, 1.0], [32.0, 1.0], self.int_add)
    }

    /// An adder for format `f` (float rule for floats, integer rule otherwise).
    pub fn adder(&self, f: &Format) -> f64 {
        self.adder_of(Operand::of(f))
    }

    fn adder_of(&self, o: Operand) -> f64 {
        if !o.float {
            return self.int_adder(f64::from(o.p));
        }
        let feat = |o: Operand| {
            let p = f64::from(o.p);
            [o.width(), p * p.log2()]
        };
        rule(feat(o), feat(FP16), feat(FP32), self.fp_add).max(self.int_adder(o.width()))
    }

    /// A multiplier of formats `a` and `b`.
    pub fn multiplier(&self, a: &Format, b: &Format) -> f64 {
        let (a, b) = (Operand::of(a), Operand::of(b));
        if !a.float && !b.float {
            let w = f64::from(a.p) * f64::from(b.p);
            return rule([w, 1.0], [64.0, 1.0], [1024.0, 1.0], self.int_mul);
        }
        let feat =
            |a: Operand, b: Operand| [f64::from(a.p) * f64::from(b.p), f64::from(a.e.max(b.e))];
        rule(feat(a, b), feat(FP16, FP16), feat(FP32, FP32), self.fp_mul)
    }

    /// A MAC `a x b + acc`: multiplier plus accumulator adder.
    pub fn mac(&self, a: &Format, b: &Format, acc: &Format) -> f64 {
        self.multiplier(a, b) + self.adder(acc)
    }

    /// A rounding unit to `f` with rounding `r` (increment adder, plus an r-bit adder for SR).
    pub fn rounding_unit(&self, f: &Format, r: Rounding) -> f64 {
        let increment = self.int_adder(f64::from(Operand::of(f).p));
        match r.random_bits() {
            0 => increment,
            bits => increment + self.int_adder(f64::from(bits)),
        }
    }
}

/// The factor that scales a 45 nm default to `node_nm` (`k` is the rule's exponent).
pub fn node_factor(node_nm: f64, k: f64) -> f64 {
    (node_nm / 45.0).powf(k)
}

/// Default energy per bit (read or write) of a memory level at `node_nm`, pJ: DRAM 20.3
/// (Horowitz 1.3 nJ per 64 bits); SRAM from its size by log-log interpolation of Horowitz's
/// 8 KB / 32 KB / 1 MB 64-bit reads (10 / 20 / 100 pJ), extrapolated with the end segments'
/// slopes; register bits 0.009 (Accelergy). A DRAM is not scaled with the node (its energy is
/// dominated by the interface); SRAM and registers are.
pub fn default_memory_pj_per_bit(kind: MemoryKind, size_bytes: Option<u64>, node_nm: f64) -> f64 {
    let scale = node_factor(node_nm, ENERGY_NODE_EXPONENT);
    match kind {
        MemoryKind::Dram => DRAM_PJ_PER_BIT,
        MemoryKind::Reg => HOROWITZ45_ENERGY.reg_bit * scale,
        MemoryKind::Sram => {
            let s = size_bytes.unwrap_or(1) as f64;
            let seg = if s <= SRAM_64BIT_READ[1].0 { 0 } else { 1 };
            let ((s0, e0), (s1, e1)) = (SRAM_64BIT_READ[seg], SRAM_64BIT_READ[seg + 1]);
            let slope = (e1 / e0).ln() / (s1 / s0).ln();
            e0 * (s / s0).powf(slope) / 64.0 * scale
        }
    }
}

/// The action kinds an energy override may name, as `kind:key`.
pub const ACTION_KINDS: &[&str] = &["mul", "add", "fma", "quantize", "rng_bit"];

/// A priced action: a counted compute or rounding action ([`ActionKey`]), or one random bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A multiply, add, fused multiply-add or conversion, as `ActionCounts` keys it.
    Key(ActionKey),
    /// One random bit from the random-number source.
    RngBit,
}

impl Action {
    /// Parse a user's energy-override key: `kind` (`mul`, `add`, `fma`, `quantize`, `rng_bit`)
    /// and the key's text (`A x B`, `F`, `A x B + C`, `F/R`; empty for `rng_bit`).
    pub fn parse(kind: &str, key: &str) -> Result<Self, String> {
        match ActionKey::parse(kind, key) {
            Some(parsed) => parsed.map(Action::Key),
            None if kind == "rng_bit" && key.is_empty() => Ok(Action::RngBit),
            None => Err(format!(
                "unknown action kind `{kind}`{}; allowed: mul:A x B, add:F, fma:A x B + C, \
                 quantize:F/R, rng_bit",
                suggestion(kind, ACTION_KINDS)
            )),
        }
    }

    /// The default energy of one action at 45 nm, pJ (see the module docs for the rules).
    pub fn default_pj(&self) -> f64 {
        let t = &HOROWITZ45_ENERGY;
        match self {
            Action::Key(ActionKey::Mul { a, b }) => t.multiplier(a, b),
            Action::Key(ActionKey::Add { f }) => t.adder(f),
            Action::Key(ActionKey::Fma { a, b, acc }) => t.mac(a, b, acc),
            Action::Key(ActionKey::Quantize { f, r }) => t.rounding_unit(f, *r),
            Action::RngBit => t.reg_bit,
        }
    }
}

impl std::fmt::Display for Action {
    /// The canonical override key: `mul:A x B`, `add:F`, `fma:A x B + C`, `quantize:F/R`,
    /// `rng_bit`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Key(k) => write!(f, "{}:{k}", k.kind()),
            Action::RngBit => f.write_str("rng_bit"),
        }
    }
}

/// Canonical form of an energy-override key (`kind:key`, see [`Action`]), or what is wrong.
pub fn canonical_action(key: &str) -> Result<String, String> {
    let (kind, rest) = key.split_once(':').unwrap_or((key, ""));
    Action::parse(kind.trim(), rest).map(|a| a.to_string())
}

/// The units an area override may name (µm² per unit).
pub const AREA_UNITS: &[&str] = &[
    "mac",
    "full_precision_mac",
    "rounding_unit",
    "rng_bit",
    "vector_lane",
    "sram_bit",
    "reg_bit",
];

/// Canonical form of an area-override key (one of [`AREA_UNITS`]), or what is wrong.
pub fn canonical_area_unit(key: &str) -> Result<String, String> {
    if AREA_UNITS.contains(&key) {
        Ok(key.to_string())
    } else {
        Err(format!(
            "unknown area unit `{key}`{}; allowed: {}",
            suggestion(key, AREA_UNITS),
            AREA_UNITS.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Format {
        s.parse().unwrap()
    }

    #[test]
    fn anchors_are_reproduced() {
        let t = &HOROWITZ45_ENERGY;
        assert_eq!(t.adder(&f("int8")), 0.03);
        assert_eq!(t.adder(&f("int32")), 0.1);
        assert_eq!(t.multiplier(&f("int8"), &f("int8")), 0.2);
        assert_eq!(t.multiplier(&f("int32"), &f("int32")), 3.1);
        assert_eq!(t.adder(&f("fp16")), 0.4);
        assert_eq!(t.adder(&f("fp32")), 0.9);
        assert_eq!(t.multiplier(&f("fp16"), &f("fp16")), 1.1);
        assert_eq!(t.multiplier(&f("fp32"), &f("fp32")), 3.7);
    }

    #[test]
    fn sram_interpolation_hits_table() {
        let e = |kb: u64| default_memory_pj_per_bit(MemoryKind::Sram, Some(kb * 1024), 45.0) * 64.0;
        assert!((e(8) - 10.0).abs() < 1e-9);
        assert!((e(32) - 20.0).abs() < 1e-9);
        assert!((e(1024) - 100.0).abs() < 1e-9);
        assert!(e(1) > 0.0 && e(1) < e(8));
    }
}
