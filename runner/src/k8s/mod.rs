//! The Kubernetes side shared by the runner and the CLI: building a client the way kubectl
//! resolves its configuration, classifying API errors (what to retry), and reading the
//! logs of an experiment's runner pods (`iter8 log`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

mod logs;
pub use logs::{
    follow_newest_log, format_run_logs, pod_logs, LogOptions, RunLog, FOLLOW_START_TIMEOUT,
};

#[cfg(test)]
pub(crate) mod mock;
pub mod retry;

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

/// The client's read timeout: a backstop for every request. Callers that retry bound each
/// attempt more tightly ([`retry::RetryPolicy::request_timeout`]).
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
    // kube's own retry layer retries 429/503/504 (not timeouts or dropped connections) up to
    // 15 times with delays growing to minutes; our callers retry within their own bounds
    // instead, through one helper (`retry::call`).
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
        kube::Error::Api(s) => status_kind(s.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            ErrorKind::Transient
        }
        _ => ErrorKind::Permanent,
    }
}

/// What an API status code means for the caller.
pub fn status_kind(code: u16) -> ErrorKind {
    match code {
        404 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::Forbidden,
        409 => ErrorKind::Conflict,
        429 | 500 | 502 | 503 | 504 => ErrorKind::Transient,
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

/// Kubernetes timestamps (jiff) as chrono times.
pub fn to_chrono(t: k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), u32::try_from(t.subsec_nanosecond()).ok()?)
}

pub(crate) fn api_err(what: &str, e: &kube::Error) -> K8sError {
    K8sError::Api(format!("{what}: {}", error_message(e)))
}

/// Whether a runner of the release may still write its result: a CronJob of the release
/// exists (more loops will come) or one of its Jobs has not finished (no `Complete` or
/// `Failed` condition yet). False when every Job finished or there is none.
pub async fn runner_active(client: &Client, namespace: &str, release: &str) -> Result<bool> {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use kube::api::{Api, ListParams};
    let selector = format!("{INSTANCE_LABEL}={release},{NAME_LABEL}=iter8");
    let lp = ListParams::default().labels(&selector);
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let cj = cronjobs
        .list(&lp)
        .await
        .map_err(|e| api_err(&format!("list cronjobs of release {release}"), &e))?;
    if !cj.items.is_empty() {
        return Ok(true);
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let jobs = jobs
        .list(&lp)
        .await
        .map_err(|e| api_err(&format!("list jobs of release {release}"), &e))?;
    Ok(jobs.items.iter().any(|j| {
        let finished = j
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
        !finished
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runner_active_until_every_job_of_the_release_finished() {
        use serde_json::json;
        let api = mock::MockApi::start().await;
        let jobs = "/apis/batch/v1/namespaces/ns/jobs";
        let job = |name: &str, release: &str, condition: Option<&str>| {
            let mut j = json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": "ns",
                    "labels": {INSTANCE_LABEL: release, NAME_LABEL: "iter8"}},
                "spec": {"template": {"spec": {"containers": []}}},
                "status": {},
            });
            if let Some(c) = condition {
                j["status"]["conditions"] = json!([{"type": c, "status": "True"}]);
            }
            j
        };
        let client = api.client();
        // no runner at all: nothing can write any more
        assert!(!runner_active(&client, "ns", "exp").await.expect("list"));
        api.with(|s| s.put(&format!("{jobs}/exp-1-job"), job("exp-1-job", "exp", None)));
        assert!(runner_active(&client, "ns", "exp").await.expect("list"));
        api.with(|s| {
            s.put(
                &format!("{jobs}/exp-1-job"),
                job("exp-1-job", "exp", Some("Complete")),
            );
            // another release's running Job does not count
            s.put(
                &format!("{jobs}/other-1-job"),
                job("other-1-job", "other", None),
            );
        });
        assert!(!runner_active(&client, "ns", "exp").await.expect("list"));
        api.with(|s| {
            s.put(
                &format!("{jobs}/exp-2-job"),
                job("exp-2-job", "exp", Some("Failed")),
            )
        });
        assert!(!runner_active(&client, "ns", "exp").await.expect("list"));
        // a CronJob will run more loops
        api.with(|s| {
            s.put(
                "/apis/batch/v1/namespaces/ns/cronjobs/exp-3-cronjob",
                json!({"apiVersion": "batch/v1", "kind": "CronJob",
                    "metadata": {"name": "exp-3-cronjob", "namespace": "ns",
                        "labels": {INSTANCE_LABEL: "exp", NAME_LABEL: "iter8"}},
                    "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}),
            )
        });
        assert!(runner_active(&client, "ns", "exp").await.expect("list"));
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
