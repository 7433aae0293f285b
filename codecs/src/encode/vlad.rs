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

use super::assign::Assigner;
use super::lcs::{
    GROUP, check_rotations, local_rotations, rotate_block, rotate_group, transpose_rotations,
};
use super::norm::{power_law, sum_squares};
use super::sets::{DescriptorSets, root_sift_rows};
use super::simd;
use super::stream::stream_copy;
use super::vocab::{VocabParams, train_vocabulary};
use super::{SetEncoder, check_batch, check_rows, image_groups};
use crate::error::{CodecError, Result};
use crate::exact;

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
    /// Residual normalisation (Delhumeau et al. 2013): each residual `x − c_k` is
    /// L2-normalised before it is added, so every descriptor contributes equally.
    pub residual_norm: bool,
}

impl Default for VladParams {
    /// RootSIFT, power 0.5, intra-normalisation, hard assignment, plain residuals.
    fn default() -> Self {
        VladParams {
            root_sift: true,
            power: Some(0.5),
            intra: true,
            soft_alpha: None,
            residual_norm: false,
        }
    }
}

impl VladParams {
    fn validate(&self) -> Result<()> {
        if let Some(a) = self.power
            && !(a.is_finite() && a > 0.0)
        {
            return Err(CodecError::InvalidParameter(format!(
                "VLAD power-law exponent must be positive, got {a}"
            )));
        }
        if let Some(a) = self.soft_alpha
            && !(a.is_finite() && a > 0.0)
        {
            return Err(CodecError::InvalidParameter(format!(
                "VLAD soft-assignment alpha must be positive, got {a}"
            )));
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
    /// Local coordinate systems: `k` rotations of `dim × dim` (row-major, rows are the
    /// word's principal residual axes) applied to each block before the power law; empty
    /// for none. See [`VladEncoder::fit_local_rotations`].
    local_rotations: Vec<f32>,
    /// The same rotations transposed per word, as the grouped kernel reads them.
    rotations_t: Vec<f32>,
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
            local_rotations: Vec::new(),
            rotations_t: Vec::new(),
        })
    }

    /// The local coordinate systems: `k` rotations of `dim × dim` (row-major, rows are the
    /// word's principal residual axes), applied to each block before the power law;
    /// empty for none. See [`VladEncoder::fit_local_rotations`].
    pub fn local_rotations(&self) -> &[f32] {
        &self.local_rotations
    }

    fn set_local_rotations(&mut self, rotations: Vec<f32>) {
        self.rotations_t = transpose_rotations(&rotations, self.dim);
        self.local_rotations = rotations;
    }

    /// The same encoder with stored local rotations (`k × dim × dim` floats, as
    /// [`VladEncoder::fit_local_rotations`] makes them; empty for none).
    pub fn with_local_rotations(mut self, rotations: Vec<f32>) -> Result<Self> {
        if !rotations.is_empty() {
            check_rotations(&rotations, self.k, self.dim)?;
        }
        self.set_local_rotations(rotations);
        Ok(self)
    }

    /// Local coordinate systems (Delhumeau et al. 2013): for every word, the principal
    /// axes of the residuals of the descriptors of `sample` (raw, rows of `dim`, as for
    /// [`VladEncoder::train`]) assigned to it, normalised residuals with residual
    /// normalisation; blocks are rotated into them before the power law. Fit after any
    /// vocabulary adaptation. Deterministic, independent of the thread count.
    pub fn fit_local_rotations(&mut self, sample: &[f32]) -> Result<()> {
        let dim = self.dim;
        let n = check_rows(sample, dim)?;
        const BLOCK: usize = 4096;
        let mut assign = vec![0u32; n];
        let assigner = Assigner::new(&self.centroids, dim);
        assign
            .par_chunks_mut(BLOCK)
            .zip(sample.par_chunks(BLOCK * dim))
            .for_each(|(a, rows)| {
                let mut buf = rows.to_vec();
                self.preprocess(&mut buf);
                assigner.assign(&buf, a);
            });
        let rn = self.params.residual_norm;
        let rotations = local_rotations(sample, &assign, &self.centroids, dim, rn, |x| {
            self.preprocess(x)
        })?;
        self.set_local_rotations(rotations);
        Ok(())
    }

    /// Rotates the blocks of `used` words into their local coordinate systems (no-op
    /// without rotations). `scratch` holds `dim` floats.
    #[inline(always)]
    fn rotate_blocks(&self, v: &mut [f32], used: impl Iterator<Item = usize>, scratch: &mut [f32]) {
        if self.local_rotations.is_empty() {
            return;
        }
        let dim = self.dim;
        for w in used {
            rotate_block(
                &self.local_rotations[w * dim * dim..(w + 1) * dim * dim],
                &mut v[w * dim..(w + 1) * dim],
                scratch,
            );
        }
    }

    /// Trains the vocabulary by k-means on `sample` (raw descriptors, rows of `dim`; they
    /// are preprocessed in place), best of `vocab.restarts` runs.
    pub fn train(
        mut sample: Vec<f32>,
        dim: usize,
        k: usize,
        params: VladParams,
        vocab: &VocabParams,
    ) -> Result<Self> {
        params.validate()?;
        check_rows(&sample, dim)?;
        if params.root_sift {
            root_sift_rows(&mut sample, dim);
        }
        let km = train_vocabulary(&sample, dim, k, vocab)?;
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
        let assigner = Assigner::new(&self.centroids, dim);
        let zero = || (vec![0.0f64; k * dim], vec![0u64; k]);
        let (sums, counts) = image_groups(sets)
            .into_par_iter()
            .map(|g| -> Result<(Vec<f64>, Vec<u64>)> {
                let mut buf = Vec::new();
                sets.images_f32_into(g.start, g.end, &mut buf);
                check_rows(&buf, dim)?;
                self.preprocess(&mut buf);
                let (mut sums, mut counts) = zero();
                let mut assign = vec![0u32; buf.len() / dim];
                assigner.assign(&buf, &mut assign);
                for (x, &a) in buf.chunks_exact(dim).zip(&assign) {
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

    /// Unnormalised hard-assignment VLAD of one image into `out` (`k × dim`; every
    /// entry is written, so `out` need not be zeroed). `counts` receives the number of
    /// descriptors per word.
    #[inline(always)]
    fn aggregate_hard(&self, xs: &[f32], assign: &[u32], counts: &mut [u32], out: &mut [f32]) {
        let dim = self.dim;
        counts.fill(0);
        if self.params.residual_norm {
            for (x, &a) in xs.chunks_exact(dim).zip(assign) {
                let a = a as usize;
                let c = &self.centroids[a * dim..(a + 1) * dim];
                let sq: f32 = x.iter().zip(c).map(|(v, cv)| (v - cv) * (v - cv)).sum();
                let scale = if sq > 0.0 { 1.0 / sq.sqrt() } else { 0.0 };
                let block = &mut out[a * dim..(a + 1) * dim];
                if counts[a] == 0 {
                    block.fill(0.0);
                }
                for ((o, v), cv) in block.iter_mut().zip(x).zip(c) {
                    *o += scale * (v - cv);
                }
                counts[a] += 1;
            }
            for (w, &n) in counts.iter().enumerate() {
                if n == 0 {
                    out[w * dim..(w + 1) * dim].fill(0.0);
                }
            }
            return;
        }
        for (x, &a) in xs.chunks_exact(dim).zip(assign) {
            let a = a as usize;
            let block = &mut out[a * dim..(a + 1) * dim];
            if counts[a] == 0 {
                block.copy_from_slice(x);
            } else {
                for (o, v) in block.iter_mut().zip(x) {
                    *o += v;
                }
            }
            counts[a] += 1;
        }
        for (w, &n) in counts.iter().enumerate() {
            let block = &mut out[w * dim..(w + 1) * dim];
            if n == 0 {
                block.fill(0.0);
            } else {
                let n = n as f32;
                let c = &self.centroids[w * dim..(w + 1) * dim];
                for (o, cv) in block.iter_mut().zip(c) {
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
            for (j, (&w, &dj)) in weights.iter().zip(d).enumerate() {
                let mut w = w * inv;
                if self.params.residual_norm {
                    // ‖x − c_j‖ is √d_j; a zero residual contributes nothing.
                    w = if dj > 0.0 { w / dj.sqrt() } else { 0.0 };
                }
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

    /// Power law, intra-normalisation and global L2 over the blocks of the words in
    /// `used` (the others are zero and stay zero), in two passes: power law + block
    /// norms, then one scaling per block. `norms` is scratch of `k` entries.
    #[inline(always)]
    fn normalize(
        &self,
        v: &mut [f32],
        used: impl Iterator<Item = usize> + Clone,
        norms: &mut [f32],
    ) {
        let dim = self.dim;
        let mut total = 0.0f32;
        let mut nonzero = 0usize;
        for w in used.clone() {
            let block = &mut v[w * dim..(w + 1) * dim];
            if let Some(a) = self.params.power {
                power_law(block, a);
            }
            let sq = sum_squares(block);
            norms[w] = sq.sqrt();
            total += sq;
            nonzero += usize::from(sq > 0.0);
        }
        if total <= 0.0 {
            return;
        }
        // With intra-normalisation every non-zero block gets unit norm, so the global
        // norm is √(number of non-zero blocks).
        let global = if self.params.intra {
            (nonzero as f32).sqrt()
        } else {
            total.sqrt()
        };
        for w in used {
            let scale = if self.params.intra {
                if norms[w] > 0.0 {
                    1.0 / (norms[w] * global)
                } else {
                    0.0
                }
            } else {
                1.0 / global
            };
            v[w * dim..(w + 1) * dim]
                .iter_mut()
                .for_each(|x| *x *= scale);
        }
    }

    /// Rotates the used blocks of a batch of unnormalised codes (`counts`: descriptors per
    /// word of each image) into their words' local coordinate systems. Word-major, so that
    /// each rotation is read into the cache once per batch, and [`GROUP`] blocks at a time,
    /// so that each of its rows is read once per group.
    #[inline(always)]
    fn rotate_batch(&self, out: &mut [f32], counts: &[u32]) {
        let (dim, k) = (self.dim, self.k);
        let dim_out = self.dim_out();
        let mut inputs = vec![0.0f32; GROUP * dim];
        let mut outputs = vec![0.0f32; GROUP * dim];
        let mut members = Vec::with_capacity(GROUP);
        for w in 0..k {
            let rotation_t = &self.rotations_t[w * dim * dim..(w + 1) * dim * dim];
            let mut users = counts
                .chunks_exact(k)
                .enumerate()
                .filter(|(_, c)| c[w] > 0)
                .map(|(i, _)| i)
                .peekable();
            while users.peek().is_some() {
                members.clear();
                members.extend(users.by_ref().take(GROUP));
                for (slot, &i) in inputs.chunks_exact_mut(dim).zip(&members) {
                    slot.copy_from_slice(&out[i * dim_out + w * dim..i * dim_out + (w + 1) * dim]);
                }
                // A short last group rotates stale inputs into outputs nobody reads.
                rotate_group(rotation_t, &inputs, &mut outputs);
                for (slot, &i) in outputs.chunks_exact(dim).zip(&members) {
                    out[i * dim_out + w * dim..i * dim_out + (w + 1) * dim].copy_from_slice(slot);
                }
            }
        }
    }

    /// Aggregates and normalises the images of a batch given their assignments.
    #[inline(always)]
    fn encode_hard_batch(
        &self,
        descriptors: &[f32],
        bounds: &[usize],
        assign: &[u32],
        out: &mut [f32],
    ) {
        let (dim, k) = (self.dim, self.k);
        let dim_out = self.dim_out();
        let mut norms = vec![0.0f32; k];
        let images = bounds.len() - 1;
        // Descriptors per word of every image of the batch (`images × k`).
        let mut counts = vec![0u32; images * k];
        for ((i, code), counts) in out
            .chunks_exact_mut(dim_out)
            .enumerate()
            .zip(counts.chunks_exact_mut(k))
        {
            let (s, e) = (bounds[i], bounds[i + 1]);
            self.aggregate_hard(&descriptors[s * dim..e * dim], &assign[s..e], counts, code);
        }
        if !self.rotations_t.is_empty() {
            self.rotate_batch(out, &counts);
        }
        for (code, counts) in out.chunks_exact_mut(dim_out).zip(counts.chunks_exact(k)) {
            let used = counts.iter().enumerate().filter(|c| *c.1 > 0).map(|c| c.0);
            self.normalize(code, used, &mut norms);
        }
    }
}

thread_local! {
    /// Per-thread batch output of the hard-assignment encoder (reused across batches).
    static BATCH_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

simd::multiversion! {
    /// [`VladEncoder::encode_hard_batch`] compiled for `level`.
    fn encode_hard_batch_at(
        enc: &VladEncoder,
        descriptors: &[f32],
        bounds: &[usize],
        assign: &[u32],
        out: &mut [f32],
    ) {
        enc.encode_hard_batch(descriptors, bounds, assign, out)
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
        if p.residual_norm {
            s.push_str("_rn");
        }
        if !self.local_rotations.is_empty() {
            s.push_str("_lcs");
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
                let mut assign = vec![0u32; descriptors.len() / dim];
                Assigner::new(&self.centroids, dim).assign(descriptors, &mut assign);
                // Encoded in a per-thread scratch that stays in the cache, then streamed
                // to `out` (part of a large output, not read again soon): the output's
                // lines are written once, never read in first.
                BATCH_SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    scratch.resize(images * dim_out, 0.0);
                    encode_hard_batch_at(
                        simd::Level::detect(),
                        self,
                        descriptors,
                        bounds,
                        &assign,
                        &mut scratch,
                    );
                    stream_copy(&scratch, &mut out[..images * dim_out]);
                });
            }
            Some(alpha) => {
                let n = descriptors.len() / dim;
                let mut dist = vec![0.0f32; n * k];
                exact::l2_sqr_matrix(descriptors, &self.centroids, dim, &mut dist)?;
                let mut mass = vec![0.0f32; k];
                let mut norms = vec![0.0f32; k];
                let mut scratch = vec![0.0f32; dim];
                for i in 0..images {
                    let (s, e) = (bounds[i], bounds[i + 1]);
                    let code = &mut out[i * dim_out..(i + 1) * dim_out];
                    let xs = &descriptors[s * dim..e * dim];
                    self.aggregate_soft(xs, &dist[s * k..e * k], alpha, &mut mass, code);
                    self.rotate_blocks(code, 0..k, &mut scratch);
                    self.normalize(code, 0..k, &mut norms);
                }
            }
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::simd::Level;
    use crate::kmeans::SeededRng;

    #[test]
    fn simd_levels_agree_with_portable_reference() {
        let mut rng = SeededRng::new(17);
        let (dim, k) = (24, 6);
        let centroids: Vec<f32> = (0..k * dim).map(|_| rng.next_f64() as f32).collect();
        let descriptors: Vec<f32> = (0..50 * dim).map(|_| rng.next_f64() as f32).collect();
        let bounds = [0usize, 7, 7, 30, 50];
        let mut assign = vec![0u32; 50];
        Assigner::new(&centroids, dim).assign(&descriptors, &mut assign);
        for params in [
            VladParams::default(),
            VladParams {
                intra: false,
                power: Some(0.3),
                ..VladParams::default()
            },
            VladParams {
                power: None,
                ..VladParams::default()
            },
            VladParams {
                residual_norm: true,
                ..VladParams::default()
            },
        ] {
            // Every configuration also with local rotations (random orthonormal ones).
            for rotated in [false, true] {
                let mut enc = VladEncoder::from_parts(centroids.clone(), dim, params).unwrap();
                if rotated {
                    let rotations: Vec<f32> = (0..k)
                        .flat_map(|w| crate::linalg::random_orthogonal(dim, w as u64).unwrap())
                        .map(|v| v as f32)
                        .collect();
                    enc = enc.with_local_rotations(rotations).unwrap();
                }
                let mut want = vec![f32::NAN; 4 * k * dim];
                encode_hard_batch_at(
                    Level::Portable,
                    &enc,
                    &descriptors,
                    &bounds,
                    &assign,
                    &mut want,
                );
                assert!(
                    want[k * dim..2 * k * dim].iter().all(|&v| v == 0.0),
                    "empty image is zero"
                );
                for level in Level::all() {
                    let mut got = vec![f32::NAN; 4 * k * dim];
                    encode_hard_batch_at(level, &enc, &descriptors, &bounds, &assign, &mut got);
                    for (a, b) in got.iter().zip(&want) {
                        assert!((a - b).abs() <= 1e-6, "{level:?} {params:?}: {a} vs {b}");
                    }
                }
            }
        }
    }
}
