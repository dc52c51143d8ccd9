//! `lpsim gemm`: an emulated GEMM with given input, product and accumulator formats, its
//! errors against the exact result, and its accumulator overflow counts.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ndarray::{Array2, ArrayView2};
use ndarray_npy::WriteNpyExt;
use serde::Serialize;

use crate::arith::{gemm, ActionCounts, ExactSum, MacConfig, Order};
use crate::format::{Format, Quantizer};
use crate::limits;
use crate::npy::{self, Dtype};
use crate::report::{check_output, write_output};
use crate::round::{RandomStream, Rounding};

/// Arguments of `lpsim gemm`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: lpsim gemm --m 64 --n 64 --k 512 --a-format bf16 \
--b-format bf16 --acc fp16 --order chunk=32 --json"
)]
pub struct Args {
    /// Rows of A and C (taken from --a when given), >= 1.
    #[arg(long, value_parser = dimension)]
    m: Option<usize>,
    /// Columns of B and C (taken from --b when given), >= 1.
    #[arg(long, value_parser = dimension)]
    n: Option<usize>,
    /// Columns of A, rows of B (taken from --a when given), >= 1.
    #[arg(long, value_parser = dimension)]
    k: Option<usize>,
    /// Format of A (inputs are rounded to it with rne).
    #[arg(long, default_value = "fp32")]
    a_format: String,
    /// Format of B.
    #[arg(long, default_value = "fp32")]
    b_format: String,
    /// Product format (rounded with rne), or `exact`.
    #[arg(long, default_value = "exact")]
    product: String,
    /// Fused MAC: the exact product is added with one rounding.
    #[arg(long)]
    fused: bool,
    /// Accumulator format (float or fixed: fp32, fp16, float:e=8,m=12, fixed:wl=24,fl=10, int32).
    #[arg(long)]
    acc: String,
    /// Accumulator rounding unit: rne, rna, rtz, up, down, odd, sr, sr:bits=N.
    #[arg(long, default_value = "rne")]
    acc_rounding: String,
    /// Accumulation order: sequential, pairwise, chunk=C, native.
    #[arg(long, default_value = "sequential")]
    order: String,
    /// Seed of the random inputs and of stochastic rounding.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Distribution of random inputs: normal or uniform (in [-1, 1)).
    #[arg(long, default_value = "normal")]
    dist: String,
    /// Scale of random inputs.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// A as a 2-D float32 or float64 .npy file (M x K).
    #[arg(long)]
    a: Option<PathBuf>,
    /// B as a 2-D float32 or float64 .npy file (K x N).
    #[arg(long)]
    b: Option<PathBuf>,
    /// Write C (the accumulator's carrier values: float32 when the format fits, else float64).
    /// An existing file is replaced only with --force, and never when it is --a or --b.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long)]
    force: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// A matrix dimension: a whole number >= 1.
fn dimension(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(d) if d >= 1 => Ok(d),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(format!("must be a whole number >= 1 ({e})")),
    }
}

/// Refuse a GEMM whose matrices do not fit: the element counts of A (`m x k`), B (`k x n`)
/// and C (`m x n`) as checked products, and their bytes (A and B as `f64` inputs, a transposed
/// copy and `f32` quantized copies: 24 bytes an element; C and its `f32` copy: 16) against the
/// memory budget, before anything is allocated.
fn check_size(m: usize, n: usize, k: usize) -> anyhow::Result<()> {
    let a = limits::elements("--m x --k (matrix A)", &[m, k])?;
    let b = limits::elements("--k x --n (matrix B)", &[k, n])?;
    let c = limits::elements("--m x --n (matrix C)", &[m, n])?;
    let bytes = 24 * (a as u128 + b as u128) + 16 * c as u128;
    limits::check_bytes(format!("gemm {m}x{k}x{n} (A, B and C)"), bytes)?;
    Ok(())
}

/// What `lpsim gemm` reports.
#[derive(Serialize, Debug)]
struct Report {
    m: usize,
    n: usize,
    k: usize,
    a_format: String,
    b_format: String,
    product: String,
    fused: bool,
    acc: String,
    acc_rounding: String,
    order: String,
    kernel: String,
    max_abs_error: f64,
    mean_abs_error: f64,
    max_rel_error: f64,
    mean_rel_error: f64,
    /// Outputs equal to the exact sum rounded once to the accumulator (rne for stochastic),
    /// among the outputs with a finite exact sum.
    frac_correctly_rounded: f64,
    /// Outputs whose exact sum is not finite (an input is infinite or NaN, possibly after
    /// rounding to its format): they have no error to measure and are left out of the error
    /// statistics and the fraction above, which are NaN (`null` in JSON) when no output is left.
    nonfinite_exact: usize,
    overflows: u64,
    saturations: u64,
    wraps: u64,
    counts: ActionCounts,
}

fn read_matrix(path: &Path) -> anyhow::Result<Array2<f64>> {
    let a = npy::read(path)?;
    match (a.dtype, &a.shape[..]) {
        (Dtype::Float { .. }, &[rows, cols]) => Ok(Array2::from_shape_vec((rows, cols), a.values)?),
        (dtype, shape) => bail!(
            "{}: a {}-D {} array: expected a 2-D float32 or float64 .npy array",
            path.display(),
            shape.len(),
            dtype.name()
        ),
    }
}

fn random_matrix(rows: usize, cols: usize, seed: u64, stream: u64, args: &Args) -> Array2<f64> {
    let s = RandomStream::new(seed, stream);
    let uniform = args.dist == "uniform";
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let idx = (i * cols + j) as u64;
        let x = if uniform {
            2.0 * s.uniform_f64(idx) - 1.0
        } else {
            s.normal_f64(idx)
        };
        x * args.scale
    })
}

/// Round `x` to `f` (rne) along rows (block formats group along each row).
fn quantize_rows(x: &Array2<f64>, f: Format) -> anyhow::Result<Array2<f32>> {
    let q = Quantizer::new(f, Rounding::NearestEven, 0, 0)?;
    let x = x.as_standard_layout();
    let src = x.as_slice().context("standard layout")?;
    let mut out = vec![0.0f64; src.len()];
    q.par_quantize_f64(src, &mut out, x.ncols().max(1));
    Ok(Array2::from_shape_vec(
        x.raw_dim(),
        out.into_iter().map(|v| v as f32).collect(),
    )?)
}

/// Run `lpsim gemm`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let a_format: Format = args.a_format.parse()?;
    let b_format: Format = args.b_format.parse()?;
    let product = match args.product.trim() {
        "exact" => None,
        p => Some(p.parse::<Format>()?),
    };
    let acc: Format = args.acc.parse()?;
    let acc_rounding: Rounding = args.acc_rounding.parse()?;
    let order: Order = args.order.parse()?;
    if !matches!(args.dist.as_str(), "normal" | "uniform") {
        bail!(
            "--dist `{}`: must be normal or uniform{}",
            args.dist,
            crate::suggest::suggestion(&args.dist, ["normal", "uniform"])
        );
    }
    if !args.scale.is_finite() {
        bail!("--scale {}: must be finite", args.scale);
    }
    let cfg = MacConfig::new(
        a_format,
        b_format,
        product,
        args.fused,
        acc,
        acc_rounding,
        order,
    )?;
    // The command's inputs live in f32 carriers; the fused fp64 multiply-add on f64 inputs
    // runs inside step graphs only.
    for (flag, f) in [("--a-format", a_format), ("--b-format", b_format)] {
        if !f.fits_f32() {
            bail!("{flag} {f}: lpsim gemm takes formats whose values are f32 values");
        }
    }

    let inputs: Vec<&Path> = args.a.iter().chain(&args.b).map(PathBuf::as_path).collect();
    if let Some(out) = &args.out {
        // Refuse a protected output before the work, not after it.
        check_output(out, &inputs, args.force, |_| false)?;
    }
    let a_raw = match &args.a {
        Some(p) => read_matrix(p)?,
        None => {
            let (Some(m), Some(k)) = (args.m, args.k) else {
                bail!("give --m and --k, or --a A.npy");
            };
            check_size(m, args.n.unwrap_or(1), k)?;
            random_matrix(m, k, args.seed, 1, &args)
        }
    };
    let b_raw = match &args.b {
        Some(p) => read_matrix(p)?,
        None => {
            let (Some(k), Some(n)) = (args.k.or(Some(a_raw.ncols())), args.n) else {
                bail!("give --n, or --b B.npy");
            };
            check_size(a_raw.nrows(), n, k)?;
            random_matrix(k, n, args.seed, 2, &args)
        }
    };
    let (m, k, n) = (a_raw.nrows(), a_raw.ncols(), b_raw.ncols());
    check_size(m, n, k)?;
    if m == 0 || k == 0 || n == 0 {
        bail!(
            "A is {m}x{k} and B is {}x{n}: every dimension must be at least 1",
            b_raw.nrows()
        );
    }
    for (name, given, actual) in [("m", args.m, m), ("k", args.k, k), ("n", args.n, n)] {
        if given.is_some_and(|g| g != actual) {
            bail!(
                "--{name} {} does not match the input shape ({actual})",
                given.unwrap_or(0)
            );
        }
    }
    if b_raw.nrows() != k {
        bail!("A is {m}x{k} but B is {}x{n}", b_raw.nrows());
    }
    let a = quantize_rows(&a_raw, a_format)?;
    // B's blocks run along K: quantize the rows of B^T.
    let b = quantize_rows(&b_raw.t().to_owned(), b_format)?.reversed_axes();
    let out = gemm(&cfg, a.view(), b.view(), RandomStream::new(args.seed, 3))?;

    let report = compare(
        &cfg,
        &a.view(),
        &b.view(),
        &out.c,
        &args,
        out.counts,
        out.path,
    );
    if let Some(p) = &args.out {
        write_output(
            p,
            &inputs,
            args.force,
            |_| false,
            |w| {
                if acc.fits_f32() {
                    out.c.mapv(|v| v as f32).write_npy(w)?;
                } else {
                    out.c.write_npy(w)?;
                }
                Ok::<(), anyhow::Error>(())
            },
        )?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_text(&mut out, &report)?;
    }
    Ok(())
}

fn compare(
    cfg: &MacConfig,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    c: &Array2<f64>,
    args: &Args,
    counts: ActionCounts,
    path: crate::arith::KernelPath,
) -> Report {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let reference_rounding = if cfg.acc_rounding.is_stochastic() {
        Rounding::NearestEven
    } else {
        cfg.acc_rounding
    };
    let (mut max_abs, mut sum_abs, mut max_rel, mut sum_rel, mut nrel, mut equal) =
        (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0usize, 0usize);
    let mut nonfinite_exact = 0usize;
    for i in 0..m {
        for j in 0..n {
            let mut s = ExactSum::new();
            for kk in 0..k {
                s.add(f64::from(a[[i, kk]]) * f64::from(b[[kk, j]]));
            }
            let exact = s.round_to_odd();
            if !exact.is_finite() {
                nonfinite_exact += 1;
                continue;
            }
            let rounded = cfg
                .acc
                .quantize_scalar(exact, reference_rounding, 0)
                .unwrap_or(f64::NAN);
            let got = c[[i, j]];
            if got == rounded || (got.is_nan() && rounded.is_nan()) {
                equal += 1;
            }
            // An output that overflowed to infinity or NaN is infinitely far from a finite sum.
            let err = if got.is_finite() {
                (got - exact).abs()
            } else {
                f64::INFINITY
            };
            max_abs = max_abs.max(err);
            sum_abs += err;
            if exact != 0.0 {
                let rel = err / exact.abs();
                max_rel = max_rel.max(rel);
                sum_rel += rel;
                nrel += 1;
            }
        }
    }
    let compared = m * n - nonfinite_exact;
    // Statistics over no outputs are NaN, not 0 (nothing was measured).
    let mean = |sum: f64, count: usize| {
        if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        }
    };
    let max = |v: f64| if compared == 0 { f64::NAN } else { v };
    Report {
        m,
        n,
        k,
        a_format: cfg.a.to_string(),
        b_format: cfg.b.to_string(),
        product: cfg.product.map_or("exact".into(), |p| p.to_string()),
        fused: cfg.fused,
        acc: cfg.acc.to_string(),
        acc_rounding: cfg.acc_rounding.to_string(),
        order: args.order.clone(),
        kernel: format!("{path:?}"),
        max_abs_error: max(max_abs),
        mean_abs_error: mean(sum_abs, compared),
        max_rel_error: if nrel == 0 { f64::NAN } else { max_rel },
        mean_rel_error: mean(sum_rel, nrel),
        frac_correctly_rounded: mean(equal as f64, compared),
        nonfinite_exact,
        overflows: counts.overflows,
        saturations: counts.saturations,
        wraps: counts.wraps,
        counts,
    }
}

fn print_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "gemm {}x{}x{}: {} x {} -> {} ({}), product {}{}, order {}, kernel {}",
        r.m,
        r.k,
        r.n,
        r.a_format,
        r.b_format,
        r.acc,
        r.acc_rounding,
        r.product,
        if r.fused { ", fused" } else { "" },
        r.order,
        r.kernel
    )?;
    // A statistic over no outputs is NaN: "n/a" in the text.
    let stat = |v: f64| {
        if v.is_nan() {
            "n/a".to_string()
        } else {
            format!("{v:e}")
        }
    };
    writeln!(
        out,
        "abs error: max {}, mean {}",
        stat(r.max_abs_error),
        stat(r.mean_abs_error)
    )?;
    writeln!(
        out,
        "rel error: max {}, mean {}",
        stat(r.max_rel_error),
        stat(r.mean_rel_error)
    )?;
    if r.nonfinite_exact > 0 {
        writeln!(
            out,
            "{} of {} outputs have a non-finite exact sum (an infinite or NaN input): \
             left out of the statistics",
            r.nonfinite_exact,
            r.m * r.n
        )?;
    }
    if r.frac_correctly_rounded.is_nan() {
        writeln!(
            out,
            "correctly rounded outputs: n/a (no output has a finite exact sum)"
        )?;
    } else {
        writeln!(
            out,
            "correctly rounded outputs: {:.4}",
            r.frac_correctly_rounded
        )?;
    }
    writeln!(
        out,
        "accumulator overflows {}, saturations {}, wraps {}",
        r.overflows, r.saturations, r.wraps
    )?;
    Ok(())
}
