//! Batch normalization on a batch `[B, C P]` with the batch's statistics per channel (see
//! [`super::ImageOp::BatchNorm`]).

/// Per channel: the mean and `1 / sqrt(var + eps)` over the batch and the positions, the
/// variance biased (divided by `M = B P`), as PyTorch normalizes in training.
#[derive(Clone, Debug, PartialEq)]
pub struct BnStats {
    /// Channels.
    pub channels: usize,
    /// Positions per channel.
    pub positions: usize,
    /// Mean per channel.
    pub mean: Vec<f64>,
    /// `1 / sqrt(var + eps)` per channel.
    pub inv_std: Vec<f64>,
}

impl BnStats {
    /// The statistics of `x` (`rows` examples of `channels x positions` values).
    pub fn of(x: &[f64], rows: usize, channels: usize, positions: usize, eps: f64) -> Self {
        let m = (rows * positions).max(1) as f64;
        let mut mean = vec![0.0; channels];
        let mut var = vec![0.0; channels];
        for (c, mu) in mean.iter_mut().enumerate() {
            *mu = values(x, rows, channels, positions, c).sum::<f64>() / m;
        }
        for (c, v) in var.iter_mut().enumerate() {
            *v = values(x, rows, channels, positions, c)
                .map(|a| (a - mean[c]) * (a - mean[c]))
                .sum::<f64>()
                / m;
        }
        BnStats {
            channels,
            positions,
            mean,
            inv_std: var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect(),
        }
    }

    /// Calls `f(c, range)` for every channel plane of every example: the flat index range of
    /// its `positions` values (contiguous in NCHW).
    fn planes(&self, len: usize, mut f: impl FnMut(usize, std::ops::Range<usize>)) {
        let p = self.positions.max(1);
        for (k, at) in (0..len).step_by(p).enumerate() {
            f(k % self.channels.max(1), at..at + p);
        }
    }
}

/// The values of channel `c`.
fn values(
    x: &[f64],
    rows: usize,
    channels: usize,
    positions: usize,
    c: usize,
) -> impl Iterator<Item = f64> + '_ {
    (0..rows).flat_map(move |b| {
        let at = (b * channels + c) * positions;
        x[at..at + positions].iter().copied()
    })
}

/// `y = gamma xhat + beta` into `out`.
pub fn batch_norm(x: &[f64], gamma: &[f64], beta: &[f64], s: &BnStats, out: &mut [f64]) {
    s.planes(x.len(), |c, r| {
        let (m, k) = (s.mean[c], s.inv_std[c]);
        for (y, &v) in out[r.clone()].iter_mut().zip(&x[r]) {
            *y = gamma[c] * ((v - m) * k) + beta[c];
        }
    });
}

/// `sum(dy xhat)` and `sum(dy)` per channel.
pub fn batch_norm_param_grads(dy: &[f64], x: &[f64], s: &BnStats) -> (Vec<f64>, Vec<f64>) {
    let mut dgamma = vec![0.0; s.channels];
    let mut dbeta = vec![0.0; s.channels];
    s.planes(x.len(), |c, r| {
        let (m, k) = (s.mean[c], s.inv_std[c]);
        for (&d, &v) in dy[r.clone()].iter().zip(&x[r]) {
            dgamma[c] += d * ((v - m) * k);
            dbeta[c] += d;
        }
    });
    (dgamma, dbeta)
}

/// The input gradient `dx = gamma s / M (M dy - sum(dy) - xhat sum(dy xhat))` into `out`.
pub fn batch_norm_backward(dy: &[f64], x: &[f64], gamma: &[f64], s: &BnStats, out: &mut [f64]) {
    let (dgamma, dbeta) = batch_norm_param_grads(dy, x, s);
    let m = (x.len() / s.channels.max(1)) as f64;
    s.planes(x.len(), |c, r| {
        let (mu, k) = (s.mean[c], s.inv_std[c]);
        for (o, (&d, &v)) in out[r.clone()]
            .iter_mut()
            .zip(dy[r.clone()].iter().zip(&x[r]))
        {
            *o = gamma[c] * k / m * (m * d - dbeta[c] - ((v - mu) * k) * dgamma[c]);
        }
    });
}
