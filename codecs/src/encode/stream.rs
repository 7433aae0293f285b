//! Writes into memory that will not be read again soon (encoded images headed for a large
//! output) with non-temporal stores: the destination lines are written without first being
//! read into the cache, which halves the memory traffic of writing a large output.
//!
//! Non-temporal stores are weakly ordered: call [`stream_fence`] after a batch of writes,
//! before anything (another thread) may read them.

/// `dst ← src` (equal lengths), or `dst ← 0` without `src`; with non-temporal 16-byte
/// stores on x86-64 (SSE, part of its baseline: the store width does not matter here,
/// memory bandwidth does), a plain copy or fill elsewhere and for the unaligned ends.
pub(crate) fn stream_write(src: Option<&[f32]>, dst: &mut [f32]) {
    if let Some(src) = src {
        assert_eq!(src.len(), dst.len(), "stream_write: lengths");
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_setzero_ps, _mm_stream_ps};
        // Floats before `dst` reaches a 16-byte boundary (all of it if it never does).
        let misalign = (dst.as_ptr() as usize) % 16;
        let head = match misalign {
            0 => 0,
            m if m % 4 == 0 => ((16 - m) / 4).min(dst.len()),
            _ => dst.len(),
        };
        let body = (dst.len() - head) / 4 * 4;
        plain_write(src.map(|s| &s[..head]), &mut dst[..head]);
        let dp = dst[head..].as_mut_ptr();
        let mut i = 0;
        while i < body {
            // SAFETY: SSE is part of the x86-64 baseline; i + 4 <= body floats remain past
            // `head` in `dst` (and in `src`, as long); `dp + i` is 16-byte aligned (`head`
            // aligned it, and i is a multiple of 4 floats).
            unsafe {
                let v = match src {
                    Some(s) => _mm_loadu_ps(s.as_ptr().add(head + i)),
                    None => _mm_setzero_ps(),
                };
                _mm_stream_ps(dp.add(i), v);
            }
            i += 4;
        }
        plain_write(src.map(|s| &s[head + body..]), &mut dst[head + body..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    plain_write(src, dst);
}

/// Orders every earlier [`stream_write`] of this thread before its later stores.
pub(crate) fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

fn plain_write(src: Option<&[f32]>, dst: &mut [f32]) {
    match src {
        Some(src) => dst.copy_from_slice(src),
        None => dst.fill(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_exactly_at_every_offset() {
        let src: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 7.0).collect();
        for offset in 0..20 {
            for len in [0usize, 1, 3, 4, 5, 7, 15, 16, 17, 33, 64, 200, 280] {
                let want = &src[offset..offset + len];
                for zero in [false, true] {
                    let mut buf = vec![f32::NAN; 300];
                    stream_write((!zero).then_some(want), &mut buf[offset..offset + len]);
                    stream_fence();
                    let got = &buf[offset..offset + len];
                    if zero {
                        assert!(got.iter().all(|&v| v == 0.0), "zeros {offset} {len}");
                    } else {
                        assert_eq!(got, want, "copy {offset} {len}");
                    }
                    assert!(buf[..offset].iter().all(|v| v.is_nan()));
                    assert!(buf[offset + len..].iter().all(|v| v.is_nan()));
                }
            }
        }
    }
}
