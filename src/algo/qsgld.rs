//! QSGLD: SGLD through quantization with increasing resolution (Seok and Cho, arXiv 2305.18864;
//! ALGORITHMS.md 3, as coded in `nips_quant.py`, classes `Quantization` and `Q_process`).
//!
//! With `tau` the global mini-batch index and `t_e = tau / batches_per_epoch`:
//! - power `p = floor(log_b(ln(t_e + 2)))`, resolution `Q_p = eta b^p`;
//! - compensation `r = lr s(t_e) h / ||h||_2` with the switch
//!   `s(t_e) = (tanh(-kappa (t_e - tau0)) + 1) / 2`, `tau0 = total_epochs rho`;
//! - quantized step `h_q = floor(Q_p (h + r)) / Q_p` (the non-debug path; the debug path's
//!   `floor(. + 0.5)` is the `nearest` option), then `x <- x - h_q`.
//!
//! Under the white-noise hypothesis the error `h_q - (h + r)` is uniform on a cell of width
//! `1 / Q_p`: variance `1 / (12 Q_p^2)` (floor also shifts its mean by `-1 / (2 Q_p)`).

/// QSGLD's schedule constants (defaults in [`crate::algo::Hyper`]; all [UNKNOWN] in the paper).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// `eta`: the resolution at power 0.
    pub eta: f64,
    /// `b`: the base of the resolution's powers (> 1).
    pub base: f64,
    /// `kappa`: steepness of the compensation switch.
    pub kappa: f64,
    /// `rho`: the switch point as a fraction of the run (`tau0 = total_epochs rho`).
    pub rho: f64,
    /// Epochs of the run.
    pub total_epochs: f64,
    /// Mini-batches per epoch.
    pub batches_per_epoch: f64,
}

impl Schedule {
    /// Epoch time `t_e` of mini-batch `tau`.
    pub fn epoch_time(&self, tau: u64) -> f64 {
        tau as f64 / self.batches_per_epoch
    }

    /// `Q_p = eta b^p` with `p = floor(log_b(ln(t_e + 2)))`.
    pub fn resolution(&self, t_e: f64) -> f64 {
        let p = ((t_e + 2.0).ln().ln() / self.base.ln()).floor();
        self.eta * self.base.powf(p)
    }

    /// The compensation switch `s(t_e)`.
    pub fn switch(&self, t_e: f64) -> f64 {
        0.5 * ((-self.kappa * (t_e - self.total_epochs * self.rho)).tanh() + 1.0)
    }
}

/// `out = floor(q (h + c h / ||h||)) / q` (or `floor(. + 0.5)` with `nearest`); `r = 0` when
/// `h = 0`.
pub fn quantize_step(h: &[f64], out: &mut [f64], q: f64, c: f64, nearest: bool) {
    let norm = h.iter().map(|x| x * x).sum::<f64>().sqrt();
    let k = if norm > 0.0 { c / norm } else { 0.0 };
    let half = if nearest { 0.5 } else { 0.0 };
    for (o, &x) in out.iter_mut().zip(h) {
        *o = (q * (x + k * x) + half).floor() / q;
    }
}
