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
use crate::load::schedule::{check_stages, LoadStage, Schedule};
use crate::load::{
    load_info, record_metrics, ErrorKind, LoadPlan, LoadReport, Outcome, RequestSender, Stop,
};
use crate::model::limits::{read_capped_async, MAX_PAYLOAD_BYTES, MAX_PEM_BYTES};
use crate::model::GoDuration;

pub use crate::load::DEFAULT_PERCENTILES;

mod client;
mod params;
#[cfg(test)]
mod tests;

pub use client::{HttpConn, HttpSender};
pub use params::*;

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
    /// Whether `qps` was given (it conflicts with `stages`).
    qps_set: bool,
    stages: Option<Vec<LoadStage>>,
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
        if let Some(stages) = &self.stages {
            // The warmup runs at the first stage's rate.
            let qps = stages.first().map_or(self.qps, |s| s.qps);
            let mut plan = LoadPlan::new(qps, Stop::default(), self.connections);
            plan.stages = stages.clone();
            plan.warmup = self.warmup();
            plan.timeout = self.timeout;
            return plan;
        }
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
            qps_set: self.qps.is_some(),
            stages: self.stages.clone(),
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
                if e.num_requests.is_some() || e.duration.is_some() || e.stages.is_some() {
                    // The endpoint sets its own amount of load.
                    r.num_requests = e.num_requests;
                    r.duration = e.duration.map(GoDuration::as_duration);
                    r.stages = e.stages.clone();
                }
                if let Some(q) = e.qps {
                    r.qps = q;
                    r.qps_set = true;
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
            for prefix in &prefixes {
                record_metrics(
                    ctx.insights,
                    version,
                    prefix,
                    report,
                    &percentiles,
                    "HTTP status",
                );
            }
            // Stages and the generator's health, once per load source.
            let info = load_info(report, &percentiles, &|c| c.to_string());
            ctx.insights.record_load(&prefixes[0], info);
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
                _ if !plan.stages.is_empty() => Schedule::new(&plan.stages).total_tickets(),
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
                qps = plan.qps,
                stages = plan.stages.len(),
                connections = r.connections,
                "http: load starts"
            );
            let report = crate::dist::run_load(&plan, sender, Some(progress))
                .await
                .map_err(|e| TaskError::Failed(format!("http: {e}")))?;
            if report.requests > 0 && report.errors == report.requests {
                tracing::warn!(url, "http: every request failed: {:?}", report.error_kinds);
            }
            for w in crate::load::health::warnings(&report) {
                tracing::warn!(url, "http: {w}");
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
    if let Some(stages) = &r.stages {
        check_stages(stages)
            .map_err(|(field, m)| TaskError::invalid(format!("{}{field}", r.f("stages")), m))?;
        for (set, key) in [
            (r.num_requests.is_some(), "numRequests"),
            (r.duration.is_some(), "duration"),
            (r.qps_set, "qps"),
        ] {
            if set {
                return Err(TaskError::invalid(
                    r.f(key),
                    "stages set the rate and the length of the load; remove this key (or stages)",
                ));
            }
        }
    }
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
