//! NEON kernels (aarch64, where NEON is always present). Compiled only on aarch64.

use std::arch::aarch64::*;

#[target_feature(enable = "neon")]
pub(super) fn l2_sqr(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 4u + 4 <= i + 16 <= n, within both slices.
            let (x, y) = unsafe { (vld1q_f32(pa.add(i + 4 * u)), vld1q_f32(pb.add(i + 4 * u))) };
            let d = vsubq_f32(x, y);
            *acc = vfmaq_f32(*acc, d, d);
        }
        i += 16;
    }
    let mut s = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    for j in i..n {
        let d = a[j] - b[j];
        s += d * d;
    }
    s
}

#[target_feature(enable = "neon")]
pub(super) fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 4u + 4 <= i + 16 <= n, within both slices.
            let (x, y) = unsafe { (vld1q_f32(pa.add(i + 4 * u)), vld1q_f32(pb.add(i + 4 * u))) };
            *acc = vfmaq_f32(*acc, x, y);
        }
        i += 16;
    }
    let mut s = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    for j in i..n {
        s += a[j] * b[j];
    }
    s
}

/// Widens 8 bytes to two `f32x4` vectors.
#[target_feature(enable = "neon")]
fn widen_u8x8(v: uint8x8_t) -> (float32x4_t, float32x4_t) {
    let w = vmovl_u8(v);
    (
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(w))),
        vcvtq_f32_u32(vmovl_u16(vget_high_u16(w))),
    )
}

#[target_feature(enable = "neon")]
pub(super) fn l2_sqr_u8_f32(a: &[u8], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, within both slices.
        let (x, y0, y1) = unsafe {
            (
                vld1_u8(pa.add(i)),
                vld1q_f32(pb.add(i)),
                vld1q_f32(pb.add(i + 4)),
            )
        };
        let (x0, x1) = widen_u8x8(x);
        let (d0, d1) = (vsubq_f32(x0, y0), vsubq_f32(x1, y1));
        acc[0] = vfmaq_f32(acc[0], d0, d0);
        acc[1] = vfmaq_f32(acc[1], d1, d1);
        i += 8;
    }
    let mut s = vaddvq_f32(vaddq_f32(acc[0], acc[1]));
    for j in i..n {
        let d = f32::from(a[j]) - b[j];
        s += d * d;
    }
    s
}

#[target_feature(enable = "neon")]
pub(super) fn inner_product_u8_f32(a: &[u8], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, within both slices.
        let (x, y0, y1) = unsafe {
            (
                vld1_u8(pa.add(i)),
                vld1q_f32(pb.add(i)),
                vld1q_f32(pb.add(i + 4)),
            )
        };
        let (x0, x1) = widen_u8x8(x);
        acc[0] = vfmaq_f32(acc[0], x0, y0);
        acc[1] = vfmaq_f32(acc[1], x1, y1);
        i += 8;
    }
    let mut s = vaddvq_f32(vaddq_f32(acc[0], acc[1]));
    for j in i..n {
        s += f32::from(a[j]) * b[j];
    }
    s
}

/// Bytes per `u32`-lane flush: each of the 4 lanes gains at most 4 * 255^2 per 16 bytes.
const U8_FLUSH: usize = 1 << 16;

#[target_feature(enable = "neon")]
pub(super) fn l2_sqr_u8(a: &[u8], b: &[u8]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut total: u64 = 0;
    let mut i = 0;
    while i + 16 <= n {
        let end = (i + U8_FLUSH).min(n);
        let mut acc = vdupq_n_u32(0);
        while i + 16 <= end {
            // SAFETY: i + 16 <= n, within both slices.
            let (x, y) = unsafe { (vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i))) };
            let d = vabdq_u8(x, y);
            let lo = vmull_u8(vget_low_u8(d), vget_low_u8(d));
            let hi = vmull_u8(vget_high_u8(d), vget_high_u8(d));
            acc = vpadalq_u16(vpadalq_u16(acc, lo), hi);
            i += 16;
        }
        total += u64::from(vaddvq_u32(acc));
    }
    for j in i..n {
        let d = u64::from(a[j].abs_diff(b[j]));
        total += d * d;
    }
    total as f32
}
