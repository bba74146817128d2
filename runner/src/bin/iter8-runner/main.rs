//! `iter8-runner`: runs an experiment (the image's entrypoint; also local runs).
//!
//! Exit codes: 0 the experiment ran and no task failed; 1 a task failed (or the
//! experiment could not be read from the cluster); 2 bad input or usage (a missing,
//! unreadable, non-UTF-8 or too large experiment file, a directory, an invalid experiment,
//! an `-o` that is not a regular file, a `--continue` result that cannot count another
//! loop); 3 the experiment ran but its SLOs are not satisfied, only with
//! `--fail-on-slo-violation` (so a Job fails and `helm install --wait --wait-for-jobs`,
//! Argo CD or Flux see it; by default, as in Iter8, SLOs are a verdict in the result, not a
//! failure); 4 the result could not be stored (it is logged whole instead).
//!
//! `iter8-runner assert` checks a result as `iter8 assert` does (same arguments, output and
//! exit codes: 0 every condition holds, 1 one is false, 2 `--timeout` passed, 3 usage or read
//! error), so the runner image, which has no other binary, gates on a verdict: the chart's
//! `helm test` pod runs it. Reading a release needs only `get` on its Secret.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use iter8::dist::local::Children;
use iter8::dist::rendezvous::SecretRendezvous;
use iter8::dist::{Rendezvous, Workers};
use iter8::engine::{run_experiment, EngineError, EngineOptions};
use iter8::k8s::ClientOptions;
use iter8::store::file::FileStore;
use iter8::store::secret::{revision_from_env, SecretStore, RESULT_KEY};
use iter8::store::{Store, StoreError};
use iter8::tasks::Progress;

mod display;
mod workers;

use display::{init_logging, progress_display};
use workers::{coordinate, local_workers, run_worker, worker_args};

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_SLOS: u8 = 3;
const EXIT_NOT_STORED: u8 = 4;
/// `iter8-runner assert`: usage errors, as `iter8 assert`.
const EXIT_ASSERT_USAGE: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    Auto,
    Human,
    Json,
}

/// Run an Iter8 experiment: the tasks of `spec:` in order; the result is written after
/// every task.
#[derive(Parser, Debug)]
#[command(
    name = "iter8-runner",
    version,
    long_version = iter8::LONG_VERSION,
    about,
    args_conflicts_with_subcommands = true
)]
struct Opts {
    #[command(subcommand)]
    command: Option<RunnerCommand>,
    /// The experiment file (YAML with a top-level `spec:` task list).
    #[arg(short = 'f', long = "file", default_value = "experiment.yaml")]
    file: PathBuf,
    /// Where to write the result (YAML).
    #[arg(short = 'o', long = "output", default_value = "result.yaml")]
    output: PathBuf,
    /// Continue the result in --output as the next loop (numLoops + 1) instead of
    /// starting fresh.
    #[arg(long = "continue")]
    continue_previous: bool,
    /// No progress display; only warnings and errors are logged (RUST_LOG still wins).
    #[arg(short, long)]
    quiet: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    /// Namespace of the experiment (in a cluster; the chart sets POD_NAMESPACE).
    #[arg(short = 'n', long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Helm release whose Secret holds the experiment and the result: cluster mode (the
    /// chart sets ITER8_RELEASE). The release revision comes from ITER8_REVISION.
    #[arg(long, env = "ITER8_RELEASE", requires = "namespace")]
    release: Option<String>,
    /// Kubeconfig file in cluster mode (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context in cluster mode (default: the current context).
    #[arg(long, visible_alias = "kube-context")]
    context: Option<String>,
    /// Push the verdict metrics to this Prometheus Pushgateway at the end of the loop
    /// (group job=iter8, namespace, release; e.g. http://pushgateway.monitoring:9091). The
    /// chart sets it from metrics.pushgateway.url. A failed push is logged, not fatal.
    #[arg(long, env = "ITER8_PUSHGATEWAY_URL", value_name = "URL")]
    pushgateway: Option<String>,
    /// Unknown keys in the experiment are errors (exit 2, nothing runs) instead of
    /// warnings (logged and listed in the result's `warnings`; Iter8 ignored them). The
    /// chart sets it from `strict: true`.
    #[arg(long, env = "ITER8_STRICT")]
    strict: bool,
    /// Exit 3 when the experiment ran but its SLOs are not satisfied (the chart sets it from
    /// failOnSLOViolation). Default: exit 0, as Iter8 does.
    #[arg(long, env = "ITER8_FAIL_ON_SLO_VIOLATION")]
    fail_on_slo_violation: bool,
    /// Share the load of the `http` and `grpc` tasks among N workers and merge their results
    /// exactly. Locally: this process and N-1 worker processes it starts. In a cluster (the
    /// chart sets ITER8_LOAD_WORKERS from distributedLoad.pods): the N pods of an Indexed Job,
    /// each knowing its index from JOB_COMPLETION_INDEX; pod 0 runs the other tasks and
    /// stores the result.
    #[arg(long, env = "ITER8_LOAD_WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS as i64))]
    workers: u32,
    /// How long the load workers wait for each other: for every worker at the start of a
    /// load, for their partial results after it, for the coordinator's first sign of life.
    #[arg(long, env = "ITER8_LOAD_WORKERS_TIMEOUT", default_value = "2m")]
    workers_timeout: iter8::model::GoDuration,
    /// This worker's index (0 coordinates); set by the Job (Indexed) or by the coordinator.
    #[arg(long, env = "JOB_COMPLETION_INDEX", hide = true)]
    worker_index: Option<u32>,
    /// The run's identity shared by its workers (the Job's name; set by the chart).
    #[arg(long, env = "ITER8_JOB_NAME", hide = true)]
    worker_run: Option<String>,
    /// Local workers: the directory where they meet (set by the coordinator).
    #[arg(long, hide = true)]
    worker_dir: Option<PathBuf>,
}

/// Most workers one run may have (the chart's schema says the same): every worker's
/// record (about 13 KiB for a realistic latency spread) sits in the release's Secret
/// (1 MiB in all) while the coordinator merges them.
const MAX_WORKERS: u32 = 50;

#[derive(Subcommand, Debug)]
enum RunnerCommand {
    /// Check conditions on an experiment's result, as `iter8 assert` (the chart's `helm test`
    /// runs it); exit 0 when all hold, 1 when one is false, 2 when --timeout passed first, 3
    /// on usage or read errors. The verdict counts as final once the result's loop is over.
    Assert(iter8::cli::AssertArgs),
}

impl Opts {
    /// The Pushgateway target: namespace and release of the experiment (empty: from the
    /// experiment's metadata).
    fn push_target(&self) -> Option<iter8::prometheus::PushTarget> {
        let url = self.pushgateway.as_deref().filter(|u| !u.is_empty())?;
        Some(iter8::prometheus::PushTarget {
            url: url.to_string(),
            namespace: self.namespace.clone().unwrap_or_default(),
            release: self.release.clone().unwrap_or_default(),
        })
    }
}

fn main() -> ExitCode {
    // A child started by the runner itself to evaluate one jq expression under a memory
    // limit (tasks/isolated.rs).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == iter8::tasks::isolated::EVAL_JQ_ARG)
    {
        return ExitCode::from(iter8::tasks::isolated::evaluator_main());
    }
    if let Ok(exe) = std::env::current_exe() {
        iter8::tasks::isolated::enable(exe);
    }
    let opts = match Opts::try_parse() {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::SUCCESS; // --help, --version
            }
            // `assert` keeps iter8 assert's code for usage errors (2 means a timeout there)
            let assert = std::env::args_os().nth(1).is_some_and(|a| a == "assert");
            return ExitCode::from(if assert {
                EXIT_ASSERT_USAGE
            } else {
                EXIT_USAGE
            });
        }
    };
    if let Some(RunnerCommand::Assert(args)) = &opts.command {
        // No async runtime here: the reader runs its own.
        let code = iter8::cli::assert_with(
            args,
            &iter8::cli::SecretOnlyReader,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
        return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILED));
    }
    let tty = std::io::stderr().is_terminal();
    let show_progress = tty && !opts.quiet;
    init_logging(&opts, tty, show_progress);
    // Iter8 v0.15 chart values that are ignored or have a safer form (the chart says which).
    if let Ok(notes) = std::env::var("ITER8_VALUES_NOTES") {
        for note in notes.split("; ").filter(|n| !n.trim().is_empty()) {
            tracing::warn!("chart values: {note}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iter8-runner: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    runtime.block_on(async {
        if let (Some(release), Some(namespace)) = (&opts.release, &opts.namespace) {
            return run_in_cluster(&opts, namespace, release, show_progress).await;
        }
        let store = FileStore::new(&opts.file, &opts.output, opts.continue_previous);
        let mut options = EngineOptions {
            namespace: opts.namespace.clone(),
            kube: None,
            stop: Some(stop_on_signals()),
            pushgateway: opts.push_target(),
            strict: opts.strict,
            workers: None,
        };
        if opts.workers > 1 {
            if let Some(index) = opts.worker_index.filter(|i| *i > 0) {
                // A worker process started by the coordinator.
                let (Some(dir), Some(run)) = (&opts.worker_dir, &opts.worker_run) else {
                    eprintln!("iter8-runner: --worker-index needs --worker-dir and --worker-run (the coordinator sets them)");
                    return ExitCode::from(EXIT_USAGE);
                };
                let workers = local_workers(&opts, index, run, Rendezvous::Dir(dir.clone()));
                return run_worker(&store, &options, workers).await;
            }
            let run = iter8::dist::local::run_token();
            let dir = match iter8::dist::local::make_dir(&run) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("iter8-runner: cannot make the load workers' directory: {e}");
                    return ExitCode::from(EXIT_FAILED);
                }
            };
            let workers = local_workers(&opts, 0, &run, Rendezvous::Dir(dir.clone()));
            let exe = match std::env::current_exe() {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("iter8-runner: cannot find this program to start load workers: {e}");
                    return ExitCode::from(EXIT_FAILED);
                }
            };
            let children = Children::spawn(&exe, &worker_args(&opts, &dir, &run), opts.workers, &dir, &run);
            options.workers = Some(workers.clone());
            let code = coordinate(&store, &options, show_progress, &opts, &opts.output.display().to_string(), &workers).await;
            children.finish(Duration::from_secs(10)).await;
            return code;
        }
        execute(
            &store,
            &options,
            show_progress,
            &opts,
            &opts.output.display().to_string(),
        )
        .await
    })
}

/// Cluster mode: the experiment and the result live in the release's Secret.
async fn run_in_cluster(
    opts: &Opts,
    namespace: &str,
    release: &str,
    show_progress: bool,
) -> ExitCode {
    let client_opts = ClientOptions {
        kubeconfig: opts.kubeconfig.clone(),
        context: opts.context.clone(),
    };
    let client = match iter8::k8s::client(&client_opts).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iter8-runner: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let revision = match revision_from_env() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iter8-runner: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let store = SecretStore::new(client.clone(), namespace, release, revision);
    let mut options = EngineOptions {
        namespace: Some(namespace.to_string()),
        kube: Some(client.clone()),
        stop: Some(stop_on_signals()),
        pushgateway: opts.push_target(),
        strict: opts.strict,
        workers: None,
    };
    let destination = format!("secret {namespace}/{release} (key {RESULT_KEY})");
    if opts.workers > 1 {
        // The pods of an Indexed Job, meeting in the release's Secret.
        let Some(index) = opts.worker_index else {
            eprintln!(
                "iter8-runner: ITER8_LOAD_WORKERS={} but JOB_COMPLETION_INDEX is unset: the Job must be Indexed (completionMode: Indexed; the chart renders it so with distributedLoad.pods)",
                opts.workers
            );
            return ExitCode::from(EXIT_USAGE);
        };
        if index >= opts.workers {
            eprintln!(
                "iter8-runner: JOB_COMPLETION_INDEX={index} is not below ITER8_LOAD_WORKERS={}",
                opts.workers
            );
            return ExitCode::from(EXIT_USAGE);
        }
        let Some(run) = opts.worker_run.as_deref().filter(|r| !r.is_empty()) else {
            eprintln!("iter8-runner: ITER8_LOAD_WORKERS={} but ITER8_JOB_NAME (the Job's name, shared by its pods) is unset; the chart sets it", opts.workers);
            return ExitCode::from(EXIT_USAGE);
        };
        let rendezvous =
            Rendezvous::Secret(Box::new(SecretRendezvous::new(client, namespace, release)));
        let workers = Arc::new(
            Workers::new(index, opts.workers, run, rendezvous).with_timing(
                opts.workers_timeout.as_duration(),
                Duration::from_millis(250),
                Duration::from_secs(1),
            ),
        );
        if index > 0 {
            return run_worker(&store, &options, workers).await;
        }
        options.workers = Some(workers.clone());
        return coordinate(
            &store,
            &options,
            show_progress,
            opts,
            &destination,
            &workers,
        )
        .await;
    }
    execute(&store, &options, show_progress, opts, &destination).await
}

/// A channel that turns `true` on SIGINT or SIGTERM (Kubernetes stops a pod with SIGTERM):
/// the engine then records the interruption in the result before exiting.
fn stop_on_signals() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    // Register the handlers now (not in the spawned task), so a signal that arrives as soon
    // as the run starts is already ours.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        tokio::spawn(async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    tracing::warn!(
                        "cannot listen for SIGTERM/SIGINT; an interruption will not be recorded"
                    );
                    return;
                }
            }
            tracing::warn!("asked to stop: recording the interruption in the result");
            let _ = tx.send(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
        }
    });
    rx
}

/// Run the experiment through any store and turn the outcome into an exit code.
async fn execute<S: Store>(
    store: &S,
    options: &EngineOptions,
    show_progress: bool,
    opts: &Opts,
    destination: &str,
) -> ExitCode {
    let quiet = opts.quiet;
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let display = show_progress.then(|| {
        let (progress, stop) = (progress.clone(), stop.clone());
        std::thread::spawn(move || progress_display(&progress, &stop))
    });
    let outcome = run_experiment(store, options, &progress).await;
    stop.store(true, Ordering::Relaxed);
    if let Some(handle) = display {
        let _ = handle.join();
    }
    match outcome {
        Ok(outcome) => {
            let r = &outcome.result;
            if let Some(f) = r.failed_task.as_ref().filter(|_| r.failure) {
                eprintln!(
                    "iter8-runner: experiment failed: task {} ({}): {}; result in {destination}",
                    f.index + 1,
                    f.task,
                    f.message
                );
                ExitCode::from(EXIT_FAILED)
            } else if opts.fail_on_slo_violation && !r.slos_satisfied() {
                eprintln!(
                    "iter8-runner: SLOs not satisfied (--fail-on-slo-violation): see `iter8 assert -c slos`; result in {destination}"
                );
                ExitCode::from(EXIT_SLOS)
            } else {
                if !quiet {
                    eprintln!(
                        "iter8-runner: experiment completed ({}/{} tasks, loop {}); result in {destination}",
                        r.num_completed_tasks, r.num_tasks, r.num_loops
                    );
                }
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("iter8-runner: {e}");
            match e {
                EngineError::Invalid(_) => ExitCode::from(EXIT_USAGE),
                EngineError::Save(_) => ExitCode::from(EXIT_NOT_STORED),
                EngineError::Load(StoreError::Io(_)) => ExitCode::from(EXIT_FAILED),
                EngineError::Load(_) => ExitCode::from(EXIT_USAGE),
            }
        }
    }
}
