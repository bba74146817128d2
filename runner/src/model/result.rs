//! The experiment result: what the runner stores (Secret key `result.yaml`, or a file) and
//! what `iter8 report` / `iter8 assert` read.
//!
//! Designed so that partial results of several pods (or loops) merge exactly: counters add,
//! histograms merge bucket by bucket, and every statistic that is not a percentile is kept
//! as exact sums (count, sum, sum of squares, min, max).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::journal::{Journal, Op};
use super::limits::MAX_VERSIONS;
use super::loadinfo::LoadInfo;
use super::metrics::normalize_metric_name;
use super::verdicts::{all_satisfied, Comparisons, Regression, RelativeSlos};

/// How many per-loop values of a metric are kept (newest last). Bounds the result's size
/// over any number of CronJob loops.
pub const MAX_LOOP_HISTORY: usize = 32;

/// The result of an experiment.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentResult {
    /// When the first loop of this result started.
    pub start_time: DateTime<Utc>,
    /// Loops started so far (1 for a Job; grows with each CronJob run).
    pub num_loops: u64,
    /// Tasks completed in the current loop (skipped tasks count as completed).
    pub num_completed_tasks: usize,
    /// Number of tasks in the experiment (`completed` means `numCompletedTasks == numTasks`).
    #[serde(default)]
    pub num_tasks: usize,
    /// True when a task failed in the current loop.
    pub failure: bool,
    /// The task that failed, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_task: Option<FailedTask>,
    /// Version of the runner that wrote this result.
    pub iter8_version: String,
    /// Helm release revision this result belongs to (in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// What the tasks found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insights: Option<Insights>,
    /// Unknown keys of the experiment that were ignored, each naming the nearest known
    /// key (as Iter8 ignored them; `iter8-runner --strict` makes them errors instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The result as it was when the last finished loop ended (every task done, or stopped
    /// by a failed task): its verdict stays readable while a later loop runs. Its
    /// `numLoops` is the loop it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_finished_loop: Option<Box<ExperimentResult>>,
    /// Loops that started while another loop of this result had not finished (two runners
    /// on one release, e.g. an overlapping CronJob loop or a Job created from the
    /// CronJob by hand), newest last, at most [`MAX_LOOP_HISTORY`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlaps: Vec<Overlap>,
}

/// Loop `loop` started while loop `with` had not finished.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct Overlap {
    #[serde(rename = "loop")]
    pub loop_number: u64,
    pub with: u64,
}

/// Which task failed, and why.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailedTask {
    /// Zero-based index of the task in `spec`.
    pub index: usize,
    /// The task's name (`http`, `assess`, ... or `run`).
    pub task: String,
    /// What went wrong.
    pub message: String,
}

/// Read a stored result (YAML or JSON), as `iter8 report` / `assert`, `--continue` and the
/// cluster store do. Refused before parsing when too large or nested too deep
/// ([`super::limits::check_yaml_nesting`]); after parsing, when a count would size
/// allocations past the limits (a 200-byte result with `numVersions: 1000000` made the
/// report allocate hundreds of MB). Errors name the field.
pub fn parse_result(text: &str) -> Result<ExperimentResult, String> {
    super::limits::check_yaml_nesting(text)?;
    let de = serde_yaml::Deserializer::from_str(text);
    let result: ExperimentResult = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    result.check_limits()?;
    Ok(result)
}

impl ExperimentResult {
    /// Counts that size what readers allocate are within [`MAX_VERSIONS`].
    pub fn check_limits(&self) -> Result<(), String> {
        let Some(i) = &self.insights else {
            return Ok(());
        };
        let per_version = [
            ("insights.numVersions", i.num_versions),
            ("insights.versionNames", i.version_names.len()),
            (
                "insights.nonHistogramMetricValues",
                i.non_histogram_metric_values.len(),
            ),
            (
                "insights.histogramMetricValues",
                i.histogram_metric_values.len(),
            ),
            ("insights.unavailableMetrics", i.unavailable_metrics.len()),
        ];
        let sat = i
            .slos_satisfied
            .iter()
            .flat_map(|s| s.upper.iter().chain(&s.lower));
        for (field, n) in per_version
            .into_iter()
            .chain(sat.map(|v| ("insights.SLOsSatisfied", v.len())))
        {
            if n > MAX_VERSIONS {
                return Err(format!(
                    "{field}: {n} versions; a result has at most {MAX_VERSIONS}"
                ));
            }
        }
        Ok(())
    }
}

impl FailedTask {
    /// `task 2 (http)`: how every message names the task (counting from 1, as the runner's
    /// log does), while `index` stays zero-based.
    pub fn label(&self) -> String {
        format!("task {} ({})", self.index + 1, self.task)
    }
}

impl ExperimentResult {
    /// A fresh result for an experiment of `num_tasks` tasks, started now.
    pub fn new(num_tasks: usize) -> Self {
        Self {
            start_time: Utc::now(),
            num_loops: 0,
            num_completed_tasks: 0,
            num_tasks,
            failure: false,
            failed_task: None,
            iter8_version: crate::VERSION.to_string(),
            revision: None,
            insights: None,
            warnings: Vec::new(),
            last_finished_loop: None,
            overlaps: Vec::new(),
        }
    }

    /// True when the current loop ended: every task done, or stopped by a failed task.
    pub fn finished(&self) -> bool {
        self.failure || self.completed()
    }

    /// Keep this (ended) loop's result as the verdict readers see while a later loop runs.
    pub fn record_finished_loop(&mut self) {
        let mut snapshot = self.clone();
        snapshot.last_finished_loop = None;
        snapshot.overlaps.clear();
        self.last_finished_loop = Some(Box::new(snapshot));
    }

    /// The result a verdict is taken from: this one when its loop has ended (or no loop
    /// ended before), else the last finished loop's (a CronJob's next loop is running).
    pub fn verdict(&self) -> &ExperimentResult {
        match &self.last_finished_loop {
            Some(done) if !self.finished() => done,
            _ => self,
        }
    }

    /// Which loop the verdict belongs to: `loop 3`, or `loop 3 (loop 4 is running: 1 of 5
    /// tasks done)` while a later loop runs.
    pub fn verdict_label(&self) -> String {
        let v = self.verdict();
        if std::ptr::eq(v, self) {
            format!("loop {}", self.num_loops)
        } else {
            format!(
                "loop {} (loop {} is running: {} of {} tasks done)",
                v.num_loops, self.num_loops, self.num_completed_tasks, self.num_tasks
            )
        }
    }

    /// Record that loop `loop_number` started while loop `with` had not finished.
    pub fn record_overlap(&mut self, loop_number: u64, with: u64) {
        self.overlaps.push(Overlap { loop_number, with });
        if self.overlaps.len() > MAX_LOOP_HISTORY {
            let excess = self.overlaps.len() - MAX_LOOP_HISTORY;
            self.overlaps.drain(..excess);
        }
    }

    /// `completed`: every task of the current loop completed (skipped ones count).
    pub fn completed(&self) -> bool {
        self.num_tasks > 0 && self.num_completed_tasks >= self.num_tasks
    }

    /// `nofailure`: no task failed in the current loop.
    pub fn no_failure(&self) -> bool {
        !self.failure
    }

    /// `slos`: every version satisfies every SLO, relative SLO and regression limit (true
    /// when none was given; false while SLOs were given but not assessed yet).
    pub fn slos_satisfied(&self) -> bool {
        let Some(insights) = &self.insights else {
            return true;
        };
        if let Some(r) = &insights.relative_slos {
            if !all_satisfied(&r.checks) {
                return false;
            }
        }
        if let Some(r) = &insights.regression {
            if !all_satisfied(&r.checks) {
                return false;
            }
        }
        let Some(slos) = &insights.slos else {
            return true;
        };
        if slos.upper.is_empty() && slos.lower.is_empty() {
            return true;
        }
        let Some(sat) = &insights.slos_satisfied else {
            return false;
        };
        sat.upper.len() == slos.upper.len()
            && sat.lower.len() == slos.lower.len()
            && sat
                .upper
                .iter()
                .chain(sat.lower.iter())
                .all(|per_version| per_version.iter().all(|ok| *ok))
    }

    /// `comparisons`: `assess.compare` ran and no version is significantly worse than the
    /// baseline, every comparison with enough data.
    pub fn comparisons_ok(&self) -> bool {
        self.insights
            .as_ref()
            .and_then(|i| i.comparisons.as_ref())
            .is_some_and(|c| c.no_degradation())
    }

    /// `winner`: `assess.compare` ran and every compared metric has a significant winner.
    pub fn has_winners(&self) -> bool {
        self.insights
            .as_ref()
            .and_then(|i| i.comparisons.as_ref())
            .is_some_and(|c| c.all_have_winners())
    }

    /// The insights, created empty on first use.
    pub fn insights_mut(&mut self) -> &mut Insights {
        self.insights.get_or_insert_with(Insights::default)
    }
}

/// Metric type, as in Iter8.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

/// What a metric is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricMeta {
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    #[serde(rename = "type")]
    pub kind: MetricType,
}

impl MetricMeta {
    pub fn new(kind: MetricType, description: impl Into<String>, units: Option<&str>) -> Self {
        Self {
            description: description.into(),
            units: units.map(str::to_string),
            kind,
        }
    }
}

/// One histogram bucket: `count` observations in `[lower, upper)` (units of the metric).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct HistBucket {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
}

/// A mergeable histogram (latencies in milliseconds). Buckets come from a fixed log-linear
/// grid, so two histograms merge exactly by adding the counts of equal buckets; the exact
/// moments (count, sum, sum of squares, min, max) merge by adding / min / max.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    pub buckets: Vec<HistBucket>,
    pub count: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub min: f64,
    pub max: f64,
}

impl Histogram {
    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let mut by_bounds: BTreeMap<(u64, u64), HistBucket> = BTreeMap::new();
        for b in self.buckets.iter().chain(other.buckets.iter()) {
            let key = (b.lower.to_bits(), b.upper.to_bits());
            by_bounds
                .entry(key)
                .and_modify(|e| e.count += b.count)
                .or_insert_with(|| b.clone());
        }
        let mut buckets: Vec<HistBucket> = by_bounds.into_values().collect();
        buckets.sort_by(|a, b| a.lower.total_cmp(&b.lower));
        self.buckets = buckets;
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Population standard deviation.
    pub fn stddev(&self) -> Option<f64> {
        let mean = self.mean()?;
        let var = (self.sum_sq / self.count as f64 - mean * mean).max(0.0);
        Some(var.sqrt())
    }

    /// Percentile estimated from the buckets (linear interpolation inside the bucket).
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = (p / 100.0 * self.count as f64).max(1.0);
        let mut seen = 0.0;
        for b in &self.buckets {
            let next = seen + b.count as f64;
            if next >= target && b.count > 0 {
                let frac = (target - seen) / b.count as f64;
                let v = b.lower + (b.upper - b.lower) * frac;
                // Not `clamp`: it panics when min > max or either is NaN (bad input).
                return Some(v.max(self.min).min(self.max));
            }
            seen = next;
        }
        Some(self.max)
    }
}

/// SLOs: `upper` are satisfied when value <= limit, `lower` when value >= limit.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Slos {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upper: Vec<Slo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lower: Vec<Slo>,
}

/// One SLO.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct Slo {
    pub metric: String,
    pub limit: f64,
}

/// `upper[i][v]`: whether version `v` satisfies `slos.upper[i]` (likewise `lower`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SlosSatisfied {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upper: Vec<Vec<bool>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lower: Vec<Vec<bool>>,
}

/// Reward metrics: the version with the highest (`max`) / lowest (`min`) value wins.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
pub struct Rewards {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub max: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub min: Vec<String>,
}

/// `max[i]`: index of the winning version for `rewards.max[i]` (None: no version has a value).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
pub struct RewardWinners {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub max: Vec<Option<usize>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub min: Vec<Option<usize>>,
}

/// What the tasks found, per version. Versions are the endpoints of a load test (A/B/n) or
/// the `versionValues` entries of custom metrics; one version when neither is given.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Insights {
    pub num_versions: usize,
    #[serde(default)]
    pub version_names: Vec<String>,
    /// Metric name -> description, units, type.
    #[serde(default)]
    pub metrics_info: BTreeMap<String, MetricMeta>,
    /// Per version: metric name -> values of the last loops (newest last, at most
    /// [`MAX_LOOP_HISTORY`]).
    #[serde(default)]
    pub non_histogram_metric_values: Vec<BTreeMap<String, Vec<f64>>>,
    /// Per version: histogram metric name -> histogram (merged over loops).
    #[serde(default)]
    pub histogram_metric_values: Vec<BTreeMap<String, Histogram>>,
    /// Per version: metric name -> why its value could not be obtained in the last loop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable_metrics: Vec<BTreeMap<String, String>>,
    #[serde(default, rename = "SLOs", skip_serializing_if = "Option::is_none")]
    pub slos: Option<Slos>,
    #[serde(
        default,
        rename = "SLOsSatisfied",
        skip_serializing_if = "Option::is_none"
    )]
    pub slos_satisfied: Option<SlosSatisfied>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewards: Option<Rewards>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_winners: Option<RewardWinners>,
    /// Limits relative to a baseline version, evaluated (`assess.relativeSLOs`).
    #[serde(
        default,
        rename = "relativeSLOs",
        skip_serializing_if = "Option::is_none"
    )]
    pub relative_slos: Option<RelativeSlos>,
    /// Limits relative to the previous loop, evaluated (`assess.regression`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
    /// Statistical comparison of versions with the baseline (`assess.compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparisons: Option<Comparisons>,
    /// Load tests' details by source (metric prefix): per-stage statistics and whether the
    /// load generator kept up (the latest loop's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub load: BTreeMap<String, LoadInfo>,
    /// What this run added (to merge it into a result other runners changed meanwhile).
    #[serde(skip)]
    #[schemars(skip)]
    pub journal: Journal,
}

impl Insights {
    /// Make room for `names.len()` versions, recording their names. A task that knows the
    /// versions (endpoints, versionValues) calls this before recording; with more versions
    /// than before, the per-version maps grow.
    pub fn ensure_versions(&mut self, names: &[String]) {
        self.journal.push(Op::Versions(names.to_vec()));
        self.resize_versions(names);
    }

    fn resize_versions(&mut self, names: &[String]) {
        let n = names.len().max(self.num_versions).max(1);
        self.num_versions = n;
        for (i, name) in names.iter().enumerate() {
            if self.version_names.len() <= i {
                self.version_names.resize(i + 1, String::new());
            }
            if self.version_names[i].is_empty() {
                self.version_names[i] = name.clone();
            }
        }
        if self.version_names.len() < n {
            self.version_names.resize(n, String::new());
        }
        self.non_histogram_metric_values
            .resize_with(n, BTreeMap::new);
        self.histogram_metric_values.resize_with(n, BTreeMap::new);
        if !self.unavailable_metrics.is_empty() {
            self.unavailable_metrics.resize_with(n, BTreeMap::new);
        }
    }

    /// Describe a metric (idempotent; the latest description wins).
    pub fn register_metric(&mut self, name: &str, meta: MetricMeta) {
        self.journal
            .push(Op::Register(name.to_string(), meta.clone()));
        self.metrics_info.insert(name.to_string(), meta);
    }

    /// Record this loop's value of a counter or gauge for `version`.
    pub fn record(&mut self, version: usize, name: &str, value: f64) {
        self.journal
            .push(Op::Record(version, name.to_string(), value));
        self.grow_to(version);
        if let Some(m) = self.unavailable_metrics.get_mut(version) {
            m.remove(name);
        }
        let values = self.non_histogram_metric_values[version]
            .entry(name.to_string())
            .or_default();
        values.push(value);
        if values.len() > MAX_LOOP_HISTORY {
            let excess = values.len() - MAX_LOOP_HISTORY;
            values.drain(..excess);
        }
    }

    /// Merge a histogram into the stored one for `version`.
    pub fn record_histogram(&mut self, version: usize, name: &str, hist: &Histogram) {
        self.journal
            .push(Op::Histogram(version, name.to_string(), hist.clone()));
        self.grow_to(version);
        if let Some(m) = self.unavailable_metrics.get_mut(version) {
            m.remove(name);
        }
        self.histogram_metric_values[version]
            .entry(name.to_string())
            .or_default()
            .merge(hist);
    }

    /// Record a load source's details for this loop (replacing an earlier loop's).
    pub fn record_load(&mut self, source: &str, info: LoadInfo) {
        self.journal
            .push(Op::Load(source.to_string(), info.clone()));
        self.load.insert(source.to_string(), info);
    }

    /// Record that a metric could not be obtained for `version` in this loop, and why.
    pub fn mark_unavailable(&mut self, version: usize, name: &str, reason: impl Into<String>) {
        let reason = reason.into();
        self.journal
            .push(Op::Unavailable(version, name.to_string(), reason.clone()));
        self.grow_to(version);
        self.unavailable_metrics
            .resize_with(self.num_versions, BTreeMap::new);
        self.unavailable_metrics[version].insert(name.to_string(), reason);
    }

    /// The latest value of a metric for a version (names are normalised first). A
    /// percentile `<prefix>/<hist>-p<X>` that no task stored (any X in (0, 100], e.g.
    /// `http/latency-p97.5`, `grpc/latency/p99.95`) is computed from the stored histogram
    /// `<prefix>/<hist>`, as Iter8 computed any percentile an SLO names.
    ///
    /// A metric (or its histogram) marked unavailable in this loop has no latest value: an
    /// older loop's value would pass an SLO the current loop did not measure.
    pub fn latest(&self, version: usize, name: &str) -> Option<f64> {
        let name = normalize_metric_name(name);
        if self.is_unavailable(version, &name) {
            return None;
        }
        let stored = self
            .non_histogram_metric_values
            .get(version)
            .and_then(|m| m.get(&name))
            .and_then(|values| values.last().copied());
        stored.or_else(|| self.percentile_on_demand(version, &name))
    }

    fn is_unavailable(&self, version: usize, name: &str) -> bool {
        self.unavailable_metrics
            .get(version)
            .is_some_and(|m| m.contains_key(name))
    }

    /// `<prefix>/<hist>-p<X>` from the histogram `<prefix>/<hist>` of `version` (None when
    /// the name is not a percentile or there is no such histogram).
    fn percentile_on_demand(&self, version: usize, name: &str) -> Option<f64> {
        let (hist, p) = percentile_parts(name)?;
        if self.is_unavailable(version, hist) {
            return None;
        }
        self.histogram_metric_values
            .get(version)?
            .get(hist)?
            .percentile(p)
    }

    /// The value of a metric before the latest one: the previous loop's when the metric
    /// is recorded every loop (None before the second value).
    pub fn previous(&self, version: usize, name: &str) -> Option<f64> {
        let name = normalize_metric_name(name);
        let values = self.non_histogram_metric_values.get(version)?.get(&name)?;
        values.len().checked_sub(2).map(|i| values[i])
    }

    /// Whether any version has (or had) this metric, or it is described.
    pub fn knows_metric(&self, name: &str) -> bool {
        let name = normalize_metric_name(name);
        self.metrics_info.contains_key(&name)
            || self
                .non_histogram_metric_values
                .iter()
                .any(|m| m.contains_key(&name))
    }

    fn grow_to(&mut self, version: usize) {
        if version >= self.num_versions {
            let names = self.version_names.clone();
            self.num_versions = version + 1;
            self.resize_versions(&names);
        }
    }
}

/// `http/latency-p97.5` -> (`http/latency`, 97.5); None unless a normalised percentile
/// name with a percent in (0, 100].
fn percentile_parts(name: &str) -> Option<(&str, f64)> {
    let (hist, p) = name.rsplit_once("-p")?;
    if !hist.contains('/') || p.is_empty() || !p.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let p: f64 = p.parse().ok()?;
    (p > 0.0 && p <= 100.0).then_some((hist, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[(f64, f64, u64)], sum: f64, min: f64, max: f64) -> Histogram {
        let count = values.iter().map(|v| v.2).sum();
        Histogram {
            buckets: values
                .iter()
                .map(|&(lower, upper, count)| HistBucket {
                    lower,
                    upper,
                    count,
                })
                .collect(),
            count,
            sum,
            sum_sq: sum * sum,
            min,
            max,
        }
    }

    #[test]
    fn histograms_merge_exactly() {
        let mut a = hist(&[(1.0, 2.0, 3), (2.0, 4.0, 1)], 7.0, 1.0, 3.5);
        let b = hist(&[(2.0, 4.0, 2), (8.0, 16.0, 1)], 15.0, 2.5, 9.0);
        a.merge(&b);
        assert_eq!(a.count, 7);
        assert_eq!(
            a.buckets.iter().map(|b| b.count).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
        assert_eq!(a.min, 1.0);
        assert_eq!(a.max, 9.0);
        assert_eq!(a.sum, 22.0);
        assert!((a.mean().unwrap_or_default() - 22.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn percentile_falls_in_its_bucket() {
        let h = hist(
            &[(1.0, 2.0, 50), (2.0, 4.0, 40), (4.0, 8.0, 10)],
            250.0,
            1.0,
            7.0,
        );
        let p50 = h.percentile(50.0).unwrap_or_default();
        assert!((1.0..=2.0).contains(&p50), "{p50}");
        let p90 = h.percentile(90.0).unwrap_or_default();
        assert!((2.0..=4.0).contains(&p90), "{p90}");
        let p99 = h.percentile(99.0).unwrap_or_default();
        assert!((4.0..=7.0).contains(&p99), "{p99}");
    }

    #[test]
    fn any_percentile_is_computed_from_the_histogram_on_demand() {
        let mut i = Insights::default();
        i.ensure_versions(&[]);
        let h = hist(
            &[(1.0, 2.0, 50), (2.0, 4.0, 40), (4.0, 8.0, 10)],
            250.0,
            1.0,
            7.0,
        );
        i.record_histogram(0, "http-ep/latency", &h);
        i.register_metric(
            "http-ep/latency",
            MetricMeta::new(MetricType::Histogram, "latency", Some("msec")),
        );
        i.record(0, "http-ep/latency-p50", 1.5);
        // stored values win
        assert_eq!(i.latest(0, "http-ep/latency-p50"), Some(1.5));
        // p97.5 lies in the last bucket; p99.90 == p99.9; Iter8's `latency/pX` spelling
        let p975 = i.latest(0, "http-ep/latency-p97.5");
        assert!(p975.is_some_and(|v| (4.0..=7.0).contains(&v)), "{p975:?}");
        assert_eq!(
            i.latest(0, "http-ep/latency-p99.90"),
            i.latest(0, "http-ep/latency-p99.9")
        );
        assert_eq!(
            i.latest(0, "http-ep/latency/p97.5"),
            i.latest(0, "http-ep/latency-p97.5")
        );
        assert_eq!(i.latest(0, "http-ep/latency-p60"), h.percentile(60.0));
        // no histogram, no version, not a percent: no value
        assert_eq!(i.latest(0, "http/latency-p97.5"), None);
        assert_eq!(i.latest(1, "http-ep/latency-p97.5"), None);
        assert_eq!(i.latest(0, "http-ep/latency-p120"), None);
    }

    #[test]
    fn loop_history_is_bounded_and_versions_grow() {
        let mut i = Insights::default();
        i.ensure_versions(&["v1".into(), "v2".into()]);
        for n in 0..100 {
            i.record(1, "http/request-count", n as f64);
        }
        assert_eq!(
            i.non_histogram_metric_values[1]["http/request-count"].len(),
            MAX_LOOP_HISTORY
        );
        assert_eq!(i.latest(1, "http/request-count"), Some(99.0));
        assert_eq!(i.latest(0, "http/request-count"), None);
        i.mark_unavailable(2, "prom/x", "down");
        assert_eq!(i.num_versions, 3);
        assert_eq!(i.version_names, vec!["v1", "v2", ""]);
        i.record(2, "prom/x", 1.0);
        assert!(i.unavailable_metrics[2].is_empty());
    }
}
