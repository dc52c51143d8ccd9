//! `Conv2d`: a 2-D convolution (cross-correlation, as PyTorch's `Conv2d`) of NCHW images with
//! stride and zero padding, `F` filters of `C x KH x KW`, an optional bias per filter.
//!
//! A batch of images is a matrix `[B, C H W]` (one example per row, NCHW within it; see
//! [`crate::graph::image`]). The weight is stored as the matrix `[C KH KW, F]` (PyTorch's
//! `[F, C, KH, KW]` reshaped and transposed), so the convolution is one GEMM on the MAC:
//! `y = to_channels(im2col(x) W + b)`; every multiply-add of the forward and backward pass is
//! emulated and counted on the MAC, as a dense layer's. The bias is added on the vector unit
//! ([`Op::BiasAdd`]). Backward: `e = from_channels(err)`, `dW = cols^T e` and `dcols = e W^T` on
//! the MAC (gradients format), `db = sum_rows(e)`, `dx = col2im(dcols)` (overlapping windows
//! summed on the vector unit).

use ndarray::{Array2, ArrayD, ArrayViewD, Axis, IxDyn};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames};
use super::layer::{Init, Layer, ParamSpec};
use super::linear::dense_offset;
use super::{Builder, ModelError};
use crate::graph::image::{col2im, from_channels, im2col, to_channels, ImageOp, Planes, Window};
use crate::graph::Op;
use crate::round::Rounding;

/// A convolution, the `index`-th of its model (tensors `conv{index}.weight`, `conv{index}.*`).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    /// Position among the model's convolutions.
    pub index: usize,
    /// One example's input image.
    pub input: Planes,
    /// Output channels `F`.
    pub filters: usize,
    /// Kernel, stride and padding.
    pub window: Window,
    /// Whether it adds a bias per filter.
    pub bias: bool,
}

/// A batch as a standard-layout slice.
pub(super) fn slice<'a>(x: &'a ArrayViewD<'a, f64>) -> std::borrow::Cow<'a, [f64]> {
    match x.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.iter().copied().collect()),
    }
}

impl Conv2d {
    /// Output height and width (checked by [`Layer::output_shape`]).
    fn out_hw(&self) -> (usize, usize) {
        self.window.output(&self.input).unwrap_or((0, 0))
    }

    /// Rows of the window matrix per example, `OH OW`.
    fn positions(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow
    }

    /// Columns of the window matrix, `C KH KW`.
    fn k(&self) -> usize {
        self.input.channels * self.window.kh * self.window.kw
    }

    fn name(&self, what: &str) -> String {
        format!("conv{}.{what}", self.index)
    }

    /// The window matrix of a batch `x` (`f64`).
    fn cols(&self, x: &ArrayViewD<f64>) -> Array2<f64> {
        let rows = x.shape()[0];
        let mut cols = Array2::zeros((rows * self.positions(), self.k()));
        let dst = cols.as_slice_mut().expect("fresh array");
        im2col(&slice(x), rows, &self.input, &self.window, dst);
        cols
    }
}

fn weight(p: &ArrayD<f64>) -> ndarray::ArrayView2<'_, f64> {
    p.view()
        .into_dimensionality()
        .expect("a convolution's weight is a matrix (its ParamSpec)")
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "conv"
    }

    fn params(&self) -> Vec<ParamSpec> {
        let stream = format!("init/conv{}", self.index);
        let mut p = vec![ParamSpec {
            name: self.name("weight"),
            shape: vec![self.k(), self.filters],
            init: Init::He { fan_in: self.k() },
            bias: false,
            grad: self.name("grad"),
            stream: stream.clone(),
        }];
        if self.bias {
            p.push(ParamSpec {
                name: self.name("bias"),
                shape: vec![1, self.filters],
                init: Init::Zeros,
                bias: true,
                grad: self.name("gradb"),
                stream,
            });
        }
        p
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError> {
        let p = &self.input;
        let want = [p.channels, p.height, p.width];
        if inputs[0] != want {
            return Err(ModelError::Shape(format!(
                "convolution {} takes {want:?} images (C, H, W), got {:?}",
                self.index, inputs[0]
            )));
        }
        let Some((oh, ow)) = self.window.output(p) else {
            return Err(ModelError::Shape(format!(
                "convolution {}: a {}x{} kernel with stride {} and padding {} does not fit a \
                 {}x{} image",
                self.index,
                self.window.kh,
                self.window.kw,
                self.window.stride,
                self.window.pad,
                p.height,
                p.width
            )));
        };
        Ok(vec![self.filters, oh, ow])
    }

    fn forward(&self, params: &[&ArrayD<f64>], x: &[ArrayViewD<f64>]) -> ArrayD<f64> {
        let rows = x[0].shape()[0];
        let mut z = self.cols(&x[0]).dot(&weight(params[0]));
        if self.bias {
            z += &weight(params[1]);
        }
        let mut y = ArrayD::zeros(IxDyn(&[rows, self.filters * self.positions()]));
        let src = z.as_slice().expect("fresh array");
        let dst = y.as_slice_mut().expect("fresh array");
        to_channels(src, rows, self.positions(), dst);
        y
    }

    fn backward(
        &self,
        params: &[&ArrayD<f64>],
        x: &[ArrayViewD<f64>],
        _y: ArrayViewD<f64>,
        dy: ArrayViewD<f64>,
        need_dx: &[bool],
    ) -> (Vec<Option<ArrayD<f64>>>, Vec<ArrayD<f64>>) {
        let rows = x[0].shape()[0];
        let mut e = Array2::zeros((rows * self.positions(), self.filters));
        let dst = e.as_slice_mut().expect("fresh array");
        from_channels(&slice(&dy), rows, self.positions(), dst);
        let cols = self.cols(&x[0]);
        let mut grads = vec![cols.t().dot(&e).into_dyn()];
        if self.bias {
            grads.push(e.sum_axis(Axis(0)).insert_axis(Axis(0)).into_dyn());
        }
        let dx = need_dx[0].then(|| {
            let dcols = e.dot(&weight(params[0]).t());
            let mut dx = ArrayD::zeros(IxDyn(&[rows, self.input.len()]));
            let src = dcols.as_slice().expect("fresh array");
            let dst = dx.as_slice_mut().expect("fresh array");
            col2im(src, &self.input, &self.window, dst);
            dx
        });
        (vec![dx], grads)
    }

    fn build_forward(
        &self,
        b: &mut Builder,
        x: &[NodeIndex],
        params: &[NodeIndex],
    ) -> Result<NodeIndex, ModelError> {
        let act = b.act();
        let (input, window) = (self.input, self.window);
        // The window matrix holds the input's values: in the MAC's A format when they are.
        let xa = b.mac_operand(x[0], true, act.1)?;
        let fa = b.b.meta(xa).format;
        let cols = b.op(
            Op::Image(ImageOp::Im2col { input, window }),
            &self.name("cols"),
            fa,
            act.1,
            act.2,
            &[xa],
        )?;
        let rw = b.weight_rounding();
        let mut z = b.matmul(&self.name("z"), (cols, false), (params[0], false), act, rw)?;
        if self.bias {
            z = b.op(
                Op::BiasAdd,
                &self.name("zb"),
                act.0,
                act.1,
                act.2,
                &[z, params[1]],
            )?;
        }
        let positions = self.positions();
        b.op(
            Op::Image(ImageOp::ToChannels { positions }),
            &self.name("out"),
            act.0,
            act.1,
            act.2,
            &[z],
        )
    }

    fn build_backward(
        &self,
        b: &mut Builder,
        _x: &[NodeIndex],
        _y: NodeIndex,
        err: NodeIndex,
        params: &[NodeIndex],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<NodeIndex>>, Vec<NodeIndex>), ModelError> {
        let grad = b.grad();
        let (f, r, role) = grad;
        let ef = b.b.meta(err).format;
        let positions = self.positions();
        let e = b.op(
            Op::Image(ImageOp::FromChannels { positions }),
            &self.name("err_rows"),
            ef,
            r,
            role,
            &[err],
        )?;
        // The forward pass's window matrix (the node before the product).
        let cols = b
            .b
            .find(&self.name("cols"))
            .ok_or_else(|| ModelError::Spec(format!("{} has no forward pass", self.name(""))))?;
        let mut grads = vec![b.matmul(&self.name("grad"), (cols, true), (e, false), grad, r)?];
        if self.bias {
            grads.push(b.op(Op::SumRows, &self.name("gradb"), f, r, role, &[e])?);
        }
        let dx = if need_dx[0] {
            let rw = b.weight_rounding();
            let dcols = b.matmul(&self.name("dcols"), (e, false), (params[0], true), grad, rw)?;
            let (input, window) = (self.input, self.window);
            Some(b.op(
                Op::Image(ImageOp::Col2im { input, window }),
                &self.name("dx"),
                f,
                r,
                role,
                &[dcols],
            )?)
        } else {
            None
        };
        Ok((vec![dx], grads))
    }

    fn error_name(&self) -> String {
        self.name("err")
    }

    /// The authors' `conv_layer.py` on the window matrix (a dense layer's forward,
    /// `linear.rs`, on `im2col` of the input): with the input `a = a~ + da` at `w` and the
    /// filters `W~ + delta K`, the output's offset is
    /// `to_channels(im2col(da) Wc + delta (im2col(a) K) + delta_b kb)`, both products on the MAC
    /// into full precision, rounded once into the activations format (`conv{index}.dz`).
    fn centred_forward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let a = cx.full(x[0])?;
        let da = cx.offset(x[0])?;
        let (input, window) = (self.input, self.window);
        let im2col = Op::Image(ImageOp::Im2col { input, window });
        let b = cx.b();
        let act = b.act();
        // A window matrix holds its image's values: in the MAC's A format when they are.
        let cols = |b: &mut Builder, v: NodeIndex, name: &str| {
            let va = b.mac_operand(v, true, act.1)?;
            let fa = b.b.meta(va).format;
            b.op(im2col, &self.name(name), fa, act.1, act.2, &[va])
        };
        let hcols = cols(b, a, "hcols")?;
        let dacols = match da {
            Some(d) => Some(cols(b, d, "dacols")?),
            None => None,
        };
        let name = |part: &str| self.name(part);
        let dz = dense_offset(cx, &name, "dzr", hcols, dacols, params)?;
        let positions = self.positions();
        let to = Op::Image(ImageOp::ToChannels { positions });
        let dz = cx
            .b()
            .op(to, &self.name("dz"), act.0, act.1, act.2, &[dz])?;
        let names = ValueNames {
            full: self.name("s"),
            offset: self.name("dz"),
            centre: self.name("cz"),
            centre_grad: self.name("cg"),
            grad_offset: self.name("dg"),
        };
        Ok((CentredOut::Offset(dz), names))
    }

    /// The authors' `conv_layer.py` backward, a dense layer's on the window matrix: with `e`
    /// the arriving offset and `g~` the centre's gradient as rows (`from_channels`),
    /// `dW = im2col(a)^T e + im2col(da)^T g~`, `db = sum_rows(e)` and the input's gradient
    /// offset `col2im(e Wc^T + delta ((g~ + e) K^T))` (the authors' `conv_transpose2d` with
    /// `weight_lp + weight_delta` and `weight_delta`, grouped as the dense layer's).
    fn centred_backward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        y: ValueId,
        err: CentredGrad,
        params: &[CentredParam],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<CentredGrad>>, Vec<NodeIndex>), ModelError> {
        let rn = Rounding::NearestEven;
        let cr = cx.code_rounding();
        let (w, delta) = (&params[0], cx.delta(&params[0]));
        let (centre, coef) = cx.grad_centre(y, err)?;
        let da = cx.offset(x[0])?;
        let wc = cx.centre_on_mac(w)?;
        let b = cx.b();
        let fpf = b.full();
        let (gf, gr, role) = b.grad();
        let positions = self.positions();
        let rows = Op::Image(ImageOp::FromChannels { positions });
        let ef = b.b.meta(err.offset).format;
        let e = b.op(rows, &self.name("e"), ef, gr, role, &[err.offset])?;
        let find = |b: &Builder, what: &str| {
            b.b.find(&self.name(what))
                .ok_or_else(|| ModelError::Spec(format!("{} has no forward pass", self.name(""))))
        };
        let hcols = find(b, "hcols")?;
        let dw = match da {
            None => b.matmul(
                &self.name("dw"),
                (hcols, true),
                (e, false),
                (gf, gr, role),
                gr,
            )?,
            Some(_) => {
                let dcols = find(b, "dacols")?;
                let ce = b.f32op(rows, &self.name("ce"), role, &[centre])?;
                let u = b.matmul(
                    &self.name("dwa"),
                    (hcols, true),
                    (e, false),
                    (fpf, rn, role),
                    gr,
                )?;
                let v = b.matmul(
                    &self.name("dwb"),
                    (dcols, true),
                    (ce, false),
                    (fpf, rn, role),
                    gr,
                )?;
                let axpy = Op::Axpy { c: coef.into() };
                b.op(axpy, &self.name("dw"), gf, gr, role, &[u, v])?
            }
        };
        let mut grads = vec![dw];
        if self.bias {
            grads.push(b.op(Op::SumRows, &self.name("db"), gf, gr, role, &[e])?);
        }
        if !need_dx[0] {
            return Ok((vec![None], grads));
        }
        let axpy = Op::Axpy { c: coef.into() };
        let gz = b.f32op(axpy, &self.name("gz"), role, &[err.offset, centre])?;
        let gzr = b.f32op(rows, &self.name("gzr"), role, &[gz])?;
        let rw = b.weight_rounding();
        let q = b.matmul(&self.name("q"), (e, false), (wc, true), (fpf, rn, role), rw)?;
        let r = b.matmul(
            &self.name("r"),
            (gzr, false),
            (w.codes, true),
            (fpf, rn, role),
            cr,
        )?;
        let dcols = b.op(
            Op::Axpy { c: delta },
            &self.name("dxcols"),
            gf,
            gr,
            role,
            &[q, r],
        )?;
        let (input, window) = (self.input, self.window);
        let col2im = Op::Image(ImageOp::Col2im { input, window });
        let dx = b.op(col2im, &self.name("dgx"), gf, gr, role, &[dcols])?;
        let dx = CentredGrad {
            offset: dx,
            centre: None,
        };
        Ok((vec![Some(dx)], grads))
    }
}
