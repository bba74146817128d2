//! The `grpc` task: a load test of any gRPC service, with ghz's parameter names: unary
//! methods, and client, server and bidirectional streaming methods as ghz runs them
//! ([`crate::grpc::streaming`]: `stream-interval`, `stream-call-count`,
//! `stream-call-duration`; each stream is one call).
//!
//! The service is described by a .proto file (`proto`, with `importPaths`), inline .proto
//! text (`protoText`), a .proto fetched by the runner (`protoURL`), a compiled descriptor set
//! (`protoset`), or else by server reflection. Requests are built from JSON (`data`, or
//! `dataURL`) through the request message's descriptor before load starts: an unknown
//! service, method or data field fails the task with an error naming the field.
//!
//! Metrics (prefix `grpc`; with `endpoints`, as in Iter8 v0.15, the endpoints are named load
//! targets of one version, each with its own prefix `grpc-<endpoint>`; with
//! `endpointsAreVersions: true` (ours) each endpoint is a version and gets them under both
//! `grpc-<endpoint>/...` and `grpc/...`, so SLOs on `grpc/...` compare versions):
//! `request-count`, `error-count`, `error-rate`, `latency-mean`, `latency-stddev`,
//! `latency-min`, `latency-max`, `latency-p<X>` (milliseconds with
//! microsecond resolution), the histogram `latency`, and `status-<CODE>` counters per gRPC
//! status code (`status-OK`, `status-UNAVAILABLE`, ...). Iter8's names
//! (`grpc/latency/mean`, `grpc/latency/p95.0`) resolve to these.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use prost_reflect::DescriptorPool;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;
use tonic::Code;

mod prepare;
mod record;
mod resolve;
mod sender;
#[cfg(test)]
mod tests;

use super::{Progress, TaskContext, TaskError};
use crate::grpc::client::{
    code_name, frame, metadata_map, ChannelConfig, Connection, Connector, TlsConfig, UnaryCall,
    CODES,
};
use crate::grpc::streaming::{StreamParams, Streaming, StreamingCall};
use crate::grpc::{descriptor, fetch, reflection, GrpcError};
use crate::load::schedule::{check_stages, LoadStage, Schedule};
use crate::load::{
    all_percentiles, load_info, ErrorKind, LoadPlan, LoadReport, Outcome, RequestSender, Stop,
};
use crate::model::duration::GoDuration;
use crate::model::limits::{read_capped, MAX_PAYLOAD_BYTES, MAX_PEM_BYTES};
use crate::model::metrics::percentile_suffix;
use crate::model::result::{MetricMeta, MetricType};
use prepare::{check_data_shape, check_url, prepare};
use record::record;
use sender::{threads_for, Call, GrpcSender};

/// Default number of requests (ghz `total`).
pub const DEFAULT_TOTAL: u64 = 200;
/// Default number of concurrent workers (ghz `concurrency`).
pub const DEFAULT_CONCURRENCY: u64 = 50;
/// Default number of HTTP/2 connections (ghz `connections`).
pub const DEFAULT_CONNECTIONS: u64 = 1;
/// Default per-call deadline (ghz `timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default connection timeout (ghz `connect-timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to fetch `protoURL` / `dataURL` / `metadataURL`.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Inputs of the `grpc` task (ghz's names). With `endpoints`, each endpoint is a version;
/// its keys override the top-level ones.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcTask {
    /// Server address, `host:port` (e.g. `hello.default.svc:50051`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The unary method: `package.Service/Method` or `package.Service.Method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// Path of a .proto file describing the service (imports resolved in `importPaths`
    /// and the file's own directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// Inline .proto source describing the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto_text: Option<String>,
    /// URL of a .proto file, fetched by the runner before load starts.
    #[serde(default, rename = "protoURL", skip_serializing_if = "Option::is_none")]
    pub proto_url: Option<String>,
    /// Directories searched for the imports of `proto` / `protoText` / `protoURL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_paths: Vec<String>,
    /// Path of a compiled FileDescriptorSet (`protoc --include_imports -o x.protoset`).
    /// Without proto, protoText, protoURL or protoset, server reflection is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protoset: Option<String>,
    /// Request message as JSON: one object, or an array of objects used round-robin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// URL of the JSON request data, fetched by the runner before load starts.
    #[serde(default, rename = "dataURL", skip_serializing_if = "Option::is_none")]
    pub data_url: Option<String>,
    /// Path of a JSON file of request data (ghz `data-file`; Iter8's chart renders it beside
    /// `dataURL`, which then wins: the runner fetches the URL itself).
    #[serde(
        default,
        rename = "data-file",
        alias = "dataFile",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_file: Option<String>,
    /// Path of a serialized request message (ghz `binary-file`), sent as it is.
    #[serde(
        default,
        rename = "binary-file",
        alias = "binaryFile",
        skip_serializing_if = "Option::is_none"
    )]
    pub binary_file: Option<String>,
    /// URL of a serialized request message (Iter8's `binaryDataURL`), fetched by the runner.
    #[serde(
        default,
        rename = "binaryDataURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub binary_data_url: Option<String>,
    /// Request metadata (gRPC headers). Keys ending in `-bin` are sent as binary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// URL of a JSON object of request metadata, fetched by the runner.
    #[serde(
        default,
        rename = "metadataURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata_url: Option<String>,
    /// Path of a JSON object of request metadata (ghz `metadata-file`; beside
    /// `metadataURL`, the URL wins).
    #[serde(
        default,
        rename = "metadata-file",
        alias = "metadataFile",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata_file: Option<String>,
    /// Iter8's warmup task (`warmup: true`, as Iter8's chart renders it before the measured
    /// task): the load runs and nothing is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<bool>,
    /// ghz `skipFirst`: the first N calls are not counted (our `warmupNumRequests`).
    #[serde(default, rename = "skipFirst", skip_serializing_if = "Option::is_none")]
    pub skip_first: Option<u64>,
    /// Number of requests (default 200); ignored when `duration` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Number of concurrent workers, i.e. requests in flight (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// Number of HTTP/2 connections; workers are spread over them (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// Requests per second over all workers; 0 (default) is as fast as possible. At a fixed
    /// rate, latency is measured from each request's intended send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rps: Option<f64>,
    /// Run for this long instead of a number of requests (e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<GoDuration>,
    /// Load stages, in order, instead of `rps`, `total` and `duration`: each
    /// `{duration, rps}` (or `qps`) holds that rate for `duration`; with `ramp: true` the rate
    /// moves linearly from the previous stage's (0 before the first stage). E.g.
    /// `[{duration: 30s, rps: 500, ramp: true}, {duration: 1m, rps: 500}]`. Each stage has
    /// its own statistics in the result (`insights.load.<prefix>.stages`). An endpoint that
    /// sets `rps`, `total`, `duration` or `stages` does not inherit the top-level stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<LoadStage>>,
    /// Deadline of each call (default `20s`); a call past it counts as DEADLINE_EXCEEDED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Time allowed to establish a connection (default `10s`). `connectTimeout` is accepted
    /// too.
    #[serde(
        default,
        rename = "connect-timeout",
        alias = "connectTimeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<GoDuration>,
    /// Plaintext HTTP/2 (default true, as Iter8). Set false for TLS (rustls, Web PKI roots
    /// plus `cacert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Path of a PEM CA certificate trusted for TLS (implies TLS unless `insecure: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<String>,
    /// Server name verified in the TLS certificate (default: the host's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
    /// Requests sent and discarded before measuring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_num_requests: Option<u64>,
    /// Time spent sending discarded requests before measuring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration: Option<GoDuration>,
    /// Latency percentiles reported besides 50, 75, 90, 95, 99 and 99.9.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percentiles: Vec<f64>,
    /// Streaming methods: pause between two messages a call sends (ghz `stream-interval`,
    /// e.g. `10ms`).
    #[serde(
        default,
        rename = "stream-interval",
        alias = "streamInterval",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_interval: Option<GoDuration>,
    /// Streaming methods: the longest a call sends (client and bidirectional streaming) or
    /// receives (server streaming) before it ends (ghz `stream-call-duration`).
    #[serde(
        default,
        rename = "stream-call-duration",
        alias = "streamCallDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_call_duration: Option<GoDuration>,
    /// Streaming methods: messages a call sends (client and bidirectional streaming: the
    /// `data` array is cycled to this many) or receives before it ends (server streaming)
    /// (ghz `stream-call-count`; default: the whole `data` array once, every reply).
    #[serde(
        default,
        rename = "stream-call-count",
        alias = "streamCallCount",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_call_count: Option<u64>,
    /// ghz's `stream-dynamic-messages` (re-render the data template per message). Accepted
    /// for compatibility; our `data` has no call templates, so every message is the same
    /// either way (a warning says so when it is true).
    #[serde(
        default,
        rename = "stream-dynamic-messages",
        alias = "streamDynamicMessages",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_dynamic_messages: Option<bool>,
    /// Named endpoints of the one version under test, each with its own metrics
    /// `grpc-<name>/...`; their keys override the top-level ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, GrpcTask>,
    /// Ours, not Iter8's: make each endpoint a version (A/B/n, ordered by name) whose
    /// metrics are also recorded under `grpc/...`, so SLOs and rewards on `grpc/...`
    /// compare them. Default false (Iter8: endpoints belong to one version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints_are_versions: Option<bool>,
}

/// Where the service description comes from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    ProtoFile(String),
    ProtoText(String),
    ProtoUrl(String),
    Protoset(String),
    Reflection,
}

/// Where a serialized request message comes from.
#[derive(Clone, Debug, PartialEq)]
enum Binary {
    File(String),
    Url(String),
}

/// A value and the parameter path it came from (for errors).
#[derive(Clone, Debug)]
struct At<T> {
    value: T,
    field: String,
}

/// One endpoint with every parameter resolved (endpoint keys over top-level keys).
#[derive(Clone, Debug)]
struct Target {
    /// Metric prefix: `grpc` or `grpc-<endpoint>`.
    prefix: String,
    host: At<String>,
    call: At<String>,
    service: String,
    method: String,
    source: At<Source>,
    import_paths: Vec<PathBuf>,
    data: At<Option<serde_json::Value>>,
    data_url: Option<At<String>>,
    data_file: Option<At<String>>,
    /// A serialized request message: (file or URL, where).
    binary: Option<At<Binary>>,
    metadata: At<BTreeMap<String, String>>,
    metadata_url: Option<At<String>>,
    metadata_file: Option<At<String>>,
    plan: Plan,
    /// Load stages (instead of `plan`'s rate, total and duration).
    stages: Option<Vec<LoadStage>>,
    warmup: Option<Plan>,
    connections: usize,
    timeout: Duration,
    connect_timeout: Duration,
    tls: Option<(Option<At<String>>, Option<String>)>,
    percentiles: Vec<f64>,
    stream: StreamParams,
    /// Where a stream parameter was set (for the warning on unary methods).
    stream_field: Option<String>,
    stream_dynamic_messages: bool,
}

/// How many requests, for how long, how fast, how many at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Stop after this many requests (None: duration-bound).
    pub total: Option<u64>,
    /// Stop issuing requests after this long.
    pub duration: Option<Duration>,
    /// Requests per second over all workers (None: as fast as possible).
    pub rps: Option<f64>,
    /// Workers (requests in flight).
    pub concurrency: usize,
}

impl GrpcTask {
    /// Whether each endpoint is a version (`endpointsAreVersions: true` with endpoints).
    fn endpoints_as_versions(&self) -> bool {
        self.endpoints_are_versions == Some(true) && !self.endpoints.is_empty()
    }

    /// The metric prefixes this task writes: `grpc` without endpoints, `grpc-<endpoint>`
    /// per endpoint (and `grpc` too when endpoints are versions).
    pub fn metric_prefixes(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.endpoints.is_empty() || self.endpoints_as_versions() {
            p.push("grpc".to_string());
        }
        p.extend(self.endpoints.keys().map(|k| format!("grpc-{k}")));
        p
    }

    /// The version names: the endpoint names when endpoints are versions, else none (one
    /// version).
    pub fn version_names(&self) -> Vec<String> {
        if self.endpoints_as_versions() {
            self.endpoints.keys().cloned().collect()
        } else {
            Vec::new()
        }
    }

    /// Every check that needs no I/O.
    pub fn validate(&self) -> Result<(), TaskError> {
        self.targets().map(|_| ())
    }

    fn targets(&self) -> Result<Vec<Target>, TaskError> {
        if self.endpoints.is_empty() {
            return Ok(vec![self.resolve(None)?]);
        }
        self.endpoints
            .iter()
            .map(|(name, ep)| {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                {
                    return Err(TaskError::invalid(
                        format!("endpoints.{name}"),
                        "endpoint names may use letters, digits, '-', '_' and '.' only (they become metric prefixes grpc-<name>)",
                    ));
                }
                if !ep.endpoints.is_empty() {
                    return Err(TaskError::invalid(
                        format!("endpoints.{name}.endpoints"),
                        "endpoints cannot nest; list every endpoint at the top level",
                    ));
                }
                self.resolve(Some((name, ep)))
            })
            .collect()
    }

    /// Prepare every endpoint (descriptions, data, metadata: all errors surface here,
    /// before any load), then load each endpoint in turn and return what was measured, per
    /// metric prefix (`grpc` or `grpc-<endpoint>`), in version order.
    pub async fn measure(
        &self,
        progress: &Progress,
    ) -> Result<Vec<(String, LoadReport)>, TaskError> {
        let targets = self.targets()?;
        let mut prepared = Vec::with_capacity(targets.len());
        for t in &targets {
            prepared.push(prepare(t).await?);
        }
        let mut reports = Vec::with_capacity(targets.len());
        for (t, sender) in targets.iter().zip(prepared) {
            let plan = t.load_plan();
            let total = if plan.stages.is_empty() {
                t.plan.total.unwrap_or(0)
            } else {
                Schedule::new(&plan.stages).total_tickets()
            };
            progress.start(t.prefix.clone(), total);
            tracing::info!(
                host = t.host.value.as_str(),
                call = t.call.value.as_str(),
                concurrency = t.plan.concurrency,
                connections = t.connections,
                "grpc: load starts"
            );
            let report = crate::dist::run_load(&plan, sender, Some(progress))
                .await
                .map_err(|e| TaskError::Failed(format!("{}: {e}", t.prefix)))?;
            if report.requests > 0 && report.errors == report.requests {
                tracing::warn!(
                    host = t.host.value.as_str(),
                    "grpc: every call failed: {:?}",
                    report.statuses
                );
            }
            for w in crate::load::health::warnings(&report) {
                tracing::warn!(host = t.host.value.as_str(), "{}: {w}", t.prefix);
            }
            reports.push((t.prefix.clone(), report));
        }
        Ok(reports)
    }

    /// Run the load test and record its metrics (endpoints in one version, or each a
    /// version with `endpointsAreVersions`).
    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        let targets = self.targets()?;
        let reports = self.measure(ctx.progress).await?;
        if self.warmup == Some(true) {
            // Iter8's warmup task: load only, nothing recorded.
            let calls: u64 = reports.iter().map(|(_, r)| r.requests).sum();
            tracing::info!(calls, "grpc: warmup done (warmup: true records no metrics)");
            return Ok(());
        }
        ctx.insights.ensure_versions(&self.version_names());
        let as_versions = self.endpoints_as_versions();
        for (i, (t, (_, report))) in targets.iter().zip(reports).enumerate() {
            let version = if as_versions { i } else { 0 };
            record(ctx, version, &t.prefix, t, &report);
            let status = |c: u16| {
                CODES
                    .get(usize::from(c))
                    .map_or_else(|| c.to_string(), |code| code_name(*code).to_string())
            };
            let info = load_info(&report, &t.percentiles, &status);
            ctx.insights.record_load(&t.prefix, info);
            // endpoints as versions: the plain `grpc/...` names too, so SLOs and rewards on
            // `grpc/...` compare the versions (as the http task does)
            if as_versions && t.prefix != "grpc" {
                record(ctx, version, "grpc", t, &report);
            }
        }
        Ok(())
    }
}
