//! Descriptor sets: many images' local descriptors in one matrix plus an offsets array
//! (image `i` owns rows `offsets[i]..offsets[i + 1]`), and the RootSIFT transform.
//!
//! This is the in-memory form of the `PREFIX_descriptors.npy` / `PREFIX_offsets.npy`
//! pair; reading the files is the engine's job.

use crate::error::{CodecError, Result};
use crate::vectors::VectorsRef;

/// A validated view of the local descriptors of `len()` images.
#[derive(Debug, Clone, Copy)]
pub struct DescriptorSets<'a> {
    descriptors: VectorsRef<'a>,
    offsets: &'a [u64],
}

impl<'a> DescriptorSets<'a> {
    /// Checks that `offsets` starts at 0, never decreases and ends at `descriptors.rows()`.
    /// An offsets array of length 1 (`[0]`) describes zero images; empty images (two equal
    /// consecutive offsets) are legal.
    pub fn new(descriptors: VectorsRef<'a>, offsets: &'a [u64]) -> Result<Self> {
        let (first, last) = match (offsets.first(), offsets.last()) {
            (Some(&f), Some(&l)) => (f, l),
            _ => {
                return Err(CodecError::InvalidParameter(
                    "descriptor offsets must hold at least one entry (images + 1)".into(),
                ));
            }
        };
        if first != 0 {
            return Err(CodecError::InvalidParameter(format!(
                "descriptor offsets must start at 0, not {first}"
            )));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(CodecError::InvalidParameter(format!(
                "descriptor offsets decrease at image {i} ({} then {})",
                offsets[i],
                offsets[i + 1]
            )));
        }
        if last != descriptors.rows() as u64 {
            return Err(CodecError::InvalidParameter(format!(
                "descriptor offsets end at {last} but there are {} descriptors",
                descriptors.rows()
            )));
        }
        Ok(DescriptorSets {
            descriptors,
            offsets,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Descriptor dimension.
    pub fn dim(&self) -> usize {
        self.descriptors.dim()
    }

    /// Total number of descriptors over all images.
    pub fn total_descriptors(&self) -> usize {
        self.descriptors.rows()
    }

    /// All descriptors.
    pub fn descriptors(&self) -> VectorsRef<'a> {
        self.descriptors
    }

    /// The offsets array (`len() + 1` entries).
    pub fn offsets(&self) -> &'a [u64] {
        self.offsets
    }

    /// Rows of image `i` as a range into `descriptors()`. Panics if `i >= len()`.
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i] as usize..self.offsets[i + 1] as usize
    }

    /// Number of descriptors of image `i`. Panics if `i >= len()`.
    pub fn count(&self, i: usize) -> usize {
        self.range(i).len()
    }

    /// Descriptors of images `start..end` converted to contiguous `f32` rows (appended to
    /// `out`, which is cleared first).
    pub fn images_f32_into(&self, start: usize, end: usize, out: &mut Vec<f32>) {
        let first = self.offsets[start] as usize;
        let rows = self.offsets[end] as usize - first;
        out.clear();
        out.resize(rows * self.dim(), 0.0);
        self.descriptors.rows_f32_into(first, rows, out);
    }
}

/// RootSIFT (Arandjelović & Zisserman 2012) of one descriptor, in place: divide by the L1
/// norm, then take the element-wise square root (signed, so negative components of
/// non-SIFT descriptors keep their sign). An all-zero descriptor stays zero. The result has
/// unit L2 norm (unless zero).
#[inline(always)]
pub fn root_sift_in_place(descriptor: &mut [f32]) {
    // Eight independent partial sums and branch-free element updates, so both loops
    // vectorise (square roots included).
    let mut acc = [0.0f32; 8];
    let whole = descriptor.len() / 8 * 8;
    for c in descriptor[..whole].chunks_exact(8) {
        for l in 0..8 {
            acc[l] += c[l].abs();
        }
    }
    let l1 = acc.iter().sum::<f32>() + descriptor[whole..].iter().map(|x| x.abs()).sum::<f32>();
    if l1 <= 0.0 || !l1.is_finite() {
        return;
    }
    let inv = 1.0 / l1;
    for x in descriptor.iter_mut() {
        *x = (x.abs() * inv).sqrt().copysign(*x);
    }
}

/// RootSIFT of every row of a contiguous matrix of `dim`-dimensional rows (vectorised
/// for the widest instruction set of this CPU).
pub fn root_sift_rows(data: &mut [f32], dim: usize) {
    root_sift_rows_at(super::simd::Level::detect(), data, dim);
}

super::simd::multiversion! {
    /// [`root_sift_rows`] compiled for `level`.
    pub(crate) fn root_sift_rows_at(data: &mut [f32], dim: usize) {
        if dim == 0 {
            return;
        }
        for row in data.chunks_exact_mut(dim) {
            root_sift_in_place(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_offsets() {
        let data = [0u8; 6 * 2];
        let v = VectorsRef::from_u8(&data, 2).unwrap();
        assert!(DescriptorSets::new(v, &[]).is_err());
        assert!(DescriptorSets::new(v, &[1, 6]).is_err());
        assert!(DescriptorSets::new(v, &[0, 4, 3, 6]).is_err());
        assert!(DescriptorSets::new(v, &[0, 4, 5]).is_err());
        assert!(DescriptorSets::new(v, &[0, 4, 7]).is_err());
        let s = DescriptorSets::new(v, &[0, 4, 4, 6]).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.count(0), 4);
        assert_eq!(s.count(1), 0);
        assert_eq!(s.range(2), 4..6);
        let empty = VectorsRef::from_u8(&[], 2).unwrap();
        let none = DescriptorSets::new(empty, &[0]).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn root_sift_values() {
        let mut d = [1.0f32, 3.0, 0.0, 12.0];
        root_sift_in_place(&mut d);
        // L1 = 16 -> [1/16, 3/16, 0, 12/16] -> sqrt
        let want = [0.25f32, (3.0f32 / 16.0).sqrt(), 0.0, (0.75f32).sqrt()];
        for (a, b) in d.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{d:?} vs {want:?}");
        }
        let l2: f32 = d.iter().map(|x| x * x).sum();
        assert!((l2 - 1.0).abs() < 1e-5);
        let mut zero = [0.0f32; 3];
        root_sift_in_place(&mut zero);
        assert_eq!(zero, [0.0; 3]);
        let mut signed = [-4.0f32, 0.0, 12.0];
        root_sift_in_place(&mut signed);
        assert!((signed[0] + 0.5).abs() < 1e-6 && (signed[2] - 0.75f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn root_sift_simd_levels_agree() {
        let data: Vec<f32> = (0..40 * 131).map(|i| ((i * 37) % 251) as f32).collect();
        let mut want = data.clone();
        for row in want.chunks_exact_mut(131) {
            root_sift_in_place(row);
        }
        for level in super::super::simd::Level::all() {
            let mut got = data.clone();
            root_sift_rows_at(level, &mut got, 131);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6, "{level:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn converts_image_ranges() {
        let data: Vec<f32> = (0..10).map(|x| x as f32).collect();
        let v = VectorsRef::from_f32(&data, 2).unwrap();
        let s = DescriptorSets::new(v, &[0, 1, 1, 5]).unwrap();
        let mut out = Vec::new();
        s.images_f32_into(1, 3, &mut out);
        assert_eq!(out, (2..10).map(|x| x as f32).collect::<Vec<_>>());
    }
}
