//! `ReLU`: `h = max(z, 0)` elementwise, on the vector unit in the activations format; its
//! backward passes the error where the input is positive ([`Op::ReluGrad`], gradients format).

use ndarray::{ArrayD, ArrayViewD, Zip};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames};
use super::layer::{Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::{Op, Role};

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

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError> {
        Ok(inputs[0].to_vec())
    }

    fn forward(&self, _params: &[&ArrayD<f64>], x: &[ArrayViewD<f64>]) -> ArrayD<f64> {
        x[0].mapv(|v| v.max(0.0))
    }

    fn backward(
        &self,
        _params: &[&ArrayD<f64>],
        x: &[ArrayViewD<f64>],
        _y: ArrayViewD<f64>,
        dy: ArrayViewD<f64>,
        need_dx: &[bool],
    ) -> (Vec<Option<ArrayD<f64>>>, Vec<ArrayD<f64>>) {
        let dx = need_dx[0].then(|| {
            let mut d = dy.to_owned();
            Zip::from(&mut d).and(&x[0]).for_each(|d, &z| {
                if z <= 0.0 {
                    *d = 0.0;
                }
            });
            d
        });
        (vec![dx], Vec::new())
    }

    fn build_forward(
        &self,
        b: &mut Builder,
        x: &[NodeIndex],
        _params: &[NodeIndex],
    ) -> Result<NodeIndex, ModelError> {
        let (f, r, role) = b.act();
        b.op(Op::Relu, &format!("h{}", self.index), f, r, role, &[x[0]])
    }

    fn build_backward(
        &self,
        b: &mut Builder,
        x: &[NodeIndex],
        _y: NodeIndex,
        err: NodeIndex,
        _params: &[NodeIndex],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<NodeIndex>>, Vec<NodeIndex>), ModelError> {
        if !need_dx[0] {
            return Ok((vec![None], Vec::new()));
        }
        let (f, r, role) = b.grad();
        let name = format!("err{}", self.index + 1);
        let dx = b.op(Op::ReluGrad, &name, f, r, role, &[err, x[0]])?;
        Ok((vec![Some(dx)], Vec::new()))
    }

    fn error_name(&self) -> String {
        format!("err_h{}", self.index)
    }

    /// The authors' `relu_layer.py`: the output at `w` is `relu(s)` of the input at `w`
    /// (`s = s~ + ds`) in full precision, `a{index + 1}`; its offset `a - a~` is taken where a
    /// reader needs it.
    fn centred_forward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        _params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let (i, j) = (self.index, self.index + 1);
        let s = cx.full(x[0])?;
        let a = cx
            .b()
            .f32op(Op::Relu, &format!("a{j}"), Role::Activations, &[s])?;
        let names = ValueNames {
            full: format!("a{j}"),
            offset: format!("da{j}"),
            centre: format!("ca{j}"),
            centre_grad: format!("ch{i}"),
            grad_offset: format!("dgh{i}"),
        };
        Ok((CentredOut::Full(a), names))
    }

    /// With the mask `[s > 0]` of the input at `w` (the mask of the pre-activation at `w`, as
    /// the authors'), the arriving offset `dg` and the centre's gradient `g~` at the output:
    /// the input's gradient offset is `(g~ + dg) [s > 0] - g~ [s~ > 0]`, computed as
    /// `dg [s > 0] + c (g~h [s > 0] - g~z)` with the cached rows `g~h` (output) and `g~z`
    /// (input, the full pass's `g~h [s~ > 0]` when this layer is the input's only reader; else
    /// recomputed from the cached input), rearranged so that no full-size gradient is rounded
    /// before the difference is taken: exactly zero at the centre.
    fn centred_backward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        y: ValueId,
        err: CentredGrad,
        _params: &[CentredParam],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<CentredGrad>>, Vec<NodeIndex>), ModelError> {
        if !need_dx[0] {
            return Ok((vec![None], Vec::new()));
        }
        let j = self.index;
        let s = cx.full(x[0])?;
        let (ch, coef) = cx.grad_centre(y, err)?;
        let (cg, c) = if cx.single_reader(x[0]) {
            cx.centre_grad(x[0])?
        } else {
            let s0 = cx.centre(x[0])?;
            let name = format!("v0{j}");
            let v0 = cx
                .b()
                .f32op(Op::ReluGrad, &name, Role::Gradients, &[ch, s0])?;
            (v0, coef)
        };
        let b = cx.b();
        let (gf, gr, role) = b.grad();
        let t = b.op(
            Op::ReluGrad,
            &format!("t{j}"),
            gf,
            gr,
            role,
            &[err.offset, s],
        )?;
        let v = b.f32op(Op::ReluGrad, &format!("v{j}"), role, &[ch, s])?;
        // `coef v - c cg`: the centre's part at the batch's scale, `c` factored out.
        let u = if coef == c {
            b.f32op(Op::Sub, &format!("u{j}"), role, &[v, cg])?
        } else {
            let axpy = Op::Axpy {
                c: (-c / coef).into(),
            };
            b.f32op(axpy, &format!("u{j}"), role, &[v, cg])?
        };
        let dg = b.op(
            Op::Axpy { c: coef.into() },
            &format!("dg{j}"),
            gf,
            gr,
            role,
            &[t, u],
        )?;
        let dx = CentredGrad {
            offset: dg,
            centre: Some((cg, c)),
        };
        Ok((vec![Some(dx)], Vec::new()))
    }
}
