//! Facts about a format for people and tables: range, precision, special values.

use serde::Serialize;

use crate::format::exact::pow2;
use crate::format::{Element, Format, Special};

/// One row of `lpsim formats`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FormatInfo {
    /// The spec (alias name where there is one).
    pub name: String,
    /// `float`, `fixed`, `bfp`, `mx`, `qtorch`, `qfixed` or `qbfp`.
    pub kind: String,
    /// Bits per element (block formats: element bits; the 8-bit scale is shared).
    pub bits: u32,
    /// Exponent bits (floats; the element's for MX).
    pub exp_bits: Option<u32>,
    /// Mantissa bits (floats; the element's for MX).
    pub man_bits: Option<u32>,
    /// Exponent bias (floats).
    pub bias: Option<i32>,
    /// Fractional length (fixed point, `qfixed`).
    pub fl: Option<i32>,
    /// Block size (`32`, `row`, `col`, `tensor`) for block formats.
    pub block: Option<String>,
    /// Largest finite value (block formats: of an element at scale 1; `qfixed` without clamp:
    /// `f32`'s).
    pub max: f64,
    /// Smallest positive normal value (fixed point: the step).
    pub min_normal: f64,
    /// Smallest positive value.
    pub min_subnormal: f64,
    /// Machine epsilon: the distance from 1 to the next value (fixed point: the step).
    pub epsilon: f64,
    /// Special values: `inf`, `nan`, `-0`, or `none`.
    pub specials: String,
}

impl FormatInfo {
    /// The facts of `f`.
    pub fn of(f: &Format) -> Self {
        let mut info = FormatInfo {
            name: f.to_string(),
            kind: f.kind().to_string(),
            bits: f.bits(),
            exp_bits: None,
            man_bits: None,
            bias: None,
            fl: None,
            block: None,
            max: 0.0,
            min_normal: 0.0,
            min_subnormal: 0.0,
            epsilon: 0.0,
            specials: String::new(),
        };
        let element = match f {
            Format::Float(x) => Element::Float(*x),
            Format::Fixed(x) => Element::Fixed(*x),
            Format::QTorch(q) => Element::Float(q.layout()),
            Format::QFixed(q) => {
                info.fl = Some(q.fl());
                info.max = q.range().1;
                info.min_normal = q.step();
                info.min_subnormal = q.step();
                info.epsilon = q.step();
                // NaN passes QPyTorch's clamp; a negative value rounding to zero gives -0.
                info.specials = if q.clamp() { "nan -0" } else { "inf nan -0" }.into();
                return info;
            }
            Format::Block(b) => {
                info.block = Some(b.size().to_string());
                b.element()
            }
        };
        match element {
            Element::Float(x) => {
                let l = x.limits();
                info.exp_bits = Some(x.exp_bits());
                info.man_bits = Some(x.man_bits());
                info.bias = Some(x.bias());
                info.max = l.max;
                info.min_normal = pow2(l.emin);
                info.min_subnormal = l.min_positive;
                info.epsilon = pow2(-(x.man_bits() as i32));
                let mut s = Vec::new();
                if x.has_inf() {
                    s.push("inf");
                }
                if x.has_nan() {
                    s.push("nan");
                }
                if x.signed() && x.has_zero() && x.special() != Special::Fnuz {
                    s.push("-0");
                }
                info.specials = if s.is_empty() {
                    "none".into()
                } else {
                    s.join(" ")
                };
            }
            Element::Fixed(x) => {
                info.fl = Some(x.fl());
                info.max = x.max_value();
                info.min_normal = x.step();
                info.min_subnormal = x.step();
                info.epsilon = x.step();
                info.specials = "none".into();
            }
        }
        if let Format::QTorch(_) = f {
            // QPyTorch never rounds to -0 (but to +0); only e = 8 keeps infinities and NaN.
            info.specials = info.specials.replace(" -0", "").replace("-0", "");
            if info.specials.is_empty() {
                info.specials = "none".into();
            }
        }
        info
    }
}
