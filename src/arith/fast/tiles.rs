//! The register tiles of the sequential and chunked fast paths (see the parent module): `TR x
//! TC` outputs per tile, every `k` in order, rows split among threads; and the pairwise order
//! for narrow accumulators, vectorized across columns.

use super::*;
use std::borrow::Cow;

/// Output rows per register tile.
pub(super) const TR: usize = 4;
/// Output columns per register tile.
pub(super) const TC: usize = 32;
/// Lanes a stochastic tile checks for exact sums at once (one AVX-512 vector of `f32`); divides
/// [`TC`].
pub(super) const EXACT_GROUP: usize = 16;

/// Tile width of a GEMM with one output column (a matrix-vector product: a tile of [`TC`]
/// lanes would compute 31 padded ones).
pub(super) const TC_ONE: usize = 1;
/// Tile width of a GEMM with at most 16 output columns (a classifier's ten).
pub(super) const TC_NARROW: usize = 16;

/// The `W` values of a row of `B` from `j0`, read as an array of fixed size: vector loads, where
/// a slice copy may become a `memcpy` call that makes the tile spill its accumulators around it.
/// Rows are padded with zeros to a whole number of tiles ([`Job::ldb`]), so every read is full:
/// a zero column multiplies to zero and never overflows, so padded lanes change nothing kept.
#[inline(always)]
pub(super) fn load_tile_row<T: Copy + Default, const W: usize>(row: &[T], j0: usize) -> [T; W] {
    let mut t = [T::default(); W];
    if let Some(full) = row.get(j0..j0 + W) {
        t.copy_from_slice(full);
    }
    t
}

/// The tile width of an output `n` columns wide: [`TC_ONE`], [`TC_NARROW`] or [`TC`].
pub(super) fn tile_width(n: usize) -> usize {
    match n {
        TC_ONE => TC_ONE,
        n if n <= TC_NARROW => TC_NARROW,
        _ => TC,
    }
}

/// What every tile of one GEMM shares.
pub(super) struct Job<'a, T> {
    /// Chunk length (`usize::MAX` for sequential order).
    pub(super) chunk: usize,
    /// `A` from the block's first row: its rows (`K` each), or with `lda` its columns (the
    /// block's element `(r, t)` at `a[t * lda + r]`: a column-major `A`, as a weight
    /// gradient's `X^T`, read in place; transposing it first cost as much as the GEMM).
    pub(super) a: &'a [T],
    /// The stride of a column-major `A`'s columns (its `M`), or `None` for row-major.
    pub(super) lda: Option<usize>,
    /// `K`.
    pub(super) k: usize,
    /// `B`, `K x N`, row-major, each row padded with zeros to `ldb` values.
    pub(super) bt: &'a [T],
    /// `N`.
    pub(super) n: usize,
    /// The stride of `bt`'s rows: `N` rounded up to a whole number of tiles ([`tile_width`]).
    pub(super) ldb: usize,
    /// Global index of the block's first row (for the random words).
    pub(super) row0: usize,
    /// The random stream of stochastic accumulator rounding.
    pub(super) stream: RandomStream,
}

impl<T> Job<'_, T> {
    /// Where the random words of the outputs of a tile start ([`MacConfig::random_index`]):
    /// per output the low half of its first index, the high-half key
    /// ([`RandomStream::high_key`]) and how a carry into the high half changes it, each kind in
    /// its own array so the tile loads them as vectors. Stepping to word `r` is then a 32-bit
    /// add and a mask (`r` fits 32 bits, checked by [`per_add`]).
    #[inline(always)]
    pub(super) fn first_words<const W: usize>(&self, j0: usize) -> [[[u32; W]; TR]; 3] {
        let [mut lo, mut key, mut delta] = [[[0u32; W]; TR]; 3];
        for (r, ((lo, key), delta)) in lo.iter_mut().zip(&mut key).zip(&mut delta).enumerate() {
            for (j, ((lo, key), delta)) in lo.iter_mut().zip(key).zip(delta).enumerate() {
                let o = ((self.row0 + r) * self.n + j0 + j) as u64;
                let index = MacConfig::random_index(o, self.k, 0);
                let hi = (index >> 32) as u32;
                *lo = index as u32;
                *key = self.stream.high_key(hi);
                *delta = *key ^ self.stream.high_key(hi.wrapping_add(1));
            }
        }
        [lo, key, delta]
    }
}

/// The random word of rounding `r` of an output whose words start at low half `lo` with
/// high-half key `key`, and `key ^ carry_delta` after a carry ([`Job::first_words`]).
#[inline(always)]
pub(super) fn word(stream: &RandomStream, lo: u32, key: u32, carry_delta: u32, r: u32) -> u32 {
    let at = lo.wrapping_add(r);
    // A mask rather than a select of two arrays, which the compiler may turn into a gather.
    let carried = 0u32.wrapping_sub(u32::from(at < lo));
    stream.bits_keyed(at, key ^ (carry_delta & carried))
}

/// One `TR x W` tile of outputs (columns from `j0`) in sequential or chunked order: every `k`
/// in order updates the whole tile, so each output still sees exactly `acc = round(acc + p_k)`
/// for `k = 0..K` (chunked: inside each chunk from `+0`, then `round(total + chunk)`). With
/// `COUNT` the overflow events are counted with the exact checked steps; without, the checks
/// compile away.
#[inline(always)]
pub(super) fn tile<U: Unit, const COUNT: bool, const W: usize, const COL_MAJOR: bool>(
    unit: &U,
    job: &Job<'_, U::T>,
    rows: usize,
    j0: usize,
) -> ([[U::T; W]; TR], u64) {
    let (k, chunk, lda) = (job.k, job.chunk, job.lda.unwrap_or(0));
    // Lanes checked for exact sums together (a whole narrow tile).
    let group = W.min(EXACT_GROUP);
    let mut over = [[0u32; W]; TR];
    let mut acc = [[U::T::default(); W]; TR];
    let [lo, key, carry_delta] = if U::STOCHASTIC {
        job.first_words(j0)
    } else {
        [[[0; W]; TR]; 3]
    };
    // The random word of rounding `slot` of tile output (r, j); none for deterministic units.
    let word_of = |r: usize, j: usize, slot: usize| {
        if U::STOCHASTIC {
            word(
                &job.stream,
                lo[r][j],
                key[r][j],
                carry_delta[r][j],
                slot as u32,
            )
        } else {
            0
        }
    };
    let mut kk = 0;
    while kk < k {
        let end = k.min(kk.saturating_add(chunk));
        let mut part = [[U::T::default(); W]; TR];
        for t in kk..end {
            let b = load_tile_row::<_, W>(&job.bt[t * job.ldb..(t + 1) * job.ldb], j0);
            for r in 0..TR {
                let x = if r >= rows {
                    U::T::default()
                } else if COL_MAJOR {
                    job.a[t * lda + r]
                } else {
                    job.a[r * k + t]
                };
                for g in (0..W).step_by(group) {
                    if U::STOCHASTIC && !COUNT {
                        let mut sums = [U::T::default(); EXACT_GROUP];
                        let mut exact = true;
                        for (l, s) in sums[..group].iter_mut().enumerate() {
                            let (v, e) = unit.mac_exact(part[r][g + l], x, b[g + l]);
                            *s = v;
                            exact &= e;
                        }
                        if exact {
                            part[r][g..g + group].copy_from_slice(&sums[..group]);
                            continue;
                        }
                    }
                    for j in g..g + group {
                        let w = word_of(r, j, t);
                        let (v, o) = if COUNT {
                            unit.mac_checked(part[r][j], x, b[j], w)
                        } else {
                            unit.mac(part[r][j], x, b[j], w)
                        };
                        part[r][j] = v;
                        if COUNT {
                            over[r][j] += u32::from(o);
                        }
                    }
                }
            }
        }
        if chunk == usize::MAX {
            acc = part;
        } else {
            let slot = k + kk / chunk;
            for r in 0..TR {
                for j in 0..W {
                    let w = word_of(r, j, slot);
                    let (v, o) = if COUNT {
                        unit.add_checked(acc[r][j], part[r][j], w)
                    } else {
                        unit.add(acc[r][j], part[r][j], w)
                    };
                    acc[r][j] = v;
                    if COUNT {
                        over[r][j] += u32::from(o);
                    }
                }
            }
        }
        kk = end;
    }
    (acc, over.iter().flatten().map(|&o| u64::from(o)).sum())
}

/// One block of up to `TR` output rows, register-tiled. Overflows are rare, so each tile first
/// runs without counting them; where the unit's overflow is sticky (infinity or NaN stays) a tile
/// whose outputs are all finite had none, and only the others run again, counting.
/// Returns the overflow events.
/// Tiles [`TC`] columns wide, or as narrow as the output (the same values: each output's
/// sums and random words do not depend on the tile).
#[inline(always)]
pub(super) fn tile_rows<U: Unit, O: Out>(unit: &U, job: &Job<'_, U::T>, out: &mut [O]) -> u64 {
    match tile_width(job.n) {
        TC_ONE => tile_cols::<U, TC_ONE, O>(unit, job, out),
        TC_NARROW => tile_cols::<U, TC_NARROW, O>(unit, job, out),
        _ => tile_cols::<U, TC, O>(unit, job, out),
    }
}

/// The carrier the tiles write their outputs in: `f64`, or `f32` for the units whose
/// accumulators are `f32` values (the executor's `f32` carrier; [`Tiles`]).
pub(super) trait Out: Copy + Default + Send + Sync {
    /// An output (an accumulator value as `f64`) in this carrier.
    fn of(x: f64) -> Self;
}

impl Out for f64 {
    fn of(x: f64) -> f64 {
        x
    }
}

impl Out for f32 {
    /// Exact for the units it is used with, whose accumulators are `f32` values.
    fn of(x: f64) -> f32 {
        x as f32
    }
}

/// The multiversioned tiles of the units with `f32` lanes, writing outputs in `Self`.
pub(super) trait Tiles: Out {
    /// [`tile_rows`] of [`F32Fma`].
    const F32_FMA: TileRows<F32Fma, Self>;
    /// [`tile_rows`] of [`F32MulAdd`].
    const F32_MUL_ADD: TileRows<F32MulAdd, Self>;
    /// [`tile_rows`] of [`NarrowF32`].
    const NARROW_F32: TileRows<NarrowF32, Self>;
    /// [`tile_rows`] of [`SrF32`].
    const SR_F32: TileRows<SrF32, Self>;
}

impl Tiles for f64 {
    const F32_FMA: TileRows<F32Fma, f64> = tile_f32_fma;
    const F32_MUL_ADD: TileRows<F32MulAdd, f64> = tile_f32_mul_add;
    const NARROW_F32: TileRows<NarrowF32, f64> = tile_narrow_f32;
    const SR_F32: TileRows<SrF32, f64> = tile_sr_f32;
}

impl Tiles for f32 {
    const F32_FMA: TileRows<F32Fma, f32> = tile_f32_fma_32;
    const F32_MUL_ADD: TileRows<F32MulAdd, f32> = tile_f32_mul_add_32;
    const NARROW_F32: TileRows<NarrowF32, f32> = tile_narrow_f32_32;
    const SR_F32: TileRows<SrF32, f32> = tile_sr_f32_32;
}

/// [`tile_rows`] with tiles `W` columns wide.
#[inline(always)]
pub(super) fn tile_cols<U: Unit, const W: usize, O: Out>(
    unit: &U,
    job: &Job<'_, U::T>,
    out: &mut [O],
) -> u64 {
    let n = job.n;
    let rows = out.len() / n.max(1);
    let mut events = 0;
    for j0 in (0..n).step_by(W) {
        let w = W.min(n - j0);
        let (mut acc, _) = tile_of::<U, false, W>(unit, job, rows, j0);
        // Branch-free (a short-circuiting `all` does not vectorize and cost a third of a
        // 4 x 32 tile over K = 64).
        let clean = unit.sticky_overflow()
            && acc[..rows].iter().fold(true, |ok, row| {
                ok & row[..w]
                    .iter()
                    .fold(true, |ok, &v| ok & U::output(v).is_finite())
            });
        if !clean {
            let (counted, e) = tile_of::<U, true, W>(unit, job, rows, j0);
            acc = counted;
            events += e;
        }
        for (r, row) in acc.iter().enumerate().take(rows) {
            for (o, &v) in out[r * n + j0..r * n + j0 + w].iter_mut().zip(row) {
                *o = O::of(U::output(v));
            }
        }
    }
    events
}

/// [`tile`] for `job`'s layout of `A` (row- or column-major, each a loop of its own: a stride
/// read at run time in the shared loop made the row-major tiles 40 % slower).
#[inline(always)]
fn tile_of<U: Unit, const COUNT: bool, const W: usize>(
    unit: &U,
    job: &Job<'_, U::T>,
    rows: usize,
    j0: usize,
) -> ([[U::T; W]; TR], u64) {
    if job.lda.is_some() {
        tile::<U, COUNT, W, true>(unit, job, rows, j0)
    } else {
        tile::<U, COUNT, W, false>(unit, job, rows, j0)
    }
}

/// A multiversioned [`tile_rows`] for one unit.
pub(super) type TileRows<U, O> = fn(&U, &Job<'_, <U as Unit>::T>, &mut [O]) -> u64;

/// Sequential or chunked order over all rows, `TR` rows per parallel task, each task compiled
/// for the widest instruction set available.
pub(super) fn rows<U: Unit, O: Out>(
    unit: U,
    order: Order,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    stream: &RandomStream,
    block: TileRows<U, O>,
) -> (Array2<O>, u64) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    // Through a slice in memory order (an iterator over a 2-D array steps index by index); a
    // column-major `A` (a transposed view, as a weight gradient's `X^T`) stays column-major
    // and the tiles read it in place (`Job::lda`).
    // `f32` carriers borrow the operand as it is ([`Carrier::inputs`]).
    let a_t = a.t();
    let standard;
    let (at, lda) = match (a.as_slice(), a_t.as_slice()) {
        (Some(src), _) => (U::T::inputs(src), None),
        (None, Some(src)) => (U::T::inputs(src), Some(m)),
        (None, None) => {
            standard = a.as_standard_layout();
            (U::T::inputs(standard.as_slice().expect("standard")), None)
        }
    };
    let mut c = Array2::<O>::default((a.nrows(), n));
    if n == 0 {
        return (c, 0);
    }
    // `B`'s rows padded to whole tiles, so that every tile row is one full load; through a
    // slice where `B` is one (a row view per row costs more than a short row's copy), borrowed
    // where it needs no padding and is already the carrier.
    let ldb = n.div_ceil(tile_width(n)) * tile_width(n);
    let bt: Cow<'_, [U::T]> = match b.as_slice() {
        Some(src) if ldb == n => U::T::inputs(src),
        _ => {
            let mut bt = vec![U::T::default(); k * ldb];
            fn fill<'a, T: Carrier>(dst: &mut [T], row: impl Iterator<Item = &'a f32>) {
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = T::input(v);
                }
            }
            let rows = bt.chunks_exact_mut(ldb);
            match b.as_slice() {
                Some(src) => rows
                    .zip(src.chunks_exact(n))
                    .for_each(|(dst, row)| fill(dst, row.iter())),
                None => rows
                    .zip(b.outer_iter())
                    .for_each(|(dst, row)| fill(dst, row.iter())),
            }
            Cow::Owned(bt)
        }
    };
    let chunk = match order {
        Order::Chunk(c) => c,
        _ => usize::MAX,
    };
    let over = c
        .as_slice_mut()
        .expect("a new array is contiguous")
        .par_chunks_mut(TR * n)
        .with_min_len(super::super::min_rows(TR * n * k))
        .enumerate()
        .map(|(blk, out)| {
            let (r0, rows) = (blk * TR, out.len() / n);
            let a = match lda {
                Some(_) => &at[r0..],
                None => &at[r0 * k..(r0 + rows) * k],
            };
            let job = Job {
                chunk,
                a,
                lda,
                k,
                bt: &bt,
                n,
                ldb,
                row0: blk * TR,
                stream: *stream,
            };
            block(&unit, &job, out)
        })
        .sum();
    (c, over)
}

multiversion!(pub(super) tile_f32_fma => tile_rows::<F32Fma, f64>, (unit: &F32Fma, job: &Job<'_, f32>, out: &mut [f64]) -> u64);
multiversion!(pub(super) tile_f32_mul_add => tile_rows::<F32MulAdd, f64>, (unit: &F32MulAdd, job: &Job<'_, f32>, out: &mut [f64]) -> u64);
multiversion!(pub(super) tile_narrow_f32 => tile_rows::<NarrowF32, f64>, (unit: &NarrowF32, job: &Job<'_, f32>, out: &mut [f64]) -> u64);
multiversion!(pub(super) tile_sr_f32 => tile_rows::<SrF32, f64>, (unit: &SrF32, job: &Job<'_, f32>, out: &mut [f64]) -> u64);
multiversion!(pub(super) tile_narrow => tile_rows::<Narrow, f64>, (unit: &Narrow, job: &Job<'_, f64>, out: &mut [f64]) -> u64);
multiversion!(tile_f32_fma_32 => tile_rows::<F32Fma, f32>, (unit: &F32Fma, job: &Job<'_, f32>, out: &mut [f32]) -> u64);
multiversion!(tile_f32_mul_add_32 => tile_rows::<F32MulAdd, f32>, (unit: &F32MulAdd, job: &Job<'_, f32>, out: &mut [f32]) -> u64);
multiversion!(tile_narrow_f32_32 => tile_rows::<NarrowF32, f32>, (unit: &NarrowF32, job: &Job<'_, f32>, out: &mut [f32]) -> u64);
multiversion!(tile_sr_f32_32 => tile_rows::<SrF32, f32>, (unit: &SrF32, job: &Job<'_, f32>, out: &mut [f32]) -> u64);

/// Pairwise order for a narrow float accumulator: the tree's levels, vectorized across columns.
pub(super) fn pairwise_rows(
    unit: Narrow,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
) -> (Array2<f64>, u64) {
    let bt = b.mapv(f64::from).as_standard_layout().into_owned();
    let mut c = Array2::<f64>::zeros((a.nrows(), b.ncols()));
    let over = c
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(a.axis_iter(Axis(0)))
        .with_min_len(super::super::min_rows(b.ncols() * a.ncols()))
        .map(|(mut out, ai)| {
            let out = out.as_slice_mut().expect("standard layout");
            pairwise_row(&unit, &ai, &bt, out)
        })
        .sum();
    (c, over)
}

/// One output row of [`pairwise_rows`]: the products of row `ai` of `A` with `B`, then the
/// levels of the tree, each level one vectorizable pass over the columns. Returns the overflow
/// events.
#[inline(always)]
pub(super) fn pairwise_row_portable(
    unit: &Narrow,
    ai: &ndarray::ArrayView1<f32>,
    bt: &Array2<f64>,
    out: &mut [f64],
) -> u64 {
    let (k, n) = (ai.len(), bt.ncols());
    let mut buf = vec![0.0f64; k * n];
    for (kk, (row, &x)) in buf.chunks_mut(n.max(1)).zip(ai).enumerate() {
        for (p, &y) in row.iter_mut().zip(bt.row(kk)) {
            *p = unit.product(f64::from(x), y);
        }
    }
    let mut over = 0u64;
    if k == 1 {
        for p in buf.iter_mut() {
            let (v, o) = unit.acc.round(*p);
            *p = v;
            over += u64::from(o);
        }
    }
    let mut len = k;
    while len > 1 {
        let half = len / 2;
        for t in 0..half {
            let (lo, hi) = buf.split_at_mut((2 * t) * n);
            let (pair, _) = hi.split_at_mut(2 * n);
            let (x, y) = pair.split_at_mut(n);
            for (xv, &yv) in x.iter_mut().zip(y.iter()) {
                let (v, o) = unit.acc.add(*xv, yv);
                *xv = v;
                over += u64::from(o);
            }
            if t > 0 {
                lo[t * n..(t + 1) * n].copy_from_slice(x);
            }
        }
        if len % 2 == 1 {
            buf.copy_within((len - 1) * n..len * n, half * n);
        }
        len = len.div_ceil(2);
    }
    if k > 0 {
        out.copy_from_slice(&buf[..n]);
    }
    over
}

multiversion!(pub(super) pairwise_row => pairwise_row_portable, (unit: &Narrow, ai: &ndarray::ArrayView1<f32>, bt: &Array2<f64>, out: &mut [f64]) -> u64);
