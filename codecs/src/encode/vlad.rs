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
use super::stream::{stream_fence, stream_write};
use super::vocab::{VocabParams, train_vocabulary};
use super::{SetEncoder, check_batch, check_rows, image_groups};
use crate::error::{CodecError, Result};
use crate::exact;

/// Soft-assignment weights below this share of a descriptor are dropped (and the rest
/// renormalised). Without the floor every descriptor leaves a trace, e^(−α·gap), in
/// every word, and intra-normalisation scales a word that only such traces reached to a
/// full unit block of noise: on clipart-vlad `VLAD64_soft100` gave R@1 0.677 against
/// hard assignment's 0.714, and 0.731 with the floor (docs/encoders.md).
pub const SOFT_MIN_WEIGHT: f32 = 0.01;

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
        // A word whose unnormalised weight exp(−α(d_j − d_best)) is below the floor gets
        // a normalised weight below it too (the sum is at least 1): skip it, exp included.
        let cutoff = -SOFT_MIN_WEIGHT.ln() / alpha;
        for (x, d) in xs.chunks_exact(dim).zip(dist.chunks_exact(k)) {
            let best = d.iter().copied().fold(f32::INFINITY, f32::min);
            let mut total = 0.0f32;
            for (w, &dj) in weights.iter_mut().zip(d) {
                let gap = dj - best;
                *w = if gap <= cutoff {
                    (-alpha * gap).exp()
                } else {
                    0.0
                };
                total += *w;
            }
            // Drop the words below the floor after normalising, then renormalise the rest
            // (each descriptor still contributes a total weight of one). The nearest word
            // (weight 1 / total) is always kept, even when over a hundred words tie.
            let floor = SOFT_MIN_WEIGHT.min(1.0 / total);
            let mut kept = 0.0f32;
            for w in weights.iter_mut() {
                *w /= total;
                if *w < floor {
                    *w = 0.0;
                }
                kept += *w;
            }
            let inv = 1.0 / kept;
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

    /// Power law, intra-normalisation and global L2 over the blocks of `v` starting at
    /// `starts` (`dim` floats each; blocks not listed are zero and stay zero), in two
    /// passes: power law + block norms, then one scaling per block. `norms` is scratch.
    #[inline(always)]
    fn normalize(
        &self,
        v: &mut [f32],
        starts: impl Iterator<Item = usize> + Clone,
        norms: &mut Vec<f32>,
    ) {
        let dim = self.dim;
        let mut total = 0.0f32;
        let mut nonzero = 0usize;
        norms.clear();
        for st in starts.clone() {
            let block = &mut v[st..st + dim];
            if let Some(a) = self.params.power {
                power_law(block, a);
            }
            let sq = sum_squares(block);
            norms.push(sq.sqrt());
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
        for (st, &norm) in starts.zip(norms.iter()) {
            let scale = if self.params.intra {
                if norm > 0.0 {
                    1.0 / (norm * global)
                } else {
                    0.0
                }
            } else {
                1.0 / global
            };
            v[st..st + dim].iter_mut().for_each(|x| *x *= scale);
        }
    }

    /// Rotates a batch's aggregated blocks into their words' local coordinate systems.
    /// Word-major, so that each rotation is read into the cache once per batch, and up to
    /// [`GROUP`] blocks at a time, so that each of its rows is read once per group.
    #[inline(always)]
    fn rotate_batch(&self, b: &mut HardBatch) {
        let (dim, k) = (self.dim, self.k);
        // The batch's blocks grouped by word (counting sort, image order within a word).
        b.word_starts.clear();
        b.word_starts.resize(k + 1, 0);
        for &(w, _) in &b.entries {
            b.word_starts[w as usize + 1] += 1;
        }
        for w in 0..k {
            b.word_starts[w + 1] += b.word_starts[w];
        }
        b.by_word.clear();
        b.by_word.resize(b.entries.len(), 0);
        b.fill.clear();
        b.fill.extend_from_slice(&b.word_starts[..k]);
        for &(w, slot) in &b.entries {
            b.by_word[b.fill[w as usize]] = slot;
            b.fill[w as usize] += 1;
        }
        b.inputs.resize(GROUP * dim, 0.0);
        b.outputs.resize(GROUP * dim, 0.0);
        for w in 0..k {
            let rotation_t = &self.rotations_t[w * dim * dim..(w + 1) * dim * dim];
            for group in b.by_word[b.word_starts[w]..b.word_starts[w + 1]].chunks(GROUP) {
                for (input, &slot) in b.inputs.chunks_exact_mut(dim).zip(group) {
                    let slot = slot as usize;
                    input.copy_from_slice(&b.blocks[slot * dim..(slot + 1) * dim]);
                }
                let used = group.len() * dim;
                rotate_group(rotation_t, dim, &b.inputs[..used], &mut b.outputs[..used]);
                for (output, &slot) in b.outputs.chunks_exact(dim).zip(group) {
                    let slot = slot as usize;
                    b.blocks[slot * dim..(slot + 1) * dim].copy_from_slice(output);
                }
            }
        }
    }

    /// Encodes the images of a batch given their assignments into `out` (`images ×
    /// dim_out`). Only the blocks of words an image uses are aggregated, rotated and
    /// normalised, compactly in `b` (a few hundred KB per batch, which stay in the cache);
    /// each image's code is then written once, its blocks and the zeros between them, with
    /// non-temporal stores (the output is large and not read again soon).
    #[inline(always)]
    fn encode_hard_batch(
        &self,
        descriptors: &[f32],
        bounds: &[usize],
        assign: &[u32],
        out: &mut [f32],
        b: &mut HardBatch,
    ) {
        let dim = self.dim;
        let dim_out = self.dim_out();
        let images = bounds.len() - 1;
        b.aggregate(self, descriptors, bounds, assign);
        if b.row.len() != dim_out {
            b.row.clear();
            b.row.resize(dim_out, 0.0);
        }
        if !self.rotations_t.is_empty() {
            self.rotate_batch(b);
        }
        for (i, code) in out.chunks_exact_mut(dim_out).take(images).enumerate() {
            let entries = &b.entries[b.image_entries[i]..b.image_entries[i + 1]];
            let starts = entries.iter().map(|&(_, slot)| slot as usize * dim);
            self.normalize(&mut b.blocks, starts, &mut b.norms);
            // The code is composed in `b.row`, all zeros between images, and streamed out
            // in one piece.
            for &(w, slot) in entries {
                let (w, slot) = (w as usize, slot as usize);
                b.row[w * dim..(w + 1) * dim]
                    .copy_from_slice(&b.blocks[slot * dim..(slot + 1) * dim]);
            }
            stream_write(Some(&b.row), code);
            for &(w, _) in entries {
                b.row[w as usize * dim..(w as usize + 1) * dim].fill(0.0);
            }
        }
        debug_assert_eq!(b.entries.len(), b.image_entries[images]);
        stream_fence();
    }
}

/// Per-thread scratch of the hard-assignment VLAD encoder: one batch's non-zero blocks,
/// aggregated compactly, and the bookkeeping to rotate, normalise and write them.
#[derive(Default)]
pub(crate) struct HardBatch {
    /// Unnormalised residual sums, one `dim` block per (image, used word).
    blocks: Vec<f32>,
    /// Descriptors summed into each block.
    counts: Vec<u32>,
    /// (word, block) of every image, image after image, by word within an image.
    entries: Vec<(u32, u32)>,
    /// `entries` of image `i`: `image_entries[i]..image_entries[i + 1]`.
    image_entries: Vec<usize>,
    /// Block of each word in the image being aggregated (`u32::MAX`: none yet).
    slot_of: Vec<u32>,
    /// Rotation bookkeeping: blocks by word, and where each word's run starts.
    by_word: Vec<u32>,
    word_starts: Vec<usize>,
    fill: Vec<usize>,
    inputs: Vec<f32>,
    outputs: Vec<f32>,
    norms: Vec<f32>,
    /// One image's code (`dim_out`), all zeros between images.
    row: Vec<f32>,
}

impl HardBatch {
    /// Sums every image's residuals per used word (`x − c`, or `(x − c) / ‖x − c‖` with
    /// residual normalisation), each image's blocks listed in word order. The float
    /// operations are those of summing into a dense `k × dim` code.
    #[inline(always)]
    fn aggregate(
        &mut self,
        enc: &VladEncoder,
        descriptors: &[f32],
        bounds: &[usize],
        assign: &[u32],
    ) {
        let (dim, k) = (enc.dim, enc.k);
        let rn = enc.params.residual_norm;
        self.blocks.clear();
        self.counts.clear();
        self.entries.clear();
        self.image_entries.clear();
        self.image_entries.push(0);
        self.slot_of.clear();
        self.slot_of.resize(k, u32::MAX);
        for window in bounds.windows(2) {
            let (s, e) = (window[0], window[1]);
            for (x, &a) in descriptors[s * dim..e * dim]
                .chunks_exact(dim)
                .zip(&assign[s..e])
            {
                let a = a as usize;
                let c = &enc.centroids[a * dim..(a + 1) * dim];
                let slot = if self.slot_of[a] == u32::MAX {
                    let slot = self.counts.len();
                    self.slot_of[a] = slot as u32;
                    self.counts.push(0);
                    if rn {
                        self.blocks.resize(self.blocks.len() + dim, 0.0);
                    } else {
                        // The first descriptor is the block; the centroids are taken off
                        // once at the end.
                        self.blocks.extend_from_slice(x);
                    }
                    slot
                } else {
                    self.slot_of[a] as usize
                };
                let block = &mut self.blocks[slot * dim..(slot + 1) * dim];
                if rn {
                    let sq: f32 = x.iter().zip(c).map(|(v, cv)| (v - cv) * (v - cv)).sum();
                    let scale = if sq > 0.0 { 1.0 / sq.sqrt() } else { 0.0 };
                    for ((o, v), cv) in block.iter_mut().zip(x).zip(c) {
                        *o += scale * (v - cv);
                    }
                } else if self.counts[slot] > 0 {
                    for (o, v) in block.iter_mut().zip(x) {
                        *o += v;
                    }
                }
                self.counts[slot] += 1;
            }
            for w in 0..k {
                let slot = self.slot_of[w];
                if slot == u32::MAX {
                    continue;
                }
                self.slot_of[w] = u32::MAX;
                if !rn {
                    let n = self.counts[slot as usize] as f32;
                    let c = &enc.centroids[w * dim..(w + 1) * dim];
                    let block = &mut self.blocks[slot as usize * dim..(slot as usize + 1) * dim];
                    for (o, cv) in block.iter_mut().zip(c) {
                        *o -= n * cv;
                    }
                }
                self.entries.push((w as u32, slot));
            }
            self.image_entries.push(self.entries.len());
        }
    }
}

thread_local! {
    /// Per-thread scratch of the hard-assignment encoder (reused across batches).
    static HARD_BATCH: std::cell::RefCell<HardBatch> = std::cell::RefCell::new(HardBatch::default());
}

simd::multiversion! {
    /// [`VladEncoder::encode_hard_batch`] compiled for `level`.
    fn encode_hard_batch_at(
        enc: &VladEncoder,
        descriptors: &[f32],
        bounds: &[usize],
        assign: &[u32],
        out: &mut [f32],
        scratch: &mut HardBatch,
    ) {
        enc.encode_hard_batch(descriptors, bounds, assign, out, scratch)
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
                HARD_BATCH.with(|scratch| {
                    encode_hard_batch_at(
                        simd::Level::detect(),
                        self,
                        descriptors,
                        bounds,
                        &assign,
                        &mut out[..images * dim_out],
                        &mut scratch.borrow_mut(),
                    );
                });
            }
            Some(alpha) => {
                let n = descriptors.len() / dim;
                let mut dist = vec![0.0f32; n * k];
                exact::l2_sqr_matrix(descriptors, &self.centroids, dim, &mut dist)?;
                let mut mass = vec![0.0f32; k];
                let mut norms = Vec::with_capacity(k);
                let mut scratch = vec![0.0f32; dim];
                for i in 0..images {
                    let (s, e) = (bounds[i], bounds[i + 1]);
                    let code = &mut out[i * dim_out..(i + 1) * dim_out];
                    let xs = &descriptors[s * dim..e * dim];
                    self.aggregate_soft(xs, &dist[s * k..e * k], alpha, &mut mass, code);
                    // Words no kept weight reached are zero blocks: nothing to rotate.
                    let used = (0..k).filter(|&w| mass[w] != 0.0);
                    self.rotate_blocks(code, used, &mut scratch);
                    self.normalize(code, (0..k).map(|w| w * dim), &mut norms);
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
                    &mut HardBatch::default(),
                );
                assert!(
                    want[k * dim..2 * k * dim].iter().all(|&v| v == 0.0),
                    "empty image is zero"
                );
                for level in Level::all() {
                    let mut got = vec![f32::NAN; 4 * k * dim];
                    encode_hard_batch_at(
                        level,
                        &enc,
                        &descriptors,
                        &bounds,
                        &assign,
                        &mut got,
                        &mut HardBatch::default(),
                    );
                    for (a, b) in got.iter().zip(&want) {
                        assert!((a - b).abs() <= 1e-6, "{level:?} {params:?}: {a} vs {b}");
                    }
                }
            }
        }
    }
}
