//! Top-k selection: the k smallest distances seen so far, ties broken by the smaller id.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
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

#[derive(Clone, Copy, PartialEq)]
struct HeapItem(Neighbor);
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        neighbor_order(&self.0, &other.0)
    }
}

/// Keeps the `k` best (smallest) neighbours; `threshold()` lets scans skip candidates
/// that cannot enter without touching the heap.
#[derive(Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<HeapItem>,
    /// Ids that must never enter (e.g. rows deleted from the part being scanned). Checked
    /// only for candidates that pass the threshold, so the scan pays nothing for them.
    excluded: Option<Arc<HashSet<u64>>>,
}

impl TopK {
    /// A collector for the `k` nearest. `k = 0` collects nothing.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            excluded: None,
        }
    }

    /// The capacity `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number collected so far.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The distance a candidate must not exceed to possibly enter (`+inf` until full).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.distance)
        }
    }

    /// Sets (or clears) the ids that [`TopK::push`] silently rejects from now on.
    pub fn set_exclusions(&mut self, excluded: Option<Arc<HashSet<u64>>>) {
        self.excluded = excluded;
    }

    /// Offers a candidate; keeps it if it is among the k best by (distance, id) and not
    /// excluded.
    #[inline]
    pub fn push(&mut self, id: u64, distance: f32) {
        if self.k == 0 {
            return;
        }
        if let Some(ex) = &self.excluded
            && ex.contains(&id)
        {
            return;
        }
        let item = HeapItem(Neighbor { id, distance });
        if self.heap.len() < self.k {
            self.heap.push(item);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && item < *worst
        {
            *worst = item;
        }
    }

    /// The collected neighbours, nearest first (ties by id).
    pub fn into_sorted(self) -> Vec<Neighbor> {
        let mut v: Vec<Neighbor> = self.heap.into_iter().map(|h| h.0).collect();
        v.sort_by(neighbor_order);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn zero_k_is_empty() {
        let mut t = TopK::new(0);
        t.push(1, 1.0);
        assert!(t.into_sorted().is_empty());
    }
}
