//! How the SVRG family's low-precision iterate is scaled: the codes a weight format gives it
//! ([`codes`]: integer codes of fixed point and integer block formats, or the float format
//! itself) and HALP's strong-convexity constant `mu` from the problem ([`strong_convexity`]),
//! which set the grid `delta = ||g~|| / (mu L)` (see the parent module's docs).

use ndarray::Array2;

use crate::algo::AlgoError;
use crate::format::{Element, FixedFormat, Format};
use crate::model::{Model, ModelKind};
use crate::workload::linalg::symmetric_eigenvalues;

/// The iterate's codes on a low-precision architecture: `w = scale v` per code `v` in `format`,
/// with `scale = delta / ulp` (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Codes {
    /// The format of `v`.
    pub format: Format,
    /// The value of one integer step of `v` (`2^-fl` for fixed point, 1 for integer codes and
    /// float formats), so that `w = delta k` with `k = v / ulp`.
    pub ulp: f64,
    /// The magnitude of `v / ulp` that HALP's re-scaling maps to the radius `||g~|| / mu`:
    /// `2^(b-1) - 1` for `b`-bit integer codes; for a float format of `b` bits the same, but at
    /// most a quarter of the format's largest value, so that an iterate leaving the ball does not
    /// overflow.
    pub levels: f64,
}

/// The codes of the weight format `w` with `bits` bits (0 = the weight format's), or why there
/// are none (see the module docs).
pub fn codes(w: Format, bits: u64) -> Result<Codes, String> {
    let integer = |wl: u32| -> Result<u32, String> {
        let b = if bits == 0 { u64::from(wl) } else { bits };
        if !(2..=u64::from(wl)).contains(&b) {
            return Err(format!(
                "bits = {b}: the weight format `{w}` holds integer codes of 2..={wl} bits"
            ));
        }
        Ok(b as u32)
    };
    let levels = |b: u32| 2f64.powi(b as i32 - 1) - 1.0;
    let fixed = |b: u32, fl: i32, symmetric: bool| {
        FixedFormat::new(b, fl, true, true, symmetric).map(Format::Fixed)
    };
    match w {
        Format::Fixed(f) if !f.signed() => Err(format!(
            "the weight format `{w}` is unsigned; the iterate's codes need a sign"
        )),
        Format::Fixed(f) => {
            let b = integer(f.wl())?;
            Ok(Codes {
                format: fixed(b, f.fl(), f.symmetric())?,
                ulp: f.step(),
                levels: levels(b),
            })
        }
        Format::Block(blk) if matches!(blk.element(), Element::Fixed(_)) => {
            let b = integer(blk.bits())?;
            Ok(Codes {
                format: fixed(b, 0, true)?,
                ulp: 1.0,
                levels: levels(b),
            })
        }
        _ => {
            if bits != 0 && bits != u64::from(w.bits()) {
                return Err(format!(
                    "bits = {bits}: the weight format `{w}` is a float format, which holds the \
                     iterate itself ({} bits); leave bits at 0",
                    w.bits()
                ));
            }
            Ok(Codes {
                format: w,
                ulp: 1.0,
                levels: levels(w.bits()).min(largest(&w) / 4.0),
            })
        }
    }
}

/// The largest finite value of a float format (block formats: of their element times the
/// largest shared scale, `2^127`).
fn largest(f: &Format) -> f64 {
    match f {
        Format::Float(x) => x.limits().max,
        Format::QTorch(q) => q.layout().limits().max,
        Format::QFixed(q) => q.range().1,
        Format::Block(b) => match b.element() {
            Element::Float(x) => x.limits().max * 2f64.powi(127),
            Element::Fixed(x) => x.max_value() * 2f64.powi(127),
        },
        Format::Fixed(x) => x.max_value(),
    }
}

/// The strong-convexity constant `mu` of the training objective, for HALP's re-scaling when the
/// `mu` hyperparameter is 0: for least squares (mean squared error / 2, plus `l2/2 ||w||^2`)
/// the smallest eigenvalue of `X^T X / N` plus `l2`, exact; for L2-regularised logistic
/// regression `l2`, a lower bound (the
/// cross-entropy's Hessian is positive semi-definite). The HALP paper picks `mu` by hand (3 in
/// Fig. 1); this is the value its analysis asks for.
pub fn strong_convexity(model: &Model, x: &Array2<f64>) -> Result<f64, AlgoError> {
    let bad = |reason: String| AlgoError::BadHyper {
        name: "mu".into(),
        reason: format!("0 (from the problem): {reason}; set mu > 0"),
    };
    let l2 = model.l2();
    match model.kind() {
        ModelKind::Linear => {
            let n = x.nrows().max(1) as f64;
            let gram = x.t().dot(x) / n;
            let eig =
                symmetric_eigenvalues(gram.view()).map_err(|e| AlgoError::Data(e.to_string()))?;
            let mu = eig.first().copied().unwrap_or(0.0);
            let top = eig.last().copied().unwrap_or(0.0);
            if mu > 1e-12 * top && mu > 0.0 {
                Ok(mu + l2)
            } else if l2 > 0.0 {
                Ok(mu.max(0.0) + l2)
            } else {
                Err(bad(format!(
                    "the least-squares objective is not strongly convex (the smallest \
                     eigenvalue of X^T X / N is {mu:e})"
                )))
            }
        }
        ModelKind::Logistic if l2 > 0.0 => Ok(l2),
        ModelKind::Logistic => Err(bad(
            "logistic regression without l2 is not strongly convex".into()
        )),
        _ => Err(bad("no bound for this model".into())),
    }
}
