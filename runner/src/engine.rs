//! The task engine: validate everything first, then run the tasks in order, saving the
//! result through the [`Store`] after every task.
//!
//! - A task whose `if:` is false is skipped and counts as completed.
//! - A failing task sets `failure` and `failedTask`; later tasks do not run.
//! - Loops: a stored previous result is continued (`numLoops` + 1, `numCompletedTasks`
//!   back to 0, insights carried over: values appended per loop up to
//!   `MAX_LOOP_HISTORY`, histograms merged).

use crate::model::condition::Condition;
use crate::model::spec::{parse_experiment, Experiment, Task, TaskSpec};
use crate::model::{ExperimentResult, FailedTask, Insights};
use crate::store::{Store, StoreError};
use crate::tasks::{Progress, TaskContext, TaskError};

/// Why an experiment could not be run at all (as opposed to a task failing, which is a
/// result).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The experiment could not be read from the store.
    #[error("cannot read the experiment: {0}")]
    Load(StoreError),
    /// The experiment document is wrong (one line per problem).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The result could not be written.
    #[error("cannot write the result: {0}")]
    Save(StoreError),
}

/// Settings of a run that do not come from the experiment.
#[derive(Clone, Default)]
pub struct EngineOptions {
    /// The experiment's namespace (in a cluster).
    pub namespace: Option<String>,
    /// A Kubernetes client, in a cluster.
    pub kube: Option<kube::Client>,
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
/// and every metric an `assess` refers to. All problems are reported at once.
pub fn prepare(yaml: &str) -> Result<Plan, EngineError> {
    let experiment = parse_experiment(yaml).map_err(|e| EngineError::Invalid(vec![e.to_string()]))?;
    let mut problems = Vec::new();
    let mut conditions = Vec::with_capacity(experiment.tasks.len());
    let mut prefixes: Vec<String> = Vec::new();
    for task in &experiment.tasks {
        let label = task.label();
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
                    problems.push(format!("{label}: if: {e}"));
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

fn task_problem(task: &Task, e: TaskError) -> String {
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
    format!("{}: {message}", task.label())
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
            p
        }
        None => ExperimentResult::new(num_tasks),
    };
    result.num_tasks = num_tasks;
    result.num_loops += 1;
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
    let plan = prepare(&stored.experiment_yaml)?;
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
    tracing::info!(
        tasks = n,
        loop_number = result.num_loops,
        "experiment started (loop {})",
        result.num_loops
    );
    store.save(&result).await.map_err(EngineError::Save)?;
    for (task, condition) in plan.experiment.tasks.iter().zip(&plan.conditions) {
        let label = task.label();
        progress.set_task(format!("task {}/{n} {}", task.index + 1, task.name()));
        if let Some(c) = condition {
            if !c.eval(&result) {
                tracing::info!("{label}: skipped (if: {} is false)", c.source());
                result.num_completed_tasks += 1;
                store.save(&result).await.map_err(EngineError::Save)?;
                continue;
            }
        }
        tracing::info!("{label}: started");
        let started = std::time::Instant::now();
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
            task.spec.run(&mut ctx).await
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
                store.save(&result).await.map_err(EngineError::Save)?;
            }
            Err(e) => {
                let message = task_problem(task, e);
                tracing::error!("{message}");
                result.failure = true;
                result.failed_task = Some(FailedTask {
                    index: task.index,
                    task: task.name().to_string(),
                    message: message
                        .strip_prefix(&format!("{label}: "))
                        .unwrap_or(&message)
                        .to_string(),
                });
                store.save(&result).await.map_err(EngineError::Save)?;
                break;
            }
        }
    }
    Ok(Outcome { result })
}
