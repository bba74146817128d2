//! Verdicts beyond absolute SLOs, as `assess` records them in the result: relative SLOs
//! (against a baseline version), regression checks (against the previous loop) and the
//! statistical comparison of versions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which side of the reference a metric must stay on.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// The value may be at most `percent` % above the reference (latency, errors).
    Upper,
    /// The value may be at most `percent` % below the reference (throughput, revenue).
    Lower,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Upper => "upper",
            Bound::Lower => "lower",
        }
    }

    /// The limit `percent` % away from `reference` on this side (`|reference|` scales it,
    /// so negative references work too).
    pub fn limit(self, reference: f64, percent: f64) -> f64 {
        let slack = reference.abs() * percent / 100.0;
        match self {
            Bound::Upper => reference + slack,
            Bound::Lower => reference - slack,
        }
    }

    /// Whether `value` is within `limit`.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Bound::Upper => value <= limit,
            Bound::Lower => value >= limit,
        }
    }
}

/// One relative limit, evaluated for every version.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RelativeCheck {
    /// The metric (normalised name).
    pub metric: String,
    pub bound: Bound,
    /// The allowed change in percent of the reference.
    pub percent: f64,
    /// Per version (index = version).
    pub versions: Vec<RelativeOutcome>,
}

/// A relative limit for one version.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RelativeOutcome {
    /// The version's latest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The reference: the baseline's value, or this version's value in the previous loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<f64>,
    /// The limit derived from the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    pub satisfied: bool,
    /// Why there is nothing to compare (missing value, first loop, the baseline itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Limits relative to a baseline version (`assess.relativeSLOs`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RelativeSlos {
    /// Index of the baseline version.
    pub baseline: usize,
    /// Name of the baseline version.
    pub baseline_name: String,
    pub checks: Vec<RelativeCheck>,
}

/// Limits relative to the previous loop (`assess.regression`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Regression {
    pub checks: Vec<RelativeCheck>,
}

/// Whether every check holds for every version.
pub fn all_satisfied(checks: &[RelativeCheck]) -> bool {
    checks
        .iter()
        .all(|c| c.versions.iter().all(|v| v.satisfied))
}

/// The statistical test behind a comparison.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StatTest {
    /// Mann-Whitney U on the latency histograms (effect: Hodges-Lehmann shift in the
    /// metric's units).
    MannWhitneyU,
    /// Pooled two-proportion z-test on error counts (effect: difference of error rates).
    TwoProportionZ,
}

impl StatTest {
    pub fn as_str(self) -> &'static str {
        match self {
            StatTest::MannWhitneyU => "Mann-Whitney U",
            StatTest::TwoProportionZ => "two-proportion z",
        }
    }
}

/// The verdict of one version against the baseline on one metric (lower is better).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Significantly lower (faster, fewer errors) than the baseline.
    Better,
    /// Significantly higher than the baseline.
    Worse,
    /// No significant difference at the level `alpha`.
    NoDifference,
    /// Fewer observations than `minSamples` in this version or the baseline.
    NotEnoughData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoDifference => "no difference",
            Verdict::NotEnoughData => "not enough data",
        }
    }
}

/// One version compared with the baseline on one metric.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionComparison {
    pub version: usize,
    pub version_name: String,
    pub verdict: Verdict,
    /// Observations (requests) of the baseline and of this version.
    pub baseline_samples: u64,
    pub samples: u64,
    /// U of this version (Mann-Whitney) or the z statistic (proportions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<f64>,
    /// Two-sided p-value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// `exact` or `asymptotic` (Mann-Whitney).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Effect size: the Hodges-Lehmann shift of this version's latency relative to the
    /// baseline's (metric units), or the difference of error rates (this version minus the
    /// baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<f64>,
    /// Confidence interval of the effect at level 1 - alpha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_lower: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_upper: Option<f64>,
    /// Common-language effect size (Mann-Whitney): the probability that a request of this
    /// version is slower than one of the baseline (ties count half).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability_greater: Option<f64>,
    /// Error rates of the baseline and of this version (proportions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Why there is no verdict (not enough data, missing metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every version compared with the baseline on one metric.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricComparison {
    /// The metric as given (`http/latency`, `http/error-rate`).
    pub metric: String,
    pub test: StatTest,
    /// One entry per version other than the baseline.
    pub versions: Vec<VersionComparison>,
    /// The winning version: the significantly best one better than the baseline, or the
    /// baseline when every other version is significantly worse; none otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner_name: Option<String>,
}

/// The statistical comparison of versions (`assess.compare`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Comparisons {
    pub baseline: usize,
    pub baseline_name: String,
    /// Significance level of each comparison (no correction for multiple comparisons).
    pub alpha: f64,
    /// Observations each version needs for a verdict.
    pub min_samples: u64,
    pub metrics: Vec<MetricComparison>,
}

impl Comparisons {
    /// No version is significantly worse than the baseline, and every comparison had
    /// enough data (`iter8 assert -c comparisons`).
    pub fn no_degradation(&self) -> bool {
        self.metrics.iter().all(|m| {
            m.versions
                .iter()
                .all(|v| matches!(v.verdict, Verdict::Better | Verdict::NoDifference))
        })
    }

    /// Every compared metric has a winner (`iter8 assert -c winner`).
    pub fn all_have_winners(&self) -> bool {
        !self.metrics.is_empty() && self.metrics.iter().all(|m| m.winner.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_scale_with_the_magnitude_of_the_reference() {
        assert_eq!(Bound::Upper.limit(100.0, 10.0), 110.0);
        assert_eq!(Bound::Lower.limit(100.0, 10.0), 90.0);
        assert_eq!(Bound::Upper.limit(-50.0, 10.0), -45.0);
        assert_eq!(Bound::Upper.limit(0.0, 10.0), 0.0);
        assert!(Bound::Upper.holds(110.0, 110.0) && !Bound::Upper.holds(110.1, 110.0));
        assert!(Bound::Lower.holds(90.0, 90.0) && !Bound::Lower.holds(89.9, 90.0));
    }
}
