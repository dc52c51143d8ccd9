//! Random crop and horizontal flip of the training mini-batch (`data.augment` of an `images`
//! data set), as torchvision's `RandomCrop(size, padding=p)` and `RandomHorizontalFlip()` in the
//! LP-SGLD reference's CIFAR pipeline: each image is padded with `p` black pixels on every side,
//! a window of its own size is cut at a random offset `(dy, dx)` in `0..=2p`, and the result is
//! mirrored left to right with probability 1/2.
//!
//! The draws of example `j` of step `step` are the words `3j`, `3j + 1`, `3j + 2` of the
//! counter-based stream `(seed, "augment", step)` (`dy`, `dx`, flip), so the augmented batch
//! depends only on the run's seed, the step and the example's place in the batch, never on the
//! number of threads. Black is the value a pixel `0` takes after the data set's per-channel
//! standardization (torchvision pads before `Normalize`): `-mean_c / scale_c`, or `0` without
//! standardization.
//!
//! Augmenting runs on the host, not the accelerator: the drivers count it as host work
//! ([`HostWork`]: elements augmented and bytes moved), reported beside the accelerator's cost.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::cost::HostWork;
use crate::round::RandomStream;
use crate::workload::FieldError;

/// `data.augment` of an `images` data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Black pixels added on every side before a random crop of the image's size (0: no crop).
    #[serde(default)]
    pub crop_padding: usize,
    /// Mirror each image left to right with probability 1/2.
    #[serde(default)]
    pub flip: bool,
}

/// The most padding a crop takes (the LP-SGLD reference pads CIFAR's 32 x 32 images by 4).
pub const MAX_CROP_PADDING: usize = 64;

impl Augment {
    /// Checks the fields; the error names the field relative to `augment`.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.crop_padding > MAX_CROP_PADDING {
            return Err(FieldError::new(
                "augment.crop_padding",
                self.crop_padding,
                format!("at most {MAX_CROP_PADDING} pixels"),
            ));
        }
        if self.crop_padding == 0 && !self.flip {
            return Err(FieldError::new(
                "augment",
                "{}",
                "an augmentation that changes nothing: set crop_padding > 0 or flip = true, or \
                 leave augment out",
            ));
        }
        Ok(())
    }
}

/// An augmentation bound to the images it applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct Augmentation {
    /// What to do.
    pub augment: Augment,
    /// One image's `[C, H, W]` (the first `C H W` values of a row; any further features, such
    /// as a model's constant bias input, are left alone).
    pub shape: [usize; 3],
    /// Black in each channel, as stored (see the module docs).
    pub black: Vec<f64>,
}

impl Augmentation {
    /// Augment the rows of a mini-batch (`batch x features`) of step `step`, drawing from
    /// `(seed, stream)` (see the module docs): a new batch.
    pub fn apply(&self, rows: ArrayView2<f64>, seed: u64, stream: u64) -> Array2<f64> {
        let [c, h, w] = self.shape;
        let p = self.augment.crop_padding;
        let draws = RandomStream::new(seed, stream);
        let span = 2 * p as u64 + 1;
        let mut out = rows.to_owned();
        for (j, (src, mut dst)) in rows.outer_iter().zip(out.outer_iter_mut()).enumerate() {
            let j = j as u64;
            // `span` is at most 129, so the modulo's bias is below 2^-24.
            let dy = (u64::from(draws.bits(3 * j)) % span) as usize;
            let dx = (u64::from(draws.bits(3 * j + 1)) % span) as usize;
            let flip = self.augment.flip && draws.bits(3 * j + 2) & 1 == 1;
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        // Output pixel (y, x) reads the padded image at (y + dy, x' + dx), x'
                        // mirrored when flipped (a crop, then a flip of the crop).
                        let xs = if flip { w - 1 - x } else { x };
                        let (py, px) = (y + dy, xs + dx);
                        let inside = (p..p + h).contains(&py) && (p..p + w).contains(&px);
                        dst[(ch * h + y) * w + x] = if inside {
                            src[(ch * h + py - p) * w + px - p]
                        } else {
                            self.black[ch]
                        };
                    }
                }
            }
        }
        out
    }

    /// The host work of augmenting `rows` examples stored `bits` bits per value.
    pub fn work(&self, rows: usize, bits: u32) -> HostWork {
        let elements = (rows as u64).saturating_mul(self.shape.iter().product::<usize>() as u64);
        HostWork {
            elements,
            bytes: elements.saturating_mul(2 * u64::from(bits)).div_ceil(8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    /// The reference: pad the image with black, cut the window at (dy, dx), mirror it.
    fn reference(
        img: &Array3<f64>,
        black: &[f64],
        p: usize,
        dy: usize,
        dx: usize,
        flip: bool,
    ) -> Vec<f64> {
        let (c, h, w) = img.dim();
        let mut padded = Array3::<f64>::zeros((c, h + 2 * p, w + 2 * p));
        for ch in 0..c {
            padded.index_axis_mut(ndarray::Axis(0), ch).fill(black[ch]);
            for y in 0..h {
                for x in 0..w {
                    padded[(ch, y + p, x + p)] = img[(ch, y, x)];
                }
            }
        }
        let mut out = Vec::new();
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    out.push(padded[(ch, y + dy, xx + dx)]);
                }
            }
        }
        out
    }

    #[test]
    fn crop_and_flip_match_padding_cutting_and_mirroring() {
        let (c, h, w) = (2, 5, 4);
        let black = vec![-1.5, -0.25];
        for (p, flip) in [(0, true), (1, false), (2, true), (3, true)] {
            let aug = Augmentation {
                augment: Augment {
                    crop_padding: p,
                    flip,
                },
                shape: [c, h, w],
                black: black.clone(),
            };
            // 40 images with distinct pixels, and a constant bias feature after each.
            let n = 40;
            let rows = Array2::from_shape_fn((n, c * h * w + 1), |(i, k)| {
                if k == c * h * w {
                    1.0
                } else {
                    (i * 1000 + k) as f64
                }
            });
            let out = aug.apply(rows.view(), 9, 77);
            let draws = RandomStream::new(9, 77);
            let mut flips = 0;
            for i in 0..n {
                let j = i as u64;
                let span = 2 * p as u64 + 1;
                let dy = (u64::from(draws.bits(3 * j)) % span) as usize;
                let dx = (u64::from(draws.bits(3 * j + 1)) % span) as usize;
                let f = flip && draws.bits(3 * j + 2) & 1 == 1;
                flips += usize::from(f);
                let img =
                    Array3::from_shape_fn((c, h, w), |(ch, y, x)| rows[(i, (ch * h + y) * w + x)]);
                let want = reference(&img, &black, p, dy, dx, f);
                assert_eq!(
                    out.row(i).as_slice().unwrap()[..c * h * w],
                    want[..],
                    "p {p} image {i}"
                );
                assert_eq!(out[(i, c * h * w)], 1.0, "the bias feature is left alone");
            }
            if flip {
                assert!((10..=30).contains(&flips), "p {p}: {flips} of {n} flipped");
            } else {
                assert_eq!(flips, 0);
            }
            // The same seed and stream give the same batch; another step another.
            assert_eq!(aug.apply(rows.view(), 9, 77), out);
            if p > 0 {
                assert_ne!(aug.apply(rows.view(), 9, 78), out);
            }
        }
    }

    #[test]
    fn fields_are_checked() {
        let ok = Augment {
            crop_padding: 4,
            flip: true,
        };
        assert!(ok.validate().is_ok());
        let e = Augment {
            crop_padding: 65,
            flip: false,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "augment.crop_padding");
        let e = Augment {
            crop_padding: 0,
            flip: false,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "augment");
        let aug = Augmentation {
            augment: ok,
            shape: [3, 32, 32],
            black: vec![0.0; 3],
        };
        assert_eq!(
            aug.work(2, 8),
            HostWork {
                elements: 6144,
                bytes: 12288
            }
        );
    }
}
