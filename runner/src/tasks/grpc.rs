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

use super::{Progress, TaskContext, TaskError};
use crate::grpc::client::{
    code_name, frame, metadata_map, ChannelConfig, Connection, Connector, TlsConfig, UnaryCall,
    CODES,
};
use crate::grpc::streaming::{StreamParams, Streaming, StreamingCall};
use crate::grpc::{descriptor, fetch, reflection, GrpcError};
use crate::load::{
    all_percentiles, run_load, ErrorKind, LoadPlan, LoadReport, Outcome, RequestSender, Stop,
};
use crate::model::duration::GoDuration;
use crate::model::limits::{read_capped, MAX_PAYLOAD_BYTES, MAX_PEM_BYTES};
use crate::model::metrics::percentile_suffix;
use crate::model::result::{MetricMeta, MetricType};

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

    fn resolve(&self, ep: Option<(&String, &GrpcTask)>) -> Result<Target, TaskError> {
        let ep_prefix = ep
            .map(|(n, _)| format!("endpoints.{n}."))
            .unwrap_or_default();
        // Pick the endpoint's value if it has one, else the top-level one, with its path.
        macro_rules! pick {
            ($field:ident, $name:literal) => {{
                match ep.and_then(|(_, e)| e.$field.clone()) {
                    Some(v) => Some(At {
                        value: v,
                        field: format!("{ep_prefix}{}", $name),
                    }),
                    None => self.$field.clone().map(|v| At {
                        value: v,
                        field: $name.to_string(),
                    }),
                }
            }};
        }
        let prefix = match ep {
            Some((name, _)) => format!("grpc-{name}"),
            None => "grpc".to_string(),
        };
        let host = pick!(host, "host").ok_or_else(|| {
            TaskError::invalid(
                format!("{ep_prefix}host"),
                "missing; set the server address, e.g. 127.0.0.1:50051",
            )
        })?;
        if host.value.trim().is_empty() {
            return Err(TaskError::invalid(
                &host.field,
                "empty; set the server address, e.g. 127.0.0.1:50051",
            ));
        }
        crate::model::limits::check_host_port(&host.value)
            .map_err(|m| TaskError::invalid(&host.field, m))?;
        let call = pick!(call, "call").ok_or_else(|| {
            TaskError::invalid(
                format!("{ep_prefix}call"),
                "missing; set the method to call, e.g. helloworld.Greeter/SayHello",
            )
        })?;
        let (service, method) = descriptor::split_call(&call.value).ok_or_else(|| {
            TaskError::invalid(
                &call.field,
                format!(
                    "{:?} is not a method name; use package.Service/Method, e.g. helloworld.Greeter/SayHello",
                    call.value
                ),
            )
        })?;

        let candidates = [
            pick!(proto, "proto").map(|a| At {
                value: Source::ProtoFile(a.value),
                field: a.field,
            }),
            pick!(proto_text, "protoText").map(|a| At {
                value: Source::ProtoText(a.value),
                field: a.field,
            }),
            pick!(proto_url, "protoURL").map(|a| At {
                value: Source::ProtoUrl(a.value),
                field: a.field,
            }),
            pick!(protoset, "protoset").map(|a| At {
                value: Source::Protoset(a.value),
                field: a.field,
            }),
        ];
        let mut given: Vec<At<Source>> = candidates.into_iter().flatten().collect();
        // Iter8's chart renders `proto: /tmp/ghz.proto` beside `protoURL` (it downloaded the
        // URL there with curl): the URL is the source; the runner fetches it itself.
        if given.iter().any(|g| matches!(g.value, Source::ProtoUrl(_))) {
            given.retain(|g| !matches!(g.value, Source::ProtoFile(_)));
        }
        if given.len() > 1 {
            return Err(TaskError::invalid(
                &given[1].field,
                format!(
                    "give only one of proto, protoText, protoURL and protoset (also set: {})",
                    given[0].field
                ),
            ));
        }
        let source = given.into_iter().next().unwrap_or(At {
            value: Source::Reflection,
            field: format!("{ep_prefix}call"),
        });
        match &source.value {
            Source::ProtoFile(s)
            | Source::ProtoText(s)
            | Source::Protoset(s)
            | Source::ProtoUrl(s)
                if s.trim().is_empty() =>
            {
                return Err(TaskError::invalid(&source.field, "empty"));
            }
            Source::ProtoUrl(u) => check_url(u, &source.field)?,
            _ => {}
        }
        let import_paths = match ep {
            Some((_, e)) if !e.import_paths.is_empty() => e.import_paths.clone(),
            _ => self.import_paths.clone(),
        }
        .into_iter()
        .map(PathBuf::from)
        .collect();

        let data = pick!(data, "data");
        let data_url = pick!(data_url, "dataURL");
        // As Iter8's chart renders them, a file beside its URL is the URL's download: the
        // URL wins.
        let data_file = pick!(data_file, "data-file").filter(|_| data_url.is_none());
        let binary_url = pick!(binary_data_url, "binaryDataURL");
        let binary = match (binary_url, pick!(binary_file, "binary-file")) {
            (Some(u), _) => {
                check_url(&u.value, &u.field)?;
                Some(At {
                    value: Binary::Url(u.value),
                    field: u.field,
                })
            }
            (None, Some(f)) => Some(At {
                value: Binary::File(f.value),
                field: f.field,
            }),
            (None, None) => None,
        };
        let others: Vec<&str> = [
            data_url.as_ref().map(|a| a.field.as_str()),
            data_file.as_ref().map(|a| a.field.as_str()),
            binary.as_ref().map(|a| a.field.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if others.len() > 1 {
            return Err(TaskError::invalid(
                others[1],
                format!("give one request source; also set: {}", others[0]),
            ));
        }
        if let (Some(d), Some(other)) = (&data, others.first()) {
            if data_url.is_none() {
                return Err(TaskError::invalid(
                    *other,
                    format!("give either {} or {other}, not both", d.field),
                ));
            }
        }
        if let (Some(d), Some(u)) = (&data, &data_url) {
            return Err(TaskError::invalid(
                &u.field,
                format!("give either {} or {}, not both", d.field, u.field),
            ));
        }
        if let Some(u) = &data_url {
            check_url(&u.value, &u.field)?;
        }
        let data = data.unwrap_or(At {
            value: serde_json::Value::Null,
            field: format!("{ep_prefix}data"),
        });
        check_data_shape(&data.value, &data.field)?;
        let data = At {
            value: Some(data.value),
            field: data.field,
        };

        let metadata = pick!(metadata, "metadata").unwrap_or(At {
            value: BTreeMap::new(),
            field: format!("{ep_prefix}metadata"),
        });
        metadata_map(&metadata.value)
            .map_err(|(k, m)| TaskError::invalid(format!("{}.{k}", metadata.field), m))?;
        let metadata_url = pick!(metadata_url, "metadataURL");
        if let Some(u) = &metadata_url {
            check_url(&u.value, &u.field)?;
        }
        let metadata_file =
            pick!(metadata_file, "metadata-file").filter(|_| metadata_url.is_none());

        let total = pick!(total, "total");
        let concurrency = pick!(concurrency, "concurrency");
        let connections = pick!(connections, "connections");
        let rps = pick!(rps, "rps");
        let duration = pick!(duration, "duration");
        if let Some(t) = &total {
            if t.value == 0 {
                return Err(TaskError::invalid(&t.field, "must be at least 1"));
            }
        }
        let concurrency_v = concurrency
            .as_ref()
            .map(|c| c.value)
            .unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency_v == 0 || concurrency_v > 100_000 {
            return Err(TaskError::invalid(
                concurrency.map(|c| c.field).unwrap_or_default(),
                "must be between 1 and 100000",
            ));
        }
        let connections_v = connections
            .as_ref()
            .map(|c| c.value)
            .unwrap_or(DEFAULT_CONNECTIONS);
        if connections_v == 0 || connections_v > concurrency_v {
            return Err(TaskError::invalid(
                connections.map(|c| c.field).unwrap_or_else(|| format!("{ep_prefix}connections")),
                format!(
                    "must be between 1 and concurrency ({concurrency_v}); each connection needs a worker"
                ),
            ));
        }
        let rps_v = match rps {
            Some(r) if !r.value.is_finite() || r.value < 0.0 => {
                return Err(TaskError::invalid(
                    &r.field,
                    "must be 0 (as fast as possible) or a positive number of requests per second",
                ))
            }
            Some(r) if r.value > 0.0 => {
                crate::model::limits::check_qps(r.value)
                    .map_err(|m| TaskError::invalid(&r.field, m))?;
                Some(r.value)
            }
            _ => None,
        };
        let duration_v = match duration {
            Some(d) if d.value.0.is_zero() => {
                return Err(TaskError::invalid(
                    &d.field,
                    "must be longer than 0, e.g. 30s",
                ))
            }
            Some(d) => Some(d.value.0),
            None => None,
        };
        let plan = Plan {
            total: if duration_v.is_some() {
                None
            } else {
                Some(total.map(|t| t.value).unwrap_or(DEFAULT_TOTAL))
            },
            duration: duration_v,
            rps: rps_v,
            concurrency: concurrency_v as usize,
        };
        let warmup_n = pick!(warmup_num_requests, "warmupNumRequests")
            .or_else(|| pick!(skip_first, "skipFirst"));
        let warmup_d = pick!(warmup_duration, "warmupDuration");
        if let (Some(_), Some(d)) = (&warmup_n, &warmup_d) {
            return Err(TaskError::invalid(
                &d.field,
                "give either warmupNumRequests or warmupDuration, not both",
            ));
        }
        let warmup = match (warmup_n, warmup_d) {
            (Some(n), _) if n.value > 0 => Some(Plan {
                total: Some(n.value),
                duration: None,
                ..plan
            }),
            (_, Some(d)) if !d.value.0.is_zero() => Some(Plan {
                total: None,
                duration: Some(d.value.0),
                ..plan
            }),
            _ => None,
        };
        let timeout = pick!(timeout, "timeout");
        if let Some(t) = &timeout {
            if t.value.0.is_zero() {
                return Err(TaskError::invalid(
                    &t.field,
                    "must be longer than 0, e.g. 20s",
                ));
            }
        }
        let connect_timeout = pick!(connect_timeout, "connect-timeout");
        if let Some(t) = &connect_timeout {
            if t.value.0.is_zero() {
                return Err(TaskError::invalid(
                    &t.field,
                    "must be longer than 0, e.g. 10s",
                ));
            }
        }
        let cacert = pick!(cacert, "cacert");
        let cname = pick!(cname, "cname").map(|c| c.value);
        let insecure = pick!(insecure, "insecure").map(|i| i.value);
        let tls = match insecure {
            Some(true) => None,
            Some(false) => Some((cacert, cname)),
            None if cacert.is_some() => Some((cacert, cname)),
            None => None,
        };
        let extra = match ep {
            Some((_, e)) if !e.percentiles.is_empty() => &e.percentiles,
            _ => &self.percentiles,
        };
        for p in extra {
            if !(p.is_finite() && *p > 0.0 && *p <= 100.0) {
                return Err(TaskError::invalid(
                    format!("{ep_prefix}percentiles"),
                    format!("{p} is not a percentile; use numbers in (0, 100], e.g. 99.99"),
                ));
            }
        }
        let percentiles = all_percentiles(extra);
        let stream_interval = pick!(stream_interval, "stream-interval");
        let stream_call_duration = pick!(stream_call_duration, "stream-call-duration");
        let stream_call_count = pick!(stream_call_count, "stream-call-count");
        if let Some(d) = &stream_call_duration {
            if d.value.0.is_zero() {
                return Err(TaskError::invalid(
                    &d.field,
                    "must be longer than 0, e.g. 500ms (leave it out for no limit)",
                ));
            }
        }
        let stream_field = stream_interval
            .as_ref()
            .map(|a| a.field.clone())
            .or_else(|| stream_call_duration.as_ref().map(|a| a.field.clone()))
            .or_else(|| stream_call_count.as_ref().map(|a| a.field.clone()));
        let stream = StreamParams {
            interval: stream_interval.map(|a| a.value.0),
            call_count: stream_call_count.map(|a| a.value).filter(|c| *c > 0),
            call_duration: stream_call_duration.map(|a| a.value.0),
        };
        let stream_dynamic_messages =
            pick!(stream_dynamic_messages, "stream-dynamic-messages").is_some_and(|a| a.value);
        Ok(Target {
            prefix,
            host,
            call,
            service,
            method,
            source,
            import_paths,
            data,
            data_url,
            data_file,
            binary,
            metadata,
            metadata_url,
            metadata_file,
            plan,
            warmup,
            connections: connections_v as usize,
            timeout: timeout.map(|t| t.value.0).unwrap_or(DEFAULT_TIMEOUT),
            connect_timeout: connect_timeout
                .map(|t| t.value.0)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            tls,
            percentiles,
            stream,
            stream_field,
            stream_dynamic_messages,
        })
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
            progress.start(t.prefix.clone(), t.plan.total.unwrap_or(0));
            tracing::info!(
                host = t.host.value.as_str(),
                call = t.call.value.as_str(),
                concurrency = t.plan.concurrency,
                connections = t.connections,
                "grpc: load starts"
            );
            let report = run_load(&t.load_plan(), sender, Some(progress))
                .await
                .map_err(|e| TaskError::Failed(format!("{}: {e}", t.prefix)))?;
            if report.requests > 0 && report.errors == report.requests {
                tracing::warn!(
                    host = t.host.value.as_str(),
                    "grpc: every call failed: {:?}",
                    report.statuses
                );
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
            // endpoints as versions: the plain `grpc/...` names too, so SLOs and rewards on
            // `grpc/...` compare the versions (as the http task does)
            if as_versions && t.prefix != "grpc" {
                record(ctx, version, "grpc", t, &report);
            }
        }
        Ok(())
    }
}

fn check_url(url: &str, field: &str) -> Result<(), TaskError> {
    let ok = url
        .parse::<http::Uri>()
        .ok()
        .map(|u| matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(TaskError::invalid(
            field,
            format!("{url:?} is not an http(s) URL, e.g. https://example.com/hello.proto"),
        ))
    }
}

fn check_data_shape(data: &serde_json::Value, field: &str) -> Result<(), TaskError> {
    use serde_json::Value;
    match data {
        Value::Null | Value::Object(_) => Ok(()),
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    return Err(TaskError::invalid(
                        format!("{field}[{i}]"),
                        "must be a JSON object (one request message)",
                    ));
                }
            }
            Ok(())
        }
        Value::Array(_) => Err(TaskError::invalid(
            field,
            "empty array; give one object or a non-empty array of objects",
        )),
        _ => Err(TaskError::invalid(
            field,
            "must be a JSON object (one request message) or an array of objects (used round-robin)",
        )),
    }
}

fn invalid(field: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::invalid(field, e.to_string())
}

async fn prepare(t: &Target) -> Result<GrpcSender, TaskError> {
    // Metadata (also used by reflection).
    let mut metadata_pairs = t.metadata.value.clone();
    if let Some(u) = &t.metadata_url {
        let body = fetch::fetch(&u.value, FETCH_TIMEOUT)
            .await
            .map_err(|e| invalid(&u.field, e))?;
        let fetched: BTreeMap<String, String> = serde_json::from_slice(&body).map_err(|e| {
            invalid(
                &u.field,
                format!("the document is not a JSON object of string values: {e}"),
            )
        })?;
        metadata_pairs.extend(fetched);
    }
    if let Some(f) = &t.metadata_file {
        let body = read_capped(Path::new(&f.value), MAX_PAYLOAD_BYTES)
            .map_err(|e| invalid(&f.field, format!("cannot read {}: {e}", f.value)))?;
        let read: BTreeMap<String, String> = serde_json::from_slice(&body).map_err(|e| {
            invalid(
                &f.field,
                format!("{} is not a JSON object of string values: {e}", f.value),
            )
        })?;
        metadata_pairs.extend(read);
    }
    let metadata: MetadataMap = metadata_map(&metadata_pairs)
        .map_err(|(k, m)| TaskError::invalid(format!("{}.{k}", t.metadata.field), m))?;

    let tls = match &t.tls {
        None => None,
        Some((cacert, cname)) => {
            let ca_pem = match cacert {
                Some(c) => Some(
                    read_capped(Path::new(&c.value), MAX_PEM_BYTES)
                        .map_err(|e| invalid(&c.field, format!("cannot read {}: {e}", c.value)))?,
                ),
                None => None,
            };
            Some(TlsConfig {
                ca_pem,
                server_name: cname.clone(),
            })
        }
    };
    let channel_config = ChannelConfig {
        host: t.host.value.clone(),
        tls,
        connect_timeout: t.connect_timeout,
    };

    let pool: DescriptorPool = match &t.source.value {
        Source::ProtoFile(path) => {
            descriptor::compile_proto_file(std::path::Path::new(path), &t.import_paths)
                .map_err(|e| invalid(&t.source.field, e))?
        }
        Source::ProtoText(text) => descriptor::compile_proto_text(text, &t.import_paths)
            .map_err(|e| invalid(&t.source.field, e))?,
        Source::ProtoUrl(url) => {
            let body = fetch::fetch(url, FETCH_TIMEOUT)
                .await
                .map_err(|e| invalid(&t.source.field, e))?;
            let text = String::from_utf8(body.to_vec()).map_err(|_| {
                invalid(
                    &t.source.field,
                    format!("{url}: the document is not UTF-8 text"),
                )
            })?;
            descriptor::compile_proto_text(&text, &t.import_paths)
                .map_err(|e| invalid(&t.source.field, e))?
        }
        Source::Protoset(path) => {
            let bytes = read_capped(Path::new(path), MAX_PAYLOAD_BYTES)
                .map_err(|e| invalid(&t.source.field, format!("cannot read {path}: {e}")))?;
            descriptor::decode_protoset(&bytes, path).map_err(|e| invalid(&t.source.field, e))?
        }
        Source::Reflection => {
            let channel = channel_config.connect().await.map_err(|e| {
                TaskError::Failed(format!(
                    "{}: {e} (needed to ask the server for its service description by reflection; or give proto, protoText or protoset)",
                    t.host.field
                ))
            })?;
            reflection::describe_service(
                &channel,
                &t.service,
                &metadata,
                t.connect_timeout.max(t.timeout),
            )
            .await
            .map_err(|e| match e {
                GrpcError::Method(m) => TaskError::invalid(&t.call.field, m),
                other => TaskError::Failed(format!("{}: {other}", t.host.value)),
            })?
        }
    };
    let method =
        descriptor::find_method(&pool, &t.call.value).map_err(|e| invalid(&t.call.field, e))?;

    let data_value = match &t.data_file {
        Some(f) => {
            let body = read_capped(Path::new(&f.value), MAX_PAYLOAD_BYTES)
                .map_err(|e| invalid(&f.field, format!("cannot read {}: {e}", f.value)))?;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| invalid(&f.field, format!("{} is not JSON: {e}", f.value)))?;
            check_data_shape(&v, &f.field)?;
            Some(At {
                value: Some(v),
                field: f.field.clone(),
            })
        }
        None => None,
    };
    let data_value = match (&t.data_url, data_value) {
        (_, Some(from_file)) => from_file,
        (data_url, None) => match data_url {
            Some(u) => {
                let body = fetch::fetch(&u.value, FETCH_TIMEOUT)
                    .await
                    .map_err(|e| invalid(&u.field, e))?;
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| invalid(&u.field, format!("the document is not JSON: {e}")))?;
                check_data_shape(&v, &u.field)?;
                At {
                    value: Some(v),
                    field: u.field.clone(),
                }
            }
            None => t.data.clone(),
        },
    };
    let requests = match &t.binary {
        // A serialized message, sent as it is (checked against the request type).
        Some(b) => {
            let bytes = match &b.value {
                Binary::File(path) => read_capped(Path::new(path), MAX_PAYLOAD_BYTES)
                    .map(bytes::Bytes::from)
                    .map_err(|e| invalid(&b.field, format!("cannot read {path}: {e}")))?,
                Binary::Url(url) => fetch::fetch(url, FETCH_TIMEOUT)
                    .await
                    .map_err(|e| invalid(&b.field, e))?,
            };
            prost_reflect::DynamicMessage::decode(method.input(), bytes.clone()).map_err(|e| {
                invalid(
                    &b.field,
                    format!(
                        "not a serialized {} message: {e}",
                        method.input().full_name()
                    ),
                )
            })?;
            vec![bytes]
        }
        None => descriptor::encode_data(
            data_value.value.as_ref(),
            &method.input(),
            &data_value.field,
        )
        .map_err(|e| match e {
            GrpcError::Data { path, message } => TaskError::invalid(path, message),
            other => invalid(&data_value.field, other),
        })?,
    };

    // Check the address and TLS settings now (connections open in the load).
    let connector = channel_config.connector().map_err(|e| {
        let field = match &t.tls {
            Some((Some(ca), _)) if e.to_string().starts_with("TLS") => &ca.field,
            _ => &t.host.field,
        };
        invalid(field, e)
    })?;
    let unary = UnaryCall::new(
        &connector,
        &t.service,
        &t.method,
        method.output(),
        metadata,
        t.timeout,
    )
    .map_err(|e| invalid(&t.call.field, e))?;
    let call = match Streaming::of(&method) {
        None => {
            if let Some(f) = &t.stream_field {
                tracing::warn!(
                    call = t.call.value.as_str(),
                    "grpc: {f} has no effect: the method is unary"
                );
            }
            Call::Unary(unary)
        }
        Some(kind) => {
            tracing::info!(
                call = t.call.value.as_str(),
                "grpc: {kind:?} streaming method; every stream counts as one call"
            );
            if t.stream_dynamic_messages {
                tracing::warn!(
                    "grpc: stream-dynamic-messages has no effect: data has no call templates, so every message of a stream is as given"
                );
            }
            Call::Streaming(StreamingCall::new(unary, kind, t.stream))
        }
    };
    Ok(GrpcSender {
        call,
        requests: requests.iter().map(|r| frame(r)).collect(),
        next: AtomicU64::new(0),
        connector,
        connections: (0..t.connections)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect(),
        generation: AtomicU64::new(0),
    })
}

/// The gRPC client the load engine drives: every worker sends the prepared requests
/// round-robin on one of the shared HTTP/2 connections.
/// How one call is made.
enum Call {
    Unary(UnaryCall),
    Streaming(StreamingCall),
}

struct GrpcSender {
    call: Call,
    /// The requests, gRPC-framed.
    requests: Vec<Bytes>,
    /// Round-robin position in `requests`.
    next: AtomicU64,
    connector: Connector,
    /// The live connection of each connection slot, with its generation number; worker `w`
    /// uses slot `w % connections`. Opened by the slot's first call (the others wait for
    /// it) on that worker's thread, whose runtime then drives it (the plan puts every
    /// worker of a connection on the same thread); emptied when a call finds it broken, so
    /// the next call reconnects.
    connections: Vec<tokio::sync::Mutex<Option<(u64, Connection)>>>,
    generation: AtomicU64,
}

/// One worker: its connection slot and its handle on the slot's connection.
struct GrpcConn {
    worker: usize,
    conn: Option<(u64, Connection)>,
}

const UNAVAILABLE: Outcome = Outcome::Response {
    status: Code::Unavailable as u16,
    error: true,
};

impl RequestSender for GrpcSender {
    type Conn = GrpcConn;

    fn new_conn(&self, worker: usize) -> GrpcConn {
        GrpcConn { worker, conn: None }
    }

    async fn send(&self, w: &mut GrpcConn) -> Outcome {
        let slot = &self.connections[w.worker % self.connections.len()];
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let body = &self.requests[i % self.requests.len()];
        // A request the server did not process (e.g. the connection was going away) is
        // retried once, on a new connection if the old one is unusable.
        let mut attempts = 0;
        loop {
            attempts += 1;
            if w.conn.is_none() {
                let mut live = slot.lock().await;
                if live.is_none() {
                    match self.connector.connect().await {
                        Ok(c) => {
                            *live = Some((self.generation.fetch_add(1, Ordering::Relaxed), c));
                        }
                        Err(e) => {
                            tracing::debug!("grpc: {e}");
                            return UNAVAILABLE;
                        }
                    }
                }
                w.conn = live.clone();
            }
            let Some((generation, conn)) = w.conn.as_mut() else {
                return UNAVAILABLE;
            };
            let out = match &self.call {
                Call::Unary(c) => c.call(conn, body).await,
                Call::Streaming(c) => c.call(conn, &self.requests, i).await,
            };
            if out.broken {
                let generation = *generation;
                w.conn = None;
                let mut live = slot.lock().await;
                if live.as_ref().is_some_and(|(g, _)| *g == generation) {
                    *live = None;
                }
            }
            if out.unprocessed && attempts < 2 {
                continue;
            }
            return Outcome::Response {
                status: out.code as u16,
                error: out.code != Code::Ok,
            };
        }
    }
}

/// OS threads for `connections` HTTP/2 connections: the largest divisor of `connections`
/// not above the CPUs available, so that all workers of a connection (worker `w` runs on
/// thread `w % threads` and uses connection `w % connections`) share its thread.
fn threads_for(connections: usize) -> usize {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (1..=cpus.min(connections).max(1))
        .rev()
        .find(|t| connections % t == 0)
        .unwrap_or(1)
}

impl Target {
    fn load_plan(&self) -> LoadPlan {
        let stop = |p: &Plan| match (p.total, p.duration) {
            (_, Some(d)) => Stop::duration(d),
            (Some(n), None) => Stop::count(n),
            (None, None) => Stop::count(DEFAULT_TOTAL),
        };
        LoadPlan {
            qps: self.plan.rps.unwrap_or(0.0),
            stop: stop(&self.plan),
            connections: self.plan.concurrency,
            warmup: self.warmup.as_ref().map(stop),
            // The engine enforces the deadline (a call past it is dropped: the stream is
            // reset, counted as DEADLINE_EXCEEDED); the server learns it from grpc-timeout.
            timeout: self.timeout,
            threads: threads_for(self.connections),
        }
    }
}

fn record(ctx: &mut TaskContext<'_>, version: usize, p: &str, t: &Target, r: &LoadReport) {
    let ins = &mut *ctx.insights;
    let mut put =
        |name: &str, kind: MetricType, desc: &str, units: Option<&str>, value: Option<f64>| {
            let full = format!("{p}/{name}");
            ins.register_metric(&full, MetricMeta::new(kind, desc, units));
            match value {
                Some(v) => ins.record(version, &full, v),
                None => ins.mark_unavailable(version, &full, "no calls were made"),
            }
        };
    put(
        "request-count",
        MetricType::Counter,
        "number of gRPC calls",
        None,
        Some(r.requests as f64),
    );
    put(
        "error-count",
        MetricType::Counter,
        "number of calls whose status was not OK",
        None,
        Some(r.errors as f64),
    );
    put(
        "error-rate",
        MetricType::Gauge,
        "fraction of calls whose status was not OK",
        None,
        Some(r.error_rate()),
    );
    let l = &r.latency;
    let ms = Some("msec");
    put(
        "latency-mean",
        MetricType::Gauge,
        "mean call latency",
        ms,
        l.mean_ms(),
    );
    put(
        "latency-stddev",
        MetricType::Gauge,
        "standard deviation of call latency",
        ms,
        l.stddev_ms(),
    );
    put(
        "latency-min",
        MetricType::Gauge,
        "minimum call latency",
        ms,
        l.min_ms(),
    );
    put(
        "latency-max",
        MetricType::Gauge,
        "maximum call latency",
        ms,
        l.max_ms(),
    );
    for q in &t.percentiles {
        let suffix = percentile_suffix(*q);
        put(
            &format!("latency-{suffix}"),
            MetricType::Gauge,
            &format!("{} percentile of call latency", &suffix[1..]),
            ms,
            l.percentile_ms(*q),
        );
    }
    // Calls by grpc-status; the engine's own backstop timeout is a DEADLINE_EXCEEDED,
    // any other call without a status an UNAVAILABLE.
    let mut codes = [0u64; 17];
    for (status, n) in &r.statuses {
        if let Some(c) = codes.get_mut(usize::from(*status)) {
            *c += n;
        }
    }
    for (kind, n) in &r.error_kinds {
        let code = match kind {
            ErrorKind::Timeout => Code::DeadlineExceeded,
            _ => Code::Unavailable,
        };
        codes[code as usize] += n;
    }
    for (i, n) in codes.iter().enumerate() {
        if *n > 0 || i == 0 {
            let name = code_name(CODES[i]);
            put(
                &format!("status-{name}"),
                MetricType::Counter,
                &format!("number of calls that ended with grpc-status {name}"),
                None,
                Some(*n as f64),
            );
        }
    }
    let hist_name = format!("{p}/latency");
    ins.register_metric(
        &hist_name,
        MetricMeta::new(MetricType::Histogram, "call latency", ms),
    );
    if l.count() > 0 {
        ins.record_histogram(version, &hist_name, &l.to_model());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(yaml: &str) -> GrpcTask {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn err(yaml: &str) -> String {
        task(yaml).validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_names() {
        let t = task("host: 127.0.0.1:1\ncall: helloworld.Greeter.SayHello\nconnectTimeout: 3s\n");
        let targets = t.targets().unwrap();
        assert_eq!(targets.len(), 1);
        let tg = &targets[0];
        assert_eq!(tg.plan.total, Some(200));
        assert_eq!(tg.plan.concurrency, 50);
        assert_eq!(tg.connections, 1);
        assert_eq!(tg.plan.rps, None);
        assert_eq!(tg.timeout, Duration::from_secs(20));
        assert_eq!(tg.connect_timeout, Duration::from_secs(3));
        assert_eq!(tg.source.value, Source::Reflection);
        assert_eq!(tg.service, "helloworld.Greeter");
        assert_eq!(tg.method, "SayHello");
        assert!(tg.tls.is_none());
        assert_eq!(t.metric_prefixes(), vec!["grpc"]);
        let t =
            task("host: h:1\ncall: a.S/M\nconnect-timeout: 1s\nduration: 2s\ntotal: 5\nrps: 0\n");
        let tg = &t.targets().unwrap()[0];
        assert_eq!(tg.connect_timeout, Duration::from_secs(1));
        assert_eq!(tg.plan.total, None, "duration wins over total, as in ghz");
        assert_eq!(tg.plan.duration, Some(Duration::from_secs(2)));
    }

    #[test]
    fn endpoints_override_the_top_level_keys() {
        let t = task(
            "host: h:1\ncall: a.S/M\ntotal: 10\ndata: {name: top}\nendpoints:\n  v1: {}\n  v2: {host: other:2, total: 3, data: {name: v2}}\n",
        );
        let tg = t.targets().unwrap();
        assert_eq!(t.metric_prefixes(), vec!["grpc-v1", "grpc-v2"]);
        assert!(t.version_names().is_empty());
        assert_eq!(tg[0].host.value, "h:1");
        assert_eq!(tg[0].plan.total, Some(10));
        assert_eq!(tg[0].data.field, "data");
        assert_eq!(tg[1].host.value, "other:2");
        assert_eq!(tg[1].plan.total, Some(3));
        assert_eq!(tg[1].data.field, "endpoints.v2.data");
        assert_eq!(tg[1].prefix, "grpc-v2");
    }

    #[test]
    fn bad_input_names_the_field() {
        assert!(err("call: a.S/M").starts_with("host: missing"));
        assert!(err("host: h:1").starts_with("call: missing"));
        assert!(
            err("host: h:1\ncall: SayHello").starts_with("call: \"SayHello\" is not a method name")
        );
        assert!(err("host: h:1\ncall: a.S/M\nproto: x.proto\nprotoset: y")
            .starts_with("protoset: give only one"));
        assert!(err("host: h:1\ncall: a.S/M\ndata: 3").starts_with("data: must be a JSON object"));
        assert!(err("host: h:1\ncall: a.S/M\ndata: [{a: 1}, 2]")
            .starts_with("data[1]: must be a JSON object"));
        assert!(
            err("host: h:1\ncall: a.S/M\nconcurrency: 2\nconnections: 3")
                .starts_with("connections: must be between 1 and concurrency (2)")
        );
        assert!(err("host: h:1\ncall: a.S/M\nrps: -1").starts_with("rps: must be 0"));
        assert!(err("host: h:1\ncall: a.S/M\ntotal: 0").starts_with("total: must be at least 1"));
        assert!(err("host: h:1\ncall: a.S/M\nprotoURL: file:///etc/x").starts_with("protoURL: "));
        assert!(err("host: h:1\ncall: a.S/M\nmetadata: {\"bad key\": x}")
            .starts_with("metadata.bad key: invalid metadata key"));
        assert!(
            err("call: a.S/M\nendpoints:\n  v1: {}\n").starts_with("endpoints.v1.host: missing")
        );
        assert!(err("host: h\ncall: a.S/M\nendpoints:\n  v1: {call: x}\n")
            .starts_with("endpoints.v1.call: \"x\" is not"));
        assert!(
            err("host: h\ncall: a.S/M\nwarmupNumRequests: 1\nwarmupDuration: 1s")
                .starts_with("warmupDuration: give either")
        );
        assert!(serde_yaml::from_str::<GrpcTask>("host: h\nnumRequests: 3").is_err());
    }

    #[test]
    fn load_plan_follows_ghz_semantics() {
        let t = task("host: h:1\ncall: a.S/M\ntotal: 7\nconcurrency: 8\nconnections: 4\nrps: 50\nwarmupNumRequests: 3\ntimeout: 2s\n");
        let tg = &t.targets().unwrap()[0];
        let plan = tg.load_plan();
        assert_eq!(plan.stop, Stop::count(7));
        assert_eq!(
            plan.connections, 8,
            "the engine's workers are ghz's concurrency"
        );
        assert_eq!(plan.qps, 50.0);
        assert_eq!(plan.warmup, Some(Stop::count(3)));
        assert_eq!(plan.timeout, Duration::from_secs(2));
        assert_eq!(4 % plan.threads, 0, "a connection's workers share a thread");
        let t = task("host: h:1\ncall: a.S/M\nduration: 5s\nwarmupDuration: 1s\n");
        let plan = t.targets().unwrap()[0].load_plan();
        assert_eq!(plan.stop, Stop::duration(Duration::from_secs(5)));
        assert_eq!(plan.warmup, Some(Stop::duration(Duration::from_secs(1))));
        assert_eq!(plan.qps, 0.0);
        assert_eq!(plan.threads, 1);
        assert_eq!(threads_for(1), 1);
        assert!(threads_for(7) == 1 || threads_for(7) == 7);
    }
}
