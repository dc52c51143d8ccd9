//! `ReLU`: `h = max(z, 0)` elementwise, on the vector unit in the activations format; its
//! backward passes the error where the input is positive ([`Op::ReluGrad`], gradients format).

use ndarray::{ArrayD, ArrayViewD, Zip};
use petgraph::graph::NodeIndex;

use super::layer::{Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::Op;

/// A ReLU after the model's dense layer `index` (its tensors are `h{index}` and, backward,
/// `err{index + 1}`: the error of that dense layer's output, as a last dense layer's error is
/// named).
#[derive(Clone, Debug, PartialEq)]
pub struct Relu {
    /// The dense layer it follows.
    pub index: usize,
}

impl Layer for Relu {
    fn kind(&self) -> &'static str {
        "relu"
    }

    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, ModelError> {
        Ok(input.to_vec())
    }

    fn forward(&self, _params: &[&ArrayD<f64>], x: ArrayViewD<f64>) -> ArrayD<f64> {
        x.mapv(|v| v.max(0.0))
    }

    fn backward(
        &self,
        _params: &[&ArrayD<f64>],
        x: ArrayViewD<f64>,
        _y: ArrayViewD<f64>,
        dy: ArrayViewD<f64>,
        need_dx: bool,
    ) -> (Option<ArrayD<f64>>, Vec<ArrayD<f64>>) {
        let dx = need_dx.then(|| {
            let mut d = dy.to_owned();
            Zip::from(&mut d).and(&x).for_each(|d, &z| {
                if z <= 0.0 {
                    *d = 0.0;
                }
            });
            d
        });
        (dx, Vec::new())
    }

    fn build_forward(
        &self,
        b: &mut Builder,
        x: NodeIndex,
        _params: &[NodeIndex],
    ) -> Result<NodeIndex, ModelError> {
        let (f, r, role) = b.act();
        b.op(Op::Relu, &format!("h{}", self.index), f, r, role, &[x])
    }

    fn build_backward(
        &self,
        b: &mut Builder,
        x: NodeIndex,
        _y: NodeIndex,
        err: NodeIndex,
        _params: &[NodeIndex],
        need_dx: bool,
    ) -> Result<(Option<NodeIndex>, Vec<NodeIndex>), ModelError> {
        if !need_dx {
            return Ok((None, Vec::new()));
        }
        let (f, r, role) = b.grad();
        let name = format!("err{}", self.index + 1);
        let dx = b.op(Op::ReluGrad, &name, f, r, role, &[err, x])?;
        Ok((Some(dx), Vec::new()))
    }

    fn error_name(&self) -> String {
        format!("err_h{}", self.index)
    }
}
