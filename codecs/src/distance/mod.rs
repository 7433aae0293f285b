//! Distance kernels: squared L2 and inner product on `f32` slices, on `u8` vectors against
//! `f32`, and exact squared L2 between `u8` vectors.
//!
//! Every kernel has a portable scalar version ([`scalar`]) and SIMD versions: AVX2+FMA and
//! AVX-512 on x86-64, NEON on aarch64. The fastest path this CPU supports is picked once,
//! at first use, into a [`Kernels`] table of function pointers ([`kernels`]); the free
//! functions ([`l2_sqr`], [`inner_product`], ...) dispatch through it. Hot loops should
//! fetch `kernels()` once and call its fields directly. [`available`] lists every path the
//! CPU supports, so tests and benches can compare each against scalar.
//!
//! Lengths: callers pass slices of equal length. In release builds a mismatch is not an
//! error; only the common prefix is read (debug builds assert).

pub mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

use std::sync::OnceLock;

/// One implementation of every distance kernel. Obtain it from [`kernels`] or
/// [`available`]; every table handed out only holds paths this CPU supports.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// Path name: `"scalar"`, `"avx2"`, `"avx512"` or `"neon"`.
    pub name: &'static str,
    /// Squared Euclidean distance of two `f32` vectors.
    pub l2_sqr: fn(&[f32], &[f32]) -> f32,
    /// Inner product of two `f32` vectors.
    pub inner_product: fn(&[f32], &[f32]) -> f32,
    /// Squared Euclidean distance of a `u8` vector and an `f32` vector.
    pub l2_sqr_u8_f32: fn(&[u8], &[f32]) -> f32,
    /// Inner product of a `u8` vector and an `f32` vector.
    pub inner_product_u8_f32: fn(&[u8], &[f32]) -> f32,
    /// Exact (integer) squared Euclidean distance of two `u8` vectors.
    pub l2_sqr_u8: fn(&[u8], &[u8]) -> f32,
}

const SCALAR: Kernels = Kernels {
    name: "scalar",
    l2_sqr: scalar::l2_sqr,
    inner_product: scalar::inner_product,
    l2_sqr_u8_f32: scalar::l2_sqr_u8_f32,
    inner_product_u8_f32: scalar::inner_product_u8_f32,
    l2_sqr_u8: scalar::l2_sqr_u8,
};

/// Safe entry points for `#[target_feature]` kernels. Each wrapper is only placed in a
/// table after run-time detection of the features the wrapped kernel needs.
macro_rules! guarded {
    ($name:ident, $module:ident :: $kernel:ident, $a:ty, $b:ty) => {
        fn $name(a: $a, b: $b) -> f32 {
            // SAFETY: this wrapper is only reachable through a `Kernels` table built by
            // `detect_*` after the CPU features `$module` needs were detected.
            unsafe { $module::$kernel(a, b) }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86_tables {
    use super::{Kernels, avx2, avx512};

    guarded!(avx2_l2, avx2::l2_sqr, &[f32], &[f32]);
    guarded!(avx2_ip, avx2::inner_product, &[f32], &[f32]);
    guarded!(avx2_l2_u8f, avx2::l2_sqr_u8_f32, &[u8], &[f32]);
    guarded!(avx2_ip_u8f, avx2::inner_product_u8_f32, &[u8], &[f32]);
    guarded!(avx2_l2_u8, avx2::l2_sqr_u8, &[u8], &[u8]);
    guarded!(avx512_l2, avx512::l2_sqr, &[f32], &[f32]);
    guarded!(avx512_ip, avx512::inner_product, &[f32], &[f32]);
    guarded!(avx512_l2_u8f, avx512::l2_sqr_u8_f32, &[u8], &[f32]);
    guarded!(avx512_ip_u8f, avx512::inner_product_u8_f32, &[u8], &[f32]);
    guarded!(avx512_l2_u8, avx512::l2_sqr_u8, &[u8], &[u8]);

    /// The AVX2+FMA table, if the CPU has both.
    pub(super) fn detect_avx2() -> Option<Kernels> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Kernels {
            name: "avx2",
            l2_sqr: avx2_l2,
            inner_product: avx2_ip,
            l2_sqr_u8_f32: avx2_l2_u8f,
            inner_product_u8_f32: avx2_ip_u8f,
            l2_sqr_u8: avx2_l2_u8,
        })
    }

    /// The AVX-512 table, if the CPU has `avx512f`, `avx512bw` and `avx512vl`.
    pub(super) fn detect_avx512() -> Option<Kernels> {
        (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl"))
        .then_some(Kernels {
            name: "avx512",
            l2_sqr: avx512_l2,
            inner_product: avx512_ip,
            l2_sqr_u8_f32: avx512_l2_u8f,
            inner_product_u8_f32: avx512_ip_u8f,
            l2_sqr_u8: avx512_l2_u8,
        })
    }
}

#[cfg(target_arch = "aarch64")]
mod arm_tables {
    use super::{Kernels, neon};

    guarded!(neon_l2, neon::l2_sqr, &[f32], &[f32]);
    guarded!(neon_ip, neon::inner_product, &[f32], &[f32]);
    guarded!(neon_l2_u8f, neon::l2_sqr_u8_f32, &[u8], &[f32]);
    guarded!(neon_ip_u8f, neon::inner_product_u8_f32, &[u8], &[f32]);
    guarded!(neon_l2_u8, neon::l2_sqr_u8, &[u8], &[u8]);

    /// The NEON table, if the CPU has NEON (always, on aarch64 Linux).
    pub(super) fn detect_neon() -> Option<Kernels> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Kernels {
            name: "neon",
            l2_sqr: neon_l2,
            inner_product: neon_ip,
            l2_sqr_u8_f32: neon_l2_u8f,
            inner_product_u8_f32: neon_ip_u8f,
            l2_sqr_u8: neon_l2_u8,
        })
    }
}

/// Every kernel path this CPU supports, slowest (scalar) first, fastest last.
pub fn available() -> Vec<(&'static str, Kernels)> {
    let mut paths = vec![SCALAR];
    #[cfg(target_arch = "x86_64")]
    {
        paths.extend(x86_tables::detect_avx2());
        paths.extend(x86_tables::detect_avx512());
    }
    #[cfg(target_arch = "aarch64")]
    paths.extend(arm_tables::detect_neon());
    paths.into_iter().map(|k| (k.name, k)).collect()
}

/// The fastest kernel table for this CPU, detected once.
pub fn kernels() -> &'static Kernels {
    static TABLE: OnceLock<Kernels> = OnceLock::new();
    TABLE.get_or_init(|| available().last().map_or(SCALAR, |&(_, k)| k))
}

/// Squared Euclidean distance. `a.len()` must equal `b.len()`.
#[inline]
pub fn l2_sqr(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2_sqr)(a, b)
}

/// Inner product. `a.len()` must equal `b.len()`.
#[inline]
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    (kernels().inner_product)(a, b)
}

/// Squared Euclidean distance of a `u8` vector and an `f32` vector of the same length.
#[inline]
pub fn l2_sqr_u8_f32(a: &[u8], b: &[f32]) -> f32 {
    (kernels().l2_sqr_u8_f32)(a, b)
}

/// Inner product of a `u8` vector and an `f32` vector of the same length.
#[inline]
pub fn inner_product_u8_f32(a: &[u8], b: &[f32]) -> f32 {
    (kernels().inner_product_u8_f32)(a, b)
}

/// Exact squared Euclidean distance of two `u8` vectors of the same length (integer
/// arithmetic; the `f32` result is exact up to 258 dimensions).
#[inline]
pub fn l2_sqr_u8(a: &[u8], b: &[u8]) -> f32 {
    (kernels().l2_sqr_u8)(a, b)
}

#[cfg(test)]
mod tests;
