//! `data` of kind `images`: labelled images from NumPy `.npy` arrays, MNIST/FashionMNIST IDX
//! files (plain or gzip) or CIFAR-10 binary batches, with an optional held-out test set of the
//! same format and per-channel standardization.
//!
//! Every image is one example of shape `[C, H, W]` (channels first, as PyTorch's `NCHW`), stored
//! as one row of `C * H * W` values in that order; [`super::Dataset::shape`] keeps the shape so
//! that a convolution sees the image and a dense layer the flattened row.
//!
//! Pixel values: bytes (IDX, CIFAR-10, `uint8` `.npy`) become `v / 255` in `[0, 1]`, as
//! torchvision's `ToTensor`; float `.npy` values are taken as they are.
//!
//! Formats (each file's length is checked against its header before anything is allocated):
//! - IDX (LeCun's MNIST format, also FashionMNIST's): magic `00 00 08 n` (unsigned bytes, `n`
//!   dimensions), `n` big-endian 32-bit sizes, the data; images `[N, H, W]`, labels `[N]`;
//! - CIFAR-10 binary version: records of one label byte and `3 * 32 * 32` pixel bytes (the red,
//!   green and blue planes, row-major), any number of batch files;
//! - `.npy`: images `[N, H, W]` or `[N, C, H, W]` (float or `uint8`), labels `[N]` (integers).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::{check_split, class_index, finish_classes, resolve_path, ClassBound, DataError, Table};
use crate::limits;
use crate::npy::{self, Dtype};
use crate::workload::FieldError;

/// The file format of an `images` data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// NumPy `.npy`: `images` `[N, H, W]` or `[N, C, H, W]`, `labels` `[N]`.
    Npy,
    /// MNIST/FashionMNIST IDX files, plain or gzip.
    Idx,
    /// CIFAR-10 binary batches.
    Cifar10,
}

/// `data` of kind `images` (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesSpec {
    /// The file format.
    pub format: ImageFormat,
    /// The training images (`npy`, `idx`).
    #[serde(default)]
    pub images: Option<PathBuf>,
    /// The training labels (`npy`, `idx`).
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// The training batches (`cifar10`).
    #[serde(default)]
    pub batches: Vec<PathBuf>,
    /// A held-out test set's images (`npy`, `idx`); without one, `test_fraction` of the
    /// training files is held out.
    #[serde(default)]
    pub test_images: Option<PathBuf>,
    /// The held-out test set's labels (`npy`, `idx`).
    #[serde(default)]
    pub test_labels: Option<PathBuf>,
    /// The held-out test batches (`cifar10`).
    #[serde(default)]
    pub test_batches: Vec<PathBuf>,
    /// Number of classes (default: 10 for IDX and CIFAR-10, else the largest label plus one).
    #[serde(default)]
    pub n_classes: Option<usize>,
    /// Fraction of the examples held out for testing when no test files are given, in
    /// `[0, 1)` (default 0.2; refused with test files).
    #[serde(default)]
    pub test_fraction: Option<f64>,
    /// Seed of the train/test permutation.
    #[serde(default)]
    pub split_seed: u64,
    /// Scale every channel to zero mean and unit variance with training-set statistics (over
    /// every pixel of the channel).
    #[serde(default)]
    pub standardize: bool,
    /// At most this many examples of each set, in file order (0: all): a quick run on a large
    /// data set.
    #[serde(default)]
    pub limit: usize,
    /// Random crop and horizontal flip of every training mini-batch, on the host
    /// ([`super::Augment`]; none by default).
    #[serde(default)]
    pub augment: Option<super::Augment>,
}

/// The default held-out fraction without test files.
const TEST_FRACTION: f64 = 0.2;

impl ImagesSpec {
    /// Checks that the files named fit the format and the numbers their ranges; the error
    /// names the field relative to `data`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let by_pair = matches!(self.format, ImageFormat::Npy | ImageFormat::Idx);
        let name = match self.format {
            ImageFormat::Npy => "npy",
            ImageFormat::Idx => "idx",
            ImageFormat::Cifar10 => "cifar10",
        };
        let refuse = |field: &str, why: &str| Err(FieldError::new(field, "given", why));
        if by_pair {
            for (f, given) in [("images", &self.images), ("labels", &self.labels)] {
                if given.is_none() {
                    return Err(FieldError::new(
                        f,
                        "missing",
                        format!("required for format = {name}"),
                    ));
                }
            }
            if !self.batches.is_empty() || !self.test_batches.is_empty() {
                let f = if self.batches.is_empty() {
                    "test_batches"
                } else {
                    "batches"
                };
                return refuse(f, "only for format = cifar10 (use images and labels)");
            }
            if self.test_images.is_some() != self.test_labels.is_some() {
                let f = if self.test_images.is_some() {
                    "test_labels"
                } else {
                    "test_images"
                };
                return Err(FieldError::new(
                    f,
                    "missing",
                    "test_images and test_labels go together",
                ));
            }
        } else {
            if self.batches.is_empty() {
                return Err(FieldError::new(
                    "batches",
                    "[]",
                    "format = cifar10 needs at least one batch file",
                ));
            }
            for (f, given) in [
                ("images", self.images.is_some()),
                ("labels", self.labels.is_some()),
                ("test_images", self.test_images.is_some()),
                ("test_labels", self.test_labels.is_some()),
            ] {
                if given {
                    return refuse(f, "not for format = cifar10 (use batches, test_batches)");
                }
            }
        }
        if let Some(a) = &self.augment {
            a.validate()?;
        }
        if let Some(k) = self.n_classes {
            if k < 2 {
                return Err(FieldError::new("n_classes", k, "must be at least 2"));
            }
        }
        match (self.test_fraction, self.has_test_files()) {
            (Some(f), true) => Err(FieldError::new(
                "test_fraction",
                f,
                "not with test files: the test set is the files given",
            )),
            (f, _) => check_split(f.unwrap_or(TEST_FRACTION)),
        }
    }

    /// Whether a held-out test set is named.
    pub fn has_test_files(&self) -> bool {
        self.test_images.is_some() || !self.test_batches.is_empty()
    }

    /// The held-out fraction when there are no test files.
    pub fn test_fraction(&self) -> f64 {
        self.test_fraction.unwrap_or(TEST_FRACTION)
    }
}

/// Images and labels read from one set of files, before classes are checked.
struct Raw {
    /// `N x (C H W)` pixel values.
    x: Vec<f64>,
    /// `[C, H, W]`.
    shape: Vec<usize>,
    labels: Vec<f64>,
    /// The file the labels came from (for messages).
    labels_path: PathBuf,
}

fn content(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Content {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A file's bytes, decompressed when they start with the gzip magic `1f 8b`, read through
/// `take` so that at most `max` bytes are held (the caller checks the header first).
fn open(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let io = |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut raw = BufReader::new(file);
    let gzipped = raw.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzipped {
        Box::new(GzDecoder::new(raw))
    } else {
        Box::new(raw)
    })
}

/// Exactly `n` bytes from `r`, or an error saying how many the file had.
fn read_exact(r: &mut dyn Read, n: usize, path: &Path, what: &str) -> Result<Vec<u8>, DataError> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|error| DataError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    if buf.len() < n {
        return Err(content(
            path,
            format!(
                "truncated: {what} needs {n} bytes, the file has {}",
                buf.len()
            ),
        ));
    }
    Ok(buf)
}

/// Whether `r` has anything left.
fn has_more(r: &mut dyn Read, path: &Path) -> Result<bool, DataError> {
    let mut one = [0u8; 1];
    let n = r.read(&mut one).map_err(|error| DataError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(n > 0)
}

/// An IDX file: its dimensions and its unsigned bytes (`dims` must have `ndim` entries).
fn read_idx(path: &Path, ndim: usize, limit: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let mut r = open(path)?;
    let head = read_exact(r.as_mut(), 4, path, "the IDX magic number")?;
    if head[0] != 0 || head[1] != 0 {
        return Err(content(
            path,
            format!(
                "not an IDX file: magic bytes {:02x} {:02x}, expected 00 00",
                head[0], head[1]
            ),
        ));
    }
    if head[2] != 0x08 {
        return Err(content(
            path,
            format!(
                "IDX element type 0x{:02x}: only unsigned bytes (0x08), as MNIST and \
                 FashionMNIST, are read",
                head[2]
            ),
        ));
    }
    if usize::from(head[3]) != ndim {
        return Err(content(
            path,
            format!(
                "{} dimensions; expected {ndim} ({})",
                head[3],
                if ndim == 3 {
                    "images N x H x W"
                } else {
                    "labels N"
                }
            ),
        ));
    }
    let sizes = read_exact(r.as_mut(), 4 * ndim, path, "the IDX dimensions")?;
    let mut dims: Vec<usize> = sizes
        .chunks(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let stored = limits::elements(format!("an IDX array {dims:?}"), &dims)
        .map_err(|e| content(path, e.to_string()))?;
    let keep = if limit > 0 && limit < dims[0] {
        limit
    } else {
        dims[0]
    };
    let per = dims[1..].iter().product::<usize>();
    let n = limits::check_array(format!("an IDX array {dims:?}"), &[keep, per], 16)
        .map_err(|e| content(path, e.to_string()))?;
    let bytes = read_exact(r.as_mut(), n, path, &format!("the header's {dims:?}"))?;
    if keep == dims[0] && has_more(r.as_mut(), path)? {
        return Err(content(
            path,
            format!("longer than its header says ({dims:?}: {stored} bytes of data)"),
        ));
    }
    dims[0] = keep;
    Ok((dims, bytes))
}

/// An IDX pair: images `[N, H, W]` and labels `[N]`.
fn read_idx_pair(images: &Path, labels: &Path, limit: usize) -> Result<Raw, DataError> {
    let (dims, pixels) = read_idx(images, 3, limit)?;
    let (ldims, label_bytes) = read_idx(labels, 1, limit)?;
    if ldims[0] != dims[0] {
        return Err(content(
            labels,
            format!(
                "{} labels for {} images in {}",
                ldims[0],
                dims[0],
                images.display()
            ),
        ));
    }
    Ok(Raw {
        x: pixels.iter().map(|&b| f64::from(b) / 255.0).collect(),
        shape: vec![1, dims[1], dims[2]],
        labels: label_bytes.iter().map(|&b| f64::from(b)).collect(),
        labels_path: labels.to_path_buf(),
    })
}

/// CIFAR-10's record: a label byte and three 32 x 32 planes.
const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10 binary batches, concatenated in the order given.
fn read_cifar(batches: &[PathBuf], limit: usize) -> Result<Raw, DataError> {
    let record = 1 + CIFAR_PIXELS;
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    for path in batches {
        let len = std::fs::metadata(path)
            .map_err(|error| DataError::Io {
                path: path.clone(),
                error,
            })?
            .len() as usize;
        if len % record != 0 || len == 0 {
            return Err(content(
                path,
                format!(
                    "{len} bytes is not a whole number of CIFAR-10 records ({record} bytes: a \
                     label byte and 3 x 32 x 32 pixels); truncated or not a CIFAR-10 binary batch"
                ),
            ));
        }
        let mut n = len / record;
        if limit > 0 {
            n = n.min(limit - labels.len());
        }
        limits::check_array(format!("{n} CIFAR-10 images"), &[n, CIFAR_PIXELS], 16)
            .map_err(|e| content(path, e.to_string()))?;
        let mut r = open(path)?;
        let bytes = read_exact(r.as_mut(), n * record, path, &format!("{n} records"))?;
        for rec in bytes.chunks(record) {
            labels.push(f64::from(rec[0]));
            x.extend(rec[1..].iter().map(|&b| f64::from(b) / 255.0));
        }
        if limit > 0 && labels.len() >= limit {
            break;
        }
    }
    Ok(Raw {
        x,
        shape: vec![3, 32, 32],
        labels,
        labels_path: batches[0].clone(),
    })
}

/// `.npy` images `[N, H, W]` or `[N, C, H, W]` and labels `[N]`.
fn read_npy_images(images: &Path, labels: &Path, limit: usize) -> Result<Raw, DataError> {
    let a = npy::read(images)?;
    let scale = match a.dtype {
        Dtype::Float { .. } => 1.0,
        Dtype::Int {
            bytes: 1,
            signed: false,
        } => 1.0 / 255.0,
        other => {
            return Err(content(
                images,
                format!("dtype {}: expected float32, float64 or uint8", other.name()),
            ))
        }
    };
    let (n, shape) = match a.shape[..] {
        [n, h, w] => (n, vec![1, h, w]),
        [n, c, h, w] => (n, vec![c, h, w]),
        _ => {
            return Err(content(
                images,
                format!(
                    "shape {:?}: expected images N x H x W or N x C x H x W",
                    a.shape
                ),
            ))
        }
    };
    if let Some(i) = a.values.iter().position(|v| !v.is_finite()) {
        return Err(content(
            images,
            format!("element {i} (row-major) is not finite"),
        ));
    }
    let l = npy::read(labels)?;
    if !matches!(
        (l.dtype, l.shape.len()),
        (Dtype::Int { .. } | Dtype::Float { .. }, 1)
    ) {
        return Err(content(
            labels,
            format!(
                "a {}-D {} array: expected a 1-D integer .npy array",
                l.shape.len(),
                l.dtype.name()
            ),
        ));
    }
    if l.shape[0] != n {
        return Err(content(
            labels,
            format!(
                "{} labels for {n} images in {}",
                l.shape[0],
                images.display()
            ),
        ));
    }
    let keep = if limit > 0 { n.min(limit) } else { n };
    let per: usize = shape.iter().product();
    let mut x = a.values;
    x.truncate(keep * per);
    x.iter_mut().for_each(|v| *v *= scale);
    let mut labels_v = l.values;
    labels_v.truncate(keep);
    Ok(Raw {
        x,
        shape,
        labels: labels_v,
        labels_path: labels.to_path_buf(),
    })
}

/// One set of files of `spec` as a table (classes checked against `n_classes`).
fn table(
    spec: &ImagesSpec,
    workload_file: &Path,
    test: bool,
    n_classes: Option<usize>,
) -> Result<Table, DataError> {
    let at = |p: &Option<PathBuf>| p.as_ref().map(|p| resolve_path(p, workload_file));
    let raw = match spec.format {
        ImageFormat::Cifar10 => {
            let files = if test {
                &spec.test_batches
            } else {
                &spec.batches
            };
            let files: Vec<PathBuf> = files
                .iter()
                .map(|p| resolve_path(p, workload_file))
                .collect();
            read_cifar(&files, spec.limit)?
        }
        f => {
            let (images, labels) = if test {
                (at(&spec.test_images), at(&spec.test_labels))
            } else {
                (at(&spec.images), at(&spec.labels))
            };
            // Checked by `validate`: both are there.
            let (Some(images), Some(labels)) = (images, labels) else {
                return Err(DataError::Split(
                    "images and labels are both required".into(),
                ));
            };
            if f == ImageFormat::Idx {
                read_idx_pair(&images, &labels, spec.limit)?
            } else {
                read_npy_images(&images, &labels, spec.limit)?
            }
        }
    };
    let per: usize = raw.shape.iter().product();
    let n = raw.labels.len();
    if n == 0 {
        return Err(content(&raw.labels_path, "no examples"));
    }
    let bound = n_classes.map(|n| ClassBound {
        n,
        source: "data.n_classes, or 10 for idx and cifar10".into(),
    });
    let labels = raw
        .labels
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            class_index(v, &v.to_string(), bound.as_ref())
                .map_err(|r| content(&raw.labels_path, format!("example {i}: {r}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (y, n_classes) = finish_classes(labels, bound, &raw.labels_path)?;
    let x = Array2::from_shape_vec((n, per), raw.x)
        .map_err(|e| content(&raw.labels_path, e.to_string()))?;
    Ok(Table {
        x,
        y,
        n_classes,
        shape: raw.shape,
    })
}

/// The training table and, when the spec names one, the test table.
pub(super) fn read_images(
    spec: &ImagesSpec,
    workload_file: &Path,
) -> Result<(Table, Option<Table>), DataError> {
    let default_classes = match spec.format {
        ImageFormat::Npy => None,
        ImageFormat::Idx | ImageFormat::Cifar10 => Some(10),
    };
    let classes = spec.n_classes.or(default_classes);
    let train = table(spec, workload_file, false, classes)?;
    if !spec.has_test_files() {
        return Ok((train, None));
    }
    // The test set has the training set's classes.
    let test = table(spec, workload_file, true, train.n_classes)?;
    if test.shape != train.shape {
        return Err(DataError::Split(format!(
            "test images are {:?}, training images {:?}",
            test.shape, train.shape
        )));
    }
    Ok((train, Some(test)))
}

/// Per-channel mean and standard deviation of `x` (`N x (C H W)` rows of images `shape`),
/// population statistics (ddof = 0), a constant channel scaled by 1; expanded to one value per
/// feature.
pub(super) fn channel_statistics(x: &Array2<f64>, shape: &[usize]) -> (Array1<f64>, Array1<f64>) {
    let c = shape[0];
    let plane = shape[1..].iter().product::<usize>().max(1);
    let mut sum = vec![0.0; c];
    let mut sq = vec![0.0; c];
    for row in x.rows() {
        for (k, &v) in row.iter().enumerate() {
            sum[k / plane] += v;
        }
    }
    let count = (x.nrows() * plane).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    for row in x.rows() {
        for (k, &v) in row.iter().enumerate() {
            let d = v - mean[k / plane];
            sq[k / plane] += d * d;
        }
    }
    let sd: Vec<f64> = sq
        .iter()
        .map(|s| {
            let s = (s / count).sqrt();
            if s > 0.0 {
                s
            } else {
                1.0
            }
        })
        .collect();
    let per = c * plane;
    (
        Array1::from_shape_fn(per, |k| mean[k / plane]),
        Array1::from_shape_fn(per, |k| sd[k / plane]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_statistics_pool_every_pixel_of_a_channel() {
        // Two 2-channel 1 x 2 images: channel 0 holds 0, 2, 4, 6; channel 1 is constant 5.
        let x = ndarray::arr2(&[[0.0, 2.0, 5.0, 5.0], [4.0, 6.0, 5.0, 5.0]]);
        let (mean, sd) = channel_statistics(&x, &[2, 1, 2]);
        assert_eq!(mean.to_vec(), [3.0, 3.0, 5.0, 5.0]);
        let s0 = (20.0f64 / 4.0).sqrt();
        assert_eq!(sd.to_vec(), [s0, s0, 1.0, 1.0]);
    }
}
