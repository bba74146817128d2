//! The Kubernetes side shared by the runner and the CLI: building a client the way kubectl
//! resolves its configuration, classifying API errors (what to retry), and reading the
//! logs of an experiment's runner pods (`iter8 log`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

#[cfg(test)]
pub(crate) mod mock;

/// Label every object of a release carries (the chart's `app.kubernetes.io/instance`).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Label naming the chart (`iter8`).
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Label (and Secret annotation) with the Helm release revision of a runner's Job.
pub const REVISION_LABEL: &str = "iter8.tools/revision";
/// The runner's container name in the chart's pod template.
pub const RUNNER_CONTAINER: &str = "iter8-runner";

/// Why talking to Kubernetes failed.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// No usable configuration (kubeconfig, context, in-cluster).
    #[error("kubernetes configuration: {0}")]
    Config(String),
    /// The API refused or failed a request (after retries where they apply).
    #[error("{0}")]
    Api(String),
}

pub type Result<T, E = K8sError> = std::result::Result<T, E>;

/// Where the client's configuration comes from (`--kubeconfig`, `--context`).
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// A kubeconfig file; default: `KUBECONFIG` (several paths merged), then
    /// `~/.kube/config`, then the in-cluster service account (like kubectl).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; default: its current context.
    pub context: Option<String>,
}

/// Timeout of one API request (a hung request then counts as a transient error).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The client configuration, resolved like kubectl: `--kubeconfig` file, else
/// `KUBECONFIG` / `~/.kube/config`, else in-cluster; `--context` picks a context.
pub async fn config(opts: &ClientOptions) -> Result<Config> {
    let kc_opts = KubeConfigOptions {
        context: opts.context.clone(),
        ..Default::default()
    };
    let mut config = if let Some(path) = &opts.kubeconfig {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| K8sError::Config(format!("--kubeconfig {}: {e}", path.display())))?;
        Config::from_custom_kubeconfig(kc, &kc_opts)
            .await
            .map_err(|e| K8sError::Config(format!("--kubeconfig {}: {e}", path.display())))?
    } else if opts.context.is_some() {
        Config::from_kubeconfig(&kc_opts)
            .await
            .map_err(|e| K8sError::Config(format!("--context: {e}")))?
    } else {
        Config::infer().await.map_err(|e| {
            K8sError::Config(format!(
                "{e}; set KUBECONFIG or --kubeconfig, or run inside a cluster"
            ))
        })?
    };
    config.read_timeout = Some(REQUEST_TIMEOUT);
    // kube's own retry layer retries 429/503/504 up to 15 times with delays growing to
    // minutes; our callers retry within their own bounds instead (SecretStore, ready).
    config.default_retry = false;
    Ok(config)
}

/// A client for the resolved configuration. Its `default_namespace()` is the context's
/// namespace (or the pod's, in a cluster): the default of `-n`.
pub async fn client(opts: &ClientOptions) -> Result<Client> {
    let config = config(opts).await?;
    Client::try_from(config).map_err(|e| K8sError::Config(e.to_string()))
}

/// What an API error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Forbidden,
    Conflict,
    /// Worth retrying: 429, 5xx, timeouts, connection errors.
    Transient,
    /// Anything else (bad request, invalid object, ...): retrying will not help.
    Permanent,
}

/// Classify a kube error.
pub fn error_kind(e: &kube::Error) -> ErrorKind {
    match e {
        kube::Error::Api(s) => match s.code {
            404 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::Forbidden,
            409 => ErrorKind::Conflict,
            429 | 500 | 502 | 503 | 504 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            ErrorKind::Transient
        }
        _ => ErrorKind::Permanent,
    }
}

/// A short message for an API error: `403 Forbidden: <the API's message>`.
pub fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", s.reason)
            };
            if s.message.is_empty() {
                format!("{}{reason}", s.code)
            } else {
                format!("{}{reason}: {}", s.code, s.message)
            }
        }
        other => other.to_string(),
    }
}

/// The logs of one runner pod (or of a Job without a pod).
#[derive(Debug, Clone, PartialEq)]
pub struct RunLog {
    /// Helm release revision of the run (the Job's `iter8.tools/revision` label).
    pub revision: Option<i64>,
    /// The Job.
    pub job: String,
    /// The CronJob that created the Job, for CronJob loops.
    pub cronjob: Option<String>,
    /// 1-based rank of this Job among the Jobs of the same revision still kept by
    /// Kubernetes, oldest first (a CronJob keeps only its last few Jobs).
    pub loop_index: usize,
    /// When the Job started (else when it was created).
    pub start_time: Option<DateTime<Utc>>,
    /// The pod; None when the Job has no pod (not started yet, or cleaned up).
    pub pod: Option<String>,
    /// The runner container's log.
    pub logs: String,
    /// Why the log could not be read (pod pending, forbidden, ...).
    pub error: Option<String>,
}

impl RunLog {
    /// `revision 3, job hello-3-job, loop 1, pod hello-3-job-abcde, started 2026-...`
    pub fn heading(&self) -> String {
        let mut h = match self.revision {
            Some(r) => format!("revision {r}, job {}", self.job),
            None => format!("job {}", self.job),
        };
        if let Some(cj) = &self.cronjob {
            h.push_str(&format!(" (cronjob {cj})"));
        }
        h.push_str(&format!(", loop {}", self.loop_index));
        if let Some(p) = &self.pod {
            h.push_str(&format!(", pod {p}"));
        }
        if let Some(t) = &self.start_time {
            h.push_str(&format!(", started {}", t.to_rfc3339()));
        }
        h
    }
}

/// `iter8 log` output: each run headed by its revision, Job and loop, newest first.
pub fn format_run_logs(release: &str, namespace: &str, logs: &[RunLog]) -> String {
    if logs.is_empty() {
        return format!(
            "no runner Jobs of release {release} in namespace {namespace} (runner=none, not started yet, or removed after ttlSecondsAfterFinished)\n"
        );
    }
    let mut out = String::new();
    for l in logs {
        out.push_str(&format!("=== {} ===\n", l.heading()));
        if let Some(e) = &l.error {
            out.push_str(&format!("(no log: {e})\n"));
        }
        out.push_str(&l.logs);
        if !l.logs.is_empty() && !l.logs.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Kubernetes timestamps (jiff) as chrono times.
pub fn to_chrono(t: k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), u32::try_from(t.subsec_nanosecond()).ok()?)
}

fn api_err(what: &str, e: &kube::Error) -> K8sError {
    K8sError::Api(format!("{what}: {}", error_message(e)))
}

/// The logs of the release's runner pods, newest run first: Job runs and CronJob loops,
/// found by the labels the chart sets (`app.kubernetes.io/instance=<release>`,
/// `app.kubernetes.io/name=iter8`; a CronJob copies them onto its Jobs).
pub async fn pod_logs(client: &Client, namespace: &str, release: &str) -> Result<Vec<RunLog>> {
    let selector = format!("{INSTANCE_LABEL}={release},{NAME_LABEL}=iter8");
    let lp = ListParams::default().labels(&selector);
    let jobs_api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let jobs = jobs_api
        .list(&lp)
        .await
        .map_err(|e| {
            api_err(
                &format!("list jobs of release {release} in {namespace}"),
                &e,
            )
        })?
        .items;
    let pods = pods_api
        .list(&lp)
        .await
        .map_err(|e| {
            api_err(
                &format!("list pods of release {release} in {namespace}"),
                &e,
            )
        })?
        .items;

    struct JobInfo {
        name: String,
        revision: Option<i64>,
        cronjob: Option<String>,
        start: Option<DateTime<Utc>>,
    }
    let mut infos: Vec<JobInfo> = jobs
        .iter()
        .map(|j| {
            let meta = &j.metadata;
            let revision = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                .and_then(|r| r.parse().ok());
            let cronjob = meta.owner_references.as_ref().and_then(|o| {
                o.iter()
                    .find(|r| r.kind == "CronJob")
                    .map(|r| r.name.clone())
            });
            let start = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(meta.creation_timestamp.as_ref())
                .and_then(|t| to_chrono(t.0));
            JobInfo {
                name: meta.name.clone().unwrap_or_default(),
                revision,
                cronjob,
                start,
            }
        })
        .collect();
    // oldest first to number the loops of each revision
    infos.sort_by(|a, b| (a.start, &a.name).cmp(&(b.start, &b.name)));
    let mut out = Vec::new();
    let mut seen: std::collections::BTreeMap<Option<i64>, usize> = Default::default();
    for info in &infos {
        let n = seen.entry(info.revision).or_default();
        *n += 1;
        let loop_index = *n;
        let mut job_pods: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|r| r.kind == "Job" && r.name == info.name))
            })
            .collect();
        job_pods.sort_by_key(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| to_chrono(t.0))
        });
        let base = RunLog {
            revision: info.revision,
            job: info.name.clone(),
            cronjob: info.cronjob.clone(),
            loop_index,
            start_time: info.start,
            pod: None,
            logs: String::new(),
            error: None,
        };
        if job_pods.is_empty() {
            out.push(RunLog {
                error: Some("no pod (not started yet, or already cleaned up)".into()),
                ..base
            });
            continue;
        }
        for p in job_pods {
            let name = p.metadata.name.clone().unwrap_or_default();
            let params = LogParams {
                container: Some(RUNNER_CONTAINER.into()),
                ..Default::default()
            };
            let (logs, error) = match pods_api.logs(&name, &params).await {
                Ok(l) => (l, None),
                Err(e) => (String::new(), Some(error_message(&e))),
            };
            out.push(RunLog {
                pod: Some(name),
                logs,
                error,
                ..base.clone()
            });
        }
    }
    out.sort_by(|a, b| {
        (b.start_time, b.revision, b.loop_index).cmp(&(a.start_time, a.revision, a.loop_index))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::mock::MockApi;
    use super::*;
    use serde_json::json;

    fn job(name: &str, rev: i64, start: &str, cronjob: Option<&str>) -> serde_json::Value {
        let mut j = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ns", "labels": {
                INSTANCE_LABEL: "exp", NAME_LABEL: "iter8", REVISION_LABEL: rev.to_string()},
                "creationTimestamp": start},
            "spec": {"template": {"spec": {"containers": []}}},
            "status": {"startTime": start},
        });
        if let Some(cj) = cronjob {
            j["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": cj, "uid": "u"}]);
        }
        j
    }

    fn pod(name: &str, job: &str) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns",
                "labels": {INSTANCE_LABEL: "exp", NAME_LABEL: "iter8"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": "u"}]},
            "spec": {"containers": []},
        })
    }

    #[tokio::test]
    async fn pod_logs_lists_runs_newest_first_with_revision_job_and_loop() {
        let api = MockApi::start().await;
        api.with(|s| {
            let jobs = "/apis/batch/v1/namespaces/ns/jobs";
            s.put(
                &format!("{jobs}/exp-1-job"),
                job("exp-1-job", 1, "2026-01-01T00:00:00Z", None),
            );
            s.put(
                &format!("{jobs}/exp-2-cronjob-100"),
                job(
                    "exp-2-cronjob-100",
                    2,
                    "2026-01-02T00:00:00Z",
                    Some("exp-2-cronjob"),
                ),
            );
            s.put(
                &format!("{jobs}/exp-2-cronjob-105"),
                job(
                    "exp-2-cronjob-105",
                    2,
                    "2026-01-02T00:05:00Z",
                    Some("exp-2-cronjob"),
                ),
            );
            // another release's Job: not listed
            let mut other = job("other-1-job", 1, "2026-01-03T00:00:00Z", None);
            other["metadata"]["labels"][INSTANCE_LABEL] = json!("other");
            s.put(&format!("{jobs}/other-1-job"), other);
            let pods = "/api/v1/namespaces/ns/pods";
            s.put(
                &format!("{pods}/exp-1-job-a"),
                pod("exp-1-job-a", "exp-1-job"),
            );
            s.put(
                &format!("{pods}/exp-2-cronjob-105-b"),
                pod("exp-2-cronjob-105-b", "exp-2-cronjob-105"),
            );
            s.logs
                .insert(format!("{pods}/exp-1-job-a/log"), "job log\n".into());
            s.logs.insert(
                format!("{pods}/exp-2-cronjob-105-b/log"),
                "loop 2 log\n".into(),
            );
        });
        let logs = pod_logs(&api.client(), "ns", "exp").await.expect("logs");
        let summary: Vec<_> = logs
            .iter()
            .map(|l| {
                (
                    l.revision,
                    l.job.as_str(),
                    l.loop_index,
                    l.pod.as_deref(),
                    l.logs.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    Some(2),
                    "exp-2-cronjob-105",
                    2,
                    Some("exp-2-cronjob-105-b"),
                    "loop 2 log\n"
                ),
                (Some(2), "exp-2-cronjob-100", 1, None, ""),
                (Some(1), "exp-1-job", 1, Some("exp-1-job-a"), "job log\n"),
            ]
        );
        assert_eq!(logs[0].cronjob.as_deref(), Some("exp-2-cronjob"));
        assert!(logs[1].error.as_deref().unwrap_or("").contains("no pod"));
        assert!(logs[0].heading().starts_with("revision 2, job exp-2-cronjob-105 (cronjob exp-2-cronjob), loop 2, pod exp-2-cronjob-105-b"));
        let text = format_run_logs("exp", "ns", &logs);
        assert!(
            text.starts_with("=== revision 2, job exp-2-cronjob-105"),
            "{text}"
        );
        assert!(
            text.contains("loop 2 log\n=== revision 2, job exp-2-cronjob-100"),
            "{text}"
        );
        assert!(text.contains("(no log: no pod"), "{text}");
        assert!(text.ends_with("job log\n"), "{text}");
        assert!(format_run_logs("exp", "ns", &[]).starts_with("no runner Jobs of release exp"));
        let (_, q) = &api.with(|s| s.requests[0].clone());
        assert!(q.contains("labelSelector"), "{q}");
    }

    #[tokio::test]
    async fn pod_logs_reports_forbidden_clearly() {
        let api = MockApi::start().await;
        api.with(|s| s.forbidden.push("/apis/batch/v1/namespaces/ns/jobs".into()));
        let err = pod_logs(&api.client(), "ns", "exp")
            .await
            .expect_err("forbidden");
        let msg = err.to_string();
        assert!(
            msg.starts_with("list jobs of release exp in ns: 403 Forbidden:"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn explicit_kubeconfig_and_context_are_honoured() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            r#"apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "http://127.0.0.1:1"}
- name: b
  cluster: {server: "http://127.0.0.1:2"}
contexts:
- name: ctx-a
  context: {cluster: a, user: u, namespace: team-a}
- name: ctx-b
  context: {cluster: b, user: u, namespace: team-b}
current-context: ctx-a
users:
- name: u
  user: {token: t}
"#,
        )
        .expect("write");
        let c = config(&ClientOptions {
            kubeconfig: Some(path.clone()),
            context: None,
        })
        .await
        .expect("config");
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:1/");
        assert_eq!(c.default_namespace, "team-a");
        let c = config(&ClientOptions {
            kubeconfig: Some(path.clone()),
            context: Some("ctx-b".into()),
        })
        .await
        .expect("config");
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:2/");
        assert_eq!(c.default_namespace, "team-b");
        let err = config(&ClientOptions {
            kubeconfig: Some(path),
            context: Some("nope".into()),
        })
        .await
        .expect_err("unknown context");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn errors_are_classified_for_retries() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        assert_eq!(error_kind(&api(404)), ErrorKind::NotFound);
        assert_eq!(error_kind(&api(403)), ErrorKind::Forbidden);
        assert_eq!(error_kind(&api(409)), ErrorKind::Conflict);
        assert_eq!(error_kind(&api(503)), ErrorKind::Transient);
        assert_eq!(error_kind(&api(429)), ErrorKind::Transient);
        assert_eq!(error_kind(&api(422)), ErrorKind::Permanent);
    }
}
