//! Where experiments come from and results go: a file locally (`file`), the release's
//! Secret in a cluster (`secret`). The engine is generic over [`Store`].

pub mod file;
pub mod merge;

use std::future::Future;

use crate::model::ExperimentResult;

pub mod secret;

/// Why the experiment could not be read or its result written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The experiment (or previous result) is not there.
    #[error("not found: {0}")]
    NotFound(String),
    /// Not allowed (e.g. 403 from the Kubernetes API).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The stored document is not what we expect.
    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },
    /// Reading or writing failed (I/O, network, API error after retries).
    #[error("{0}")]
    Io(String),
}

/// What a store holds before a run.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The experiment document (YAML with a top-level `spec:` task list).
    pub experiment_yaml: String,
    /// The previous result, if one was stored (a CronJob loop continues it).
    pub previous: Option<ExperimentResult>,
    /// The Helm release revision the experiment belongs to (in a cluster).
    pub revision: Option<i64>,
}

/// A place an experiment is read from and its result written to.
pub trait Store {
    /// Read the experiment and the previous result.
    fn load(&self) -> impl Future<Output = Result<Stored, StoreError>> + Send;
    /// Write the result (called after every task, so a crash keeps what was done).
    fn save(
        &self,
        result: &ExperimentResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Write the first result of a loop. A store shared by several runners may give the
    /// loop another number (`numLoops`) and record an overlap in `result`; by default
    /// this is [`Store::save`].
    fn begin_loop(
        &self,
        result: &mut ExperimentResult,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.save(result)
    }
}
