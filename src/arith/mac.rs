//! A MAC (multiply-accumulate) configuration: input formats, product format or exact, fused or
//! not, accumulator format and rounding unit, and the accumulation order (see ARCHITECTURE.md).
//!
//! Semantics, for one output `c = sum_k a_k b_k` (every kernel in `arith` follows them exactly,
//! for every size, whatever the threads or blocking):
//! - product: `p_k = a_k b_k`, exact (the inputs fit `f32`, so the product is exact in `f64`),
//!   or rounded once to the product format with `rne` when one is given (unfused MACs only);
//! - adder: `round(x + y)` rounds the exact sum once to the accumulator format with its rounding
//!   unit ([`Adder::add`]);
//! - order: see [`Order`].
//!
//! Stochastic rounding: the `r`-th rounding of output number `o` (row-major `o = i n + j`) draws
//! the word `stream.bits(o * S + r)` with `S = 2 K + 1` ([`MacConfig::random_index`]), so the
//! bits depend only on the position, never on threads. Rounding numbers `r`: sequential: `r = k`;
//! chunked: `r = k` inside chunks, `K + c` when chunk `c` is added into the total; pairwise: the
//! adds in level order, `0..K-1` (`r = 0` also for the single rounding of a `K = 1` sum).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::arith::ActionCounts;
use crate::format::{FixedFormat, FloatFormat, Format, RangeEvent};
use crate::round::Rounding;

/// How the `K` products of one output are summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// `acc = +0; for k in 0..K: acc = round(acc + p_k)`.
    Sequential,
    /// A balanced tree, level by level: elements `2i` and `2i+1` are summed and rounded; an odd
    /// last element passes up unchanged. A single product is rounded once.
    Pairwise,
    /// Sequential inside each chunk of `C` consecutive `k` (from `+0`), each chunk result then
    /// added sequentially into a running total (from `+0`), all in the accumulator format: how
    /// tensor cores accumulate `K` in blocks.
    Chunk(usize),
    /// Not order-exact: `ndarray`'s optimized `f32` GEMM, then one rounding of each output to the
    /// accumulator format. For users who do not need order-exactness.
    Native,
}

impl Order {
    /// Every accepted spelling, for error messages and `--help`.
    pub const SPELLINGS: &'static str = "sequential, pairwise, chunk=C (C >= 1), native";

    /// Roundings into the accumulator format in one sum of `k` products, as the kernels perform
    /// them: sequential `k` (the first from `+0`); chunked `k + ceil(k / C)` (every product
    /// into its chunk, every chunk into the total); pairwise `k - 1` adds, or the one rounding
    /// of a single product; native `1` (the `f32` result rounded once). Stops at 2^64 - 1.
    pub fn roundings(self, k: u64) -> u64 {
        match self {
            Order::Sequential => k,
            Order::Chunk(c) => k.saturating_add(k.div_ceil(c as u64)),
            Order::Pairwise => k.saturating_sub(1).max(u64::from(k > 0)),
            Order::Native => 1,
        }
    }
}

impl FromStr for Order {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| MacError::Order {
            spec: s.to_string(),
            reason,
        };
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "sequential" | "seq" => Order::Sequential,
            "pairwise" | "tree" => Order::Pairwise,
            "native" => Order::Native,
            _ => {
                let c = t
                    .strip_prefix("chunk=")
                    .or_else(|| t.strip_prefix("chunk:"))
                    .ok_or_else(|| {
                        err(format!(
                            "unknown order{}; allowed: {}",
                            crate::suggest::suggestion(&t, ["sequential", "pairwise", "native"]),
                            Self::SPELLINGS
                        ))
                    })?;
                match c.parse::<usize>() {
                    Ok(c) if c >= 1 => Order::Chunk(c),
                    _ => return Err(err(format!("chunk = `{c}`: must be a whole number >= 1"))),
                }
            }
        })
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Order::Sequential => f.write_str("sequential"),
            Order::Pairwise => f.write_str("pairwise"),
            Order::Chunk(c) => write!(f, "chunk={c}"),
            Order::Native => f.write_str("native"),
        }
    }
}

/// An invalid MAC configuration or kernel call.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum MacError {
    /// A format that cannot play the given role.
    #[error("{role} format `{format}`: {reason}")]
    Format {
        /// `a`, `b`, `product`, `accumulator` or `output`.
        role: &'static str,
        /// The format spec.
        format: String,
        /// Why, and what is allowed.
        reason: &'static str,
    },
    /// A fused MAC with a product format.
    #[error(
        "a fused MAC adds the exact product, but product format `{0}` was given; \
         use product `exact` or an unfused MAC"
    )]
    FusedWithProduct(String),
    /// A malformed order spec.
    #[error("order `{spec}`: {reason}")]
    Order {
        /// The text that was given.
        spec: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// Operand shapes that do not match.
    #[error("shapes do not match: {0}")]
    Shape(String),
}

/// The accumulator as an adder unit: a float or fixed format plus its rounding unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccFormat {
    /// A float accumulator (overflow per the format: infinity, NaN or saturation).
    Float(FloatFormat),
    /// A fixed-point or integer accumulator (saturating or wrapping).
    Fixed(FixedFormat),
}

/// What one rounding did to the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddEvent {
    /// In range.
    None,
    /// A float result overflowed.
    Overflow,
    /// A fixed result saturated.
    Saturated,
    /// A fixed result wrapped around.
    Wrapped,
}

/// Range events counted by a kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventTally {
    /// Float overflows.
    pub overflows: u64,
    /// Fixed saturations.
    pub saturations: u64,
    /// Fixed wrap-arounds.
    pub wraps: u64,
}

impl EventTally {
    /// Count one event.
    #[inline(always)]
    pub fn note(&mut self, e: AddEvent) {
        match e {
            AddEvent::None => {}
            AddEvent::Overflow => self.overflows += 1,
            AddEvent::Saturated => self.saturations += 1,
            AddEvent::Wrapped => self.wraps += 1,
        }
    }

    /// The sum of two tallies.
    pub fn plus(self, o: EventTally) -> EventTally {
        EventTally {
            overflows: self.overflows + o.overflows,
            saturations: self.saturations + o.saturations,
            wraps: self.wraps + o.wraps,
        }
    }
}

fn range_event(e: RangeEvent) -> AddEvent {
    match e {
        RangeEvent::None => AddEvent::None,
        RangeEvent::Saturated => AddEvent::Saturated,
        RangeEvent::Wrapped => AddEvent::Wrapped,
    }
}

/// An accumulator adder: `round(x + y)` rounded once to the accumulator format.
#[derive(Clone, Copy, Debug)]
pub struct Adder {
    /// The accumulator format.
    pub format: AccFormat,
    /// Its rounding unit.
    pub rounding: Rounding,
}

impl Adder {
    /// An adder rounding to `format` with `rounding`; `role` names the unit in errors.
    pub fn new(role: &'static str, format: Format, rounding: Rounding) -> Result<Self, MacError> {
        let err = |reason| MacError::Format {
            role,
            format: format.to_string(),
            reason,
        };
        let format = match format {
            Format::Float(f) if f.has_zero() => AccFormat::Float(f),
            Format::Float(_) => return Err(err("an adder's format needs a zero")),
            Format::Fixed(f) => AccFormat::Fixed(f),
            _ => return Err(err("must be a float or fixed format")),
        };
        Ok(Adder { format, rounding })
    }

    /// `round(x + y)`: the exact sum rounded once (`random`: the word of stochastic rounding).
    #[inline]
    pub fn add(&self, x: f64, y: f64, random: u32) -> (f64, AddEvent) {
        match self.format {
            AccFormat::Float(f) => {
                let (v, o) = f.quantize_sum(x, y, self.rounding, random);
                (
                    v,
                    if o {
                        AddEvent::Overflow
                    } else {
                        AddEvent::None
                    },
                )
            }
            AccFormat::Fixed(f) => {
                let (v, e) = f.quantize_sum_event(x, y, self.rounding, random);
                (v, range_event(e))
            }
        }
    }

    /// `round(x)`: one value rounded once (the sum of a single product); a zero keeps its sign.
    #[inline]
    pub fn round(&self, x: f64, random: u32) -> (f64, AddEvent) {
        match self.format {
            AccFormat::Float(f) if x == 0.0 => {
                (f.quantize(x, self.rounding, random), AddEvent::None)
            }
            _ => self.add(x, 0.0, random),
        }
    }
}

/// Whether values of `f` can be negative (a product format must hold what the inputs make).
fn can_be_negative(f: &Format) -> bool {
    match f {
        Format::Float(x) => x.signed(),
        Format::Fixed(x) => x.signed(),
        // Block elements (bfp, MX) and QPyTorch's formats are signed.
        Format::Block(_) | Format::QTorch(_) | Format::QFixed(_) => true,
    }
}

/// A MAC configuration (see the module docs for the exact semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacConfig {
    /// Format of the left inputs (`A`).
    pub a: Format,
    /// Format of the right inputs (`B`).
    pub b: Format,
    /// Format the product is rounded to (`rne`), or `None` for the exact product.
    pub product: Option<Format>,
    /// Whether the MAC is fused: the exact product is added with one rounding.
    pub fused: bool,
    /// The accumulator format.
    pub acc: Format,
    /// The accumulator's rounding unit.
    pub acc_rounding: Rounding,
    /// The accumulation order.
    pub order: Order,
}

impl MacConfig {
    /// A validated configuration.
    pub fn new(
        a: Format,
        b: Format,
        product: Option<Format>,
        fused: bool,
        acc: Format,
        acc_rounding: Rounding,
        order: Order,
    ) -> Result<Self, MacError> {
        let c = MacConfig {
            a,
            b,
            product,
            fused,
            acc,
            acc_rounding,
            order,
        };
        c.validate()?;
        Ok(c)
    }

    /// Whether the MAC is the hardware's fused `f64` multiply-add: fused, accumulator `fp64`
    /// with `rne`, sequential order. Each step `acc <- round(acc + a b)` is then exactly
    /// `a.mul_add(b, acc)` (IEEE 754 fusedMultiplyAdd), whatever the inputs, so inputs may be any
    /// `f64` values ([`crate::arith::gemm_f64`]).
    pub fn is_f64_fma(&self) -> bool {
        let fp64 = crate::format::alias("fp64");
        self.fused
            && self.product.is_none()
            && Some(self.acc) == fp64
            && self.acc_rounding == Rounding::NearestEven
            && self.order == Order::Sequential
    }

    /// Check the configuration: inputs fit `f32` (so products are exact in `f64`), product and
    /// accumulator are scalar float or fixed formats, the product format has a zero and a sign
    /// when an input has one (`e8m0fnu`, a scale format, can hold no product), the accumulator
    /// has a zero, and a fused MAC has no product format.
    pub fn validate(&self) -> Result<(), MacError> {
        for (role, f) in [("a", self.a), ("b", self.b)] {
            if !f.fits_f32() && !self.is_f64_fma() {
                return Err(MacError::Format {
                    role,
                    format: f.to_string(),
                    reason: "inputs must fit the f32 carrier (so products are exact in f64), \
                             unless the MAC is a fused fp64 FMA (accumulator fp64, rne, \
                             sequential)",
                });
            }
        }
        if let Some(p) = self.product {
            if self.fused {
                return Err(MacError::FusedWithProduct(p.to_string()));
            }
            let reason = match p {
                Format::Float(f) if !f.has_zero() => Some("cannot hold a product of 0 (no zero)"),
                Format::Float(_) | Format::Fixed(_) => None,
                _ => Some("must be a float or fixed format"),
            };
            let negative_inputs = [self.a, self.b].iter().any(can_be_negative);
            let reason = reason.or_else(|| {
                (negative_inputs && !can_be_negative(&p))
                    .then_some("is unsigned but the inputs are signed: products can be negative")
            });
            if let Some(reason) = reason {
                return Err(MacError::Format {
                    role: "product",
                    format: p.to_string(),
                    reason,
                });
            }
        }
        self.adder().map(|_| ())
    }

    /// The accumulator adder unit.
    pub fn adder(&self) -> Result<Adder, MacError> {
        Adder::new("accumulator", self.acc, self.acc_rounding)
    }

    /// The product `a b` as the MAC forms it: exact, or rounded once (`rne`) to the product
    /// format.
    #[inline]
    pub fn product(&self, a: f64, b: f64) -> f64 {
        let p = a * b;
        match self.product {
            None => p,
            Some(f) => f.quantize_scalar(p, Rounding::NearestEven, 0).unwrap_or(p),
        }
    }

    /// The actions of `outputs` sums of `k` products each under this configuration: the one
    /// counting model. The emulated kernels ([`crate::arith::gemm`], [`crate::arith::gemv`],
    /// [`crate::arith::dot`]) report these counts plus the range events they saw, and the cost
    /// model prices them for a GEMM it does not run (`cost::gemm_counts`), so the two agree by
    /// construction:
    /// - `outputs k` products. Fused, sequential or chunked: each product is added into a
    ///   running sum by one `fma["A x B + ACC"]`; otherwise (unfused, or a pairwise tree that
    ///   adds sums to sums, or native) `mul["A x B"]`;
    /// - a product format: each product rounded, `quantize["P/rne"]` (no random bits);
    /// - the accumulator's roundings, [`Order::roundings`] per output: those not done by an
    ///   fma are `add["ACC"]`, and each draws the rounding unit's random bits. Two orders
    ///   differ: native adds every product in `fp32` (`add["fp32"]`) and rounds each output
    ///   once (`quantize["ACC/R"]`), and a pairwise sum of a single product is that one
    ///   rounding (`quantize["ACC/R"]`, no add).
    ///
    /// Counts stop at 2^64 - 1 ([`ActionCounts::saturated`]), which pricing refuses.
    pub fn counts(&self, outputs: u64, k: u64) -> ActionCounts {
        let mut c = ActionCounts::new();
        let products = outputs.saturating_mul(k);
        let roundings = outputs.saturating_mul(self.order.roundings(k));
        let fused_steps = match self.order {
            Order::Sequential | Order::Chunk(_) if self.fused => products,
            _ => 0,
        };
        if products > fused_steps {
            c.record_mul(&self.a, &self.b, products - fused_steps);
        }
        if fused_steps > 0 {
            c.record_fma(&self.a, &self.b, &self.acc, fused_steps);
        }
        if let Some(p) = self.product {
            c.record_quantize(&p, Rounding::NearestEven, products);
        }
        match self.order {
            Order::Native => {
                let fp32 = crate::format::alias("fp32").expect("fp32 is a built-in alias");
                c.record_add(&fp32, products);
                c.record_quantize(&self.acc, self.acc_rounding, outputs);
            }
            Order::Pairwise if k == 1 => c.record_quantize(&self.acc, self.acc_rounding, outputs),
            _ => {
                let adds = roundings.saturating_sub(fused_steps);
                if adds > 0 {
                    c.record_add(&self.acc, adds);
                }
                c.record_random_bits(self.acc_rounding, roundings);
            }
        }
        c
    }

    /// Roundings reserved per output for the random words: `S = 2 K + 1`.
    pub fn random_slots(k: usize) -> u64 {
        2 * k as u64 + 1
    }

    /// The index of the random word of rounding `r` of output `o` in a sum of `k` products.
    #[inline(always)]
    pub fn random_index(o: u64, k: usize, r: u64) -> u64 {
        o * Self::random_slots(k) + r
    }
}
