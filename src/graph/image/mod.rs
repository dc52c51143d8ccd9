//! Ops on batches of images ([`ImageOp`]): the data movement of a convolution (im2col and its
//! adjoint, the channel layouts), pooling, and batch normalization, with their backward passes.
//!
//! A batch of images is a matrix `[B, C H W]`: one example per row, each row an image in `NCHW`
//! order (channel, then row, then column). Keeping batches as matrices lets the gather of a
//! mini-batch, the bias row, column sums and per-row blocks (one BFP/MX block per example) work
//! unchanged on images; the image's geometry ([`Planes`]) is a field of the op.
//!
//! A convolution is `im2col`, a [`crate::graph::Op::MatMul`] on the MAC (every multiply-add
//! emulated and counted), and a change of layout:
//! `cols = im2col(x)` (`[B OH OW, C KH KW]`, PyTorch's `unfold` column order), `z = cols W`
//! (`W` is `[C KH KW, F]`: the weight of PyTorch's `[F, C, KH, KW]` reshaped and transposed, so
//! a block per column is a block per output channel), `y = to_channels(z)` (`[B, F OH OW]`).
//! Backward: `e = from_channels(err)`, `dW = cols^T e`, `dcols = e W^T`, `dx = col2im(dcols)`
//! (the sums where windows overlap counted as adds on the vector unit).
//!
//! Every op computes its exact result in `f64` and the executor rounds it once to the output
//! format, as every vector-unit op; the ops that only move values ([`ImageOp::moves_values`])
//! keep their input's format and are not rounded.

mod batchnorm;
mod conv;
mod pool;

use serde::Serialize;

use crate::arith::ActionCounts;
use crate::format::Format;

pub use batchnorm::{batch_norm, batch_norm_backward, batch_norm_param_grads, BnStats};
pub use conv::{col2im, from_channels, im2col, to_channels};
pub use pool::{avg_pool, avg_pool_backward, max_pool, max_pool_backward};

/// One example's image: channels, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Planes {
    /// Channels `C`.
    pub channels: usize,
    /// Height `H`.
    pub height: usize,
    /// Width `W`.
    pub width: usize,
}

impl Planes {
    /// Values per example, `C H W`.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether it has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Positions per channel, `H W`.
    pub fn positions(&self) -> usize {
        self.height * self.width
    }
}

/// A sliding window: kernel size, stride and zero padding (the same on both sides), as
/// PyTorch's `Conv2d`/`MaxPool2d`/`AvgPool2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Padding on each side (both directions).
    pub pad: usize,
}

impl Window {
    /// Output height and width on `p`: `floor((H + 2 pad - KH) / stride) + 1` (PyTorch's), or
    /// `None` when the window does not fit or the stride is 0.
    pub fn output(&self, p: &Planes) -> Option<(usize, usize)> {
        let out = |n: usize, k: usize| {
            let padded = n + 2 * self.pad;
            (self.stride > 0 && k > 0 && padded >= k).then(|| (padded - k) / self.stride + 1)
        };
        Some((out(p.height, self.kh)?, out(p.width, self.kw)?))
    }

    /// The input position `(row, column)` read by output `(oy, ox)` at kernel offset
    /// `(ky, kx)`, or `None` in the padding.
    #[inline]
    fn source(&self, p: &Planes, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let y = (oy * self.stride + ky).checked_sub(self.pad)?;
        let x = (ox * self.stride + kx).checked_sub(self.pad)?;
        (y < p.height && x < p.width).then_some(y * p.width + x)
    }
}

/// An op on a batch of images (see the module docs). Shapes are of the matrices the op reads
/// and writes; `B` is the batch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum ImageOp {
    /// `[B, C H W] -> [B OH OW, C KH KW]`: each output position's window as a row, zeros in
    /// the padding.
    Im2col {
        /// The input image.
        input: Planes,
        /// The convolution's window.
        window: Window,
    },
    /// The adjoint of [`ImageOp::Im2col`]: `[B OH OW, C KH KW] -> [B, C H W]`, each window
    /// value added back where it was read (overlaps summed).
    Col2im {
        /// The image produced.
        input: Planes,
        /// The convolution's window.
        window: Window,
    },
    /// `[B P, F] -> [B, F P]`: a matmul's rows (one per output position) to NCHW images.
    ToChannels {
        /// Positions per image `P = OH OW`.
        positions: usize,
    },
    /// `[B, F P] -> [B P, F]`: the inverse of [`ImageOp::ToChannels`].
    FromChannels {
        /// Positions per image `P`.
        positions: usize,
    },
    /// The maximum of each window per channel, `[B, C H W] -> [B, C OH OW]` (padding never
    /// wins, PyTorch's `-inf` padding).
    MaxPool {
        /// The input image.
        input: Planes,
        /// The window.
        window: Window,
    },
    /// The max pool's backward, operands `(err [B, C OH OW], x [B, C H W])`: each error goes to
    /// its window's first maximum (row-major order), summed where windows overlap.
    MaxPoolGrad {
        /// The input image.
        input: Planes,
        /// The window.
        window: Window,
    },
    /// The mean of each window per channel, padding counted as zeros (PyTorch's
    /// `count_include_pad=True`); a window the size of the image is global average pooling.
    AvgPool {
        /// The input image.
        input: Planes,
        /// The window.
        window: Window,
    },
    /// The average pool's backward `[B, C OH OW] -> [B, C H W]`: each error divided by the
    /// window's size, spread over it.
    AvgPoolGrad {
        /// The input image.
        input: Planes,
        /// The window.
        window: Window,
    },
    /// Batch normalization with the batch's statistics, operands `(x [B, C P], gamma [1, C],
    /// beta [1, C])`: `y = gamma (x - mean_c) / sqrt(var_c + eps) + beta`, the biased variance
    /// over the batch and positions (PyTorch's training mode).
    BatchNorm {
        /// Channels `C`.
        channels: usize,
        /// Positions per channel `P`.
        positions: usize,
        /// The variance's guard.
        eps: f64,
    },
    /// Batch normalization's input gradient, operands `(dy, x, gamma)`:
    /// `dx = gamma s / M (M dy - sum(dy) - xhat sum(dy xhat))`, `s = 1 / sqrt(var + eps)`,
    /// `M = B P` per channel.
    BatchNormGrad {
        /// Channels `C`.
        channels: usize,
        /// Positions per channel `P`.
        positions: usize,
        /// The variance's guard.
        eps: f64,
    },
    /// Batch normalization's parameter gradients, operands `(dy, x)` -> `[1, C]`:
    /// `sum(dy xhat)` for `gamma`, else `sum(dy)` for `beta`, per channel.
    BatchNormParamGrad {
        /// Channels `C`.
        channels: usize,
        /// Positions per channel `P`.
        positions: usize,
        /// The variance's guard.
        eps: f64,
        /// `gamma`'s gradient (else `beta`'s).
        gamma: bool,
    },
}

impl ImageOp {
    /// The op's name in DOT and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            ImageOp::Im2col { .. } => "im2col",
            ImageOp::Col2im { .. } => "col2im",
            ImageOp::ToChannels { .. } => "to_channels",
            ImageOp::FromChannels { .. } => "from_channels",
            ImageOp::MaxPool { .. } => "max_pool",
            ImageOp::MaxPoolGrad { .. } => "max_pool_grad",
            ImageOp::AvgPool { .. } => "avg_pool",
            ImageOp::AvgPoolGrad { .. } => "avg_pool_grad",
            ImageOp::BatchNorm { .. } => "batch_norm",
            ImageOp::BatchNormGrad { .. } => "batch_norm_grad",
            ImageOp::BatchNormParamGrad { .. } => "batch_norm_param_grad",
        }
    }

    /// Number of operands.
    pub fn arity(&self) -> usize {
        match self {
            ImageOp::MaxPoolGrad { .. } | ImageOp::BatchNormParamGrad { .. } => 2,
            ImageOp::BatchNorm { .. } | ImageOp::BatchNormGrad { .. } => 3,
            _ => 1,
        }
    }

    /// Whether the op only moves values (its output holds values of its input's format, in its
    /// format, and is not rounded): im2col, the layouts, max pooling.
    pub fn moves_values(&self) -> bool {
        matches!(
            self,
            ImageOp::Im2col { .. }
                | ImageOp::ToChannels { .. }
                | ImageOp::FromChannels { .. }
                | ImageOp::MaxPool { .. }
        )
    }

    /// Whether the op is batch normalization's, computed in the output's format (the
    /// architecture's `formats.batchnorm`) rather than the vector unit's.
    pub fn own_format(&self) -> bool {
        matches!(
            self,
            ImageOp::BatchNorm { .. }
                | ImageOp::BatchNormGrad { .. }
                | ImageOp::BatchNormParamGrad { .. }
        )
    }

    /// Whether the output is an address pattern the MAC array's operand reads generate rather
    /// than a tensor written to memory (im2col: SCALE-Sim's convolution reads its window rows
    /// straight from the input feature map).
    pub fn writes_nothing(&self) -> bool {
        matches!(self, ImageOp::Im2col { .. })
    }

    /// The output's shape for operand shapes `ins`, or what does not fit.
    pub fn output_shape(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let matrix = |s: &[usize], what: &str| -> Result<(usize, usize), String> {
            match s {
                [r, c] => Ok((*r, *c)),
                _ => Err(format!("{what} must be a matrix, got {s:?}")),
            }
        };
        let image = |s: &[usize], p: &Planes, what: &str| -> Result<usize, String> {
            let (b, n) = matrix(s, what)?;
            if n != p.len() {
                return Err(format!(
                    "{what} {s:?} must hold {} x {} x {} = {} values per example",
                    p.channels,
                    p.height,
                    p.width,
                    p.len()
                ));
            }
            Ok(b)
        };
        let out = |p: &Planes, w: &Window| {
            w.output(p).ok_or_else(|| {
                format!(
                    "a {}x{} window (stride {}, padding {}) does not fit a {}x{} image",
                    w.kh, w.kw, w.stride, w.pad, p.height, p.width
                )
            })
        };
        match *self {
            ImageOp::Im2col { input, window } => {
                let b = image(ins[0], &input, "the input")?;
                let (oh, ow) = out(&input, &window)?;
                Ok(vec![b * oh * ow, input.channels * window.kh * window.kw])
            }
            ImageOp::Col2im { input, window } => {
                let (oh, ow) = out(&input, &window)?;
                let (r, c) = matrix(ins[0], "the columns")?;
                let p = oh * ow;
                if c != input.channels * window.kh * window.kw || p == 0 || r % p != 0 {
                    return Err(format!(
                        "the columns {:?} must be [B x {p}, {}]",
                        ins[0],
                        input.channels * window.kh * window.kw
                    ));
                }
                Ok(vec![r / p, input.len()])
            }
            ImageOp::ToChannels { positions } => {
                let (r, f) = matrix(ins[0], "the input")?;
                if positions == 0 || r % positions != 0 {
                    return Err(format!(
                        "the input {:?} must have a multiple of {positions} rows",
                        ins[0]
                    ));
                }
                Ok(vec![r / positions, f * positions])
            }
            ImageOp::FromChannels { positions } => {
                let (b, n) = matrix(ins[0], "the input")?;
                if positions == 0 || n % positions != 0 {
                    return Err(format!(
                        "the input {:?} must have a multiple of {positions} columns",
                        ins[0]
                    ));
                }
                Ok(vec![b * positions, n / positions])
            }
            ImageOp::MaxPool { input, window } | ImageOp::AvgPool { input, window } => {
                let b = image(ins[0], &input, "the input")?;
                let (oh, ow) = out(&input, &window)?;
                Ok(vec![b, input.channels * oh * ow])
            }
            ImageOp::MaxPoolGrad { input, window } | ImageOp::AvgPoolGrad { input, window } => {
                let (oh, ow) = out(&input, &window)?;
                let (b, n) = matrix(ins[0], "the error")?;
                if n != input.channels * oh * ow {
                    return Err(format!(
                        "the error {:?} must be [B, {}]",
                        ins[0],
                        input.channels * oh * ow
                    ));
                }
                if let ImageOp::MaxPoolGrad { .. } = self {
                    let bx = image(ins[1], &input, "the pooled input")?;
                    if bx != b {
                        return Err(format!("the error has {b} examples, the pooled input {bx}"));
                    }
                }
                Ok(vec![b, input.len()])
            }
            ImageOp::BatchNorm {
                channels,
                positions,
                ..
            }
            | ImageOp::BatchNormGrad {
                channels,
                positions,
                ..
            }
            | ImageOp::BatchNormParamGrad {
                channels,
                positions,
                ..
            } => {
                let (b, n) = matrix(ins[0], "the input")?;
                if n != channels * positions || b == 0 {
                    return Err(format!(
                        "the input {:?} must be [B >= 1, {channels} x {positions}]",
                        ins[0]
                    ));
                }
                let row: &[usize] = &[1, channels];
                let same = |k: usize| {
                    if ins[k] == ins[0] {
                        Ok(())
                    } else {
                        Err(format!(
                            "operand {k} {:?} must have the shape of operand 0 {:?}",
                            ins[k], ins[0]
                        ))
                    }
                };
                let (params, shape) = match self {
                    ImageOp::BatchNorm { .. } => (&ins[1..], ins[0].to_vec()),
                    ImageOp::BatchNormGrad { .. } => {
                        same(1)?;
                        (&ins[2..], ins[0].to_vec())
                    }
                    _ => {
                        same(1)?;
                        (&ins[2..], row.to_vec())
                    }
                };
                if let Some(p) = params.iter().find(|p| **p != row) {
                    return Err(format!("a scale or shift {p:?} must be [1, {channels}]"));
                }
                Ok(shape)
            }
        }
    }

    /// The exact result on operands `ins` (standard-layout slices; `rows` examples or rows of
    /// the first operand), into `out`, recording the vector unit's arithmetic in `format`.
    ///
    /// Counted (the comparisons of max pooling as adds, a comparator being an adder): im2col and
    /// the layouts nothing; col2im and the pools' backward an add per value added to an
    /// already written one; max pooling `window - 1` compares per output; average pooling
    /// `window - 1` adds and one multiply per output, its backward one multiply per error;
    /// batch normalization per value 4 adds and 3 multiplies (statistics, normalization, scale
    /// and shift), its input gradient 4 adds and 3 multiplies, a parameter gradient 1 add (and
    /// for `gamma` 2 multiplies).
    pub fn apply(
        &self,
        ins: &[&[f64]],
        rows: usize,
        out: &mut [f64],
        counts: &mut ActionCounts,
        format: &Format,
    ) {
        let n = |x: &[f64]| x.len() as u64;
        match *self {
            ImageOp::Im2col { input, window } => im2col(ins[0], rows, &input, &window, out),
            ImageOp::Col2im { input, window } => {
                let adds = col2im(ins[0], &input, &window, out);
                counts.record_add(format, adds);
            }
            ImageOp::ToChannels { positions } => {
                to_channels(ins[0], rows / positions.max(1), positions, out)
            }
            ImageOp::FromChannels { positions } => from_channels(ins[0], rows, positions, out),
            ImageOp::MaxPool { input, window } => {
                let compares = max_pool(ins[0], rows, &input, &window, out);
                counts.record_add(format, compares);
            }
            ImageOp::MaxPoolGrad { input, window } => {
                let adds = max_pool_backward(ins[0], ins[1], rows, &input, &window, out);
                counts.record_add(format, adds);
            }
            ImageOp::AvgPool { input, window } => {
                let adds = avg_pool(ins[0], rows, &input, &window, out);
                counts.record_add(format, adds);
                counts.record_mul(format, format, n(out));
            }
            ImageOp::AvgPoolGrad { input, window } => {
                let adds = avg_pool_backward(ins[0], rows, &input, &window, out);
                counts.record_add(format, adds);
                counts.record_mul(format, format, n(ins[0]));
            }
            ImageOp::BatchNorm {
                channels,
                positions,
                eps,
            } => {
                let stats = BnStats::of(ins[0], rows, channels, positions, eps);
                batch_norm(ins[0], ins[1], ins[2], &stats, out);
                counts.record_add(format, 4 * n(out));
                counts.record_mul(format, format, 3 * n(out));
            }
            ImageOp::BatchNormGrad {
                channels,
                positions,
                eps,
            } => {
                let stats = BnStats::of(ins[1], rows, channels, positions, eps);
                batch_norm_backward(ins[0], ins[1], ins[2], &stats, out);
                counts.record_add(format, 4 * n(out));
                counts.record_mul(format, format, 3 * n(out));
            }
            ImageOp::BatchNormParamGrad {
                channels,
                positions,
                eps,
                gamma,
            } => {
                let stats = BnStats::of(ins[1], rows, channels, positions, eps);
                let (dgamma, dbeta) = batch_norm_param_grads(ins[0], ins[1], &stats);
                out.copy_from_slice(if gamma { &dgamma } else { &dbeta });
                counts.record_add(format, n(ins[0]));
                if gamma {
                    counts.record_mul(format, format, 2 * n(ins[0]));
                }
            }
        }
    }
}
