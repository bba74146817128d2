//! A load worker (index >= 1): runs its share of every load task the coordinator runs, and
//! nothing else; it stores no result.

use std::sync::Arc;
use std::time::Instant;

use super::{scope, Workers};
use crate::engine::{prepare_with, EngineError, EngineOptions};
use crate::model::spec::TaskSpec;
use crate::model::Insights;
use crate::store::Store;
use crate::tasks::{Progress, TaskContext};

/// How a worker's loop ended.
#[derive(Debug, PartialEq)]
pub enum WorkerOutcome {
    /// Every load task the coordinator ran was run (or the coordinator ended the loop).
    Done,
    /// This worker failed; the coordinator fails the experiment naming it.
    Failed(String),
}

/// Read the experiment from `store` (nothing is written there) and run this worker's
/// share of its load tasks, in step with the coordinator.
pub async fn run_worker<S: Store>(
    store: &S,
    options: &EngineOptions,
    workers: Arc<Workers>,
    progress: &Progress,
) -> Result<WorkerOutcome, EngineError> {
    let stored = store.load().await.map_err(EngineError::Load)?;
    let plan = match prepare_with(&stored.experiment_yaml, options.strict) {
        Ok(p) => p,
        Err(e) => {
            let _ = workers.fail(&e.to_string()).await;
            return Err(e);
        }
    };
    let stop = async {
        match &options.stop {
            Some(rx) => {
                let mut rx = rx.clone();
                if rx.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        o = share_load(&plan, options, &workers, progress) => Ok(o),
        () = stop => {
            // Told to stop (the pod is deleted or evicted): the coordinator names this worker.
            let m = crate::engine::INTERRUPTED.to_string();
            let _ = workers.fail(&m).await;
            Ok(WorkerOutcome::Failed(m))
        }
    }
}

/// This worker's share of every load task the coordinator runs, in step with it.
async fn share_load(
    plan: &crate::engine::Plan,
    options: &EngineOptions,
    workers: &Arc<Workers>,
    progress: &Progress,
) -> WorkerOutcome {
    // The coordinator's first sign of life.
    let since = Instant::now();
    loop {
        match workers.read_control().await {
            Ok(Some(_)) => break,
            Ok(None) if since.elapsed() < workers.timeout => {}
            Ok(None) => {
                let m = format!(
                    "the coordinator (load worker 0) did not start within {}",
                    crate::model::GoDuration::from(workers.timeout)
                );
                let _ = workers.fail(&m).await;
                return WorkerOutcome::Failed(m);
            }
            Err(e) => {
                let m = format!("cannot read the coordinator's record: {e}");
                let _ = workers.fail(&m).await;
                return WorkerOutcome::Failed(m);
            }
        }
        tokio::time::sleep(workers.poll).await;
    }
    for task in &plan.experiment.tasks {
        if !matches!(task.spec, TaskSpec::Http(_) | TaskSpec::Grpc(_)) {
            continue;
        }
        // Wait for the coordinator's decision on this task.
        let runs = loop {
            match workers.read_control().await {
                Ok(Some(c)) => {
                    if let Some(runs) = c.tasks.get(&task.index) {
                        break *runs;
                    }
                    if c.ended.is_some() {
                        return WorkerOutcome::Done;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let m = format!("cannot read the coordinator's record: {e}");
                    let _ = workers.fail(&m).await;
                    return WorkerOutcome::Failed(m);
                }
            }
            tokio::time::sleep(workers.poll).await;
        };
        if !runs {
            continue;
        }
        let label = task.label();
        progress.set_task(format!(
            "load worker {} of {}: {label}",
            workers.index, workers.count
        ));
        tracing::info!(
            "{label}: started (load worker {} of {})",
            workers.index,
            workers.count
        );
        let mut scratch = Insights::default();
        let mut ctx = TaskContext {
            index: task.index,
            experiment_start: chrono::Utc::now(),
            namespace: options.namespace.clone(),
            insights: &mut scratch,
            progress,
            kube: options.kube.clone(),
        };
        let outcome = scope(Some(workers.clone()), task.index, task.spec.run(&mut ctx)).await;
        if let Err(e) = outcome {
            // Stopped because the coordinator ended the loop (it failed, or was stopped)?
            if let Ok(Some(c)) = workers.read_control().await {
                if let Some(why) = c.ended {
                    tracing::info!("{label}: the coordinator ended the loop ({why})");
                    return WorkerOutcome::Done;
                }
            }
            let m = format!("{label}: {e}");
            tracing::error!("{m}");
            if let Err(w) = workers.fail(&m).await {
                tracing::error!("cannot record the failure for the coordinator: {w}");
            }
            return WorkerOutcome::Failed(m);
        }
        tracing::info!("{label}: share done (load worker {})", workers.index);
    }
    WorkerOutcome::Done
}
