//! Shared helpers for vladdb's workspace-level integration tests: seeded synthetic data.

/// A small deterministic generator (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// `n` vectors of `dim` drawn around `clusters` random centres (row-major).
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.unit() * 100.0).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = (rng.next_u64() % clusters as u64) as usize;
        for d in 0..dim {
            out.push(centres[c * dim + d] + (rng.unit() - 0.5) * 10.0);
        }
    }
    out
}

/// Exact squared-L2 top-k ids of `query` among `rows` (ids = `ids[i]`), ties by id.
pub fn brute_force(rows: &[f32], ids: &[u64], dim: usize, query: &[f32], k: usize) -> Vec<u64> {
    let mut all: Vec<(f32, u64)> = rows
        .chunks_exact(dim)
        .zip(ids)
        .map(|(r, &id)| {
            (
                r.iter().zip(query).map(|(a, b)| (a - b) * (a - b)).sum(),
                id,
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|p| p.1).collect()
}
