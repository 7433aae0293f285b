//! The locality order of an inverted file's lists: which lists lie near each other, so
//! that a batch of queries can be visited in an order whose consecutive queries probe
//! mostly the same lists (the engine's batch search uses it).

use super::IndexModel;
use crate::ivf::CoarseQuantizer;

impl IndexModel {
    /// A locality-preserving rank of the inverted lists (`rank[list]`): lists grouped by a
    /// k-means of their coarse centroids (about √nlist / 4 groups, at most 64), so that
    /// lists with close ranks tend to lie close together. Batch searches visit queries in
    /// the rank order of their nearest list, so that consecutive queries probe mostly the
    /// same lists while these are still in the caches. Computed once, on first use (tens
    /// of milliseconds for 4,096 lists), deterministic; `None` without a coarse quantizer
    /// or with too few lists to group.
    pub fn list_rank(&self) -> Option<&[u32]> {
        let cq = self.coarse.as_ref()?;
        self.list_rank.get_or_init(|| locality_rank(cq)).as_deref()
    }
}

/// [`IndexModel::list_rank`] of a coarse quantizer's lists.
fn locality_rank(cq: &CoarseQuantizer) -> Option<Vec<u32>> {
    let (n, dim) = (cq.nlist(), cq.dim());
    let groups = (((n as f64).sqrt() / 4.0) as usize).min(64);
    if groups < 2 {
        return None;
    }
    let centroids = &cq.kmeans.centroids;
    let params = crate::kmeans::KMeansParams {
        iterations: 8,
        seed: 0x6c69_7374,
        ..Default::default()
    };
    let km = crate::kmeans::KMeans::train(centroids, dim, groups, &params).ok()?;
    let group = km.assign(centroids).ok()?;
    let mut lists: Vec<u32> = (0..n as u32).collect();
    lists.sort_by_key(|&l| (group[l as usize].0, l));
    let mut rank = vec![0u32; n];
    for (r, &l) in lists.iter().enumerate() {
        rank[l as usize] = r as u32;
    }
    Some(rank)
}
