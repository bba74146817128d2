//! Test harness for the real control plane that `scripts/test-cluster up` starts
//! (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, and our node agent):
//! connect to it (starting it when it is not up), admin and ServiceAccount clients, unique
//! namespaces per test, kubectl, and waiting for a condition.
//!
//! ```no_run
//! # async fn f() -> Result<(), iter8_tests::k8s::HarnessError> {
//! use iter8_tests::k8s::{Cluster, UpOptions};
//! let c = Cluster::connect(UpOptions::default()).await?;  // $ITER8_TEST_CLUSTER_DIR or .cache/test-cluster
//! let ns = c.namespace("my-test").await?;                   // my-test-<5 chars>, deleted by c.delete_namespace
//! let admin = c.client();
//! let sa = c.service_account_client(&ns, "default").await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// `scripts/test-cluster up` failed.
    #[error("starting the test cluster ({cmd}): {detail}")]
    Up {
        /// The command.
        cmd: String,
        /// Its output.
        detail: String,
    },
    /// The kubeconfig could not be used.
    #[error("kubeconfig {path}: {detail}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was asked.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// A command of the harness (kubectl, scripts/test-cluster) failed.
    #[error("{cmd}: {detail}")]
    Command {
        /// The command.
        cmd: String,
        /// Its output.
        detail: String,
    },
    /// A wait timed out.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        secs: u64,
    },
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Api { what, source }
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."))
        .to_path_buf()
}

/// How to start the cluster when it is not up.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// State directory (default `$ITER8_TEST_CLUSTER_DIR`, else `.cache/test-cluster`).
    /// Tests needing their own image map use a directory of their own.
    pub dir: Option<PathBuf>,
    /// `--image PATTERN=PATH` entries (empty: the script's default map).
    pub images: Vec<String>,
    /// `--podman`.
    pub podman: bool,
    /// The node agent binary (`ITER8_NODE_AGENT`; tests pass
    /// `env!("CARGO_BIN_EXE_iter8-node-agent")`); an empty path: no node agent (no pod
    /// runs, and no runner is built for the image map).
    pub node_agent: Option<PathBuf>,
}

/// A running test cluster.
#[derive(Clone)]
pub struct Cluster {
    /// Its state directory.
    pub dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    client: kube::Client,
}

fn short_id(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_string()
}

impl Cluster {
    /// Connects to the cluster in the options' directory, starting it (under a lock, so
    /// parallel tests start it once) when it is not running.
    pub async fn connect(opts: UpOptions) -> Result<Cluster, HarnessError> {
        let dir = opts
            .dir
            .clone()
            .or_else(|| std::env::var_os("ITER8_TEST_CLUSTER_DIR").map(PathBuf::from))
            .unwrap_or_else(|| repo_root().join(".cache/test-cluster"));
        let script = repo_root().join("scripts/test-cluster");
        let mut up = format!("{} up", sh(&script.display().to_string()));
        for i in &opts.images {
            up.push_str(&format!(" --image {}", sh(i)));
        }
        if opts.podman {
            up.push_str(" --podman");
        }
        let check = format!(
            "{} status >/dev/null 2>&1 || {up} >/dev/null",
            sh(&script.display().to_string())
        );
        if let Some(parent) = dir.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let lock = dir.with_extension("lock");
        let mut cmd = Command::new("flock");
        cmd.arg(&lock)
            .args(["sh", "-c", &check])
            .env("ITER8_TEST_CLUSTER_DIR", &dir)
            .current_dir(repo_root());
        if let Some(a) = &opts.node_agent {
            cmd.env("ITER8_NODE_AGENT", a);
        }
        let out = cmd.output().map_err(|e| HarnessError::Up {
            cmd: check.clone(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(HarnessError::Up {
                cmd: check,
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let kubeconfig = dir.join("kubeconfig");
        let client = client_from(&kubeconfig).await?;
        Ok(Cluster {
            dir,
            kubeconfig,
            client,
        })
    }

    /// The admin client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        std::fs::read_to_string(self.dir.join("url"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// The cluster CA (PEM file).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("pki/ca.crt")
    }

    /// A component's log (e.g. `node-agent`, `kube-apiserver`).
    pub fn component_log(&self, component: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{component}.log")))
            .unwrap_or_default()
    }

    /// Creates a namespace `PREFIX-xxxxx` and returns its name.
    pub async fn namespace(&self, prefix: &str) -> Result<String, HarnessError> {
        let name = format!("{prefix}-{}", short_id(5));
        let api: Api<Namespace> = Api::all(self.client());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
            .map_err(|e| api_err("namespace")(kube::Error::SerdeError(e)))?;
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(api_err(format!("creating namespace {name}")))?;
        // Pods need the namespace's default ServiceAccount (the controller manager's).
        let sas: Api<ServiceAccount> = Api::namespaced(self.client(), &name);
        wait_for(
            &format!("serviceaccount default in {name}"),
            Duration::from_secs(60),
            || async { sas.get_opt("default").await.ok().flatten() },
        )
        .await?;
        Ok(name)
    }

    /// Deletes a namespace (without waiting).
    pub async fn delete_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client());
        let _ = api.delete(name, &DeleteParams::default()).await;
    }

    /// A client acting as ServiceAccount `ns/sa` (a TokenRequest token).
    pub async fn service_account_client(
        &self,
        ns: &str,
        sa: &str,
    ) -> Result<kube::Client, HarnessError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client(), ns);
        let tr: Value = api
            .create_subresource(
                "token",
                sa,
                &PostParams::default(),
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                        "spec": {"expirationSeconds": 3600}}),
            )
            .await
            .map_err(api_err(format!("a token for serviceaccount {ns}/{sa}")))?;
        let token = tr["status"]["token"].as_str().unwrap_or("").to_string();
        let mut cfg = kube_config(&self.kubeconfig).await?;
        cfg.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };
        cfg.default_namespace = ns.to_string();
        kube::Client::try_from(cfg).map_err(|e| HarnessError::Kubeconfig {
            path: self.kubeconfig.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// A kubeconfig acting as ServiceAccount `ns/sa` (`scripts/test-cluster sa-kubeconfig`:
    /// a TokenRequest token), for programs under test.
    pub fn service_account_kubeconfig(&self, ns: &str, sa: &str) -> Result<PathBuf, HarnessError> {
        let out = self.script().args(["sa-kubeconfig", ns, sa]).output();
        let cmd = format!("scripts/test-cluster sa-kubeconfig {ns} {sa}");
        match out {
            Ok(o) if o.status.success() => Ok(PathBuf::from(
                String::from_utf8_lossy(&o.stdout).trim().to_string(),
            )),
            Ok(o) => Err(HarnessError::Command {
                cmd,
                detail: String::from_utf8_lossy(&o.stderr).into_owned(),
            }),
            Err(e) => Err(HarnessError::Command {
                cmd,
                detail: e.to_string(),
            }),
        }
    }

    /// `scripts/test-cluster` for this cluster's state directory.
    fn script(&self) -> Command {
        let mut c = Command::new(repo_root().join("scripts/test-cluster"));
        c.env("ITER8_TEST_CLUSTER_DIR", &self.dir)
            .current_dir(repo_root());
        c
    }

    /// Stops the cluster (`scripts/test-cluster down`); its state is removed.
    pub fn down(&self) {
        let _ = self.script().arg("down").output();
    }

    /// A guard that stops the cluster when dropped (also when a test panics).
    pub fn down_on_drop(&self) -> DownOnDrop {
        DownOnDrop(self.clone())
    }

    /// Waits until Job `ns/name` is finished (condition Complete or Failed) and returns it.
    /// On a timeout the error carries the Job's status and the node agent's last lines.
    pub async fn wait_job(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Job, HarnessError> {
        let jobs: Api<Job> = Api::namespaced(self.client(), ns);
        let done =
            wait_for(&format!("job {ns}/{name} to finish"), timeout, || async {
                let j = jobs.get_opt(name).await.ok()??;
                let finished =
                    j.status.as_ref()?.conditions.as_ref()?.iter().any(|c| {
                        (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"
                    });
                finished.then_some(j)
            })
            .await;
        match done {
            Ok(j) => Ok(j),
            Err(e) => {
                let status = jobs
                    .get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .map(|j| serde_json::to_string(&j.status).unwrap_or_default())
                    .unwrap_or_else(|| "no such job".into());
                let log = self.component_log("node-agent");
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                Err(HarnessError::Timeout {
                    what: format!(
                        "{} (job status: {status}; node agent log, newest first:\n{})",
                        match e {
                            HarnessError::Timeout { what, .. } => what,
                            other => other.to_string(),
                        },
                        tail.join("\n")
                    ),
                    secs: timeout.as_secs(),
                })
            }
        }
    }

    /// The pods of Job `ns/job` (label `batch.kubernetes.io/job-name`).
    pub async fn job_pods(&self, ns: &str, job: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client(), ns)
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    /// `kubectl logs -n NS TARGET` (through the API server and the node agent's log
    /// endpoint); stdout, or the error text.
    pub fn logs(&self, ns: &str, target: &str) -> String {
        match self.kubectl().args(["logs", "-n", ns, target]).output() {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => format!(
                "(kubectl logs failed: {})",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("(kubectl logs: {e})"),
        }
    }

    /// Starts a loop as users do by hand: `kubectl create job JOB --from=cronjob/CRONJOB`.
    pub fn create_job_from_cronjob(&self, ns: &str, job: &str, cronjob: &str) {
        let from = format!("--from=cronjob/{cronjob}");
        if let Err(e) = self.kubectl_run(&["create", "job", job, &from, "-n", ns], None) {
            panic!("kubectl create job {job} {from}: {e}");
        }
    }

    /// Runs `kubectl ARGS` (admin), optionally with `stdin`; its stdout, or an error with
    /// its stderr.
    pub fn kubectl_run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, HarnessError> {
        use std::io::Write;
        use std::process::Stdio;
        let cmd = format!("kubectl {}", args.join(" "));
        let err = |detail: String| HarnessError::Command {
            cmd: cmd.clone(),
            detail,
        };
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(e.to_string()))?;
        if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
            w.write_all(text.as_bytes())
                .map_err(|e| err(e.to_string()))?;
        }
        let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(err(String::from_utf8_lossy(&out.stderr).into_owned()))
        }
    }

    /// The node agent's directory of a pod (`STATE/node/pods/NS_NAME_UID`: its `volumes/`,
    /// `logs/`, and under podman the container's `podman container inspect` record); it is
    /// removed when the pod is deleted.
    pub fn pod_dir(&self, pod: &Pod) -> PathBuf {
        let m = &pod.metadata;
        self.dir.join("node/pods").join(format!(
            "{}_{}_{}",
            m.namespace.as_deref().unwrap_or(""),
            m.name.as_deref().unwrap_or(""),
            m.uid.as_deref().unwrap_or("")
        ))
    }

    /// The record (`podman container inspect`) of the podman container the node agent ran
    /// for the pod's first container, kept once it ended.
    pub fn container_record(&self, pod: &Pod) -> Option<Value> {
        let dir = std::fs::read_dir(self.pod_dir(pod)).ok()?;
        let mut files: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let text = std::fs::read_to_string(files.first()?).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The API server's audit log (Metadata level: every request but lease renewals and
    /// health probes), oldest first.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        let text = std::fs::read_to_string(self.dir.join("logs/audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| AuditEvent::from_json(&v))
            .collect()
    }

    /// The audit events of requests made as `user` (e.g.
    /// `system:serviceaccount:NS:SA`).
    pub fn requests_of(&self, user: &str) -> Vec<AuditEvent> {
        self.audit_events()
            .into_iter()
            .filter(|e| e.user == user)
            .collect()
    }

    /// `kubectl --kubeconfig ADMIN` (the cluster's own kubectl from `scripts/tools`, else
    /// the one on PATH).
    pub fn kubectl(&self) -> Command {
        let tools = repo_root().join("scripts/tools");
        let program = Command::new(&tools)
            .args(["path", "kubectl"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "kubectl".to_string());
        let mut c = Command::new(program);
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }
}

/// Stops a cluster when dropped ([`Cluster::down_on_drop`]).
pub struct DownOnDrop(Cluster);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        self.0.down();
    }
}

/// One request as the API server's audit log records it.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// `user.username`.
    pub user: String,
    /// The verb (`get`, `patch`, `create`, `list`, `watch`, ...).
    pub verb: String,
    /// `objectRef.resource` (empty for non-resource URLs).
    pub resource: String,
    /// `objectRef.subresource`.
    pub subresource: String,
    /// `objectRef.namespace`.
    pub namespace: String,
    /// `objectRef.name`.
    pub name: String,
    /// `responseStatus.code`.
    pub code: u16,
    /// The authorizer's decision (`authorization.k8s.io/decision`: `allow`, `forbid`).
    pub decision: String,
    /// The request URI.
    pub uri: String,
    /// Every annotation (Pod Security's among them).
    pub annotations: Value,
}

impl AuditEvent {
    fn from_json(v: &Value) -> AuditEvent {
        let s = |x: &Value| x.as_str().unwrap_or("").to_string();
        let o = &v["objectRef"];
        AuditEvent {
            user: s(&v["user"]["username"]),
            verb: s(&v["verb"]),
            resource: s(&o["resource"]),
            subresource: s(&o["subresource"]),
            namespace: s(&o["namespace"]),
            name: s(&o["name"]),
            code: v["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            decision: s(&v["annotations"]["authorization.k8s.io/decision"]),
            uri: s(&v["requestURI"]),
            annotations: v["annotations"].clone(),
        }
    }

    /// Allowed by the authorizer.
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'"'"'"#))
}

async fn kube_config(path: &Path) -> Result<kube::Config, HarnessError> {
    let err = |detail: String| HarnessError::Kubeconfig {
        path: path.display().to_string(),
        detail,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))
}

async fn client_from(path: &Path) -> Result<kube::Client, HarnessError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = kube_config(path).await?;
    kube::Client::try_from(cfg).map_err(|e| HarnessError::Kubeconfig {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Polls `f` every 200 ms until it gives `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pod spec that Pod Security `restricted` admits (non-root user, no privilege
/// escalation, all capabilities dropped, RuntimeDefault seccomp), with `containers`.
pub fn restricted_pod_spec(containers: Vec<Value>) -> Value {
    let containers: Vec<Value> = containers
        .into_iter()
        .map(|mut c| {
            c["securityContext"] = json!({"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true});
            c
        })
        .collect();
    json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
    })
}
