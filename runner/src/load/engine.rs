//! The engine: worker threads, each a current-thread runtime driving its workers; the
//! shared ticket counter; phases (warmup, measured) started together.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use super::health::Sample;
use super::report::{LoadReport, StageReport, ThreadStats};
use super::schedule::{check_stages, Schedule};
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
    /// The measured phase's schedule when the plan has stages.
    schedule: Option<Schedule>,
    /// CPU and cgroup readings when the measured phase started.
    sample: std::sync::Mutex<Option<Sample>>,
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
    if plan.stages.is_empty() && !plan.stop.is_bounded() {
        return Err(LoadError::InvalidPlan(
            "set a number of requests or a duration".into(),
        ));
    }
    if !plan.stages.is_empty() {
        if let Err((field, m)) = check_stages(&plan.stages) {
            return Err(LoadError::InvalidPlan(format!("stages{field}: {m}")));
        }
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
        schedule: (!plan.stages.is_empty()).then(|| Schedule::new(&plan.stages)),
        sample: std::sync::Mutex::new(None),
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

    let generator = shared
        .sample
        .lock()
        .ok()
        .and_then(|mut s| s.take())
        .map(|s| s.since())
        .unwrap_or_default();
    let measured = phases.len() - 1;
    let start = shared.ready_at[measured].load(Ordering::Relaxed);
    let end = shared.done_at[measured].load(Ordering::Relaxed);
    let mut report = LoadReport {
        elapsed: Duration::from_nanos(end.saturating_sub(start)),
        started: base_wall.checked_add(Duration::from_nanos(start)),
        generator,
        ..LoadReport::default()
    };
    if let Some(schedule) = &shared.schedule {
        report.stages = schedule
            .segments
            .iter()
            .map(|s| StageReport::new(*s))
            .collect();
    }
    let mut last_done: Vec<Option<Instant>> = vec![None; report.stages.len()];
    for r in results {
        let per_stage = match r {
            Ok(Some(stats)) => stats,
            Ok(None) => return Err(LoadError::Thread("a load worker thread stopped".into())),
            Err(_) => return Err(LoadError::Thread("a load worker thread panicked".into())),
        };
        for (i, stats) in per_stage.iter().enumerate() {
            report.merge_stats(stats);
            if let Some(stage) = report.stages.get_mut(i) {
                stage.merge_stats(stats);
            }
            if let Some(l) = last_done.get_mut(i) {
                *l = (*l).max(stats.last_done);
            }
        }
    }
    // A stage lasts from its start to its planned end or to its last completion.
    let phase_start = shared.base + Duration::from_nanos(start);
    for (stage, last) in report.stages.iter_mut().zip(last_done) {
        let begin = phase_start + Duration::from_secs_f64(stage.planned.start);
        let planned_end = begin + Duration::from_secs_f64(stage.planned.duration);
        let end = last.map_or(planned_end, |l| l.max(planned_end));
        stage.elapsed = end.saturating_duration_since(begin);
    }
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
) -> Vec<ThreadStats> {
    let mut conns: Vec<S::Conn> = workers.iter().map(|w| sender.new_conn(*w)).collect();
    let mut measured_stats = Vec::new();
    for (idx, (stop, measured)) in phases.iter().enumerate() {
        // Start together: the phase starts when the last thread is ready.
        shared.ready_at[idx].fetch_max(shared.nanos(Instant::now()), Ordering::Relaxed);
        let wait = shared.barrier.wait().await;
        if *measured && wait.is_leader() {
            if let Ok(mut s) = shared.sample.lock() {
                *s = Some(Sample::now());
            }
        }
        let start =
            shared.base + Duration::from_nanos(shared.ready_at[idx].load(Ordering::Relaxed));
        let schedule = shared.schedule.as_ref().filter(|_| *measured);
        let n_stats = schedule.map_or(1, |s| s.segments.len());
        let stats = RefCell::new((0..n_stats).map(|_| ThreadStats::new()).collect());
        {
            let phase = Phase {
                plan,
                shared,
                sender,
                stop: *stop,
                idx,
                start,
                measured: *measured,
                schedule,
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
    /// The stages of the measured phase.
    schedule: Option<&'a Schedule>,
    /// Per stage (one without stages).
    stats: &'a RefCell<Vec<ThreadStats>>,
}

impl<S: RequestSender> Phase<'_, S> {
    async fn worker(&self, conn: &mut S::Conn) {
        let fixed = self.schedule.is_some() || self.plan.fixed_rate();
        let period = if fixed { 1.0 / self.plan.qps } else { 0.0 };
        let deadline = self.stop.duration.map(|d| {
            self.start
                .checked_add(d)
                .unwrap_or(self.start + MAX_DURATION)
        });
        let limit = self.stop.num_requests.unwrap_or(u64::MAX);
        let tickets = &self.shared.tickets[self.idx];
        let mut cursor = 0usize;
        // One timeout timer per worker, moved forward before every request: moving a
        // registered timer later is one atomic exchange in Tokio, where a `timeout()` per
        // request registers and removes a timer in the driver's wheel every time.
        let timer = tokio::time::sleep(self.plan.timeout);
        tokio::pin!(timer);
        loop {
            let k = tickets.fetch_add(1, Ordering::Relaxed);
            let mut stage = 0;
            let (t0, lag, sent) = if let Some(schedule) = self.schedule {
                let g = self.plan.tickets.global(k);
                let Some((i, offset)) = schedule.due(g, &mut cursor) else {
                    break;
                };
                stage = i;
                self.wait_until(self.start + offset).await
            } else if k >= limit {
                break;
            } else if fixed {
                // In range for every qps >= MIN_QPS within MAX_DURATION; clamped past it.
                let offset = Duration::try_from_secs_f64(k as f64 * period)
                    .unwrap_or(MAX_DURATION)
                    .min(MAX_DURATION);
                let due = self.start + offset;
                if deadline.is_some_and(|d| due >= d) {
                    break;
                }
                self.wait_until(due).await
            } else {
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    break;
                }
                (now, None, now)
            };
            // The timeout counts from the send (not from a late request's due time).
            if let Some(d) = sent.checked_add(self.plan.timeout) {
                timer.as_mut().reset(d.into());
            }
            let outcome = tokio::select! {
                biased;
                o = self.sender.send(conn) => o,
                () = &mut timer => Outcome::Failed(ErrorKind::Timeout),
            };
            let done = Instant::now();
            let latency = done.saturating_duration_since(t0);
            if let Some(s) = self.stats.borrow_mut().get_mut(stage) {
                s.record(latency, outcome);
                if self.measured {
                    if let Some(lag) = lag {
                        s.lag.record(lag);
                    }
                    s.last_done = Some(done);
                }
            }
            if self.measured {
                self.shared.done.fetch_add(1, Ordering::Relaxed);
                if outcome.is_error() {
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Wait for a request due at `due`: (when its latency starts, how late it is sent,
    /// when it is sent).
    #[inline]
    async fn wait_until(&self, due: Instant) -> (Instant, Option<Duration>, Instant) {
        let now = Instant::now();
        if now >= due {
            // Late: every worker was busy (or not scheduled) when this request was due;
            // its latency starts at the due time.
            (due, Some(now - due), now)
        } else {
            tokio::time::sleep_until(due.into()).await;
            let now = Instant::now();
            (now, Some(now.saturating_duration_since(due)), now)
        }
    }
}
