//! `BatchNorm`: batch normalization (Ioffe & Szegedy 2015) per channel of NCHW images (or per
//! feature of vectors), `y = gamma (x - mean) / sqrt(var + eps) + beta` with `eps = 1e-5`
//! (PyTorch's), `gamma` starting at 1 and `beta` at 0.
//!
//! Training uses the batch's statistics (the biased variance over the batch and the positions,
//! as PyTorch's training mode). Its arithmetic runs in the architecture's `formats.batchnorm`
//! (default `full_precision.format`, as the LP-SGLD reference keeps batch normalization in full
//! precision): the forward output, the input gradient and the parameter gradients are rounded
//! once to that format (see [`crate::graph::image::ImageOp::BatchNorm`]).
//!
//! At evaluation the statistics are the training set's at the evaluated weights
//! ([`crate::model::Model::for_evaluation`]): the population statistics PyTorch's running
//! averages (momentum 0.1) estimate, computed exactly ("precise BN", Wu & Johnson 2021). This
//! deviates from keeping running averages during training so that every sample of a sampler,
//! and every algorithm (the SVRG family's snapshots included), is evaluated with the statistics
//! of its own weights, with no extra state for the drivers to carry.
//!
//! HALP's bit-centred form ([`Layer::centred_forward`], [`Layer::centred_backward`]) follows the
//! authors' `halp/layers/batch_norm_layer.py`: each side normalizes with the mini-batch's own
//! statistics, the iterate's input `x = x~ + dx` with its own and the centre's cached input `x~`
//! (the batch's rows) with its own, and the layer gives their difference. Deviation, and why: the
//! next layer adds this offset to the full pass's cached centre output, which was normalized
//! with the full pass's statistics (one pass over the training set; the authors' full pass runs
//! the same mini-batches as the inner loop and caches outputs normalized with those batches'
//! statistics, which lpsim's batches drawn with replacement cannot reproduce). Under batch
//! statistics the inner step's gradient difference is then the authors' approximation of
//! `grad f_B(w~ + z) - grad f_B(w~)`, not the exact difference; at the centre (zero offsets)
//! it is exactly zero, so the first step's direction is exactly the full gradient.

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames};
use super::conv2d::slice;
use super::layer::{Init, Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::image::{
    batch_norm, batch_norm_backward, batch_norm_param_grads, BnStats, ImageOp,
};
use crate::graph::{Op, Role};

/// The variance guard, PyTorch's default.
pub const EPS: f64 = 1e-5;

/// A batch normalization, the `index`-th of its model (`batchnorm{index}.gamma`, `batchnorm{index}.beta`).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// Position among the model's batch normalizations.
    pub index: usize,
    /// Channels `C` (features of a vector input).
    pub channels: usize,
    /// Positions per channel `H W` (1 for a vector input).
    pub positions: usize,
    /// Fixed statistics for evaluation ([`crate::model::Model::for_evaluation`]); `None`: the
    /// batch's own.
    pub frozen: Option<Arc<BnStats>>,
}

impl BatchNorm {
    fn name(&self, what: &str) -> String {
        format!("batchnorm{}.{what}", self.index)
    }

    /// The forward op (the batch's statistics).
    fn forward_op(&self) -> ImageOp {
        ImageOp::BatchNorm {
            channels: self.channels,
            positions: self.positions,
            eps: EPS,
        }
    }

    /// The input gradient's op.
    fn input_grad_op(&self) -> ImageOp {
        ImageOp::BatchNormGrad {
            channels: self.channels,
            positions: self.positions,
            eps: EPS,
        }
    }

    /// The op of `gamma`'s gradient (`gamma`) or `beta`'s.
    fn param_grad_op(&self, gamma: bool) -> ImageOp {
        ImageOp::BatchNormParamGrad {
            channels: self.channels,
            positions: self.positions,
            eps: EPS,
            gamma,
        }
    }

    /// The parameters at the iterate in full precision ([`Centring::param_at_w`]) and their
    /// centres ([`Centring::centre_param`]): `[gamma, beta]` each way.
    fn centred_params(
        cx: &mut Centring,
        params: &[CentredParam],
    ) -> Result<([NodeIndex; 2], [NodeIndex; 2]), ModelError> {
        let [gamma, beta] = params else {
            return Err(ModelError::Spec(format!(
                "bit-centred batch normalization: {} parameter tensors, expected gamma and beta",
                params.len()
            )));
        };
        let at = [cx.param_at_w(gamma)?, cx.param_at_w(beta)?];
        Ok((at, [cx.centre_param(gamma)?, cx.centre_param(beta)?]))
    }

    /// The statistics a forward pass of `x` normalizes with.
    pub fn stats(&self, x: &[f64], rows: usize) -> BnStats {
        match &self.frozen {
            Some(s) => BnStats::clone(s),
            None => BnStats::of(x, rows, self.channels, self.positions, EPS),
        }
    }
}

impl Layer for BatchNorm {
    fn kind(&self) -> &'static str {
        "batchnorm"
    }

    fn params(&self) -> Vec<ParamSpec> {
        let stream = format!("init/batchnorm{}", self.index);
        let spec = |what: &str, init, bias| ParamSpec {
            name: self.name(what),
            shape: vec![1, self.channels],
            init,
            bias,
            grad: self.name(&format!("grad_{what}")),
            stream: stream.clone(),
        };
        vec![
            spec("gamma", Init::Ones, false),
            spec("beta", Init::Zeros, true),
        ]
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, ModelError> {
        let s = inputs[0];
        let (c, p) = match s {
            [c, h, w] => (*c, h * w),
            [c] => (*c, 1),
            _ => (0, 0),
        };
        if (c, p) != (self.channels, self.positions) {
            return Err(ModelError::Shape(format!(
                "batch normalization {} takes {} channels of {} positions, got {s:?}",
                self.index, self.channels, self.positions
            )));
        }
        Ok(s.to_vec())
    }

    fn forward(&self, params: &[&ArrayD<f64>], x: &[ArrayViewD<f64>]) -> ArrayD<f64> {
        let rows = x[0].shape()[0];
        let src = slice(&x[0]);
        let stats = self.stats(&src, rows);
        let mut y = ArrayD::zeros(IxDyn(x[0].shape()));
        let values = |p: &ArrayD<f64>| -> Vec<f64> { p.iter().copied().collect() };
        let (g, b) = (values(params[0]), values(params[1]));
        batch_norm(&src, &g, &b, &stats, y.as_slice_mut().expect("fresh array"));
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
        let (src, e) = (slice(&x[0]), slice(&dy));
        let stats = self.stats(&src, rows);
        let (dg, db) = batch_norm_param_grads(&e, &src, &stats);
        let row = |v: Vec<f64>| ArrayD::from_shape_vec(IxDyn(&[1, self.channels]), v);
        let grads = vec![
            row(dg).expect("one per channel"),
            row(db).expect("one per channel"),
        ];
        let dx = need_dx[0].then(|| {
            let mut dx = ArrayD::zeros(IxDyn(x[0].shape()));
            let g: Vec<f64> = params[0].iter().copied().collect();
            let dst = dx.as_slice_mut().expect("fresh array");
            batch_norm_backward(&e, &src, &g, &stats, dst);
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
        if self.frozen.is_some() {
            return Err(ModelError::Spec(format!(
                "batch normalization {} with evaluation statistics has no training step",
                self.index
            )));
        }
        let f = b.batchnorm_format();
        let ins = [x[0], params[0], params[1]];
        b.op(
            Op::Image(self.forward_op()),
            &self.name("out"),
            f,
            crate::round::Rounding::NearestEven,
            Role::Activations,
            &ins,
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
        let f = b.batchnorm_format();
        let rne = crate::round::Rounding::NearestEven;
        let mut grads = Vec::with_capacity(2);
        for (what, gamma) in [("grad_gamma", true), ("grad_beta", false)] {
            let op = Op::Image(self.param_grad_op(gamma));
            let name = self.name(what);
            grads.push(b.op(op, &name, f, rne, Role::Gradients, &[err, x[0]])?);
        }
        let dx = if need_dx[0] {
            let ins = [err, x[0], params[0]];
            Some(b.op(
                Op::Image(self.input_grad_op()),
                &self.name("dx"),
                f,
                rne,
                Role::Gradients,
                &ins,
            )?)
        } else {
            None
        };
        Ok((vec![dx], grads))
    }

    fn uses_batch_statistics(&self) -> bool {
        self.frozen.is_none()
    }

    fn for_evaluation(&self, inputs: &[ArrayViewD<f64>]) -> Option<Arc<dyn Layer>> {
        let rows = inputs[0].shape()[0];
        let stats = BnStats::of(&slice(&inputs[0]), rows, self.channels, self.positions, EPS);
        Some(Arc::new(BatchNorm {
            frozen: Some(Arc::new(stats)),
            ..self.clone()
        }))
    }

    fn error_name(&self) -> String {
        self.name("err")
    }

    /// The authors' `batch_norm_layer.py` forward (see the module docs): with the input at `w`
    /// (`x = x~ + dx`, full precision), the parameters at `w` (`gamma~ + delta_g kg`,
    /// `beta~ + delta_b kb`, full precision on the vector unit) and the centre's cached input
    /// `x~`, the output's offset `BN_B(x; gamma, beta) - BN_B(x~; gamma~, beta~)`: both
    /// normalizations on the batch normalization unit (`formats.batchnorm`), each with its own
    /// batch's statistics, their difference rounded once into the activations format
    /// (`batchnorm{index}.dy`).
    fn centred_forward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let xw = cx.full(x[0])?;
        let x0 = cx.centre(x[0])?;
        let ([gw, bw], [g0, b0]) = Self::centred_params(cx, params)?;
        let b = cx.b();
        let (f, rne) = (b.batchnorm_format(), crate::round::Rounding::NearestEven);
        let op = Op::Image(self.forward_op());
        let role = Role::Activations;
        let yw = b.op(op, &self.name("yw"), f, rne, role, &[xw, gw, bw])?;
        let y0 = b.op(op, &self.name("y0"), f, rne, role, &[x0, g0, b0])?;
        let (af, ar, _) = b.act();
        let names = ValueNames {
            full: self.name("s"),
            offset: self.name("dy"),
            centre: self.name("cy"),
            centre_grad: self.name("cg"),
            grad_offset: self.name("dg"),
        };
        let dy = b.op(Op::Sub, &names.offset, af, ar, role, &[yw, y0])?;
        Ok((CentredOut::Offset(dy), names))
    }

    /// The authors' `batch_norm_layer.py` backward: with `g~` the batch's gradient at the
    /// centre arriving at the output (`c` times the cached rows) and `dg` its offset, the
    /// offsets `bn_grads(g~ + dg, gamma, x) - bn_grads(g~, gamma~, x~)` of the input's and of
    /// `gamma`'s gradient (each side with its batch's statistics, on the batch normalization
    /// unit, the difference rounded once into the gradients format); `beta`'s is `sum(dg)` per
    /// channel, the same value (`beta`'s gradient is linear in the arriving gradient and does not
    /// depend on `x`) without a cancellation. The input's gradient at the centre passed on is
    /// `bn_grads(g~, gamma~, x~)` (`batchnorm{index}.gx0`, at the batch's scale): the centre the
    /// offset was taken from, so that the layer below sums the same gradient at `w`.
    fn centred_backward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        y: ValueId,
        err: CentredGrad,
        params: &[CentredParam],
        need_dx: &[bool],
    ) -> Result<(Vec<Option<CentredGrad>>, Vec<NodeIndex>), ModelError> {
        let (ch, coef) = cx.grad_centre(y, err)?;
        let xw = cx.full(x[0])?;
        let x0 = cx.centre(x[0])?;
        let ([gw, _], [g0, _]) = Self::centred_params(cx, params)?;
        let b = cx.b();
        let (f, rne) = (b.batchnorm_format(), crate::round::Rounding::NearestEven);
        let (gf, gr, role) = b.grad();
        let n = |what: &str| self.name(what);
        // `g~ + dg` and `g~`: the same rounding of `coef ch` when `dg = 0`.
        let gfull = b.f32op(
            Op::Axpy { c: coef.into() },
            &n("gw"),
            role,
            &[err.offset, ch],
        )?;
        let gcen = b.f32op(Op::Scale { c: coef.into() }, &n("g0"), role, &[ch])?;
        let pg = Op::Image(self.param_grad_op(true));
        let dgw = b.op(pg, &n("dgamma_w"), f, rne, role, &[gfull, xw])?;
        let dg0 = b.op(pg, &n("dgamma_0"), f, rne, role, &[gcen, x0])?;
        let dgamma = b.op(Op::Sub, &n("dgamma"), gf, gr, role, &[dgw, dg0])?;
        let sums = Op::Image(self.param_grad_op(false));
        let dbeta = b.op(sums, &n("dbeta"), gf, gr, role, &[err.offset, xw])?;
        let grads = vec![dgamma, dbeta];
        if !need_dx[0] {
            return Ok((vec![None], grads));
        }
        let ig = Op::Image(self.input_grad_op());
        let gxw = b.op(ig, &n("gxw"), f, rne, role, &[gfull, xw, gw])?;
        let gx0 = b.op(ig, &n("gx0"), f, rne, role, &[gcen, x0, g0])?;
        let dx = b.op(Op::Sub, &n("dgx"), gf, gr, role, &[gxw, gx0])?;
        let dx = CentredGrad {
            offset: dx,
            centre: Some((gx0, 1.0)),
        };
        Ok((vec![Some(dx)], grads))
    }
}
