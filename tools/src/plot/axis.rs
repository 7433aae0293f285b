//! Axis scales and ticks for the recall–QPS plot: a linear recall axis with 1-2-5 steps and a
//! logarithmic QPS axis whose ends are 1-2-5 multiples of a power of ten.

/// One tick mark; `label` is `None` for an unlabelled (minor) tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub label: Option<String>,
}

/// A finished axis: its range, its scale and its ticks (inside the range, ascending).
#[derive(Debug, Clone)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub ticks: Vec<Tick>,
}

/// Relative slack for comparisons of computed tick values with range ends.
const EPS: f64 = 1e-9;

impl Axis {
    /// Where `value` sits along the axis: 0 at `lo`, 1 at `hi`.
    pub fn fraction(&self, value: f64) -> f64 {
        if self.log {
            (value.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (value - self.lo) / (self.hi - self.lo)
        }
    }

    /// A linear axis over recalls `min..=max` (both in `[0, 1]`), ends on multiples of the
    /// step, about five to ten ticks, all labelled.
    pub fn linear(min: f64, max: f64) -> Axis {
        let (mut min, mut max) = (min.clamp(0.0, 1.0), max.clamp(0.0, 1.0));
        if max - min < 1e-6 {
            min = (min - 0.05).max(0.0);
            max = (max + 0.05).min(1.0);
        }
        let step = nice_step((max - min) / 5.0);
        let first = (min / step + EPS).floor() as i64;
        let last = (max / step - EPS).ceil() as i64;
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        let ticks = (first..=last)
            .map(|i| {
                let value = i as f64 * step;
                Tick {
                    value,
                    label: Some(format!("{value:.decimals$}")),
                }
            })
            .collect();
        Axis {
            lo: first as f64 * step,
            hi: last as f64 * step,
            log: false,
            ticks,
        }
    }

    /// A logarithmic axis over positive values `min..=max`. Ticks at every m·10^e
    /// (m = 1..9) inside the range; labels on m = 1 only, on m ∈ {1, 2, 5} when the range
    /// spans at most 3 decades, on m ∈ {1, 2, 3, 5} when it spans at most one.
    pub fn log(min: f64, max: f64) -> Axis {
        let (mut lo, mut hi) = (one_two_five_below(min), one_two_five_above(max));
        if hi / lo < 2.0 + EPS {
            lo = one_two_five_below(min / 1.5);
            hi = one_two_five_above(max * 1.5);
        }
        let decades = (hi / lo).log10();
        let labelled: &[u32] = if decades <= 1.0 + EPS {
            &[1, 2, 3, 5]
        } else if decades <= 3.0 + EPS {
            &[1, 2, 5]
        } else {
            &[1]
        };
        let mut ticks = Vec::new();
        for exponent in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
            let power = 10f64.powi(exponent);
            for m in 1..=9u32 {
                let value = m as f64 * power;
                if value < lo * (1.0 - EPS) || value > hi * (1.0 + EPS) {
                    continue;
                }
                ticks.push(Tick {
                    value,
                    label: labelled.contains(&m).then(|| format_qps(value)),
                });
            }
        }
        Axis {
            lo,
            hi,
            log: true,
            ticks,
        }
    }
}

/// The smallest 1-2-5 step (1, 2 or 5 times a power of ten) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    one_two_five_above(raw.max(1e-6))
}

/// The largest 1, 2 or 5 times a power of ten that is at most `v` (`v` > 0).
fn one_two_five_below(v: f64) -> f64 {
    let power = 10f64.powi(v.log10().floor() as i32);
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&c| c <= v * (1.0 + EPS))
        .unwrap_or(power / 2.0)
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `v` (`v` > 0).
fn one_two_five_above(v: f64) -> f64 {
    let power = 10f64.powi(v.log10().floor() as i32);
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&c| c >= v * (1.0 - EPS))
        .unwrap_or(power * 10.0)
}

/// A QPS value for a tick label: `500`, `2k`, `10k`, `1.5M`.
pub fn format_qps(value: f64) -> String {
    let (scaled, suffix) = if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &Axis) -> Vec<String> {
        axis.ticks.iter().filter_map(|t| t.label.clone()).collect()
    }

    #[test]
    fn log_axis_ends_on_one_two_five_and_labels_by_span() {
        let axis = Axis::log(950.0, 24_000.0);
        assert_eq!((axis.lo, axis.hi), (500.0, 50_000.0));
        assert_eq!(
            labels(&axis),
            ["500", "1k", "2k", "5k", "10k", "20k", "50k"]
        );
        // Ticks are every m·10^e inside the range, ascending.
        let values: Vec<f64> = axis.ticks.iter().map(|t| t.value).collect();
        assert_eq!(values.first(), Some(&500.0));
        assert_eq!(values.last(), Some(&50_000.0));
        assert!(values.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(values.len(), 5 + 9 + 5);

        let wide = Axis::log(3.0, 2.0e6);
        assert_eq!((wide.lo, wide.hi), (2.0, 2.0e6));
        assert_eq!(labels(&wide), ["10", "100", "1k", "10k", "100k", "1M"]);

        let narrow = Axis::log(1_100.0, 1_900.0);
        assert_eq!((narrow.lo, narrow.hi), (500.0, 5_000.0));
        assert_eq!(labels(&narrow), ["500", "1k", "2k", "3k", "5k"]);
    }

    #[test]
    fn log_fraction_is_linear_in_log10() {
        let axis = Axis::log(100.0, 10_000.0);
        assert_eq!((axis.lo, axis.hi), (100.0, 10_000.0));
        assert!((axis.fraction(1_000.0) - 0.5).abs() < 1e-12);
        assert!((axis.fraction(2_000.0) - (0.5 + 2f64.log10() / 2.0)).abs() < 1e-12);
    }

    #[test]
    fn linear_axis_steps() {
        let axis = Axis::linear(0.31, 0.78);
        assert_eq!(labels(&axis), ["0.3", "0.4", "0.5", "0.6", "0.7", "0.8"]);
        assert!((axis.lo - 0.3).abs() < 1e-12 && (axis.hi - 0.8).abs() < 1e-12);
        let fine = Axis::linear(0.952, 0.991);
        assert_eq!(
            fine.ticks.first().and_then(|t| t.label.clone()),
            Some("0.95".into())
        );
        assert_eq!(
            fine.ticks.last().and_then(|t| t.label.clone()),
            Some("1.00".into())
        );
        let single = Axis::linear(1.0, 1.0);
        assert!(single.lo < 1.0 && (single.hi - 1.0).abs() < 1e-12);
        let full = Axis::linear(0.0, 1.0);
        assert_eq!(labels(&full), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    }

    #[test]
    fn qps_labels() {
        assert_eq!(format_qps(500.0), "500");
        assert_eq!(format_qps(2_000.0), "2k");
        assert_eq!(format_qps(1.5e6), "1.5M");
        assert_eq!(format_qps(0.5), "0.5");
    }
}
