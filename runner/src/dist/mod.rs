//! Distributed load: the load of an experiment's `http` and `grpc` tasks shared by N
//! workers (the pods of an Indexed Job, or N processes on one machine), merged into one
//! exact result.
//!
//! # Roles
//! Worker 0 is the coordinator: it runs the whole experiment as one runner does (tasks
//! before the load, the load, tasks after it: `assess`, `notify`, ... once) and stores the
//! result. Workers 1..N run only the load tasks, each its share ([`crate::load::split`]),
//! and hand their partial reports ([`crate::load::partial`]) to the coordinator, which
//! merges them (exactly: counts, statuses, error kinds, histograms) and records the metrics
//! of the merged report as the task's.
//!
//! # Protocol (through a [`Rendezvous`]: a directory locally, the release's Secret in a cluster)
//! Every worker writes only its own record (`load-worker-<i>`): where it is (`at`: the load
//! phase it waits to start), its partial reports by phase, or why it failed. The
//! coordinator writes only the control record (`load-control`): for each load task whether
//! it runs or is skipped (its `if:`), for each load phase the wall-clock time at which
//! every worker starts, and when the loop ended. Records carry the run's identity (the
//! Job's name; a token locally), so records of an earlier run (a CronJob's previous loop)
//! are ignored. Nothing is written by two writers, so nothing is overwritten.
//!
//! - Start together: at each load phase the coordinator waits until every worker is there
//!   (a timeout fails the task naming the workers that never arrived), then publishes a
//!   start time a little ahead ([`Workers::lead`]); worker `i` starts at that time plus its
//!   [`Share::start_offset`](crate::load::split::Share), so the merged fixed-rate schedule
//!   is the one-worker schedule.
//! - After its own share, the coordinator waits for every worker's partial report (a
//!   worker that failed, or sent nothing within the timeout, fails the task naming its
//!   index) and merges them.
//!
//! Tasks reach this module through [`run_load`], a drop-in for [`crate::load::run_load`]:
//! outside a distributed run (no [`scope`], or one worker) it is exactly that.

pub mod local;
pub mod rendezvous;
pub mod worker;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::load::partial::PartialReport;
use crate::load::split::split_plan;
use crate::load::{LoadError, LoadPlan, LoadReport, RequestSender};
use crate::tasks::Progress;
pub use rendezvous::Rendezvous;

/// Why the workers could not coordinate.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A record could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A record is not what a worker writes.
    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },
}

/// One load phase: the `phase`-th call of the load engine in task `task` (a task loads
/// each endpoint in turn). Ordered, so "at or past a phase" is a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Step {
    pub task: usize,
    pub phase: usize,
}

impl Step {
    fn key(self) -> String {
        format!("{}.{}", self.task, self.phase)
    }
}

/// What a worker (index >= 1) tells the coordinator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRecord {
    /// The run this record belongs to.
    pub run: String,
    /// The load phase this worker has reached (waiting for its start, or running it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Step>,
    /// Partial reports by phase (`<task>.<phase>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partials: BTreeMap<String, PartialReport>,
    /// Why this worker failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// What the coordinator tells the workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    pub run: String,
    /// Load tasks by index: `true` runs, `false` is skipped (its `if:` was false).
    #[serde(default)]
    pub tasks: BTreeMap<usize, bool>,
    /// Start of each load phase (`<task>.<phase>`), nanoseconds since the Unix epoch.
    #[serde(default)]
    pub go: BTreeMap<String, u128>,
    /// The loop ended (no more load): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// This process's place among the workers of a run.
pub struct Workers {
    /// 0 (the coordinator) ..< `count`.
    pub index: u32,
    /// How many workers share the load (>= 1).
    pub count: u32,
    /// The run's identity (the Job's name; a random token locally).
    pub run: String,
    pub rendezvous: Rendezvous,
    /// How long the coordinator waits for every worker at a phase's start and for their
    /// partial reports, and a worker for the coordinator's first sign of life.
    pub timeout: Duration,
    /// How often records are read while waiting.
    pub poll: Duration,
    /// How far ahead of "everyone is here" the common start is set.
    pub lead: Duration,
    /// What this worker has written (a worker rewrites its whole record).
    record: Mutex<WorkerRecord>,
    /// What the coordinator has published.
    control: Mutex<Control>,
}

impl Workers {
    pub fn new(index: u32, count: u32, run: impl Into<String>, rendezvous: Rendezvous) -> Self {
        let run = run.into();
        Self {
            index,
            count: count.max(1),
            record: Mutex::new(WorkerRecord {
                run: run.clone(),
                ..WorkerRecord::default()
            }),
            control: Mutex::new(Control {
                run: run.clone(),
                ..Control::default()
            }),
            run,
            rendezvous,
            timeout: Duration::from_secs(60),
            poll: Duration::from_millis(25),
            lead: Duration::from_millis(250),
        }
    }

    pub fn with_timing(mut self, timeout: Duration, poll: Duration, lead: Duration) -> Self {
        self.timeout = timeout;
        self.poll = poll;
        self.lead = lead;
        self
    }

    pub fn is_coordinator(&self) -> bool {
        self.index == 0
    }

    fn lock<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
        match m.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Change this worker's record and write it.
    async fn update_record(&self, f: impl FnOnce(&mut WorkerRecord)) -> Result<(), DistError> {
        let rec = Self::lock(&self.record, |r| {
            f(r);
            r.clone()
        });
        self.rendezvous.write_worker(self.index, &rec).await
    }

    /// Change the control record and write it (coordinator).
    async fn update_control(&self, f: impl FnOnce(&mut Control)) -> Result<(), DistError> {
        let c = Self::lock(&self.control, |c| {
            f(c);
            c.clone()
        });
        self.rendezvous.write_control(&c).await
    }

    /// Coordinator: the loop starts (workers waiting for a sign of life see it).
    pub async fn begin(&self) -> Result<(), DistError> {
        self.update_control(|_| {}).await
    }

    /// Coordinator: load task `task` runs (`true`) or is skipped.
    pub async fn decide_task(&self, task: usize, runs: bool) -> Result<(), DistError> {
        self.update_control(|c| {
            c.tasks.insert(task, runs);
        })
        .await
    }

    /// Coordinator: the loop is over; waiting workers stop. The workers' records (merged
    /// already) are then removed, best effort, so the release's Secret stays small.
    pub async fn end(&self, why: &str) -> Result<(), DistError> {
        self.update_control(|c| c.ended = Some(why.to_string()))
            .await?;
        if let Err(e) = self.rendezvous.remove_workers(self.count).await {
            tracing::debug!("the load workers' records stay: {e}");
        }
        Ok(())
    }

    /// Worker: record why it failed (the coordinator fails the experiment naming it).
    pub async fn fail(&self, message: &str) -> Result<(), DistError> {
        self.update_record(|r| r.failed = Some(message.to_string()))
            .await
    }

    /// Coordinator: the workers of this run that recorded a failure (`load worker 2 failed:
    /// ...`), if any; None also when the records cannot be read.
    pub async fn failed_workers(&self) -> Option<String> {
        failures(&self.read_workers().await.ok()?)
    }

    /// The records of the other workers of this run (earlier runs' are left out).
    async fn read_workers(&self) -> Result<BTreeMap<u32, WorkerRecord>, DistError> {
        let mut all = self.rendezvous.read_workers(self.count).await?;
        all.retain(|i, r| *i != 0 && *i < self.count && r.run == self.run);
        Ok(all)
    }

    /// The coordinator's control record of this run, if written yet.
    pub async fn read_control(&self) -> Result<Option<Control>, DistError> {
        Ok(self
            .rendezvous
            .read_control()
            .await?
            .filter(|c| c.run == self.run))
    }

    /// Coordinator: wait until `ready` holds for every worker 1..N. A failed worker, or the
    /// timeout, is an error naming the workers.
    async fn wait_for_all(
        &self,
        what: &str,
        ready: impl Fn(&WorkerRecord) -> bool,
    ) -> Result<BTreeMap<u32, WorkerRecord>, String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let all = self.read_workers().await.map_err(|e| e.to_string())?;
            if let Some(failed) = failures(&all) {
                return Err(failed);
            }
            let missing: Vec<u32> = (1..self.count)
                .filter(|i| !all.get(i).is_some_and(&ready))
                .collect();
            if missing.is_empty() {
                return Ok(all);
            }
            if Instant::now() >= deadline {
                let never: Vec<u32> = missing
                    .iter()
                    .copied()
                    .filter(|i| !all.contains_key(i))
                    .collect();
                let names = list(&missing);
                let mut msg = format!(
                    "load {} {names} of {} {what} within {} (the timeout of the load workers)",
                    if missing.len() == 1 {
                        "worker"
                    } else {
                        "workers"
                    },
                    self.count,
                    crate::model::GoDuration::from(self.timeout),
                );
                if !never.is_empty() {
                    msg.push_str(&format!(
                        "; never started: {} (no record of this run: their pods were not scheduled, \
                         not started, or cannot write the release's Secret)",
                        list(&never)
                    ));
                }
                return Err(msg);
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// `load worker I failed: ...` for every failed worker; None when none failed.
fn failures(all: &BTreeMap<u32, WorkerRecord>) -> Option<String> {
    let failed: Vec<String> = all
        .iter()
        .filter_map(|(i, r)| {
            r.failed
                .as_ref()
                .map(|m| format!("load worker {i} failed: {m}"))
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

fn list(ids: &[u32]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Sleep until `start_unix_ns + offset` (wall clock); at once when that has passed.
async fn sleep_until_wall(start_unix_ns: u128, offset: Duration) {
    let target = start_unix_ns + offset.as_nanos();
    let now = unix_ns(SystemTime::now());
    if target > now {
        let wait = u64::try_from(target - now).unwrap_or(u64::MAX);
        tokio::time::sleep(Duration::from_nanos(wait)).await;
    }
}

/// The distributed context of a running load task.
struct Current {
    workers: Arc<Workers>,
    task: usize,
    phases: AtomicUsize,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// Run `fut` (a task of index `task`) as part of a distributed run: its calls of
/// [`run_load`] share the load with the other workers. `None`: `fut` as it is.
pub async fn scope<F: Future>(workers: Option<Arc<Workers>>, task: usize, fut: F) -> F::Output {
    match workers.filter(|w| w.count > 1) {
        Some(workers) => {
            CURRENT
                .scope(
                    Current {
                        workers,
                        task,
                        phases: AtomicUsize::new(0),
                    },
                    fut,
                )
                .await
        }
        None => fut.await,
    }
}

/// [`crate::load::run_load`], shared with the other workers inside a [`scope`]: this
/// worker runs its part of `plan`, starting with the others; the coordinator returns the
/// merged report of every worker, another worker its own.
pub async fn run_load<S: RequestSender>(
    plan: &LoadPlan,
    sender: S,
    progress: Option<&Progress>,
) -> Result<LoadReport, LoadError> {
    let current = CURRENT
        .try_with(|c| {
            (
                c.workers.clone(),
                Step {
                    task: c.task,
                    phase: c.phases.fetch_add(1, Ordering::Relaxed),
                },
            )
        })
        .ok();
    let Some((workers, step)) = current else {
        return crate::load::run_load(plan, sender, progress).await;
    };
    let share = split_plan(plan, workers.count, workers.index).map_err(LoadError::InvalidPlan)?;
    let key = step.key();
    let e = |m: String| LoadError::Workers(m);
    if workers.is_coordinator() {
        workers
            .wait_for_all("did not reach the start of the load", |r| {
                r.at.is_some_and(|at| at >= step)
            })
            .await
            .map_err(e)?;
        let start = unix_ns(SystemTime::now() + workers.lead);
        workers
            .update_control(|c| {
                c.go.insert(key.clone(), start);
            })
            .await
            .map_err(|x| e(x.to_string()))?;
        sleep_until_wall(start, share.start_offset).await;
        let mine = crate::load::run_load(&share.plan, sender, progress).await?;
        let mine = mine.to_partial(SystemTime::now());
        let all = workers
            .wait_for_all("sent no partial result", |r| r.partials.contains_key(&key))
            .await
            .map_err(e)?;
        let started = Instant::now();
        let mut parts: Vec<&PartialReport> = vec![&mine];
        parts.extend(all.values().filter_map(|r| r.partials.get(&key)));
        let merged = LoadReport::merge_partials(parts)
            .map_err(|x| e(format!("a partial result cannot be merged: {x}")))?;
        tracing::info!(
            workers = workers.count,
            requests = merged.requests,
            errors = merged.errors,
            elapsed_secs = merged.elapsed.as_secs_f64(),
            rate = merged.rate(),
            merge_micros = started.elapsed().as_micros() as u64,
            "load workers: {} partial results merged: {} requests in {:.3}s ({:.2}/s)",
            workers.count,
            merged.requests,
            merged.elapsed.as_secs_f64(),
            merged.rate()
        );
        if let Some(p) = progress {
            p.done.store(merged.requests, Ordering::Relaxed);
            p.errors.store(merged.errors, Ordering::Relaxed);
        }
        Ok(merged)
    } else {
        workers
            .update_record(|r| r.at = Some(step))
            .await
            .map_err(|x| e(x.to_string()))?;
        let start = wait_for_go(&workers, &key).await.map_err(e)?;
        sleep_until_wall(start, share.start_offset).await;
        let report = crate::load::run_load(&share.plan, sender, progress).await?;
        let partial = report.to_partial(SystemTime::now());
        workers
            .update_record(|r| {
                // The coordinator merged the earlier phases before this one could start:
                // only this phase's partial result is kept (the record stays small).
                r.partials.clear();
                r.partials.insert(key.clone(), partial);
            })
            .await
            .map_err(|x| e(x.to_string()))?;
        Ok(report)
    }
}

/// Worker: wait for the coordinator's start time of phase `key`.
async fn wait_for_go(workers: &Workers, key: &str) -> Result<u128, String> {
    loop {
        if let Some(c) = workers.read_control().await.map_err(|e| e.to_string())? {
            if let Some(start) = c.go.get(key) {
                return Ok(*start);
            }
            if let Some(why) = c.ended {
                return Err(format!("the coordinator ended the loop: {why}"));
            }
        }
        tokio::time::sleep(workers.poll).await;
    }
}

#[cfg(test)]
mod tests;
