//! Statistical comparison of every version with the baseline (`compare`):
//! latency histograms with the Mann-Whitney U test (each bucket one tie group at its
//! midpoint; effect: Hodges-Lehmann shift), error rates with the two-proportion z-test
//! (effect: difference of rates, Newcombe's interval). A version is `better` or `worse`
//! only when the difference is significant at `alpha`; below `minSamples` observations it
//! is `not enough data`.
//!
//! ```yaml
//! baseline: v1
//! compare:
//!   metrics: [http/latency, http/error-rate]
//!   alpha: 0.05        # default
//!   minSamples: 20     # default
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::metrics::normalize_metric_name;
use crate::model::verdicts::{Comparisons, MetricComparison, StatTest, Verdict, VersionComparison};
use crate::model::{Histogram, Insights};
use crate::stats::{self, MwuMethod};

/// Inputs of `compare`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompareSpec {
    /// Metrics to compare with the baseline: latency histograms (`http/latency`,
    /// `grpc/latency`, `http-<endpoint>/latency`) and error rates (`http/error-rate`, ...;
    /// from the same prefix's error-count and request-count).
    pub metrics: Vec<String>,
    /// Significance level of each comparison, in (0, 0.5]. Default 0.05.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Observations (requests) each version and the baseline need for a verdict. Default 20.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
}

fn default_alpha() -> f64 {
    0.05
}

fn default_min_samples() -> u64 {
    20
}

/// What a compared metric is.
#[derive(Clone, Debug, PartialEq)]
pub enum Compared {
    /// A latency histogram (the normalised metric name).
    Latency(String),
    /// An error rate: the prefix whose error-count and request-count are used.
    ErrorRate(String),
}

impl CompareSpec {
    /// Classify every metric, or say which one cannot be compared (field path, message).
    pub fn compared(&self) -> Result<Vec<Compared>, (String, String)> {
        if self.metrics.is_empty() {
            return Err((
                "with.compare.metrics".into(),
                "empty; list what to compare, e.g. [http/latency, http/error-rate]".into(),
            ));
        }
        self.metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let name = normalize_metric_name(m);
                match name.split_once('/') {
                    Some((p, "latency")) if !p.is_empty() => Ok(Compared::Latency(name)),
                    Some((p, "error-rate")) if !p.is_empty() => {
                        Ok(Compared::ErrorRate(p.to_string()))
                    }
                    _ => Err((
                        format!("with.compare.metrics[{i}]"),
                        format!(
                            "{m:?} cannot be compared statistically; compare latency histograms \
                             (<prefix>/latency, e.g. http/latency) or error rates \
                             (<prefix>/error-rate); use relativeSLOs for other metrics"
                        ),
                    )),
                }
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        self.compared()?;
        if !(self.alpha > 0.0 && self.alpha <= 0.5) {
            return Err((
                "with.compare.alpha".into(),
                format!(
                    "{} is not a significance level; use a number in (0, 0.5], e.g. 0.05",
                    self.alpha
                ),
            ));
        }
        if self.min_samples == 0 {
            return Err((
                "with.compare.minSamples".into(),
                "must be at least 1 (default 20)".into(),
            ));
        }
        Ok(())
    }
}

/// The name of version `v` for people.
pub fn version_name(insights: &Insights, v: usize) -> String {
    match insights.version_names.get(v) {
        Some(n) if !n.is_empty() => n.clone(),
        _ if insights.num_versions <= 1 => "default".into(),
        _ => format!("version {v}"),
    }
}

/// A histogram as weighted values: each bucket at its midpoint.
fn weighted(h: &Histogram) -> Vec<(f64, u64)> {
    h.buckets
        .iter()
        .map(|b| ((b.lower + b.upper) / 2.0, b.count))
        .collect()
}

fn empty(v: usize, name: String, baseline_samples: u64, samples: u64) -> VersionComparison {
    VersionComparison {
        version: v,
        version_name: name,
        verdict: Verdict::NotEnoughData,
        baseline_samples,
        samples,
        statistic: None,
        p_value: None,
        method: None,
        effect: None,
        ci_lower: None,
        ci_upper: None,
        probability_greater: None,
        baseline_rate: None,
        rate: None,
        note: None,
    }
}

fn not_enough(mut c: VersionComparison, spec: &CompareSpec, baseline: &str) -> VersionComparison {
    c.note = Some(format!(
        "{} has {} observations, baseline {baseline} {}; each needs minSamples {}",
        c.version_name, c.samples, c.baseline_samples, spec.min_samples
    ));
    c
}

fn verdict(p: f64, alpha: f64, higher: bool) -> Verdict {
    if p < alpha {
        if higher {
            Verdict::Worse
        } else {
            Verdict::Better
        }
    } else {
        Verdict::NoDifference
    }
}

fn compare_latency(
    insights: &Insights,
    metric: &str,
    baseline: usize,
    v: usize,
    spec: &CompareSpec,
) -> VersionComparison {
    let hist = |v: usize| insights.histogram_metric_values.get(v)?.get(metric);
    let (hb, hv) = (hist(baseline), hist(v));
    let count = |h: Option<&Histogram>| {
        h.map(|h| h.buckets.iter().map(|b| b.count).sum())
            .unwrap_or(0)
    };
    let mut c = empty(v, version_name(insights, v), count(hb), count(hv));
    let baseline_name = version_name(insights, baseline);
    let (Some(hb), Some(hv)) = (hb, hv) else {
        return not_enough(c, spec, &baseline_name);
    };
    if c.samples < spec.min_samples || c.baseline_samples < spec.min_samples {
        return not_enough(c, spec, &baseline_name);
    }
    let (xb, xv) = (weighted(hb), weighted(hv));
    let confidence = 1.0 - spec.alpha;
    let result = (|| {
        let test = stats::mann_whitney_u(&xv, &xb, MwuMethod::Auto)?;
        let shift = stats::hodges_lehmann(&xb, &xv, confidence)?;
        let greater = stats::probability_greater(&xb, &xv)?;
        Ok::<_, stats::StatsError>((test, shift, greater))
    })();
    match result {
        Ok((test, shift, greater)) => {
            c.statistic = Some(test.u1);
            c.p_value = Some(test.p_value);
            c.method = Some(
                match test.method {
                    MwuMethod::Exact => "exact",
                    _ => "asymptotic",
                }
                .into(),
            );
            c.effect = Some(shift.estimate);
            c.ci_lower = Some(shift.lower);
            c.ci_upper = Some(shift.upper);
            c.probability_greater = Some(greater);
            c.verdict = verdict(test.p_value, spec.alpha, greater > 0.5);
        }
        Err(e) => c.note = Some(format!("cannot compare: {e}")),
    }
    c
}

fn compare_errors(
    insights: &Insights,
    prefix: &str,
    baseline: usize,
    v: usize,
    spec: &CompareSpec,
) -> VersionComparison {
    let count = |v: usize, what: &str| {
        insights
            .latest(v, &format!("{prefix}/{what}"))
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(|x| x.round() as u64)
    };
    let (nb, nv) = (count(baseline, "request-count"), count(v, "request-count"));
    let (eb, ev) = (count(baseline, "error-count"), count(v, "error-count"));
    let mut c = empty(
        v,
        version_name(insights, v),
        nb.unwrap_or(0),
        nv.unwrap_or(0),
    );
    let baseline_name = version_name(insights, baseline);
    let (Some(eb), Some(ev)) = (eb, ev) else {
        c.note = Some(format!(
            "{prefix}/error-count or {prefix}/request-count is missing"
        ));
        return c;
    };
    if c.samples < spec.min_samples || c.baseline_samples < spec.min_samples {
        return not_enough(c, spec, &baseline_name);
    }
    match stats::two_proportion_z_test(eb, c.baseline_samples, ev, c.samples, 1.0 - spec.alpha) {
        Ok(t) => {
            c.statistic = t.z;
            c.p_value = Some(t.p_value);
            c.effect = Some(t.difference);
            c.ci_lower = Some(t.lower);
            c.ci_upper = Some(t.upper);
            c.baseline_rate = Some(t.p1);
            c.rate = Some(t.p2);
            c.verdict = verdict(t.p_value, spec.alpha, t.difference > 0.0);
        }
        Err(e) => c.note = Some(format!("cannot compare: {e}")),
    }
    c
}

/// The winner of one metric: the best version significantly better than the baseline
/// (smallest effect, then smallest p-value), or the baseline when every other version is
/// significantly worse.
fn winner(baseline: usize, versions: &[VersionComparison]) -> Option<usize> {
    let better = versions
        .iter()
        .filter(|c| c.verdict == Verdict::Better)
        .min_by(|a, b| {
            let key = |c: &VersionComparison| {
                (
                    c.effect.unwrap_or(f64::INFINITY),
                    c.p_value.unwrap_or(f64::INFINITY),
                )
            };
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        });
    match better {
        Some(c) => Some(c.version),
        None if !versions.is_empty() && versions.iter().all(|c| c.verdict == Verdict::Worse) => {
            Some(baseline)
        }
        None => None,
    }
}

/// Compare every version with `baseline` on every metric of `spec`. Metrics that cannot
/// be compared were rejected by [`CompareSpec::validate`] and are skipped here.
pub fn compare(insights: &Insights, baseline: usize, spec: &CompareSpec) -> Comparisons {
    let n = insights.num_versions.max(1);
    let compared = spec.compared().unwrap_or_default();
    let metrics = spec
        .metrics
        .iter()
        .zip(compared)
        .map(|(metric, what)| {
            let (test, versions): (StatTest, Vec<VersionComparison>) = match &what {
                Compared::Latency(name) => (
                    StatTest::MannWhitneyU,
                    (0..n)
                        .filter(|v| *v != baseline)
                        .map(|v| compare_latency(insights, name, baseline, v, spec))
                        .collect(),
                ),
                Compared::ErrorRate(prefix) => (
                    StatTest::TwoProportionZ,
                    (0..n)
                        .filter(|v| *v != baseline)
                        .map(|v| compare_errors(insights, prefix, baseline, v, spec))
                        .collect(),
                ),
            };
            let winner = winner(baseline, &versions);
            MetricComparison {
                metric: normalize_metric_name(metric),
                test,
                winner_name: winner.map(|w| version_name(insights, w)),
                winner,
                versions,
            }
        })
        .collect();
    Comparisons {
        baseline,
        baseline_name: version_name(insights, baseline),
        alpha: spec.alpha,
        min_samples: spec.min_samples,
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HistBucket;

    /// A histogram with `count` observations spread over buckets [m, m+1) ms, m from
    /// `from` (one more in each bucket than the last, wrapped at `width` buckets).
    fn hist(from: u64, width: u64, count: u64) -> Histogram {
        let mut buckets: Vec<HistBucket> = Vec::new();
        for i in 0..count {
            let m = (from + (i * 7) % width) as f64;
            match buckets.iter_mut().find(|b| b.lower == m) {
                Some(b) => b.count += 1,
                None => buckets.push(HistBucket {
                    lower: m,
                    upper: m + 1.0,
                    count: 1,
                }),
            }
        }
        buckets.sort_by(|a, b| a.lower.total_cmp(&b.lower));
        Histogram {
            count,
            buckets,
            ..Default::default()
        }
    }

    fn insights(hists: &[Histogram], errors: &[(f64, f64)]) -> Insights {
        let mut i = Insights::default();
        let names: Vec<String> = (1..=hists.len().max(errors.len()))
            .map(|v| format!("v{v}"))
            .collect();
        i.ensure_versions(&names);
        for (v, h) in hists.iter().enumerate() {
            i.record_histogram(v, "http/latency", h);
        }
        for (v, &(e, n)) in errors.iter().enumerate() {
            i.record(v, "http/error-count", e);
            i.record(v, "http/request-count", n);
        }
        i
    }

    fn spec(yaml: &str) -> CompareSpec {
        serde_yaml::from_str(yaml).expect("compare")
    }

    #[test]
    fn latency_verdicts_and_winner() {
        // v2 is 5 ms slower than v1; v3 the same as v1.
        let i = insights(
            &[hist(10, 10, 200), hist(15, 10, 200), hist(10, 10, 150)],
            &[],
        );
        let s = spec("metrics: [http/latency]\n");
        let c = compare(&i, 0, &s);
        assert_eq!(
            (c.baseline_name.as_str(), c.alpha, c.min_samples),
            ("v1", 0.05, 20)
        );
        let m = &c.metrics[0];
        assert_eq!(m.test, StatTest::MannWhitneyU);
        let v2 = &m.versions[0];
        assert_eq!((v2.version, v2.verdict), (1, Verdict::Worse));
        assert_eq!(v2.effect, Some(5.0));
        assert!(v2.ci_lower.unwrap_or_default() <= 5.0 && v2.ci_upper.unwrap_or_default() >= 5.0);
        assert!(
            v2.p_value.unwrap_or(1.0) < 1e-6 && v2.probability_greater.unwrap_or_default() > 0.5
        );
        assert_eq!(m.versions[1].verdict, Verdict::NoDifference);
        assert_eq!(m.winner, None, "v3 is not worse: the baseline does not win");
        assert!(!c.no_degradation());
        // With v2 as the baseline, both others are significantly faster; v1 and v3 tie on
        // the shift, v1 has the smaller p-value... either way a winner exists.
        let c = compare(&i, 1, &s);
        assert!(c.metrics[0]
            .versions
            .iter()
            .all(|v| v.verdict == Verdict::Better));
        assert!(matches!(c.metrics[0].winner, Some(0 | 2)));
        assert!(c.no_degradation() && c.all_have_winners());
        // Only v2 against v1: the baseline wins when every other version is worse.
        let two = insights(&[hist(10, 10, 200), hist(15, 10, 200)], &[]);
        assert_eq!(
            compare(&two, 0, &s).metrics[0].winner_name.as_deref(),
            Some("v1")
        );
    }

    #[test]
    fn not_enough_data_is_a_verdict() {
        let i = insights(&[hist(10, 10, 200), hist(15, 10, 19)], &[]);
        let c = compare(&i, 0, &spec("metrics: [http/latency]\n"));
        let v = &c.metrics[0].versions[0];
        assert_eq!(v.verdict, Verdict::NotEnoughData);
        assert_eq!((v.samples, v.baseline_samples), (19, 200));
        assert!(
            v.note
                .as_deref()
                .unwrap_or_default()
                .contains("minSamples 20"),
            "{v:?}"
        );
        assert!(v.p_value.is_none());
        assert!(!c.no_degradation());
        // Lower minSamples: a verdict.
        let c = compare(&i, 0, &spec("metrics: [http/latency]\nminSamples: 10\n"));
        assert_eq!(c.metrics[0].versions[0].verdict, Verdict::Worse);
        // No histogram at all for the metric.
        let c = compare(&i, 0, &spec("metrics: [grpc/latency]\n"));
        assert_eq!(c.metrics[0].versions[0].verdict, Verdict::NotEnoughData);
    }

    #[test]
    fn error_rates() {
        let i = insights(
            &[],
            &[
                (10.0, 1000.0),
                (40.0, 1000.0),
                (12.0, 1000.0),
                (0.0, 1000.0),
            ],
        );
        let c = compare(&i, 0, &spec("metrics: [http/error-rate]\nalpha: 0.01\n"));
        let m = &c.metrics[0];
        assert_eq!(m.test, StatTest::TwoProportionZ);
        let verdicts: Vec<Verdict> = m.versions.iter().map(|v| v.verdict).collect();
        assert_eq!(
            verdicts,
            vec![Verdict::Worse, Verdict::NoDifference, Verdict::Better]
        );
        assert_eq!(m.versions[0].effect, Some(0.03));
        assert_eq!(m.versions[0].baseline_rate, Some(0.01));
        assert_eq!(m.winner_name.as_deref(), Some("v4"));
    }

    #[test]
    fn validation_names_the_field() {
        let e = spec("metrics: [http/latency-p99]\n")
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "with.compare.metrics[0]");
        assert!(e.1.contains("cannot be compared statistically"), "{}", e.1);
        let e = spec("metrics: [http/latency]\nalpha: 1.5\n")
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "with.compare.alpha");
        let e = spec("metrics: []\n").validate().unwrap_err();
        assert_eq!(e.0, "with.compare.metrics");
        let e = spec("metrics: [http/latency]\nminSamples: 0\n")
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "with.compare.minSamples");
        assert!(spec("metrics: [grpc/latency, http-v1/error-rate]\n")
            .validate()
            .is_ok());
    }
}
