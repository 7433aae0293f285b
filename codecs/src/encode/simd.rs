//! Run-time instruction-set dispatch for the encoders' element-wise loops (RootSIFT,
//! residual sums, power law, norms).
//!
//! Those loops are plain Rust written so that LLVM vectorises them; the `multiversion!`
//! macro compiles such a function once per instruction set (AVX-512, AVX2+FMA, baseline)
//! and picks one by a run-time [`Level`]. The baseline build is the reference; tests check
//! that the others agree with it.

/// Instruction-set level a closure is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Baseline target features only.
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Level {
    /// The widest level this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Level::Avx2;
            }
        }
        Level::Portable
    }

    /// Every level this CPU supports.
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Self> {
        let mut v = vec![Level::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(Level::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                v.push(Level::Avx512);
            }
        }
        v
    }
}

/// Defines `fn name(level: Level, args...)` that runs `body` compiled for `level`: the
/// body is an `#[inline(always)]` function inlined into one wrapper per instruction set
/// (`#[target_feature]`), so LLVM vectorises it for that set. A level the CPU lacks falls
/// back to the portable build.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name(level: $crate::encode::simd::Level, $($arg: $ty),*) {
            #[inline(always)]
            fn portable($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                portable($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) {
                portable($($arg),*)
            }

            match level {
                $crate::encode::simd::Level::Portable => portable($($arg),*),
                #[cfg(target_arch = "x86_64")]
                $crate::encode::simd::Level::Avx2 => {
                    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                        // SAFETY: the features were detected on this CPU just above.
                        unsafe { avx2($($arg),*) }
                    } else {
                        portable($($arg),*)
                    }
                }
                #[cfg(target_arch = "x86_64")]
                $crate::encode::simd::Level::Avx512 => {
                    if is_x86_feature_detected!("avx512f") {
                        // SAFETY: the feature was detected on this CPU just above.
                        unsafe { avx512($($arg),*) }
                    } else {
                        portable($($arg),*)
                    }
                }
            }
        }
    };
}
pub(crate) use multiversion;
