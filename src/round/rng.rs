//! Counter-based random bits for stochastic rounding.
//!
//! The bits for element `i` of stream `s` under seed `k` are a pure function of `(k, s, i)`
//! (see ARCHITECTURE.md), so results are bit-identical whatever the thread count or chunking.
//! The generator is two rounds of a 32-bit bijective integer hash with the key injected between
//! rounds; it works on 32-bit lanes so slice kernels vectorize. It is a statistical generator
//! for simulation, not a cryptographic one: `tests/rng.rs` checks its uniformity and
//! independence at fixed seeds.

/// One 32-bit avalanche round (the `lowbias32` constants of Chris Wellons' hash prospector).
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// SplitMix64 finalizer, used once per stream to derive the 32-bit round keys.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A keyed stream of random 32-bit words indexed by element position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomStream {
    k0: u32,
    k1: u32,
    k2: u32,
}

impl RandomStream {
    /// The stream `stream` of the run seeded with `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let a = splitmix64(seed ^ splitmix64(stream));
        let b = splitmix64(a);
        RandomStream {
            k0: a as u32,
            k1: (a >> 32) as u32,
            k2: b as u32,
        }
    }

    /// The random word of element `index`.
    #[inline(always)]
    pub fn bits(&self, index: u64) -> u32 {
        self.bits_keyed(index as u32, self.high_key((index >> 32) as u32))
    }

    /// What the high 32 bits `hi` of an index contribute to the second round: kernels that step
    /// indices in 32-bit lanes compute it once per high half, not once per word.
    #[inline(always)]
    pub fn high_key(&self, hi: u32) -> u32 {
        self.k1 ^ hi.wrapping_mul(0x9e37_79b9)
    }

    /// [`RandomStream::bits`] of the index whose low 32 bits are `lo` and whose high half has
    /// the key [`RandomStream::high_key`].
    #[inline(always)]
    pub fn bits_keyed(&self, lo: u32, high_key: u32) -> u32 {
        mix32(mix32(lo ^ self.k0) ^ high_key) ^ self.k2
    }

    /// A uniform double in `[0, 1)` built from the words of elements `2 index` and `2 index + 1`
    /// (53 random bits), for algorithm-level sampling such as Gaussian noise.
    #[inline]
    pub fn uniform_f64(&self, index: u64) -> f64 {
        let a = u64::from(self.bits(index.wrapping_mul(2)));
        let b = u64::from(self.bits(index.wrapping_mul(2).wrapping_add(1)));
        let x = (a << 21) ^ (b >> 11);
        (x & ((1u64 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw for element `index` (Box–Muller on two uniforms).
    #[inline]
    pub fn normal_f64(&self, index: u64) -> f64 {
        let u1 = self.uniform_f64(index.wrapping_mul(2));
        let u2 = self.uniform_f64(index.wrapping_mul(2).wrapping_add(1));
        // 1 - u1 is in (0, 1], so the logarithm is finite.
        (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
