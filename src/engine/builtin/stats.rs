//! Descriptive statistics of one numeric column.

use serde::Serialize;

#[derive(Debug, Serialize, PartialEq)]
pub struct ColumnStats {
    pub count: usize,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced: Option<AdvancedStats>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct AdvancedStats {
    pub std_dev: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
}

/// Stats of the values, or None when there are none. Std dev is the sample one (n - 1),
/// percentiles interpolate linearly between ranks, as pandas' `describe` does.
pub fn column_stats(values: &[f64], advanced: bool) -> Option<ColumnStats> {
    if values.is_empty() {
        return None;
    }
    let count = values.len();
    let mean = values.iter().sum::<f64>() / count as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let advanced = advanced.then(|| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let variance = if count > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1) as f64
        } else {
            0.0
        };
        AdvancedStats {
            std_dev: variance.sqrt(),
            p25: percentile(&sorted, 0.25),
            p50: percentile(&sorted, 0.50),
            p75: percentile(&sorted, 0.75),
            p90: percentile(&sorted, 0.90),
            p99: percentile(&sorted, 0.99),
        }
    });
    Some(ColumnStats {
        count,
        mean,
        min,
        max,
        advanced,
    })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_values() {
        let s = column_stats(&[1.0, 2.0, 3.0, 4.0], true).unwrap();
        assert_eq!((s.count, s.mean, s.min, s.max), (4, 2.5, 1.0, 4.0));
        let a = s.advanced.unwrap();
        assert!((a.std_dev - 1.2909944487358056).abs() < 1e-12);
        assert_eq!(a.p50, 2.5);
        assert_eq!(a.p25, 1.75);
    }

    #[test]
    fn empty_has_no_stats() {
        assert!(column_stats(&[], true).is_none());
        assert!(column_stats(&[5.0], false).unwrap().advanced.is_none());
    }
}
