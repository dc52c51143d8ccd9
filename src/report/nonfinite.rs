//! Serde helpers for `f64` fields that may be NaN or infinite (a diverged run's loss): JSON has
//! no such numbers and `serde_json` would write `null` and then refuse to read it back, so these
//! write finite values as numbers and the others as the strings `"NaN"`, `"inf"`, `"-inf"`, and
//! read both. Use with `#[serde(with = "nonfinite")]` on an `f64` and
//! `#[serde(with = "nonfinite::map")]` on a `BTreeMap<String, f64>`, `nonfinite::vec` on a
//! `Vec<f64>`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An `f64` with the NaN/infinity-as-string encoding.
#[derive(Clone, Copy)]
struct F(f64);

impl Serialize for F {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.is_finite() {
            s.serialize_f64(x)
        } else if x.is_nan() {
            s.serialize_str("NaN")
        } else if x > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

struct FVisitor;

impl Visitor<'_> for FVisitor {
    type Value = F;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or one of \"NaN\", \"inf\", \"-inf\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<F, E> {
        Ok(F(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<F, E> {
        Ok(F(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<F, E> {
        Ok(F(v as f64))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<F, E> {
        match v {
            "NaN" | "nan" => Ok(F(f64::NAN)),
            "inf" | "+inf" | "Infinity" => Ok(F(f64::INFINITY)),
            "-inf" | "-Infinity" => Ok(F(f64::NEG_INFINITY)),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for F {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F, D::Error> {
        d.deserialize_any(FVisitor)
    }
}

/// Serialize one `f64` (finite as a number, else as a string).
pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    F(*x).serialize(s)
}

/// Deserialize one `f64` written by [`serialize`] (or any JSON number).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    F::deserialize(d).map(|f| f.0)
}

/// The same encoding for every value of a `BTreeMap<String, f64>` (metrics, breakdowns).
pub mod map {
    use super::*;

    /// Serialize the map with each value encoded as in [`super::serialize`].
    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, F(*v))))
    }

    /// Deserialize a map written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let m = BTreeMap::<String, F>::deserialize(d)?;
        Ok(m.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

/// The same encoding for every element of a `Vec<f64>` (per-coordinate moments).
pub mod vec {
    use super::*;

    /// Serialize the vector with each element encoded as in [`super::serialize`].
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| F(*x)))
    }

    /// Deserialize a vector written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let v = Vec::<F>::deserialize(d)?;
        Ok(v.into_iter().map(|f| f.0).collect())
    }
}
