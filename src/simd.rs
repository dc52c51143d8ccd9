//! Runtime choice of the instruction set for hot loops.
//!
//! `multiversion!` defines a function that runs an `#[inline(always)]` body compiled once for
//! AVX-512, once for AVX2 + FMA, and once for the build target, and picks the widest the CPU
//! has. The body is inlined into functions compiled with those features, so its loops vectorize
//! for them (a closure passed through a generic trampoline is not reliably inlined, so the body
//! is named, not passed). A body written `body::<isa>` is generic over [`Isa`] and gets the type
//! of the instruction set it is compiled for, for what the compiler does not generate on its
//! own (non-temporal stores).

/// Floats in one 64-byte cache line.
pub(crate) const LINE: usize = 16;

/// Operations a multiversioned body needs spelled out for the instruction set it runs on.
pub(crate) trait Isa {
    /// Write `v` to the cache line at `dst` with non-temporal stores (the line is not read
    /// into the cache first).
    ///
    /// # Safety
    /// `dst` is valid for `LINE` `f32` writes and 64-byte aligned, and the CPU has the
    /// instruction set `Self` stands for.
    unsafe fn stream_line(dst: *mut f32, v: &[f32; LINE]);

    /// Order earlier non-temporal stores before later stores (so another thread reading the
    /// output after this one is done sees them).
    fn store_fence() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of the x86_64 baseline; a fence has no other precondition.
        unsafe {
            std::arch::x86_64::_mm_sfence()
        };
    }
}

/// Ask for the cache line holding `p` to be loaded into the cache ahead of use. Any address is
/// allowed (a prefetch never faults), so `p` may point past the end of a slice.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch does not access memory in a
    // way that can fault or be observed.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The AVX-512 and AVX2 bodies: 256-bit VEX stores (the 512-bit store intrinsics need a newer
/// compiler than the crate's minimum; a line is still written whole, in two halves).
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx;

#[cfg(target_arch = "x86_64")]
impl Isa for Avx {
    #[inline]
    #[target_feature(enable = "avx")]
    unsafe fn stream_line(dst: *mut f32, v: &[f32; LINE]) {
        use std::arch::x86_64::{_mm256_loadu_ps, _mm256_stream_ps};
        // SAFETY: the caller guarantees an aligned, writable line and AVX; both halves are
        // 32-byte aligned and `v` is LINE readable floats.
        unsafe {
            _mm256_stream_ps(dst, _mm256_loadu_ps(v.as_ptr()));
            _mm256_stream_ps(dst.add(8), _mm256_loadu_ps(v.as_ptr().add(8)));
        }
    }
}

/// The build target's own instruction set.
pub(crate) struct Baseline;

impl Isa for Baseline {
    #[inline(always)]
    unsafe fn stream_line(dst: *mut f32, v: &[f32; LINE]) {
        #[cfg(target_arch = "x86_64")]
        for k in (0..LINE).step_by(4) {
            // SAFETY: the caller guarantees LINE writable floats at a 64-byte aligned `dst`, so
            // every quarter is 16-byte aligned; SSE is part of the x86_64 baseline (this body
            // runs only where AVX2 is missing, so its legacy encoding mixes with nothing).
            unsafe {
                use std::arch::x86_64::{_mm_loadu_ps, _mm_stream_ps};
                _mm_stream_ps(dst.add(k), _mm_loadu_ps(v.as_ptr().add(k)));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: the caller guarantees LINE writable floats at `dst`.
        unsafe {
            std::ptr::copy_nonoverlapping(v.as_ptr(), dst, LINE)
        };
    }
}

/// `multiversion!(name => body, (arg: Type, ...) -> Ret)` defines `fn name(arg: Type, ...) -> Ret`
/// that calls `body` compiled for the widest instruction set available at run time;
/// `multiversion!(name => body::<isa>, ...)` also passes that instruction set's [`Isa`] type.
macro_rules! multiversion {
    (@dispatch $vis:vis $name:ident, $avx512:path, $avx2:path, $base:path,
        ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)?) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $avx512($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,bmi2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $avx2($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                {
                    // SAFETY: the CPU supports every feature the function is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("bmi2")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $base($($arg),*)
        }
    };
    ($vis:vis $name:ident => $body:ident::<isa>, ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {
        $crate::simd::multiversion!(@dispatch $vis $name,
            $body::<$crate::simd::Avx>, $body::<$crate::simd::Avx>,
            $body::<$crate::simd::Baseline>, ($($arg: $ty),*) $(-> $ret)?);
    };
    ($vis:vis $name:ident => $body:path, ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {
        $crate::simd::multiversion!(@dispatch $vis $name, $body, $body, $body,
            ($($arg: $ty),*) $(-> $ret)?);
    };
}

pub(crate) use multiversion;
