//! `MSE`: least squares, the mean over the batch of `½ (ŷ − y)²` (HALP's `f_i` for linear
//! regression). On the datapath the residual `ŷ − y` and the error `(ŷ − y) / B` are vector-unit
//! ops in the gradients format.

use ndarray::{ArrayD, ArrayViewD, Axis};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, Centring, ValueId};
use super::layer::Loss;
use super::{Builder, ModelError};
use crate::graph::{Op, Role};
use crate::workload::Targets;

/// Mean squared error over one real-valued output per example.
#[derive(Clone, Debug, PartialEq)]
pub struct Mse;

impl Loss for Mse {
    fn kind(&self) -> &'static str {
        "mse"
    }

    fn classes(&self) -> Option<usize> {
        None
    }

    fn value_and_grad(&self, out: ArrayViewD<f64>, y: &Targets) -> (f64, ArrayD<f64>) {
        let Targets::Values(t) = y else {
            panic!("least squares needs real-valued targets (checked when the model is built)")
        };
        let n = t.len().max(1) as f64;
        let mut grad = out.to_owned();
        let mut sum = 0.0;
        for (o, &t) in grad.index_axis_mut(Axis(1), 0).iter_mut().zip(t) {
            let r = *o - t;
            sum += 0.5 * r * r;
            *o = r / n;
        }
        (sum / n, grad)
    }

    fn predict(&self, out: ArrayD<f64>) -> ArrayD<f64> {
        out
    }

    fn build_error(
        &self,
        b: &mut Builder,
        out: NodeIndex,
        y: Option<NodeIndex>,
        name: &str,
    ) -> Result<NodeIndex, ModelError> {
        let y = y.ok_or_else(|| ModelError::Data("least squares needs targets".into()))?;
        let (f, r, role) = b.grad();
        let resid = b.op(Op::Sub, "resid", f, r, role, &[out, y])?;
        let batch = b.b.meta(out).shape[0].max(1) as f64;
        let scale = Op::Scale {
            c: (1.0 / batch).into(),
        };
        b.op(scale, name, f, r, role, &[resid])
    }

    /// The error at `w` minus the error at the centre: `((s - y) - (s~ - y)) / B = (s - s~) / B`
    /// from the output at `w` and the cached output (full precision, rounded once into the
    /// gradients format); the centre's error `(s~ - y) / B` recomputed at the batch's scale
    /// (coefficient 1).
    fn centred_error(
        &self,
        cx: &mut Centring,
        out: ValueId,
        y: Option<NodeIndex>,
    ) -> Result<CentredGrad, ModelError> {
        let y = y.ok_or_else(|| ModelError::Data("least squares needs targets".into()))?;
        let name = cx
            .names(out)
            .map(|n| n.grad_offset.clone())
            .unwrap_or_default();
        let s = cx.full(out)?;
        let c0 = cx.centre(out)?;
        let b = cx.b();
        let scale = Op::Scale {
            c: (1.0 / b.b.meta(s).shape[0].max(1) as f64).into(),
        };
        let role = Role::Gradients;
        let d = b.f32op(Op::Sub, "e", role, &[s, c0])?;
        let (f, r, _) = b.grad();
        let dg = b.op(scale, &name, f, r, role, &[d])?;
        let r0 = b.f32op(Op::Sub, "e0.resid", role, &[c0, y])?;
        let e0 = b.f32op(scale, "e0", role, &[r0])?;
        Ok(CentredGrad {
            offset: dg,
            centre: Some((e0, 1.0)),
        })
    }
}
