//! Local load workers (`--workers N`): this process's place among them, their command line,
//! the coordinator's loop and a worker's run.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use iter8::dist::worker::WorkerOutcome;
use iter8::dist::{Rendezvous, Workers};
use iter8::engine::{EngineError, EngineOptions};
use iter8::store::Store;
use iter8::tasks::Progress;

use super::{execute, LogFormat, Opts, EXIT_FAILED, EXIT_USAGE};

/// This process's place among local workers.
pub(super) fn local_workers(
    opts: &Opts,
    index: u32,
    run: &str,
    rendezvous: Rendezvous,
) -> Arc<Workers> {
    Arc::new(
        Workers::new(index, opts.workers, run, rendezvous).with_timing(
            opts.workers_timeout.as_duration(),
            Duration::from_millis(20),
            Duration::from_millis(200),
        ),
    )
}

/// The command line of a local worker process (its index is added per worker).
pub(super) fn worker_args(opts: &Opts, dir: &std::path::Path, run: &str) -> Vec<String> {
    let mut args = vec![
        "-f".to_string(),
        opts.file.display().to_string(),
        "--quiet".into(),
        "--log-format".into(),
        match opts.log_format {
            LogFormat::Json => "json",
            LogFormat::Human => "human",
            LogFormat::Auto => "auto",
        }
        .into(),
        "--workers".into(),
        opts.workers.to_string(),
        "--workers-timeout".into(),
        opts.workers_timeout.to_string(),
        "--worker-dir".into(),
        dir.display().to_string(),
        "--worker-run".into(),
        run.to_string(),
    ];
    if opts.strict {
        args.push("--strict".into());
    }
    args
}

/// The coordinator: the experiment as one runner runs it, whose load tasks share their load
/// with the workers; the workers are told when the loop ends, however it ends.
pub(super) async fn coordinate<S: Store>(
    store: &S,
    options: &EngineOptions,
    show_progress: bool,
    opts: &Opts,
    destination: &str,
    workers: &Workers,
) -> ExitCode {
    if let Err(e) = workers.begin().await {
        eprintln!("iter8-runner: cannot reach the load workers: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let code = execute(store, options, show_progress, opts, destination).await;
    if let Err(e) = workers.end("the coordinator's loop ended").await {
        tracing::warn!("cannot tell the load workers that the loop ended: {e}");
    }
    code
}

/// A load worker (index >= 1): its share of the load tasks, no result of its own.
pub(super) async fn run_worker<S: Store>(
    store: &S,
    options: &EngineOptions,
    workers: Arc<Workers>,
) -> ExitCode {
    let progress = Progress::default();
    let index = workers.index;
    match iter8::dist::worker::run_worker(store, options, workers, &progress).await {
        Ok(WorkerOutcome::Done) => ExitCode::SUCCESS,
        Ok(WorkerOutcome::Failed(m)) => {
            eprintln!("iter8-runner: load worker {index} failed: {m}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(e) => {
            eprintln!("iter8-runner: load worker {index}: {e}");
            match e {
                EngineError::Invalid(_) => ExitCode::from(EXIT_USAGE),
                _ => ExitCode::from(EXIT_FAILED),
            }
        }
    }
}
