//! The `f64` oracle of a model: forward pass, predictions, the objective and its gradient by
//! backpropagation through the layers' oracles. The metrics, the exact optimum and the gradient
//! check use it; the step graphs are checked against it.

use ndarray::{Array1, Array2, ArrayD, ArrayView2, Ix2, IxDyn};

use super::{Model, ModelKind, Source};
use crate::workload::Targets;

impl Model {
    /// The model's input and every layer's output, in `f64` (`x` is ignored by a Gaussian
    /// target); indexed by [`Source::value`].
    fn forward_all(&self, params: &[ArrayD<f64>], x: Option<ArrayView2<f64>>) -> Vec<ArrayD<f64>> {
        assert_eq!(
            params.len(),
            self.params().len(),
            "one array per parameter tensor"
        );
        let input = x.map_or_else(
            || ArrayD::zeros(IxDyn(&[1, 0])),
            |x| x.to_owned().into_dyn(),
        );
        let mut values = vec![input];
        for ((layer, sources), p) in self
            .layers
            .iter()
            .zip(&self.sources)
            .zip(self.split(params))
        {
            let p: Vec<&ArrayD<f64>> = p.iter().collect();
            let inputs: Vec<_> = sources.iter().map(|s| values[s.value()].view()).collect();
            let next = layer.forward(&p, &inputs);
            values.push(next);
        }
        values
    }

    /// What the model predicts on `x` in `f64`: class probabilities (`N x C`), values (`N x 1`),
    /// or a Gaussian target's parameters themselves.
    pub fn predict(&self, params: &[ArrayD<f64>], x: ArrayView2<f64>) -> Array2<f64> {
        let out = self.forward_all(params, Some(x)).pop().expect("an output");
        self.loss
            .predict(out)
            .into_dimensionality::<Ix2>()
            .expect("models predict matrices")
    }

    /// The model as evaluation runs it at `params`: every layer whose evaluation differs from
    /// training replaced by its evaluation form given its inputs over the training set
    /// `x_train` ([`super::Layer::for_evaluation`]: batch normalization with the training set's
    /// statistics). The model itself when no layer differs.
    pub fn for_evaluation(&self, params: &[ArrayD<f64>], x_train: ArrayView2<f64>) -> Model {
        let mut eval = self.clone();
        if !self.layers.iter().any(|l| l.uses_batch_statistics()) {
            return eval;
        }
        let values = self.forward_all(params, Some(x_train));
        for (k, (layer, sources)) in self.layers.iter().zip(&self.sources).enumerate() {
            let inputs: Vec<_> = sources.iter().map(|s| values[s.value()].view()).collect();
            if let Some(l) = layer.for_evaluation(&inputs) {
                eval.layers[k] = l;
            }
        }
        eval
    }

    /// The objective at `params` on `data` (features and targets; `None` for a Gaussian
    /// target): the mean loss plus `(l2 / 2) ||theta||^2`.
    pub fn loss(&self, params: &[ArrayD<f64>], data: Option<(ArrayView2<f64>, &Targets)>) -> f64 {
        let no_targets = Targets::Values(Array1::zeros(0));
        let (x, y) = match data {
            Some((x, y)) => (Some(x), y),
            None => (None, &no_targets),
        };
        // The forward pass only: the drivers evaluate this after every epoch.
        let values = self.forward_all(params, x);
        let (value, _) = self.loss.value_and_grad(values[values.len() - 1].view(), y);
        value + 0.5 * self.l2 * self.penalty(params)
    }

    /// `||theta||^2` over every parameter tensor (0 without an L2 term).
    fn penalty(&self, params: &[ArrayD<f64>]) -> f64 {
        if self.l2 == 0.0 {
            return 0.0;
        }
        params
            .iter()
            .map(|p| p.iter().map(|v| v * v).sum::<f64>())
            .sum()
    }

    /// The objective and its gradient with respect to each parameter tensor, by
    /// backpropagation through the layers' `f64` oracles.
    pub fn loss_and_grad(
        &self,
        params: &[ArrayD<f64>],
        data: Option<(ArrayView2<f64>, &Targets)>,
    ) -> (f64, Vec<ArrayD<f64>>) {
        let no_targets = Targets::Values(Array1::zeros(0));
        let (x, y) = match data {
            Some((x, y)) => (Some(x), y),
            None => (None, &no_targets),
        };
        let values = self.forward_all(params, x);
        let (value, err) = self.loss.value_and_grad(values[values.len() - 1].view(), y);
        let split = self.split(params);
        // The error of every value, summed over the layers that read it.
        let mut errs: Vec<Option<ArrayD<f64>>> = vec![None; values.len()];
        errs[values.len() - 1] = Some(err);
        let mut grads: Vec<Vec<ArrayD<f64>>> = vec![Vec::new(); self.layers.len()];
        for (k, layer) in self.layers.iter().enumerate().rev() {
            let p: Vec<&ArrayD<f64>> = split[k].iter().collect();
            let Some(err) = errs[k + 1].take() else {
                // No path from this layer to the loss: its parameters do not matter.
                grads[k] = layer
                    .params()
                    .iter()
                    .map(|s| ArrayD::zeros(IxDyn(&s.shape)))
                    .collect();
                continue;
            };
            let sources = &self.sources[k];
            let inputs: Vec<_> = sources.iter().map(|s| values[s.value()].view()).collect();
            let need: Vec<bool> = sources.iter().map(|s| *s != Source::Input).collect();
            let (dx, g) = layer.backward(&p, &inputs, values[k + 1].view(), err.view(), &need);
            grads[k] = g;
            for (s, d) in sources.iter().zip(dx) {
                if let (Some(d), Source::Layer(_)) = (d, s) {
                    let e = &mut errs[s.value()];
                    *e = Some(match e.take() {
                        Some(sum) => sum + d,
                        None => d,
                    });
                }
            }
        }
        let mut grads: Vec<ArrayD<f64>> = grads.into_iter().flatten().collect();
        if self.l2 > 0.0 {
            for (g, p) in grads.iter_mut().zip(params) {
                g.scaled_add(self.l2, p);
            }
        }
        (value + 0.5 * self.l2 * self.penalty(params), grads)
    }

    /// The training loss the drivers report after every epoch: the objective, per coordinate
    /// for a Gaussian target (`U / dim`, comparable across dimensions).
    pub fn train_loss(
        &self,
        params: &[ArrayD<f64>],
        data: Option<(ArrayView2<f64>, &Targets)>,
    ) -> f64 {
        let l = self.loss(params, data);
        match self.kind {
            ModelKind::Gaussian => l / self.outputs().max(1) as f64,
            _ => l,
        }
    }
}
