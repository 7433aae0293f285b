//! Bag of features (Sivic & Zisserman 2003), the simple baseline: hard-assignment
//! histograms of visual words, square-root term frequencies, idf weights
//! `ln(N / df_k)` learned from a set of images, then L2.

use std::any::Any;

use rayon::prelude::*;

use super::assign::Assigner;
use super::norm::l2_normalize;
use super::sets::{DescriptorSets, root_sift_rows};
use super::vocab::{VocabParams, train_vocabulary};
use super::{SetEncoder, check_batch, check_rows, image_groups};
use crate::error::{CodecError, Result};

/// Options of a bag-of-features encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BofParams {
    /// Apply RootSIFT to every descriptor first.
    pub root_sift: bool,
    /// Square-root the term frequencies (counts) before the idf weights.
    pub sqrt_tf: bool,
}

impl Default for BofParams {
    fn default() -> Self {
        BofParams {
            root_sift: true,
            sqrt_tf: true,
        }
    }
}

/// A trained bag-of-features encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct BofEncoder {
    /// Descriptor dimension.
    pub dim: usize,
    /// Number of visual words (the output dimension).
    pub k: usize,
    /// `k × dim` visual words, row-major, in the preprocessed space.
    pub centroids: Vec<f32>,
    /// Per-word weights (`k`); all ones means no idf.
    pub idf: Vec<f32>,
    /// Options.
    pub params: BofParams,
}

impl BofEncoder {
    /// An encoder from stored parts; `idf` must have one finite, non-negative entry per
    /// word.
    pub fn from_parts(
        centroids: Vec<f32>,
        dim: usize,
        idf: Vec<f32>,
        params: BofParams,
    ) -> Result<Self> {
        let k = check_rows(&centroids, dim)?;
        if k == 0 {
            return Err(CodecError::InvalidParameter(
                "BoF needs at least one visual word".into(),
            ));
        }
        if idf.len() != k {
            return Err(CodecError::DimensionMismatch {
                expected: k,
                got: idf.len(),
            });
        }
        if idf.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(CodecError::InvalidParameter(
                "BoF idf weights must be finite and >= 0".into(),
            ));
        }
        Ok(BofEncoder {
            dim,
            k,
            centroids,
            idf,
            params,
        })
    }

    /// Trains the vocabulary by k-means on `sample` (raw descriptors, preprocessed in
    /// place), best of `vocab.restarts` runs; idf weights start at 1 (see
    /// [`BofEncoder::fit_idf`]).
    pub fn train(
        mut sample: Vec<f32>,
        dim: usize,
        k: usize,
        params: BofParams,
        vocab: &VocabParams,
    ) -> Result<Self> {
        check_rows(&sample, dim)?;
        if params.root_sift {
            root_sift_rows(&mut sample, dim);
        }
        let km = train_vocabulary(&sample, dim, k, vocab)?;
        Self::from_parts(km.centroids, dim, vec![1.0; k], params)
    }

    /// Sets the idf weights from the images of `sets`: `idf_k = ln(N / max(df_k, 1))`
    /// where `N` is the number of images (empty ones included) and `df_k` the number of
    /// images with at least one descriptor assigned to word `k`.
    pub fn fit_idf(&mut self, sets: &DescriptorSets<'_>) -> Result<()> {
        let dim = self.dim;
        if sets.dim() != dim {
            return Err(CodecError::DimensionMismatch {
                expected: dim,
                got: sets.dim(),
            });
        }
        if sets.is_empty() {
            return Err(CodecError::NotEnoughPoints {
                what: "BoF idf weights".into(),
                needed: 1,
                got: 0,
            });
        }
        let k = self.k;
        let assigner = Assigner::new(&self.centroids, dim);
        let df = image_groups(sets)
            .into_par_iter()
            .map(|g| -> Result<Vec<u64>> {
                let mut buf = Vec::new();
                sets.images_f32_into(g.start, g.end, &mut buf);
                check_rows(&buf, dim)?;
                self.preprocess(&mut buf);
                let mut assign = vec![0u32; buf.len() / dim];
                assigner.assign(&buf, &mut assign);
                let base = sets.offsets()[g.start] as usize;
                let mut df = vec![0u64; k];
                let mut seen = vec![false; k];
                for i in g {
                    seen.fill(false);
                    for &a in &assign[sets.range(i).start - base..sets.range(i).end - base] {
                        seen[a as usize] = true;
                    }
                    df.iter_mut()
                        .zip(&seen)
                        .for_each(|(d, &s)| *d += u64::from(s));
                }
                Ok(df)
            })
            .try_reduce(
                || vec![0u64; k],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    Ok(a)
                },
            )?;
        let n = sets.len() as f64;
        self.idf = df
            .iter()
            .map(|&d| (n / d.max(1) as f64).ln() as f32)
            .collect();
        Ok(())
    }
}

impl SetEncoder for BofEncoder {
    fn spec_token(&self) -> String {
        let mut s = format!("BOF{}", self.k);
        if !self.params.sqrt_tf {
            s.push_str("_nosqrt");
        }
        if !self.params.root_sift {
            s.push_str("_noroot");
        }
        s
    }

    fn dim_in(&self) -> usize {
        self.dim
    }

    fn dim_out(&self) -> usize {
        self.k
    }

    fn preprocess(&self, descriptors: &mut [f32]) {
        if self.params.root_sift {
            root_sift_rows(descriptors, self.dim);
        }
    }

    fn encode_prepared(
        &self,
        descriptors: &[f32],
        bounds: &[usize],
        out: &mut [f32],
    ) -> Result<()> {
        let images = check_batch(descriptors, bounds, self.dim, out, self.k)?;
        let mut assign = vec![0u32; descriptors.len() / self.dim];
        Assigner::new(&self.centroids, self.dim).assign(descriptors, &mut assign);
        for i in 0..images {
            let h = &mut out[i * self.k..(i + 1) * self.k];
            h.fill(0.0);
            for &a in &assign[bounds[i]..bounds[i + 1]] {
                h[a as usize] += 1.0;
            }
            for (v, w) in h.iter_mut().zip(&self.idf) {
                let tf = if self.params.sqrt_tf { v.sqrt() } else { *v };
                *v = tf * w;
            }
            l2_normalize(h);
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
