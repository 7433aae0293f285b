//! Product quantization (Jégou et al., TPAMI 2011): a vector of `dim` floats is cut into
//! `m` sub-vectors of `dsub = dim / m`, each replaced by the index of its nearest of
//! `2^nbits` sub-centroids. This module owns training, batched multi-threaded encoding,
//! decoding, the asymmetric (ADC) look-up tables and the symmetric (SDC) distance.
//!
//! Codes are stored one byte per sub-quantizer (`nbits <= 8`), so a code is `m` bytes.
//! (Packed 4-bit "fast scan" codes are a separate layout, not handled here.)

use rayon::prelude::*;

use crate::error::{CodecError, Result};
use crate::kmeans::{KMeans, KMeansParams};

/// Rows encoded per parallel task.
const ENCODE_BLOCK: usize = 1024;

/// A product quantizer: `m` sub-quantizers of `ksub = 2^nbits` centroids each.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantizer {
    /// Input dimension.
    pub dim: usize,
    /// Number of sub-quantizers (bytes per code).
    pub m: usize,
    /// Bits per sub-code (1..=8).
    pub nbits: u32,
    /// Sub-vector dimension `dim / m`.
    pub dsub: usize,
    /// Centroids per sub-quantizer, `2^nbits`.
    pub ksub: usize,
    /// `m × ksub × dsub` sub-centroids (empty until trained).
    pub centroids: Vec<f32>,
    /// The same centroids transposed to `m × dsub × ksub`, so that distance tables are
    /// computed with contiguous (vectorisable) inner loops over the `ksub` centroids.
    centroids_t: Vec<f32>,
    /// `‖c‖²` of every sub-centroid (`m × ksub`).
    norms: Vec<f32>,
    /// Warnings from training (e.g. few points per centroid).
    pub warnings: Vec<String>,
}

impl ProductQuantizer {
    /// An untrained quantizer. Errors: `m == 0`, `m` not dividing `dim`, `nbits` not in
    /// `1..=8`.
    pub fn new(dim: usize, m: usize, nbits: u32) -> Result<Self> {
        if m == 0 || dim == 0 {
            return Err(CodecError::InvalidParameter(format!(
                "PQ needs dim >= 1 and M >= 1 (got dim {dim}, M {m})"
            )));
        }
        if !dim.is_multiple_of(m) {
            return Err(CodecError::InvalidParameter(format!(
                "PQ: M = {m} does not divide the dimension {dim}"
            )));
        }
        if !(1..=8).contains(&nbits) {
            return Err(CodecError::InvalidParameter(format!(
                "PQ: nbits = {nbits} is out of range (1..=8)"
            )));
        }
        Ok(ProductQuantizer {
            dim,
            m,
            nbits,
            dsub: dim / m,
            ksub: 1 << nbits,
            centroids: Vec::new(),
            centroids_t: Vec::new(),
            norms: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// Rebuilds a trained quantizer from its centroids (`m × 2^nbits × dim/m` floats).
    pub fn from_centroids(dim: usize, m: usize, nbits: u32, centroids: Vec<f32>) -> Result<Self> {
        let mut pq = Self::new(dim, m, nbits)?;
        if centroids.len() != m * pq.ksub * pq.dsub {
            return Err(CodecError::DimensionMismatch {
                expected: m * pq.ksub * pq.dsub,
                got: centroids.len(),
            });
        }
        pq.centroids = centroids;
        pq.build_transposed();
        Ok(pq)
    }

    /// True once centroids exist.
    pub fn is_trained(&self) -> bool {
        !self.centroids.is_empty()
    }

    /// Bytes per encoded vector.
    pub fn code_size(&self) -> usize {
        self.m
    }

    /// Entries of one ADC look-up table: `m × ksub`.
    pub fn lut_len(&self) -> usize {
        self.m * self.ksub
    }

    /// Trains the `m` sub-quantizers with k-means on the sub-vectors of `data` (contiguous
    /// rows of `dim`). Sub-quantizer `i` uses seed `params.seed + i`.
    pub fn train(&mut self, data: &[f32], params: &KMeansParams) -> Result<()> {
        if !data.len().is_multiple_of(self.dim) {
            return Err(CodecError::DimensionMismatch {
                expected: self.dim,
                got: data.len(),
            });
        }
        let n = data.len() / self.dim;
        if n < self.ksub {
            return Err(CodecError::NotEnoughPoints {
                what: format!("PQ training ({} centroids per sub-quantizer)", self.ksub),
                needed: self.ksub,
                got: n,
            });
        }
        let mut centroids = Vec::with_capacity(self.m * self.ksub * self.dsub);
        let mut warnings = Vec::new();
        let mut sub = vec![0.0f32; n * self.dsub];
        for sq in 0..self.m {
            for (dst, row) in sub
                .chunks_exact_mut(self.dsub)
                .zip(data.chunks_exact(self.dim))
            {
                dst.copy_from_slice(&row[sq * self.dsub..(sq + 1) * self.dsub]);
            }
            let p = KMeansParams {
                seed: params.seed.wrapping_add(sq as u64),
                ..params.clone()
            };
            let km = KMeans::train(&sub, self.dsub, self.ksub, &p)?;
            if sq == 0 {
                warnings.extend(km.warnings.iter().map(|w| format!("PQ sub-quantizer: {w}")));
            }
            centroids.extend_from_slice(&km.centroids);
        }
        self.centroids = centroids;
        self.warnings = warnings;
        self.build_transposed();
        Ok(())
    }

    fn build_transposed(&mut self) {
        let (ksub, dsub) = (self.ksub, self.dsub);
        let mut t = vec![0.0f32; self.m * dsub * ksub];
        for sq in 0..self.m {
            for c in 0..ksub {
                for j in 0..dsub {
                    t[(sq * dsub + j) * ksub + c] = self.centroids[(sq * ksub + c) * dsub + j];
                }
            }
        }
        self.centroids_t = t;
        self.norms = self.centroid_norms();
    }

    fn check_trained(&self) -> Result<()> {
        if self.is_trained() {
            Ok(())
        } else {
            Err(CodecError::NotTrained)
        }
    }

    /// Sub-centroid `c` of sub-quantizer `sq`.
    pub fn sub_centroid(&self, sq: usize, c: usize) -> &[f32] {
        let start = (sq * self.ksub + c) * self.dsub;
        &self.centroids[start..start + self.dsub]
    }

    /// Encodes one vector (len `dim`) into `code` (len `m`). `scratch` has len `ksub`.
    /// Minimises `‖c‖² − 2⟨x, c⟩` (the distance minus the constant `‖x‖²`).
    fn encode_row(&self, x: &[f32], code: &mut [u8], scratch: &mut [f32]) {
        let block = self.dsub * self.ksub;
        for sq in 0..self.m {
            crate::adc::tables::ip_table(
                &self.centroids_t[sq * block..(sq + 1) * block],
                &x[sq * self.dsub..(sq + 1) * self.dsub],
                -2.0,
                &self.norms[sq * self.ksub..(sq + 1) * self.ksub],
                scratch,
            );
            let mut best = 0usize;
            let mut best_d = f32::INFINITY;
            for (c, &d) in scratch.iter().enumerate() {
                if d < best_d {
                    best_d = d;
                    best = c;
                }
            }
            code[sq] = best as u8;
        }
    }

    /// Encodes every row of `data` into `codes` (`rows × m` bytes), in parallel blocks.
    pub fn encode_into(&self, data: &[f32], codes: &mut [u8]) -> Result<()> {
        self.check_trained()?;
        if !data.len().is_multiple_of(self.dim) {
            return Err(CodecError::DimensionMismatch {
                expected: self.dim,
                got: data.len(),
            });
        }
        let n = data.len() / self.dim;
        if codes.len() != n * self.m {
            return Err(CodecError::DimensionMismatch {
                expected: n * self.m,
                got: codes.len(),
            });
        }
        codes
            .par_chunks_mut(ENCODE_BLOCK * self.m)
            .zip(data.par_chunks(ENCODE_BLOCK * self.dim))
            .for_each(|(cblock, xblock)| {
                let mut scratch = vec![0.0f32; self.ksub];
                for (code, x) in cblock
                    .chunks_exact_mut(self.m)
                    .zip(xblock.chunks_exact(self.dim))
                {
                    self.encode_row(x, code, &mut scratch);
                }
            });
        Ok(())
    }

    /// Encodes every row of `data`; returns `rows × m` bytes.
    pub fn encode(&self, data: &[f32]) -> Result<Vec<u8>> {
        let n = data.len() / self.dim.max(1);
        let mut codes = vec![0u8; n * self.m];
        self.encode_into(data, &mut codes)?;
        Ok(codes)
    }

    /// Reconstructs vectors from codes (`rows × m` bytes) into `out` (`rows × dim`).
    pub fn decode_into(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.check_trained()?;
        if !codes.len().is_multiple_of(self.m) {
            return Err(CodecError::DimensionMismatch {
                expected: self.m,
                got: codes.len(),
            });
        }
        let n = codes.len() / self.m;
        if out.len() != n * self.dim {
            return Err(CodecError::DimensionMismatch {
                expected: n * self.dim,
                got: out.len(),
            });
        }
        for (code, x) in codes
            .chunks_exact(self.m)
            .zip(out.chunks_exact_mut(self.dim))
        {
            for (sq, &c) in code.iter().enumerate() {
                let c = usize::from(c);
                if c >= self.ksub {
                    return Err(CodecError::InvalidParameter(format!(
                        "PQ code {c} out of range for {} bits",
                        self.nbits
                    )));
                }
                x[sq * self.dsub..(sq + 1) * self.dsub].copy_from_slice(self.sub_centroid(sq, c));
            }
        }
        Ok(())
    }

    /// Reconstructs vectors from codes.
    pub fn decode(&self, codes: &[u8]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; codes.len() / self.m * self.dim];
        self.decode_into(codes, &mut out)?;
        Ok(out)
    }

    /// The ADC table of `query` (len `dim`): `lut[sq * ksub + c] = ‖q_sq − c_{sq,c}‖²`, so
    /// the squared distance to a code is the sum of its `m` entries.
    pub fn compute_lut(&self, query: &[f32]) -> Result<Vec<f32>> {
        let mut lut = vec![0.0; self.lut_len()];
        self.compute_lut_into(query, &mut lut)?;
        Ok(lut)
    }

    /// [`compute_lut`](Self::compute_lut) into a caller buffer of `m × ksub`.
    pub fn compute_lut_into(&self, query: &[f32], lut: &mut [f32]) -> Result<()> {
        self.check_lut_args(query, lut)?;
        crate::adc::tables::l2_tables(&self.centroids_t, query, self.dsub, lut);
        Ok(())
    }

    /// Inner-product table: `out[sq * ksub + c] = scale · ⟨q_sq, c_{sq,c}⟩`.
    pub fn compute_ip_lut_into(&self, query: &[f32], scale: f32, out: &mut [f32]) -> Result<()> {
        self.check_lut_args(query, out)?;
        let (ksub, dsub) = (self.ksub, self.dsub);
        for (sq, row) in out.chunks_exact_mut(ksub).enumerate() {
            let t = &self.centroids_t[sq * dsub * ksub..(sq + 1) * dsub * ksub];
            crate::adc::tables::ip_table(t, &query[sq * dsub..(sq + 1) * dsub], scale, &[], row);
        }
        Ok(())
    }

    /// The ADC table minus the constant `‖query‖²`: `lut[sq * ksub + c] = ‖c_{sq,c}‖² −
    /// 2⟨q_sq, c_{sq,c}⟩`, so the squared distance to a code is `‖q‖²` plus the sum of its
    /// `m` entries. `norms` is [`centroid_norms`](Self::centroid_norms). Cheaper than
    /// [`compute_lut_into`](Self::compute_lut_into) (one multiply-add per term).
    pub fn compute_lut_minus_norm_into(
        &self,
        query: &[f32],
        norms: &[f32],
        lut: &mut [f32],
    ) -> Result<()> {
        self.check_lut_args(query, lut)?;
        if norms.len() != lut.len() {
            return Err(CodecError::DimensionMismatch {
                expected: lut.len(),
                got: norms.len(),
            });
        }
        let (ksub, dsub) = (self.ksub, self.dsub);
        for (sq, (row, init)) in lut
            .chunks_exact_mut(ksub)
            .zip(norms.chunks_exact(ksub))
            .enumerate()
        {
            let t = &self.centroids_t[sq * dsub * ksub..(sq + 1) * dsub * ksub];
            crate::adc::tables::ip_table(t, &query[sq * dsub..(sq + 1) * dsub], -2.0, init, row);
        }
        Ok(())
    }

    fn check_lut_args(&self, query: &[f32], lut: &[f32]) -> Result<()> {
        self.check_trained()?;
        if query.len() != self.dim {
            return Err(CodecError::DimensionMismatch {
                expected: self.dim,
                got: query.len(),
            });
        }
        if lut.len() != self.lut_len() {
            return Err(CodecError::DimensionMismatch {
                expected: self.lut_len(),
                got: lut.len(),
            });
        }
        Ok(())
    }

    /// `‖c_{sq,c}‖²` for every sub-centroid, laid out like a LUT (`m × ksub`).
    pub fn centroid_norms(&self) -> Vec<f32> {
        self.centroids
            .chunks_exact(self.dsub)
            .map(|c| c.iter().map(|v| v * v).sum())
            .collect()
    }

    /// Symmetric-distance tables: for each sub-quantizer the `ksub × ksub` squared
    /// distances between its centroids.
    pub fn sdc_tables(&self) -> Result<SdcTables> {
        self.check_trained()?;
        let (ksub, dsub) = (self.ksub, self.dsub);
        let mut table = vec![0.0f32; self.m * ksub * ksub];
        table
            .par_chunks_mut(ksub * ksub)
            .enumerate()
            .for_each(|(sq, t)| {
                for a in 0..ksub {
                    for b in 0..ksub {
                        let ca =
                            &self.centroids[(sq * ksub + a) * dsub..(sq * ksub + a + 1) * dsub];
                        let cb =
                            &self.centroids[(sq * ksub + b) * dsub..(sq * ksub + b + 1) * dsub];
                        t[a * ksub + b] = crate::distance::l2_sqr(ca, cb);
                    }
                }
            });
        Ok(SdcTables {
            m: self.m,
            ksub,
            table,
        })
    }
}

/// Centroid-to-centroid distance tables for symmetric distance computation (both sides
/// encoded).
#[derive(Debug, Clone)]
pub struct SdcTables {
    m: usize,
    ksub: usize,
    table: Vec<f32>,
}

impl SdcTables {
    /// Squared distance between the reconstructions of two codes (each `m` bytes).
    pub fn distance(&self, a: &[u8], b: &[u8]) -> Result<f32> {
        if a.len() != self.m || b.len() != self.m {
            return Err(CodecError::DimensionMismatch {
                expected: self.m,
                got: a.len().min(b.len()),
            });
        }
        let mut d = 0.0;
        for (sq, (&ca, &cb)) in a.iter().zip(b).enumerate() {
            let (ca, cb) = (usize::from(ca), usize::from(cb));
            if ca >= self.ksub || cb >= self.ksub {
                return Err(CodecError::InvalidParameter("PQ code out of range".into()));
            }
            d += self.table[(sq * self.ksub + ca) * self.ksub + cb];
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::l2_sqr;
    use crate::kmeans::tests::blobs;

    fn trained(dim: usize, m: usize, nbits: u32, n: usize) -> (ProductQuantizer, Vec<f32>) {
        let data = blobs(20, n / 20, dim, 11);
        let mut pq = ProductQuantizer::new(dim, m, nbits).unwrap();
        let params = KMeansParams {
            iterations: 10,
            ..Default::default()
        };
        pq.train(&data, &params).unwrap();
        (pq, data)
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(ProductQuantizer::new(10, 3, 8).is_err());
        assert!(ProductQuantizer::new(16, 4, 0).is_err());
        assert!(ProductQuantizer::new(16, 4, 9).is_err());
        assert!(ProductQuantizer::new(16, 0, 8).is_err());
        let mut pq = ProductQuantizer::new(16, 4, 8).unwrap();
        let few = vec![0.0f32; 100 * 16];
        assert!(matches!(
            pq.train(&few, &KMeansParams::default()),
            Err(CodecError::NotEnoughPoints { .. })
        ));
        assert_eq!(pq.encode(&few[..16]), Err(CodecError::NotTrained));
    }

    #[test]
    fn lut_sum_equals_distance_to_reconstruction() {
        let (pq, data) = trained(16, 4, 6, 2000);
        let codes = pq.encode(&data).unwrap();
        let recon = pq.decode(&codes).unwrap();
        let q = &data[5 * 16..6 * 16];
        let lut = pq.compute_lut(q).unwrap();
        for i in 0..50 {
            let code = &codes[i * 4..(i + 1) * 4];
            let adc: f32 = code
                .iter()
                .enumerate()
                .map(|(s, &c)| lut[s * 64 + c as usize])
                .sum();
            let exact = l2_sqr(q, &recon[i * 16..(i + 1) * 16]);
            assert!(
                (adc - exact).abs() <= 1e-3 * exact.max(1.0),
                "{adc} vs {exact}"
            );
        }
    }

    #[test]
    fn encoding_picks_the_nearest_sub_centroid_and_reduces_error() {
        let (pq, data) = trained(8, 2, 8, 4000);
        let codes = pq.encode(&data).unwrap();
        let recon = pq.decode(&codes).unwrap();
        let mut err = 0.0f64;
        let mut energy = 0.0f64;
        for i in 0..data.len() / 8 {
            let x = &data[i * 8..(i + 1) * 8];
            err += f64::from(l2_sqr(x, &recon[i * 8..(i + 1) * 8]));
            energy += f64::from(x.iter().map(|v| v * v).sum::<f32>());
            for sq in 0..2 {
                let xs = &x[sq * 4..(sq + 1) * 4];
                let chosen = l2_sqr(xs, pq.sub_centroid(sq, codes[i * 2 + sq] as usize));
                for c in 0..256 {
                    // The encoder ranks by ‖c‖² − 2⟨x, c⟩, exact up to f32 rounding at
                    // the scale of the norms.
                    let other = l2_sqr(xs, pq.sub_centroid(sq, c));
                    let scale: f32 = xs.iter().chain(pq.sub_centroid(sq, c)).map(|v| v * v).sum();
                    assert!(chosen <= other + 1e-6 * scale, "{chosen} > {other}");
                }
            }
        }
        assert!(err < energy * 0.01, "relative error {}", err / energy);
    }

    #[test]
    fn sdc_matches_decoded_distance() {
        let (pq, data) = trained(16, 4, 8, 6000);
        let codes = pq.encode(&data[..160]).unwrap();
        let recon = pq.decode(&codes).unwrap();
        let sdc = pq.sdc_tables().unwrap();
        let d = sdc.distance(&codes[0..4], &codes[4..8]).unwrap();
        let exact = l2_sqr(&recon[0..16], &recon[16..32]);
        assert!((d - exact).abs() <= 1e-3 * exact.max(1.0));
        let norms = pq.centroid_norms();
        let mut lut_n = vec![0.0; pq.lut_len()];
        pq.compute_lut_minus_norm_into(&data[0..16], &norms, &mut lut_n)
            .unwrap();
        let lut = pq.compute_lut(&data[0..16]).unwrap();
        let qn: f32 = data[0..16].iter().map(|v| v * v).sum();
        let (a, b): (f32, f32) = (
            codes[4..8]
                .iter()
                .enumerate()
                .map(|(s, &c)| lut[s * 256 + c as usize])
                .sum(),
            codes[4..8]
                .iter()
                .enumerate()
                .map(|(s, &c)| lut_n[s * 256 + c as usize])
                .sum::<f32>()
                + qn,
        );
        assert!((a - b).abs() <= 1e-3 * a.max(1.0), "{a} vs {b}");
        let ip_scale = -2.0;
        let mut ip = vec![0.0; pq.lut_len()];
        pq.compute_ip_lut_into(&data[0..16], ip_scale, &mut ip)
            .unwrap();
        let c = pq.sub_centroid(1, 7);
        let want: f32 = data[4..8].iter().zip(c).map(|(a, b)| a * b).sum::<f32>() * ip_scale;
        assert!((ip[256 + 7] - want).abs() <= 1e-3 * want.abs().max(1.0));
    }
}
