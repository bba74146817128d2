//! Two proportions (error rates): the pooled two-proportion z-test and Newcombe's hybrid
//! score interval for the difference.

use super::{norm_sf, z_critical, StatsError};

/// The result of [`two_proportion_z_test`]: the second sample (`e2 / n2`) against the first.
#[derive(Clone, Debug, PartialEq)]
pub struct TwoProportions {
    pub p1: f64,
    pub p2: f64,
    /// `p2 - p1`.
    pub difference: f64,
    /// The pooled z statistic (None when both proportions are 0 or both 1: no variance).
    pub z: Option<f64>,
    /// Two-sided p-value (1 when there is no variance).
    pub p_value: f64,
    /// Newcombe's hybrid score interval for `p2 - p1`.
    pub lower: f64,
    pub upper: f64,
}

/// Wilson score interval of `e / n`.
fn wilson(e: f64, n: f64, z: f64) -> (f64, f64) {
    let p = e / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let dist = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    (center - dist, center + dist)
}

/// Compare the proportion `e2 / n2` with `e1 / n1`: two-sided pooled z-test (its p-value
/// is that of the chi-square test of the 2x2 table without continuity correction) and
/// Newcombe's interval (method 10) for `p2 - p1` at `confidence`.
pub fn two_proportion_z_test(
    e1: u64,
    n1: u64,
    e2: u64,
    n2: u64,
    confidence: f64,
) -> Result<TwoProportions, StatsError> {
    let z_crit = z_critical(confidence)?;
    if n1 == 0 || n2 == 0 {
        return Err(StatsError::EmptySample);
    }
    if e1 > n1 || e2 > n2 {
        return Err(StatsError::BadCounts(format!(
            "more events than trials ({e1}/{n1}, {e2}/{n2})"
        )));
    }
    let (e1, n1, e2, n2) = (e1 as f64, n1 as f64, e2 as f64, n2 as f64);
    let (p1, p2) = (e1 / n1, e2 / n2);
    let pooled = (e1 + e2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let (z, p_value) = if se > 0.0 {
        let z = (p2 - p1) / se;
        (Some(z), (2.0 * norm_sf(z.abs())).min(1.0))
    } else {
        (None, 1.0)
    };
    let (l1, u1) = wilson(e1, n1, z_crit);
    let (l2, u2) = wilson(e2, n2, z_crit);
    let difference = p2 - p1;
    Ok(TwoProportions {
        p1,
        p2,
        difference,
        z,
        p_value,
        lower: difference - ((p2 - l2).powi(2) + (u1 - p1).powi(2)).sqrt(),
        upper: difference + ((u2 - p2).powi(2) + (p1 - l1).powi(2)).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcombe_example_and_no_variance() {
        // Newcombe (1998), table II example (a): 56/70 vs 48/80: difference 0.2,
        // method 10 interval 0.0524 to 0.3339 (p2 - p1 with sample 2 = 56/70).
        let r = two_proportion_z_test(48, 80, 56, 70, 0.95).expect("test");
        assert!((r.difference - 0.2).abs() < 1e-12);
        assert!((r.lower - 0.0524).abs() < 5e-5, "{r:?}");
        assert!((r.upper - 0.3339).abs() < 5e-5, "{r:?}");
        assert!(r.p_value < 0.01, "{r:?}");
        let none = two_proportion_z_test(0, 100, 0, 50, 0.95).expect("test");
        assert_eq!((none.z, none.p_value, none.difference), (None, 1.0, 0.0));
        assert!(none.lower < 0.0 && none.upper > 0.0, "{none:?}");
        assert!(two_proportion_z_test(3, 2, 0, 1, 0.95).is_err());
        assert_eq!(
            two_proportion_z_test(0, 0, 0, 1, 0.95),
            Err(StatsError::EmptySample)
        );
    }
}
