//! `Linear`: a dense layer `z = a W + b` on a batch `a` (`B x in`), `W` stored `in x out`,
//! the optional bias `b` a row `1 x out`.
//!
//! On the datapath the product `a W` runs on the MAC (operands converted to its input formats
//! when they are not already values of them), rounded to the activations format; the bias is
//! added on the vector unit ([`Op::BiasAdd`], rounded to the activations format again).
//! Backward: the weight gradient `a^T e` and the error `e W^T` on the MAC, both in the
//! gradients format; the bias gradient is the column sums of the error ([`Op::SumRows`]; the
//! mean loss's `1 / B` is already in the error).

use ndarray::{ArrayD, ArrayViewD, Axis, Ix2};
use petgraph::graph::NodeIndex;

use super::layer::{Init, Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::Op;

/// A dense layer, the `index`-th of its model (its tensors are named `z{index}`,
/// `dense{index}.weight`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// Position among the model's dense layers.
    pub index: usize,
    /// Inputs per example.
    pub fan_in: usize,
    /// Outputs per example.
    pub fan_out: usize,
    /// Whether it adds a bias row.
    pub bias: bool,
    /// How the weight starts.
    pub init: Init,
}

fn matrix(a: ArrayViewD<'_, f64>) -> ndarray::ArrayView2<'_, f64> {
    a.into_dimensionality::<Ix2>()
        .expect("a dense layer works on matrices (checked by output_shape)")
}

impl Layer for Linear {
    fn kind(&self) -> &'static str {
        // As its parameters are named (`dense0.weight`), and so its scope in cost reports.
        "dense"
    }

    fn params(&self) -> Vec<ParamSpec> {
        let i = self.index;
        let stream = format!("init/w{i}");
        let mut p = vec![ParamSpec {
            name: format!("dense{i}.weight"),
            shape: vec![self.fan_in, self.fan_out],
            init: self.init,
            bias: false,
            grad: format!("grad{i}"),
            stream: stream.clone(),
        }];
        if self.bias {
            p.push(ParamSpec {
                name: format!("dense{i}.bias"),
                shape: vec![1, self.fan_out],
                init: Init::Zeros,
                bias: true,
                grad: format!("gradb{i}"),
                stream,
            });
        }
        p
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError> {
        let input = inputs[0];
        if input != [self.fan_in] {
            return Err(ModelError::Shape(format!(
                "linear layer {} takes {} features per example, got shape {input:?}",
                self.index, self.fan_in
            )));
        }
        Ok(vec![self.fan_out])
    }

    fn forward(&self, params: &[&ArrayD<f64>], x: &[ArrayViewD<f64>]) -> ArrayD<f64> {
        let mut z = matrix(x[0].view()).dot(&matrix(params[0].view()));
        if self.bias {
            z += &matrix(params[1].view());
        }
        z.into_dyn()
    }

    fn backward(
        &self,
        params: &[&ArrayD<f64>],
        x: &[ArrayViewD<f64>],
        _y: ArrayViewD<f64>,
        dy: ArrayViewD<f64>,
        need_dx: &[bool],
    ) -> (Vec<Option<ArrayD<f64>>>, Vec<ArrayD<f64>>) {
        let (x, e) = (matrix(x[0].view()), matrix(dy));
        let mut grads = vec![x.t().dot(&e).into_dyn()];
        if self.bias {
            grads.push(e.sum_axis(Axis(0)).insert_axis(Axis(0)).into_dyn());
        }
        let dx = need_dx[0].then(|| e.dot(&matrix(params[0].view()).t()).into_dyn());
        (vec![dx], grads)
    }

    fn build_forward(
        &self,
        b: &mut Builder,
        x: &[NodeIndex],
        params: &[NodeIndex],
    ) -> Result<NodeIndex, ModelError> {
        let i = self.index;
        let act = b.act();
        let rw = b.weight_rounding();
        let z = b.matmul(&format!("z{i}"), (x[0], false), (params[0], false), act, rw)?;
        if !self.bias {
            return Ok(z);
        }
        b.op(
            Op::BiasAdd,
            &format!("zb{i}"),
            act.0,
            act.1,
            act.2,
            &[z, params[1]],
        )
    }

    fn build_backward(
        &self,
        b: &mut Builder,
        x: &[NodeIndex],
        _y: NodeIndex,
        err: NodeIndex,
        params: &[NodeIndex],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<NodeIndex>>, Vec<NodeIndex>), ModelError> {
        let i = self.index;
        let grad = b.grad();
        let mut grads = Vec::with_capacity(2);
        if self.bias {
            let (f, r, role) = grad;
            grads.push(b.op(Op::SumRows, &format!("gradb{i}"), f, r, role, &[err])?);
        }
        let gw = b.matmul(
            &format!("grad{i}"),
            (x[0], true),
            (err, false),
            grad,
            grad.1,
        )?;
        grads.insert(0, gw);
        let dx = if need_dx[0] {
            let rw = b.weight_rounding();
            Some(b.matmul(&format!("gh{i}"), (err, false), (params[0], true), grad, rw)?)
        } else {
            None
        };
        Ok((vec![dx], grads))
    }

    fn error_name(&self) -> String {
        format!("err{}", self.index + 1)
    }
}
