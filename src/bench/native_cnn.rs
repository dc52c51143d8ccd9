//! The native `f32` convolutional network `lpsim bench train` times next to a `cnn` workload's
//! emulated epochs: the same layers (convolution as im2col and ndarray's `f32` GEMM, ReLU, max
//! pooling, flatten, dense) and the same initial weights ([`Model::init_params`]), trained with
//! plain SGD and no emulation, on mini-batches drawn as [`super::train::NativeMlp`] draws them.
//! It covers sequential networks of those layer types (LeNet-style, `digits-cnn`); other layer
//! types are refused by name.

use ndarray::{Array2, ArrayD, Axis, Ix2};

use super::train::{draw_batch, softmax_rows, xent_grad};
use crate::graph::image::{
    col2im, from_channels, im2col, max_pool, max_pool_backward, to_channels,
};
use crate::graph::image::{Planes, Window};
use crate::model::Model;
use crate::round::RandomStream;
use crate::workload::{CnnSpec, LayerSpec};

/// One layer with its `f32` parameters.
#[derive(Clone, Debug)]
enum Native {
    Conv {
        input: Planes,
        window: Window,
        w: Array2<f32>,
        b: Option<Array2<f32>>,
    },
    Relu,
    MaxPool {
        input: Planes,
        window: Window,
    },
    Flatten,
    Dense {
        w: Array2<f32>,
        b: Array2<f32>,
    },
}

/// What a layer's backward pass reads: its input, and a convolution's window matrix.
type Saved = (Array2<f32>, Option<Array2<f32>>);

/// A native `f32` CNN (see the module docs).
#[derive(Clone, Debug)]
pub struct NativeCnn {
    layers: Vec<Native>,
    draws: RandomStream,
    step: u64,
}

fn matrix(p: &ArrayD<f64>) -> Array2<f32> {
    p.mapv(|v| v as f32)
        .into_dimensionality::<Ix2>()
        .unwrap_or_else(|_| Array2::zeros((0, 0)))
}

impl NativeCnn {
    /// The network of `spec` on `input` images `[C, H, W]` with `model`'s initial weights for
    /// `seed` (`model` is the spec's, built by [`Model::from_spec`]), or the name of a layer
    /// type it does not cover.
    pub fn new(
        spec: &CnnSpec,
        input: [usize; 3],
        model: &Model,
        seed: u64,
    ) -> Result<Self, String> {
        let params = model.init_params(seed);
        let mut next = params.iter();
        let mut take = || {
            next.next()
                .map(matrix)
                .unwrap_or_else(|| Array2::zeros((0, 0)))
        };
        let [channels, height, width] = input;
        let mut planes = Planes {
            channels,
            height,
            width,
        };
        let mut layers = Vec::new();
        for l in &spec.layers {
            layers.push(match l {
                LayerSpec::Conv(c) => {
                    let window = Window {
                        kh: c.kernel,
                        kw: c.kernel,
                        stride: c.stride,
                        pad: c.padding,
                    };
                    let (oh, ow) = window.output(&planes).ok_or("a window that does not fit")?;
                    let layer = Native::Conv {
                        input: planes,
                        window,
                        w: take(),
                        b: c.bias.then(&mut take),
                    };
                    planes = Planes {
                        channels: c.filters,
                        height: oh,
                        width: ow,
                    };
                    layer
                }
                LayerSpec::Relu => Native::Relu,
                LayerSpec::Maxpool(p) => {
                    let window = Window {
                        kh: p.kernel,
                        kw: p.kernel,
                        stride: p.stride.unwrap_or(p.kernel),
                        pad: p.padding,
                    };
                    let (oh, ow) = window.output(&planes).ok_or("a window that does not fit")?;
                    let layer = Native::MaxPool {
                        input: planes,
                        window,
                    };
                    planes = Planes {
                        height: oh,
                        width: ow,
                        ..planes
                    };
                    layer
                }
                LayerSpec::Flatten => Native::Flatten,
                LayerSpec::Linear(_) => Native::Dense {
                    w: take(),
                    b: take(),
                },
                other => {
                    let name = serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
                        .unwrap_or_default();
                    return Err(format!(
                        "bench train's native network covers conv, relu, maxpool, flatten and \
                         linear layers, not `{name}`"
                    ));
                }
            });
        }
        // The classifier the model appends.
        layers.push(Native::Dense {
            w: take(),
            b: take(),
        });
        Ok(NativeCnn {
            layers,
            draws: RandomStream::new(seed, 3),
            step: 0,
        })
    }

    /// The logits of a batch and every layer's input (with a convolution's window matrix).
    fn forward(&self, x: Array2<f32>) -> (Array2<f32>, Vec<Saved>) {
        let mut saved = Vec::with_capacity(self.layers.len());
        let mut a = x;
        for l in &self.layers {
            let rows = a.nrows();
            let (next, cols) = match l {
                Native::Conv {
                    input,
                    window,
                    w,
                    b,
                } => {
                    let (oh, ow) = window.output(input).unwrap_or((0, 0));
                    let p = oh * ow;
                    let mut cols = Array2::zeros((rows * p, w.nrows()));
                    let src = a.as_standard_layout();
                    let src = src.as_slice().unwrap_or(&[]);
                    im2col(
                        src,
                        rows,
                        input,
                        window,
                        cols.as_slice_mut().unwrap_or(&mut []),
                    );
                    let mut z = cols.dot(w);
                    if let Some(b) = b {
                        z += b;
                    }
                    let mut y = Array2::zeros((rows, w.ncols() * p));
                    let dst = y.as_slice_mut().unwrap_or(&mut []);
                    to_channels(z.as_slice().unwrap_or(&[]), rows, p, dst);
                    (y, Some(cols))
                }
                Native::Relu => (a.mapv(|v| v.max(0.0)), None),
                Native::MaxPool { input, window } => {
                    let (oh, ow) = window.output(input).unwrap_or((0, 0));
                    let mut y = Array2::zeros((rows, input.channels * oh * ow));
                    let src = a.as_standard_layout();
                    let dst = y.as_slice_mut().unwrap_or(&mut []);
                    max_pool(src.as_slice().unwrap_or(&[]), rows, input, window, dst);
                    (y, None)
                }
                Native::Flatten => (a.clone(), None),
                Native::Dense { w, b } => (a.dot(w) + b, None),
            };
            saved.push((a, cols));
            a = next;
        }
        (a, saved)
    }

    /// The mean cross-entropy of `x` against `labels` (a check that this is the model's
    /// network: it equals [`Model::loss`] at the same weights up to `f32` rounding).
    #[cfg(test)]
    fn loss(&self, x: ndarray::ArrayView2<f32>, labels: &[usize]) -> f32 {
        let (mut g, _) = self.forward(x.to_owned());
        softmax_rows(&mut g);
        let idx: Vec<usize> = (0..labels.len()).collect();
        xent_grad(&mut g, &idx, labels) / labels.len().max(1) as f32
    }

    /// One epoch of `ceil(N / batch)` SGD steps with step size `lr` on batches drawn uniformly
    /// with replacement; returns the mean of the steps' batch losses.
    pub fn epoch(&mut self, x: &Array2<f32>, labels: &[usize], batch: usize, lr: f32) -> f32 {
        let n = x.nrows();
        let steps = n.div_ceil(batch.max(1));
        let mut total = 0.0;
        for _ in 0..steps {
            let idx = draw_batch(&self.draws, self.step, batch, n);
            self.step += 1;
            let (mut g, saved) = self.forward(x.select(Axis(0), &idx));
            softmax_rows(&mut g);
            total += xent_grad(&mut g, &idx, labels);
            g /= batch as f32;
            for (l, (a, cols)) in self.layers.iter_mut().zip(saved).rev() {
                let rows = a.nrows();
                g = match l {
                    Native::Dense { w, b } => {
                        let dx = g.dot(&w.t());
                        w.scaled_add(-lr, &a.t().dot(&g));
                        b.scaled_add(-lr, &g.sum_axis(Axis(0)).insert_axis(Axis(0)));
                        dx
                    }
                    Native::Flatten => g,
                    Native::Relu => {
                        g.zip_mut_with(&a, |d, &v| {
                            if v <= 0.0 {
                                *d = 0.0;
                            }
                        });
                        g
                    }
                    Native::MaxPool { input, window } => {
                        let mut dx = Array2::zeros((rows, input.len()));
                        let (e, src) = (g.as_standard_layout(), a.as_standard_layout());
                        max_pool_backward(
                            e.as_slice().unwrap_or(&[]),
                            src.as_slice().unwrap_or(&[]),
                            rows,
                            input,
                            window,
                            dx.as_slice_mut().unwrap_or(&mut []),
                        );
                        dx
                    }
                    Native::Conv {
                        input,
                        window,
                        w,
                        b,
                    } => {
                        let cols = cols.unwrap_or_else(|| Array2::zeros((0, 0)));
                        let p = cols.nrows() / rows.max(1);
                        let mut e = Array2::zeros((rows * p, w.ncols()));
                        let src = g.as_standard_layout();
                        let dst = e.as_slice_mut().unwrap_or(&mut []);
                        from_channels(src.as_slice().unwrap_or(&[]), rows, p, dst);
                        let dcols = e.dot(&w.t());
                        w.scaled_add(-lr, &cols.t().dot(&e));
                        if let Some(b) = b {
                            b.scaled_add(-lr, &e.sum_axis(Axis(0)).insert_axis(Axis(0)));
                        }
                        let mut dx = Array2::zeros((rows, input.len()));
                        let dst = dx.as_slice_mut().unwrap_or(&mut []);
                        col2im(dcols.as_slice().unwrap_or(&[]), input, window, dst);
                        dx
                    }
                };
            }
        }
        total / (steps * batch) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::train::native_data;
    use crate::run::prepare;
    use crate::sweep::RunSpec;

    #[test]
    fn the_native_network_is_the_workloads_and_learns() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let p = prepare(&RunSpec {
            workload_path: root.join("workloads/digits-cnn.json"),
            algo: "sgd".into(),
            arch_path: root.join("arch/fp32.json"),
            seed: 3,
            set: Default::default(),
        })
        .expect("prepares");
        let crate::workload::ModelSpec::Cnn(spec) = &p.workload.model else {
            panic!("a cnn workload");
        };
        let mut net = NativeCnn::new(spec, [1, 8, 8], &p.model, 3).expect("covered");
        let (x, labels) = native_data(&p).expect("classification");
        let d = p.data.as_ref().expect("data");
        // The same network and initial weights: the f64 oracle's loss, to f32 rounding.
        let want = p.model.loss(
            &p.model.init_params(3),
            Some((d.x_train.view(), &d.y_train)),
        );
        let got = f64::from(net.loss(x.view(), &labels));
        assert!(
            (got - want).abs() < 1e-4 * want,
            "native {got}, oracle {want}"
        );
        for _ in 0..3 {
            net.epoch(&x, &labels, 64, 0.1);
        }
        let after = f64::from(net.loss(x.view(), &labels));
        assert!(after < 0.5 * want, "three epochs: {want} -> {after}");
    }

    #[test]
    fn layers_it_does_not_cover_are_named() {
        let spec: CnnSpec = serde_json::from_value(serde_json::json!({
            "layers": [{"type": "batchnorm"}, {"type": "flatten"}]
        }))
        .expect("spec");
        let model = Model::cnn([1, 2, 2], &spec.layers, 2, 0.0).expect("model");
        let e = NativeCnn::new(&spec, [1, 2, 2], &model, 0).expect_err("refused");
        assert!(e.contains("not `batchnorm`"), "{e}");
    }
}
