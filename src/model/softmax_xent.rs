//! `SoftmaxCrossEntropy`: the mean over the batch of `−log softmax(z)_y` for class labels `y`;
//! its error `(softmax(z) − onehot(y)) / B` is one vector-unit op ([`Op::SoftmaxXentGrad`], in
//! the gradients format). The model predicts `softmax(z)`.

use ndarray::{ArrayD, ArrayViewD, Axis};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, Centring, ValueId};
use super::layer::Loss;
use super::{Builder, ModelError};
use crate::graph::{Op, Role};
use crate::workload::Targets;

/// Softmax cross-entropy over `classes` logits per example.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxCrossEntropy {
    /// Number of classes.
    pub classes: usize,
}

/// Replaces each row (last axis) by its softmax, `exp(z − max z) / Σ exp(z − max z)`.
pub fn softmax_rows(z: &mut ArrayD<f64>) {
    let last = Axis(z.ndim() - 1);
    for mut row in z.lanes_mut(last) {
        let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row /= s;
    }
}

impl Loss for SoftmaxCrossEntropy {
    fn kind(&self) -> &'static str {
        "softmax_xent"
    }

    fn classes(&self) -> Option<usize> {
        Some(self.classes)
    }

    fn value_and_grad(&self, out: ArrayViewD<f64>, y: &Targets) -> (f64, ArrayD<f64>) {
        let Targets::Classes(c) = y else {
            panic!("cross-entropy needs class labels (checked when the model is built)")
        };
        let n = c.len().max(1) as f64;
        let mut grad = out.to_owned();
        let mut sum = 0.0;
        for (mut row, &c) in grad.axis_iter_mut(Axis(0)).zip(c) {
            let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let lse = m + row.mapv(|v| (v - m).exp()).sum().ln();
            sum += lse - row[c];
            row.mapv_inplace(|v| (v - lse).exp() / n);
            row[c] -= 1.0 / n;
        }
        (sum / n, grad)
    }

    fn predict(&self, mut out: ArrayD<f64>) -> ArrayD<f64> {
        softmax_rows(&mut out);
        out
    }

    fn build_error(
        &self,
        b: &mut Builder,
        out: NodeIndex,
        y: Option<NodeIndex>,
        name: &str,
    ) -> Result<NodeIndex, ModelError> {
        let y = y.ok_or_else(|| ModelError::Data("cross-entropy needs class labels".into()))?;
        let (f, r, role) = b.grad();
        b.op(Op::SoftmaxXentGrad, name, f, r, role, &[out, y])
    }

    /// The authors' `cross_entropy.py`: the error at `w` minus the error at the centre,
    /// `softmaxgrad(s) - softmaxgrad(s~)`, both on the vector unit in full precision from the
    /// logits at `w` and the cached logits (the centre's error recomputed at the batch's
    /// scale, coefficient 1), the difference rounded once into the gradients format.
    fn centred_error(
        &self,
        cx: &mut Centring,
        out: ValueId,
        y: Option<NodeIndex>,
    ) -> Result<CentredGrad, ModelError> {
        let y = y.ok_or_else(|| ModelError::Data("cross-entropy needs class labels".into()))?;
        let name = cx
            .names(out)
            .map(|n| n.grad_offset.clone())
            .unwrap_or_default();
        let s = cx.full(out)?;
        let c0 = cx.centre(out)?;
        let b = cx.b();
        let e = b.f32op(Op::SoftmaxXentGrad, "e", Role::Gradients, &[s, y])?;
        let e0 = b.f32op(Op::SoftmaxXentGrad, "e0", Role::Gradients, &[c0, y])?;
        let (f, r, role) = b.grad();
        let dg = b.op(Op::Sub, &name, f, r, role, &[e, e0])?;
        Ok(CentredGrad {
            offset: dg,
            centre: Some((e0, 1.0)),
        })
    }
}
