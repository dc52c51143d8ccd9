//! `ActionCounts`: what a kernel or a graph step did, in hardware actions, before pricing.
//!
//! Counting is separate from pricing (see ARCHITECTURE.md): the counts of one run can be priced
//! on many architectures. Compute and rounding actions are keyed by a typed [`ActionKey`] (the
//! formats and rounding unit that size the hardware), never by a string to be parsed back; the
//! text form is only written, in JSON (`lpsim gemm --json`) and messages:
//! - `mul["A x B"]`: multiplies with input formats A and B;
//! - `add["F"]`: additions performed (and rounded) in format F;
//! - `fma["A x B + C"]`: fused multiply-adds into accumulator format C;
//! - `quantize["F/R"]`: conversions to format F with rounding unit R;
//! - `mem["level"]`: bits read and written at a memory level.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::format::Format;
use crate::round::Rounding;

/// One compute or rounding action, with the formats (and rounding unit) that size its hardware:
/// the key of [`ActionCounts::actions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionKey {
    /// A multiply of a value of `a` by a value of `b`.
    Mul {
        /// Left input format.
        a: Format,
        /// Right input format.
        b: Format,
    },
    /// An addition rounded to `f`.
    Add {
        /// The format the sum is rounded to.
        f: Format,
    },
    /// A fused multiply-add `a x b + acc`, rounded once to `acc`.
    Fma {
        /// Left input format.
        a: Format,
        /// Right input format.
        b: Format,
        /// Accumulator format.
        acc: Format,
    },
    /// A conversion to `f` with rounding unit `r`.
    Quantize {
        /// The target format.
        f: Format,
        /// The rounding unit.
        r: Rounding,
    },
}

/// The action kinds of [`ActionKey`], as written (`ActionCounts` JSON, energy override keys).
pub const KEY_KINDS: [&str; 4] = ["mul", "add", "fma", "quantize"];

fn parse_format(s: &str) -> Result<Format, String> {
    s.trim().parse().map_err(|e| format!("{e}"))
}

fn parse_pair(s: &str) -> Result<(Format, Format), String> {
    let (a, b) = s
        .split_once(" x ")
        .ok_or_else(|| format!("`{s}` is not `A x B`"))?;
    Ok((parse_format(a)?, parse_format(b)?))
}

impl ActionKey {
    /// The kind's position in [`KEY_KINDS`].
    fn kind_index(&self) -> usize {
        match self {
            ActionKey::Mul { .. } => 0,
            ActionKey::Add { .. } => 1,
            ActionKey::Fma { .. } => 2,
            ActionKey::Quantize { .. } => 3,
        }
    }

    /// The kind, as written: `mul`, `add`, `fma` or `quantize` ([`KEY_KINDS`]).
    pub fn kind(&self) -> &'static str {
        KEY_KINDS[self.kind_index()]
    }

    /// Read a key written by a user (an energy override `kind:key` of an architecture file):
    /// `kind` one of [`KEY_KINDS`], `key` its text (`A x B`, `F`, `A x B + C`, `F/R`). `None`
    /// for an unknown kind; an error says what is wrong with the text of a known one.
    pub fn parse(kind: &str, key: &str) -> Option<Result<Self, String>> {
        let parsed = match kind {
            "mul" => parse_pair(key).map(|(a, b)| ActionKey::Mul { a, b }),
            "add" => parse_format(key).map(|f| ActionKey::Add { f }),
            "fma" => key
                .rsplit_once(" + ")
                .ok_or_else(|| format!("`{key}` is not `A x B + C`"))
                .and_then(|(ab, c)| {
                    let (a, b) = parse_pair(ab)?;
                    Ok(ActionKey::Fma {
                        a,
                        b,
                        acc: parse_format(c)?,
                    })
                }),
            "quantize" => key
                .rsplit_once('/')
                .ok_or_else(|| format!("`{key}` is not `F/R` (format/rounding)"))
                .and_then(|(f, r)| {
                    Ok(ActionKey::Quantize {
                        f: parse_format(f)?,
                        r: r.trim().parse().map_err(|e| format!("{e}"))?,
                    })
                }),
            _ => return None,
        };
        Some(parsed)
    }
}

impl fmt::Display for ActionKey {
    /// The key as written, without its kind: `A x B`, `F`, `A x B + C`, `F/R` (canonical specs).
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionKey::Mul { a, b } => write!(out, "{a} x {b}"),
            ActionKey::Add { f } => write!(out, "{f}"),
            ActionKey::Fma { a, b, acc } => write!(out, "{a} x {b} + {acc}"),
            ActionKey::Quantize { f, r } => write!(out, "{f}/{r}"),
        }
    }
}

/// Bits moved at one memory level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Bits read.
    pub read_bits: u64,
    /// Bits written.
    pub write_bits: u64,
}

/// Hardware actions counted while executing (or from a closed form such as
/// [`MacConfig::counts`](crate::arith::MacConfig::counts)), keyed by format (see the module
/// docs). Written as JSON with the maps `mul`, `add`, `fma`, `quantize` of text keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionCounts {
    /// Compute and rounding actions, by key.
    pub actions: BTreeMap<ActionKey, u64>,
    /// Random bits drawn by stochastic rounding units.
    pub random_bits: u64,
    /// Results that overflowed a float format's range (to infinity, NaN or its saturation value).
    pub overflows: u64,
    /// Results clamped by a saturating fixed-point unit.
    pub saturations: u64,
    /// Results wrapped around by a wrapping fixed-point unit.
    pub wraps: u64,
    /// Memory traffic by level name.
    pub mem: BTreeMap<String, Traffic>,
}

impl ActionCounts {
    /// No actions.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many `key` actions were counted.
    pub fn get(&self, key: &ActionKey) -> u64 {
        self.actions.get(key).copied().unwrap_or(0)
    }

    /// Record `n` actions `key` (stopping at 2^64 - 1, see [`ActionCounts::merge`]).
    pub fn record(&mut self, key: ActionKey, n: u64) {
        let c = self.actions.entry(key).or_default();
        *c = c.saturating_add(n);
    }

    /// Record `n` multiplies of `a` by `b`.
    pub fn record_mul(&mut self, a: &Format, b: &Format, n: u64) {
        self.record(ActionKey::Mul { a: *a, b: *b }, n);
    }

    /// Record `n` additions rounded to `f`.
    pub fn record_add(&mut self, f: &Format, n: u64) {
        self.record(ActionKey::Add { f: *f }, n);
    }

    /// Record `n` fused multiply-adds `a x b + acc`.
    pub fn record_fma(&mut self, a: &Format, b: &Format, acc: &Format, n: u64) {
        let (a, b, acc) = (*a, *b, *acc);
        self.record(ActionKey::Fma { a, b, acc }, n);
    }

    /// Record `n` conversions to `f` with rounding unit `r`, and the random bits they draw.
    pub fn record_quantize(&mut self, f: &Format, r: Rounding, n: u64) {
        self.record(ActionKey::Quantize { f: *f, r }, n);
        self.record_random_bits(r, n);
    }

    /// Record the random bits of `n` roundings with unit `r` (none unless it is stochastic).
    pub fn record_random_bits(&mut self, r: Rounding, n: u64) {
        let bits = n.saturating_mul(u64::from(r.random_bits()));
        self.random_bits = self.random_bits.saturating_add(bits);
    }

    /// Record `bits` read at memory level `level`.
    pub fn record_read(&mut self, level: &str, bits: u64) {
        self.traffic(level).read_bits += bits;
    }

    /// Record `bits` written at memory level `level`.
    pub fn record_write(&mut self, level: &str, bits: u64) {
        self.traffic(level).write_bits += bits;
    }

    /// The traffic of level `level`, added at zero when new (the name is copied only then: the
    /// executor records every operand of every step).
    fn traffic(&mut self, level: &str) -> &mut Traffic {
        if !self.mem.contains_key(level) {
            self.mem.insert(level.to_string(), Traffic::default());
        }
        self.mem.get_mut(level).expect("inserted above")
    }

    /// Add every count of `other` to `self`. A count that would pass 2^64 - 1 stays there
    /// ([`ActionCounts::saturated`]), and pricing refuses it, rather than wrapping to a small
    /// number.
    pub fn merge(&mut self, other: &ActionCounts) {
        for (&k, &n) in &other.actions {
            self.record(k, n);
        }
        for (dst, src) in [
            (&mut self.random_bits, other.random_bits),
            (&mut self.overflows, other.overflows),
            (&mut self.saturations, other.saturations),
            (&mut self.wraps, other.wraps),
        ] {
            *dst = dst.saturating_add(src);
        }
        for (k, t) in &other.mem {
            let e = self.traffic(k);
            e.read_bits = e.read_bits.saturating_add(t.read_bits);
            e.write_bits = e.write_bits.saturating_add(t.write_bits);
        }
    }

    /// Every count times `k` (stopping at 2^64 - 1: the same as merging `self` `k` times).
    pub fn times(&self, k: u64) -> ActionCounts {
        let mul = |n: u64| n.saturating_mul(k);
        ActionCounts {
            actions: self
                .actions
                .iter()
                .map(|(&key, &n)| (key, mul(n)))
                .collect(),
            random_bits: mul(self.random_bits),
            overflows: mul(self.overflows),
            saturations: mul(self.saturations),
            wraps: mul(self.wraps),
            mem: self
                .mem
                .iter()
                .map(|(level, t)| {
                    let t = Traffic {
                        read_bits: mul(t.read_bits),
                        write_bits: mul(t.write_bits),
                    };
                    (level.clone(), t)
                })
                .collect(),
        }
    }

    /// Whether a count reached 2^64 - 1 when merging, so that it no longer counts exactly.
    pub fn saturated(&self) -> bool {
        self.actions.values().any(|&n| n == u64::MAX)
            || [
                self.random_bits,
                self.overflows,
                self.saturations,
                self.wraps,
            ]
            .contains(&u64::MAX)
            || self
                .mem
                .values()
                .any(|t| t.read_bits == u64::MAX || t.write_bits == u64::MAX)
    }
}

impl Serialize for ActionCounts {
    /// The JSON form: `mul`, `add`, `fma`, `quantize` as maps from the keys' text to counts
    /// (sorted by text; two keys written alike are added), then the other fields.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut maps: [BTreeMap<String, u64>; 4] = Default::default();
        for (key, &n) in &self.actions {
            let c = maps[key.kind_index()].entry(key.to_string()).or_default();
            *c = c.saturating_add(n);
        }
        let mut st = s.serialize_struct("ActionCounts", 9)?;
        for (name, map) in KEY_KINDS.iter().zip(&maps) {
            st.serialize_field(name, map)?;
        }
        st.serialize_field("random_bits", &self.random_bits)?;
        st.serialize_field("overflows", &self.overflows)?;
        st.serialize_field("saturations", &self.saturations)?;
        st.serialize_field("wraps", &self.wraps)?;
        st.serialize_field("mem", &self.mem)?;
        st.end()
    }
}
