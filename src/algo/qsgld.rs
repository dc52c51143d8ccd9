//! QSGLD: SGLD through quantization with increasing resolution (Seok and Cho, arXiv 2305.18864;
//! docs/algorithms.md), as the authors' NeurIPS 2023 submission code computes it
//! (`nips2023-no5546/Stochastic-Gradient-Langevin-Dynamics-Based-on-Quantized-Optimization`:
//! `nips_quant.py`, classes `Quantization` and `Q_process`; the optimizer `QtSGD` in
//! `torch_learning.py`; the constants in `config_quantization.yaml`).
//!
//! With `tau` the global mini-batch index (0 at the first step, `QtSGD`'s `state["step"]`) and
//! `t_e = tau / batches_per_epoch`:
//! - power `p = floor(log_b(ln(t_e + 2)))`, resolution `Q_p = eta b^p` (`eval_QP`);
//! - the search step `h = -lr g` (`QtSGD`: `h = -step_size * grad`);
//! - compensation `r = lr s(t_e) h / ||h||_2` per parameter tensor (`r_function`), with the
//!   switch `s` of [`Switch`] at `x = -kappa (t_e - tau0)`, `tau0 = total_epochs rho`;
//! - quantized step `h_q = floor(Q_p (h + r)) / Q_p` (the non-debug path; the debug path's
//!   `floor(. + 0.5)` is the `nearest` option), then `x <- x + h_q` (`p.data.add_(hq)`).
//!
//! The floor therefore rounds the descent step towards `-inf`: a step smaller than one cell moves
//! a coordinate down by `1 / Q_p` when its gradient is positive and leaves it in place when it is
//! negative. Under the white-noise hypothesis the error `h_q - (h + r)` is uniform on a cell of
//! width `1 / Q_p`: variance `1 / (12 Q_p^2)`, mean `-1 / (2 Q_p)` (0 with `nearest`).
//!
//! One deviation: the reference divides by `||h||` unguarded (a NaN step when `h = 0`); here
//! `r = 0` then.

/// The compensation switch `s(t_e)` (a logistic function of `x = -kappa (t_e - tau0)`, about 1
/// before `tau0` and 0 after).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// `sigmoid(x) = exp(x) / (1 + exp(x))`: the paper's switch, and the reference code's path
    /// with its `test` flag set (hyperparameter `switch` = 0, the default).
    Sigmoid,
    /// `0.5 (tanh(x) + 1) = sigmoid(2 x)`: the reference code's default path, twice as steep
    /// (`switch` = 1).
    Tanh,
}

/// QSGLD's schedule constants (defaults in [`crate::algo::Hyper`], from the authors' config).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// `eta`: the resolution at power 0.
    pub eta: f64,
    /// `b`: the base of the resolution's powers (> 1).
    pub base: f64,
    /// `kappa`: steepness of the compensation switch.
    pub kappa: f64,
    /// `rho`: the switch point as a fraction of the run (`tau0 = total_epochs rho`; the
    /// reference's `warmp_up_period`).
    pub rho: f64,
    /// The form of the switch.
    pub switch: Switch,
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
        let x = -self.kappa * (t_e - self.total_epochs * self.rho);
        match self.switch {
            // 1 / (1 + exp(-x)) equals exp(x) / (1 + exp(x)) and stays finite for large |x|.
            Switch::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Switch::Tanh => 0.5 * (x.tanh() + 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::quantize_step;

    fn schedule(switch: Switch) -> Schedule {
        Schedule {
            eta: 524_288.0,
            base: 2.0,
            kappa: 2.0,
            rho: 0.2,
            switch,
            total_epochs: 20.0,
            batches_per_epoch: 100.0,
        }
    }

    #[test]
    fn resolution_starts_at_half_eta_and_doubles_when_ln_crosses_a_power() {
        let s = schedule(Switch::Sigmoid);
        // ln 2 = 0.69: p = -1 (the reference's printed "Initial QP 262144").
        assert_eq!(s.resolution(0.0), 262_144.0);
        // ln(t + 2) >= 1 from t = e - 2: p = 0.
        assert_eq!(s.resolution(0.71), 262_144.0);
        assert_eq!(s.resolution(0.72), 524_288.0);
        // ln(t + 2) >= 2 from t = e^2 - 2 = 5.39: p = 1.
        assert_eq!(s.resolution(5.4), 1_048_576.0);
    }

    #[test]
    fn the_tanh_switch_is_the_sigmoid_of_twice_the_argument() {
        let (sig, tanh) = (schedule(Switch::Sigmoid), schedule(Switch::Tanh));
        // tau0 = 4 epochs: both are 1/2 there.
        assert_eq!(sig.switch(4.0), 0.5);
        assert_eq!(tanh.switch(4.0), 0.5);
        for t in [0.0, 1.0, 3.5, 4.25, 7.0] {
            let x: f64 = -2.0 * (t - 4.0);
            let sigmoid = |x: f64| x.exp() / (1.0 + x.exp());
            assert!((sig.switch(t) - sigmoid(x)).abs() < 1e-15, "t = {t}");
            assert!((tanh.switch(t) - sigmoid(2.0 * x)).abs() < 1e-15, "t = {t}");
        }
    }

    #[test]
    fn the_step_is_the_floor_of_the_compensated_descent_step() {
        // Cells of 1/1024 keep every expected value exact.
        let (q, cell) = (1024.0, 1.0 / 1024.0);
        // h = -lr g for a positive gradient: a step of a third of a cell still moves down one.
        let h = [-0.3 * cell, 2.5 * cell, -4.2 * cell];
        let mut out = [0.0; 3];
        quantize_step(&h, &mut out, q, 0.0, false);
        assert_eq!(out, [-cell, 2.0 * cell, -5.0 * cell]);
        quantize_step(&h, &mut out, q, 0.0, true);
        assert_eq!(out, [0.0, 3.0 * cell, -4.0 * cell]);
        // r = c h / ||h|| lengthens the step along h (here c = ||h||: the step doubles).
        let h = [-3.0 * cell, 0.0, 4.0 * cell];
        quantize_step(&h, &mut out, q, 5.0 * cell, false);
        assert_eq!(out, [-6.0 * cell, 0.0, 8.0 * cell]);
        // h = 0: no compensation, no NaN.
        quantize_step(&[0.0; 3], &mut out, q, 5e-3, false);
        assert_eq!(out, [0.0; 3]);
    }
}
