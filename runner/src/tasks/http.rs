//! The `http` task: load test of one URL, or of several named `endpoints`, with Iter8's
//! parameters, on the shared load engine ([`crate::load`]).
//!
//! # Endpoints
//! Without `endpoints`, the task loads `url` and records its metrics with prefix `http`.
//! With `endpoints`, as in Iter8 v0.15, the endpoints are named load targets of ONE version
//! (the experiment keeps one version): each is loaded in turn (sorted by name) and gets its
//! own metrics under `http-<endpoint>/...`; an SLO on `http-<endpoint>/...` is judged for
//! that one version. An endpoint's keys override the top-level ones (`headers` merge, the
//! endpoint's value of a header wins).
//!
//! `endpointsAreVersions: true` (ours, not Iter8's) makes each endpoint a version instead
//! (A/B/n: versions are the endpoints sorted by name) with every metric recorded twice:
//! under `http-<endpoint>/...` and under `http/...`, so that SLOs and rewards on `http/...`
//! compare the versions.
//!
//! # Metrics (latencies in milliseconds, units `msec`)
//! `<prefix>/request-count`, `error-count`, `error-rate` (0..1), `latency-mean`,
//! `latency-stddev` (population), `latency-min`, `latency-max`, `latency-p<X>` for
//! 50, 75, 90, 95, 99, 99.9 and every `percentiles` value (`p99.90` is named `p99.9`;
//! any other percentile an SLO, a reward or a condition names is computed from the
//! histogram when it is read),
//! the histogram `<prefix>/latency`, and counters that are present only when non-zero:
//! `<prefix>/status-<code>` (responses with that HTTP status, e.g. `http/status-200`) and
//! `<prefix>/error-<kind>` (requests without a response: `refused`, `timeout`, `reset`,
//! `tls`, `other`, e.g. `http/error-refused`).
//!
//! # Errors
//! A response whose status falls in one of `errorRanges` (inclusive; default `>= 400`) is
//! an error; so is every request without a response. Both are counted, never `Err`.
//! The task fails only when it cannot load at all: invalid input, unreadable
//! `payloadFile` / `caFile` or a host name that does not resolve (all found before the
//! first request), or the engine failing to start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use super::{http1, Progress, TaskContext, TaskError};
use crate::load::{record_metrics, ErrorKind, LoadPlan, LoadReport, Outcome, RequestSender, Stop};
use crate::model::limits::{read_capped_async, MAX_PAYLOAD_BYTES, MAX_PEM_BYTES};
use crate::model::GoDuration;

pub use crate::load::DEFAULT_PERCENTILES;
/// Requests sent when neither `numRequests` nor `duration` is given.
pub const DEFAULT_NUM_REQUESTS: u64 = 100;
/// Requests per second when `qps` is not given.
pub const DEFAULT_QPS: f64 = 8.0;
/// Concurrent connections when `connections` is not given.
pub const DEFAULT_CONNECTIONS: usize = 4;
/// Per-request timeout when `timeout` is not given (fortio's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// A range of HTTP status codes counted as errors; both bounds inclusive, either optional.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ErrorRange {
    /// Lowest status code of the range (inclusive); no lower bound when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<u16>,
    /// Highest status code of the range (inclusive); no upper bound when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<u16>,
}

impl ErrorRange {
    fn contains(&self, status: u16) -> bool {
        self.lower.is_none_or(|l| status >= l) && self.upper.is_none_or(|u| status <= u)
    }
}

/// Inputs of the `http` task (Iter8's names). Every key but `endpoints` and `percentiles`
/// can also be set per endpoint.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTask {
    /// URL to load (`http://` or `https://`), e.g. `http://127.0.0.1:8080/get`. Required
    /// unless every endpoint has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Number of requests to send (over all connections). Default 100 when no `duration`
    /// is given; with both, as in Iter8, exactly `numRequests` are sent and `duration` is
    /// ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_requests: Option<u64>,
    /// How long to send requests, e.g. `10s`, `1m30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<GoDuration>,
    /// Requests per second over all connections (default 8). `0` or negative: as fast as
    /// possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qps: Option<f64>,
    /// Number of parallel connections, each with one request in flight (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body as a string; makes the request a POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_str: Option<String>,
    /// Path of a file whose content is the request body; makes the request a POST. Read
    /// once, before the first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_file: Option<String>,
    /// URL of the request body, fetched by the runner before the first request (16 MiB at
    /// most); makes the request a POST. Iter8's chart renders it beside `payloadFile`
    /// (its curl download): the URL wins.
    #[serde(
        default,
        rename = "payloadURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_url: Option<String>,
    /// `Content-Type` of the request body, e.g. `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Status code ranges counted as errors (default: `[{lower: 400}]`). Requests without a
    /// response always are errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ranges: Option<Vec<ErrorRange>>,
    /// Extra latency percentiles to report, besides 50, 75, 90, 95, 99 and 99.9.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percentiles: Vec<f64>,
    /// Requests of a warmup phase whose results are discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_num_requests: Option<u64>,
    /// Duration of a warmup phase whose results are discarded, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration: Option<GoDuration>,
    /// Per-request timeout, connection included (default `3s`). A request that takes longer
    /// counts as an error of kind `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Use HTTP/2: for `http://` URLs, HTTP/2 without TLS (h2c, prior knowledge); for
    /// `https://` URLs, offer `h2` before `http/1.1` in ALPN. Default false (HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    /// PEM file of extra CA certificates trusted for `https://` URLs (besides the Mozilla
    /// roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Do not verify the server's TLS certificate (test setups only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Named endpoints of the one version under test, each loaded in turn (by name) with
    /// its own metrics `http-<name>/...`. Their keys override the top-level ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, HttpEndpoint>,
    /// Ours, not Iter8's: make each endpoint a version (A/B/n, ordered by name) whose
    /// metrics are also recorded under `http/...`, so SLOs and rewards on `http/...`
    /// compare them. Default false (Iter8: endpoints belong to one version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints_are_versions: Option<bool>,
}

/// One endpoint of the `http` task; every key overrides the task's top-level one.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpEndpoint {
    /// URL to load (`http://` or `https://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Number of requests to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_requests: Option<u64>,
    /// How long to send requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<GoDuration>,
    /// Requests per second; `0` or negative: as fast as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qps: Option<f64>,
    /// Number of parallel connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Request headers (merged over the top-level ones).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body as a string; makes the request a POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_str: Option<String>,
    /// File whose content is the request body; makes the request a POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_file: Option<String>,
    /// URL of the request body, fetched by the runner before the first request (16 MiB at
    /// most); makes the request a POST. Iter8's chart renders it beside `payloadFile`
    /// (its curl download): the URL wins.
    #[serde(
        default,
        rename = "payloadURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_url: Option<String>,
    /// `Content-Type` of the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Status code ranges counted as errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ranges: Option<Vec<ErrorRange>>,
    /// Requests of a discarded warmup phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_num_requests: Option<u64>,
    /// Duration of a discarded warmup phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration: Option<GoDuration>,
    /// Per-request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Use HTTP/2 (h2c for `http://`, ALPN `h2` for `https://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    /// PEM file of extra CA certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Do not verify the server's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// One endpoint with the top-level values applied and defaults filled in.
#[derive(Clone, Debug)]
struct Resolved {
    /// Endpoint name (None: the top-level URL).
    name: Option<String>,
    /// Prefix of field names in messages: "" or "endpoints.<name>.".
    field: String,
    url: Option<String>,
    num_requests: Option<u64>,
    duration: Option<Duration>,
    qps: f64,
    connections: usize,
    headers: BTreeMap<String, String>,
    payload_str: Option<String>,
    payload_file: Option<String>,
    payload_url: Option<String>,
    content_type: Option<String>,
    error_ranges: Vec<ErrorRange>,
    warmup_num_requests: Option<u64>,
    warmup_duration: Option<Duration>,
    timeout: Duration,
    http2: bool,
    ca_file: Option<String>,
    insecure_skip_verify: bool,
}

impl Resolved {
    fn f(&self, key: &str) -> String {
        format!("{}{key}", self.field)
    }

    /// As in Iter8 (fortio's `Exactly`): `numRequests` wins over `duration` (which is
    /// then ignored); neither: [`DEFAULT_NUM_REQUESTS`].
    fn stop(&self) -> Stop {
        match (self.num_requests, self.duration) {
            (None, None) => Stop {
                num_requests: Some(DEFAULT_NUM_REQUESTS),
                duration: None,
            },
            (Some(n), _) => Stop {
                num_requests: Some(n),
                duration: None,
            },
            (None, d) => Stop {
                num_requests: None,
                duration: d,
            },
        }
    }

    fn warmup(&self) -> Option<Stop> {
        let w = Stop {
            num_requests: self.warmup_num_requests.filter(|n| *n > 0),
            duration: self.warmup_duration.filter(|d| !d.is_zero()),
        };
        (w.num_requests.is_some() || w.duration.is_some()).then_some(w)
    }

    fn plan(&self) -> LoadPlan {
        let mut plan = LoadPlan::new(self.qps, self.stop(), self.connections);
        plan.warmup = self.warmup();
        plan.timeout = self.timeout;
        plan
    }
}

impl HttpTask {
    fn resolve(&self) -> Vec<Resolved> {
        let top = |name: Option<String>, field: String| Resolved {
            name,
            field,
            url: self.url.clone(),
            num_requests: self.num_requests,
            duration: self.duration.map(GoDuration::as_duration),
            qps: self.qps.unwrap_or(DEFAULT_QPS),
            connections: self.connections.unwrap_or(DEFAULT_CONNECTIONS),
            headers: self.headers.clone(),
            payload_str: self.payload_str.clone(),
            payload_file: self.payload_file.clone(),
            payload_url: self.payload_url.clone(),
            content_type: self.content_type.clone(),
            error_ranges: self
                .error_ranges
                .clone()
                .unwrap_or_else(default_error_ranges),
            warmup_num_requests: self.warmup_num_requests,
            warmup_duration: self.warmup_duration.map(GoDuration::as_duration),
            timeout: self
                .timeout
                .map_or(DEFAULT_TIMEOUT, GoDuration::as_duration),
            http2: self.http2.unwrap_or(false),
            ca_file: self.ca_file.clone(),
            insecure_skip_verify: self.insecure_skip_verify.unwrap_or(false),
        };
        if self.endpoints.is_empty() {
            return vec![top(None, String::new())];
        }
        self.endpoints
            .iter()
            .map(|(name, e)| {
                let mut r = top(Some(name.clone()), format!("endpoints.{name}."));
                if e.url.is_some() {
                    r.url = e.url.clone();
                }
                if e.num_requests.is_some() || e.duration.is_some() {
                    // The endpoint sets its own amount of load.
                    r.num_requests = e.num_requests;
                    r.duration = e.duration.map(GoDuration::as_duration);
                }
                if let Some(q) = e.qps {
                    r.qps = q;
                }
                if let Some(c) = e.connections {
                    r.connections = c;
                }
                for (k, v) in &e.headers {
                    r.headers.insert(k.clone(), v.clone());
                }
                if e.payload_str.is_some() || e.payload_file.is_some() || e.payload_url.is_some() {
                    r.payload_str = e.payload_str.clone();
                    r.payload_file = e.payload_file.clone();
                    r.payload_url = e.payload_url.clone();
                }
                if e.content_type.is_some() {
                    r.content_type = e.content_type.clone();
                }
                if let Some(er) = &e.error_ranges {
                    r.error_ranges = er.clone();
                }
                if e.warmup_num_requests.is_some() || e.warmup_duration.is_some() {
                    r.warmup_num_requests = e.warmup_num_requests;
                    r.warmup_duration = e.warmup_duration.map(GoDuration::as_duration);
                }
                if let Some(t) = e.timeout {
                    r.timeout = t.as_duration();
                }
                if let Some(h) = e.http2 {
                    r.http2 = h;
                }
                if e.ca_file.is_some() {
                    r.ca_file = e.ca_file.clone();
                }
                if let Some(i) = e.insecure_skip_verify {
                    r.insecure_skip_verify = i;
                }
                r
            })
            .collect()
    }

    /// Whether each endpoint is a version (`endpointsAreVersions: true` with endpoints).
    fn endpoints_as_versions(&self) -> bool {
        self.endpoints_are_versions == Some(true) && !self.endpoints.is_empty()
    }

    /// Metric name prefixes this task produces: `http` without endpoints, `http-<endpoint>`
    /// per endpoint (and `http` too when endpoints are versions).
    pub fn metric_prefixes(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.endpoints.is_empty() || self.endpoints_as_versions() {
            p.push("http".to_string());
        }
        p.extend(self.endpoints.keys().map(|n| format!("http-{n}")));
        p
    }

    /// Version names: the endpoint names in order when endpoints are versions, else empty
    /// (one version).
    pub fn version_names(&self) -> Vec<String> {
        if self.endpoints_as_versions() {
            self.endpoints.keys().cloned().collect()
        } else {
            Vec::new()
        }
    }

    /// Every check that needs no I/O. The field in the error is the path inside `with`.
    pub fn validate(&self) -> Result<(), TaskError> {
        for (i, p) in self.percentiles.iter().enumerate() {
            if !(p.is_finite() && *p > 0.0 && *p <= 100.0) {
                return Err(TaskError::invalid(
                    format!("percentiles[{i}]"),
                    format!("{p} is not a percentile; use a number in (0, 100], e.g. 99.9"),
                ));
            }
        }
        for name in self.endpoints.keys() {
            if name.is_empty() || name.contains(['/', ' ']) {
                return Err(TaskError::invalid(
                    format!("endpoints.{name}"),
                    "an endpoint name must be non-empty, without '/' or spaces (it becomes \
                     part of metric names http-<name>/...)",
                ));
            }
        }
        for r in self.resolve() {
            validate_resolved(&r)?;
        }
        Ok(())
    }

    /// Load every endpoint in turn and record the metrics.
    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        let reports = self.measure(ctx.progress).await?;
        ctx.insights.ensure_versions(&self.version_names());
        let percentiles = self.all_percentiles();
        let as_versions = self.endpoints_as_versions();
        for (i, (name, report)) in reports.iter().enumerate() {
            let version = if as_versions { i } else { 0 };
            let prefixes = match name {
                Some(n) if as_versions => vec![format!("http-{n}"), "http".to_string()],
                Some(n) => vec![format!("http-{n}")],
                None => vec!["http".to_string()],
            };
            for prefix in prefixes {
                record_metrics(
                    ctx.insights,
                    version,
                    &prefix,
                    report,
                    &percentiles,
                    "HTTP status",
                );
            }
        }
        Ok(())
    }

    /// Load every endpoint in turn (in version order) and return what was measured, per
    /// endpoint name (None without endpoints). Validates first; reads files and resolves
    /// hosts of every endpoint before the first request.
    pub async fn measure(
        &self,
        progress: &Progress,
    ) -> Result<Vec<(Option<String>, LoadReport)>, TaskError> {
        self.validate()?;
        let mut prepared = Vec::new();
        for r in self.resolve() {
            let sender = HttpSender::prepare(&r).await?;
            prepared.push((r, sender));
        }
        let mut reports = Vec::with_capacity(prepared.len());
        for (r, sender) in prepared {
            let plan = r.plan();
            let label = match &r.name {
                Some(n) => format!("http {n}"),
                None => "http".to_string(),
            };
            let total = match plan.stop {
                Stop {
                    num_requests: Some(n),
                    duration: None,
                } => n,
                _ => 0,
            };
            progress.start(label, total);
            let url = r.url.as_deref().unwrap_or_default();
            tracing::info!(
                url,
                qps = r.qps,
                connections = r.connections,
                "http: load starts"
            );
            let report = crate::dist::run_load(&plan, sender, Some(progress))
                .await
                .map_err(|e| TaskError::Failed(format!("http: {e}")))?;
            if report.requests > 0 && report.errors == report.requests {
                tracing::warn!(url, "http: every request failed: {:?}", report.error_kinds);
            }
            reports.push((r.name.clone(), report));
        }
        Ok(reports)
    }

    /// 50, 75, 90, 95, 99, 99.9 and the user's, without duplicates, ascending.
    fn all_percentiles(&self) -> Vec<f64> {
        crate::load::all_percentiles(&self.percentiles)
    }
}

fn default_error_ranges() -> Vec<ErrorRange> {
    vec![ErrorRange {
        lower: Some(400),
        upper: None,
    }]
}

fn validate_resolved(r: &Resolved) -> Result<(), TaskError> {
    let Some(url) = r.url.as_deref() else {
        return Err(TaskError::invalid(
            r.f("url"),
            "missing; set the URL to load, e.g. http://127.0.0.1:8080/get",
        ));
    };
    parse_url(url).map_err(|m| TaskError::invalid(r.f("url"), m))?;
    if r.num_requests == Some(0) {
        return Err(TaskError::invalid(
            r.f("numRequests"),
            "must be at least 1 (or leave it out and set a duration)",
        ));
    }
    if r.duration.is_some_and(|d| d.is_zero()) {
        return Err(TaskError::invalid(
            r.f("duration"),
            "must be more than 0, e.g. \"10s\"",
        ));
    }
    crate::model::limits::check_qps(r.qps).map_err(|m| TaskError::invalid(r.f("qps"), m))?;
    crate::model::limits::check_connections(r.connections)
        .map_err(|m| TaskError::invalid(r.f("connections"), m))?;
    if r.timeout.is_zero() {
        return Err(TaskError::invalid(
            r.f("timeout"),
            "must be more than 0, e.g. \"3s\"",
        ));
    }
    if r.payload_str.is_some() && r.payload_file.is_some() {
        return Err(TaskError::invalid(
            r.f("payloadFile"),
            "set either payloadStr or payloadFile, not both",
        ));
    }
    if let Some(u) = &r.payload_url {
        if r.payload_str.is_some() {
            return Err(TaskError::invalid(
                r.f("payloadURL"),
                "set either payloadStr or payloadURL, not both",
            ));
        }
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(TaskError::invalid(
                r.f("payloadURL"),
                format!("{u:?} is not an http(s) URL, e.g. https://example.com/payload.json"),
            ));
        }
    }
    if r.payload_file.as_deref().is_some_and(str::is_empty) {
        return Err(TaskError::invalid(
            r.f("payloadFile"),
            "is empty; set the path of the file holding the request body",
        ));
    }
    for (name, value) in &r.headers {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            TaskError::invalid(
                r.f(&format!("headers.{name}")),
                "is not a valid header name (letters, digits and -, e.g. X-Request-Id)",
            )
        })?;
        HeaderValue::from_str(value).map_err(|_| {
            TaskError::invalid(
                r.f(&format!("headers.{name}")),
                "the value has characters not allowed in a header (e.g. a newline)",
            )
        })?;
    }
    if let Some(ct) = &r.content_type {
        HeaderValue::from_str(ct).map_err(|_| {
            TaskError::invalid(
                r.f("contentType"),
                "is not a valid header value, use e.g. application/json",
            )
        })?;
    }
    for (i, er) in r.error_ranges.iter().enumerate() {
        match (er.lower, er.upper) {
            (None, None) => {
                return Err(TaskError::invalid(
                    r.f(&format!("errorRanges[{i}]")),
                    "set lower and/or upper, e.g. {lower: 500} or {lower: 400, upper: 499}",
                ))
            }
            (Some(l), Some(u)) if l > u => {
                return Err(TaskError::invalid(
                    r.f(&format!("errorRanges[{i}]")),
                    format!("lower ({l}) is above upper ({u})"),
                ))
            }
            _ => {}
        }
    }
    if r.ca_file.as_deref().is_some_and(str::is_empty) {
        return Err(TaskError::invalid(
            r.f("caFile"),
            "is empty; set the path of a PEM file of CA certificates",
        ));
    }
    Ok(())
}

/// The parts of a URL the client needs.
struct Target {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let uri: Uri = url.trim().parse().map_err(|e| {
        format!("{url:?} is not a valid URL ({e}); use e.g. http://127.0.0.1:8080/get")
    })?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!(
                "scheme {other:?} is not supported; use http:// or https://"
            ))
        }
        None => {
            return Err(format!(
                "{url:?} has no scheme; use e.g. http://{}",
                url.trim()
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host; use e.g. http://127.0.0.1:8080/get"))?;
    let host = authority.host();
    if host.is_empty() {
        return Err(format!(
            "{url:?} has no host; use e.g. http://127.0.0.1:8080/get"
        ));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    crate::model::limits::check_port(authority.as_str()).map_err(|m| format!("{url:?}: {m}"))?;
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(Target {
        https,
        host,
        port,
        authority: authority.as_str().to_string(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
    })
}

// ---- the client -----------------------------------------------------------------------------

/// The request template of one endpoint, shared by every worker.
pub struct HttpSender {
    addrs: Vec<SocketAddr>,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// h2c prior knowledge for http:// URLs.
    h2c: bool,
    method: Method,
    /// The whole HTTP/1.1 request (head and body), serialized once.
    request_h1: Bytes,
    /// absolute-form for HTTP/2
    uri_h2: Uri,
    headers_h2: HeaderMap,
    body: Bytes,
    error_ranges: Vec<ErrorRange>,
}

/// One worker's connection (None until the first request, and after a failure).
#[derive(Default)]
pub struct HttpConn {
    sender: Option<SendReq>,
}

enum SendReq {
    H1(http1::Conn<http1::Stream>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// Why an exchange on a connection failed.
enum ExchangeError {
    H1(http1::Error),
    H2(hyper::Error),
}

impl ExchangeError {
    fn kind(&self) -> ErrorKind {
        match self {
            ExchangeError::H1(http1::Error::Io(e)) => classify_io(e).unwrap_or(ErrorKind::Other),
            ExchangeError::H1(http1::Error::Closed) => ErrorKind::Reset,
            ExchangeError::H1(http1::Error::Invalid(_)) => ErrorKind::Other,
            ExchangeError::H2(e) => classify(e),
        }
    }
}

/// Time allowed to fetch `payloadURL`.
const PAYLOAD_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// GET a payload (`payloadURL`): the body of a 2xx reply (at most 16 MiB).
async fn fetch_payload(url: &str) -> Result<Bytes, String> {
    let resp = super::httpcall::send("GET", url, &[], None, PAYLOAD_FETCH_TIMEOUT).await?;
    if !(200..300).contains(&resp.status) {
        return Err(format!("HTTP status {}", resp.status));
    }
    Ok(resp.body)
}

impl HttpSender {
    /// Read files, resolve the host, build the request template. Errors name the field.
    async fn prepare(r: &Resolved) -> Result<Self, TaskError> {
        let url = r.url.as_deref().unwrap_or_default();
        let target = parse_url(url).map_err(|m| TaskError::invalid(r.f("url"), m))?;
        let body = match (&r.payload_str, &r.payload_file) {
            _ if r.payload_url.is_some() => {
                let u = r.payload_url.as_deref().unwrap_or_default();
                Some(fetch_payload(u).await.map_err(|m| {
                    TaskError::invalid(
                        r.f("payloadURL"),
                        format!("GET {}: {m}", super::httpcall::redact_url(u)),
                    )
                })?)
            }
            (Some(s), _) => Some(Bytes::from(s.clone())),
            (None, Some(path)) => Some(Bytes::from(
                read_capped_async(Path::new(path), MAX_PAYLOAD_BYTES)
                    .await
                    .map_err(|e| {
                        TaskError::invalid(
                            r.f("payloadFile"),
                            format!("cannot read {path:?}: {e}; set the path of a readable file"),
                        )
                    })?,
            )),
            (None, None) => None,
        };
        let tls = if target.https {
            let ca = match &r.ca_file {
                Some(path) => Some(
                    read_capped_async(Path::new(path), MAX_PEM_BYTES)
                        .await
                        .map_err(|e| {
                            TaskError::invalid(r.f("caFile"), format!("cannot read {path:?}: {e}"))
                        })?,
                ),
                None => None,
            };
            let config = super::tls::client_config(ca.as_deref(), r.insecure_skip_verify, r.http2)
                .map_err(|m| TaskError::invalid(r.f("caFile"), m))?;
            let name =
                rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
                    TaskError::invalid(r.f("url"), format!("invalid TLS server name: {e}"))
                })?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| {
                TaskError::invalid(
                    r.f("url"),
                    format!("cannot resolve host {:?}: {e}", target.host),
                )
            })?
            .collect();
        if addrs.is_empty() {
            return Err(TaskError::invalid(
                r.f("url"),
                format!("host {:?} has no address", target.host),
            ));
        }
        let scheme = if target.https { "https" } else { "http" };
        let uri_h2: Uri = format!("{scheme}://{}{}", target.authority, target.path_and_query)
            .parse()
            .map_err(|e| TaskError::invalid(r.f("url"), format!("invalid URL: {e}")))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| TaskError::invalid(r.f(&format!("headers.{k}")), e.to_string()))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| TaskError::invalid(r.f(&format!("headers.{k}")), e.to_string()))?;
            headers.insert(name, value);
        }
        if let Some(ct) = &r.content_type {
            let v = HeaderValue::from_str(ct)
                .map_err(|e| TaskError::invalid(r.f("contentType"), e.to_string()))?;
            headers.insert(CONTENT_TYPE, v);
        }
        // The framing of the body is the client's business, not the user's.
        headers.remove(CONTENT_LENGTH);
        headers.remove(TRANSFER_ENCODING);
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let request_h1 = serialize_h1(
            &method,
            &target.path_and_query,
            &target.authority,
            &headers,
            body.as_ref(),
        );
        let mut headers_h2 = headers;
        headers_h2.remove(HOST);
        Ok(HttpSender {
            addrs,
            tls,
            h2c: r.http2 && !target.https,
            method,
            request_h1,
            uri_h2,
            headers_h2,
            body: body.unwrap_or_default(),
            error_ranges: r.error_ranges.clone(),
        })
    }

    fn is_error_status(&self, status: u16) -> bool {
        self.error_ranges.iter().any(|r| r.contains(status))
    }

    async fn connect(&self) -> Result<SendReq, ErrorKind> {
        let mut last = ErrorKind::Other;
        let mut tcp = None;
        for addr in &self.addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = classify_io(&e).unwrap_or(ErrorKind::Other),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let tls =
                    connector.connect(name.clone(), tcp).await.map_err(|e| {
                        match classify_io(&e) {
                            Some(ErrorKind::Refused) => ErrorKind::Refused,
                            Some(ErrorKind::Timeout) => ErrorKind::Timeout,
                            _ => ErrorKind::Tls,
                        }
                    })?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(http1::Stream::Tls(Box::new(tls)), h2).await
            }
            None => handshake(http1::Stream::Tcp(tcp), self.h2c).await,
        }
    }

    /// One request on `sender`: (status, whether the connection can be reused).
    async fn exchange(&self, sender: &mut SendReq) -> Result<(u16, bool), ExchangeError> {
        match sender {
            SendReq::H1(c) => {
                let r = c
                    .request(&self.request_h1, self.method == Method::HEAD)
                    .await
                    .map_err(ExchangeError::H1)?;
                Ok((r.status, r.keep_alive))
            }
            SendReq::H2(s) => {
                let mut req = Request::new(Full::new(self.body.clone()));
                *req.method_mut() = self.method.clone();
                *req.uri_mut() = self.uri_h2.clone();
                *req.headers_mut() = self.headers_h2.clone();
                let resp = s.send_request(req).await.map_err(ExchangeError::H2)?;
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    frame.map_err(ExchangeError::H2)?;
                }
                Ok((status, true))
            }
        }
    }

    /// Connect, then send one request.
    async fn fresh(&self) -> Result<(SendReq, (u16, bool)), Outcome> {
        let mut sender = self.connect().await.map_err(Outcome::Failed)?;
        match self.exchange(&mut sender).await {
            Ok(r) => Ok((sender, r)),
            Err(e) => Err(Outcome::Failed(e.kind())),
        }
    }
}

/// The HTTP/1.1 request, serialized: request line, `host` first, the other header fields,
/// `content-length` when there is a body, then the body.
fn serialize_h1(
    method: &Method,
    path_and_query: &str,
    authority: &str,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Bytes {
    let mut out = Vec::with_capacity(256 + body.map_or(0, |b| b.len()));
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    match headers.get(HOST) {
        Some(h) => out.extend_from_slice(h.as_bytes()),
        None => out.extend_from_slice(authority.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers.iter().filter(|(n, _)| *n != HOST) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(b) = body {
        out.extend_from_slice(format!("content-length: {}\r\n", b.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    Bytes::from(out)
}

async fn handshake(io: http1::Stream, h2: bool) -> Result<SendReq, ErrorKind> {
    if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(|e| classify(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(SendReq::H2(sender))
    } else {
        Ok(SendReq::H1(http1::Conn::new(io)))
    }
}

impl RequestSender for HttpSender {
    type Conn = HttpConn;

    fn new_conn(&self, _worker: usize) -> HttpConn {
        HttpConn::default()
    }

    async fn send(&self, conn: &mut HttpConn) -> Outcome {
        // Taken out while in flight: if the engine drops this future (timeout), the
        // connection is dropped with it and the next request reconnects.
        let reused = match conn.sender.take() {
            // unread bytes before a request: the server sent something unasked (e.g. a 408
            // before closing); start over on a new connection
            Some(SendReq::H1(c)) => c.is_clean().then_some(SendReq::H1(c)),
            Some(SendReq::H2(mut s)) => s.ready().await.is_ok().then_some(SendReq::H2(s)),
            None => None,
        };
        let done = match reused {
            Some(mut sender) => match self.exchange(&mut sender).await {
                Ok(r) => Ok((sender, r)),
                // A kept-alive HTTP/1.1 connection that fails before any byte of the
                // response arrived was closed by the server while idle (its keep-alive
                // timeout): the request was not processed; send it once more on a new
                // connection, as browsers and hyper's pooled client do.
                Err(ExchangeError::H1(e))
                    if matches!(&sender, SendReq::H1(c) if !c.got_bytes())
                        && !matches!(e, http1::Error::Invalid(_)) =>
                {
                    self.fresh().await
                }
                Err(e) => Err(Outcome::Failed(e.kind())),
            },
            None => self.fresh().await,
        };
        match done {
            Ok((sender, (status, keep_alive))) => {
                if keep_alive {
                    conn.sender = Some(sender);
                }
                Outcome::Response {
                    status,
                    error: self.is_error_status(status),
                }
            }
            Err(outcome) => outcome,
        }
    }
}

/// Error kind of an I/O error, when it says.
fn classify_io(e: &std::io::Error) -> Option<ErrorKind> {
    use std::io::ErrorKind as K;
    if let Some(inner) = e.get_ref() {
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return Some(ErrorKind::Tls);
        }
        if let Some(k) = inner.downcast_ref::<std::io::Error>().and_then(classify_io) {
            return Some(k);
        }
    }
    match e.kind() {
        K::ConnectionRefused => Some(ErrorKind::Refused),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Some(ErrorKind::Reset)
        }
        K::TimedOut => Some(ErrorKind::Timeout),
        _ => None,
    }
}

/// Error kind of a client error: walks the source chain.
fn classify(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(k) = classify_io(io) {
                return k;
            }
        }
        if err.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return ErrorKind::Timeout;
            }
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                // keep looking for a more precise cause, else: reset
                if err.source().is_none() {
                    return ErrorKind::Reset;
                }
            }
        }
        cur = err.source();
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            return ErrorKind::Reset;
        }
    }
    ErrorKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::metrics::percentile_suffix;

    fn task(yaml: &str) -> HttpTask {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn invalid_field(t: &HttpTask) -> String {
        match t.validate() {
            Err(TaskError::Invalid { field, message }) => {
                assert!(!message.is_empty());
                field
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn every_validation_error_names_the_field() {
        let cases = [
            ("numRequests: 5", "url"),
            ("url: ftp://x/y", "url"),
            ("url: 127.0.0.1:8080/get", "url"),
            ("url: 'http://'", "url"),
            ("url: http://a/\nnumRequests: 0", "numRequests"),
            ("url: http://a/\nduration: 0s", "duration"),
            ("url: http://a/\nqps: .nan", "qps"),
            ("url: http://a/\nconnections: 0", "connections"),
            ("url: http://a/\ntimeout: 0s", "timeout"),
            (
                "url: http://a/\npayloadStr: x\npayloadFile: /tmp/x",
                "payloadFile",
            ),
            (
                "url: http://a/\nheaders: {'bad name': x}",
                "headers.bad name",
            ),
            ("url: http://a/\nheaders: {X-A: \"a\\nb\"}", "headers.X-A"),
            ("url: http://a/\ncontentType: \"a\\nb\"", "contentType"),
            ("url: http://a/\nerrorRanges: [{}]", "errorRanges[0]"),
            (
                "url: http://a/\nerrorRanges: [{lower: 500}, {lower: 500, upper: 400}]",
                "errorRanges[1]",
            ),
            ("url: http://a/\npercentiles: [101]", "percentiles[0]"),
            ("url: http://a/\ncaFile: ''", "caFile"),
            (
                "endpoints: {v1: {url: http://a/}, v2: {}}",
                "endpoints.v2.url",
            ),
            (
                "url: http://a/\nendpoints: {v1: {numRequests: 0}}",
                "endpoints.v1.numRequests",
            ),
        ];
        for (yaml, field) in cases {
            let t = task(yaml);
            assert_eq!(invalid_field(&t), field, "{yaml}");
            let msg = t.validate().unwrap_err().to_string();
            assert!(msg.starts_with(field), "{msg}");
        }
    }

    #[test]
    fn unknown_and_mistyped_parameters_are_rejected() {
        let e = serde_yaml::from_str::<HttpTask>("url: http://a/\nnumRequest: 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("numRequest"), "{e}");
        let e = serde_yaml::from_str::<HttpTask>("url: http://a/\nqps: fast")
            .unwrap_err()
            .to_string();
        assert!(e.contains("qps"), "{e}");
        let e = serde_yaml::from_str::<HttpTask>("url: http://a/\nduration: 10 sec")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duration"), "{e}");
    }

    #[test]
    fn defaults_and_overrides() {
        let t = task(
            "url: http://a/\nqps: 20\nheaders: {A: '1', B: '2'}\nendpoints:\n  \
             v2: {duration: 2s, headers: {B: '3'}}\n  v1: {url: 'http://b/', connections: 9}\n",
        );
        t.validate().unwrap();
        let r = t.resolve();
        assert_eq!(
            r.iter()
                .map(|r| r.name.clone().unwrap())
                .collect::<Vec<_>>(),
            ["v1", "v2"]
        );
        assert_eq!(r[0].url.as_deref(), Some("http://b/"));
        assert_eq!(r[0].connections, 9);
        assert_eq!(r[0].qps, 20.0);
        assert_eq!(r[0].stop().num_requests, Some(DEFAULT_NUM_REQUESTS));
        assert_eq!(r[1].stop().num_requests, None);
        assert_eq!(r[1].stop().duration, Some(Duration::from_secs(2)));
        assert_eq!(r[1].connections, DEFAULT_CONNECTIONS);
        assert_eq!(r[1].headers["A"], "1");
        assert_eq!(r[1].headers["B"], "3");
        assert_eq!(r[1].error_ranges, default_error_ranges());
        assert_eq!(
            t.metric_prefixes(),
            ["http-v1".to_string(), "http-v2".into()]
        );
        assert!(t.version_names().is_empty());
        // both: numRequests wins, duration is ignored (Iter8: fortio's Exactly)
        let both = task("url: http://a/\nnumRequests: 7\nduration: 1s");
        let stop = both.resolve()[0].stop();
        assert_eq!((stop.num_requests, stop.duration), (Some(7), None));
        let single = task("url: http://a/");
        let r = single.resolve();
        assert_eq!(r[0].qps, DEFAULT_QPS);
        assert_eq!(r[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(single.metric_prefixes(), ["http".to_string()]);
    }

    #[test]
    fn percentiles_always_include_the_defaults() {
        let t = task("url: http://a/\npercentiles: [99.99, 50, 99.90]");
        let names: Vec<String> = t
            .all_percentiles()
            .iter()
            .map(|p| percentile_suffix(*p))
            .collect();
        assert_eq!(
            names,
            ["p50", "p75", "p90", "p95", "p99", "p99.9", "p99.99"]
        );
    }

    #[test]
    fn error_ranges_are_inclusive() {
        let r = ErrorRange {
            lower: Some(500),
            upper: Some(503),
        };
        assert!(!r.contains(499));
        assert!(r.contains(500));
        assert!(r.contains(503));
        assert!(!r.contains(504));
        let open = ErrorRange {
            lower: None,
            upper: Some(199),
        };
        assert!(open.contains(100));
        assert!(!open.contains(200));
    }
}
