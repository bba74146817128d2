//! What a run measured ([`LoadReport`]) and how it becomes metrics ([`record_metrics`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::health::GeneratorReport;
use super::schedule::Segment;
use super::stats::{LagStats, LatencyStats};
use super::{ErrorKind, Outcome};
use crate::model::metrics::percentile_suffix;
use crate::model::{GeneratorInfo, Insights, LoadInfo, MetricMeta, MetricType, StageInfo};

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
    /// Per stage, in order (empty without stages).
    pub stages: Vec<StageReport>,
    /// How far the fixed-rate schedule fell behind (empty at max rate).
    pub lag: LagStats,
    /// Whether the load generator kept up: its CPU and its cgroup's throttling.
    pub generator: GeneratorReport,
}

/// What one stage measured. Requests belong to the stage their due time falls in.
#[derive(Clone, Debug)]
pub struct StageReport {
    /// The stage's place on the schedule (planned tickets, start, duration, rates).
    pub planned: Segment,
    pub requests: u64,
    pub errors: u64,
    pub latency: LatencyStats,
    pub statuses: BTreeMap<u16, u64>,
    pub error_kinds: BTreeMap<ErrorKind, u64>,
    /// From the stage's start to its planned end or to the completion of its last
    /// request, whichever is later.
    pub elapsed: Duration,
    pub lag: LagStats,
}

impl StageReport {
    /// Achieved requests per second: requests over `elapsed`.
    pub fn rate(&self) -> f64 {
        rate(self.requests, self.elapsed)
    }

    pub fn error_rate(&self) -> f64 {
        fraction(self.errors, self.requests)
    }
}

fn rate(requests: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        requests as f64 / secs
    } else {
        0.0
    }
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn add_counts(
    statuses: &mut BTreeMap<u16, u64>,
    kinds: &mut BTreeMap<ErrorKind, u64>,
    s: &ThreadStats,
) {
    for (code, n) in &s.statuses {
        *statuses.entry(*code).or_default() += n;
    }
    for kind in ErrorKind::ALL {
        let n = s.kinds[kind.index()];
        if n > 0 {
            *kinds.entry(kind).or_default() += n;
        }
    }
}

impl LoadReport {
    /// Achieved requests per second.
    pub fn rate(&self) -> f64 {
        rate(self.requests, self.elapsed)
    }

    pub fn error_rate(&self) -> f64 {
        fraction(self.errors, self.requests)
    }

    /// Add one thread's statistics (of one stage).
    pub(super) fn merge_stats(&mut self, s: &ThreadStats) {
        self.requests += s.requests;
        self.errors += s.errors;
        self.latency.merge(&s.latency);
        self.lag.merge(&s.lag);
        add_counts(&mut self.statuses, &mut self.error_kinds, s);
    }
}

impl StageReport {
    pub(super) fn new(planned: Segment) -> Self {
        StageReport {
            planned,
            requests: 0,
            errors: 0,
            latency: LatencyStats::new(),
            statuses: BTreeMap::new(),
            error_kinds: BTreeMap::new(),
            elapsed: Duration::ZERO,
            lag: LagStats::new(),
        }
    }

    /// Add one thread's statistics of this stage.
    pub(super) fn merge_stats(&mut self, s: &ThreadStats) {
        self.requests += s.requests;
        self.errors += s.errors;
        self.latency.merge(&s.latency);
        self.lag.merge(&s.lag);
        add_counts(&mut self.statuses, &mut self.error_kinds, s);
    }
}

/// One thread's statistics of one phase (or one stage of the measured phase).
pub(super) struct ThreadStats {
    requests: u64,
    latency: LatencyStats,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    kinds: [u64; 5],
    pub(super) lag: LagStats,
    /// When the last request completed.
    pub(super) last_done: Option<Instant>,
}

impl ThreadStats {
    pub(super) fn new() -> Self {
        ThreadStats {
            requests: 0,
            latency: LatencyStats::new(),
            errors: 0,
            statuses: BTreeMap::new(),
            kinds: [0; 5],
            lag: LagStats::new(),
            last_done: None,
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

// ---- details: stages and the generator ------------------------------------------------------

/// The details of a run for the result (`insights.load.<source>`): per-stage statistics
/// with `percentiles`, the generator's CPU, throttling and lag, and the warnings of
/// [`super::health::warnings`]. `status_name` spells a status code (gRPC: its name).
pub fn load_info(
    report: &LoadReport,
    percentiles: &[f64],
    status_name: &dyn Fn(u16) -> String,
) -> LoadInfo {
    let latency = |l: &LatencyStats| {
        let mut m = BTreeMap::new();
        for p in percentiles {
            if let Some(v) = l.percentile_ms(*p) {
                m.insert(percentile_suffix(*p), v);
            }
        }
        for (k, v) in [
            ("mean", l.mean_ms()),
            ("min", l.min_ms()),
            ("max", l.max_ms()),
        ] {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        }
        m
    };
    let stages = report
        .stages
        .iter()
        .map(|s| StageInfo {
            duration_seconds: s.planned.duration,
            from_qps: s.planned.from_qps,
            to_qps: s.planned.to_qps,
            planned_requests: s.planned.tickets,
            requests: s.requests,
            errors: s.errors,
            elapsed_seconds: s.elapsed.as_secs_f64(),
            rate: s.rate(),
            latency: latency(&s.latency),
            histogram: (s.latency.count() > 0).then(|| s.latency.to_model()),
            statuses: s
                .statuses
                .iter()
                .map(|(c, n)| (status_name(*c), *n))
                .collect(),
            error_kinds: s
                .error_kinds
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
            lag_p99_ms: s.lag.percentile_ms(99.0),
        })
        .collect();
    let g = &report.generator;
    let lag = &report.lag;
    let scheduled = lag.count() > 0;
    let cpu = g.cpu.map(|c| c.as_secs_f64());
    let generator = GeneratorInfo {
        cpu_seconds: cpu,
        cpu_per_request_us: cpu
            .filter(|_| report.requests > 0)
            .map(|c| c / report.requests as f64 * 1e6),
        cpus_used: g.cpus_used(report.elapsed),
        cpu_limit: g.cpu_limit,
        cpu_periods: g.throttling.map(|t| t.periods),
        throttled_periods: g.throttling.map(|t| t.throttled_periods),
        throttled_seconds: g.throttling.map(|t| t.throttled.as_secs_f64()),
        scheduled_requests: scheduled.then(|| lag.count()),
        late_requests: scheduled.then(|| lag.late()),
        lag_p50_ms: lag.percentile_ms(50.0),
        lag_p99_ms: lag.percentile_ms(99.0),
        lag_max_ms: lag.max_ms(),
    };
    LoadInfo {
        stages,
        generator: Some(generator),
        warnings: super::health::warnings(report),
    }
}
