//! The `http` task's inputs, as users write them (Iter8's names).

use super::*;

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
    pub(crate) fn contains(&self, status: u16) -> bool {
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
    /// Load stages, in order, instead of `qps`, `numRequests` and `duration`: each
    /// `{duration, qps}` holds `qps` requests per second for `duration`; with `ramp: true` the
    /// rate moves linearly from the previous stage's `qps` (0 before the first stage) to
    /// `qps`. E.g. `[{duration: 30s, qps: 200, ramp: true}, {duration: 1m, qps: 200}]`. Each
    /// stage has its own statistics in the result (`insights.load.<prefix>.stages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<LoadStage>>,
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
    /// Load stages, replacing the top-level ones (and `qps`, `numRequests`, `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<LoadStage>>,
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
