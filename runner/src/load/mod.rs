//! The load engine: a protocol-agnostic pacer shared by the `http` and `grpc` tasks
//! (fortio-style), with constant-memory latency statistics.
//!
//! # How a protocol plugs in
//! Implement [`RequestSender`] for the protocol's client and call [`run_load`]:
//!
//! ```ignore
//! struct MySender { /* immutable request template, shared by every worker */ }
//! struct MyConn { /* one worker's connection, created lazily inside `send` */ }
//!
//! impl RequestSender for MySender {
//!     type Conn = MyConn;
//!     fn new_conn(&self, worker: usize) -> MyConn { MyConn::default() }
//!     async fn send(&self, conn: &mut MyConn) -> Outcome {
//!         // (re)connect if needed, send ONE request, read the whole response
//!         Outcome::Response { status: 200, error: false }
//!     }
//! }
//! let report = run_load(&plan, MySender { .. }, Some(ctx.progress)).await?;
//! ```
//!
//! - The engine measures latency itself (from before `send` is called to after it returns)
//!   and enforces the per-request [`LoadPlan::timeout`] by dropping the `send` future; a
//!   sender must therefore cope with a request abandoned half way (e.g. drop a connection
//!   that was in flight when the next `send` starts).
//! - Connection failures are not `Err`s: `send` reports them as [`Outcome::Failed`] with an
//!   [`ErrorKind`]; they are counted like every other request (per-request failures of a
//!   load test are data).
//! - `send` futures need not be `Send`: each worker thread runs a current-thread Tokio
//!   runtime and drives its workers in one task. Anything `send` spawns with
//!   `tokio::spawn` (e.g. a hyper connection driver) lives on that thread's runtime and
//!   is dropped when the run ends.
//!
//! # Pacing
//! - `connections` workers each hold one connection and have at most one request in flight.
//! - Requests are numbered by one shared ticket counter, so with `num_requests = N` exactly
//!   N requests are sent in total, whichever worker sends them.
//! - Fixed rate (`qps > 0`): ticket `k` is due at `start + k / qps`; a free worker takes the
//!   next ticket and waits until it is due. When every worker was busy at a ticket's due
//!   time, its latency is measured from the due (intended) time, not from the late send:
//!   no coordinated omission. (When the worker was idle, latency starts at the actual send,
//!   so timer granularity of the client does not count as server latency.) In duration
//!   mode exactly the tickets due before `start + duration` are sent.
//! - Max rate (`qps <= 0`, or not finite): each worker sends its next request as soon as
//!   the previous one completed.
//! - Count and duration: the phase ends at whichever comes first (at least one is set).
//!   A request in flight at the deadline is completed and counted.
//! - Stages (fixed rate only): the measured phase follows a schedule of stages, each a
//!   constant rate or a linear ramp for a duration ([`schedule`]); a request belongs to the
//!   stage its due time falls in, and each stage has its own statistics
//!   ([`LoadReport::stages`]).
//! - Lag: at a fixed rate, how long after its due time each request was sent (timer
//!   resolution included) is recorded ([`LoadReport::lag`]); with the runner's CPU time and
//!   its cgroup's throttling over the measured phase ([`health`]) it says whether the load
//!   generator kept up.
//! - Warmup: an optional first phase on the same connections and pace whose results are
//!   discarded. The measured phase starts when every worker finished the warmup.
//! - Threads: workers are spread over `threads` OS threads (default: as many as the CPUs
//!   this process may run on, at most `connections`), each a current-thread runtime, so
//!   the hot path has no locks; the only shared state is the ticket counter and the
//!   progress counters (relaxed atomics).
//!
//! # Statistics (memory constant in the number of requests)
//! Per worker thread and phase: one `hdrhistogram::Histogram<u64>` of latencies in
//! microseconds (3 significant digits, for percentiles), a fixed log-linear bucket grid
//! (for the mergeable [`crate::model::Histogram`], see [`grid_bounds_ms`]), exact moments
//! (count, sum and sum of squares in integer nanoseconds, min, max), counts by status
//! code and by [`ErrorKind`]. Threads' statistics are merged at the end into a
//! [`LoadReport`]. Latency is measured on exchanges that got a response, and on timeouts
//! (at the timeout: the server was at least that slow); a request that got no response for
//! any other reason (connection refused or reset, TLS) is an error only, never a latency
//! sample, so a run against nothing has no latency (and passes no latency SLO) instead of
//! a fast one.

mod engine;
pub mod health;
pub mod partial;
mod report;
pub mod schedule;
pub mod split;
mod stats;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use engine::run_load;
pub use health::GeneratorReport;
pub use report::{
    all_percentiles, load_info, record_metrics, LoadReport, StageReport, DEFAULT_PERCENTILES,
};
pub use schedule::{LoadStage, Schedule, MAX_STAGES};
use stats::GRID_LEN;
pub use stats::{grid_bounds_ms, grid_index, LagStats, LatencyStats, LATE_AFTER};

/// Why a request got no response.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// The connection was refused (nothing listens there).
    Refused,
    /// No complete response within the per-request timeout (or a connect timeout).
    Timeout,
    /// The connection was reset or closed before the response completed.
    Reset,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// Anything else (DNS, protocol errors, ...).
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Refused,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Tls,
        ErrorKind::Other,
    ];

    /// The kind's name in metric names (`http/error-refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Tls => "tls",
            ErrorKind::Other => "other",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response arrived with this status (HTTP status, gRPC code); `error` says whether
    /// the protocol's rules (e.g. `errorRanges`) count it as an error.
    Response { status: u16, error: bool },
    /// No response.
    Failed(ErrorKind),
}

impl Outcome {
    pub fn is_error(self) -> bool {
        match self {
            Outcome::Response { error, .. } => error,
            Outcome::Failed(_) => true,
        }
    }
}

/// A protocol client the engine drives. One value is shared (by `Arc`) by every worker
/// thread; each worker owns one [`RequestSender::Conn`].
pub trait RequestSender: Send + Sync + 'static {
    /// One worker's connection state. Created (cheaply, without I/O) on the worker's own
    /// thread; connect lazily inside [`RequestSender::send`] so that connection failures are
    /// counted per request.
    type Conn;

    /// The state of worker `worker` (0-based).
    fn new_conn(&self, worker: usize) -> Self::Conn;

    /// Send one request on `conn` and read its whole response. Latency and the timeout are
    /// the engine's business.
    fn send(&self, conn: &mut Self::Conn) -> impl Future<Output = Outcome>;
}

/// When a phase stops: after `num_requests` requests, after `duration`, or at whichever
/// comes first when both are set.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Stop {
    pub num_requests: Option<u64>,
    pub duration: Option<Duration>,
}

impl Stop {
    pub fn count(n: u64) -> Self {
        Stop {
            num_requests: Some(n),
            duration: None,
        }
    }
    pub fn duration(d: Duration) -> Self {
        Stop {
            num_requests: None,
            duration: Some(d),
        }
    }
    fn is_bounded(&self) -> bool {
        self.num_requests.is_some() || self.duration.is_some()
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadPlan {
    /// Requests per second over all workers; `<= 0` (or not finite) means as fast as possible.
    pub qps: f64,
    /// When the measured phase stops.
    pub stop: Stop,
    /// Concurrent workers, each with its own connection and one request in flight (>= 1).
    pub connections: usize,
    /// A discarded first phase on the same connections and at the same pace.
    pub warmup: Option<Stop>,
    /// Per-request timeout (connect included); a request that takes longer counts as
    /// [`ErrorKind::Timeout`] with latency = the timeout.
    pub timeout: Duration,
    /// OS threads to spread the workers over; 0 = as many as CPUs available (at most
    /// `connections`).
    pub threads: usize,
    /// Stages of the measured phase (see [`schedule`]): when given, they replace `qps` and
    /// `stop` for the measured phase (the warmup keeps `qps`).
    pub stages: Vec<LoadStage>,
    /// With stages: which tickets of the schedule this process sends (all by default; one
    /// of N load workers sends every N-th, see [`split`]).
    pub tickets: TicketShare,
}

/// The tickets `first, first + step, first + 2 step, ...` of a staged schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicketShare {
    pub first: u64,
    /// At least 1.
    pub step: u64,
}

impl Default for TicketShare {
    fn default() -> Self {
        TicketShare { first: 0, step: 1 }
    }
}

impl TicketShare {
    /// The schedule's ticket of this process's `k`-th request.
    #[inline]
    pub fn global(&self, k: u64) -> u64 {
        self.first
            .saturating_add(k.saturating_mul(self.step.max(1)))
    }
}

impl LoadPlan {
    /// A plan of `num_requests` requests at `qps` over `connections` workers.
    pub fn new(qps: f64, stop: Stop, connections: usize) -> Self {
        LoadPlan {
            qps,
            stop,
            connections,
            warmup: None,
            timeout: Duration::from_secs(3),
            threads: 0,
            stages: Vec::new(),
            tickets: TicketShare::default(),
        }
    }

    fn fixed_rate(&self) -> bool {
        self.qps.is_finite() && self.qps > 0.0
    }
}

/// The engine could not run (not a per-request failure: those are data).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load plan: {0}")]
    InvalidPlan(String),
    #[error("cannot start a load worker thread: {0}")]
    Thread(String),
    /// The load is shared by several workers and they could not run it together
    /// ([`crate::dist`]).
    #[error("{0}")]
    Workers(String),
}
