//! Iter8 v0.15 result documents: `{spec: [...], result: {...}}` in one YAML document, as
//! Iter8 wrote them (the Secret key `experiment.yaml` of the experiment's Secret, or a
//! local file). [`parse_any_result`] reads either that shape or ours; the Iter8 shape is
//! converted to an [`ExperimentResult`] whose verdicts (`completed`, `nofailure`, `slos`)
//! and metric values are the ones Iter8's own logic gives for the document:
//!
//! - `completed`: `numCompletedTasks == len(spec)`; `nofailure`: `!failure`;
//! - `slos`: from the stored `SLOsSatisfied` (every SLO, every version);
//! - counters and gauges: the latest value of `nonHistMetricValues` (Iter8 appended one
//!   per loop; the last [`MAX_LOOP_HISTORY`] are kept);
//! - histograms (`histMetricValues`, buckets appended per loop) merge bucket by bucket;
//! - sample metrics (Iter8's `grpc/latency`: every latency) become the aggregates Iter8
//!   computed from them on demand (`grpc/latency/mean`, `stddev`, `min`, `max`, `p<X>`
//!   with montanaflynn/stats' formulas), for the usual percentiles and every percentile an
//!   SLO or reward names.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::metrics::{normalize_metric_name, percentile_suffix};
use super::result::{
    ExperimentResult, HistBucket, Histogram, Insights, MetricMeta, MetricType, RewardWinners,
    Rewards, Slo, Slos, SlosSatisfied, MAX_LOOP_HISTORY,
};
use super::time::parse_time;

/// Why a document could not be read as a result.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct DocError(pub String);

/// Parse a result document: ours (top-level `startTime`, `numLoops`, ...) or Iter8
/// v0.15's (top-level `spec` and `result`).
///
/// Either way the limits of [`super::result::parse_result`] hold: nesting is checked before
/// parsing, version counts after.
pub fn parse_any_result(text: &str) -> Result<ExperimentResult, DocError> {
    super::limits::check_yaml_nesting(text).map_err(DocError)?;
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| DocError(e.to_string()))?;
    let is_iter8 = value
        .as_mapping()
        .is_some_and(|m| m.contains_key("result") || m.contains_key("spec"));
    if is_iter8 {
        let doc: Iter8Document = serde_yaml::from_value(value)
            .map_err(|e| DocError(format!("an Iter8 v0.15 experiment document: {e}")))?;
        let result = doc.into_result()?;
        result.check_limits().map_err(DocError)?;
        Ok(result)
    } else {
        super::result::parse_result(text).map_err(DocError)
    }
}

/// `{spec, result}` as Iter8 v0.15 stored it.
#[derive(Deserialize, Debug)]
struct Iter8Document {
    #[serde(default)]
    spec: Option<Vec<serde_yaml::Value>>,
    #[serde(default)]
    result: Option<Iter8Result>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Iter8Result {
    #[serde(default)]
    revision: Option<i64>,
    #[serde(default)]
    start_time: Option<serde_yaml::Value>,
    #[serde(default)]
    num_loops: u64,
    #[serde(default)]
    num_completed_tasks: usize,
    #[serde(default)]
    failure: bool,
    #[serde(default)]
    insights: Option<Iter8Insights>,
    #[serde(default)]
    iter8_version: Option<String>,
}

/// One version's metric values: name -> values appended loop after loop.
type PerVersion<T> = BTreeMap<String, Vec<T>>;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Iter8Insights {
    #[serde(default)]
    num_versions: usize,
    #[serde(default)]
    version_names: Option<Vec<VersionName>>,
    #[serde(default)]
    metrics_info: Option<BTreeMap<String, Iter8MetricMeta>>,
    #[serde(default)]
    non_hist_metric_values: Option<Vec<Option<PerVersion<f64>>>>,
    #[serde(default)]
    hist_metric_values: Option<Vec<Option<PerVersion<HistBucket>>>>,
    #[serde(default, rename = "SLOs")]
    slos: Option<Iter8Slos>,
    #[serde(default, rename = "SLOsSatisfied")]
    slos_satisfied: Option<Iter8SlosSatisfied>,
    #[serde(default)]
    rewards: Option<Iter8Rewards>,
    #[serde(default)]
    rewards_winners: Option<Iter8RewardsWinners>,
}

/// Iter8 wrote `versionNames` as `[{version, track}]` (v0.14+) or as strings (earlier).
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum VersionName {
    Name(String),
    Info {
        #[serde(default)]
        version: Option<String>,
        #[serde(default)]
        track: Option<String>,
    },
    /// Anything else: no name.
    Other(#[allow(dead_code)] serde_yaml::Value),
}

impl VersionName {
    /// Iter8's `TrackVersionStr`: `track (version)`, or whichever is set.
    fn label(&self) -> String {
        match self {
            VersionName::Name(s) => s.clone(),
            VersionName::Info { version, track } => {
                let v = version.as_deref().unwrap_or_default();
                let t = track.as_deref().unwrap_or_default();
                match (t.is_empty(), v.is_empty()) {
                    (true, _) => v.to_string(),
                    (false, true) => t.to_string(),
                    (false, false) => format!("{t} ({v})"),
                }
            }
            VersionName::Other(_) => String::new(),
        }
    }
}

#[derive(Deserialize, Debug)]
struct Iter8MetricMeta {
    #[serde(default)]
    description: String,
    #[serde(default)]
    units: Option<String>,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize, Debug, Default)]
struct Iter8Slos {
    #[serde(default, alias = "Upper")]
    upper: Option<Vec<Iter8Slo>>,
    #[serde(default, alias = "Lower")]
    lower: Option<Vec<Iter8Slo>>,
}

#[derive(Deserialize, Debug)]
struct Iter8Slo {
    metric: String,
    limit: f64,
}

#[derive(Deserialize, Debug, Default)]
struct Iter8SlosSatisfied {
    #[serde(default)]
    upper: Option<Vec<Vec<bool>>>,
    #[serde(default)]
    lower: Option<Vec<Vec<bool>>>,
}

#[derive(Deserialize, Debug, Default)]
struct Iter8Rewards {
    #[serde(default)]
    max: Option<Vec<String>>,
    #[serde(default)]
    min: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Default)]
struct Iter8RewardsWinners {
    #[serde(default)]
    max: Option<Vec<i64>>,
    #[serde(default)]
    min: Option<Vec<i64>>,
}

/// Percentiles Iter8's reports showed for a latency sample (plus those SLOs name).
const SAMPLE_PERCENTILES: [f64; 6] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

impl Iter8Document {
    fn into_result(self) -> Result<ExperimentResult, DocError> {
        let num_tasks = self.spec.as_ref().map_or(0, Vec::len);
        let Some(r) = self.result else {
            return Err(DocError(
                "an Iter8 experiment document without `result:`: the experiment has not \
                 started yet"
                    .to_string(),
            ));
        };
        let start_time = match &r.start_time {
            Some(serde_yaml::Value::String(s)) => {
                parse_time(s).map_err(|e| DocError(format!("result.startTime: {e}")))?
            }
            _ => chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        };
        let mut out = ExperimentResult::new(num_tasks);
        out.start_time = start_time;
        out.num_loops = r.num_loops;
        out.num_completed_tasks = r.num_completed_tasks;
        out.failure = r.failure;
        out.revision = r.revision;
        out.iter8_version = r
            .iter8_version
            .map(|v| format!("iter8 {v}"))
            .unwrap_or_else(|| "iter8".to_string());
        out.insights = r.insights.map(convert_insights);
        Ok(out)
    }
}

fn convert_insights(i: Iter8Insights) -> Insights {
    let mut out = Insights::default();
    let names: Vec<String> = i
        .version_names
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(VersionName::label)
        .collect();
    let n = i.num_versions;
    out.num_versions = n;
    out.version_names = (0..n)
        .map(|v| names.get(v).cloned().unwrap_or_default())
        .collect();
    out.non_histogram_metric_values = vec![BTreeMap::new(); n];
    out.histogram_metric_values = vec![BTreeMap::new(); n];

    let slos = i.slos.unwrap_or_default();
    let norm = |l: Option<Vec<Iter8Slo>>| -> Vec<Slo> {
        l.unwrap_or_default()
            .into_iter()
            .map(|s| Slo {
                metric: normalize_metric_name(&s.metric),
                limit: s.limit,
            })
            .collect()
    };
    let slos = Slos {
        upper: norm(slos.upper),
        lower: norm(slos.lower),
    };
    let rewards = i.rewards.map(|r| Rewards {
        max: r
            .max
            .unwrap_or_default()
            .iter()
            .map(|m| normalize_metric_name(m))
            .collect(),
        min: r
            .min
            .unwrap_or_default()
            .iter()
            .map(|m| normalize_metric_name(m))
            .collect(),
    });
    // metrics whose value the result is read for (aggregates of samples are computed for
    // these)
    let mut named: Vec<String> = slos
        .upper
        .iter()
        .chain(slos.lower.iter())
        .map(|s| s.metric.clone())
        .collect();
    if let Some(r) = &rewards {
        named.extend(r.max.iter().chain(r.min.iter()).cloned());
    }

    let info = i.metrics_info.unwrap_or_default();
    let kinds: BTreeMap<&str, &str> = info
        .iter()
        .map(|(k, m)| (k.as_str(), m.kind.as_str()))
        .collect();
    for (name, m) in &info {
        let units = m.units.as_deref();
        match m.kind.as_str() {
            "Counter" => out.register_metric(
                name,
                MetricMeta::new(MetricType::Counter, &m.description, units),
            ),
            "Gauge" => out.register_metric(
                name,
                MetricMeta::new(MetricType::Gauge, &m.description, units),
            ),
            "Histogram" => out.register_metric(
                name,
                MetricMeta::new(MetricType::Histogram, &m.description, units),
            ),
            // samples become their aggregates (registered below); summaries (Iter8's A/B/n
            // SDK metrics) are not part of v0.15 experiments
            _ => {}
        }
    }

    let non_hist = i.non_hist_metric_values.unwrap_or_default();
    for (v, values) in non_hist.into_iter().enumerate().take(n) {
        for (name, vals) in values.unwrap_or_default() {
            if vals.is_empty() {
                continue;
            }
            if kinds.get(name.as_str()) == Some(&"Sample") {
                let units = info.get(&name).and_then(|m| m.units.as_deref());
                record_sample_aggregates(&mut out, v, &name, &vals, units, &named);
                continue;
            }
            let keep = vals.len().saturating_sub(MAX_LOOP_HISTORY);
            out.non_histogram_metric_values[v].insert(name, vals[keep..].to_vec());
        }
    }
    let hist = i.hist_metric_values.unwrap_or_default();
    for (v, values) in hist.into_iter().enumerate().take(n) {
        for (name, buckets) in values.unwrap_or_default() {
            out.histogram_metric_values[v].insert(name, histogram_of(&buckets));
        }
    }

    if !slos.upper.is_empty() || !slos.lower.is_empty() {
        out.slos = Some(slos);
        out.slos_satisfied = i.slos_satisfied.map(|s| SlosSatisfied {
            upper: s.upper.unwrap_or_default(),
            lower: s.lower.unwrap_or_default(),
        });
    }
    if let Some(r) = rewards.filter(|r| !r.max.is_empty() || !r.min.is_empty()) {
        let w = i.rewards_winners.unwrap_or_default();
        let idx = |l: Option<Vec<i64>>| -> Vec<Option<usize>> {
            l.unwrap_or_default()
                .into_iter()
                .map(|x| usize::try_from(x).ok())
                .collect()
        };
        out.reward_winners = Some(RewardWinners {
            max: idx(w.max),
            min: idx(w.min),
        });
        out.rewards = Some(r);
    }
    out
}

/// Buckets appended loop after loop, merged by their bounds. Iter8 kept no sums: the mean
/// is estimated from bucket midpoints; min / max are the outer bounds of non-empty buckets.
fn histogram_of(buckets: &[HistBucket]) -> Histogram {
    let mut h = Histogram::default();
    for b in buckets.iter().filter(|b| b.count > 0) {
        let mid = (b.lower + b.upper) / 2.0;
        let one = Histogram {
            buckets: vec![b.clone()],
            count: b.count,
            sum: mid * b.count as f64,
            sum_sq: mid * mid * b.count as f64,
            min: b.lower,
            max: b.upper,
        };
        h.merge(&one);
    }
    h
}

/// Record what Iter8 computed from a sample metric `name` (e.g. `grpc/latency`):
/// `<name>-mean`, `-stddev`, `-min`, `-max` and `-p<X>` (our names; Iter8's
/// `grpc/latency/mean`, `grpc/latency/p95` resolve to them).
fn record_sample_aggregates(
    out: &mut Insights,
    version: usize,
    name: &str,
    vals: &[f64],
    units: Option<&str>,
    named: &[String],
) {
    let mut percentiles: Vec<f64> = SAMPLE_PERCENTILES.to_vec();
    let prefix = format!("{name}-p");
    for m in named {
        if let Some(p) = m.strip_prefix(&prefix).and_then(|p| p.parse::<f64>().ok()) {
            if !percentiles.contains(&p) {
                percentiles.push(p);
            }
        }
    }
    let mut put = |stat: String, value: Option<f64>, what: String| {
        if let Some(value) = value {
            let metric = format!("{name}-{stat}");
            out.register_metric(&metric, MetricMeta::new(MetricType::Gauge, what, units));
            out.record(version, &metric, value);
        }
    };
    put("mean".into(), sample_mean(vals), format!("mean of {name}"));
    put(
        "stddev".into(),
        sample_stddev(vals),
        format!("standard deviation of {name}"),
    );
    put(
        "min".into(),
        vals.iter().copied().reduce(f64::min),
        format!("minimum of {name}"),
    );
    put(
        "max".into(),
        vals.iter().copied().reduce(f64::max),
        format!("maximum of {name}"),
    );
    for p in percentiles {
        put(
            percentile_suffix(p),
            stats_percentile(vals, p),
            format!("{p}-th percentile of {name}"),
        );
    }
}

fn sample_mean(vals: &[f64]) -> Option<f64> {
    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
}

/// Iter8 returned the single value for every aggregation of a one-element sample, else
/// montanaflynn/stats' population standard deviation.
fn sample_stddev(vals: &[f64]) -> Option<f64> {
    if vals.len() == 1 {
        return vals.first().copied();
    }
    let mean = sample_mean(vals)?;
    let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / vals.len() as f64;
    Some(var.sqrt())
}

/// montanaflynn/stats `Percentile` (the version Iter8 v0.15 used): with `i = p/100 * n`,
/// the `i`-th smallest value when `i` is whole, else the mean of the `trunc(i)`-th and the
/// next; nothing for `i <= 1` that is not whole. A one-element sample is its value.
pub fn stats_percentile(vals: &[f64], p: f64) -> Option<f64> {
    if vals.len() == 1 {
        return vals.first().copied();
    }
    if vals.is_empty() || p <= 0.0 || p > 100.0 {
        return None;
    }
    let mut c = vals.to_vec();
    c.sort_by(f64::total_cmp);
    let index = p / 100.0 * c.len() as f64;
    if index == index.trunc() {
        let i = index as usize;
        c.get(i.checked_sub(1)?).copied()
    } else if index > 1.0 {
        let i = index as usize;
        Some((c.get(i - 1)? + c.get(i)?) / 2.0)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_percentile_follows_montanaflynn() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        // index 2.5 -> mean of the 2nd and 3rd smallest
        assert_eq!(stats_percentile(&v, 50.0), Some(2.5));
        // index 5 (whole) -> the 5th
        assert_eq!(stats_percentile(&v, 100.0), Some(5.0));
        // index 4 -> the 4th
        assert_eq!(stats_percentile(&v, 80.0), Some(4.0));
        // index 0.5 -> none
        assert_eq!(stats_percentile(&v, 10.0), None);
        assert_eq!(stats_percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(stats_percentile(&v, 0.0), None);
    }

    #[test]
    fn our_documents_still_parse() {
        let ours = ExperimentResult::new(2);
        let text = serde_yaml::to_string(&ours).unwrap_or_default();
        assert_eq!(parse_any_result(&text), Ok(ours));
    }

    #[test]
    fn version_names_as_iter8_wrote_them() {
        let doc = "spec: []\nresult:\n  numLoops: 1\n  numCompletedTasks: 0\n  failure: false\n  \
                   insights:\n    numVersions: 3\n    versionNames:\n    - {version: v1, track: ''}\n    \
                   - {version: v2, track: canary}\n    - {version: '', track: ''}\n";
        let r = parse_any_result(doc).expect("parses");
        let names = r.insights.map(|i| i.version_names).unwrap_or_default();
        assert_eq!(names, ["v1", "canary (v2)", ""]);
    }
}
