//! `MSE`: least squares, the mean over the batch of `½ (ŷ − y)²` (HALP's `f_i` for linear
//! regression). On the datapath the residual `ŷ − y` and the error `(ŷ − y) / B` are vector-unit
//! ops in the gradients format.

use ndarray::{ArrayD, ArrayViewD, Axis};
use petgraph::graph::NodeIndex;

use super::layer::Loss;
use super::{Builder, ModelError};
use crate::graph::Op;
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
}
