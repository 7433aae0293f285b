//! Recall definitions used by the harness (see `../shared/data/README.md`):
//! `1-recall@R` = fraction of queries whose true nearest neighbour is among the first R
//! results; `10-recall@10` = |top-10 returned ∩ true top-10| / 10, averaged.

/// Recalls of one run; `None` where the result lists are shorter than R (k < R).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Recalls {
    pub r1_at_1: Option<f64>,
    pub r1_at_10: Option<f64>,
    pub r1_at_100: Option<f64>,
    pub r10_at_10: Option<f64>,
}

/// Computes the recalls of `results` (ids, nearest first) against `truth` (ids, nearest
/// first; at least one per query, ten for 10-recall@10). `k` is the requested list length.
pub fn recalls(results: &[Vec<u64>], truth: &[Vec<u64>], k: usize) -> Recalls {
    let n = results.len().min(truth.len());
    if n == 0 {
        return Recalls::default();
    }
    let one_at = |r: usize| -> Option<f64> {
        if k < r {
            return None;
        }
        let hits = (0..n)
            .filter(|&q| {
                truth[q]
                    .first()
                    .is_some_and(|t| results[q].iter().take(r).any(|id| id == t))
            })
            .count();
        Some(hits as f64 / n as f64)
    };
    let ten_at_ten = if k < 10 {
        None
    } else {
        let total: usize = (0..n)
            .map(|q| {
                let want: Vec<u64> = truth[q].iter().take(10).copied().collect();
                results[q]
                    .iter()
                    .take(10)
                    .filter(|id| want.contains(id))
                    .count()
            })
            .sum();
        Some(total as f64 / (10 * n) as f64)
    };
    Recalls {
        r1_at_1: one_at(1),
        r1_at_10: one_at(10),
        r1_at_100: one_at(100),
        r10_at_10: ten_at_ten,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_definitions() {
        let truth = vec![(0..10).collect::<Vec<u64>>(), (100..110).collect()];
        let mut a: Vec<u64> = (0..10).collect();
        a.reverse(); // true NN at rank 10
        let b: Vec<u64> = (105..115).collect(); // true NN missing, 5 of top-10 found
        let r = recalls(&[a, b], &truth, 10);
        assert_eq!(r.r1_at_1, Some(0.0));
        assert_eq!(r.r1_at_10, Some(0.5));
        assert_eq!(r.r1_at_100, None);
        assert_eq!(r.r10_at_10, Some(0.75));
    }
}
