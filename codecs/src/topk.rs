//! Top-k selection: the k smallest distances seen so far, ties broken by the smaller id.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

/// One search result: an id and its distance to the query (squared L2 unless stated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    pub id: u64,
    pub distance: f32,
}

/// Total order used everywhere: by distance, then by id. NaN sorts last.
#[inline]
pub fn neighbor_order(a: &Neighbor, b: &Neighbor) -> Ordering {
    a.distance
        .total_cmp(&b.distance)
        .then_with(|| a.id.cmp(&b.id))
}

/// `x`'s bits mapped so that unsigned order is [`f32::total_cmp`] order.
#[inline]
fn ordered_bits(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

/// The inverse of [`ordered_bits`].
#[inline]
fn from_ordered_bits(o: u32) -> f32 {
    f32::from_bits(if o >> 31 == 1 { o & 0x7fff_ffff } else { !o })
}

/// Keeps the `k` best (smallest) neighbours by (distance, id). Candidates at or below
/// [`threshold`](TopK::threshold) are appended to a buffer of about `2k`; when it fills, a
/// linear-time selection keeps the `k` best and the threshold drops to the k-th distance.
/// Amortised O(1) per accepted candidate instead of a binary heap's O(log k) sift-downs
/// (9% of a fast-scan query's time with k = 100). The threshold may be looser than the
/// exact k-th distance between selections, never tighter, so scans that skip candidates
/// above it still find the exact top k.
#[derive(Clone)]
pub struct TopK {
    k: usize,
    cap: usize,
    items: Vec<Neighbor>,
    /// Scratch of the key-based selection.
    keys: Vec<u64>,
    threshold: f32,
    /// Ids that must never enter (e.g. rows deleted from the part being scanned). Checked
    /// only for candidates that pass the threshold, so the scan pays nothing for them.
    excluded: Option<Arc<HashSet<u64>>>,
}

/// Candidates held before a selection trims them back to `k`: `max(2k, k + 32)`,
/// saturating (a `k` near `usize::MAX` means "everything").
fn capacity_for(k: usize) -> usize {
    k.saturating_mul(2).max(k.saturating_add(32))
}

impl TopK {
    /// A collector for the `k` nearest. `k = 0` collects nothing.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            cap: capacity_for(k),
            // Room for a first selection's worth without reallocating (bounded for huge k).
            items: Vec::with_capacity(capacity_for(k).min(4096)),
            keys: Vec::new(),
            threshold: if k == 0 {
                f32::NEG_INFINITY
            } else {
                f32::INFINITY
            },
            excluded: None,
        }
    }

    /// The capacity `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of candidates held (at most `k` once [`into_sorted`](Self::into_sorted)
    /// selects; up to about `2k` before).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The distance a candidate must not exceed to possibly enter (`+inf` until `k` are
    /// known to be at most some distance).
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Sets (or clears) the ids that [`TopK::push`] silently rejects from now on.
    pub fn set_exclusions(&mut self, excluded: Option<Arc<HashSet<u64>>>) {
        self.excluded = excluded;
    }

    /// Offers a candidate; it is kept if it is among the k best by (distance, id) and
    /// not excluded. NaN distances never enter.
    #[inline]
    pub fn push(&mut self, id: u64, distance: f32) {
        // Everything is above the −inf threshold of k = 0.
        if distance > self.threshold || distance.is_nan() || self.k == 0 {
            return;
        }
        if let Some(ex) = &self.excluded
            && ex.contains(&id)
        {
            return;
        }
        self.items.push(Neighbor { id, distance });
        if self.items.len() >= self.cap {
            self.select();
        }
    }

    /// Keeps the `k` best and tightens the threshold to the k-th distance.
    fn select(&mut self) {
        if self.items.len() > self.k && self.k > 0 && !self.order_by_keys(false) {
            self.items
                .select_nth_unstable_by(self.k - 1, neighbor_order);
            self.items.truncate(self.k);
        }
        if self.items.len() == self.k && self.k > 0 {
            self.threshold = self
                .items
                .iter()
                .map(|n| n.distance)
                .fold(f32::NEG_INFINITY, f32::max);
        }
    }

    /// Empties the collector and makes it collect the `k` nearest, keeping its buffer
    /// (searches reuse one collector per query slot instead of allocating per query).
    pub fn reset(&mut self, k: usize) {
        self.k = k;
        self.cap = capacity_for(k);
        self.items.clear();
        self.threshold = if k == 0 {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        };
        self.excluded = None;
    }

    /// The `k` best collected neighbours in no particular order, in place (the collector
    /// keeps them until [`reset`](Self::reset)).
    pub fn best(&mut self) -> &[Neighbor] {
        if self.items.len() > self.k && self.k > 0 && !self.order_by_keys(false) {
            self.items
                .select_nth_unstable_by(self.k - 1, neighbor_order);
        }
        self.items.truncate(self.k);
        &self.items
    }

    /// The collected neighbours, nearest first (ties by id), in place.
    pub fn sorted(&mut self) -> &[Neighbor] {
        if !self.order_by_keys(true) {
            self.best();
            // (distance, id) is a total order on distinct ids: unstable sorting is exact.
            self.items.sort_unstable_by(neighbor_order);
        }
        &self.items
    }

    /// Keeps the `k` best (sorted when `sort`) through `u64` keys `(distance, id)` — plain
    /// integer selection and sorting, much cheaper than a comparator on pairs — when every
    /// id fits in 32 bits; `false` (nothing done) otherwise.
    fn order_by_keys(&mut self, sort: bool) -> bool {
        if self.items.iter().any(|n| n.id > u64::from(u32::MAX)) {
            return false;
        }
        self.keys.clear();
        self.keys.extend(
            self.items
                .iter()
                .map(|n| (u64::from(ordered_bits(n.distance)) << 32) | n.id),
        );
        if self.keys.len() > self.k && self.k > 0 {
            self.keys.select_nth_unstable(self.k - 1);
        }
        self.keys.truncate(self.k);
        if sort {
            self.keys.sort_unstable();
        }
        self.items.clear();
        self.items.extend(self.keys.iter().map(|&key| Neighbor {
            id: key & u64::from(u32::MAX),
            distance: from_ordered_bits((key >> 32) as u32),
        }));
        true
    }

    /// The `k` best collected neighbours in no particular order (cheaper than
    /// [`into_sorted`](Self::into_sorted) when the caller re-orders them anyway).
    pub fn into_best(mut self) -> Vec<Neighbor> {
        self.best();
        self.items
    }

    /// The collected neighbours, nearest first (ties by id).
    pub fn into_sorted(mut self) -> Vec<Neighbor> {
        self.sorted();
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_bits_follow_total_order_and_invert() {
        let xs = [
            f32::NEG_INFINITY,
            -3.5,
            -0.0,
            0.0,
            1e-40,
            2.0,
            7e30,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(ordered_bits(w[0]) < ordered_bits(w[1]), "{} {}", w[0], w[1]);
        }
        for x in xs {
            assert_eq!(from_ordered_bits(ordered_bits(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn key_and_comparator_paths_agree() {
        // Ids above 32 bits take the comparator path; the same stream with small ids the
        // key path: the same distances and id order must come out.
        for big in [false, true] {
            let offset = if big { 1u64 << 40 } else { 0 };
            let mut t = TopK::new(7);
            let mut want = Vec::new();
            for i in 0..300u64 {
                let d = ((i * 7919) % 23) as f32 - 5.0;
                t.push(offset + (i * 31) % 300, d);
                want.push(Neighbor {
                    id: offset + (i * 31) % 300,
                    distance: d,
                });
            }
            want.sort_by(neighbor_order);
            want.truncate(7);
            assert_eq!(t.sorted(), want.as_slice(), "big ids: {big}");
        }
    }

    #[test]
    fn reset_collectors_behave_like_new_ones() {
        let mut reused = TopK::new(5);
        for round in 0..3u64 {
            let k = 2 + round as usize;
            reused.reset(k);
            let mut fresh = TopK::new(k);
            for id in 0..50u64 {
                let d = ((id * 37 + round * 11) % 13) as f32;
                reused.push(id, d);
                fresh.push(id, d);
            }
            assert_eq!(
                reused.sorted(),
                fresh.into_sorted().as_slice(),
                "round {round}"
            );
        }
    }

    #[test]
    fn keeps_k_smallest_with_id_ties() {
        let mut t = TopK::new(3);
        for (id, d) in [(5, 1.0), (1, 2.0), (3, 1.0), (2, 1.0), (9, 0.5), (4, 3.0)] {
            t.push(id, d);
        }
        let ids: Vec<u64> = t.into_sorted().iter().map(|n| n.id).collect();
        assert_eq!(ids, vec![9, 2, 3]);
    }

    #[test]
    fn excluded_ids_never_enter() {
        let mut t = TopK::new(2);
        t.set_exclusions(Some(Arc::new([1u64, 3].into_iter().collect())));
        for (id, d) in [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5)] {
            t.push(id, d);
        }
        let ids: Vec<u64> = t.into_sorted().iter().map(|n| n.id).collect();
        assert_eq!(ids, vec![2, 4]);
    }

    #[test]
    fn matches_a_full_sort_with_ties_and_exclusions() {
        let mut seed = 99u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for round in 0..200 {
            let k = (next() % 40) as usize;
            let n = (next() % 500) as usize;
            let excluded: HashSet<u64> = (0..n as u64).filter(|i| i % 7 == 3).collect();
            let mut t = TopK::new(k);
            if round % 2 == 0 {
                t.set_exclusions(Some(Arc::new(excluded.clone())));
            }
            let mut all = Vec::new();
            for id in 0..n as u64 {
                // Few distinct distances: many ties.
                let distance = (next() % 20) as f32;
                let before = t.threshold();
                t.push(id, distance);
                if round % 2 != 0 || !excluded.contains(&id) {
                    all.push(Neighbor { id, distance });
                }
                assert!(t.threshold() <= before);
            }
            all.sort_by(neighbor_order);
            all.truncate(k);
            if let Some(kth) = all.last().filter(|_| all.len() == k) {
                assert!(t.threshold() >= kth.distance);
            }
            let mut best = t.clone().into_best();
            best.sort_by(neighbor_order);
            assert_eq!(best, all, "round {round}");
            assert_eq!(t.into_sorted(), all, "round {round}");
        }
    }

    #[test]
    fn zero_k_is_empty() {
        let mut t = TopK::new(0);
        t.push(1, 1.0);
        assert!(t.into_sorted().is_empty());
    }
}
