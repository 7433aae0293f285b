//! Writes into memory that will not be read again soon (encoded images headed for a large
//! output) with non-temporal stores: the destination lines are written without first being
//! read into the cache, which halves the memory traffic of writing a large output.
//!
//! Non-temporal stores are weakly ordered: call [`stream_fence`] after a batch of writes,
//! before anything (another thread) may read them.

/// `dst ← src` (equal lengths), or `dst ← 0` without `src`; non-temporal where the CPU
/// has AVX (AVX-512F: 64-byte stores) and a plain copy or fill otherwise.
pub(crate) fn stream_write(src: Option<&[f32]>, dst: &mut [f32]) {
    if let Some(src) = src {
        assert_eq!(src.len(), dst.len(), "stream_write: lengths");
    }
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above; lengths are equal.
            unsafe { x86::stream_write_avx512(src, dst) };
            return;
        }
        if is_x86_feature_detected!("avx") {
            // SAFETY: AVX was detected just above; lengths are equal.
            unsafe { x86::stream_write_avx(src, dst) };
            return;
        }
    }
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The x86 non-temporal paths of [`super::stream_write`].
    use super::plain_write;
    use std::arch::x86_64::*;

    /// Floats before `dst` reaches an `align`-byte boundary (all of it if it never does).
    fn head(dst: &[f32], align: usize) -> usize {
        let misalign = (dst.as_ptr() as usize) % align;
        if misalign == 0 {
            0
        } else if !misalign.is_multiple_of(4) {
            dst.len()
        } else {
            ((align - misalign) / 4).min(dst.len())
        }
    }

    /// The unaligned head, the aligned whole-vector body (`lanes` floats per store by
    /// `store(dst_ptr, offset)`), and the tail.
    #[inline(always)]
    fn split(dst: &[f32], lanes: usize) -> (usize, usize) {
        let h = head(dst, 4 * lanes);
        (h, (dst.len() - h) / lanes * lanes)
    }

    /// # Safety
    /// AVX-512F available; `src`, when given, as long as `dst`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn stream_write_avx512(src: Option<&[f32]>, dst: &mut [f32]) {
        let (h, body) = split(dst, 16);
        plain_write(src.map(|s| &s[..h]), &mut dst[..h]);
        let dp = dst[h..].as_mut_ptr();
        let mut i = 0;
        while i < body {
            // SAFETY: i + 16 <= body floats remain past `h` in `dst` (and in `src`, as long);
            // `dp + i` is 64-byte aligned (h aligned it; i is a multiple of 16 floats).
            unsafe {
                let v = match src {
                    Some(s) => _mm512_loadu_ps(s.as_ptr().add(h + i)),
                    None => _mm512_setzero_ps(),
                };
                _mm512_stream_ps(dp.add(i), v);
            }
            i += 16;
        }
        plain_write(src.map(|s| &s[h + body..]), &mut dst[h + body..]);
    }

    /// # Safety
    /// AVX available; `src`, when given, as long as `dst`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn stream_write_avx(src: Option<&[f32]>, dst: &mut [f32]) {
        let (h, body) = split(dst, 8);
        plain_write(src.map(|s| &s[..h]), &mut dst[..h]);
        let dp = dst[h..].as_mut_ptr();
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 <= body floats remain past `h` in `dst` (and in `src`);
            // `dp + i` is 32-byte aligned.
            unsafe {
                let v = match src {
                    Some(s) => _mm256_loadu_ps(s.as_ptr().add(h + i)),
                    None => _mm256_setzero_ps(),
                };
                _mm256_stream_ps(dp.add(i), v);
            }
            i += 8;
        }
        plain_write(src.map(|s| &s[h + body..]), &mut dst[h + body..]);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_path_writes_exactly_at_every_offset() {
            let src: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 7.0).collect();
            type Path = unsafe fn(Option<&[f32]>, &mut [f32]);
            let mut paths: Vec<(&str, Path)> = Vec::new();
            if is_x86_feature_detected!("avx512f") {
                paths.push(("avx512", stream_write_avx512));
            }
            if is_x86_feature_detected!("avx") {
                paths.push(("avx", stream_write_avx));
            }
            for offset in 0..20 {
                for len in [0usize, 1, 7, 15, 16, 17, 33, 64, 200, 280] {
                    let want = &src[offset..offset + len];
                    for (name, path) in &paths {
                        for zero in [false, true] {
                            let mut buf = vec![f32::NAN; 300];
                            let from = (!zero).then_some(want);
                            // SAFETY: the path's features were detected; equal lengths.
                            unsafe { path(from, &mut buf[offset..offset + len]) };
                            super::super::stream_fence();
                            let got = &buf[offset..offset + len];
                            if zero {
                                assert!(got.iter().all(|&v| v == 0.0), "{name} {offset} {len}");
                            } else {
                                assert_eq!(got, want, "{name} {offset} {len}");
                            }
                            assert!(buf[..offset].iter().all(|v| v.is_nan()));
                            assert!(buf[offset + len..].iter().all(|v| v.is_nan()));
                        }
                    }
                    let mut buf = vec![f32::NAN; len];
                    super::super::stream_write(Some(want), &mut buf);
                    assert_eq!(buf, want);
                }
            }
        }
    }
}
