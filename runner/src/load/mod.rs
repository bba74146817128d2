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

pub mod partial;
pub mod split;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::limits::MAX_DURATION;
use crate::model::metrics::percentile_suffix;
use crate::model::{HistBucket, Histogram as ModelHistogram, Insights, MetricMeta, MetricType};
use crate::tasks::Progress;

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

    fn index(self) -> usize {
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

/// Upper bound of the microsecond HDR histogram (1 hour); larger latencies saturate.
const HDR_MAX_US: u64 = 3_600_000_000;

/// Latency statistics of a phase (mergeable).
#[derive(Clone, Debug)]
pub struct LatencyStats {
    /// Latencies in microseconds (3 significant digits), for percentiles.
    pub hdr: hdrhistogram::Histogram<u64>,
    /// Counts on the fixed grid of [`grid_bounds_ms`] (index = grid bucket).
    grid: Vec<u64>,
    count: u64,
    sum_ns: u128,
    sum_sq_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyStats {
    pub fn new() -> Self {
        // Bounds are constants that hdrhistogram accepts (1 <= low, high >= 2 * low, 3 digits).
        let hdr = match hdrhistogram::Histogram::new_with_bounds(1, HDR_MAX_US, 3) {
            Ok(h) => h,
            Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
        };
        LatencyStats {
            hdr,
            grid: vec![0; GRID_LEN],
            count: 0,
            sum_ns: 0,
            sum_sq_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }

    /// Record one latency.
    #[inline]
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let us = (ns.saturating_add(500) / 1000).max(1);
        self.hdr.saturating_record(us);
        self.grid[grid_index(ns)] += 1;
        self.count += 1;
        self.sum_ns += ns as u128;
        self.sum_sq_ns += (ns as u128) * (ns as u128);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &LatencyStats) {
        // Same bounds on both sides, so `add` cannot fail; saturate if it ever would.
        if self.hdr.add(&other.hdr).is_err() {
            for v in other.hdr.iter_recorded() {
                self.hdr
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        for (a, b) in self.grid.iter_mut().zip(&other.grid) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.sum_sq_ns += other.sum_sq_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ns as f64 / self.count as f64 / 1e6)
    }

    /// Population standard deviation in ms (exact moments).
    pub fn stddev_ms(&self) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let mean = self.sum_ns as f64 / n;
        let var = (self.sum_sq_ns as f64 / n - mean * mean).max(0.0);
        Some(var.sqrt() / 1e6)
    }

    pub fn min_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.min_ns as f64 / 1e6)
    }

    pub fn max_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.max_ns as f64 / 1e6)
    }

    /// Percentile `p` (0..=100) in ms, from the HDR histogram (within 0.1%), clamped to the
    /// exact min and max.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = (p / 100.0).clamp(0.0, 1.0);
        let us = self.hdr.value_at_quantile(q);
        let min = self.min_ns as f64 / 1e6;
        let max = self.max_ns as f64 / 1e6;
        Some((us as f64 / 1000.0).clamp(min, max))
    }

    /// The shared, mergeable histogram (ms): non-empty grid buckets plus exact moments.
    pub fn to_model(&self) -> ModelHistogram {
        if self.count == 0 {
            return ModelHistogram::default();
        }
        let buckets = self
            .grid
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                let (lower, upper) = grid_bounds_ms(i);
                HistBucket {
                    lower,
                    upper,
                    count: *c,
                }
            })
            .collect();
        ModelHistogram {
            buckets,
            count: self.count,
            sum: self.sum_ns as f64 / 1e6,
            sum_sq: self.sum_sq_ns as f64 / 1e12,
            min: self.min_ns as f64 / 1e6,
            max: self.max_ns as f64 / 1e6,
        }
    }
}

// ---- the fixed latency grid -------------------------------------------------------------
//
// Bucket 0 is [0, 0.001) ms. Then, for each decade from 0.001 ms (1 µs) to 10^7 ms, 90
// buckets of two significant digits: [1.0, 1.1), [1.1, 1.2), ... [9.9, 10) times the decade.
// Latencies of 10^7 ms (2.8 h) and more fall into the last bucket. Bounds are computed the
// same way everywhere (integers divided by powers of ten), so equal buckets have equal bits
// and histograms of different pods or loops merge exactly.

const GRID_DECADES: usize = 10;
const GRID_LEN: usize = 1 + GRID_DECADES * 90;

/// Grid bucket of a latency in nanoseconds.
#[inline]
pub fn grid_index(ns: u64) -> usize {
    if ns < 1000 {
        return 0;
    }
    // digits of ns: 4 (1 µs) ..= 13 (< 10^13 ns = 10^7 ms)
    let digits = ns.ilog10() as usize + 1;
    if digits > 3 + GRID_DECADES {
        return GRID_LEN - 1;
    }
    let scale = 10u64.pow(digits as u32 - 2);
    let m = (ns / scale) as usize; // 10..=99
    1 + (digits - 4) * 90 + (m - 10)
}

/// `[lower, upper)` in milliseconds of grid bucket `i`.
pub fn grid_bounds_ms(i: usize) -> (f64, f64) {
    if i == 0 {
        return (0.0, 0.001);
    }
    let i = i.min(GRID_LEN - 1) - 1;
    let decade = i / 90; // 0 => bucket lower bounds 1.0e-3 ms
    let m = (i % 90 + 10) as u64;
    // value = m * 10^(decade - 4) ms
    let exp = decade as i32 - 4;
    let at = |m: u64| -> f64 {
        if exp >= 0 {
            (m * 10u64.pow(exp as u32)) as f64
        } else {
            m as f64 / 10u64.pow((-exp) as u32) as f64
        }
    };
    (at(m), at(m + 1))
}

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
    /// can be placed on one time line ([`partial`]).
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

    fn merge_stats(&mut self, s: &ThreadStats) {
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
struct ThreadStats {
    requests: u64,
    latency: LatencyStats,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    kinds: [u64; 5],
}

impl ThreadStats {
    fn new() -> Self {
        ThreadStats {
            requests: 0,
            latency: LatencyStats::new(),
            errors: 0,
            statuses: BTreeMap::new(),
            kinds: [0; 5],
        }
    }

    #[inline]
    fn record(&mut self, latency: Duration, outcome: Outcome) {
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

// ---- the engine -----------------------------------------------------------------------------

/// State shared by every worker thread of a run.
struct Shared {
    /// Reference point for the atomics below.
    base: Instant,
    /// Per phase: next ticket.
    tickets: [AtomicU64; 2],
    /// Per phase: nanoseconds after `base` when the last thread became ready for it.
    ready_at: [AtomicU64; 2],
    /// Per phase: nanoseconds after `base` when the last thread finished it.
    done_at: [AtomicU64; 2],
    barrier: tokio::sync::Barrier,
    /// Measured phase: requests done and errors (for live progress).
    done: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Run `plan` with `sender`; returns the measured phase's statistics. `progress`, when
/// given, gets the measured phase's done / error counts as requests complete (the caller
/// sets its label and total with `Progress::start`).
pub async fn run_load<S: RequestSender>(
    plan: &LoadPlan,
    sender: S,
    progress: Option<&Progress>,
) -> Result<LoadReport, LoadError> {
    if let Err(m) = crate::model::limits::check_connections(plan.connections) {
        return Err(LoadError::InvalidPlan(format!("connections: {m}")));
    }
    if let Err(m) = crate::model::limits::check_qps(plan.qps) {
        return Err(LoadError::InvalidPlan(format!("qps: {m}")));
    }
    if !plan.stop.is_bounded() {
        return Err(LoadError::InvalidPlan(
            "set a number of requests or a duration".into(),
        ));
    }
    if plan.warmup.is_some_and(|w| !w.is_bounded()) {
        return Err(LoadError::InvalidPlan(
            "warmup: set a number of requests or a duration".into(),
        ));
    }
    let threads = if plan.threads > 0 {
        plan.threads
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
    .clamp(1, plan.connections);

    let base = Instant::now();
    let base_wall = std::time::SystemTime::now();
    let shared = Arc::new(Shared {
        base,
        tickets: [AtomicU64::new(0), AtomicU64::new(0)],
        ready_at: [AtomicU64::new(0), AtomicU64::new(0)],
        done_at: [AtomicU64::new(0), AtomicU64::new(0)],
        barrier: tokio::sync::Barrier::new(threads),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let sender = Arc::new(sender);
    let mut phases = Vec::with_capacity(2);
    if let Some(w) = plan.warmup {
        phases.push((w, false));
    }
    phases.push((plan.stop, true));
    let phases = Arc::new(phases);

    // Runtimes first (so that a failure leaves no thread behind), then the threads, which
    // wait for the go signal: if a thread cannot be spawned, the others are told to stop
    // before they reach a barrier that would never open.
    let mut runtimes = Vec::with_capacity(threads);
    for _ in 0..threads {
        runtimes.push(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| LoadError::Thread(format!("cannot build a runtime: {e}")))?,
        );
    }
    let (go_tx, go_rx) = tokio::sync::watch::channel(None::<bool>);
    let mut receivers = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for (t, rt) in runtimes.into_iter().enumerate() {
        // workers t, t + threads, t + 2*threads, ...
        let workers: Vec<usize> = (t..plan.connections).step_by(threads).collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = shared.clone();
        let sender = sender.clone();
        let phases = phases.clone();
        let plan = plan.clone();
        let mut go = go_rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("iter8-load-{t}"))
            .spawn(move || {
                let stats = rt.block_on(async {
                    let go = go.wait_for(Option::is_some).await.map(|v| *v == Some(true));
                    if go.unwrap_or(false) {
                        Some(thread_main(&plan, &shared, &*sender, &phases, workers).await)
                    } else {
                        None
                    }
                });
                let _ = tx.send(stats);
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                let _ = go_tx.send(Some(false));
                for h in handles {
                    let _ = h.join();
                }
                return Err(LoadError::Thread(e.to_string()));
            }
        }
        receivers.push(rx);
    }
    let _ = go_tx.send(Some(true));

    let mut all = futures::future::join_all(receivers);
    let results = loop {
        tokio::select! {
            r = &mut all => break r,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(p) = progress {
                    p.done.store(shared.done.load(Ordering::Relaxed), Ordering::Relaxed);
                    p.errors.store(shared.errors.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
    };
    for h in handles {
        let _ = h.join();
    }

    let mut report = LoadReport::default();
    let measured = phases.len() - 1;
    for r in results {
        match r {
            Ok(Some(stats)) => report.merge_stats(&stats),
            Ok(None) => return Err(LoadError::Thread("a load worker thread stopped".into())),
            Err(_) => return Err(LoadError::Thread("a load worker thread panicked".into())),
        }
    }
    let start = shared.ready_at[measured].load(Ordering::Relaxed);
    let end = shared.done_at[measured].load(Ordering::Relaxed);
    report.elapsed = Duration::from_nanos(end.saturating_sub(start));
    report.started = base_wall.checked_add(Duration::from_nanos(start));
    if let Some(p) = progress {
        p.done.store(report.requests, Ordering::Relaxed);
        p.errors.store(report.errors, Ordering::Relaxed);
    }
    Ok(report)
}

/// One worker thread: its workers run every phase; statistics of the measured phase only.
async fn thread_main<S: RequestSender>(
    plan: &LoadPlan,
    shared: &Shared,
    sender: &S,
    phases: &[(Stop, bool)],
    workers: Vec<usize>,
) -> ThreadStats {
    let mut conns: Vec<S::Conn> = workers.iter().map(|w| sender.new_conn(*w)).collect();
    let mut measured_stats = ThreadStats::new();
    for (idx, (stop, measured)) in phases.iter().enumerate() {
        // Start together: the phase starts when the last thread is ready.
        shared.ready_at[idx].fetch_max(shared.nanos(Instant::now()), Ordering::Relaxed);
        shared.barrier.wait().await;
        let start =
            shared.base + Duration::from_nanos(shared.ready_at[idx].load(Ordering::Relaxed));
        let stats = RefCell::new(ThreadStats::new());
        {
            let phase = Phase {
                plan,
                shared,
                sender,
                stop: *stop,
                idx,
                start,
                measured: *measured,
                stats: &stats,
            };
            let mut running: FuturesUnordered<_> =
                conns.iter_mut().map(|c| phase.worker(c)).collect();
            while running.next().await.is_some() {}
        }
        shared.done_at[idx].fetch_max(shared.nanos(Instant::now()), Ordering::Relaxed);
        if *measured {
            measured_stats = stats.into_inner();
        }
    }
    measured_stats
}

struct Phase<'a, S> {
    plan: &'a LoadPlan,
    shared: &'a Shared,
    sender: &'a S,
    stop: Stop,
    idx: usize,
    start: Instant,
    measured: bool,
    stats: &'a RefCell<ThreadStats>,
}

impl<S: RequestSender> Phase<'_, S> {
    async fn worker(&self, conn: &mut S::Conn) {
        let fixed = self.plan.fixed_rate();
        let period = if fixed { 1.0 / self.plan.qps } else { 0.0 };
        let deadline = self.stop.duration.map(|d| {
            self.start
                .checked_add(d)
                .unwrap_or(self.start + MAX_DURATION)
        });
        let limit = self.stop.num_requests.unwrap_or(u64::MAX);
        let tickets = &self.shared.tickets[self.idx];
        loop {
            let k = tickets.fetch_add(1, Ordering::Relaxed);
            if k >= limit {
                break;
            }
            let t0 = if fixed {
                // In range for every qps >= MIN_QPS within MAX_DURATION; clamped past it.
                let offset = Duration::try_from_secs_f64(k as f64 * period)
                    .unwrap_or(MAX_DURATION)
                    .min(MAX_DURATION);
                let due = self.start + offset;
                if deadline.is_some_and(|d| due >= d) {
                    break;
                }
                let now = Instant::now();
                if now >= due {
                    // Late: every worker was busy when this request was due.
                    due
                } else {
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                }
            } else {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    break;
                }
                now
            };
            let outcome =
                match tokio::time::timeout(self.plan.timeout, self.sender.send(conn)).await {
                    Ok(o) => o,
                    Err(_) => Outcome::Failed(ErrorKind::Timeout),
                };
            let latency = Instant::now().saturating_duration_since(t0);
            self.stats.borrow_mut().record(latency, outcome);
            if self.measured {
                self.shared.done.fetch_add(1, Ordering::Relaxed);
                if outcome.is_error() {
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn grid_buckets_have_two_significant_digits() {
        assert_eq!(grid_index(0), 0);
        assert_eq!(grid_index(999), 0);
        assert_eq!(grid_bounds_ms(0), (0.0, 0.001));
        // 1 µs
        assert_eq!(grid_bounds_ms(grid_index(1000)), (0.001, 0.0011));
        // 1.234 ms
        assert_eq!(grid_bounds_ms(grid_index(1_234_000)), (1.2, 1.3));
        // 57.9 ms
        assert_eq!(grid_bounds_ms(grid_index(57_900_000)), (57.0, 58.0));
        // 9.99 ms -> [9.9, 10)
        assert_eq!(grid_bounds_ms(grid_index(9_990_000)), (9.9, 10.0));
        // 250 s
        assert_eq!(
            grid_bounds_ms(grid_index(250_000_000_000)),
            (250_000.0, 260_000.0)
        );
        // beyond the grid: the last bucket
        assert_eq!(grid_index(u64::MAX), GRID_LEN - 1);
        // contiguous and increasing
        for i in 1..GRID_LEN {
            let (lo, hi) = grid_bounds_ms(i);
            assert!(lo < hi);
            assert_eq!(grid_bounds_ms(i - 1).1, lo, "bucket {i}");
        }
    }

    #[test]
    fn latency_stats_are_exact_and_mergeable() {
        let mut a = LatencyStats::new();
        let mut b = LatencyStats::new();
        for ms in [1u64, 2, 3] {
            a.record(Duration::from_millis(ms));
        }
        b.record(Duration::from_millis(10));
        a.merge(&b);
        assert_eq!(a.count(), 4);
        assert_eq!(a.mean_ms(), Some(4.0));
        assert_eq!(a.min_ms(), Some(1.0));
        assert_eq!(a.max_ms(), Some(10.0));
        let sd = a.stddev_ms().unwrap_or_default();
        assert!((sd - 3.535_533_905_932_737_6).abs() < 1e-9, "{sd}");
        let p50 = a.percentile_ms(50.0).unwrap_or_default();
        assert!((1.99..=2.01).contains(&p50), "{p50}");
        let h = a.to_model();
        assert_eq!(h.count, 4);
        assert_eq!(h.buckets.iter().map(|b| b.count).sum::<u64>(), 4);
        assert_eq!(h.sum, 16.0);
        assert_eq!(h.sum_sq, 1.0 + 4.0 + 9.0 + 100.0);
        assert_eq!(h.buckets[3].lower, 10.0);
    }

    /// Replies instantly; counts requests; every `fail_every`-th is a 500.
    struct Fake {
        sent: AtomicU64,
        fail_every: u64,
        conns: AtomicUsize,
        delay: Duration,
    }

    impl RequestSender for Fake {
        type Conn = ();
        fn new_conn(&self, _worker: usize) {
            self.conns.fetch_add(1, Ordering::Relaxed);
        }
        async fn send(&self, _conn: &mut ()) -> Outcome {
            let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.fail_every > 0 && n % self.fail_every == 0 {
                Outcome::Response {
                    status: 500,
                    error: true,
                }
            } else {
                Outcome::Response {
                    status: 200,
                    error: false,
                }
            }
        }
    }

    fn fake(fail_every: u64, delay: Duration) -> Fake {
        Fake {
            sent: AtomicU64::new(0),
            fail_every,
            conns: AtomicUsize::new(0),
            delay,
        }
    }

    #[tokio::test]
    async fn exact_count_at_max_rate_over_threads() {
        let mut plan = LoadPlan::new(0.0, Stop::count(1001), 7);
        plan.threads = 3;
        plan.warmup = Some(Stop::count(50));
        let progress = Progress::default();
        let r = run_load(&plan, fake(3, Duration::ZERO), Some(&progress))
            .await
            .unwrap();
        assert_eq!(r.requests, 1001);
        assert_eq!(r.latency.count(), 1001);
        // warmup sent 50 first; the measured phase's fakes numbered 51..=1051
        let errs = (51..=1051).filter(|n| n % 3 == 0).count() as u64;
        assert_eq!(r.errors, errs);
        assert_eq!(r.statuses.get(&500), Some(&errs));
        assert_eq!(r.statuses.get(&200), Some(&(1001 - errs)));
        assert_eq!(progress.done.load(Ordering::Relaxed), 1001);
        assert_eq!(progress.errors.load(Ordering::Relaxed), errs);
    }

    #[tokio::test]
    async fn fixed_rate_duration_sends_the_due_tickets() {
        // 200 qps for 300ms: tickets due at 0, 5ms, ..., 295ms: exactly 60.
        let plan = LoadPlan::new(200.0, Stop::duration(Duration::from_millis(300)), 2);
        let r = run_load(&plan, fake(0, Duration::ZERO), None)
            .await
            .unwrap();
        assert_eq!(r.requests, 60);
        assert_eq!(r.errors, 0);
    }

    #[tokio::test]
    async fn timeouts_are_counted_with_the_timeout_as_latency() {
        let mut plan = LoadPlan::new(0.0, Stop::count(4), 2);
        plan.timeout = Duration::from_millis(20);
        let r = run_load(&plan, fake(0, Duration::from_secs(5)), None)
            .await
            .unwrap();
        assert_eq!(r.requests, 4);
        assert_eq!(r.errors, 4);
        assert_eq!(r.error_kinds.get(&ErrorKind::Timeout), Some(&4));
        assert!(r.latency.min_ms().unwrap_or_default() >= 20.0);
    }

    #[tokio::test]
    async fn late_requests_are_measured_from_their_due_time() {
        // One worker, 1000 qps, each request takes 10ms: request k is due at k ms but is
        // sent at ~10k ms, so its latency grows (no coordinated omission).
        let plan = LoadPlan::new(1000.0, Stop::count(10), 1);
        let r = run_load(&plan, fake(0, Duration::from_millis(10)), None)
            .await
            .unwrap();
        assert_eq!(r.requests, 10);
        // the last one: due at 9ms, done at >= 100ms
        assert!(r.latency.max_ms().unwrap_or_default() >= 90.0);
    }

    #[tokio::test]
    async fn bad_plans_are_rejected() {
        let plan = LoadPlan::new(0.0, Stop::default(), 1);
        assert!(run_load(&plan, fake(0, Duration::ZERO), None)
            .await
            .is_err());
        let plan = LoadPlan::new(0.0, Stop::count(1), 0);
        assert!(run_load(&plan, fake(0, Duration::ZERO), None)
            .await
            .is_err());
    }
}
