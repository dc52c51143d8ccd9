//! `ResidualAdd`: the join of a residual block, `y = a + b` for a branch `a` and its shortcut
//! `b` (He et al. 2016), on the vector unit in the activations format. Backward, the error
//! passes unchanged to both inputs (where an input also feeds other layers, the model adds the
//! errors, see [`super::Model::gradients`]).

use ndarray::{ArrayD, ArrayViewD};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames};
use super::layer::{Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::{Op, Role};

/// The `index`-th residual join of its model (its output is `res{index}`).
#[derive(Clone, Debug, PartialEq)]
pub struct ResidualAdd {
    /// Position among the model's residual joins.
    pub index: usize,
}

impl Layer for ResidualAdd {
    fn kind(&self) -> &'static str {
        "residual_add"
    }

    fn arity(&self) -> usize {
        2
    }

    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError> {
        if inputs[0] != inputs[1] {
            return Err(ModelError::Shape(format!(
                "residual join {}: the branch gives {:?} per example, the shortcut {:?}",
                self.index, inputs[0], inputs[1]
            )));
        }
        Ok(inputs[0].to_vec())
    }

    fn forward(&self, _params: &[&ArrayD<f64>], x: &[ArrayViewD<f64>]) -> ArrayD<f64> {
        &x[0] + &x[1]
    }

    fn backward(
        &self,
        _params: &[&ArrayD<f64>],
        _x: &[ArrayViewD<f64>],
        _y: ArrayViewD<f64>,
        dy: ArrayViewD<f64>,
        need_dx: &[bool],
    ) -> (Vec<Option<ArrayD<f64>>>, Vec<ArrayD<f64>>) {
        let dx = need_dx.iter().map(|&n| n.then(|| dy.to_owned())).collect();
        (dx, Vec::new())
    }

    fn build_forward(
        &self,
        b: &mut Builder,
        x: &[NodeIndex],
        _params: &[NodeIndex],
    ) -> Result<NodeIndex, ModelError> {
        let (f, r, role) = b.act();
        b.op(Op::Add, &format!("res{}", self.index), f, r, role, x)
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
        Ok((
            need_dx.iter().map(|&n| n.then_some(err)).collect(),
            Vec::new(),
        ))
    }

    fn error_name(&self) -> String {
        format!("err_res{}", self.index)
    }

    /// Linear: the output's offset is the sum of the inputs' offsets (`dres{index}`, the
    /// activations format; an input without an offset, the data, adds nothing; two such
    /// inputs give the value itself, `sres{index}`).
    fn centred_forward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        _params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let i = self.index;
        let names = ValueNames {
            full: format!("sres{i}"),
            offset: format!("dres{i}"),
            centre: format!("cres{i}"),
            centre_grad: format!("cgres{i}"),
            grad_offset: format!("dgres{i}"),
        };
        let offsets = [cx.offset(x[0])?, cx.offset(x[1])?];
        let out = match offsets {
            [Some(a), Some(b)] => {
                let (f, r, role) = cx.b().act();
                CentredOut::Offset(cx.b().op(Op::Add, &names.offset, f, r, role, &[a, b])?)
            }
            [Some(d), None] | [None, Some(d)] => CentredOut::Offset(d),
            [None, None] => {
                let full = [cx.full(x[0])?, cx.full(x[1])?];
                CentredOut::Full(
                    cx.b()
                        .f32op(Op::Add, &names.full, Role::Activations, &full)?,
                )
            }
        };
        Ok((out, names))
    }

    /// The arriving gradient (offset and centre) passes to both inputs unchanged.
    fn centred_backward(
        &self,
        _cx: &mut Centring,
        _x: &[ValueId],
        _y: ValueId,
        err: CentredGrad,
        _params: &[CentredParam],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<CentredGrad>>, Vec<NodeIndex>), ModelError> {
        Ok((
            need_dx.iter().map(|&n| n.then_some(err)).collect(),
            Vec::new(),
        ))
    }
}
