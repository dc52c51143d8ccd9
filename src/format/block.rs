//! Block formats: the elements of a block (consecutive elements, a row, a column or the whole
//! tensor, see [`BlockSize`]) share one power-of-two scale.
//!
//! Both kinds here follow one rule: the block's shared exponent is
//! `S = floor(log2(max |x|)) - emax_elem`, clamped to the E8M0 range `-127..=127`, and each
//! element stores `x / 2^S` in its element format, saturating at the element's largest value.
//! - `bfp` (QPyTorch's `block_quantize(wl, dim)`): elements are `wl`-bit integers with step
//!   `2^(E - (wl - 2))` and symmetric range `+-(2^(wl-1) - 1)`, that is fixed point
//!   `(wl, fl = wl - 2)` with `emax_elem = 0`.
//! - `mx` (OCP Microscaling v1.0): an E8M0 scale and FP8/FP6/FP4/INT8 elements; `emax_elem` is the
//!   element format's largest exponent (0 for MXINT8, whose elements are fixed `(8, 6)`).
//!
//! An all-zero block gets the smallest scale `2^-127` and zero elements. A block holding a NaN or
//! an infinity gets the NaN scale (code `0xff`) and every element reads NaN, as in the OCP spec.

use crate::format::exact::{exponent, pow2};
use crate::format::qtorch;
use crate::format::{FixedFormat, FloatFormat};
use crate::round::Rounding;

/// How elements are grouped into blocks (of a row-major matrix; a vector is one row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlockSize {
    /// Blocks of this many consecutive elements (the last one may be shorter).
    Elements(usize),
    /// One block per row: per example of an activation `[batch, features]` (QPyTorch `dim=0`
    /// on the same layout).
    Row,
    /// One block per column: per output unit of lpsim's `[in, out]` weights, which is QPyTorch's
    /// `BlockFloatingPoint(wl, dim=0)` on PyTorch's `[out, in]` weight layout (LP-SGLD's
    /// weights). A column's elements are `row_len` apart, so a tensor is quantized whole.
    Col,
    /// One block for the whole tensor (QPyTorch `dim=-1`).
    Tensor,
}

impl std::fmt::Display for BlockSize {
    /// The spelling of the `size=` key: a count, `row`, `col` or `tensor`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockSize::Elements(n) => write!(f, "{n}"),
            BlockSize::Row => f.write_str("row"),
            BlockSize::Col => f.write_str("col"),
            BlockSize::Tensor => f.write_str("tensor"),
        }
    }
}

/// Where a block's elements sit in its tensor: element `i` of the block is element
/// `start + i * stride` of the tensor (`stride` 1 for consecutive blocks, the row length for
/// columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPos {
    /// Index of the block's first element.
    pub start: usize,
    /// Distance between consecutive elements of the block.
    pub stride: usize,
}

impl BlockPos {
    /// The tensor index of the block's element `i`.
    #[inline]
    pub fn index(&self, i: usize) -> usize {
        self.start + i * self.stride
    }
}

/// The per-element format of a block format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// Floating-point elements (MXFP8/6/4); conversion saturates.
    Float(FloatFormat),
    /// Integer elements scaled to fixed point (bfp, MXINT8); symmetric and saturating.
    Fixed(FixedFormat),
}

impl Element {
    /// Width of one element in bits.
    pub fn bits(&self) -> u32 {
        match self {
            Element::Float(f) => f.bits(),
            Element::Fixed(f) => f.bits(),
        }
    }

    /// Quantize an already scaled value.
    #[inline]
    fn quantize(&self, x: f64, rounding: Rounding, random: u32) -> f64 {
        match self {
            Element::Float(f) => f.quantize(x, rounding, random),
            Element::Fixed(f) => f.quantize(x, rounding, random),
        }
    }

    /// The bit pattern of a representable element value.
    pub fn encode(&self, v: f64) -> u64 {
        match self {
            Element::Float(f) => f.encode(v),
            Element::Fixed(f) => f.encode(v),
        }
    }

    /// The value of an element bit pattern.
    pub fn decode(&self, code: u64) -> f64 {
        match self {
            Element::Float(f) => f.decode(code),
            Element::Fixed(f) => f.decode(code),
        }
    }
}

/// Which convention named the block format (for display and the scale's meaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlockKind {
    /// QPyTorch-style block floating point.
    Bfp,
    /// `bfp` rounded as QPyTorch's CPU kernel rounds it (`qtorch::quantize_block`).
    QBfp,
    /// OCP Microscaling.
    Mx,
}

/// A block format: element format, block grouping and the largest element exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockFormat {
    kind: BlockKind,
    element: Element,
    size: BlockSize,
    emax_elem: i32,
}

/// The E8M0 code of the NaN scale.
pub const SCALE_NAN_CODE: u8 = 0xff;
/// The smallest and largest shared exponent an E8M0 scale holds.
pub const SCALE_EXP_RANGE: (i32, i32) = (-127, 127);

impl BlockFormat {
    /// QPyTorch block floating point with `wl`-bit elements (2..=32).
    pub fn bfp(wl: u32, size: BlockSize) -> Result<Self, String> {
        if !(2..=32).contains(&wl) {
            return Err(format!("wl = {wl}: must be 2..=32"));
        }
        let element = FixedFormat::new(wl, wl as i32 - 2, true, true, true)?;
        Self::checked(BlockKind::Bfp, Element::Fixed(element), size, 0)
    }

    /// `bfp` with QPyTorch's rounding (`qbfp`), `wl` in 2..=22: its bit arithmetic keeps `wl`
    /// bits of an `f32` fraction field, undefined from 23 on.
    pub fn qbfp(wl: u32, size: BlockSize) -> Result<Self, String> {
        if !(2..=22).contains(&wl) {
            return Err(format!("wl = {wl}: must be 2..=22 for qbfp"));
        }
        Ok(BlockFormat {
            kind: BlockKind::QBfp,
            ..Self::bfp(wl, size)?
        })
    }

    /// OCP Microscaling with the given element format (saturating conversion is forced).
    pub fn mx(element: Element, size: BlockSize) -> Result<Self, String> {
        let (element, emax_elem) = match element {
            Element::Float(f) => {
                let sat = FloatFormat::new(
                    f.exp_bits(),
                    f.man_bits(),
                    Some(f.bias()),
                    f.subnormals(),
                    f.special(),
                    true,
                    f.signed(),
                    f.has_zero(),
                )?;
                (Element::Float(sat), sat.limits().emax)
            }
            Element::Fixed(x) => {
                // An integer element with fl fraction bits holds magnitudes below 2^(wl-1-fl).
                (Element::Fixed(x), x.wl() as i32 - 2 - x.fl())
            }
        };
        Self::checked(BlockKind::Mx, element, size, emax_elem)
    }

    fn checked(
        kind: BlockKind,
        element: Element,
        size: BlockSize,
        emax_elem: i32,
    ) -> Result<Self, String> {
        if size == BlockSize::Elements(0) {
            return Err("size = 0: must be at least 1 (or `row`, `col`, `tensor`)".into());
        }
        Ok(BlockFormat {
            kind,
            element,
            size,
            emax_elem,
        })
    }

    /// The naming convention.
    pub fn kind(&self) -> BlockKind {
        self.kind
    }
    /// The element format.
    pub fn element(&self) -> Element {
        self.element
    }
    /// The block grouping.
    pub fn size(&self) -> BlockSize {
        self.size
    }
    /// Width of one element in bits (the shared scale is 8 more bits per block).
    pub fn bits(&self) -> u32 {
        self.element.bits()
    }
    /// The exponent subtracted from `floor(log2 max|x|)` to form the shared exponent.
    pub fn emax_elem(&self) -> i32 {
        self.emax_elem
    }

    /// Length of the consecutive pieces a tensor of `len` elements whose rows have `row_len`
    /// elements can be cut into without splitting a block: the block length, or the whole
    /// tensor for `size=col` (whose blocks interleave).
    pub fn block_len(&self, len: usize, row_len: usize) -> usize {
        match self.size {
            BlockSize::Elements(n) => n,
            BlockSize::Row => row_len.max(1),
            BlockSize::Col | BlockSize::Tensor => len.max(1),
        }
    }

    /// Number of blocks (shared scales) of a tensor of `len` elements with rows of `row_len`.
    pub fn block_count(&self, len: usize, row_len: usize) -> usize {
        match self.size {
            BlockSize::Elements(n) => len.div_ceil(n),
            BlockSize::Row => len.div_ceil(row_len.max(1)),
            BlockSize::Col => row_len.clamp(1, len.max(1)),
            BlockSize::Tensor => 1,
        }
        .max(1)
    }

    /// The block holding element `i` of a tensor of `len` elements with rows of `row_len`
    /// (blocks numbered in order of their first element).
    pub fn block_of(&self, i: usize, len: usize, row_len: usize) -> usize {
        match self.size {
            BlockSize::Col => i % self.block_count(len, row_len),
            _ => i / self.block_len(len, row_len),
        }
    }

    /// Whether rows picked from a tensor of this format (rows of `row_len` elements) are again
    /// a value of the format, so a mini-batch gathered from stored data needs no re-blocking: no
    /// block spans two rows (`size=row`, or `size=N` with `N` dividing the row), or the blocks
    /// are integer grids per column or per tensor, whose shared exponent over fewer rows can only
    /// shrink, which keeps every integer element in range on a finer grid. (Float elements of
    /// a column or tensor block are not closed: an element `1.875 x 2^7` of `e4m3fn` becomes
    /// `1.875 x 2^8`, past the largest value, when the picked rows' exponent is one lower.)
    pub fn rows_stay_values(&self, row_len: usize) -> bool {
        match self.size {
            BlockSize::Row => true,
            BlockSize::Elements(n) => row_len % n == 0,
            BlockSize::Col | BlockSize::Tensor => matches!(self.element, Element::Fixed(_)),
        }
    }

    /// Call `f(block, out, pos)` on every block of `input` (with rows of `row_len`) and its
    /// place in `out`: consecutive blocks as slices of the two, column blocks copied out and
    /// back. `pos` maps the block's element `i` to its index in `input`.
    pub fn for_each_block(
        &self,
        input: &[f64],
        out: &mut [f64],
        row_len: usize,
        mut f: impl FnMut(&[f64], &mut [f64], BlockPos),
    ) {
        if self.size == BlockSize::Col {
            let cols = self.block_count(input.len(), row_len);
            let (mut bi, mut bo) = (Vec::new(), Vec::new());
            for c in 0..cols.min(input.len()) {
                bi.clear();
                bi.extend(input.iter().skip(c).step_by(cols));
                bo.clear();
                bo.resize(bi.len(), 0.0);
                f(
                    &bi,
                    &mut bo,
                    BlockPos {
                        start: c,
                        stride: cols,
                    },
                );
                for (o, &v) in out.iter_mut().skip(c).step_by(cols).zip(&bo) {
                    *o = v;
                }
            }
            return;
        }
        let n = self.block_len(input.len(), row_len);
        for (j, (ib, ob)) in input.chunks(n).zip(out.chunks_mut(n)).enumerate() {
            f(
                ib,
                ob,
                BlockPos {
                    start: j * n,
                    stride: 1,
                },
            );
        }
    }

    /// The shared exponent of one block, or `None` for a block holding NaN or infinity.
    pub fn shared_exponent(&self, block: impl Iterator<Item = f64>) -> Option<i32> {
        let mut amax = 0.0f64;
        for x in block {
            if !x.is_finite() {
                return None;
            }
            amax = amax.max(x.abs());
        }
        let (lo, hi) = SCALE_EXP_RANGE;
        if amax == 0.0 {
            return Some(lo);
        }
        Some((exponent(amax) - self.emax_elem).clamp(lo, hi))
    }

    /// Quantize one block: `out[i]` gets the carrier value of `block[i]`, `random(i)` is the
    /// random word of element `i`. Returns the E8M0 scale code.
    #[inline]
    pub fn quantize_block(
        &self,
        block: &[f64],
        out: &mut [f64],
        rounding: Rounding,
        random: impl Fn(usize) -> u32,
    ) -> u8 {
        if self.kind == BlockKind::QBfp {
            return qtorch::quantize_block(self.bits(), block, out, rounding, random);
        }
        match self.shared_exponent(block.iter().copied()) {
            None => {
                out.iter_mut().for_each(|o| *o = f64::NAN);
                SCALE_NAN_CODE
            }
            Some(s) => {
                let (up, down) = (pow2(-s), pow2(s));
                for (i, (o, &x)) in out.iter_mut().zip(block).enumerate() {
                    *o = self.element.quantize(x * up, rounding, random(i)) * down;
                }
                (s + 127) as u8
            }
        }
    }

    /// The element code of a quantized carrier value in a block with the given scale code.
    pub fn encode_element(&self, v: f64, scale_code: u8) -> u64 {
        if scale_code == SCALE_NAN_CODE {
            return 0;
        }
        self.element.encode(v * pow2(127 - i32::from(scale_code)))
    }

    /// The value of an element code in a block with the given scale code.
    pub fn decode_element(&self, code: u64, scale_code: u8) -> f64 {
        if scale_code == SCALE_NAN_CODE {
            return f64::NAN;
        }
        self.element.decode(code) * pow2(i32::from(scale_code) - 127)
    }
}
