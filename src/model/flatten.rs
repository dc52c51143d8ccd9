//! `Flatten`: an image `[C, H, W]` seen as `C H W` features, for the dense layers after the
//! convolutions. A batch is already stored one example per row in NCHW order
//! ([`crate::graph::image`]), so flattening changes the shape the model tracks and nothing in
//! memory: no op, no work, the error passed through.

use ndarray::{ArrayD, ArrayViewD};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames};
use super::layer::{Layer, ParamSpec};
use super::{Builder, ModelError};

/// Flattens one example's shape to a vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Flatten {
    /// Position among the model's flattens (names its error when it is the last layer).
    pub index: usize,
}

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }

    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError> {
        Ok(vec![inputs[0].iter().product()])
    }

    fn forward(&self, _params: &[&ArrayD<f64>], x: &[ArrayViewD<f64>]) -> ArrayD<f64> {
        x[0].to_owned()
    }

    fn backward(
        &self,
        _params: &[&ArrayD<f64>],
        _x: &[ArrayViewD<f64>],
        _y: ArrayViewD<f64>,
        dy: ArrayViewD<f64>,
        need_dx: &[bool],
    ) -> (Vec<Option<ArrayD<f64>>>, Vec<ArrayD<f64>>) {
        (vec![need_dx[0].then(|| dy.to_owned())], Vec::new())
    }

    fn build_forward(
        &self,
        _b: &mut Builder,
        x: &[NodeIndex],
        _params: &[NodeIndex],
    ) -> Result<NodeIndex, ModelError> {
        Ok(x[0])
    }

    fn build_backward(
        &self,
        _b: &mut Builder,
        _x: &[NodeIndex],
        _y: NodeIndex,
        err: NodeIndex,
        _params: &[NodeIndex],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<NodeIndex>>, Vec<NodeIndex>), ModelError> {
        Ok((vec![need_dx[0].then_some(err)], Vec::new()))
    }

    fn error_name(&self) -> String {
        format!("flatten{}.err", self.index)
    }

    /// The input's offset, value and centre themselves (nothing moves); only the gradient
    /// arriving at the output has a cache of its own (`flatten{index}.cg`).
    fn centred_forward(
        &self,
        _cx: &mut Centring,
        x: &[ValueId],
        _params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let n = |what: &str| format!("flatten{}.{what}", self.index);
        let names = ValueNames {
            full: n("a"),
            offset: n("dz"),
            centre: n("ca"),
            centre_grad: n("cg"),
            grad_offset: n("dg"),
        };
        Ok((CentredOut::Same(x[0]), names))
    }

    /// The arriving gradient (offset and centre) passes through.
    fn centred_backward(
        &self,
        _cx: &mut Centring,
        _x: &[ValueId],
        _y: ValueId,
        err: CentredGrad,
        _params: &[CentredParam],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<CentredGrad>>, Vec<NodeIndex>), ModelError> {
        Ok((vec![need_dx[0].then_some(err)], Vec::new()))
    }
}
