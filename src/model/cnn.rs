//! The `cnn` model kind: a convolutional network assembled from a workload's layer list
//! ([`LayerSpec`]), then a dense layer to the classes and softmax cross-entropy.
//!
//! Layers are named by type and position among their type (`conv0`, `batchnorm1`, `maxpool0`,
//! `relu3`, `dense0`, `res0`), so tensor names, and with them the random streams, depend only
//! on the layer list. A ResNet basic block (He et al. 2016, `BasicBlock` of torchvision) expands
//! to `conv3x3(stride)-BN-ReLU-conv3x3-BN` on the branch, the identity shortcut or, when the
//! stride or the channels change, `conv1x1(stride)-BN`, their sum ([`ResidualAdd`]) and a ReLU;
//! its convolutions have no bias (the batch normalization's shift plays its part).

use std::sync::Arc;

use super::batchnorm::BatchNorm;
use super::conv2d::Conv2d;
use super::flatten::Flatten;
use super::kinds::{check_classes, check_l2, dense};
use super::layer::Layer;
use super::pool::{Pool2d, PoolKind};
use super::relu::Relu;
use super::residual::ResidualAdd;
use super::softmax_xent::SoftmaxCrossEntropy;
use super::{Model, ModelError, ModelKind, Source};
use crate::graph::image::{Planes, Window};
use crate::workload::{CnnSpec, LayerSpec};

/// Builds the layer graph while tracking the current value's source and shape.
struct Net {
    layers: Vec<Arc<dyn Layer>>,
    sources: Vec<Vec<Source>>,
    /// Layers of each type so far, for names: conv, relu, maxpool, avgpool, bn, flatten,
    /// dense, residual.
    counts: [usize; 8],
    /// The current value.
    at: Source,
    /// One example's shape of every value, the input first ([`Source::value`]).
    shapes: Vec<Vec<usize>>,
}

/// The counter of each named layer type.
#[derive(Clone, Copy)]
enum Kind {
    Conv = 0,
    Relu,
    MaxPool,
    AvgPool,
    Bn,
    Flatten,
    Dense,
    Residual,
}

impl Net {
    fn next(&mut self, kind: Kind) -> usize {
        let i = self.counts[kind as usize];
        self.counts[kind as usize] += 1;
        i
    }

    /// Appends `layer` reading `from`; it becomes the current value.
    fn push(&mut self, layer: Arc<dyn Layer>, from: Vec<Source>) -> Result<(), ModelError> {
        let refs: Vec<&[usize]> = from
            .iter()
            .map(|s| self.shapes[s.value()].as_slice())
            .collect();
        let shape = layer.output_shape(&refs)?;
        self.layers.push(layer);
        self.sources.push(from);
        self.at = Source::Layer(self.layers.len() - 1);
        self.shapes.push(shape);
        Ok(())
    }

    /// The current value's shape.
    fn shape(&self) -> &[usize] {
        &self.shapes[self.at.value()]
    }

    fn planes(&self, what: &str) -> Result<Planes, ModelError> {
        match *self.shape() {
            [channels, height, width] => Ok(Planes {
                channels,
                height,
                width,
            }),
            _ => Err(ModelError::Spec(format!(
                "{what} needs images [C, H, W], but the layers before it give {:?} (after a \
                 flatten)",
                self.shape()
            ))),
        }
    }

    fn conv(
        &mut self,
        filters: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        bias: bool,
    ) -> Result<(), ModelError> {
        let input = self.planes("a convolution")?;
        let index = self.next(Kind::Conv);
        let window = Window {
            kh: kernel,
            kw: kernel,
            stride,
            pad,
        };
        let layer = Conv2d {
            index,
            input,
            filters,
            window,
            bias,
        };
        self.push(Arc::new(layer), vec![self.at])
    }

    fn relu(&mut self) -> Result<(), ModelError> {
        let index = self.next(Kind::Relu);
        self.push(
            Arc::new(Relu {
                index,
                prefix: "relu",
            }),
            vec![self.at],
        )
    }

    fn bn(&mut self) -> Result<(), ModelError> {
        let (channels, positions) = match *self.shape() {
            [c, h, w] => (c, h * w),
            [c] => (c, 1),
            _ => (0, 0),
        };
        let index = self.next(Kind::Bn);
        let layer = BatchNorm {
            index,
            channels,
            positions,
            frozen: None,
        };
        self.push(Arc::new(layer), vec![self.at])
    }

    fn pool(&mut self, kind: PoolKind, window: Window) -> Result<(), ModelError> {
        let input = self.planes("a pool")?;
        let index = self.next(match kind {
            PoolKind::Max => Kind::MaxPool,
            PoolKind::Avg => Kind::AvgPool,
        });
        let layer = Pool2d {
            kind,
            index,
            input,
            window,
        };
        self.push(Arc::new(layer), vec![self.at])
    }

    fn layer(&mut self, spec: &LayerSpec) -> Result<(), ModelError> {
        match spec {
            LayerSpec::Conv(c) => self.conv(c.filters, c.kernel, c.stride, c.padding, c.bias),
            LayerSpec::Relu => self.relu(),
            LayerSpec::Batchnorm => self.bn(),
            LayerSpec::Maxpool(p) | LayerSpec::Avgpool(p) => {
                let kind = match spec {
                    LayerSpec::Maxpool(_) => PoolKind::Max,
                    _ => PoolKind::Avg,
                };
                let window = Window {
                    kh: p.kernel,
                    kw: p.kernel,
                    stride: p.stride.unwrap_or(p.kernel),
                    pad: p.padding,
                };
                self.pool(kind, window)
            }
            LayerSpec::GlobalAvgpool => {
                let p = self.planes("global_avgpool")?;
                let window = Window {
                    kh: p.height,
                    kw: p.width,
                    stride: 1,
                    pad: 0,
                };
                self.pool(PoolKind::Avg, window)
            }
            LayerSpec::Flatten => {
                let index = self.next(Kind::Flatten);
                self.push(Arc::new(Flatten { index }), vec![self.at])
            }
            LayerSpec::Linear(d) => self.dense(d.out),
            LayerSpec::BasicBlock(b) => self.block(b.filters, b.stride),
        }
    }

    fn dense(&mut self, out: usize) -> Result<(), ModelError> {
        let [fan_in] = *self.shape() else {
            return Err(ModelError::Spec(format!(
                "a dense layer needs features, but the layers before it give images {:?}: add \
                 {{\"type\": \"flatten\"}} first",
                self.shape()
            )));
        };
        let index = self.next(Kind::Dense);
        self.push(dense(index, fan_in, out, true, true), vec![self.at])
    }

    fn block(&mut self, filters: usize, stride: usize) -> Result<(), ModelError> {
        let input = self.planes("a basic block")?;
        let start = self.at;
        self.conv(filters, 3, stride, 1, false)?;
        self.bn()?;
        self.relu()?;
        self.conv(filters, 3, 1, 1, false)?;
        self.bn()?;
        let branch = self.at;
        let shortcut = if stride != 1 || input.channels != filters {
            self.at = start;
            self.conv(filters, 1, stride, 0, false)?;
            self.bn()?;
            self.at
        } else {
            start
        };
        let index = self.next(Kind::Residual);
        self.push(Arc::new(ResidualAdd { index }), vec![branch, shortcut])?;
        self.relu()
    }
}

impl Model {
    /// A convolutional network on images of one example's `input` shape `[C, H, W]`: the
    /// `layers` in order, then a dense layer (with a bias) to `classes` logits and softmax
    /// cross-entropy.
    pub fn cnn(
        input: [usize; 3],
        layers: &[LayerSpec],
        classes: usize,
        l2: f64,
    ) -> Result<Self, ModelError> {
        check_classes(classes)?;
        check_l2(l2)?;
        if input.contains(&0) {
            return Err(ModelError::Spec(format!(
                "input {input:?}: each of C, H, W must be at least 1"
            )));
        }
        let mut net = Net {
            layers: Vec::new(),
            sources: Vec::new(),
            counts: [0; 8],
            at: Source::Input,
            shapes: vec![input.to_vec()],
        };
        for (i, l) in layers.iter().enumerate() {
            net.layer(l)
                .map_err(|e| ModelError::Spec(format!("layers[{i}]: {}", strip(e))))?;
        }
        if net.shape().len() != 1 {
            return Err(ModelError::Spec(format!(
                "the layers end with images {:?}: end them with {{\"type\": \"flatten\"}} \
                 before the classifier",
                net.shape()
            )));
        }
        net.dense(classes)?;
        Model {
            kind: ModelKind::Cnn,
            inputs: input.iter().product(),
            input_shape: input.to_vec(),
            bias_feature: false,
            layers: net.layers,
            sources: net.sources,
            loss: Arc::new(SoftmaxCrossEntropy { classes }),
            l2,
        }
        .check()
    }

    /// The model of a `cnn` section for examples of `shape` (the data's: `[n]` for a table,
    /// `[C, H, W]` for images).
    pub(super) fn from_cnn_spec(
        spec: &CnnSpec,
        shape: &[usize],
        classes: usize,
    ) -> Result<Self, ModelError> {
        let features: usize = shape.iter().product();
        let input = match (&spec.input, shape) {
            (Some(i), _) => i.clone(),
            (None, [_, _, _]) => shape.to_vec(),
            (None, _) => {
                return Err(ModelError::Spec(format!(
                    "the data are a table of {features} features: give model.input as \
                     [C, H, W] (C H W = {features}) to read each row as an image"
                )))
            }
        };
        let [c, h, w] = input[..] else {
            return Err(ModelError::Spec(format!(
                "model.input {input:?} must be [C, H, W]"
            )));
        };
        if c * h * w != features {
            return Err(ModelError::Spec(format!(
                "model.input {input:?} holds {} values, but each example has {features}",
                c * h * w
            )));
        }
        Self::cnn([c, h, w], &spec.layers, classes, spec.l2)
    }
}

/// A model error's message without its `model: ` prefix (it is nested in another).
fn strip(e: ModelError) -> String {
    let s = e.to_string();
    s.strip_prefix("model: ").map(str::to_string).unwrap_or(s)
}
