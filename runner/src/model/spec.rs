//! The experiment document: YAML whose top-level `spec:` is the ordered task list.
//!
//! Iter8 v0.15 files load unchanged: each task is an envelope `{task: <name>, with: {...},
//! if: <condition>}`, or `{run: <script>, if: <condition>}` for a shell step. Optional
//! `metadata: {name, namespace}` is kept; a `result:` key (Iter8's local files carried one)
//! is ignored.
//!
//! Dispatch is by serde: [`TaskSpec`] is an adjacently tagged enum (`task` / `with`), so
//! adding a task is one variant here plus one arm in each of [`TaskSpec::validate`],
//! [`TaskSpec::run`] and [`TaskSpec::metric_prefixes`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use crate::tasks::assess::AssessTask;
use crate::tasks::custommetrics::CustomMetricsTask;
use crate::tasks::grpc::GrpcTask;
use crate::tasks::http::HttpTask;
use crate::tasks::notify::NotifyTask;
use crate::tasks::ready::ReadyTask;
use crate::tasks::run::RunTask;
use crate::tasks::{TaskContext, TaskError};

use super::unknown_keys::{deserialize_task, nearest_hint};

/// Why an experiment document could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// The document is not YAML, or its top level is wrong.
    #[error("{0}")]
    Document(String),
    /// A task entry is wrong: `index` is zero-based, messages count from 1.
    #[error("task {} ({name}): {message}", index + 1)]
    Task {
        index: usize,
        name: String,
        message: String,
    },
}

/// `metadata:` of an Iter8 experiment (the chart writes the release's name and namespace).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ExperimentMetadata {
    /// Name of the experiment (the Helm release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace of the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A parsed experiment: its tasks, in order.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub metadata: ExperimentMetadata,
    pub tasks: Vec<Task>,
    /// Unknown keys that were ignored (as Iter8 ignored them), each naming the nearest
    /// known key; empty when parsed strictly (unknown keys are errors then).
    pub warnings: Vec<String>,
}

/// One task of the experiment with its envelope.
#[derive(Clone, Debug)]
pub struct Task {
    /// Zero-based position in `spec`.
    pub index: usize,
    /// `if:`: run the task only when this condition holds (see `model::condition`).
    pub condition: Option<String>,
    /// What to do.
    pub spec: TaskSpec,
}

impl Task {
    /// The task's name (`http`, `assess`, ..., `run`).
    pub fn name(&self) -> &'static str {
        self.spec.name()
    }

    /// `task 1 (http)`: how messages name this task (counting from 1).
    pub fn label(&self) -> String {
        format!("task {} ({})", self.index + 1, self.name())
    }
}

/// The tasks an experiment can hold: `task: <name>` selects the variant, `with:` holds
/// its inputs.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
// A handful of tasks parsed once per experiment: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[serde(tag = "task", content = "with", rename_all = "lowercase")]
pub enum TaskSpec {
    /// Assess SLOs and rewards against the metrics of earlier tasks.
    Assess(AssessTask),
    /// Query metrics backends (Prometheus, any REST/JSON API) through provider templates.
    CustomMetrics(CustomMetricsTask),
    /// Load-test a gRPC service (unary calls) and record latency and status metrics.
    Grpc(GrpcTask),
    /// Load-test HTTP endpoints and record latency and error metrics.
    Http(HttpTask),
    /// Send the experiment's summary to a webhook, Slack or GitHub.
    Notify(NotifyTask),
    /// Wait until a Kubernetes object exists and, optionally, has a condition True.
    Ready(ReadyTask),
    /// A shell script (`run:` envelope; not selectable as `task: run`).
    #[serde(skip)]
    #[schemars(skip)]
    Run(RunTask),
}

impl TaskSpec {
    /// The task's name as written in `task:` (or `run`).
    pub fn name(&self) -> &'static str {
        match self {
            TaskSpec::Assess(_) => "assess",
            TaskSpec::CustomMetrics(_) => "custommetrics",
            TaskSpec::Grpc(_) => "grpc",
            TaskSpec::Http(_) => "http",
            TaskSpec::Notify(_) => "notify",
            TaskSpec::Ready(_) => "ready",
            TaskSpec::Run(_) => "run",
        }
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), TaskError> {
        match self {
            TaskSpec::Assess(t) => t.validate(),
            TaskSpec::CustomMetrics(t) => t.validate(),
            TaskSpec::Grpc(t) => t.validate(),
            TaskSpec::Http(t) => t.validate(),
            TaskSpec::Notify(t) => t.validate(),
            TaskSpec::Ready(t) => t.validate(),
            TaskSpec::Run(t) => t.validate(),
        }
    }

    /// Run the task.
    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        match self {
            TaskSpec::Assess(t) => t.run(ctx).await,
            TaskSpec::CustomMetrics(t) => t.run(ctx).await,
            TaskSpec::Grpc(t) => t.run(ctx).await,
            TaskSpec::Http(t) => t.run(ctx).await,
            TaskSpec::Notify(t) => t.run(ctx).await,
            TaskSpec::Ready(t) => t.run(ctx).await,
            TaskSpec::Run(t) => t.run(ctx).await,
        }
    }

    /// Prefixes of the metric names the task produces (`http`, `http-v1`, ...).
    pub fn metric_prefixes(&self) -> Vec<String> {
        match self {
            TaskSpec::CustomMetrics(t) => t.metric_prefixes(),
            TaskSpec::Grpc(t) => t.metric_prefixes(),
            TaskSpec::Http(t) => t.metric_prefixes(),
            TaskSpec::Assess(_) | TaskSpec::Notify(_) | TaskSpec::Run(_) => Vec::new(),
            TaskSpec::Ready(t) => t.metric_prefixes(),
        }
    }
}

/// An Iter8 experiment: the tasks to run, in order.
///
/// (Used for the JSON Schema only; [`parse_experiment`] reads the envelope.)
#[derive(JsonSchema)]
#[allow(dead_code)]
#[schemars(title = "Iter8 experiment", deny_unknown_fields)]
pub struct ExperimentDocument {
    /// Name and namespace of the experiment (written by the chart).
    #[serde(default)]
    metadata: Option<ExperimentMetadata>,
    /// The tasks, run in order.
    spec: Vec<TaskEntry>,
    /// Ignored (Iter8's local experiment files carried the result here).
    #[serde(default)]
    result: Option<serde_json::Value>,
}

/// One entry of `spec`: a task (`task` + `with`) or a shell step (`run`).
#[derive(JsonSchema)]
#[allow(dead_code, clippy::large_enum_variant)]
#[serde(untagged)]
enum TaskEntry {
    Task {
        /// Run the task only when this condition holds, e.g. `SLOs()`, `Result.NumLoops > 1`.
        #[serde(rename = "if", default)]
        condition: Option<String>,
        #[serde(flatten)]
        task: TaskSpec,
    },
    Run {
        /// Shell script run with `/bin/sh -c` (fails where the image has no shell).
        run: String,
        /// Run the step only when this condition holds, e.g. `SLOs()`.
        #[serde(rename = "if", default)]
        condition: Option<String>,
    },
}

/// Parse an experiment document as Iter8 did: unknown keys are ignored, each reported in
/// [`Experiment::warnings`] with the nearest known key. See [`parse_experiment_with`].
pub fn parse_experiment(yaml: &str) -> Result<Experiment, SpecError> {
    parse_experiment_with(yaml, false)
}

/// Parse an experiment document. Errors name the task (counting from 1), its name and the
/// field path inside the entry (e.g. `task 1 (http): with.numRequests: invalid type ...`).
/// `strict`: an unknown key is an error (naming the nearest known key) instead of a
/// warning.
pub fn parse_experiment_with(yaml: &str, strict: bool) -> Result<Experiment, SpecError> {
    super::limits::check_yaml_nesting(yaml)
        .map_err(|e| SpecError::Document(format!("the experiment is not accepted: {e}")))?;
    let doc: Value = serde_yaml::from_str(yaml)
        .map_err(|e| SpecError::Document(format!("the experiment is not valid YAML: {e}")))?;
    let top = match doc {
        Value::Mapping(m) => m,
        Value::Null => {
            return Err(SpecError::Document(
                "the experiment is empty; it needs a top-level `spec:` list of tasks".into(),
            ))
        }
        _ => {
            return Err(SpecError::Document(
                "the experiment must be a mapping with a top-level `spec:` list of tasks".into(),
            ))
        }
    };
    let mut metadata = ExperimentMetadata::default();
    let mut spec = None;
    let mut warnings = Vec::new();
    for (k, v) in top {
        match k.as_str() {
            Some("spec") => spec = Some(v),
            Some("result") => {}
            Some("metadata") => {
                metadata = serde_path_to_error::deserialize(v).map_err(|e| {
                    SpecError::Document(format!("metadata.{}: {}", e.path(), e.inner()))
                })?
            }
            other if strict => {
                return Err(SpecError::Document(format!(
                    "unknown top-level key {}; an experiment has `spec:` (the tasks) and optionally `metadata:`",
                    key_text(other, &k)
                )))
            }
            other => warnings.push(format!(
                "unknown top-level key {} ignored; {}",
                key_text(other, &k),
                nearest_hint(&key_text(other, &k), &["spec", "metadata"])
            )),
        }
    }
    let entries = match spec {
        Some(Value::Sequence(s)) => s,
        Some(Value::Null) | None => {
            return Err(SpecError::Document(
                "spec: missing or empty; list the tasks to run, e.g. `spec: [{task: http, with: {url: http://127.0.0.1:8080}}]`".into(),
            ))
        }
        Some(_) => {
            return Err(SpecError::Document(
                "spec: must be a list of tasks (`- task: <name>` or `- run: <script>`)".into(),
            ))
        }
    };
    if entries.is_empty() {
        return Err(SpecError::Document(
            "spec: the task list is empty; add at least one task".into(),
        ));
    }
    let tasks = entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| parse_task(index, entry, strict, &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Experiment {
        metadata,
        tasks,
        warnings,
    })
}

/// A key as the user wrote it (never a Rust debug value such as `Number(1)`).
fn key_text(k: Option<&str>, v: &Value) -> String {
    match (k, v) {
        (Some(s), _) => format!("`{s}`"),
        (None, Value::Number(n)) => format!("`{n}`"),
        (None, Value::Bool(b)) => format!("`{b}`"),
        (None, Value::Null) => "`null`".to_string(),
        (None, Value::Sequence(_)) => "(a list used as a key)".to_string(),
        (None, Value::Mapping(_)) => "(a mapping used as a key)".to_string(),
        (None, _) => "(a tagged value used as a key)".to_string(),
    }
}

fn parse_task(
    index: usize,
    entry: Value,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<Task, SpecError> {
    let err = |name: &str, message: String| SpecError::Task {
        index,
        name: name.to_string(),
        message,
    };
    let Value::Mapping(map) = entry else {
        return Err(err(
            "?",
            "a task must be a mapping with `task:` (and `with:`) or `run:`".into(),
        ));
    };
    let mut task: Option<Value> = None;
    let mut with: Option<Value> = None;
    let mut run: Option<Value> = None;
    let mut condition: Option<Value> = None;
    for (k, v) in map {
        match k.as_str() {
            Some("task") => task = Some(v),
            Some("with") => with = Some(v),
            Some("run") => run = Some(v),
            Some("if") => condition = Some(v),
            other if strict => {
                let name = task_name_hint(&task, &run);
                return Err(err(
                    &name,
                    format!(
                        "unknown key {}; a task has `task`, `with` and `if` (or `run` and `if`)",
                        key_text(other, &k)
                    ),
                ));
            }
            other => {
                let key = key_text(other, &k);
                warnings.push(format!(
                    "task {} ({}): unknown key {key} ignored; {}",
                    index + 1,
                    task_name_hint(&task, &run),
                    nearest_hint(&key, &["task", "with", "if", "run"])
                ));
            }
        }
    }
    let name = task_name_hint(&task, &run);
    let condition = match condition {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(_) => {
            return Err(err(
                &name,
                "if: must be a condition string, e.g. `SLOs()` or `Result.NumLoops > 1`".into(),
            ))
        }
    };
    let spec = match (task, run) {
        (Some(_), Some(_)) => {
            return Err(err(&name, "give either `task:` or `run:`, not both".into()))
        }
        (None, None) => {
            return Err(err(
                &name,
                "missing `task:` (the task's name, e.g. `task: http`) or `run:` (a shell script)"
                    .into(),
            ))
        }
        (None, Some(script)) => {
            if with.is_some() {
                return Err(err(
                    "run",
                    "with: a `run:` step takes no `with:`; put the whole script in `run:`".into(),
                ));
            }
            let Value::String(script) = script else {
                return Err(err("run", "run: must be a string (a shell script)".into()));
            };
            TaskSpec::Run(RunTask { run: script })
        }
        (Some(task), None) => {
            let Value::String(task_name) = &task else {
                return Err(err(
                    "?",
                    "task: must be a task name string, e.g. `task: http`".into(),
                ));
            };
            let task_name = task_name.clone();
            let with = match with {
                None | Some(Value::Null) => Value::Mapping(Mapping::new()),
                Some(w) => w,
            };
            let mut normalized = Mapping::new();
            normalized.insert(Value::String("task".into()), task);
            normalized.insert(Value::String("with".into()), with);
            let label = format!("task {} ({task_name})", index + 1);
            deserialize_task(Value::Mapping(normalized), strict, &label, warnings).map_err(|e| {
                let path = e.path().to_string();
                let message = tidy_serde_message(&e.inner().to_string());
                if path == "task" || path == "." {
                    err(
                        &task_name,
                        message.replacen("unknown variant", "unknown task", 1),
                    )
                } else {
                    err(&task_name, format!("{path}: {message}"))
                }
            })?
        }
    };
    Ok(Task {
        index,
        condition,
        spec,
    })
}

fn task_name_hint(task: &Option<Value>, run: &Option<Value>) -> String {
    match (task, run) {
        (Some(Value::String(s)), _) => s.clone(),
        (None, Some(_)) => "run".to_string(),
        _ => "?".to_string(),
    }
}

/// Make serde's type names readable for users (`expected u64` -> `expected an integer`).
fn tidy_serde_message(m: &str) -> String {
    let mut out = m.to_string();
    for (from, to) in [
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected i32", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        (
            "data did not match any variant of untagged enum",
            "value has the wrong shape for",
        ),
    ] {
        out = out.replace(from, to);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of a strict parse (`--strict`: unknown keys are errors).
    fn task_err(yaml: &str) -> String {
        match parse_experiment_with(yaml, true) {
            Err(e @ SpecError::Task { .. }) => e.to_string(),
            other => panic!("expected a task error, got {other:?}"),
        }
    }

    fn doc_err(yaml: &str) -> String {
        match parse_experiment_with(yaml, true) {
            Err(e @ SpecError::Document(_)) => e.to_string(),
            other => panic!("expected a document error, got {other:?}"),
        }
    }

    /// The Iter8 docs' load-test-http experiment (v0.15), verbatim, as the chart rendered it.
    const ITER8_LOAD_TEST_HTTP: &str = r#"
metadata:
  name: default
  namespace: default
spec:
  # task 1: generate HTTP requests for application URL
  # collect Iter8's built-in HTTP latency and error-related metrics
  - task: http
    with:
      duration: 2s
      errorRanges:
      - lower: 500
      url: http://httpbin.default/get
  # task 2: validate service level objectives for app using
  # the metrics collected in the above task
  - task: assess
    with:
      SLOs:
        upper:
        - metric: "http/error-count"
          limit: 0
        - metric: "http/latency-mean"
          limit: 50
        - metric: "http/latency-p99.0"
          limit: 100
result:
  failure: false
  insights:
    numVersions: 1
  iter8Version: v0.15
  numCompletedTasks: 0
  startTime: "2023-04-03T15:40:55.587473-04:00"
"#;

    #[test]
    fn iter8_load_test_http_experiment_loads() {
        match parse_experiment(ITER8_LOAD_TEST_HTTP) {
            Ok(exp) => {
                // Once the http variant is part of TaskSpec.
                assert_eq!(exp.tasks.len(), 2);
                assert_eq!(exp.tasks[0].name(), "http");
                let TaskSpec::Assess(a) = &exp.tasks[1].spec else {
                    panic!("task 2 is not assess");
                };
                let slos = a.slos();
                assert_eq!(slos.upper.len(), 3);
                assert_eq!(slos.upper[2].metric, "http/latency-p99");
                assert_eq!(slos.upper[1].limit, 50.0);
            }
            Err(SpecError::Task {
                index,
                name,
                message,
            }) => {
                // Before the http task joins TaskSpec: the only problem is the unknown task.
                assert_eq!((index, name.as_str()), (0, "http"));
                assert!(message.starts_with("unknown task `http`"), "{message}");
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn iter8_assess_and_run_with_if_load_verbatim() {
        let yaml = r#"
metadata:
  name: exp
  namespace: team
spec:
- task: assess
  with:
    SLOs:
      Upper:
      - metric: http/latency-mean
        limit: 50
      Lower:
      - metric: http/request-count
        limit: 100
    rewards:
      max: [http/request-count]
      min: ["http/latency-p99.90"]
- if: SLOs()
  run: |
    echo promote
- run: echo always
result:
  numLoops: 3
"#;
        let exp = parse_experiment(yaml).expect("parses");
        assert_eq!(exp.metadata.name.as_deref(), Some("exp"));
        assert_eq!(exp.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(exp.tasks.len(), 3);
        let TaskSpec::Assess(a) = &exp.tasks[0].spec else {
            panic!("not assess")
        };
        assert_eq!(a.slos().upper[0].metric, "http/latency-mean");
        assert_eq!(a.slos().lower[0].limit, 100.0);
        assert_eq!(a.rewards().min, vec!["http/latency-p99.9"]);
        assert_eq!(exp.tasks[1].condition.as_deref(), Some("SLOs()"));
        assert_eq!(exp.tasks[1].name(), "run");
        let TaskSpec::Run(r) = &exp.tasks[1].spec else {
            panic!("not run")
        };
        assert_eq!(r.run, "echo promote\n");
        assert_eq!(exp.tasks[2].condition, None);
        assert_eq!(exp.tasks[2].index, 2);
        assert_eq!(exp.tasks[2].label(), "task 3 (run)");
    }

    #[test]
    fn chart_map_form_of_slos_and_missing_with() {
        let yaml = r#"
spec:
- task: assess
  with:
    SLOs:
      upper:
        http/latency-mean: 50
        http/error-rate: 0
      lower:
        http/request-count: 10
- task: assess
"#;
        let exp = parse_experiment(yaml).expect("parses");
        let TaskSpec::Assess(a) = &exp.tasks[0].spec else {
            panic!("not assess")
        };
        let s = a.slos();
        assert_eq!(
            s.upper
                .iter()
                .map(|s| (s.metric.as_str(), s.limit))
                .collect::<Vec<_>>(),
            vec![("http/latency-mean", 50.0), ("http/error-rate", 0.0)]
        );
        assert_eq!(s.lower[0].metric, "http/request-count");
        let TaskSpec::Assess(b) = &exp.tasks[1].spec else {
            panic!("not assess")
        };
        assert_eq!(b, &AssessTask::default());
    }

    #[test]
    fn unknown_task_names_index_and_known_tasks() {
        let e = task_err("spec:\n- run: echo\n- task: htp\n  with: {url: x}\n");
        assert!(
            e.starts_with("task 2 (htp): unknown task `htp`, expected"),
            "{e}"
        );
        assert!(e.contains("assess"), "{e}");
        // `run` is an envelope, not a task name.
        let e = task_err("spec:\n- task: run\n");
        assert!(e.starts_with("task 1 (run): unknown task `run`"), "{e}");
    }

    #[test]
    fn unknown_and_mistyped_parameters_name_the_field_path() {
        let e = task_err("spec:\n- task: assess\n  with:\n    slo: {}\n");
        assert!(
            e.starts_with("task 1 (assess): with.slo: unknown field `slo`, expected one of `SLOs`"),
            "{e}"
        );
        let e = task_err(
            "spec:\n- task: assess\n  with:\n    SLOs:\n      upper:\n      - metric: http/latency-mean\n        limit: ten\n",
        );
        assert_eq!(
            e,
            "task 1 (assess): with.SLOs.upper[0].limit: invalid type: string \"ten\", expected a number"
        );
        let e = task_err(
            "spec:\n- task: assess\n  with:\n    SLOs:\n      upper:\n        http/latency-mean: fast\n",
        );
        assert!(
            e.starts_with("task 1 (assess): with.SLOs.upper.http/latency-mean: invalid type: string \"fast\", expected a number"),
            "{e}"
        );
        let e = task_err(
            "spec:\n- task: assess\n  with:\n    SLOs:\n      upper:\n      - metric: http/latency-mean\n        limit: 5\n        unit: ms\n",
        );
        assert!(
            e.starts_with("task 1 (assess): with.SLOs.upper[0].unit: unknown field `unit`"),
            "{e}"
        );
        let e = task_err("spec:\n- task: assess\n  with:\n    rewards:\n      max: http/x\n");
        assert!(
            e.starts_with("task 1 (assess): with.rewards.max: invalid type: string \"http/x\", expected a sequence"),
            "{e}"
        );
        let e = task_err("spec:\n- task: assess\n  with: [1]\n");
        assert!(
            e.starts_with("task 1 (assess): with: invalid type: sequence"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_ignored_with_a_warning_naming_the_nearest_key() {
        // as Iter8's own testdata has it: `connect-timeeout`; also in an endpoint, in a
        // list entry, in the envelope and at the top level
        let yaml = "spec:\n- task: grpc\n  with:\n    host: h:1\n    call: a.S/M\n    \
                    connect-timeeout: 5s\n    endpoints:\n      e1: {totl: 3}\n\
                    - task: assess\n  iff: SLOs()\n  with:\n    SLOs:\n      upper:\n      \
                    - {metric: grpc/error-rate, limit: 0, unit: ms}\nextra: 1\n";
        let exp = parse_experiment(yaml).expect("runs as Iter8 would");
        assert_eq!(exp.tasks.len(), 2);
        let w = exp.warnings.join("\n");
        for needle in [
            "unknown top-level key `extra` ignored; did you mean `spec`?",
            "task 1 (grpc): with.connect-timeeout: unknown key ignored; did you mean `connect-timeout`?",
            "task 1 (grpc): with.endpoints.e1.totl: unknown key ignored; did you mean `total`?",
            "task 2 (assess): unknown key `iff` ignored; did you mean `if`?",
            "task 2 (assess): with.SLOs.upper[0].unit: unknown key ignored; did you mean `limit`?",
        ] {
            assert!(w.contains(needle), "{needle}\n{w}");
        }
        assert_eq!(exp.warnings.len(), 5, "{w}");
        let TaskSpec::Assess(a) = &exp.tasks[1].spec else {
            panic!("not assess")
        };
        assert_eq!(a.slos().upper[0].metric, "grpc/error-rate");
        // strict: the first unknown key is an error
        let e = parse_experiment_with(yaml, true).expect_err("strict");
        assert!(e.to_string().contains("extra"), "{e}");
        // a mistyped value stays an error either way
        assert!(parse_experiment("spec:\n- task: http\n  with: {url: x, qps: fast}\n").is_err());
    }

    #[test]
    fn non_string_keys_are_named_as_written() {
        for (yaml, key) in [
            ("spec:\n- task: assess\n  1: x\n", "`1`"),
            ("spec:\n- task: assess\n  true: x\n", "`true`"),
            (
                "spec:\n- task: assess\n  ? [a]\n  : x\n",
                "(a list used as a key)",
            ),
            ("1: x\nspec: [{run: echo}]\n", "`1`"),
        ] {
            // strict: an error; by default: a warning; either names the key as written
            let e = parse_experiment_with(yaml, true)
                .expect_err(yaml)
                .to_string();
            assert!(e.contains(&format!("key {key}")), "{e}");
            assert!(!e.contains("Number("), "{e}");
            let w = parse_experiment(yaml).expect(yaml).warnings.join("\n");
            assert!(w.contains(key), "{w}");
            assert!(!w.contains("Number("), "{w}");
        }
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(
            task_err("spec:\n- task: assess\n  iff: SLOs()\n"),
            "task 1 (assess): unknown key `iff`; a task has `task`, `with` and `if` (or `run` and `if`)"
        );
        assert_eq!(
            task_err("spec:\n- task: assess\n  run: echo\n"),
            "task 1 (assess): give either `task:` or `run:`, not both"
        );
        assert!(task_err("spec:\n- with: {}\n").starts_with("task 1 (?): missing `task:`"));
        assert!(task_err("spec:\n- run: echo\n  with: {a: 1}\n")
            .starts_with("task 1 (run): with: a `run:` step takes no `with:`"));
        assert_eq!(
            task_err("spec:\n- run: [echo]\n"),
            "task 1 (run): run: must be a string (a shell script)"
        );
        assert!(task_err("spec:\n- task: 3\n").starts_with("task 1 (?): task: must be a task name"));
        assert!(task_err("spec:\n- run: echo\n  if: [1]\n")
            .starts_with("task 1 (run): if: must be a condition string"));
        assert!(task_err("spec:\n- just a string\n")
            .starts_with("task 1 (?): a task must be a mapping"));
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        // 150,000 `[` took over 20 s to parse; refused at once now.
        let e = doc_err(&format!("spec: {}", "[".repeat(150_000)));
        assert!(
            e.starts_with("the experiment is not accepted: line 1: more than 256 nested"),
            "{e}"
        );
    }

    #[test]
    fn document_errors() {
        assert!(doc_err("spec: [").starts_with("the experiment is not valid YAML"));
        assert!(doc_err("").starts_with("the experiment is empty"));
        assert!(doc_err("- task: assess\n").starts_with("the experiment must be a mapping"));
        assert!(doc_err("tasks: []\n").starts_with("unknown top-level key `tasks`"));
        assert!(doc_err("metadata: {name: x}\n").starts_with("spec: missing or empty"));
        assert!(doc_err("spec: []\n").starts_with("spec: the task list is empty"));
        assert!(doc_err("spec: {task: assess}\n").starts_with("spec: must be a list of tasks"));
        assert!(doc_err("metadata: {nme: x}\nspec: [{run: echo}]\n")
            .starts_with("metadata.nme: unknown field `nme`"));
    }
}
