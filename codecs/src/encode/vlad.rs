//! VLAD (Jégou et al. 2010): per visual word, the sum of the residuals `x − c_k` of the
//! descriptors assigned to it, concatenated into a `k × dim` vector; then signed power
//! law, intra-normalisation (L2 per word block, *All about VLAD*) and global L2.
//!
//! Also here: vocabulary adaptation (recompute every centroid as the mean of the database
//! descriptors assigned to it) and NetVLAD-style soft assignment
//! `a_k(x) = softmax_k(w_k·x + b_k)` with `w_k = 2α c_k`, `b_k = −α‖c_k‖²`, which equals
//! `softmax_k(−α‖x − c_k‖²)` (the `‖x‖²` term is the same for every `k`), so it is
//! computed from squared distances with the SIMD distance kernels.

use std::any::Any;

use rayon::prelude::*;

use super::norm::{intra_normalize, l2_normalize, power_law};
use super::sets::{DescriptorSets, root_sift_rows};
use super::{SetEncoder, check_batch, check_rows, image_groups};
use crate::error::{CodecError, Result};
use crate::exact;
use crate::kmeans::{KMeans, KMeansParams};

/// Normalisation and assignment options of a VLAD encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VladParams {
    /// Apply RootSIFT to every descriptor before anything else.
    pub root_sift: bool,
    /// Signed power-law exponent α (`sign(x)|x|^α`), or `None` for no power law.
    pub power: Option<f32>,
    /// L2-normalise each word's block before the global L2.
    pub intra: bool,
    /// Soft assignment with this softmax sharpness α, or `None` for hard assignment.
    pub soft_alpha: Option<f32>,
}

impl Default for VladParams {
    /// RootSIFT, power 0.5, intra-normalisation, hard assignment.
    fn default() -> Self {
        VladParams {
            root_sift: true,
            power: Some(0.5),
            intra: true,
            soft_alpha: None,
        }
    }
}

impl VladParams {
    fn validate(&self) -> Result<()> {
        if let Some(a) = self.power {
            if !(a.is_finite() && a > 0.0) {
                return Err(CodecError::InvalidParameter(format!(
                    "VLAD power-law exponent must be positive, got {a}"
                )));
            }
        }
        if let Some(a) = self.soft_alpha {
            if !(a.is_finite() && a > 0.0) {
                return Err(CodecError::InvalidParameter(format!(
                    "VLAD soft-assignment alpha must be positive, got {a}"
                )));
            }
        }
        Ok(())
    }
}

/// A trained VLAD encoder: `k` visual words of dimension `dim` and its options.
#[derive(Debug, Clone, PartialEq)]
pub struct VladEncoder {
    /// Descriptor dimension.
    pub dim: usize,
    /// Number of visual words.
    pub k: usize,
    /// `k × dim` visual words (centroids), row-major, in the preprocessed space.
    pub centroids: Vec<f32>,
    /// Options.
    pub params: VladParams,
}

impl VladEncoder {
    /// An encoder from stored parts; checks shapes and values.
    pub fn from_parts(centroids: Vec<f32>, dim: usize, params: VladParams) -> Result<Self> {
        let k = check_rows(&centroids, dim)?;
        if k == 0 {
            return Err(CodecError::InvalidParameter(
                "VLAD needs at least one visual word".into(),
            ));
        }
        params.validate()?;
        Ok(VladEncoder {
            dim,
            k,
            centroids,
            params,
        })
    }

    /// Trains the vocabulary by k-means on `sample` (raw descriptors, rows of `dim`; they
    /// are preprocessed in place).
    pub fn train(
        mut sample: Vec<f32>,
        dim: usize,
        k: usize,
        params: VladParams,
        kmeans: &KMeansParams,
    ) -> Result<Self> {
        params.validate()?;
        check_rows(&sample, dim)?;
        if params.root_sift {
            root_sift_rows(&mut sample, dim);
        }
        let km = KMeans::train(&sample, dim, k, kmeans)?;
        Self::from_parts(km.centroids, dim, params)
    }

    /// Vocabulary adaptation (*All about VLAD*): every visual word becomes the mean of the
    /// (preprocessed) descriptors of `sets` assigned to it by nearest-centroid search;
    /// words that receive no descriptor keep their position. Returns how many words moved.
    pub fn adapt(&mut self, sets: &DescriptorSets<'_>) -> Result<usize> {
        let dim = self.dim;
        if sets.dim() != dim {
            return Err(CodecError::DimensionMismatch {
                expected: dim,
                got: sets.dim(),
            });
        }
        let k = self.k;
        let zero = || (vec![0.0f64; k * dim], vec![0u64; k]);
        let (sums, counts) = image_groups(sets)
            .into_par_iter()
            .map(|g| -> Result<(Vec<f64>, Vec<u64>)> {
                let mut buf = Vec::new();
                sets.images_f32_into(g.start, g.end, &mut buf);
                check_rows(&buf, dim)?;
                self.preprocess(&mut buf);
                let (mut sums, mut counts) = zero();
                let assign = exact::nearest_l2(&buf, &self.centroids, dim)?;
                for (x, &(a, _)) in buf.chunks_exact(dim).zip(&assign) {
                    let a = a as usize;
                    counts[a] += 1;
                    for (s, v) in sums[a * dim..(a + 1) * dim].iter_mut().zip(x) {
                        *s += f64::from(*v);
                    }
                }
                Ok((sums, counts))
            })
            .try_reduce(zero, |(mut s1, mut c1), (s2, c2)| {
                s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
                c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
                Ok((s1, c1))
            })?;
        let mut moved = 0;
        for (w, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            moved += 1;
            let inv = 1.0 / n as f64;
            for (c, s) in self.centroids[w * dim..(w + 1) * dim]
                .iter_mut()
                .zip(&sums[w * dim..])
            {
                *c = (s * inv) as f32;
            }
        }
        Ok(moved)
    }

    /// Unnormalised hard-assignment VLAD of one image into `out` (`k × dim`, zeroed here).
    fn aggregate_hard(
        &self,
        xs: &[f32],
        assign: &[(u32, f32)],
        counts: &mut [u32],
        out: &mut [f32],
    ) {
        let dim = self.dim;
        out.fill(0.0);
        counts.fill(0);
        for (x, &(a, _)) in xs.chunks_exact(dim).zip(assign) {
            let a = a as usize;
            counts[a] += 1;
            for (o, v) in out[a * dim..(a + 1) * dim].iter_mut().zip(x) {
                *o += v;
            }
        }
        for (w, &n) in counts.iter().enumerate() {
            if n > 0 {
                let n = n as f32;
                let c = &self.centroids[w * dim..(w + 1) * dim];
                for (o, cv) in out[w * dim..(w + 1) * dim].iter_mut().zip(c) {
                    *o -= n * cv;
                }
            }
        }
    }

    /// Unnormalised soft-assignment VLAD of one image; `dist` holds its `n × k` squared
    /// distances to the words.
    fn aggregate_soft(
        &self,
        xs: &[f32],
        dist: &[f32],
        alpha: f32,
        mass: &mut [f32],
        out: &mut [f32],
    ) {
        let (dim, k) = (self.dim, self.k);
        out.fill(0.0);
        mass.fill(0.0);
        let mut weights = vec![0.0f32; k];
        for (x, d) in xs.chunks_exact(dim).zip(dist.chunks_exact(k)) {
            let best = d.iter().copied().fold(f32::INFINITY, f32::min);
            let mut total = 0.0f32;
            for (w, &dj) in weights.iter_mut().zip(d) {
                *w = (-alpha * (dj - best)).exp();
                total += *w;
            }
            let inv = 1.0 / total;
            for (j, &w) in weights.iter().enumerate() {
                let w = w * inv;
                if w == 0.0 {
                    continue;
                }
                mass[j] += w;
                for (o, v) in out[j * dim..(j + 1) * dim].iter_mut().zip(x) {
                    *o += w * v;
                }
            }
        }
        for (j, &m) in mass.iter().enumerate() {
            let c = &self.centroids[j * dim..(j + 1) * dim];
            for (o, cv) in out[j * dim..(j + 1) * dim].iter_mut().zip(c) {
                *o -= m * cv;
            }
        }
    }

    fn normalize(&self, v: &mut [f32]) {
        if let Some(a) = self.params.power {
            power_law(v, a);
        }
        if self.params.intra {
            intra_normalize(v, self.dim);
        }
        l2_normalize(v);
    }
}

impl SetEncoder for VladEncoder {
    fn spec_token(&self) -> String {
        let p = &self.params;
        let mut s = format!("VLAD{}", self.k);
        match p.power {
            None => s.push_str("_nopow"),
            Some(a) if a != 0.5 => s.push_str(&format!("_pow{a}")),
            Some(_) => {}
        }
        if !p.intra {
            s.push_str("_nointra");
        }
        if !p.root_sift {
            s.push_str("_noroot");
        }
        if let Some(a) = p.soft_alpha {
            s.push_str(&format!("_soft{a}"));
        }
        s
    }

    fn dim_in(&self) -> usize {
        self.dim
    }

    fn dim_out(&self) -> usize {
        self.k * self.dim
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
        let (dim, k) = (self.dim, self.k);
        let dim_out = self.dim_out();
        let images = check_batch(descriptors, bounds, dim, out, dim_out)?;
        match self.params.soft_alpha {
            None => {
                let assign = exact::nearest_l2(descriptors, &self.centroids, dim)?;
                let mut counts = vec![0u32; k];
                for i in 0..images {
                    let (s, e) = (bounds[i], bounds[i + 1]);
                    let code = &mut out[i * dim_out..(i + 1) * dim_out];
                    self.aggregate_hard(
                        &descriptors[s * dim..e * dim],
                        &assign[s..e],
                        &mut counts,
                        code,
                    );
                    self.normalize(code);
                }
            }
            Some(alpha) => {
                let n = descriptors.len() / dim;
                let mut dist = vec![0.0f32; n * k];
                exact::l2_sqr_matrix(descriptors, &self.centroids, dim, &mut dist)?;
                let mut mass = vec![0.0f32; k];
                for i in 0..images {
                    let (s, e) = (bounds[i], bounds[i + 1]);
                    let code = &mut out[i * dim_out..(i + 1) * dim_out];
                    let xs = &descriptors[s * dim..e * dim];
                    self.aggregate_soft(xs, &dist[s * k..e * k], alpha, &mut mass, code);
                    self.normalize(code);
                }
            }
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
