//! What a run measured ([`LoadReport`]) and how it becomes metrics ([`record_metrics`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::stats::LatencyStats;
use super::{ErrorKind, Outcome};
use crate::model::metrics::percentile_suffix;
use crate::model::{Insights, MetricMeta, MetricType};

// ---- the report ---------------------------------------------------------------------------

/// What a run measured (the measured phase only).
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests sent (and completed, failed or timed out).
    pub requests: u64,
    /// Requests whose [`Outcome`] is an error.
    pub errors: u64,
    /// Latency of the requests that got a response or timed out (not of connection
    /// failures).
    pub latency: LatencyStats,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without a response, by kind.
    pub error_kinds: BTreeMap<ErrorKind, u64>,
    /// From the start of the measured phase to the completion of its last request.
    pub elapsed: Duration,
    /// When the measured phase started (wall clock), so that reports of several processes
    /// can be placed on one time line ([`super::partial`]).
    pub started: Option<std::time::SystemTime>,
}

impl LoadReport {
    /// Achieved requests per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    pub(super) fn merge_stats(&mut self, s: &ThreadStats) {
        self.requests += s.requests;
        self.errors += s.errors;
        self.latency.merge(&s.latency);
        for (code, n) in &s.statuses {
            *self.statuses.entry(*code).or_default() += n;
        }
        for kind in ErrorKind::ALL {
            let n = s.kinds[kind.index()];
            if n > 0 {
                *self.error_kinds.entry(kind).or_default() += n;
            }
        }
    }
}

/// One thread's statistics of one phase.
pub(super) struct ThreadStats {
    requests: u64,
    latency: LatencyStats,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    kinds: [u64; 5],
}

impl ThreadStats {
    pub(super) fn new() -> Self {
        ThreadStats {
            requests: 0,
            latency: LatencyStats::new(),
            errors: 0,
            statuses: BTreeMap::new(),
            kinds: [0; 5],
        }
    }

    #[inline]
    pub(super) fn record(&mut self, latency: Duration, outcome: Outcome) {
        self.requests += 1;
        match outcome {
            Outcome::Response { status, error } => {
                self.latency.record(latency);
                *self.statuses.entry(status).or_default() += 1;
                if error {
                    self.errors += 1;
                }
            }
            Outcome::Failed(kind) => {
                if kind == ErrorKind::Timeout {
                    self.latency.record(latency);
                }
                self.kinds[kind.index()] += 1;
                self.errors += 1;
            }
        }
    }
}

// ---- metrics ----------------------------------------------------------------------------------

/// Percentiles always reported.
pub const DEFAULT_PERCENTILES: [f64; 6] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// [`DEFAULT_PERCENTILES`] plus `extra` (finite ones), ascending, without two that share a
/// metric name.
pub fn all_percentiles(extra: &[f64]) -> Vec<f64> {
    let mut all: Vec<f64> = DEFAULT_PERCENTILES.to_vec();
    all.extend(extra.iter().copied().filter(|p| p.is_finite()));
    all.sort_by(f64::total_cmp);
    all.dedup_by(|a, b| percentile_suffix(*a) == percentile_suffix(*b));
    all
}

/// Record a load report as the metrics of `<prefix>/...` for `version` (names and units as
/// documented in `tasks::http`), registering each. `status_kind` names the protocol's
/// status in descriptions ("HTTP status", "gRPC code").
pub fn record_metrics(
    insights: &mut Insights,
    version: usize,
    prefix: &str,
    report: &LoadReport,
    percentiles: &[f64],
    status_kind: &str,
) {
    let ms = Some("msec");
    let mut put = |name: &str, kind: MetricType, desc: &str, units: Option<&str>, v: f64| {
        let full = format!("{prefix}/{name}");
        insights.register_metric(&full, MetricMeta::new(kind, desc, units));
        insights.record(version, &full, v);
    };
    put(
        "request-count",
        MetricType::Counter,
        "number of requests sent",
        None,
        report.requests as f64,
    );
    put(
        "error-count",
        MetricType::Counter,
        "number of responses that were errors (errorRanges) plus requests without a response",
        None,
        report.errors as f64,
    );
    put(
        "error-rate",
        MetricType::Gauge,
        "fraction of requests that were errors",
        None,
        report.error_rate(),
    );
    let l = &report.latency;
    let stats = [
        ("latency-mean", "mean latency", l.mean_ms()),
        (
            "latency-stddev",
            "standard deviation of latency",
            l.stddev_ms(),
        ),
        ("latency-min", "minimum latency", l.min_ms()),
        ("latency-max", "maximum latency", l.max_ms()),
    ];
    // Without a single response there is no latency: the metrics are unavailable in this
    // loop (an earlier loop's value must not stand in for it when SLOs are assessed).
    let mut latency_names: Vec<String> = Vec::new();
    for (name, desc, v) in stats {
        match v {
            Some(v) => put(name, MetricType::Gauge, desc, ms, v),
            None => latency_names.push(name.to_string()),
        }
    }
    for p in percentiles {
        let suffix = percentile_suffix(*p);
        match l.percentile_ms(*p) {
            Some(v) => put(
                &format!("latency-{suffix}"),
                MetricType::Gauge,
                &format!("{} percentile of latency", &suffix[1..]),
                ms,
                v,
            ),
            None => latency_names.push(format!("latency-{suffix}")),
        }
    }
    for (code, n) in &report.statuses {
        put(
            &format!("status-{code}"),
            MetricType::Counter,
            &format!("number of responses with {status_kind} {code}"),
            None,
            *n as f64,
        );
    }
    for (kind, n) in &report.error_kinds {
        put(
            &format!("error-{kind}"),
            MetricType::Counter,
            &format!("number of requests without a response, of kind {kind}"),
            None,
            *n as f64,
        );
    }
    let hist_name = format!("{prefix}/latency");
    insights.register_metric(
        &hist_name,
        MetricMeta::new(MetricType::Histogram, "latency histogram", ms),
    );
    if l.count() > 0 {
        insights.record_histogram(version, &hist_name, &l.to_model());
    } else {
        latency_names.push("latency".to_string());
    }
    for name in latency_names {
        insights.mark_unavailable(
            version,
            &format!("{prefix}/{name}"),
            "no request got a response: there is no latency to measure",
        );
    }
}
