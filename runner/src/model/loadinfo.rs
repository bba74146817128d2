//! What a load test reports beyond its metrics: per-stage statistics and whether the load
//! generator kept up (`insights.load.<source>`, where the source is the metric prefix:
//! `http`, `http-<endpoint>`, `grpc`, `grpc-<endpoint>`). Replaced by each loop.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::result::Histogram;

/// One load source's details.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LoadInfo {
    /// Per stage, in order (absent without `stages`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageInfo>,
    /// The load generator during the measured phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorInfo>,
    /// What the user should know: the generator was throttled, saturated or fell behind its
    /// schedule (so latencies include its own delays).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One stage of a staged load.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StageInfo {
    /// Planned length in seconds.
    pub duration_seconds: f64,
    /// Planned rate at the start and at the end of the stage (equal unless it ramps).
    pub from_qps: f64,
    pub to_qps: f64,
    /// Requests the schedule put in the stage.
    pub planned_requests: u64,
    /// Requests sent (each belongs to the stage its due time fell in).
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// From the stage's start to its planned end or its last completion, whichever is
    /// later.
    pub elapsed_seconds: f64,
    /// Achieved requests per second: `requests / elapsedSeconds`.
    pub rate: f64,
    /// Latency percentiles in ms (`p50`, `p99.9`, ...), mean, min and max.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, f64>,
    /// The stage's latency histogram (ms), mergeable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    /// Responses by status code (HTTP status, or gRPC code number).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, u64>,
    /// Requests without a response, by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_kinds: BTreeMap<String, u64>,
    /// 99th percentile of how late requests were sent against the schedule, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_p99_ms: Option<f64>,
}

/// The load generator during the measured phase.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorInfo {
    /// CPU time the runner used (every thread), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// CPU time per request, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_request_us: Option<f64>,
    /// CPUs used on average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_used: Option<f64>,
    /// The cgroup's CPU limit in cores (absent: none or unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<f64>,
    /// CPU quota periods of the cgroup during the run, and how many of them were throttled
    /// (absent: no cgroup CPU controller found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_periods: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_periods: Option<u64>,
    /// Time the cgroup was stopped by its quota, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_seconds: Option<f64>,
    /// Fixed rate: requests whose send time was measured against the schedule, and of them
    /// how many were sent 10 ms or more late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_requests: Option<u64>,
    /// Schedule lag percentiles and maximum, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_max_ms: Option<f64>,
}

impl GeneratorInfo {
    /// Throttled periods over periods.
    pub fn throttled_share(&self) -> Option<f64> {
        match (self.cpu_periods, self.throttled_periods) {
            (Some(p), Some(t)) if p > 0 => Some(t as f64 / p as f64),
            _ => None,
        }
    }
}
