//! Copies into memory that will not be read again soon (encoded batches headed for a large
//! output) with non-temporal stores: the destination lines are written without first being
//! read into the cache, which halves the memory traffic of writing a large output.

/// `dst ← src` (equal lengths), with non-temporal stores where the CPU has AVX
/// (AVX-512F: 64-byte stores) and the destination can be aligned; a plain copy otherwise.
pub(crate) fn stream_copy(src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "stream_copy: lengths");
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above; lengths are equal.
            unsafe { x86::stream_copy_avx512(src, dst) };
            return;
        }
        if is_x86_feature_detected!("avx") {
            // SAFETY: AVX was detected just above; lengths are equal.
            unsafe { x86::stream_copy_avx(src, dst) };
            return;
        }
    }
    dst.copy_from_slice(src);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The x86 non-temporal paths of [`super::stream_copy`].
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

    /// # Safety
    /// AVX-512F available; `src.len() == dst.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn stream_copy_avx512(src: &[f32], dst: &mut [f32]) {
        let h = head(dst, 64);
        dst[..h].copy_from_slice(&src[..h]);
        let body = (dst.len() - h) / 16 * 16;
        let (sp, dp) = (src[h..].as_ptr(), dst[h..].as_mut_ptr());
        let mut i = 0;
        while i < body {
            // SAFETY: i + 16 <= body floats remain in both slices past `h`; `dp + i` is
            // 64-byte aligned (h aligned it, and i is a multiple of 16 floats).
            unsafe { _mm512_stream_ps(dp.add(i), _mm512_loadu_ps(sp.add(i))) };
            i += 16;
        }
        _mm_sfence();
        dst[h + body..].copy_from_slice(&src[h + body..]);
    }

    /// # Safety
    /// AVX available; `src.len() == dst.len()`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn stream_copy_avx(src: &[f32], dst: &mut [f32]) {
        let h = head(dst, 32);
        dst[..h].copy_from_slice(&src[..h]);
        let body = (dst.len() - h) / 8 * 8;
        let (sp, dp) = (src[h..].as_ptr(), dst[h..].as_mut_ptr());
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 <= body floats remain in both slices past `h`; `dp + i` is
            // 32-byte aligned.
            unsafe { _mm256_stream_ps(dp.add(i), _mm256_loadu_ps(sp.add(i))) };
            i += 8;
        }
        _mm_sfence();
        dst[h + body..].copy_from_slice(&src[h + body..]);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_path_copies_exactly_at_every_offset() {
            let src: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 7.0).collect();
            for offset in 0..20 {
                for len in [0usize, 1, 7, 15, 16, 17, 33, 64, 200, 280] {
                    let want = &src[offset..offset + len];
                    let mut buf = vec![f32::NAN; 300];
                    if is_x86_feature_detected!("avx512f") {
                        // SAFETY: detected; equal lengths.
                        unsafe { stream_copy_avx512(want, &mut buf[offset..offset + len]) };
                        assert_eq!(&buf[offset..offset + len], want, "avx512 {offset} {len}");
                        assert!(buf[..offset].iter().all(|v| v.is_nan()));
                        assert!(buf[offset + len..].iter().all(|v| v.is_nan()));
                    }
                    let mut buf = vec![f32::NAN; 300];
                    if is_x86_feature_detected!("avx") {
                        // SAFETY: detected; equal lengths.
                        unsafe { stream_copy_avx(want, &mut buf[offset..offset + len]) };
                        assert_eq!(&buf[offset..offset + len], want, "avx {offset} {len}");
                        assert!(buf[offset + len..].iter().all(|v| v.is_nan()));
                    }
                    let mut buf = vec![f32::NAN; len];
                    super::super::stream_copy(want, &mut buf);
                    assert_eq!(buf, want);
                }
            }
        }
    }
}
