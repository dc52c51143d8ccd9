//! SCALE-Sim topology files (`lpsim cost --topology`): a network as a list of layers, each
//! lowered to the GEMM SCALE-Sim v3.0.0 runs for it.
//!
//! Two formats, told apart by the header line (SCALE-Sim itself is told by its `-i` flag):
//!
//! - **conv** (`topologies/conv_nets/*.csv`):
//!   `Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,`
//!   One layer is a convolution without padding (`scalesim/topology_utils.py`): the output is
//!   `E x F` with SCALE-Sim's `E = ceil((H - R + stride) / stride) = ceil((H - R) / stride) + 1`
//!   and the same for `F` with `W` and `S`. When the stride does not divide `H - R` this is one
//!   row more than a convolution without padding has (PyTorch's `floor((H - R) / stride) + 1`):
//!   SCALE-Sim's last window runs past the input's edge. lpsim follows SCALE-Sim, whose cycles
//!   it reproduces; for a network's exact layer, give an IFMAP size where the stride divides
//!   `H - R` (pad one side only, as `topologies/resnet_cifar_small.csv` does). SCALE-Sim runs it
//!   as the GEMM of the im2col matrices (`compute/operand_matrix.py`): the ifmap operand is
//!   `(E F) x (R S C)`, the filter operand `(R S C) x filters`, so `M = E F` (output pixels),
//!   `N = filters`, `K = R S C` (the window). Its `calc_spatio_temporal_params` then maps
//!   `(M, N, K)` to each dataflow's `(Sr, Sc, T)` exactly as [`gemm_cycles`](super::gemm_cycles)
//!   does. A layer whose name contains `DP` (upper case, anywhere) is depthwise in SCALE-Sim:
//!   it becomes `Channels` layers of one channel each, so here `Channels` GEMMs with
//!   `K = R S`, run one after another.
//! - **GEMM** (`topologies/GEMM_mnk/*.csv`): `Layer, M, N, K,` with `C (M x N) = A (M x K)
//!   B (K x N)`; SCALE-Sim reads a row as a convolution of an `M x K` ifmap with `N` filters of
//!   `1 x K`, the same GEMM.
//!
//! Both may end with a `Sparsity` column (`N:M`); lpsim prices dense layers only, so a ratio
//! other than dense (`N = M`) is refused (SCALE-Sim ignores it unless its sparsity support is
//! on). Every line may end with a comma (SCALE-Sim's files do, and SCALE-Sim drops the last
//! field of every line, so its files need it); blank lines are skipped; fields are trimmed. A
//! non-empty field after the last column is refused (SCALE-Sim drops it unread: a `#dw` note
//! after the trailing comma, or the stride of a line that lacks the comma).
//! Anything else is an error naming the file, line and column: a header that is neither format,
//! a row with too few or too many fields, a size that is not a whole number >= 1, a filter larger
//! than the ifmap (SCALE-Sim asserts the same), an empty layer name, a file without layers.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::arch::Architecture;
use crate::cost::cycles::Gemm;
use crate::cost::{price_gemms, CostError, CostReport};

/// The most GEMMs a topology may expand to (a depthwise layer is one per channel): far more
/// than any network has (MobileNet's depthwise layers are about 5,000 channels in all), and few
/// enough that pricing each on its own stays quick.
pub const MAX_GEMMS: u64 = 1 << 16;

/// A topology file that cannot be read.
#[derive(Debug, Error)]
pub enum TopologyError {
    /// The file cannot be opened or read.
    #[error("{}: cannot read the topology file: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: io::Error,
    },
    /// The content is wrong at a line (and column, when the message names one).
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line, from 1.
        line: u64,
        /// What is wrong, naming the column when one is at fault.
        reason: String,
    },
}

/// Which of SCALE-Sim's two topology formats a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopologyKind {
    /// Convolution layers (`Layer name, IFMAP Height, ...`).
    Conv,
    /// GEMMs (`Layer, M, N, K,`).
    Gemm,
}

impl TopologyKind {
    /// The required column names (compared without case), in order.
    fn columns(self) -> &'static [&'static str] {
        match self {
            TopologyKind::Conv => &[
                "Layer name",
                "IFMAP Height",
                "IFMAP Width",
                "Filter Height",
                "Filter Width",
                "Channels",
                "Num Filter",
                "Strides",
            ],
            TopologyKind::Gemm => &["Layer", "M", "N", "K"],
        }
    }
}

/// The name of the optional last column, compared without case.
const SPARSITY: &str = "Sparsity";

/// One convolution layer of a conv topology, as the file gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Conv {
    /// IFMAP height `H`.
    pub ifmap_h: u64,
    /// IFMAP width `W`.
    pub ifmap_w: u64,
    /// Filter height `R` (<= `H`).
    pub filter_h: u64,
    /// Filter width `S` (<= `W`).
    pub filter_w: u64,
    /// Input channels `C`.
    pub channels: u64,
    /// Filters (output channels).
    pub filters: u64,
    /// Stride, the same in both directions (SCALE-Sim's one `Strides` column).
    pub stride: u64,
}

impl Conv {
    /// The output's height and width as SCALE-Sim counts them:
    /// `(ceil((H - R) / stride) + 1, ceil((W - S) / stride) + 1)` (see the module docs).
    pub fn ofmap(&self) -> (u64, u64) {
        (
            (self.ifmap_h - self.filter_h).div_ceil(self.stride) + 1,
            (self.ifmap_w - self.filter_w).div_ceil(self.stride) + 1,
        )
    }
}

/// One line of a topology: a layer and the GEMMs SCALE-Sim runs for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// The layer's name (first column).
    pub name: String,
    /// Its line in the file.
    pub line: u64,
    /// The convolution, for a conv topology.
    pub conv: Option<Conv>,
    /// The GEMM of one pass: `(E F, filters, R S C)` for a convolution (`R S` when depthwise).
    pub gemm: Gemm,
    /// How many times [`Layer::gemm`] runs: the channels of a depthwise (`DP`) layer, else 1.
    pub count: u64,
}

/// A topology file read and checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// The format of the file.
    pub kind: TopologyKind,
    /// The layers in file order (at least one).
    pub layers: Vec<Layer>,
}

impl Topology {
    /// Every GEMM of the topology in order, each layer's [`Layer::count`] times (at most
    /// [`MAX_GEMMS`] in all).
    pub fn gemms(&self) -> Vec<Gemm> {
        self.layers
            .iter()
            .flat_map(|l| std::iter::repeat(l.gemm).take(l.count as usize))
            .collect()
    }
}

/// One layer priced: its GEMMs run one after another on the architecture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricedLayer {
    /// The layer's name.
    pub name: String,
    /// Its line in the file.
    pub line: u64,
    /// `M` of its GEMM.
    pub m: u64,
    /// `N` of its GEMM.
    pub n: u64,
    /// `K` of its GEMM.
    pub k: u64,
    /// How many times the GEMM runs (a depthwise layer's channels, else 1).
    pub count: u64,
    /// The layer's own cost: compute cycles are SCALE-Sim's "Total Cycles" of the layer (the
    /// sum over its GEMMs for a depthwise layer, which SCALE-Sim reports as one layer per
    /// channel).
    pub report: CostReport,
}

/// A topology priced on an architecture: per layer, and the whole forward pass.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricedTopology {
    /// The file's format.
    pub kind: TopologyKind,
    /// Every layer run one after another: actions and cycles added, as
    /// [`price_gemms`] of all the GEMMs.
    pub total: CostReport,
    /// Each layer on its own.
    pub layers: Vec<PricedLayer>,
}

/// Price the forward pass of `topology` on `arch`, each layer as the GEMM(s) SCALE-Sim runs
/// for it, with [`price_gemms`]: per layer, and the total over the layers in order.
pub fn price_topology(
    arch: &Architecture,
    topology: &Topology,
) -> Result<PricedTopology, CostError> {
    let layers = topology
        .layers
        .iter()
        .map(|l| {
            let Gemm { m, n, k } = l.gemm;
            Ok(PricedLayer {
                name: l.name.clone(),
                line: l.line,
                m,
                n,
                k,
                count: l.count,
                report: price_gemms(arch, &vec![l.gemm; l.count as usize]).map_err(
                    |e| match e {
                        CostError::Overflow(what) => CostError::Overflow(format!(
                            "layer `{}` (line {}): {what}",
                            l.name, l.line
                        )),
                        other => other,
                    },
                )?,
            })
        })
        .collect::<Result<Vec<_>, CostError>>()?;
    Ok(PricedTopology {
        kind: topology.kind,
        total: price_gemms(arch, &topology.gemms())?,
        layers,
    })
}

/// Read and check the topology file at `path` (see the module docs for the formats).
pub fn read_topology(path: &Path) -> Result<Topology, TopologyError> {
    let file = File::open(path).map_err(|error| TopologyError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse(path, BufReader::new(file))
}

/// Parse a topology from `input`; `path` names it in errors.
pub fn parse(path: &Path, input: impl io::Read) -> Result<Topology, TopologyError> {
    let err = |line: u64, reason: String| TopologyError::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    // As in `workload/data/csv.rs`: a record's line is the reader's line after it minus one;
    // the appended newline makes that hold for a last line without one.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(io::Read::chain(input, &b"\n"[..]));
    let mut record = csv::StringRecord::new();
    // (format, sparsity column, line)
    let mut header: Option<(TopologyKind, bool, u64)> = None;
    let mut layers = Vec::new();
    let mut gemms = 0u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = reader.position().line().saturating_sub(1).max(1);
                let reason = match e.kind() {
                    csv::ErrorKind::Utf8 { err, .. } => {
                        format!("column {} is not valid UTF-8", err.field() + 1)
                    }
                    csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
                    _ => e.to_string(),
                };
                return Err(err(line, reason));
            }
        }
        let line = reader.position().line().saturating_sub(1).max(1);
        let mut fields: Vec<&str> = record.iter().collect();
        // SCALE-Sim's trailing comma: one empty last field.
        if fields.len() > 1 && fields.last() == Some(&"") {
            fields.pop();
        }
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        match header {
            None => {
                let (kind, sparsity) = read_header(&fields).map_err(|r| err(line, r))?;
                header = Some((kind, sparsity, line));
            }
            Some((kind, sparsity, _)) => {
                let layer = read_layer(kind, sparsity, &fields, line).map_err(|r| err(line, r))?;
                gemms = gemms.saturating_add(layer.count);
                if gemms > MAX_GEMMS {
                    return Err(err(
                        line,
                        format!(
                            "the topology expands to more than {MAX_GEMMS} GEMMs (a depthwise \
                             `DP` layer is one GEMM per channel)"
                        ),
                    ));
                }
                layers.push(layer);
            }
        }
    }
    let Some((kind, _, line)) = header else {
        return Err(err(1, format!("empty file: {}", expected_headers())));
    };
    if layers.is_empty() {
        return Err(err(line, "no layers after the header".into()));
    }
    Ok(Topology { kind, layers })
}

/// The two headers, for messages.
fn expected_headers() -> String {
    let join = |k: TopologyKind| k.columns().join(", ");
    format!(
        "expected a SCALE-Sim topology header, `{},` (conv) or `{},` (GEMM)",
        join(TopologyKind::Conv),
        join(TopologyKind::Gemm)
    )
}

/// Two column names equal without case and inner whitespace runs.
fn same_name(a: &str, b: &str) -> bool {
    a.split_whitespace()
        .map(str::to_lowercase)
        .eq(b.split_whitespace().map(str::to_lowercase))
}

/// The format of a header line and whether it has the sparsity column.
fn read_header(fields: &[&str]) -> Result<(TopologyKind, bool), String> {
    let kind = match fields {
        [first, ..] if same_name(first, "Layer name") => TopologyKind::Conv,
        [first, second, ..] if same_name(first, "Layer") && same_name(second, "M") => {
            TopologyKind::Gemm
        }
        _ => return Err(expected_headers()),
    };
    let names = kind.columns();
    for (i, (got, want)) in fields.iter().zip(names).enumerate() {
        if !same_name(got, want) {
            return Err(format!(
                "column {} of the header is `{got}`, expected `{want}` ({})",
                i + 1,
                expected_headers()
            ));
        }
    }
    match fields.get(names.len()..).unwrap_or_default() {
        [] if fields.len() < names.len() => Err(format!(
            "the header has {} columns, expected {} ({})",
            fields.len(),
            names.len(),
            expected_headers()
        )),
        [] => Ok((kind, false)),
        [last] if same_name(last, SPARSITY) => Ok((kind, true)),
        [extra, ..] => Err(format!(
            "column {} of the header is `{extra}`: after `{}` only `{SPARSITY}` may follow",
            names.len() + 1,
            names[names.len() - 1]
        )),
    }
}

/// A size field: a whole number >= 1.
fn size(fields: &[&str], column: usize, name: &str) -> Result<u64, String> {
    let v = fields[column];
    v.parse::<u64>().ok().filter(|&x| x >= 1).ok_or_else(|| {
        format!(
            "column {} `{name}` = `{v}`: expected a whole number >= 1",
            column + 1
        )
    })
}

/// One data line of a `kind` topology.
fn read_layer(
    kind: TopologyKind,
    sparsity: bool,
    fields: &[&str],
    line: u64,
) -> Result<Layer, String> {
    let names = kind.columns();
    let max = names.len() + usize::from(sparsity);
    if fields.len() < names.len() || fields.len() > max {
        let columns = if sparsity {
            format!("{} or {max}", names.len())
        } else {
            names.len().to_string()
        };
        return Err(format!(
            "{} fields, expected {columns} ({}{})",
            fields.len(),
            names.join(", "),
            if sparsity { ", Sparsity" } else { "" }
        ));
    }
    if let Some(ratio) = fields.get(names.len()) {
        check_dense(ratio, names.len() + 1)?;
    }
    let name = fields[0];
    if name.is_empty() {
        return Err(format!("column 1 `{}` is empty", names[0]));
    }
    let at = |column: usize| size(fields, column, names[column]);
    let overflow = |what: &str| format!("layer `{name}`: {what} does not fit in 64 bits");
    let (conv, gemm, count) = match kind {
        TopologyKind::Gemm => {
            let (m, n, k) = (at(1)?, at(2)?, at(3)?);
            (None, Gemm { m, n, k }, 1)
        }
        TopologyKind::Conv => {
            let (ifmap_h, ifmap_w, filter_h, filter_w) = (at(1)?, at(2)?, at(3)?, at(4)?);
            let (channels, filters, stride) = (at(5)?, at(6)?, at(7)?);
            for (filter, ifmap, col) in [(filter_h, ifmap_h, 4), (filter_w, ifmap_w, 5)] {
                if filter > ifmap {
                    return Err(format!(
                        "column {col} `{}` = {filter} is larger than column {} `{}` = {ifmap} \
                         (no padding: pad the IFMAP in the file)",
                        names[col - 1],
                        col - 2,
                        names[col - 3]
                    ));
                }
            }
            let conv = Conv {
                ifmap_h,
                ifmap_w,
                filter_h,
                filter_w,
                channels,
                filters,
                stride,
            };
            // SCALE-Sim's depthwise rule (`topology_utils.py`): `DP` in the name.
            let depthwise = name.contains("DP");
            let (e, f) = conv.ofmap();
            let window = filter_h
                .checked_mul(filter_w)
                .and_then(|rs| rs.checked_mul(if depthwise { 1 } else { channels }))
                .ok_or_else(|| overflow("the window Filter Height x Filter Width x Channels"))?;
            let pixels = e
                .checked_mul(f)
                .ok_or_else(|| overflow("the number of output pixels"))?;
            let gemm = Gemm {
                m: pixels,
                n: filters,
                k: window,
            };
            (Some(conv), gemm, if depthwise { channels } else { 1 })
        }
    };
    Ok(Layer {
        name: name.to_string(),
        line,
        conv,
        gemm,
        count,
    })
}

/// The sparsity column: `N:M` with `N = M >= 1` (dense).
fn check_dense(ratio: &str, column: usize) -> Result<(), String> {
    let parsed = ratio
        .split_once(':')
        .and_then(|(n, m)| Some((n.trim().parse::<u64>().ok()?, m.trim().parse::<u64>().ok()?)));
    match parsed {
        Some((n, m)) if n == m && n >= 1 => Ok(()),
        Some((n, m)) if n >= 1 && n < m => Err(format!(
            "column {column} `{SPARSITY}` = `{ratio}`: lpsim prices dense layers only; \
             use `1:1` or leave the column out ({n}:{m} structured sparsity is not modelled)"
        )),
        _ => Err(format!(
            "column {column} `{SPARSITY}` = `{ratio}`: expected N:M with whole numbers, \
             1:1 (dense) being the only ratio lpsim prices"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Topology, String> {
        parse(Path::new("t.csv"), text.as_bytes()).map_err(|e| e.to_string())
    }

    /// The closed form of the lowering, by hand.
    #[test]
    fn conv_lowering_by_hand() {
        let t = parse_str(
            "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, \
             Num Filter, Strides,\n\
             a, 224, 224, 11, 11, 3, 96, 4,\n\
             b, 10, 7, 3, 2, 5, 4, 2,\n\
             DP_c, 8, 8, 3, 3, 5, 1, 1,\n",
        )
        .unwrap();
        assert_eq!(t.kind, TopologyKind::Conv);
        // AlexNet's first layer as SCALE-Sim counts it: ceil((224 - 11) / 4) + 1 = 55 (a
        // convolution without padding has 54: the 55th window runs past the edge).
        let a = &t.layers[0];
        assert_eq!(a.conv.unwrap().ofmap(), (55, 55));
        assert_eq!(
            (a.gemm, a.count, a.line),
            (
                Gemm {
                    m: 55 * 55,
                    n: 96,
                    k: 11 * 11 * 3
                },
                1,
                2
            )
        );
        // ceil((10 - 3) / 2) + 1 = 5, ceil((7 - 2) / 2) + 1 = 4.
        assert_eq!(t.layers[1].gemm, Gemm { m: 20, n: 4, k: 30 });
        // Depthwise: 5 GEMMs of one channel each.
        let c = &t.layers[2];
        assert_eq!((c.gemm, c.count), (Gemm { m: 36, n: 1, k: 9 }, 5));
        assert_eq!(t.gemms().len(), 7);
    }

    #[test]
    fn gemm_topology_and_optional_commas() {
        let t = parse_str("Layer,M,N,K\nqk,1024,1024,64\n\n  proj , 3, 5, 7 ,\n").unwrap();
        assert_eq!(t.kind, TopologyKind::Gemm);
        assert_eq!(t.layers[1].name, "proj");
        assert_eq!(t.layers[1].line, 4);
        assert_eq!(t.layers[1].gemm, Gemm { m: 3, n: 5, k: 7 });
        assert!(t.layers[1].conv.is_none());
        let s = parse_str("Layer, M, N, K, Sparsity\ng, 2, 3, 4, 2:2,\nh, 2, 3, 4\n").unwrap();
        assert_eq!(s.layers.len(), 2);
    }
}
