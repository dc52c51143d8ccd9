//! Runtime choice of the instruction set for hot loops.
//!
//! `multiversion!` defines a function that runs an `#[inline(always)]` body compiled once for
//! AVX-512, once for AVX2 + FMA, and once for the build target, and picks the widest the CPU
//! has. The body is inlined into functions compiled with those features, so its loops vectorize
//! for them (a closure passed through a generic trampoline is not reliably inlined, so the body
//! is named, not passed).

/// `multiversion!(name => body, (arg: Type, ...) -> Ret)` defines `fn name(arg: Type, ...) -> Ret`
/// that calls `body` compiled for the widest instruction set available at run time.
macro_rules! multiversion {
    ($vis:vis $name:ident => $body:path, ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,bmi2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
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
            $body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
