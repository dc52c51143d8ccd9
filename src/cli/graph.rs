//! `lpsim graph`: print an algorithm's step graph as Graphviz DOT (default) or JSON (with the
//! per-step scalars' values at the first step, `scalars`).
//!
//! With `--workload` the graph is the one `lpsim run` executes first (the same code builds it:
//! the workload's model, data size `N`, hyperparameters and pinned formats, so the noise std
//! `sqrt(2 lr T / N)` and QSGLD's `Q_p` and compensation are the run's). Without it the model is
//! given by flags (`--model logistic --features 64 --classes 10`) and the data set is taken to
//! be one batch (`N` = `batch`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::algo::{step_graph, Algo, Hyper, StepGraph};
use crate::arch::Architecture;
use crate::graph::export::{to_dot, to_json};
use crate::model::Model;

/// Arguments of `lpsim graph`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: lpsim graph --algo lp-sgld-vc --arch arch/bfp8.json --model logistic \
                  --features 64 --classes 10 --dot | dot -Tsvg > step.svg"
)]
pub struct Args {
    /// Algorithm (sgd, lp-sgd, sgld, lp-sgld-f, lp-sgld-naive, lp-sgld-vc, csgld, lp-csgld-f,
    /// lp-csgld-naive, lp-csgld-vc, qsgld, svrg, lp-svrg, halp).
    #[arg(long)]
    algo: String,
    /// Architecture description (JSON, see arch/README.md).
    #[arg(long, default_value = "arch/fp32.json")]
    arch: PathBuf,
    /// Take the model, the hyperparameters and the pinned formats from a workload (as
    /// `lpsim run` does); the --model flags are then ignored.
    #[arg(long)]
    workload: Option<PathBuf>,
    /// Model: linear, logistic, mlp or gaussian.
    #[arg(long, default_value = "logistic")]
    model: String,
    /// Input features (linear, logistic, mlp).
    #[arg(long, default_value_t = 64)]
    features: usize,
    /// Classes (logistic, mlp).
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Hidden widths of the MLP, comma separated.
    #[arg(long, default_value = "128")]
    hidden: String,
    /// L2 regularization (weight decay) of logistic regression and the MLP.
    #[arg(long, default_value_t = 0.0)]
    l2: f64,
    /// Coordinates of the Gaussian toy `N(0, I)` (a workload gives any other target).
    #[arg(long, default_value_t = 1)]
    dim: usize,
    /// Overrides `name=value` of a hyperparameter, or `arch.<json path>=value` with --workload
    /// (repeatable).
    #[arg(long = "set")]
    set: Vec<String>,
    /// Print Graphviz DOT (the default).
    #[arg(long, conflicts_with = "json")]
    dot: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn model(a: &Args) -> anyhow::Result<Model> {
    Ok(match a.model.as_str() {
        "linear" => Model::linear(a.features, a.l2)?,
        "logistic" => Model::logistic(a.features, a.classes, a.l2)?,
        "mlp" => {
            let hidden: Vec<usize> = a
                .hidden
                .split(',')
                .map(|h| h.trim().parse::<usize>().ok().filter(|&h| h >= 1))
                .collect::<Option<_>>()
                .with_context(|| {
                    format!("--hidden `{}`: expected widths >= 1, e.g. 128,64", a.hidden)
                })?;
            Model::mlp(a.features, &hidden, a.classes, a.l2)?
        }
        "gaussian" => Model::standard_gaussian(a.dim)?,
        m => bail!(
            "--model `{m}`: allowed: linear, logistic, mlp, gaussian{}",
            crate::suggest::suggestion(m, ["linear", "logistic", "mlp", "gaussian"])
        ),
    })
}

/// Run `lpsim graph`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let graph = match &args.workload {
        Some(w) => {
            let p = crate::run::prepare(&crate::sweep::RunSpec {
                workload_path: w.clone(),
                algo: args.algo.clone(),
                arch_path: args.arch.clone(),
                seed: 0,
                set: crate::cli::run::parse_set(&args.set)?,
            })?;
            step_graph(p.algo, &p.model, p.data.as_ref(), &p.arch, &p.hyper)?
        }
        None => standalone(&args)?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &to_json(&graph.graph, &graph.scalars))?;
        writeln!(out)?;
    } else {
        write!(out, "{}", to_dot(&graph.graph))?;
    }
    Ok(())
}

/// The step graph of a model given by the --model flags.
fn standalone(args: &Args) -> anyhow::Result<StepGraph> {
    let algo: Algo = args.algo.parse()?;
    let arch = Architecture::load(&args.arch)?;
    let mut hyper = Hyper::new(algo);
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set `{kv}`: expected name=value"))?;
        let v: f64 = v
            .trim()
            .parse()
            .with_context(|| format!("--set `{kv}`: the value must be a number"))?;
        hyper.set(k.trim(), v)?;
    }
    Ok(step_graph(algo, &model(args)?, None, &arch, &hyper)?)
}
