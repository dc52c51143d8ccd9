//! Rounding units: the rule that picks one of the two representable neighbours of a value.
//!
//! Every format quantizes by reducing a value to an integer count `n` of quanta plus a discarded
//! fraction, then asks [`Rounding::round_up`] whether to add one quantum to the magnitude. That
//! single decision function is shared by all formats, so each mode has exactly one definition.
//! Rounding works on sign and magnitude: a mode that is symmetric (`rne`, `rna`, `rtz`, `odd`,
//! `sr`) treats `-x` as the mirror of `x`.

mod normal;
mod rng;

pub use normal::NORMAL_F32_BITS;
pub use rng::RandomStream;

/// Random bits behind one `RandomStream::normal_f64` draw (four 32-bit words).
pub const NORMAL_BITS: u64 = 128;
/// Random bits behind one `RandomStream::uniform_f64` draw (two 32-bit words).
pub const UNIFORM_BITS: u64 = 64;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A rounding mode, chosen at run time from a spec string such as `rne` or `sr:bits=8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rounding {
    /// Round to nearest, ties to even (IEEE 754 default).
    NearestEven,
    /// Round to nearest, ties away from zero (QPyTorch's "nearest").
    NearestAway,
    /// Round toward zero (truncate the magnitude).
    TowardZero,
    /// Round toward +infinity.
    Up,
    /// Round toward -infinity.
    Down,
    /// Round to odd: an inexact result gets an odd last bit (exact for later double rounding).
    Odd,
    /// Stochastic rounding: round the magnitude up with probability equal to the discarded
    /// fraction, resolved to `bits` random bits (32 for the unqualified `sr`). The hardware
    /// model: a `bits`-wide random integer is added just below the kept bits and the sum is
    /// truncated, so probabilities are multiples of `2^-bits`.
    Stochastic {
        /// Random bits drawn per rounded value, 1..=32.
        bits: u32,
    },
}

/// A malformed rounding spec.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("rounding `{spec}`: {reason}")]
pub struct RoundingError {
    /// The text that was given.
    pub spec: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// The discarded part of a value, as seen by a rounding unit.
#[derive(Clone, Copy, Debug)]
pub struct Discarded {
    /// The first 32 bits of the discarded fraction, in units of `2^-32` of a quantum.
    pub frac32: u32,
    /// Whether any bit below those 32 is set.
    pub sticky: bool,
}

impl Discarded {
    /// Nothing was discarded: the value is exact.
    pub const EXACT: Discarded = Discarded {
        frac32: 0,
        sticky: false,
    };

    /// Whether the value was inexact.
    #[inline(always)]
    pub fn inexact(self) -> bool {
        self.frac32 != 0 || self.sticky
    }
}

impl Rounding {
    /// Every accepted spelling, for error messages and `--help`.
    pub const SPELLINGS: &'static str =
        "rne|nearest, rna, rtz, up, down, odd, sr|stochastic, sr:bits=N (N in 1..=32)";

    /// Every name a mode is spelled with (the `sr:bits=N` form aside), for suggestions.
    const NAMES: [&'static str; 18] = [
        "rne",
        "nearest",
        "nearest-even",
        "rna",
        "nearest-away",
        "rtz",
        "zero",
        "toward-zero",
        "up",
        "rup",
        "ceil",
        "down",
        "rdn",
        "floor",
        "odd",
        "rto",
        "sr",
        "stochastic",
    ];

    /// Whether the mode draws random bits.
    pub fn is_stochastic(self) -> bool {
        matches!(self, Rounding::Stochastic { .. })
    }

    /// Random bits drawn per rounded value (0 for deterministic modes).
    pub fn random_bits(self) -> u32 {
        match self {
            Rounding::Stochastic { bits } => bits,
            _ => 0,
        }
    }

    /// Whether an overflowing magnitude rounds to the largest finite value rather than past it
    /// (IEEE 754 section 7.4: the directed modes that point toward zero, and round-to-odd).
    #[inline(always)]
    pub fn overflow_to_max(self, negative: bool) -> bool {
        match self {
            Rounding::TowardZero | Rounding::Odd => true,
            Rounding::Up => negative,
            Rounding::Down => !negative,
            _ => false,
        }
    }

    /// Whether to add one quantum to the magnitude `n` (whose parity is `odd`), given the
    /// discarded fraction and, for stochastic rounding, the element's random word.
    #[inline(always)]
    pub fn round_up(self, negative: bool, odd: bool, d: Discarded, random: u32) -> bool {
        const HALF: u32 = 1 << 31;
        match self {
            Rounding::NearestEven => d.frac32 > HALF || (d.frac32 == HALF && (d.sticky || odd)),
            Rounding::NearestAway => d.frac32 >= HALF,
            Rounding::TowardZero => false,
            Rounding::Up => !negative && d.inexact(),
            Rounding::Down => negative && d.inexact(),
            Rounding::Odd => !odd && d.inexact(),
            Rounding::Stochastic { bits } => stochastic_carry(d.frac32, random, bits),
        }
    }
}

/// The carry out of adding the top `bits` bits of `random` to the top `bits` bits of the
/// discarded fraction: true with probability `floor(frac * 2^bits) / 2^bits`.
#[inline(always)]
pub fn stochastic_carry(frac32: u32, random: u32, bits: u32) -> bool {
    // `F + R >= 2^bits` for the top bits `F` and `R` is `F > 2^bits - 1 - R`, and the top bits of
    // `!random` are `2^bits - 1 - R`. Setting the low `32 - bits` bits of both sides keeps their
    // order decided by the top bits alone: the same test in 32-bit lanes with no sum and no
    // shift of the operands, so it vectorizes cheaply.
    let low = uncounted_bits(bits);
    (frac32 | low) > (!random | low)
}

/// The low `32 - bits` bits of a random word, which a unit with `bits` random bits ignores.
#[inline(always)]
pub fn uncounted_bits(bits: u32) -> u32 {
    u32::MAX >> bits.min(31) >> u32::from(bits >= 32)
}

impl FromStr for Rounding {
    type Err = RoundingError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| RoundingError {
            spec: spec.to_string(),
            reason,
        };
        let s = spec.trim().to_ascii_lowercase();
        Ok(match s.as_str() {
            "rne" | "nearest" | "nearest-even" => Rounding::NearestEven,
            "rna" | "nearest-away" => Rounding::NearestAway,
            "rtz" | "zero" | "toward-zero" => Rounding::TowardZero,
            "up" | "rup" | "ceil" => Rounding::Up,
            "down" | "rdn" | "floor" => Rounding::Down,
            "odd" | "rto" => Rounding::Odd,
            "sr" | "stochastic" => Rounding::Stochastic { bits: 32 },
            _ => {
                let rest = s
                    .strip_prefix("sr:")
                    .or_else(|| s.strip_prefix("stochastic:"))
                    .ok_or_else(|| {
                        err(format!(
                            "unknown mode{}; allowed: {}",
                            crate::suggest::suggestion(&s, Self::NAMES),
                            Self::SPELLINGS
                        ))
                    })?;
                let value = rest
                    .strip_prefix("bits=")
                    .ok_or_else(|| err(format!("expected `bits=N` after `sr:`, found `{rest}`")))?;
                let bits: u32 = value
                    .parse()
                    .map_err(|_| err(format!("bits = `{value}`: must be a whole number 1..=32")))?;
                if !(1..=32).contains(&bits) {
                    return Err(err(format!("bits = {bits}: must be 1..=32")));
                }
                Rounding::Stochastic { bits }
            }
        })
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rounding::NearestEven => f.write_str("rne"),
            Rounding::NearestAway => f.write_str("rna"),
            Rounding::TowardZero => f.write_str("rtz"),
            Rounding::Up => f.write_str("up"),
            Rounding::Down => f.write_str("down"),
            Rounding::Odd => f.write_str("odd"),
            Rounding::Stochastic { bits: 32 } => f.write_str("sr"),
            Rounding::Stochastic { bits } => write!(f, "sr:bits={bits}"),
        }
    }
}
