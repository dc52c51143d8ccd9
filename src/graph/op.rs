//! The ops of a step graph, a closed set ([`Op`]), and the numbers they take ([`Scalar`]:
//! constants, or per-step inputs fed with the step's data).

use serde::Serialize;

use super::image::ImageOp;

/// A number an op uses: fixed when the graph is built, or a per-step scalar the driver feeds
/// with the step's data (a step size, a noise scale), so that one graph serves every step of a
/// run. A per-step scalar is fed as a one-element array under its name, or as one element of a
/// vector feed (one scale per layer).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A constant.
    Const(f64),
    /// The one-element feed of this name.
    Input(&'static str),
    /// Element `index` of the vector feed of this name.
    Element(&'static str, usize),
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Const(v)
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Const(v) => write!(f, "{v}"),
            Scalar::Input(name) => f.write_str(name),
            Scalar::Element(name, i) => write!(f, "{name}[{i}]"),
        }
    }
}

/// An operation: a closed set chosen at run time. Operand order is the edge's slot number.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Op {
    /// Per-step data supplied by the driver (a mini-batch, targets, cached values).
    Input,
    /// Persistent state supplied by the driver (weights, master copies, centres).
    Param,
    /// `op(A) op(B)` on the MAC array (`arith::gemm` with the architecture's MAC configuration),
    /// the accumulator result then rounded to the output format. Operands must hold values of
    /// the MAC's input formats (see [`crate::graph::fits_within`]).
    MatMul {
        /// Use `A^T`.
        transpose_a: bool,
        /// Use `B^T`.
        transpose_b: bool,
    },
    /// Rows of a data matrix picked by an index column: operands `(data [N, d], idx [B, 1])`,
    /// output `[B, d]` with row `r` = `data[idx[r]]` (a mini-batch). The values are copied, so
    /// the output has the data's format; only the gathered rows are read.
    Gather,
    /// `x + y` elementwise.
    Add,
    /// `x + b` with the row `b` (`[1, n]`) added to every row of `x` (`[m, n]`): a layer's
    /// bias on the vector unit, counted as `m n` adds like [`Op::Add`].
    BiasAdd,
    /// `x - y` elementwise.
    Sub,
    /// `x * y` elementwise.
    Mul,
    /// `c x`.
    Scale {
        /// The factor.
        c: Scalar,
    },
    /// `x + c y` (the vector unit's fused update), computed in `f64` then rounded once.
    Axpy {
        /// The factor.
        c: Scalar,
    },
    /// `max(x, 0)`.
    Relu,
    /// `g * [z > 0]` for operands `(g, z)`: the ReLU's backward pass.
    ReluGrad,
    /// Row-wise softmax of a matrix; `exp` is computed in `f64` (max subtracted), the result
    /// rounded once to the output format.
    Softmax,
    /// `(softmax(z) - y) / B` for logits `z` and one-hot targets `y` (`B x C`): the gradient of
    /// the mean cross-entropy with respect to the logits, computed in `f64`, rounded once.
    SoftmaxXentGrad,
    /// Column sums of a matrix: `[m, n] -> [1, n]`.
    SumRows,
    /// Round to the output format with the output rounding unit (a conversion).
    Quantize,
    /// `x + std xi`, `xi ~ N(0, 1)` per element from the counter-based stream, rounded once.
    GaussianNoise {
        /// Standard deviation of the added noise.
        std: Scalar,
    },
    /// LP-SGLD's variance-corrected quantizer `Q^vc(mu, v)` onto the output format's grid
    /// (docs/algorithms.md; [`crate::arith::vc`]): fixed point, bfp, MX, any float with a zero
    /// (not E8M0) and QPyTorch's float.
    VcQuantize {
        /// The target variance `v` (`2 lr T / N` in LP-SGLD).
        v: Scalar,
    },
    /// QSGLD's quantized step `floor(Q_p (h + r)) / Q_p` with `r = c h / ||h||_2`
    /// (docs/algorithms.md; [`crate::arith::quantize_step`]).
    QsgldQuantize {
        /// The resolution `Q_p`.
        q: Scalar,
        /// The compensation coefficient `c = lr s(t_e)`.
        c: Scalar,
        /// Round to nearest (`floor(. + 0.5)`, the reference's debug path) instead of floor.
        nearest: bool,
    },
    /// An op on a batch of images: convolution data movement, pooling, batch normalization
    /// ([`ImageOp`]).
    Image(ImageOp),
}

impl Op {
    /// The op's name as shown in DOT and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Param => "param",
            Op::MatMul { .. } => "matmul",
            Op::Gather => "gather",
            Op::Add => "add",
            Op::BiasAdd => "bias_add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Scale { .. } => "scale",
            Op::Axpy { .. } => "axpy",
            Op::Relu => "relu",
            Op::ReluGrad => "relu_grad",
            Op::Softmax => "softmax",
            Op::SoftmaxXentGrad => "softmax_xent_grad",
            Op::SumRows => "sum_rows",
            Op::Quantize => "quantize",
            Op::GaussianNoise { .. } => "gaussian_noise",
            Op::VcQuantize { .. } => "vc_quantize",
            Op::QsgldQuantize { .. } => "qsgld_quantize",
            Op::Image(o) => o.name(),
        }
    }

    /// The numbers the op takes.
    pub fn scalars(&self) -> Vec<Scalar> {
        match *self {
            Op::Scale { c } | Op::Axpy { c } => vec![c],
            Op::GaussianNoise { std } => vec![std],
            Op::VcQuantize { v } => vec![v],
            Op::QsgldQuantize { q, c, .. } => vec![q, c],
            _ => Vec::new(),
        }
    }

    /// Number of operands.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input | Op::Param => 0,
            Op::MatMul { .. }
            | Op::Gather
            | Op::Add
            | Op::BiasAdd
            | Op::Sub
            | Op::Mul
            | Op::Axpy { .. }
            | Op::ReluGrad
            | Op::SoftmaxXentGrad => 2,
            Op::Image(o) => o.arity(),
            _ => 1,
        }
    }

    /// Whether the op only moves values (a gather, im2col, a layout change, max pooling): its
    /// output keeps its input's format, is not rounded, counts no vector operation and is not
    /// judged (its values were judged where they were produced).
    pub fn moves_values(&self) -> bool {
        match self {
            Op::Gather => true,
            Op::Image(o) => o.moves_values(),
            _ => false,
        }
    }
}
