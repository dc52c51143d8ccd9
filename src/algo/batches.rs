//! The training data as the hardware stores them: the features rounded once to the input
//! format of the datapath (`data_format_on`), held in memory and sampled into mini-batches
//! ([`Batches`]), the targets as one-hot rows or a column, and rows picked from stored blocks
//! re-blocked where needed ([`picked_rows`]).

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayD, Axis};
use petgraph::graph::NodeIndex;

use crate::algo::{AlgoError, Augmentation, Targets, TrainData};
use crate::arch::Architecture;
use crate::cost::{Datapath, HostWork, Scope};
use crate::format::{range_events, Format, Quantizer};
use crate::graph::exec::stream_id;
use crate::graph::{Op, RangeHealth, Role};
use crate::model::{fp32, Builder, Model};
use crate::round::{RandomStream, Rounding};

/// The format and rounding unit the training features are stored in for work on `datapath`:
/// on the low-precision datapath the architecture's `formats.input` (by default its
/// activations' format) with `formats.rounding.input`; on the full-precision unit its format
/// (`full_precision.format`) with `rne`. The one place the drivers take it from.
pub(crate) fn data_format_on(datapath: Datapath, arch: &Architecture) -> (Format, Rounding) {
    match datapath {
        Datapath::LowPrecision => (arch.formats.input, arch.formats.rounding.input),
        Datapath::FullPrecision => (arch.full_precision.format, Rounding::NearestEven),
    }
}

/// [`data_format_on`] the low-precision datapath.
pub(crate) fn data_format(arch: &Architecture) -> (Format, Rounding) {
    data_format_on(Datapath::LowPrecision, arch)
}

/// Mini-batch sampling and the data as stored.
pub(crate) struct Batches {
    x: Array2<f64>,
    y: Array2<f64>,
    stream: RandomStream,
    /// The features' format and the rounding unit that produced them.
    pub format: (Format, Rounding),
    /// Examples.
    pub n: usize,
    /// Batch size.
    pub batch: usize,
    /// The host's augmentation of every batch, and the run's seed its draws are keyed by.
    augment: Option<(Augmentation, u64)>,
}

impl Batches {
    /// The training split with its features rounded once to `format` (the `N x d` matrix is one
    /// tensor: block formats block it as a whole, rows of `d`; stochastic rounding draws from
    /// the stream `data/x`), targets one-hot (`N x C`) or a column (`N x 1`) in `fp32` (one-hot
    /// targets are exact in any format; regression targets are not features and stay `fp32`).
    /// The conversion is done before training, off the accelerator, so it is not counted.
    pub fn new(
        data: &TrainData,
        model: &Model,
        batch: usize,
        seed: u64,
        format: (Format, Rounding),
    ) -> Result<Self, AlgoError> {
        let q = Quantizer::new(format.0, format.1, seed, stream_id("data/x", 0, 0))
            .map_err(|e| AlgoError::Data(format!("the training features: {e}")))?;
        let x = data.x_train.as_standard_layout();
        let mut stored = vec![0.0; x.len()];
        q.par_quantize_f64(
            x.as_slice().expect("standard layout"),
            &mut stored,
            x.ncols(),
        );
        Ok(Batches {
            x: Array2::from_shape_vec(x.raw_dim(), stored).expect("same shape"),
            y: targets_matrix(&data.y_train, model),
            stream: RandomStream::new(seed, stream_id("batch", 0, 0)),
            format,
            n: data.x_train.nrows(),
            batch,
            augment: data.augment.clone().map(|a| (a, seed)),
        })
    }

    /// The example indices of step `step` (uniform, with replacement).
    pub fn indices(&self, step: u64) -> Vec<usize> {
        (0..self.batch)
            .map(|j| {
                let u = self.stream.uniform_f64(step * self.batch as u64 + j as u64);
                ((u * self.n as f64) as usize).min(self.n - 1)
            })
            .collect()
    }

    /// Features and targets of `idx` as feeds `x`, `y` (the SVRG family's inner steps, whose
    /// graphs take the rows directly).
    pub fn feed_rows(&self, idx: &[usize], feeds: &mut BTreeMap<String, ArrayD<f64>>) {
        feeds.insert("x".into(), self.x.select(Axis(0), idx).into_dyn());
        feeds.insert("y".into(), self.y.select(Axis(0), idx).into_dyn());
    }

    /// The whole training set as feeds `x_all`, `y_all` (once per run) and the indices of one
    /// step as feed `idx` (every step); the step graph gathers the batch. With an augmentation
    /// the host gathers the features of step `step`'s batch and augments them instead (feed
    /// `x`, drawing from the stream `augment` of the step: [`Augmentation::apply`]); returns
    /// the host's work.
    pub fn feed(
        &self,
        idx: &[usize],
        step: u64,
        feeds: &mut BTreeMap<String, ArrayD<f64>>,
    ) -> HostWork {
        if !feeds.contains_key("y_all") {
            if self.augment.is_none() {
                feeds.insert("x_all".into(), self.x.clone().into_dyn());
            }
            feeds.insert("y_all".into(), self.y.clone().into_dyn());
        }
        let column = ndarray::Array2::from_shape_fn((idx.len(), 1), |(r, _)| idx[r] as f64);
        feeds.insert("idx".into(), column.into_dyn());
        let Some((aug, seed)) = &self.augment else {
            return HostWork::default();
        };
        let rows = self.x.select(Axis(0), idx);
        let x = aug.apply(rows.view(), *seed, stream_id("augment", step, 0));
        feeds.insert("x".into(), x.into_dyn());
        aug.work(idx.len(), self.format.0.bits())
    }

    /// All features (`N x d`) and targets.
    pub fn all(&self) -> (&Array2<f64>, &Array2<f64>) {
        (&self.x, &self.y)
    }

    /// The range events of storing `data`'s training features in their stored format (the
    /// architecture's input format) and its regression targets in `fp32`, under
    /// [`Role::Data`]: judged once per run, as the data are stored once.
    pub fn data_health(&self, data: &TrainData) -> RangeHealth {
        let mut health = RangeHealth::default();
        let mut judge = |f: Format, exact: ndarray::ArrayView2<f64>, stored: &Array2<f64>| {
            let row = stored.ncols();
            let (exact, stored) = (exact.as_standard_layout(), stored.as_standard_layout());
            let counts = range_events(
                &f,
                exact.as_slice().expect("standard layout"),
                stored.as_slice().expect("standard layout"),
                row,
            );
            health.record(Role::Data, f, counts);
        };
        judge(self.format.0, data.x_train.view(), &self.x);
        if let Targets::Values(v) = &data.y_train {
            judge(fp32(), v.view().insert_axis(Axis(1)), &self.y);
        }
        health
    }
}

/// One-hot class targets or a column of values, in `f64`.
fn targets_matrix(y: &Targets, model: &Model) -> Array2<f64> {
    match (y, model.classes()) {
        (Targets::Classes(c), Some(classes)) => {
            let mut m = Array2::zeros((c.len(), classes));
            for (i, &k) in c.iter().enumerate() {
                m[[i, k]] = 1.0;
            }
            m
        }
        (Targets::Values(v), _) => v.mapv(|t| f64::from(t as f32)).insert_axis(Axis(1)),
        (Targets::Classes(c), _) => Array2::zeros((c.len(), 1)),
    }
}

/// Picked rows `x` of stored features as a value of their format: themselves, or re-blocked by a
/// `quantize` node (`x.blocks`) when the format's blocks span rows or would not survive the
/// pick (see [`Format::rows_stay_values`]).
/// The host's augmented rows `x` as the MAC reads them: re-blocked when the stored format is a
/// block format (a crop moves values between blocks and brings in black pixels, so the rows
/// are no longer the stored blocks'), in the data's scope.
pub(crate) fn augmented_rows(b: &mut Builder, x: NodeIndex) -> Result<NodeIndex, AlgoError> {
    let m = b.b.meta(x);
    let (format, rounding, role) = (m.format, m.rounding, m.role);
    if !matches!(format, Format::Block(_)) {
        return Ok(x);
    }
    let outer = b.set_scope(Scope::data());
    let blocked = b.op(Op::Quantize, "x.blocks", format, rounding, role, &[x]);
    b.set_scope(outer);
    Ok(blocked?)
}

pub(crate) fn picked_rows(b: &mut Builder, x: NodeIndex) -> Result<NodeIndex, AlgoError> {
    let m = b.b.meta(x);
    let (format, rounding, role) = (m.format, m.rounding, m.role);
    if format.rows_stay_values(m.shape[1]) {
        return Ok(x);
    }
    let name = format!("{}.blocks", m.name);
    // Re-blocking the picked rows is part of moving the data in.
    let outer = b.set_scope(Scope::data());
    let picked = b.op(Op::Quantize, &name, format, rounding, role, &[x]);
    b.set_scope(outer);
    Ok(picked?)
}
