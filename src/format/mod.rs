//! Number formats: the rules that say which values exist (see ARCHITECTURE.md).
//!
//! A [`Format`] is data, chosen at run time from a spec string. Values live in a carrier (`f32`
//! where the format fits, else `f64`); quantizing is a pure function carrier -> carrier, and every
//! scalar format can `encode` a value to its bit pattern and `decode` it back.
//! [`Quantizer`] applies a format and a rounding unit to whole slices, with the match on the
//! format done once per slice.

mod block;
mod block_fast;
mod contains;
pub(crate) mod exact;
mod fixed;
mod float;
mod info;
pub(crate) mod kernel;
mod qtorch;
mod quantizer;
mod range;
mod spec;
mod twoterm;

pub use block::{
    BlockFormat, BlockKind, BlockPos, BlockSize, Element, SCALE_EXP_RANGE, SCALE_NAN_CODE,
};
pub use fixed::{FixedFormat, RangeEvent};
pub use float::{FloatFormat, Special};
pub use info::FormatInfo;
pub use qtorch::{QTorchFixed, QTorchFloat};
pub use quantizer::{QuantizeError, Quantizer};
pub use range::{
    bound_events, bound_events_f32, held_events, held_events_f32, range_events, range_events_f32,
    RangeCounts,
};
pub use spec::{alias, parse, FormatError, ALIASES};
pub use twoterm::two_sum;

use crate::round::Rounding;

/// A number format: formats are data, not types. Ordered by structure (not by spec text) so
/// that formats can key the ordered maps of `arith::ActionCounts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// Binary floating point with configurable exponent, mantissa, bias and special values.
    Float(FloatFormat),
    /// Fixed point / integers.
    Fixed(FixedFormat),
    /// A shared power-of-two scale per block of elements (bfp, QPyTorch's qbfp, MX).
    Block(BlockFormat),
    /// QPyTorch-compatible float quantization (`float_quantize`).
    QTorch(QTorchFloat),
    /// QPyTorch-compatible fixed point (`fixed_point_quantize`), clamped or unbounded.
    QFixed(QTorchFixed),
}

impl std::str::FromStr for Format {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl Format {
    /// The family name: `float`, `fixed`, `bfp`, `mx`, `qtorch`, `qfixed` or `qbfp`.
    pub fn kind(&self) -> &'static str {
        match self {
            Format::Float(_) => "float",
            Format::Fixed(_) => "fixed",
            Format::Block(b) => match b.kind() {
                BlockKind::Bfp => "bfp",
                BlockKind::QBfp => "qbfp",
                BlockKind::Mx => "mx",
            },
            Format::QTorch(_) => "qtorch",
            Format::QFixed(_) => "qfixed",
        }
    }

    /// Bits per element (block formats: per element, excluding the shared 8-bit scale).
    pub fn bits(&self) -> u32 {
        match self {
            Format::Float(f) => f.bits(),
            Format::Fixed(f) => f.bits(),
            Format::Block(b) => b.bits(),
            Format::QTorch(q) => q.bits(),
            Format::QFixed(q) => q.bits(),
        }
    }

    /// Average storage bits per element of a tensor of `len` elements with rows of `row_len`,
    /// the shared 8-bit scales included (for memory traffic).
    pub fn storage_bits(&self, len: usize, row_len: usize) -> f64 {
        match self {
            Format::Block(b) => {
                f64::from(b.bits()) + 8.0 * b.block_count(len, row_len) as f64 / len.max(1) as f64
            }
            other => f64::from(other.bits()),
        }
    }

    /// Whether rows picked from a tensor of this format with rows of `row_len` elements are
    /// again a value of it (always for scalar formats; see [`BlockFormat::rows_stay_values`]).
    pub fn rows_stay_values(&self, row_len: usize) -> bool {
        match self {
            Format::Block(b) => b.rows_stay_values(row_len),
            _ => true,
        }
    }

    /// Whether a tensor of this format with some elements set to zero (a ReLU, or the ReLU's
    /// gradient) is again a value of it, so that result needs no rounding: any scalar format
    /// with a zero, and `bfp` or MX blocks of integer elements (bfp, MXINT8). Zeroing elements
    /// can only lower a block's largest magnitude, so its shared exponent stays or falls; every
    /// remaining element, an integer times the old step, is then an integer times the new, finer
    /// step, and below `2^(emax+1)` new steps, so within the element's range. Not float
    /// elements (MXFP8: an element whose significand exceeds the element maximum's can become the
    /// largest and clip), nor QPyTorch's formats, which round by their own rules. A block
    /// holding NaN reads NaN everywhere, so zeroing part of it is not a value: callers check
    /// for NaN. `tests/fast_paths.rs` checks the claim against the quantizer.
    pub fn closed_under_zeroing(&self) -> bool {
        match self {
            Format::Float(f) => f.has_zero(),
            Format::Fixed(_) => true,
            Format::Block(b) => {
                b.kind() != BlockKind::QBfp && matches!(b.element(), Element::Fixed(_))
            }
            Format::QTorch(_) | Format::QFixed(_) => false,
        }
    }

    /// Whether every value is exactly an `f32`, so the `f32` carrier can hold it.
    pub fn fits_f32(&self) -> bool {
        match self {
            Format::Float(f) => f.fits_f32(),
            Format::Fixed(f) => f.fits_f32(),
            Format::Block(b) => match b.element() {
                // Scaled by up to 2^+-127: the element's span must stay inside f32.
                Element::Float(f) => {
                    f.man_bits() <= 23 && f.limits().emin - (f.man_bits() as i32) >= -22
                }
                Element::Fixed(f) => f.wl() <= 24 && f.fl() <= 22,
            },
            Format::QTorch(_) | Format::QFixed(_) => true,
        }
    }

    /// Whether the format groups elements into blocks.
    pub fn is_block(&self) -> bool {
        matches!(self, Format::Block(_))
    }

    /// Quantize one value of a scalar format (`None` for block formats, whose result depends on
    /// the neighbours). `random` is the element's random word for stochastic rounding.
    pub fn quantize_scalar(&self, x: f64, rounding: Rounding, random: u32) -> Option<f64> {
        Some(match self {
            Format::Float(f) => f.quantize(x, rounding, random),
            Format::Fixed(f) => f.quantize(x, rounding, random),
            Format::QTorch(q) => f64::from(q.quantize_f32(x as f32, rounding, random)),
            Format::QFixed(q) => f64::from(q.quantize_f32(x as f32, rounding, random)),
            Format::Block(_) => return None,
        })
    }

    /// The bit pattern of a representable value of a scalar format (`None` for block formats
    /// and for `qfixed` without `clamp`, whose values no word holds; a clamped `qfixed` codes
    /// NaN as 0).
    pub fn encode(&self, v: f64) -> Option<u64> {
        match self {
            Format::Float(f) => Some(f.encode(v)),
            Format::Fixed(f) => Some(f.encode(v)),
            Format::QTorch(q) => Some(q.layout().encode(v)),
            Format::QFixed(q) => q.layout().map(|l| l.encode(v)),
            Format::Block(_) => None,
        }
    }

    /// The value of a bit pattern of a scalar format (`None` for block formats and for
    /// `qfixed` without `clamp`).
    pub fn decode(&self, code: u64) -> Option<f64> {
        match self {
            Format::Float(f) => Some(f.decode(code)),
            Format::Fixed(f) => Some(f.decode(code)),
            Format::QTorch(q) => Some(q.layout().decode(code)),
            Format::QFixed(q) => q.layout().map(|l| l.decode(code)),
            Format::Block(_) => None,
        }
    }

    /// Whether the format rounds with `rounding`: QPyTorch's formats (`qtorch`, `qfixed`,
    /// `qbfp`) have only their "nearest" and "stochastic"; `Err` says which they are.
    pub fn check_rounding(&self, rounding: Rounding) -> Result<(), &'static str> {
        let (nearest, allowed) = match self {
            Format::QTorch(_) => (
                Rounding::NearestAway,
                "QPyTorch's float_quantize has only rna (its \"nearest\") and sr with 32 bits \
                 (its \"stochastic\")",
            ),
            Format::Block(b) if b.kind() == BlockKind::QBfp => (
                Rounding::NearestAway,
                "QPyTorch's block_quantize has only rna (its \"nearest\": half a unit added, \
                 then truncated) and sr with 32 bits (its \"stochastic\")",
            ),
            Format::QFixed(_) => (
                Rounding::NearestEven,
                "QPyTorch's fixed_point_quantize has only rne (its \"nearest\", nearbyint) and \
                 sr with 32 bits (its \"stochastic\")",
            ),
            _ => return Ok(()),
        };
        if qtorch::supports(nearest, rounding) {
            Ok(())
        } else {
            Err(allowed)
        }
    }
}
