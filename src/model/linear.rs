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

use super::centred::{CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames};
use super::layer::{Init, Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::{Op, Role};
use crate::round::Rounding;

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

    /// The authors' `linear_layer.py`: with the input `a = a~ + da` at `w`, the weight
    /// `W~ + delta K` and the bias `b~ + delta_b kb`, the output's offset is
    /// `dz = da Wc + delta (a K) + delta_b kb` (`Wc`: the centre's copy in the MAC's B format,
    /// the authors' `weight_lp`; `da Wc` only when the input has an offset, the data has none),
    /// both products on the MAC into full precision, the bias's offset added to every row on
    /// the vector unit, `dz` rounded once into the activations format.
    fn centred_forward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let i = self.index;
        let a = cx.full(x[0])?;
        let da = cx.offset(x[0])?;
        let name = |part: &str| format!("{part}{i}");
        let dz = dense_offset(cx, &name, "dz", a, da, params)?;
        let names = ValueNames {
            full: format!("s{i}"),
            offset: format!("dz{i}"),
            centre: format!("cz{i}"),
            centre_grad: format!("cg{i}"),
            grad_offset: format!("dg{i}"),
        };
        Ok((CentredOut::Offset(dz), names))
    }

    /// The authors' `linear_layer.py`, with `g~` the batch's gradient at the centre and `dg`
    /// the arriving offset: `dW = a^T dg + da^T g~` (the first alone when the input has no
    /// offset), `db = sum_rows(dg)` and the input's gradient offset
    /// `dg Wc^T + delta ((g~ + dg) K^T)` (grouped so that the offset stays codes on the MAC's
    /// B side, scaled by `delta` on the vector unit; the same value as the authors'
    /// `dg (Wc + Z)^T + g~ Z^T`). Named `dgh{index - 1}` (the offset of the ReLU output
    /// `h{index - 1}` in an MLP; `dgx0` for a first dense layer reading another layer).
    fn centred_backward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        y: ValueId,
        err: CentredGrad,
        params: &[CentredParam],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<CentredGrad>>, Vec<NodeIndex>), ModelError> {
        let i = self.index;
        let rn = Rounding::NearestEven;
        let cr = cx.code_rounding();
        let (w, delta) = (&params[0], cx.delta(&params[0]));
        let dg = err.offset;
        let (centre, coef) = cx.grad_centre(y, err)?;
        let a = cx.full(x[0])?;
        let da = cx.offset(x[0])?;
        let wc = cx.centre_on_mac(w)?;
        let b = cx.b();
        let fpf = b.full();
        let (gf, gr, role) = b.grad();
        let dw = match da {
            None => b.matmul(
                &format!("dw{i}"),
                (a, true),
                (dg, false),
                (gf, gr, role),
                gr,
            )?,
            Some(d) => {
                let u = b.matmul(
                    &format!("dwa{i}"),
                    (a, true),
                    (dg, false),
                    (fpf, rn, role),
                    gr,
                )?;
                let v = b.matmul(
                    &format!("dwb{i}"),
                    (d, true),
                    (centre, false),
                    (fpf, rn, role),
                    gr,
                )?;
                b.op(
                    Op::Axpy { c: coef.into() },
                    &format!("dw{i}"),
                    gf,
                    gr,
                    role,
                    &[u, v],
                )?
            }
        };
        let mut grads = vec![dw];
        if self.bias {
            grads.push(b.op(Op::SumRows, &format!("db{i}"), gf, gr, role, &[dg])?);
        }
        if !need_dx[0] {
            return Ok((vec![None], grads));
        }
        let full = b.f32op(
            Op::Axpy { c: coef.into() },
            &format!("gz{i}"),
            role,
            &[dg, centre],
        )?;
        let rw = b.weight_rounding();
        let q = b.matmul(
            &format!("q{i}"),
            (dg, false),
            (wc, true),
            (fpf, rn, role),
            rw,
        )?;
        let r = b.matmul(
            &format!("r{i}"),
            (full, false),
            (w.codes, true),
            (fpf, rn, role),
            cr,
        )?;
        let name = match i {
            0 => "dgx0".to_string(),
            i => format!("dgh{}", i - 1),
        };
        let dx = b.op(Op::Axpy { c: delta }, &name, gf, gr, role, &[q, r])?;
        let dx = CentredGrad {
            offset: dx,
            centre: None,
        };
        Ok((vec![Some(dx)], grads))
    }
}

/// The offset of a dense product at the iterate (the authors' `linear_layer.py` forward, shared
/// with the convolution's on its window matrices): with the input `a = a~ + da` and the weight
/// `W~ + delta K` (bias `b~ + delta_b kb`), `da Wc + delta (a K) (+ delta_b kb)`: both products
/// on the MAC into full precision, the bias's offset added to every row on the vector unit, the
/// result (named `name(out)`) rounded once into the activations format. `name(part)` names
/// every node (`m`, `p`, `dzw`, `bz`).
pub(super) fn dense_offset(
    cx: &mut Centring,
    name: &dyn Fn(&str) -> String,
    out: &str,
    a: NodeIndex,
    da: Option<NodeIndex>,
    params: &[CentredParam],
) -> Result<NodeIndex, ModelError> {
    let rn = Rounding::NearestEven;
    let cr = cx.code_rounding();
    let (w, delta) = (&params[0], cx.delta(&params[0]));
    let wc = cx.centre_on_mac(w)?;
    let bias = params.get(1);
    let b = cx.b();
    let fpf = b.full();
    let act = b.act();
    let m = b.matmul(
        &name("m"),
        (a, false),
        (w.codes, false),
        (fpf, rn, Role::Activations),
        cr,
    )?;
    // The weight's part, rounded into the activations format here when no bias follows.
    let (wname, (f, r)) = if bias.is_some() {
        (name("dzw"), (fpf, rn))
    } else {
        (name(out), (act.0, act.1))
    };
    let dzw = match da {
        Some(d) => {
            let rw = b.weight_rounding();
            let p = b.matmul(
                &name("p"),
                (d, false),
                (wc, false),
                (fpf, rn, Role::Activations),
                rw,
            )?;
            b.op(
                Op::Axpy { c: delta },
                &wname,
                f,
                r,
                Role::Activations,
                &[p, m],
            )?
        }
        None => b.op(
            Op::Scale { c: delta },
            &wname,
            f,
            r,
            Role::Activations,
            &[m],
        )?,
    };
    let Some(kb) = bias else {
        return Ok(dzw);
    };
    let scale = Op::Scale { c: cx.delta(kb) };
    let b = cx.b();
    let bz = b.f32op(scale, &name("bz"), Role::Weights, &[kb.codes])?;
    b.op(Op::BiasAdd, &name(out), act.0, act.1, act.2, &[dzw, bz])
}
