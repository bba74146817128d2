//! The task engine: validate everything first, then run the tasks in order, saving the
//! result through the [`Store`] after every task.
//!
//! - A task whose `if:` is false is skipped and counts as completed.
//! - A failing task sets `failure` and `failedTask`; later tasks do not run.
//! - Loops: a stored previous result is continued (`numLoops` + 1, `numCompletedTasks`
//!   back to 0, insights carried over: values appended per loop up to
//!   `MAX_LOOP_HISTORY`, histograms merged).

use crate::model::condition::Condition;
use crate::model::spec::{parse_experiment_with, Experiment, SpecError, Task, TaskSpec};
use crate::model::{ExperimentResult, FailedTask, Insights};
use crate::store::{Store, StoreError};
use crate::tasks::notify::Summary;
use crate::tasks::{Progress, TaskContext, TaskError};

/// Why an experiment could not be run at all (as opposed to a task failing, which is a
/// result).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The experiment could not be read from the store.
    #[error("cannot read the experiment: {0}")]
    Load(StoreError),
    /// The experiment document is wrong (one line per problem).
    #[error("{}", join(.0, "\n"))]
    Invalid(Vec<Problem>),
    /// The result could not be written.
    #[error("cannot write the result: {0}")]
    Save(StoreError),
}

/// One problem found before the run: which task (if any) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Zero-based index of the task, `None` for the document as a whole.
    pub index: Option<usize>,
    /// The task's name (`experiment` for the document as a whole).
    pub task: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "task {} ({}): {}", i + 1, self.task, self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn join(problems: &[Problem], sep: &str) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

impl From<SpecError> for Problem {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::Task {
                index,
                name,
                message,
            } => Problem {
                index: Some(index),
                task: name,
                message,
            },
            SpecError::Document(message) => Problem {
                index: None,
                task: "experiment".into(),
                message,
            },
        }
    }
}

/// Settings of a run that do not come from the experiment.
#[derive(Clone, Default)]
pub struct EngineOptions {
    /// The experiment's namespace (in a cluster).
    pub namespace: Option<String>,
    /// A Kubernetes client, in a cluster.
    pub kube: Option<kube::Client>,
    /// Becomes `true` when the run must stop (SIGINT / SIGTERM): the running task is
    /// abandoned and the result records the interruption as its failure.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Push the verdict metrics to this Pushgateway at the end of the loop. An empty
    /// namespace / release is taken from the experiment's `metadata` (else `default` /
    /// `local`). A failed push is logged; it does not fail the experiment.
    pub pushgateway: Option<crate::prometheus::PushTarget>,
    /// Unknown keys in the experiment are errors (exit 2) instead of warnings.
    pub strict: bool,
    /// Distributed load: this runner is the coordinator (worker 0) of these workers; its
    /// load tasks share their load with them and record the merged result ([`crate::dist`]).
    pub workers: Option<std::sync::Arc<crate::dist::Workers>>,
}

/// The failure message of an interrupted task.
pub const INTERRUPTED: &str = "interrupted (the runner was asked to stop)";

async fn stopped(stop: &Option<tokio::sync::watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            let mut rx = rx.clone();
            if rx.wait_for(|s| *s).await.is_err() {
                // Sender gone without a stop: never stop.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// The failure message of an interrupted task; in a distributed run, with the load workers
/// that failed (a failed pod fails the Job, which stops the coordinator's pod: the reason
/// is the failed worker, named).
async fn interrupted(options: &EngineOptions) -> String {
    match &options.workers {
        Some(w) if w.count > 1 => match w.failed_workers().await {
            Some(why) => format!("{INTERRUPTED}; {why}"),
            None => INTERRUPTED.to_string(),
        },
        _ => INTERRUPTED.to_string(),
    }
}

/// A validated experiment, ready to run.
#[derive(Debug)]
pub struct Plan {
    pub experiment: Experiment,
    conditions: Vec<Option<Condition>>,
}

impl Plan {
    pub fn num_tasks(&self) -> usize {
        self.experiment.tasks.len()
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub result: ExperimentResult,
}

impl Outcome {
    /// True when a task failed (the process should exit non-zero).
    pub fn failed(&self) -> bool {
        self.result.failure
    }
}

/// Parse and validate an experiment document: every task's inputs, every `if:` condition,
/// and every metric an `assess` refers to. All problems are reported at once. Unknown keys
/// are ignored with a warning (see [`prepare_with`]).
pub fn prepare(yaml: &str) -> Result<Plan, EngineError> {
    prepare_with(yaml, false)
}

/// [`prepare`]; `strict`: unknown keys are problems instead of warnings.
pub fn prepare_with(yaml: &str, strict: bool) -> Result<Plan, EngineError> {
    let experiment =
        parse_experiment_with(yaml, strict).map_err(|e| EngineError::Invalid(vec![e.into()]))?;
    let mut problems = Vec::new();
    let mut conditions = Vec::with_capacity(experiment.tasks.len());
    let mut prefixes: Vec<String> = Vec::new();
    for task in &experiment.tasks {
        if let Err(e) = task.spec.validate() {
            problems.push(task_problem(task, e));
        } else if let TaskSpec::Assess(a) = &task.spec {
            if let Err(e) = a.check_metrics(&prefixes) {
                problems.push(task_problem(task, e));
            }
        }
        for p in task.spec.metric_prefixes() {
            if !prefixes.contains(&p) {
                prefixes.push(p);
            }
        }
        conditions.push(match &task.condition {
            None => None,
            Some(src) => match Condition::parse(src) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(Problem {
                        index: Some(task.index),
                        task: task.name().to_string(),
                        message: format!("if: {e}"),
                    });
                    None
                }
            },
        });
    }
    if problems.is_empty() {
        Ok(Plan {
            experiment,
            conditions,
        })
    } else {
        Err(EngineError::Invalid(problems))
    }
}

fn task_problem(task: &Task, e: TaskError) -> Problem {
    let message = e.to_string();
    // Field paths from tasks may or may not start with `with.`; `run` has no `with`.
    let message = match &e {
        TaskError::Invalid { field, .. }
            if !field.starts_with("with") && !matches!(task.spec, TaskSpec::Run(_)) =>
        {
            format!("with.{message}")
        }
        _ => message,
    };
    Problem {
        index: Some(task.index),
        task: task.name().to_string(),
        message,
    }
}

/// The result a new loop starts from: the previous one continued, or a fresh one.
pub fn start_loop(
    previous: Option<ExperimentResult>,
    num_tasks: usize,
    revision: Option<i64>,
) -> ExperimentResult {
    let continued = previous.filter(|p| match (p.revision, revision) {
        // `helm upgrade` (a new revision) starts a fresh result.
        (Some(a), Some(b)) => a == b,
        _ => true,
    });
    let mut result = match continued {
        Some(mut p) => {
            p.num_completed_tasks = 0;
            p.failure = false;
            p.failed_task = None;
            p.iter8_version = crate::VERSION.to_string();
            if let Some(i) = p.insights.as_mut() {
                // The journal records what this loop adds.
                i.journal = Default::default();
            }
            p
        }
        None => ExperimentResult::new(num_tasks),
    };
    result.num_tasks = num_tasks;
    // Saturates: a store refuses to continue a result at the maximum (`--continue`).
    result.num_loops = result.num_loops.saturating_add(1);
    if revision.is_some() {
        result.revision = revision;
    }
    result
}

/// Read the experiment from the store, run one loop and save the result after every task.
pub async fn run_experiment<S: Store>(
    store: &S,
    options: &EngineOptions,
    progress: &Progress,
) -> Result<Outcome, EngineError> {
    let stored = store.load().await.map_err(EngineError::Load)?;
    let plan = match prepare_with(&stored.experiment_yaml, options.strict) {
        Ok(plan) => plan,
        Err(EngineError::Invalid(problems)) => {
            // Record why nothing ran, so `iter8 assert` / `report` can say it (in a
            // cluster the result is all a user sees besides the pod's log).
            let mut result = start_loop(stored.previous, 0, stored.revision);
            result.failure = true;
            if let Some(first) = problems.first() {
                result.failed_task = Some(FailedTask {
                    index: first.index.unwrap_or(0),
                    task: first.task.clone(),
                    message: if problems.len() == 1 {
                        first.message.clone()
                    } else {
                        format!("invalid experiment: {}", join(&problems, "; "))
                    },
                });
            }
            result.record_finished_loop();
            if let Err(e) = store.begin_loop(&mut result).await {
                tracing::warn!("cannot record the invalid experiment in the result: {e}");
            }
            return Err(EngineError::Invalid(problems));
        }
        Err(e) => return Err(e),
    };
    let result = start_loop(stored.previous, plan.num_tasks(), stored.revision);
    run_plan(&plan, result, store, options, progress).await
}

/// Run the tasks of a validated plan, starting from `result`.
pub async fn run_plan<S: Store>(
    plan: &Plan,
    mut result: ExperimentResult,
    store: &S,
    options: &EngineOptions,
    progress: &Progress,
) -> Result<Outcome, EngineError> {
    let n = plan.num_tasks();
    for w in &plan.experiment.warnings {
        tracing::warn!("{w}");
    }
    result.warnings.clone_from(&plan.experiment.warnings);
    store
        .begin_loop(&mut result)
        .await
        .map_err(EngineError::Save)?;
    tracing::info!(
        tasks = n,
        loop_number = result.num_loops,
        "experiment started (loop {})",
        result.num_loops
    );
    for (task, condition) in plan.experiment.tasks.iter().zip(&plan.conditions) {
        let label = task.label();
        progress.set_task(format!("task {}/{n} {}", task.index + 1, task.name()));
        let runs = condition.as_ref().is_none_or(|c| c.eval(&result));
        if let Some(w) = options.workers.as_ref().filter(|w| w.count > 1) {
            if matches!(task.spec, TaskSpec::Http(_) | TaskSpec::Grpc(_)) {
                // The load workers wait for this decision before they run their share.
                if let Err(e) = w.decide_task(task.index, runs).await {
                    tracing::warn!("{label}: cannot tell the load workers: {e}");
                }
            }
        }
        if let Some(c) = condition {
            if !runs {
                tracing::info!("{label}: skipped (if: {} is false)", c.source());
                result.num_completed_tasks += 1;
                if result.finished() {
                    result.record_finished_loop();
                }
                store.save(&result).await.map_err(EngineError::Save)?;
                continue;
            }
        }
        tracing::info!("{label}: started");
        let started = std::time::Instant::now();
        // notify reports on the whole result (loops, failure), not only the insights.
        let summary = match &task.spec {
            TaskSpec::Notify(_) => Some(Summary::from_result(&result)),
            _ => None,
        };
        let outcome = {
            let experiment_start = result.start_time;
            let mut ctx = TaskContext {
                index: task.index,
                experiment_start,
                namespace: options.namespace.clone(),
                insights: result.insights_mut(),
                progress,
                kube: options.kube.clone(),
            };
            tokio::select! {
                r = async {
                    match (&task.spec, &summary) {
                        (TaskSpec::Notify(n), Some(s)) => n.run_with_summary(s).await,
                        _ => {
                            let workers = options.workers.clone();
                            crate::dist::scope(workers, task.index, task.spec.run(&mut ctx)).await
                        }
                    }
                } => r,
                () = stopped(&options.stop) => Err(TaskError::Failed(interrupted(options).await)),
            }
        };
        // Keep `insights` out of the result until a task records something.
        if result.insights.as_ref() == Some(&Insights::default()) {
            result.insights = None;
        }
        match outcome {
            Ok(()) => {
                result.num_completed_tasks += 1;
                tracing::info!(
                    "{label}: completed in {:.3}s",
                    started.elapsed().as_secs_f64()
                );
                if result.finished() {
                    result.record_finished_loop();
                }
                store.save(&result).await.map_err(EngineError::Save)?;
            }
            Err(e) => {
                let problem = task_problem(task, e);
                tracing::error!("{problem}");
                result.failure = true;
                result.failed_task = Some(FailedTask {
                    index: task.index,
                    task: problem.task,
                    message: problem.message,
                });
                result.record_finished_loop();
                store.save(&result).await.map_err(EngineError::Save)?;
                break;
            }
        }
    }
    if let Some(target) = &options.pushgateway {
        crate::prometheus::push_loop(target, &plan.experiment.metadata, &result).await;
    }
    Ok(Outcome { result })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::{HistBucket, Histogram, MetricMeta, MetricType};
    use crate::store::Stored;

    /// A store that records every save.
    struct MemStore {
        yaml: String,
        previous: Option<ExperimentResult>,
        revision: Option<i64>,
        saves: Mutex<Vec<ExperimentResult>>,
    }

    impl MemStore {
        fn new(yaml: &str) -> Self {
            Self {
                yaml: yaml.into(),
                previous: None,
                revision: None,
                saves: Mutex::new(Vec::new()),
            }
        }
        fn saves(&self) -> Vec<ExperimentResult> {
            self.saves.lock().expect("lock").clone()
        }
    }

    impl Store for MemStore {
        async fn load(&self) -> Result<Stored, StoreError> {
            Ok(Stored {
                experiment_yaml: self.yaml.clone(),
                previous: self.previous.clone(),
                revision: self.revision,
            })
        }
        async fn save(&self, result: &ExperimentResult) -> Result<(), StoreError> {
            self.saves.lock().expect("lock").push(result.clone());
            Ok(())
        }
    }

    struct FailingLoad;
    impl Store for FailingLoad {
        async fn load(&self) -> Result<Stored, StoreError> {
            Err(StoreError::NotFound("experiment file x.yaml".into()))
        }
        async fn save(&self, _: &ExperimentResult) -> Result<(), StoreError> {
            Ok(())
        }
    }

    async fn run(store: &MemStore) -> Outcome {
        run_experiment(store, &EngineOptions::default(), &Progress::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn false_if_skips_but_counts_as_completed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let yaml = format!(
            "spec:\n- run: 'true'\n- run: touch '{}'\n  if: 'false'\n- run: touch '{}'\n  if: Result.NumLoops == 1 && NoFailure()\n",
            a.display(),
            b.display()
        );
        let store = MemStore::new(&yaml);
        let out = run(&store).await;
        assert!(!out.failed());
        assert!(!a.exists(), "the task with a false condition ran");
        assert!(b.exists(), "the task with a true condition did not run");
        assert_eq!(out.result.num_completed_tasks, 3);
        assert_eq!(out.result.num_tasks, 3);
        assert!(out.result.completed());
        assert_eq!(out.result.num_loops, 1);
        assert!(out.result.insights.is_none());
    }

    #[tokio::test]
    async fn result_is_saved_after_every_task() {
        let store =
            MemStore::new("spec:\n- run: 'true'\n- run: 'true'\n  if: 'false'\n- run: 'true'\n");
        let out = run(&store).await;
        let saves = store.saves();
        assert_eq!(
            saves
                .iter()
                .map(|r| r.num_completed_tasks)
                .collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert!(saves.iter().all(|r| r.num_loops == 1 && !r.failure));
        assert_eq!(saves.last(), Some(&out.result));
    }

    #[tokio::test]
    async fn a_failing_task_stops_the_loop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let later = dir.path().join("later");
        let yaml = format!(
            "spec:\n- run: 'true'\n- run: echo boom >&2; exit 7\n- run: touch '{}'\n",
            later.display()
        );
        let store = MemStore::new(&yaml);
        let out = run(&store).await;
        assert!(out.failed());
        assert!(!later.exists(), "a task after the failure ran");
        assert_eq!(out.result.num_completed_tasks, 1);
        assert!(!out.result.completed());
        assert_eq!(
            out.result.failed_task,
            Some(FailedTask {
                index: 1,
                task: "run".into(),
                message: "the script exited with code 7; stderr: boom".into(),
            })
        );
        let saves = store.saves();
        assert_eq!(saves.len(), 3, "start, task 1, failed task 2");
        assert!(saves[2].failure);
    }

    #[tokio::test]
    async fn a_new_loop_continues_the_previous_result() {
        let mut prev = ExperimentResult::new(2);
        prev.num_loops = 2;
        prev.num_completed_tasks = 1;
        prev.failure = true;
        prev.failed_task = Some(FailedTask {
            index: 1,
            task: "run".into(),
            message: "old".into(),
        });
        let start = prev.start_time;
        let i = prev.insights_mut();
        i.ensure_versions(&["v1".into()]);
        i.register_metric(
            "http/latency-mean",
            MetricMeta::new(MetricType::Gauge, "mean latency", Some("msec")),
        );
        i.record(0, "http/latency-mean", 12.0);
        let h = Histogram {
            buckets: vec![HistBucket {
                lower: 1.0,
                upper: 2.0,
                count: 3,
            }],
            count: 3,
            sum: 4.5,
            sum_sq: 7.0,
            min: 1.0,
            max: 1.9,
        };
        i.record_histogram(0, "http/latency", &h);
        let mut store =
            MemStore::new("spec:\n- run: 'true'\n- run: 'true'\n  if: Result.NumLoops == 3\n");
        store.previous = Some(prev.clone());
        let out = run(&store).await;
        let r = &out.result;
        assert_eq!(r.num_loops, 3);
        assert_eq!(r.num_completed_tasks, 2);
        assert!(!r.failure && r.failed_task.is_none());
        assert_eq!(r.start_time, start);
        assert_eq!(r.insights, prev.insights, "insights carry over");
        // Every save of the new loop starts from numCompletedTasks 0.
        assert_eq!(store.saves()[0].num_completed_tasks, 0);
        assert_eq!(store.saves()[0].num_loops, 3);

        // A different Helm revision starts fresh.
        prev.revision = Some(1);
        store.previous = Some(prev);
        store.revision = Some(2);
        store.saves.lock().expect("lock").clear();
        let out = run(&store).await;
        assert_eq!(out.result.num_loops, 1);
        assert_eq!(out.result.revision, Some(2));
        assert!(out.result.insights.is_none());
        // num_completed: the second task's `if` (NumLoops == 3) is false: skipped, counted.
        assert_eq!(out.result.num_completed_tasks, 2);
    }

    #[tokio::test]
    async fn assess_in_a_loop_and_slos_conditions() {
        // `prepare` refuses an assess without a metric producer, so build the plan with the
        // metrics a previous loop left behind (as a CronJob loop would).
        let yaml = "spec:\n- task: assess\n  with:\n    SLOs:\n      upper:\n        http/latency-mean: 10\n- run: exit 1\n  if: SLOs()\n- run: 'true'\n  if: not SLOs()\n";
        let experiment = crate::model::spec::parse_experiment(yaml).expect("parses");
        let conditions = experiment
            .tasks
            .iter()
            .map(|t| {
                t.condition
                    .as_deref()
                    .map(|c| Condition::parse(c).expect("cond"))
            })
            .collect();
        let plan = Plan {
            experiment,
            conditions,
        };
        let mut prev = ExperimentResult::new(3);
        prev.insights_mut()
            .ensure_versions(&["v1".into(), "v2".into()]);
        prev.insights_mut().record(0, "http/latency-mean", 5.0);
        prev.insights_mut().record(1, "http/latency-mean", 50.0);
        let result = start_loop(Some(prev), 3, None);
        let store = MemStore::new(yaml);
        let out = run_plan(
            &plan,
            result,
            &store,
            &EngineOptions::default(),
            &Progress::default(),
        )
        .await
        .expect("runs");
        let i = out.result.insights.as_ref().expect("insights");
        assert_eq!(
            i.slos_satisfied.as_ref().expect("sat").upper,
            vec![vec![true, false]]
        );
        // SLOs() is false, so `exit 1` was skipped and the experiment did not fail.
        assert!(!out.failed());
        assert_eq!(out.result.num_completed_tasks, 3);
        assert!(!out.result.slos_satisfied());
    }

    #[test]
    fn every_problem_is_reported_before_anything_runs() {
        let yaml = "spec:\n- run: ' '\n- task: assess\n  with:\n    SLOs:\n      upper:\n        http/latency-mean: 10\n- run: 'true'\n  if: SLOs( and\n";
        let Err(EngineError::Invalid(problems)) = prepare(yaml) else {
            panic!("expected invalid")
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[1].index, Some(1));
        assert_eq!(problems[1].task, "assess");
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            problems[0].starts_with("task 1 (run): run: the script is empty"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].starts_with("task 2 (assess): with.SLOs.upper[0]: no earlier task produces metric http/latency-mean"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].starts_with("task 3 (run): if: cannot parse \"SLOs( and\""),
            "{}",
            problems[2]
        );
        let Err(EngineError::Invalid(p)) = prepare("spec:\n- task: nope\n") else {
            panic!("expected invalid")
        };
        assert_eq!(p.len(), 1);
        assert!(p[0]
            .to_string()
            .starts_with("task 1 (nope): unknown task `nope`"));
    }

    #[tokio::test]
    async fn invalid_experiment_saves_nothing_and_load_errors_surface() {
        let store = MemStore::new("spec:\n- run: 'true'\n  if: Result.Nope\n");
        let e = run_experiment(&store, &EngineOptions::default(), &Progress::default())
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Invalid(_)));
        // The result records why nothing ran.
        let saves = store.saves();
        assert_eq!(saves.len(), 1);
        assert!(saves[0].failure);
        assert_eq!(saves[0].num_completed_tasks, 0);
        let f = saves[0].failed_task.clone().expect("failed task");
        assert_eq!((f.index, f.task.as_str()), (0, "run"));
        assert!(
            f.message.starts_with("if: cannot parse \"Result.Nope\""),
            "{}",
            f.message
        );
        // A document error has no task.
        let store = MemStore::new("spec: []\n");
        assert!(
            run_experiment(&store, &EngineOptions::default(), &Progress::default())
                .await
                .is_err()
        );
        let f = store.saves()[0].failed_task.clone().expect("failed task");
        assert_eq!(f.task, "experiment");
        assert!(f.message.starts_with("spec: the task list is empty"));
        let e = run_experiment(
            &FailingLoad,
            &EngineOptions::default(),
            &Progress::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read the experiment: not found: experiment file x.yaml"
        );
    }

    #[tokio::test]
    async fn a_stop_request_interrupts_the_running_task_and_is_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let later = dir.path().join("later");
        let yaml = format!(
            "spec:\n- run: sleep 30\n- run: touch '{}'\n",
            later.display()
        );
        let store = MemStore::new(&yaml);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let options = EngineOptions {
            stop: Some(rx),
            ..EngineOptions::default()
        };
        let progress = Progress::default();
        let run = run_experiment(&store, &options, &progress);
        let stop = async {
            // Stop once the first task has started (the start of the loop was saved).
            while store.saves().is_empty() {
                tokio::task::yield_now().await;
            }
            tx.send(true).expect("send");
        };
        let (out, ()) = tokio::join!(run, stop);
        let out = out.expect("runs");
        assert!(out.failed());
        let f = out.result.failed_task.expect("failed task");
        assert_eq!((f.index, f.message.as_str()), (0, INTERRUPTED));
        assert!(!later.exists());
        assert_eq!(store.saves().last().map(|r| r.failure), Some(true));
    }

    #[test]
    fn tasks_report_progress_by_name() {
        let p = Progress::default();
        p.set_task("task 1/2 run");
        assert_eq!(p.task(), "task 1/2 run");
    }
}
