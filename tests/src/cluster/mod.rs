//! A Kubernetes API server for tests (test support, not product).
//!
//! What it serves, and its documented simplifications, are described in
//! `tests/README.md`. Entry points: [`TestCluster::start`] (in-process, for Rust tests)
//! and the `test-apiserver` binary (used by `scripts/test-cluster`).

pub mod auth;
pub mod controllers;
pub mod harness;
pub mod patch;
pub mod podman;
pub mod proto;
pub mod resources;
pub mod selector;
pub mod server;
pub mod store;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

pub use harness::{TestCluster, TestClusterOptions};
pub use resources::ResourceDef;
pub use store::{ApiError, Identity, RequestLogEntry, Store};

/// What an image runs as on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageTarget {
    /// This binary replaces the image's entrypoint (`command[0]`); the rest of `command`
    /// and `args` are its arguments.
    Binary(PathBuf),
    /// The container's `command[0]` is run as-is on the host.
    Host,
}

/// One image-map entry: `pattern` is an image name (`iter8-runner`, matching any
/// registry and tag), a full repository (`ghcr.io/x/iter8-runner`), or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMapping {
    /// Image pattern.
    pub pattern: String,
    /// What matching images run.
    pub target: ImageTarget,
}

/// Parses `PATTERN=PATH` (PATH `@host` selects [`ImageTarget::Host`]).
pub fn parse_image_mapping(s: &str) -> Result<ImageMapping, String> {
    let (p, t) = s.split_once('=').ok_or_else(|| {
        format!("image map entry '{s}': expected IMAGE=PATH, e.g. iter8-runner=target/debug/iter8-runner")
    })?;
    let target = if t == "@host" {
        ImageTarget::Host
    } else {
        ImageTarget::Binary(PathBuf::from(t))
    };
    Ok(ImageMapping {
        pattern: p.to_string(),
        target,
    })
}

/// The repository part of an image reference (no tag, no digest).
fn image_repo(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// Finds what an image runs as.
pub fn resolve_image(map: &[ImageMapping], image: &str) -> Option<ImageTarget> {
    let repo = image_repo(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    map.iter()
        .find(|m| {
            let pat = image_repo(&m.pattern);
            pat == "*" || pat == repo || (!pat.contains('/') && pat == last)
        })
        .map(|m| m.target.clone())
}

/// A pod's captured output.
pub type LogBuffer = Arc<Mutex<Vec<u8>>>;

/// Static configuration of a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// Image → binary map for the Job controller.
    pub image_map: Vec<ImageMapping>,
    /// Mark every Deployment Available as soon as it is written.
    pub auto_available: bool,
    /// Directory for kubeconfigs and pod working directories.
    pub state_dir: PathBuf,
    /// Backoff between failed Job attempts (real Kubernetes: 10s doubling).
    pub job_backoff: std::time::Duration,
    /// Podman mode: a pod whose image is in local podman storage runs as a container
    /// (`podman run --runtime runc`), see [`podman`]; other images use the image map.
    pub podman: bool,
}

/// The shared core: store, configuration, addresses, TLS, pod processes.
#[derive(Debug)]
pub struct Cluster {
    /// The object store.
    pub store: Store,
    /// Configuration.
    pub config: ClusterConfig,
    /// TLS material.
    pub tls: tls::TlsMaterial,
    /// The admin bearer token.
    pub admin_token: String,
    http_addr: OnceLock<SocketAddr>,
    https_addr: OnceLock<SocketAddr>,
    pod_logs: Mutex<HashMap<(String, String), LogBuffer>>,
    kills: Mutex<HashMap<(String, String), tokio::sync::oneshot::Sender<()>>>,
    groups: Mutex<std::collections::HashSet<u32>>,
    containers: Mutex<std::collections::HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    /// A new cluster with the default namespaces (`default`, `kube-system`, `kube-public`)
    /// and a `cluster-admin` ClusterRole.
    pub fn new(config: ClusterConfig) -> Result<Arc<Self>, tls::TlsError> {
        let tls = tls::generate()?;
        let admin_token = store::random_token();
        let c = Arc::new(Cluster {
            store: Store::default(),
            config,
            tls,
            admin_token: admin_token.clone(),
            http_addr: OnceLock::new(),
            https_addr: OnceLock::new(),
            pod_logs: Mutex::new(HashMap::new()),
            kills: Mutex::new(HashMap::new()),
            groups: Mutex::new(std::collections::HashSet::new()),
            containers: Mutex::new(std::collections::HashSet::new()),
        });
        c.store.add_token(&admin_token, Identity::admin());
        if let Some(ns) = c.store.resource("", "namespaces") {
            for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let _ = c.create(
                    &ns,
                    "",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}),
                );
            }
        }
        if let Some(cr) = c
            .store
            .resource("rbac.authorization.k8s.io", "clusterroles")
        {
            let _ = c.create(
                &cr,
                "",
                json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "cluster-admin"},
                    "rules": [
                        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    ],
                }),
            );
        }
        Ok(c)
    }

    /// Records the listening addresses.
    pub fn set_addrs(&self, http: SocketAddr, https: SocketAddr) {
        let _ = self.http_addr.set(http);
        let _ = self.https_addr.set(https);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        self.http_addr
            .get()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn https_url(&self) -> String {
        self.https_addr
            .get()
            .map(|a| format!("https://{a}"))
            .unwrap_or_default()
    }

    /// `127.0.0.1:PORT` of the HTTPS listener (the "in-cluster" address).
    pub fn host_port(&self) -> String {
        self.https_addr
            .get()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// A kubeconfig (YAML) for a bearer token.
    pub fn kubeconfig(&self, token: &str, user: &str, namespace: &str, https: bool) -> String {
        use base64::Engine;
        let mut cluster = json!({"server": if https { self.https_url() } else { self.http_url() }});
        if https {
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(self.tls.ca_pem.as_bytes()));
        }
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "iter8-test", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "iter8-test", "context": {"cluster": "iter8-test", "user": user, "namespace": namespace}}],
            "current-context": "iter8-test",
            "preferences": {},
        });
        serde_yaml::to_string(&cfg).unwrap_or_default()
    }

    /// Issues a new token for a service account.
    pub fn issue_token(&self, ns: &str, sa: &str) -> String {
        let t = store::random_token();
        self.store.add_token(&t, Identity::service_account(ns, sa));
        t
    }

    /// Creates an object, with the side effects of a real cluster: a namespace gets a
    /// `default` ServiceAccount, a ServiceAccount gets a token, a Job starts running.
    pub fn create(
        self: &Arc<Self>,
        def: &ResourceDef,
        ns: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let created = self.store.create(def, ns, obj)?;
        let name = created["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match (def.group.as_str(), def.plural.as_str()) {
            ("", "namespaces") => {
                if let Some(sa) = self.store.resource("", "serviceaccounts") {
                    let _ = self.create(
                        &sa,
                        &name,
                        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
                    );
                }
            }
            ("", "serviceaccounts") if self.store.token_for(ns, &name).is_none() => {
                self.issue_token(ns, &name);
            }
            ("batch", "jobs") if tokio::runtime::Handle::try_current().is_ok() => {
                let uid = created["metadata"]["uid"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                tokio::spawn(controllers::run_job(
                    self.clone(),
                    ns.to_string(),
                    name,
                    uid,
                ));
            }
            _ => {}
        }
        Ok(created)
    }

    /// Deletes an object and, unless orphaning, what it owns (recursively); a deleted
    /// namespace takes everything in it; a deleted Pod's process is killed. Jobs orphan
    /// their Pods when no propagation policy is given, as on a real cluster.
    pub fn delete(
        self: &Arc<Self>,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        policy: Option<&str>,
        orphan: bool,
    ) -> Result<Value, ApiError> {
        if def.group.is_empty()
            && def.plural == "namespaces"
            && tokio::runtime::Handle::try_current().is_ok()
        {
            // As on a real cluster, a namespace is Terminating while its content goes.
            let terminating = self.store.modify(def, "", name, false, |n| {
                n["metadata"]["deletionTimestamp"] = json!(store::now());
            })?;
            let terminating = self
                .store
                .modify(def, "", name, true, |n| {
                    n["status"]["phase"] = json!("Terminating");
                })
                .unwrap_or(terminating);
            let me = self.clone();
            let (d, n) = (def.clone(), name.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                for key in me.store.in_namespace(&n) {
                    if let Some(rd) = me.store.resource(&key.group, &key.plural) {
                        let _ =
                            me.delete(&rd, &key.namespace, &key.name, Some("Background"), false);
                    }
                }
                let _ = me.store.delete(&d, "", &n);
            });
            return Ok(terminating);
        }
        let deleted = self.store.delete(def, ns, name)?;
        if def.group.is_empty() && def.plural == "pods" {
            if let Some(tx) = lock(&self.kills).remove(&(ns.to_string(), name.to_string())) {
                let _ = tx.send(());
            }
        }
        if def.group.is_empty() && def.plural == "namespaces" {
            for key in self.store.in_namespace(name) {
                if let Some(d) = self.store.resource(&key.group, &key.plural) {
                    let _ = self.delete(&d, &key.namespace, &key.name, Some("Background"), false);
                }
            }
        }
        let orphan = orphan
            || match policy {
                Some("Orphan") => true,
                Some(_) => false,
                None => def.group == "batch" && def.plural == "jobs",
            };
        if !orphan {
            if let Some(uid) = deleted["metadata"]["uid"].as_str() {
                for key in self.store.owned_by(uid) {
                    if let Some(d) = self.store.resource(&key.group, &key.plural) {
                        let _ =
                            self.delete(&d, &key.namespace, &key.name, Some("Background"), false);
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// The captured output (stdout and stderr) of a pod's container.
    pub fn pod_log(&self, ns: &str, pod: &str) -> Vec<u8> {
        lock(&self.pod_logs)
            .get(&(ns.to_string(), pod.to_string()))
            .map(|b| lock(b).clone())
            .unwrap_or_default()
    }

    pub(crate) fn log_buffer(&self, ns: &str, pod: &str) -> Arc<Mutex<Vec<u8>>> {
        lock(&self.pod_logs)
            .entry((ns.to_string(), pod.to_string()))
            .or_default()
            .clone()
    }

    pub(crate) fn register_kill(&self, ns: &str, pod: &str, tx: tokio::sync::oneshot::Sender<()>) {
        lock(&self.kills).insert((ns.to_string(), pod.to_string()), tx);
    }

    pub(crate) fn track_group(&self, pgid: u32, running: bool) {
        let mut g = lock(&self.groups);
        if running {
            g.insert(pgid);
        } else {
            g.remove(&pgid);
        }
    }

    pub(crate) fn track_container(&self, name: &str, running: bool) {
        let mut c = lock(&self.containers);
        if running {
            c.insert(name.to_string());
        } else {
            c.remove(name);
        }
    }

    /// Kills every container process still running (when the cluster stops), and removes
    /// the podman containers of podman mode.
    pub fn kill_all_processes(&self) {
        let groups: Vec<u32> = lock(&self.groups).drain().collect();
        for g in groups {
            controllers::kill_group(g);
        }
        let containers: Vec<String> = lock(&self.containers).drain().collect();
        podman::remove_containers_blocking(&containers);
    }

    pub(crate) fn unregister_kill(&self, ns: &str, pod: &str) {
        lock(&self.kills).remove(&(ns.to_string(), pod.to_string()));
    }

    /// Marks a Deployment Available (status as a Deployment controller would write it).
    pub fn mark_available(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        let def = self
            .store
            .resource("apps", "deployments")
            .ok_or_else(|| ApiError::new(404, "NotFound", "deployments are not served"))?;
        let d = self.store.get(&def, ns, name)?;
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let gen = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let now = store::now();
        let status = json!({
            "observedGeneration": gen,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": format!("ReplicaSet \"{name}\" has successfully progressed."), "lastUpdateTime": now, "lastTransitionTime": now},
            ],
        });
        self.store.patch_status(&def, ns, name, &status)
    }

    /// Creates a Job from a CronJob now, as its schedule would (honours
    /// `concurrencyPolicy: Forbid` with a 409 Conflict). Returns the Job name.
    pub fn trigger_cronjob(self: &Arc<Self>, ns: &str, name: &str) -> Result<String, ApiError> {
        controllers::fire_cronjob(self, ns, name, chrono::Utc::now(), true)
    }
}
