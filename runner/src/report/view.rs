//! What the human reports show, derived from a result once so that the text and HTML
//! reports agree on every number: SLO rows (value, limit, margin), reward winners, metric
//! values, latency percentiles per endpoint and version, errors by status code / kind.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{ExperimentResult, Histogram, Insights, MetricMeta};

/// Percentiles shown when a latency source has no stored percentile values.
pub const DEFAULT_PERCENTILES: [f64; 6] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Display name of version `v`: its name, or `default` for a single unnamed version, or
/// `version <v>`.
pub fn version_label(insights: Option<&Insights>, v: usize) -> String {
    match insights.and_then(|i| i.version_names.get(v)) {
        Some(name) if !name.is_empty() => name.clone(),
        _ => {
            let n = insights.map(|i| i.num_versions).unwrap_or(1);
            if n <= 1 {
                "default".to_string()
            } else {
                format!("version {v}")
            }
        }
    }
}

/// Number of versions to show (at least the length of every per-version list).
pub fn num_versions(insights: &Insights) -> usize {
    insights
        .num_versions
        .max(insights.version_names.len())
        .max(insights.non_histogram_metric_values.len())
        .max(insights.histogram_metric_values.len())
        .max(insights.unavailable_metrics.len())
}

/// A number for people: integers without decimals, others with up to 3 decimals (more
/// below 1), trailing zeros removed.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let decimals = if x.abs() >= 1000.0 {
        1
    } else if x.abs() >= 1.0 {
        3
    } else {
        4
    };
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// A number with its units, e.g. `12.5 ms` (units omitted when unknown).
pub fn fmt_with_units(x: f64, units: Option<&str>) -> String {
    match units {
        Some(u) if !u.is_empty() => format!("{} {u}", fmt_num(x)),
        _ => fmt_num(x),
    }
}

/// Units of a metric, when described.
pub fn units_of<'a>(insights: &'a Insights, metric: &str) -> Option<&'a str> {
    let name = crate::model::metrics::normalize_metric_name(metric);
    if let Some(m) = insights.metrics_info.get(&name) {
        return m.units.as_deref();
    }
    // a percentile computed on demand has its histogram's units
    let (hist, _) = name.rsplit_once("-p")?;
    insights
        .metrics_info
        .get(hist)
        .and_then(|m| m.units.as_deref())
}

/// `upper` (value <= limit) or `lower` (value >= limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SloKind {
    Upper,
    Lower,
}

impl SloKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SloKind::Upper => "upper",
            SloKind::Lower => "lower",
        }
    }
    /// The comparison that must hold, as a symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            SloKind::Upper => "<=",
            SloKind::Lower => ">=",
        }
    }
}

/// One SLO for one version.
#[derive(Clone, Debug, PartialEq)]
pub struct SloRow {
    pub kind: SloKind,
    /// Index of the SLO in its list (`upper` or `lower`).
    pub index: usize,
    pub metric: String,
    pub limit: f64,
    pub version: usize,
    pub version_name: String,
    /// The latest value, if the version has one.
    pub value: Option<f64>,
    pub units: Option<String>,
    /// Whether the SLO holds (from `SLOsSatisfied` when assessed; otherwise computed the
    /// way `assess` does: a missing value is not satisfied).
    pub satisfied: bool,
    /// Whether `SLOsSatisfied` had an entry for this SLO and version.
    pub assessed: bool,
}

impl SloRow {
    /// Headroom to the limit: `limit - value` for upper SLOs, `value - limit` for lower;
    /// negative when violated. None when the value is missing.
    pub fn margin(&self) -> Option<f64> {
        self.value.map(|v| match self.kind {
            SloKind::Upper => self.limit - v,
            SloKind::Lower => v - self.limit,
        })
    }
}

/// Every SLO for every version, grouped by version (version order, then upper before
/// lower, in the order given).
pub fn slo_rows(result: &ExperimentResult) -> Vec<SloRow> {
    let Some(insights) = &result.insights else {
        return Vec::new();
    };
    let Some(slos) = &insights.slos else {
        return Vec::new();
    };
    let n = num_versions(insights).max(1);
    let mut rows = Vec::new();
    for v in 0..n {
        for (kind, list) in [(SloKind::Upper, &slos.upper), (SloKind::Lower, &slos.lower)] {
            for (i, slo) in list.iter().enumerate() {
                let value = insights.latest(v, &slo.metric);
                let computed = match (kind, value) {
                    (_, None) => false,
                    (SloKind::Upper, Some(x)) => x <= slo.limit,
                    (SloKind::Lower, Some(x)) => x >= slo.limit,
                };
                let stored = insights.slos_satisfied.as_ref().and_then(|s| {
                    let m = match kind {
                        SloKind::Upper => &s.upper,
                        SloKind::Lower => &s.lower,
                    };
                    m.get(i).and_then(|per_version| per_version.get(v)).copied()
                });
                rows.push(SloRow {
                    kind,
                    index: i,
                    metric: slo.metric.clone(),
                    limit: slo.limit,
                    version: v,
                    version_name: version_label(Some(insights), v),
                    value,
                    units: units_of(insights, &slo.metric).map(str::to_string),
                    satisfied: stored.unwrap_or(computed),
                    assessed: stored.is_some(),
                });
            }
        }
    }
    rows
}

/// The winner of one reward metric.
#[derive(Clone, Debug, PartialEq)]
pub struct WinnerRow {
    /// `max` (highest wins) or `min` (lowest wins).
    pub direction: &'static str,
    pub metric: String,
    pub units: Option<String>,
    /// Index of the winning version (None: not assessed yet, or no version has a value).
    pub winner: Option<usize>,
    pub winner_name: Option<String>,
    /// Whether `rewardWinners` had an entry for this reward.
    pub assessed: bool,
    /// Latest value per version.
    pub values: Vec<Option<f64>>,
}

/// The winner per reward metric.
pub fn winner_rows(result: &ExperimentResult) -> Vec<WinnerRow> {
    let Some(insights) = &result.insights else {
        return Vec::new();
    };
    let Some(rewards) = &insights.rewards else {
        return Vec::new();
    };
    let n = num_versions(insights).max(1);
    let mut rows = Vec::new();
    for (direction, list) in [("max", &rewards.max), ("min", &rewards.min)] {
        for (i, metric) in list.iter().enumerate() {
            let stored = insights.reward_winners.as_ref().and_then(|w| {
                let l = if direction == "max" { &w.max } else { &w.min };
                l.get(i).copied()
            });
            let winner = stored.flatten();
            rows.push(WinnerRow {
                direction,
                metric: metric.clone(),
                units: units_of(insights, metric).map(str::to_string),
                winner,
                winner_name: winner.map(|w| version_label(Some(insights), w)),
                assessed: stored.is_some(),
                values: (0..n).map(|v| insights.latest(v, metric)).collect(),
            });
        }
    }
    rows
}

/// The value of a metric for a version, as shown in the metric tables.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// The latest value of a counter or gauge.
    Value(f64),
    /// A histogram: number of observations and their mean.
    Histogram { count: u64, mean: Option<f64> },
    /// The metric could not be obtained in the last loop, and why.
    Unavailable(String),
    /// No value for this version.
    Missing,
}

/// Every metric name the result knows (described, recorded or unavailable), sorted.
pub fn metric_names(insights: &Insights) -> Vec<String> {
    let mut names: BTreeSet<String> = insights.metrics_info.keys().cloned().collect();
    for m in &insights.non_histogram_metric_values {
        names.extend(m.keys().cloned());
    }
    for m in &insights.histogram_metric_values {
        names.extend(m.keys().cloned());
    }
    for m in &insights.unavailable_metrics {
        names.extend(m.keys().cloned());
    }
    names.into_iter().collect()
}

/// The value of `name` for version `v`.
pub fn metric_value(insights: &Insights, v: usize, name: &str) -> MetricValue {
    if let Some(reason) = insights
        .unavailable_metrics
        .get(v)
        .and_then(|m| m.get(name))
    {
        return MetricValue::Unavailable(reason.clone());
    }
    if let Some(h) = insights
        .histogram_metric_values
        .get(v)
        .and_then(|m| m.get(name))
    {
        return MetricValue::Histogram {
            count: h.count,
            mean: h.mean(),
        };
    }
    match insights
        .non_histogram_metric_values
        .get(v)
        .and_then(|m| m.get(name))
        .and_then(|vals| vals.last())
    {
        Some(x) => MetricValue::Value(*x),
        None => MetricValue::Missing,
    }
}

/// Metric metadata, when described.
pub fn meta<'a>(insights: &'a Insights, name: &str) -> Option<&'a MetricMeta> {
    insights.metrics_info.get(name)
}

/// One unavailable metric.
#[derive(Clone, Debug, PartialEq)]
pub struct UnavailableRow {
    pub version: usize,
    pub version_name: String,
    pub metric: String,
    pub reason: String,
}

/// Metrics that could not be obtained in the last loop, per version.
pub fn unavailable_rows(insights: &Insights) -> Vec<UnavailableRow> {
    let mut rows = Vec::new();
    for (v, m) in insights.unavailable_metrics.iter().enumerate() {
        for (metric, reason) in m {
            rows.push(UnavailableRow {
                version: v,
                version_name: version_label(Some(insights), v),
                metric: metric.clone(),
                reason: reason.clone(),
            });
        }
    }
    rows
}

/// Whether an error row counts a status code or a connection-level error kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorClass {
    /// `<prefix>/status-<code>`: an HTTP status code or a gRPC status name.
    Status,
    /// `<prefix>/error-<kind>`: refused, timeout, reset, tls, ...
    Error,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Status => "status",
            ErrorClass::Error => "error",
        }
    }
}

/// Requests with one status code or error kind, for one version and one load source.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRow {
    pub version: usize,
    pub version_name: String,
    /// The metric prefix, e.g. `http`, `http-login`, `grpc`.
    pub source: String,
    pub class: ErrorClass,
    /// The status code (`503`, `UNAVAILABLE`) or error kind (`refused`).
    pub code: String,
    pub count: f64,
    pub metric: String,
}

/// Split a metric name `<prefix>/status-<code>` / `<prefix>/error-<kind>` (not
/// `error-count` / `error-rate`).
pub fn parse_error_metric(name: &str) -> Option<(String, ErrorClass, String)> {
    let (prefix, rest) = name.split_once('/')?;
    if let Some(code) = rest.strip_prefix("status-") {
        if !code.is_empty() {
            return Some((prefix.to_string(), ErrorClass::Status, code.to_string()));
        }
    }
    if let Some(kind) = rest.strip_prefix("error-") {
        if !kind.is_empty() && kind != "count" && kind != "rate" {
            return Some((prefix.to_string(), ErrorClass::Error, kind.to_string()));
        }
    }
    None
}

/// Counts by status code and error kind (latest values), per version and source.
pub fn error_rows(insights: &Insights) -> Vec<ErrorRow> {
    let mut rows = Vec::new();
    for (v, m) in insights.non_histogram_metric_values.iter().enumerate() {
        for (name, values) in m {
            let (Some((source, class, code)), Some(count)) =
                (parse_error_metric(name), values.last())
            else {
                continue;
            };
            rows.push(ErrorRow {
                version: v,
                version_name: version_label(Some(insights), v),
                source,
                class,
                code,
                count: *count,
                metric: name.clone(),
            });
        }
    }
    rows.sort_by(|a, b| {
        (a.version, &a.source, a.class, &a.code).cmp(&(b.version, &b.source, b.class, &b.code))
    });
    rows
}

/// Latency statistics of one load source (e.g. `http/latency`, `grpc-echo/latency`) for
/// one version.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRow {
    pub version: usize,
    pub version_name: String,
    /// The latency metric's base name, e.g. `http/latency`.
    pub source: String,
    pub units: Option<String>,
    pub count: Option<u64>,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// (percentile, value), ascending by percentile. Stored `<source>-p<X>` values (exact,
    /// from the load engine) when present, otherwise estimated from the histogram buckets.
    pub percentiles: Vec<(f64, f64)>,
}

fn parse_percentile_metric(name: &str) -> Option<(&str, f64)> {
    let (base, p) = name.rsplit_once("-p")?;
    if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let p: f64 = p.parse().ok()?;
    (base.contains('/') && (0.0..=100.0).contains(&p)).then_some((base, p))
}

/// Latency sources of every version: histogram metrics, and latency metrics that have
/// stored percentiles or a mean without a histogram.
pub fn latency_rows(insights: &Insights) -> Vec<LatencyRow> {
    let n = num_versions(insights);
    let mut rows = Vec::new();
    for v in 0..n {
        let empty_h = BTreeMap::new();
        let empty_n = BTreeMap::new();
        let hists: &BTreeMap<String, Histogram> =
            insights.histogram_metric_values.get(v).unwrap_or(&empty_h);
        let values: &BTreeMap<String, Vec<f64>> = insights
            .non_histogram_metric_values
            .get(v)
            .unwrap_or(&empty_n);
        let mut sources: BTreeSet<String> = hists.keys().cloned().collect();
        let mut stored_pcts: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (name, vals) in values {
            if let (Some((base, p)), Some(x)) = (parse_percentile_metric(name), vals.last()) {
                if base.ends_with("latency") {
                    sources.insert(base.to_string());
                    stored_pcts
                        .entry(base.to_string())
                        .or_default()
                        .push((p, *x));
                }
            } else if let Some(base) = name.strip_suffix("-mean") {
                if base.ends_with("latency") && base.contains('/') {
                    sources.insert(base.to_string());
                }
            }
        }
        for source in sources {
            let hist = hists.get(&source);
            // A latency source is a load test's: a histogram or a mean (not a lone
            // percentile gauge of a custom metric).
            if hist.is_none() && !values.contains_key(&format!("{source}-mean")) {
                continue;
            }
            let stat = |suffix: &str| {
                values
                    .get(&format!("{source}-{suffix}"))
                    .and_then(|v| v.last())
                    .copied()
            };
            let mut percentiles = stored_pcts.remove(&source).unwrap_or_default();
            if percentiles.is_empty() {
                if let Some(h) = hist {
                    percentiles = DEFAULT_PERCENTILES
                        .iter()
                        .filter_map(|p| h.percentile(*p).map(|x| (*p, x)))
                        .collect();
                }
            }
            percentiles.sort_by(|a, b| a.0.total_cmp(&b.0));
            let prefix = source.split('/').next().unwrap_or_default();
            let count = hist.map(|h| h.count).or_else(|| {
                values
                    .get(&format!("{prefix}/request-count"))
                    .and_then(|v| v.last())
                    .map(|x| *x as u64)
            });
            rows.push(LatencyRow {
                version: v,
                version_name: version_label(Some(insights), v),
                units: units_of(insights, &source)
                    .or_else(|| units_of(insights, &format!("{source}-mean")))
                    .map(str::to_string),
                count,
                mean: stat("mean").or_else(|| hist.and_then(Histogram::mean)),
                min: stat("min").or_else(|| hist.filter(|h| h.count > 0).map(|h| h.min)),
                max: stat("max").or_else(|| hist.filter(|h| h.count > 0).map(|h| h.max)),
                percentiles,
                source,
            });
        }
    }
    rows
}

/// Percentile column label: 99.9 -> `p99.9`.
pub fn percentile_label(p: f64) -> String {
    crate::model::metrics::percentile_suffix(p)
}

/// The SLO metrics (unique, in SLO order).
pub fn slo_metrics(insights: &Insights) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    if let Some(slos) = &insights.slos {
        for s in slos.upper.iter().chain(slos.lower.iter()) {
            let name = crate::model::metrics::normalize_metric_name(&s.metric);
            if seen.insert(name.clone()) {
                out.push(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(100.0), "100");
        assert_eq!(fmt_num(12.34567), "12.346");
        assert_eq!(fmt_num(0.012345), "0.0123");
        assert_eq!(fmt_num(1234.56), "1234.6");
        assert_eq!(fmt_num(-0.0), "0");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_with_units(3.0, Some("ms")), "3 ms");
    }

    #[test]
    fn error_metrics_parse() {
        assert_eq!(
            parse_error_metric("http/status-503"),
            Some(("http".into(), ErrorClass::Status, "503".into()))
        );
        assert_eq!(
            parse_error_metric("grpc/status-UNAVAILABLE"),
            Some(("grpc".into(), ErrorClass::Status, "UNAVAILABLE".into()))
        );
        assert_eq!(
            parse_error_metric("http-login/error-refused"),
            Some(("http-login".into(), ErrorClass::Error, "refused".into()))
        );
        assert_eq!(parse_error_metric("http/error-count"), None);
        assert_eq!(parse_error_metric("http/error-rate"), None);
        assert_eq!(parse_error_metric("http/latency-p99"), None);
    }

    #[test]
    fn slo_rows_compute_margins_and_fall_back_when_not_assessed() {
        use crate::model::{Slo, Slos};
        let mut r = ExperimentResult::new(1);
        let ins = r.insights_mut();
        ins.ensure_versions(&["a".into(), "b".into()]);
        ins.record(0, "x/up", 5.0);
        ins.record(1, "x/up", 12.0);
        ins.record(0, "x/low", 0.5);
        ins.slos = Some(Slos {
            upper: vec![Slo {
                metric: "x/up".into(),
                limit: 10.0,
            }],
            lower: vec![Slo {
                metric: "x/low".into(),
                limit: 0.75,
            }],
        });
        let rows = slo_rows(&r);
        assert_eq!(rows.len(), 4);
        let find = |v: usize, m: &str| {
            rows.iter()
                .find(|x| x.version == v && x.metric == m)
                .cloned()
                .expect("row")
        };
        let a_up = find(0, "x/up");
        assert_eq!(
            (a_up.margin(), a_up.satisfied, a_up.assessed),
            (Some(5.0), true, false)
        );
        let b_up = find(1, "x/up");
        assert_eq!((b_up.margin(), b_up.satisfied), (Some(-2.0), false));
        let a_low = find(0, "x/low");
        assert_eq!((a_low.margin(), a_low.satisfied), (Some(-0.25), false));
        let b_low = find(1, "x/low");
        assert_eq!((b_low.value, b_low.satisfied), (None, false));
        assert_eq!(b_low.version_name, "b");
    }

    #[test]
    fn latency_rows_use_stored_percentiles_else_the_histogram() {
        use crate::model::HistBucket;
        let mut ins = Insights::default();
        ins.ensure_versions(&[String::new()]);
        let h = Histogram {
            buckets: vec![
                HistBucket {
                    lower: 1.0,
                    upper: 2.0,
                    count: 50,
                },
                HistBucket {
                    lower: 2.0,
                    upper: 4.0,
                    count: 50,
                },
            ],
            count: 100,
            sum: 220.0,
            sum_sq: 600.0,
            min: 1.0,
            max: 4.0,
        };
        ins.record_histogram(0, "grpc/latency", &h);
        ins.record_histogram(0, "http/latency", &h);
        ins.record(0, "http/latency-p99", 3.9);
        ins.record(0, "http/latency-mean", 2.1);
        // A custom metric's lone percentile gauge is not a load source.
        ins.record(0, "prom/latency-p90", 7.0);
        let rows = latency_rows(&ins);
        assert_eq!(
            rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>(),
            ["grpc/latency", "http/latency"]
        );
        let grpc = &rows[0];
        assert_eq!(grpc.percentiles.len(), DEFAULT_PERCENTILES.len());
        assert_eq!(grpc.mean, Some(2.2));
        assert_eq!(
            (grpc.min, grpc.max, grpc.count),
            (Some(1.0), Some(4.0), Some(100))
        );
        let p50 = grpc.percentiles[0];
        assert!(p50.0 == 50.0 && (1.0..=2.0).contains(&p50.1), "{p50:?}");
        let http = &rows[1];
        assert_eq!(http.percentiles, vec![(99.0, 3.9)]);
        assert_eq!(http.mean, Some(2.1));
        assert_eq!(version_label(Some(&ins), 0), "default");
    }

    #[test]
    fn percentile_metrics_parse() {
        assert_eq!(
            parse_percentile_metric("http/latency-p99.9"),
            Some(("http/latency", 99.9))
        );
        assert_eq!(parse_percentile_metric("http/latency-mean"), None);
        assert_eq!(parse_percentile_metric("latency-p50"), None);
    }
}
