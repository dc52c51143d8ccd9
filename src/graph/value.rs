//! A node's value in the executor: `f64` values, or `f32` values kept as a kernel produced them
//! (an `f32` rounding kernel's output, a GEMM's accumulators that are `f32` values, a held ReLU
//! of either). A rounded activation or gradient is read next by a GEMM (which
//! narrows its operands to `f32`), a ReLU or a bias add; widening every rounded tensor to
//! `f64` and narrowing it again cost two passes per node. An op that computes in `f64` reads
//! an `f32` value widened ([`Value::wide`]); the loops that read either carrier
//! ([`crate::graph::loops::binary`], [`crate::graph::loops::sum_rows`]) convert each element as
//! they read it, exactly (every `f32` is an `f64`), so the results are the same bits whichever
//! carrier a value is on. Only the fast path produces `f32` values
//! ([`crate::graph::exec::Path::Fast`]); the kept outputs are widened at the end of the step.

use std::borrow::Cow;

/// A node's value, in standard order.
#[derive(Clone, Debug)]
pub(super) enum Value<'a> {
    /// `f64` values (feeds are borrowed).
    Wide(Cow<'a, [f64]>),
    /// `f32` values (a rounding's output on the `f32` kernels, a GEMM's `f32` accumulators, or
    /// a held ReLU of one).
    Narrow(Vec<f32>),
}

/// A borrowed [`Value`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Slice<'a> {
    /// `f64` values.
    Wide(&'a [f64]),
    /// `f32` values.
    Narrow(&'a [f32]),
}

impl Value<'_> {
    /// How many values.
    pub(super) fn len(&self) -> usize {
        match self {
            Value::Wide(v) => v.len(),
            Value::Narrow(v) => v.len(),
        }
    }

    /// The values as `f64`: borrowed, or widened.
    pub(super) fn wide(&self) -> Cow<'_, [f64]> {
        match self {
            Value::Wide(v) => Cow::Borrowed(v),
            Value::Narrow(v) => Cow::Owned(widen(v)),
        }
    }

    /// The values as `f32` (for a GEMM whose MAC inputs fit `f32`, so every value is one):
    /// borrowed, or narrowed.
    pub(super) fn narrow(&self) -> Cow<'_, [f32]> {
        match self {
            Value::Wide(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            Value::Narrow(v) => Cow::Borrowed(v),
        }
    }

    /// The values borrowed on their carrier.
    pub(super) fn slice(&self) -> Slice<'_> {
        match self {
            Value::Wide(v) => Slice::Wide(v),
            Value::Narrow(v) => Slice::Narrow(v),
        }
    }

    /// The values as an owned `f64` vector.
    pub(super) fn into_wide(self) -> Vec<f64> {
        match self {
            Value::Wide(v) => v.into_owned(),
            Value::Narrow(v) => widen(&v),
        }
    }

    /// The value owned (a borrowed feed copied), so the borrow of the step's values ends.
    pub(super) fn into_owned(self) -> Value<'static> {
        match self {
            Value::Wide(v) => Value::Wide(Cow::Owned(v.into_owned())),
            Value::Narrow(v) => Value::Narrow(v),
        }
    }
}

/// `f32` values as `f64` (exact).
fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Evaluate `$body` with `$a` bound to the slice of a [`Slice`], whatever its carrier (one
/// monomorphized body per carrier, not a conversion per element through a `match`).
macro_rules! on_slice {
    ($x:expr, |$a:ident| $body:expr) => {
        match $x {
            $crate::graph::value::Slice::Wide($a) => $body,
            $crate::graph::value::Slice::Narrow($a) => $body,
        }
    };
}
pub(super) use on_slice;

/// [`on_slice!`] of two [`Slice`]s: one body per pair of carriers.
macro_rules! on_slices {
    ($x:expr, $y:expr, |$a:ident, $b:ident| $body:expr) => {
        $crate::graph::value::on_slice!($x, |$a| $crate::graph::value::on_slice!($y, |$b| $body))
    };
}
pub(super) use on_slices;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every carrier conversion is exact and round-trips.
    #[test]
    fn carriers_convert_exactly() {
        let narrow = Value::Narrow(vec![1.5, -0.0, f32::MAX, f32::MIN_POSITIVE / 4.0]);
        let wide = narrow.wide().into_owned();
        assert_eq!(wide, vec![1.5, -0.0, f64::from(f32::MAX), 2f64.powi(-128)]);
        assert!(wide[1].is_sign_negative());
        let back = Value::Wide(Cow::Owned(wide.clone()));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let Value::Narrow(n) = &narrow else {
            unreachable!()
        };
        assert_eq!(bits(&back.narrow()), bits(n));
        assert!(matches!(narrow.slice(), Slice::Narrow(_)));
        assert!(matches!(back.slice(), Slice::Wide(_)));
        assert_eq!(narrow.into_wide(), wide);
    }
}
