//! Tasks: one file per task. Each task module exposes
//! - its inputs struct (serde, `deny_unknown_fields`, Iter8's parameter names),
//! - `fn validate(&self) -> Result<(), TaskError>` for checks that need no I/O (run before
//!   any task of the experiment starts),
//! - `async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError>`, which adds
//!   what it found to `ctx.insights`.

pub mod grpc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::model::Insights;

pub mod assess;
pub mod bounded;
pub mod credentials;
pub mod custommetrics;
pub mod gotemplate;
pub mod http;
pub mod http1;
pub mod httpcall;
pub mod isolated;
pub mod notify;
pub mod ready;
pub mod run;
pub(crate) mod tls;

/// Why a task could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A parameter is missing or wrong; `field` is the parameter's path inside `with`
    /// (e.g. `endpoints.v1.url`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The task ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl TaskError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a running task may use.
pub struct TaskContext<'a> {
    /// Zero-based index of the task in the experiment.
    pub index: usize,
    /// When the experiment (its first loop) started.
    pub experiment_start: DateTime<Utc>,
    /// The experiment's namespace (in a cluster).
    pub namespace: Option<String>,
    /// Where tasks record what they find.
    pub insights: &'a mut Insights,
    /// Live progress of the current task (shown on a terminal).
    pub progress: &'a Progress,
    /// A Kubernetes client, in a cluster.
    pub kube: Option<kube::Client>,
}

/// Live progress counters of the running task: cheap to update from many workers.
#[derive(Debug, Default)]
pub struct Progress {
    label: Mutex<String>,
    /// The running task as the engine names it (`task 1/3 http`).
    task: Mutex<String>,
    /// Requests (or steps) planned; 0 when unknown (duration-bound runs).
    pub total: AtomicU64,
    /// Requests (or steps) done.
    pub done: AtomicU64,
    /// Of which failed.
    pub errors: AtomicU64,
}

impl Progress {
    /// Start a new phase: label shown on the terminal, and the planned total (0 = unknown).
    pub fn start(&self, label: impl Into<String>, total: u64) {
        if let Ok(mut l) = self.label.lock() {
            *l = label.into();
        }
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
    }

    pub fn inc(&self, error: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Set by the engine when a task starts (`task 1/3 http`); tasks use [`Progress::start`].
    pub fn set_task(&self, task: impl Into<String>) {
        if let Ok(mut t) = self.task.lock() {
            *t = task.into();
        }
        self.start("", 0);
    }

    /// The running task, as set by the engine.
    pub fn task(&self) -> String {
        self.task.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn label(&self) -> String {
        self.label.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
