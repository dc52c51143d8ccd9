//! Bit-centred passes: HALP's inner step (De Sa et al. 2018) on any layered model, following
//! the authors' `halp/layers/bit_center_layer.py` and its layer files.
//!
//! At the iterate `w = w~ + z` every value of the model (its input, each layer's output) is the
//! centre's value `v~`, computed and cached per training example by the epoch's full-precision
//! pass ([`super::Model::gradient_pass`]), plus an offset `dv`; every parameter tensor is its
//! centre `W~` plus `Z = delta K` (integer codes `K` on the MAC's B side, a scale `delta` per
//! tensor fed as [`DELTA`]`[p]`); every gradient is the centre's plus an offset. A layer's
//! bit-centred forward ([`super::Layer::centred_forward`]) computes its output's offset (or its
//! output at `w` in full precision, whichever its arithmetic gives) from its inputs' offsets, so
//! that every product multiplies an offset on the low-precision MAC; its bit-centred backward
//! ([`super::Layer::centred_backward`]) the offsets of the parameters' gradients and of its
//! inputs' gradients. [`super::Model::centred_gradients`] walks the layers as
//! [`super::Model::gradients`] does and gives the gradient *difference*
//! `grad f_B(w~ + z) - grad f_B(w~)` of every parameter tensor.
//!
//! Scales: the cache holds the gradients of the mean loss over the `N` training examples; the
//! step's are over its `B` rows, so a cached gradient counts `c = N / B` times
//! ([`CentredGrad::centre`]). A layer type without a bit-centred form refuses with
//! [`ModelError::NotBitCentred`].
//!
//! Formats: offsets of values are stored in the activations format, offsets of gradients in the
//! gradients format; values at `w` and sums with the centre are full-precision vector-unit ops
//! (`full_precision.format`, `rne`), as the authors keep the centre in fp32 and the offsets in
//! fp16.

use petgraph::graph::NodeIndex;

use super::{Builder, ModelError, ParamSpec};
use crate::cost::{Pass, Scope};
use crate::graph::{Op, Role, Scalar};
use crate::round::Rounding;

/// The per-epoch vector feed of the bit-centred step: each parameter tensor's scale `delta`.
pub const DELTA: &str = "delta";

/// The layer types with a bit-centred form, for [`ModelError::NotBitCentred`]'s message.
pub const BIT_CENTRED_LAYERS: &str =
    "linear, relu, residual_add, conv2d, maxpool2d, avgpool2d, flatten, batchnorm";

/// A refusal: the `what` (`layer`, `loss`) type `kind` has no bit-centred form.
pub fn not_bit_centred(what: &'static str, kind: &'static str) -> ModelError {
    ModelError::NotBitCentred {
        what,
        kind,
        have: BIT_CENTRED_LAYERS,
    }
}

/// The names of a parameter tensor's quantities in the bit-centred step: its gradient's name
/// ([`ParamSpec::grad`]) without the `grad` prefix (`0`, `b0`), so that codes `k0`, `kb0`,
/// full gradients `gt0`, `gtb0`, ... follow an MLP's names; else `.` and the tensor's name
/// (`k.conv0.weight`, `gt.conv0.weight`, ...).
pub fn param_key(spec: &ParamSpec) -> String {
    match spec.grad.strip_prefix("grad") {
        Some(key) => key.to_string(),
        None => format!(".{}", spec.name),
    }
}

/// A value of the model in a bit-centred pass: 0 the input, `k + 1` layer `k`'s output (as
/// [`super::Source`] numbers them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueId(pub usize);

/// The names a layer gives its output's bit-centred nodes (fixed by the layer, so that random
/// streams keyed by tensor name do not depend on how the graph was assembled).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueNames {
    /// The value at `w` in full precision (`centre + offset`, when the layer gives the offset).
    pub full: String,
    /// The offset in the activations format (`full - centre`, when the layer gives the value).
    pub offset: String,
    /// The centre's cached rows (a feed).
    pub centre: String,
    /// The centre's cached gradient rows (a feed).
    pub centre_grad: String,
    /// The offset of the loss's gradient when the value is the model's output.
    pub grad_offset: String,
}

/// A layer's bit-centred output: its offset (activations format) or its value at `w` (full
/// precision); the other is derived from the cached centre when a reader asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CentredOut {
    /// The offset `dv`.
    Offset(NodeIndex),
    /// The value at `w`.
    Full(NodeIndex),
    /// The input value itself, seen with another shape (a flatten): offset, value and centre
    /// are the input's.
    Same(ValueId),
}

/// A gradient arriving at a value in the bit-centred backward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CentredGrad {
    /// Its offset: the batch's gradient at `w` minus the batch's gradient at the centre.
    pub offset: NodeIndex,
    /// The batch's gradient at the centre as `coef x node`; `None`: the value's cached centre
    /// gradient, `c = N / B` times ([`Centring::centre_grad`]).
    pub centre: Option<(NodeIndex, f64)>,
}

/// A parameter tensor in the bit-centred step.
#[derive(Clone, Debug, PartialEq)]
pub struct CentredParam {
    /// Its position among the model's parameter tensors (its element of [`DELTA`]).
    pub index: usize,
    /// Its offset codes `K` (the MAC's B side: integer values, or the weight format's).
    pub codes: NodeIndex,
    /// [`param_key`].
    pub key: String,
}

#[derive(Clone, Copy, Debug)]
enum Offset {
    /// Exactly zero: the data.
    Zero,
    Node(NodeIndex),
    Unbuilt,
}

#[derive(Clone, Debug)]
struct Value {
    /// The value whose offset, value and centre this one shares (a flatten's input).
    alias: Option<usize>,
    full: Option<NodeIndex>,
    offset: Offset,
    centre: Option<NodeIndex>,
    centre_grad: Option<NodeIndex>,
    names: ValueNames,
}

/// The full pass's node names of a value and of its error (`None`: no error, the input).
pub type PassNames = (String, Option<String>);

/// The context of a bit-centred pass: the step graph's builder, the values built so far, and
/// what the step reads from the epoch's full pass (cached rows, the centre's MAC copies).
pub struct Centring<'b, 'a> {
    b: &'b mut Builder<'a>,
    c: f64,
    code_rounding: Rounding,
    pass: Vec<PassNames>,
    values: Vec<Value>,
    consumers: Vec<usize>,
    caches: Vec<(String, String)>,
    /// The centre's MAC copies fed so far: (feed name, parameter tensor, node).
    copies: Vec<(String, usize, NodeIndex)>,
    /// The centre's parameters in full precision fed so far: (feed name, tensor, node).
    params: Vec<(String, usize, NodeIndex)>,
    /// The parameters at the iterate in full precision built so far: (tensor, node).
    at_w: Vec<(usize, NodeIndex)>,
}

/// What a bit-centred step reads from the epoch's full pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CentreReads {
    /// Cached rows: (feed name, the full pass's node name), one row per training example.
    pub caches: Vec<(String, String)>,
    /// The centre's copies in the MAC's B format: (feed name, parameter tensor).
    pub copies: Vec<(String, usize)>,
    /// The centre's parameters themselves, in full precision (the driver's master copies):
    /// (feed name, parameter tensor).
    pub params: Vec<(String, usize)>,
}

impl<'b, 'a> Centring<'b, 'a> {
    /// A bit-centred pass on `b` whose cached gradients count `c = N / B` times, with codes
    /// entering the MAC with `code_rounding`, reading the full pass whose values and errors are
    /// named `pass` (by [`ValueId`]), on the data node `x` (the input value: no offset).
    pub fn new(
        b: &'b mut Builder<'a>,
        c: f64,
        code_rounding: Rounding,
        pass: Vec<PassNames>,
        x: NodeIndex,
    ) -> Self {
        let input = Value {
            alias: None,
            full: Some(x),
            offset: Offset::Zero,
            centre: Some(x),
            centre_grad: None,
            names: ValueNames::default(),
        };
        Centring {
            b,
            c,
            code_rounding,
            pass,
            values: vec![input],
            consumers: Vec::new(),
            caches: Vec::new(),
            copies: Vec::new(),
            params: Vec::new(),
            at_w: Vec::new(),
        }
    }

    /// The step graph's builder.
    pub fn b(&mut self) -> &mut Builder<'a> {
        self.b
    }

    /// `c = N / B`: how many times a cached gradient counts at the batch's scale.
    pub fn c(&self) -> f64 {
        self.c
    }

    /// The rounding unit of the codes as MAC operands (they are values of the MAC's B format,
    /// so nothing is rounded; a conversion would use it).
    pub fn code_rounding(&self) -> Rounding {
        self.code_rounding
    }

    /// The scale `delta` of parameter tensor `p` (a per-epoch scalar).
    pub fn delta(&self, p: &CentredParam) -> Scalar {
        Scalar::Element(DELTA, p.index)
    }

    /// Whether value `v` is read by one layer only (its cached centre gradient is then that
    /// layer's contribution alone).
    pub fn single_reader(&self, v: ValueId) -> bool {
        self.consumers.get(v.0).copied().unwrap_or(0) <= 1
    }

    /// Value `v`'s entry (`own`), or the entry of the value it shares its nodes with.
    fn value_at(&mut self, v: ValueId, own: bool) -> Result<&mut Value, ModelError> {
        let mut at = v.0;
        while let Some(Some(a)) = self.values.get(at).map(|x| x.alias).filter(|_| !own) {
            at = a;
        }
        self.values
            .get_mut(at)
            .ok_or_else(|| ModelError::Spec(format!("bit-centred pass: no value {}", v.0)))
    }

    /// The entry holding value `v`'s offset, value and centre.
    fn value(&mut self, v: ValueId) -> Result<&mut Value, ModelError> {
        self.value_at(v, false)
    }

    /// A node's shape.
    fn shape(&self, i: NodeIndex) -> Vec<usize> {
        self.b.b.meta(i).shape.clone()
    }

    /// The centre's cached rows of value `v` (a full-precision feed, read once).
    pub fn centre(&mut self, v: ValueId) -> Result<NodeIndex, ModelError> {
        let val = self.value(v)?.clone();
        if let Some(c) = val.centre {
            return Ok(c);
        }
        let like = match (val.full, val.offset) {
            (Some(f), _) => f,
            (None, Offset::Node(o)) => o,
            _ => return Err(ModelError::Spec(format!("bit-centred value {} unset", v.0))),
        };
        let shape = self.shape(like);
        let full = self.b.full();
        let node = self.b.feed(
            Op::Input,
            &val.names.centre,
            &shape,
            full,
            Rounding::NearestEven,
            Role::Activations,
        )?;
        let source = self.pass[self.resolve(v)].0.clone();
        self.caches.push((val.names.centre.clone(), source));
        self.value(v)?.centre = Some(node);
        Ok(node)
    }

    /// The centre's cached gradient rows with respect to value `v` (the full pass's error of
    /// `v`, summed over its readers) and the coefficient `c` that scales them to the batch.
    pub fn centre_grad(&mut self, v: ValueId) -> Result<(NodeIndex, f64), ModelError> {
        // A value's own error: a flatten's output shares its input's nodes, not its readers.
        let val = self.value_at(v, true)?.clone();
        if let Some(g) = val.centre_grad {
            return Ok((g, self.c));
        }
        let Some(source) = self.pass.get(v.0).and_then(|p| p.1.clone()) else {
            return Err(ModelError::Spec(format!(
                "bit-centred pass: value {} has no gradient in the full pass",
                v.0
            )));
        };
        let like = self.centre(v)?;
        let shape = self.shape(like);
        let full = self.b.full();
        let node = self.b.feed(
            Op::Input,
            &val.names.centre_grad,
            &shape,
            full,
            Rounding::NearestEven,
            Role::Gradients,
        )?;
        self.caches.push((val.names.centre_grad.clone(), source));
        self.value_at(v, true)?.centre_grad = Some(node);
        Ok((node, self.c))
    }

    /// The batch's gradient at the centre for a gradient `g` arriving at value `v`.
    pub fn grad_centre(
        &mut self,
        v: ValueId,
        g: CentredGrad,
    ) -> Result<(NodeIndex, f64), ModelError> {
        match g.centre {
            Some(c) => Ok(c),
            None => self.centre_grad(v),
        }
    }

    /// Value `v` at `w` in full precision: `centre + offset` on the vector unit (built once).
    pub fn full(&mut self, v: ValueId) -> Result<NodeIndex, ModelError> {
        let val = self.value(v)?.clone();
        if let Some(f) = val.full {
            return Ok(f);
        }
        let Offset::Node(offset) = val.offset else {
            return Err(ModelError::Spec(format!("bit-centred value {} unset", v.0)));
        };
        let centre = self.centre(v)?;
        let node = self.b.f32op(
            Op::Add,
            &val.names.full,
            Role::Activations,
            &[centre, offset],
        )?;
        self.value(v)?.full = Some(node);
        Ok(node)
    }

    /// Value `v`'s offset in the activations format (`full - centre`, built once); `None` when
    /// it is exactly zero (the data).
    pub fn offset(&mut self, v: ValueId) -> Result<Option<NodeIndex>, ModelError> {
        let val = self.value(v)?.clone();
        match val.offset {
            Offset::Zero => Ok(None),
            Offset::Node(o) => Ok(Some(o)),
            Offset::Unbuilt => {
                let full = self.full(v)?;
                let centre = self.centre(v)?;
                let (f, r, _) = self.b.act();
                let node = self.b.op(
                    Op::Sub,
                    &val.names.offset,
                    f,
                    r,
                    Role::Activations,
                    &[full, centre],
                )?;
                self.value(v)?.offset = Offset::Node(node);
                Ok(Some(node))
            }
        }
    }

    /// The names layer output `v` was given (a flatten's: its input's).
    pub fn names(&self, v: ValueId) -> Option<&ValueNames> {
        self.values.get(self.resolve(v)).map(|v| &v.names)
    }

    /// The value holding `v`'s nodes.
    fn resolve(&self, v: ValueId) -> usize {
        let mut at = v.0;
        while let Some(Some(a)) = self.values.get(at).map(|x| x.alias) {
            at = a;
        }
        at
    }

    /// The backward pass of a gate: a layer whose input gradient is `op(g, s)`, linear in the
    /// arriving gradient `g` with a pattern fixed by the input `s` (the ReLU's mask, max
    /// pooling's arg-max), as the authors' `relu_layer.py` and `max_pool_layer.py`: with the
    /// input at `w` (`s = s~ + ds`), the arriving offset `dg` and the centre's gradient `g~`
    /// at the output, the input's gradient offset is `op(g~ + dg, s) - op(g~, s~)`, computed as
    /// `op(dg, s) + c (op(g~h, s) - g~z)` with the cached rows `g~h` (output) and `g~z` (the
    /// input's, the full pass's `op(g~h, s~)` when this layer is the input's only reader; else
    /// recomputed from the cached input): no full-size gradient is rounded before the difference
    /// is taken, and it is exactly zero at the centre. `names`: the nodes `op(dg, s)`,
    /// `op(g~h, s)`, `op(g~h, s~)` (when recomputed), the centre's difference and the result.
    pub fn gate_backward(
        &mut self,
        op: Op,
        names: [String; 5],
        (x, y): (ValueId, ValueId),
        err: CentredGrad,
    ) -> Result<CentredGrad, ModelError> {
        let [t, v, v0, u, dg] = names;
        let s = self.full(x)?;
        let (ch, coef) = self.grad_centre(y, err)?;
        let (cg, c) = if self.single_reader(x) {
            self.centre_grad(x)?
        } else {
            let s0 = self.centre(x)?;
            let v0 = self.b.f32op(op, &v0, Role::Gradients, &[ch, s0])?;
            (v0, coef)
        };
        let b = &mut self.b;
        let (gf, gr, role) = b.grad();
        let t = b.op(op, &t, gf, gr, role, &[err.offset, s])?;
        let v = b.f32op(op, &v, role, &[ch, s])?;
        // `coef v - c cg`: the centre's part at the batch's scale, `coef` factored out.
        let u = if coef == c {
            b.f32op(Op::Sub, &u, role, &[v, cg])?
        } else {
            let axpy = Op::Axpy {
                c: (-c / coef).into(),
            };
            b.f32op(axpy, &u, role, &[v, cg])?
        };
        let dg = b.op(Op::Axpy { c: coef.into() }, &dg, gf, gr, role, &[t, u])?;
        Ok(CentredGrad {
            offset: dg,
            centre: Some((cg, c)),
        })
    }

    /// Parameter `p`'s centre in the MAC's B format (a feed `wc{key}`, the authors'
    /// `weight_lp`, made by the full pass).
    pub fn centre_on_mac(&mut self, p: &CentredParam) -> Result<NodeIndex, ModelError> {
        if let Some(&(_, _, i)) = self.copies.iter().find(|c| c.1 == p.index) {
            return Ok(i);
        }
        let name = format!("wc{}", p.key);
        let shape = self.shape(p.codes);
        let (mb, rw) = (self.b.arch.formats.mac.b, self.b.weight_rounding());
        let node = self
            .b
            .feed(Op::Param, &name, &shape, mb, rw, Role::Weights)?;
        self.copies.push((name, p.index, node));
        Ok(node)
    }

    /// Parameter `p`'s centre `W~_p` in full precision (a feed `wt{key}`, the driver's master
    /// copy: the authors' `weight_lp` kept in fp32), for a layer whose output is not linear in
    /// the parameter (batch normalization's scale).
    pub fn centre_param(&mut self, p: &CentredParam) -> Result<NodeIndex, ModelError> {
        if let Some(&(_, _, i)) = self.params.iter().find(|c| c.1 == p.index) {
            return Ok(i);
        }
        let name = format!("wt{}", p.key);
        let shape = self.shape(p.codes);
        let full = self.b.full();
        let node = self.b.feed(
            Op::Param,
            &name,
            &shape,
            full,
            Rounding::NearestEven,
            Role::Weights,
        )?;
        self.params.push((name, p.index, node));
        Ok(node)
    }

    /// Parameter `p` at the iterate in full precision, `W~ + delta K` on the vector unit
    /// (`wf{key}`, built once).
    pub fn param_at_w(&mut self, p: &CentredParam) -> Result<NodeIndex, ModelError> {
        if let Some(&(_, i)) = self.at_w.iter().find(|c| c.0 == p.index) {
            return Ok(i);
        }
        let centre = self.centre_param(p)?;
        let axpy = Op::Axpy { c: self.delta(p) };
        let name = format!("wf{}", p.key);
        let node = self
            .b
            .f32op(axpy, &name, Role::Weights, &[centre, p.codes])?;
        self.at_w.push((p.index, node));
        Ok(node)
    }

    /// Adds layer output `out` with `names` (the walk's order: layer `k`'s output is value
    /// `k + 1`).
    pub(super) fn push(&mut self, out: CentredOut, names: ValueNames) {
        let (alias, full, offset) = match out {
            CentredOut::Offset(o) => (None, None, Offset::Node(o)),
            CentredOut::Full(f) => (None, Some(f), Offset::Unbuilt),
            CentredOut::Same(v) => (Some(v.0), None, Offset::Unbuilt),
        };
        self.values.push(Value {
            alias,
            full,
            offset,
            centre: None,
            centre_grad: None,
            names,
        });
    }

    /// Sets how many layers read each value.
    pub(super) fn set_readers(&mut self, consumers: Vec<usize>) {
        self.consumers = consumers;
    }

    /// What the step reads from the full pass.
    pub fn reads(&self) -> CentreReads {
        CentreReads {
            caches: self.caches.clone(),
            copies: self
                .copies
                .iter()
                .map(|(n, p, _)| (n.clone(), *p))
                .collect(),
            params: self
                .params
                .iter()
                .map(|(n, p, _)| (n.clone(), *p))
                .collect(),
        }
    }
}

impl super::Model {
    /// Adds the bit-centred gradient differences of the batch in `cx` (targets node `y`) to
    /// its step graph: for each parameter tensor (in the order of [`super::Model::params`],
    /// `params` its codes) the node of `grad f_B(w~ + z) - grad f_B(w~)`, in the gradients
    /// format. The layers are walked as [`super::Model::gradients`] walks them; a value read
    /// by several layers gets the sum of their gradient offsets (`dgsum{v}.{i}`).
    pub fn centred_gradients(
        &self,
        cx: &mut Centring,
        y: Option<NodeIndex>,
        params: &[CentredParam],
    ) -> Result<Vec<NodeIndex>, ModelError> {
        let mut readers = vec![0usize; self.layers.len() + 1];
        for s in self.sources.iter().flatten() {
            readers[s.value()] += 1;
        }
        cx.set_readers(readers);
        // Each layer's bit-centred work is counted under its scope, as `Model::gradients`'s.
        let outer = cx.b().set_scope(Scope::default());
        let grads = self.build_centred(cx, y, params);
        cx.b().set_scope(outer);
        grads
    }

    /// [`Model::centred_gradients`] once the readers are known, each part in its scope.
    fn build_centred(
        &self,
        cx: &mut Centring,
        y: Option<NodeIndex>,
        params: &[CentredParam],
    ) -> Result<Vec<NodeIndex>, ModelError> {
        let parts = self.layer_parts();
        let split = self.split(params);
        for (k, ((layer, sources), p)) in self
            .layers
            .iter()
            .zip(&self.sources)
            .zip(&split)
            .enumerate()
        {
            cx.b().set_scope(Scope::new(parts[k], Pass::Forward));
            let inputs: Vec<ValueId> = sources.iter().map(|s| ValueId(s.value())).collect();
            let (out, names) = layer.centred_forward(cx, &inputs, p)?;
            cx.push(out, names);
        }
        let last = ValueId(self.layers.len());
        let mut errs: Vec<Option<CentredGrad>> = vec![None; self.layers.len() + 1];
        cx.b()
            .set_scope(Scope::new(self.loss_part(), Pass::Backward));
        errs[last.0] = Some(self.loss.centred_error(cx, last, y)?);
        let mut sums = vec![0usize; errs.len()];
        let mut grads: Vec<Vec<NodeIndex>> = vec![Vec::new(); self.layers.len()];
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let Some(err) = errs[k + 1] else {
                return Err(ModelError::Spec(format!(
                    "layer {k} ({}) does not reach the loss: its parameters would get no gradient",
                    layer.kind()
                )));
            };
            let sources = &self.sources[k];
            let inputs: Vec<ValueId> = sources.iter().map(|s| ValueId(s.value())).collect();
            let need: Vec<bool> = sources.iter().map(|s| *s != super::Source::Input).collect();
            cx.b().set_scope(Scope::new(parts[k], Pass::Backward));
            let (dx, g) =
                layer.centred_backward(cx, &inputs, ValueId(k + 1), err, split[k], &need)?;
            grads[k] = g;
            for (s, d) in sources.iter().zip(dx) {
                let (Some(d), super::Source::Layer(_)) = (d, s) else {
                    continue;
                };
                let v = s.value();
                errs[v] = Some(match errs[v] {
                    Some(sum) => {
                        let (f, r, role) = cx.b().grad();
                        let name = format!("dgsum{v}.{}", sums[v]);
                        sums[v] += 1;
                        let offset =
                            cx.b()
                                .op(Op::Add, &name, f, r, role, &[sum.offset, d.offset])?;
                        // The centre's gradient of a value read several times: the full pass's
                        // sum of its readers' errors, cached.
                        CentredGrad {
                            offset,
                            centre: None,
                        }
                    }
                    None => d,
                });
            }
        }
        Ok(grads.into_iter().flatten().collect())
    }
}
