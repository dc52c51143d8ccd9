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

use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use petgraph::graph::NodeIndex;

use super::conv2d::slice;
use super::layer::{Init, Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::image::{
    batch_norm, batch_norm_backward, batch_norm_param_grads, BnStats, ImageOp,
};
use crate::graph::{Op, Role};

/// The variance guard, PyTorch's default.
pub const EPS: f64 = 1e-5;

/// A batch normalization, the `index`-th of its model (`bn{index}.gamma`, `bn{index}.beta`).
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
        format!("bn{}.{what}", self.index)
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
        let stream = format!("init/bn{}", self.index);
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
        let (channels, positions) = (self.channels, self.positions);
        let op = ImageOp::BatchNorm {
            channels,
            positions,
            eps: EPS,
        };
        let ins = [x[0], params[0], params[1]];
        b.op(
            Op::Image(op),
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
        let (channels, positions) = (self.channels, self.positions);
        let mut grads = Vec::with_capacity(2);
        for (what, gamma) in [("grad_gamma", true), ("grad_beta", false)] {
            let op = ImageOp::BatchNormParamGrad {
                channels,
                positions,
                eps: EPS,
                gamma,
            };
            let name = self.name(what);
            grads.push(b.op(Op::Image(op), &name, f, rne, Role::Gradients, &[err, x[0]])?);
        }
        let dx = if need_dx[0] {
            let op = ImageOp::BatchNormGrad {
                channels,
                positions,
                eps: EPS,
            };
            let ins = [err, x[0], params[0]];
            Some(b.op(
                Op::Image(op),
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
}
