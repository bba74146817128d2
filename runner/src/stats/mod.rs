//! Statistics for comparing versions: pure functions, no I/O.
//!
//! - [`mannwhitney`]: the Mann-Whitney U test on samples given as distinct values with
//!   multiplicities (a latency histogram's buckets, each bucket one tie group), as scipy's
//!   `mannwhitneyu(x, y, alternative='two-sided')` computes it (`method='asymptotic'`
//!   with tie and continuity correction, `method='exact'`, and scipy's `auto` choice), plus the
//!   Hodges-Lehmann shift with its distribution-free confidence interval and the
//!   common-language effect size.
//! - [`proportions`]: the two-proportion z-test (pooled; scipy's `chi2_contingency(...,
//!   correction=False)` p-value) with Newcombe's hybrid score interval for the difference
//!   (statsmodels' `confint_proportions_2indep(method='newcomb')`).
//!
//! The normal distribution comes from `statrs` (relative error of its survival function
//! about 1e-10, also far in the tails where p-values live). Every function here is checked
//! against scipy / statsmodels on generated cases (`runner/tests/stats_vectors.rs`,
//! `scripts/stats-vectors`).

pub mod mannwhitney;
pub mod proportions;

pub use mannwhitney::{
    hodges_lehmann, mann_whitney_u, probability_greater, MannWhitney, MwuMethod, Shift,
};
pub use proportions::{two_proportion_z_test, TwoProportions};

use statrs::distribution::{ContinuousCDF, Normal};

/// Why a statistic cannot be computed from the given data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A sample has no observations.
    #[error("a sample is empty")]
    EmptySample,
    /// A value is NaN or infinite.
    #[error("a sample holds a value that is not a finite number")]
    NotFinite,
    /// More events than trials, or no trials.
    #[error("{0}")]
    BadCounts(String),
    /// The confidence level is not in (0, 1).
    #[error("confidence level {0} is not in (0, 1)")]
    BadConfidence(f64),
}

fn standard_normal() -> Normal {
    Normal::standard()
}

/// P(Z > z) for a standard normal Z.
pub fn norm_sf(z: f64) -> f64 {
    if z == f64::INFINITY {
        return 0.0;
    }
    if z == f64::NEG_INFINITY {
        return 1.0;
    }
    standard_normal().sf(z)
}

/// The standard normal quantile: z with P(Z <= z) = p, for p in (0, 1).
pub fn norm_ppf(p: f64) -> f64 {
    standard_normal().inverse_cdf(p)
}

/// The two-sided critical value for a confidence level (0.95 -> 1.959964...).
pub fn z_critical(confidence: f64) -> Result<f64, StatsError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::BadConfidence(confidence));
    }
    Ok(norm_ppf(1.0 - (1.0 - confidence) / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_matches_known_values() {
        // scipy.stats.norm.sf / ppf
        assert!((norm_sf(1.959963984540054) - 0.025).abs() < 1e-11);
        assert!((norm_sf(0.0) - 0.5).abs() < 1e-12);
        assert!((norm_sf(8.0) / 6.22096057427174e-16 - 1.0).abs() < 1e-9);
        assert!((z_critical(0.95).unwrap_or_default() - 1.959963984540054).abs() < 1e-12);
        assert!((z_critical(0.99).unwrap_or_default() - 2.5758293035489004).abs() < 1e-12);
        assert_eq!(norm_sf(f64::NEG_INFINITY), 1.0);
        assert_eq!(z_critical(1.0), Err(StatsError::BadConfidence(1.0)));
    }
}
