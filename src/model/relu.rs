//! `ReLU`: `h = max(z, 0)` elementwise, on the vector unit in the activations format; its
//! backward passes the error where the input is positive ([`Op::ReluGrad`], gradients format).

use ndarray::{ArrayD, ArrayViewD, Zip};
use petgraph::graph::NodeIndex;

use super::centred::{CentredGrad, CentredOut, CentredParam, Centring, ValueId, ValueNames};
use super::layer::{Layer, ParamSpec};
use super::{Builder, ModelError};
use crate::graph::{Op, Role};

/// A ReLU: in an MLP (`prefix` empty) after the model's dense layer `index`, its tensors
/// `h{index}` and, backward, `err{index + 1}` (the error of that dense layer's output, as a
/// last dense layer's error is named); elsewhere the `index`-th ReLU named `{prefix}{index}`,
/// its tensors `{prefix}{index}.out` and `.dx`.
#[derive(Clone, Debug, PartialEq)]
pub struct Relu {
    /// The dense layer it follows (MLP), or its position among the model's ReLUs.
    pub index: usize,
    /// The name's prefix (`relu` in a convolutional network); empty in an MLP.
    pub prefix: &'static str,
}

impl Relu {
    /// The ReLU after dense layer `index` of an MLP.
    pub fn after_dense(index: usize) -> Self {
        Relu { index, prefix: "" }
    }

    fn names(&self) -> [String; 3] {
        let (i, p) = (self.index, self.prefix);
        if p.is_empty() {
            [
                format!("h{i}"),
                format!("err{}", i + 1),
                format!("err_h{i}"),
            ]
        } else {
            [
                format!("{p}{i}.out"),
                format!("{p}{i}.dx"),
                format!("{p}{i}.err"),
            ]
        }
    }
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
        b.op(Op::Relu, &self.names()[0], f, r, role, &[x[0]])
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
        let dx = b.op(Op::ReluGrad, &self.names()[1], f, r, role, &[err, x[0]])?;
        Ok((vec![Some(dx)], Vec::new()))
    }

    fn error_name(&self) -> String {
        let [_, _, last] = self.names();
        last
    }

    /// The authors' `relu_layer.py`: the output at `w` is `relu(s)` of the input at `w`
    /// (`s = s~ + ds`) in full precision; its offset `a - a~` is taken where a reader needs it.
    fn centred_forward(
        &self,
        cx: &mut Centring,
        x: &[ValueId],
        _params: &[CentredParam],
    ) -> Result<(CentredOut, ValueNames), ModelError> {
        let names = self.centred_names();
        let s = cx.full(x[0])?;
        let a = cx
            .b()
            .f32op(Op::Relu, &names.full, Role::Activations, &[s])?;
        Ok((CentredOut::Full(a), names))
    }

    /// A gate ([`Centring::gate_backward`]) with the mask `[s > 0]` of the input at `w` (the
    /// pre-activation at `w`, as the authors').
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
        let (i, p) = (self.index, self.prefix);
        let names = if p.is_empty() {
            ["t", "v", "v0", "u", "dg"].map(|n| format!("{n}{i}"))
        } else {
            ["t", "v", "v0", "u", "dg"].map(|n| format!("{p}{i}.{n}"))
        };
        let dx = cx.gate_backward(Op::ReluGrad, names, (x[0], y), err)?;
        Ok((vec![Some(dx)], Vec::new()))
    }
}

impl Relu {
    /// The names of the bit-centred output's nodes: in an MLP `a{index + 1}` (the next dense
    /// layer's input), `da`, `ca` alike, `ch{index}`, `dgh{index}`; elsewhere
    /// `{prefix}{index}.a`, `.da`, `.ca`, `.ch`, `.dgh`.
    fn centred_names(&self) -> ValueNames {
        let (i, p) = (self.index, self.prefix);
        if p.is_empty() {
            let j = i + 1;
            return ValueNames {
                full: format!("a{j}"),
                offset: format!("da{j}"),
                centre: format!("ca{j}"),
                centre_grad: format!("ch{i}"),
                grad_offset: format!("dgh{i}"),
            };
        }
        let n = |what: &str| format!("{p}{i}.{what}");
        ValueNames {
            full: n("a"),
            offset: n("da"),
            centre: n("ca"),
            centre_grad: n("ch"),
            grad_offset: n("dgh"),
        }
    }
}
