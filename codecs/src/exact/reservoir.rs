//! Top-k collection tuned for scans: candidates at or below a threshold are appended to a
//! buffer of about `2k`; when it fills, a linear-time selection keeps the `k` best and the
//! threshold drops to the k-th distance. Amortised O(1) per candidate, against O(log k)
//! sift-downs for a binary heap, which matters when the data's order (e.g. descriptors
//! grouped by image) keeps the threshold high for long.

use crate::topk::{Neighbor, neighbor_order};

/// The `k` best `(distance, id)` pairs seen, ties broken by the smaller id.
pub(crate) struct Reservoir {
    k: usize,
    cap: usize,
    items: Vec<Neighbor>,
    threshold: f32,
}

impl Reservoir {
    /// An empty collector for the `k` nearest.
    pub(crate) fn new(k: usize) -> Self {
        let cap = (2 * k).max(k + 32);
        Reservoir {
            k,
            cap,
            items: Vec::new(),
            threshold: if k == 0 {
                f32::NEG_INFINITY
            } else {
                f32::INFINITY
            },
        }
    }

    /// Candidates above this distance cannot enter (it may be looser than the exact k-th
    /// distance between compactions, never tighter).
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Offers a candidate.
    #[inline]
    pub(crate) fn push(&mut self, id: u64, distance: f32) {
        // `<=` is false for NaN, so NaN distances are rejected.
        if distance <= self.threshold {
            self.items.push(Neighbor { id, distance });
        } else {
            return;
        }
        if self.items.len() >= self.cap {
            self.compact();
        }
    }

    /// Keeps the `k` best and tightens the threshold to the k-th distance.
    fn compact(&mut self) {
        if self.items.len() > self.k && self.k > 0 {
            self.items
                .select_nth_unstable_by(self.k - 1, neighbor_order);
            self.items.truncate(self.k);
            self.threshold = self.items[self.k - 1].distance;
        }
    }

    /// Folds `other`'s candidates into `self`.
    pub(crate) fn merge(&mut self, other: Reservoir) {
        for n in other.items {
            self.push(n.id, n.distance);
        }
    }

    /// The `k` best, nearest first (ties by id).
    pub(crate) fn into_sorted(mut self) -> Vec<Neighbor> {
        self.items.sort_unstable_by(neighbor_order);
        self.items.truncate(self.k);
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topk::TopK;

    #[test]
    fn matches_topk_on_a_long_stream_with_ties() {
        for k in [1, 3, 10, 50] {
            let mut r = Reservoir::new(k);
            let mut t = TopK::new(k);
            let mut x = 12345u64;
            for id in 0..5000u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Few distinct distances, so ties are everywhere; ids arrive out of order.
                let d = ((x >> 33) % 97) as f32;
                let id = (id * 7919) % 5000;
                r.push(id, d);
                t.push(id, d);
                assert!(r.threshold() >= t.threshold());
            }
            assert_eq!(r.into_sorted(), t.into_sorted());
        }
    }

    #[test]
    fn rejects_nan_and_handles_k_zero() {
        let mut r = Reservoir::new(2);
        r.push(1, f32::NAN);
        r.push(2, 1.0);
        assert_eq!(
            r.into_sorted(),
            vec![Neighbor {
                id: 2,
                distance: 1.0
            }]
        );
        let mut z = Reservoir::new(0);
        z.push(1, 0.0);
        assert!(z.into_sorted().is_empty());
    }
}
