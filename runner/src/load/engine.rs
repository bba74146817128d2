//! The engine: worker threads, each a current-thread runtime driving its workers; the
//! shared ticket counter; phases (warmup, measured) started together.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use super::report::{LoadReport, ThreadStats};
use super::{ErrorKind, LoadError, LoadPlan, Outcome, RequestSender, Stop};
use crate::model::limits::MAX_DURATION;
use crate::tasks::Progress;

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
