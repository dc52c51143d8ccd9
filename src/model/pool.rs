//! `Pool2d`: max or average pooling of NCHW images per channel (PyTorch's `MaxPool2d`,
//! `AvgPool2d` with `count_include_pad=True`; a window the size of the image is global average
//! pooling). No parameters. Max pooling moves values (its output keeps the input's format and
//! is not rounded; its backward sends each error to the window's first maximum); average
//! pooling's mean is rounded once to the activations format, its backward to the gradients
//! format (see [`crate::graph::image`]).

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames};
use super::conv2d::slice;
use super::layer::{Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::image::{
    avg_pool, avg_pool_backward, max_pool, max_pool_backward, ImageOp, Planes, Window,
};
use crate::graph::{Op, Role};

/// Which statistic of the window a pool keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The maximum.
    Max,
    /// The mean.
    Avg,
}

/// A pooling layer, the `index`-th of its kind in its model (`maxpool{index}`,
/// `avgpool{index}`).
#[derive(Clone, Debug, PartialEq)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Position among the model's pools of this kind.
    pub index: usize,
    /// One example's input image.
    pub input: Planes,
    /// Kernel, stride and padding.
    pub window: Window,
}

impl Pool2d {
    fn name(&self, what: &str) -> String {
        let k = match self.kind {
            PoolKind::Max => "maxpool",
            PoolKind::Avg => "avgpool",
        };
        format!("{k}{}.{what}", self.index)
    }

    fn out_len(&self) -> usize {
        let (oh, ow) = self.window.output(&self.input).unwrap_or((0, 0));
        self.input.channels * oh * ow
    }

    fn forward_op(&self) -> ImageOp {
        let (input, window) = (self.input, self.window);
        match self.kind {
            PoolKind::Max => ImageOp::MaxPool { input, window },
            PoolKind::Avg => ImageOp::AvgPool { input, window },
        }
    }

    fn backward_op(&self) -> ImageOp {
        let (input, window) = (self.input, self.window);
        match self.kind {
            PoolKind::Max => ImageOp::MaxPoolGrad { input, window },
            PoolKind::Avg => ImageOp::AvgPoolGrad { input, window },
        }
    }
}

impl Layer for Pool2d {
    fn kind(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "maxpool",
            PoolKind::Avg => "avgpool",
        }
    }

    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError> {
        let p = &self.input;
        let want = [p.channels, p.height, p.width];
        if inputs[0] != want {
            return Err(ModelError::Shape(format!(
                "{} {} takes {want:?} images (C, H, W), got {:?}",
                self.kind(),
                self.index,
                inputs[0]
            )));
        }
        let w = &self.window;
        // PyTorch's rule: padding at most half the kernel, so no window is all padding.
        let Some((oh, ow)) = w.output(p).filter(|_| 2 * w.pad <= w.kh.min(w.kw)) else {
            return Err(ModelError::Shape(format!(
                "{} {}: a {}x{} window with stride {} and padding {} does not fit a {}x{} \
                 image (padding at most half the window)",
                self.kind(),
                self.index,
                w.kh,
                w.kw,
                w.stride,
                w.pad,
                p.height,
                p.width
            )));
        };
        Ok(vec![p.channels, oh, ow])
    }

    fn forward(&self, _params: &[&ArrayD<f64>], x: &[ArrayViewD<f64>]) -> ArrayD<f64> {
        let rows = x[0].shape()[0];
        let mut y = ArrayD::zeros(IxDyn(&[rows, self.out_len()]));
        let dst = y.as_slice_mut().expect("fresh array");
        let src = slice(&x[0]);
        match self.kind {
            PoolKind::Max => max_pool(&src, rows, &self.input, &self.window, dst),
            PoolKind::Avg => avg_pool(&src, rows, &self.input, &self.window, dst),
        };
        y
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
            let rows = x[0].shape()[0];
            let mut dx = ArrayD::zeros(IxDyn(&[rows, self.input.len()]));
            let dst = dx.as_slice_mut().expect("fresh array");
            let (e, p, w) = (slice(&dy), &self.input, &self.window);
            match self.kind {
                PoolKind::Max => max_pool_backward(&e, &slice(&x[0]), rows, p, w, dst),
                PoolKind::Avg => avg_pool_backward(&e, rows, p, w, dst),
            };
            dx
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
        // Max pooling picks values: its output keeps its input's format.
        let f = match self.kind {
            PoolKind::Max => b.b.meta(x[0]).format,
            PoolKind::Avg => f,
        };
        b.op(
            Op::Image(self.forward_op()),
            &self.name("out"),
            f,
            r,
            role,
            &[x[0]],
        )
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
        let ins: Vec<NodeIndex> = match self.kind {
            PoolKind::Max => vec![err, x[0]],
            PoolKind::Avg => vec![err],
        };
        let dx = b.op(
            Op::Image(self.backward_op()),
            &self.name("dx"),
            f,
            r,
            role,
            &ins,
        )?;
        Ok((vec![Some(dx)], Vec::new()))
    }

    fn error_name(&self) -> String {
        self.name("err")
    }

    /// Max pooling, the authors' `max_pool_layer.py`: the output at `w` is the pool of the
    /// input at `w`, in full precision (`maxpool{index}.a`); its offset is taken where a reader
    /// needs it. Average pooling is linear: the pool of the input's offset, rounded once into
    /// the activations format (`avgpool{index}.dz`; of the value itself when the input has no
    /// offset).
    fn centred_forward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        _params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let names = ValueNames {
            full: self.name("a"),
            offset: self.name("dz"),
            centre: self.name("ca"),
            centre_grad: self.name("ch"),
            grad_offset: self.name("dg"),
        };
        let op = Op::Image(self.forward_op());
        let out = match (self.kind, cx.offset(x[0])?) {
            (PoolKind::Avg, Some(d)) => {
                let (f, r, role) = cx.b().act();
                CentredOut::Offset(cx.b().op(op, &names.offset, f, r, role, &[d])?)
            }
            _ => {
                let s = cx.full(x[0])?;
                CentredOut::Full(cx.b().f32op(op, &names.full, Role::Activations, &[s])?)
            }
        };
        Ok((out, names))
    }

    /// Max pooling: a gate ([`Centring::gate_backward`]) whose pattern is each window's first
    /// maximum of the input at `w` (the authors' `indices_full`). Average pooling: the
    /// backward of the offset, rounded once into the gradients format (`avgpool{index}.dgx`).
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
        let op = Op::Image(self.backward_op());
        let dx = match self.kind {
            PoolKind::Max => {
                let names = ["t", "v", "v0", "u", "dgx"].map(|n| self.name(n));
                cx.gate_backward(op, names, (x[0], y), err)?
            }
            PoolKind::Avg => {
                let (f, r, role) = cx.b().grad();
                let dx = cx
                    .b()
                    .op(op, &self.name("dgx"), f, r, role, &[err.offset])?;
                CentredGrad {
                    offset: dx,
                    centre: None,
                }
            }
        };
        Ok((vec![Some(dx)], Vec::new()))
    }
}
