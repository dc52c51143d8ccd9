//! QSGLD's quantized step (Seok and Cho 2023; docs/algorithms.md section 4), a rounding unit
//! of its own: the step is rounded down onto a grid of resolution `q` after a compensation
//! term along its own direction. Its schedule (which `q`, which `c`) is the algorithm's
//! (`algo::qsgld`); the graph executor applies this unit.

/// The quantized descent step `out = floor(q (h + c h / ||h||)) / q` of a descent step `h`
/// (`-lr g`), or `floor(. + 0.5)` with `nearest`; `r = 0` when `h = 0`. The caller adds `out`
/// to the parameters.
pub fn quantize_step(h: &[f64], out: &mut [f64], q: f64, c: f64, nearest: bool) {
    let norm = h.iter().map(|x| x * x).sum::<f64>().sqrt();
    let k = if norm > 0.0 { c / norm } else { 0.0 };
    let half = if nearest { 0.5 } else { 0.0 };
    for (o, &x) in out.iter_mut().zip(h) {
        *o = (q * (x + k * x) + half).floor() / q;
    }
}
