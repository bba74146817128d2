//! The Rust test harness: start the API server in-process on free ports.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use super::store::{ApiError, RequestLogEntry};
use super::{controllers, server, Cluster, ClusterConfig, ImageMapping, ResourceDef};

/// Errors starting or using the test cluster.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Binding or file I/O failed.
    #[error("test cluster I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Certificates could not be generated.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    /// The kube client could not be built.
    #[error("kube client: {0}")]
    Kube(String),
    /// An API operation failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A wait timed out.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Options for [`TestCluster::start_with`].
#[derive(Debug, Clone, Default)]
pub struct TestClusterOptions {
    /// Image → binary map for Jobs.
    pub image_map: Vec<ImageMapping>,
    /// Mark Deployments Available automatically.
    pub auto_available: bool,
    /// Extra resource types to serve.
    pub extra_resources: Vec<ResourceDef>,
    /// Fixed addresses (default: 127.0.0.1:0 for both).
    pub http_addr: Option<std::net::SocketAddr>,
    /// Fixed HTTPS address.
    pub https_addr: Option<std::net::SocketAddr>,
    /// Where to keep kubeconfigs and pod directories (default: a temporary directory).
    pub state_dir: Option<PathBuf>,
    /// Podman mode: pods whose image is in local podman storage run as containers
    /// (`podman run --runtime runc`); other images use `image_map`.
    pub podman: bool,
}

/// A running test API server with its controllers. Stops when dropped.
#[derive(Debug)]
pub struct TestCluster {
    /// The shared core (store, config, TLS).
    pub cluster: Arc<Cluster>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
    kubeconfig: PathBuf,
    kubeconfig_http: PathBuf,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.cluster.kill_all_processes();
    }
}

async fn serve(
    cluster: Arc<Cluster>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let cluster = cluster.clone();
        let tls = tls.clone();
        let insecure = tls.is_none();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let cluster = cluster.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(server::handle(cluster, req, insecure).await)
                }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match tls {
                Some(acc) => {
                    if let Ok(s) = acc.accept(stream).await {
                        let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}

impl TestCluster {
    /// Starts a cluster on free ports with no image map.
    pub async fn start() -> Result<Self, HarnessError> {
        Self::start_with(TestClusterOptions::default()).await
    }

    /// Starts a cluster with options.
    pub async fn start_with(opts: TestClusterOptions) -> Result<Self, HarnessError> {
        let (tmp, state_dir) = match &opts.state_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("iter8-test-cluster")
                    .tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let cluster = Cluster::new(ClusterConfig {
            image_map: opts.image_map.clone(),
            auto_available: opts.auto_available,
            state_dir: state_dir.clone(),
            job_backoff: Duration::from_millis(200),
            podman: opts.podman,
        })?;
        for r in &opts.extra_resources {
            cluster.store.register(r.clone());
        }
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let http = TcpListener::bind(opts.http_addr.unwrap_or(local)).await?;
        let https = TcpListener::bind(opts.https_addr.unwrap_or(local)).await?;
        cluster.set_addrs(http.local_addr()?, https.local_addr()?);
        let acceptor = tokio_rustls::TlsAcceptor::from(cluster.tls.server_config.clone());
        let mut tasks = vec![
            tokio::spawn(serve(cluster.clone(), http, None)),
            tokio::spawn(serve(cluster.clone(), https, Some(acceptor))),
        ];
        tasks.extend(controllers::spawn(cluster.clone()));
        let kubeconfig = state_dir.join("kubeconfig");
        let kubeconfig_http = state_dir.join("kubeconfig-http");
        std::fs::write(
            &kubeconfig,
            cluster.kubeconfig(&cluster.admin_token, "admin", "default", true),
        )?;
        std::fs::write(
            &kubeconfig_http,
            cluster.kubeconfig(&cluster.admin_token, "admin", "default", false),
        )?;
        Ok(TestCluster {
            cluster,
            tasks,
            _tmp: tmp,
            kubeconfig,
            kubeconfig_http,
        })
    }

    /// Admin kubeconfig over HTTPS (with the generated CA).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Admin kubeconfig over plain HTTP.
    pub fn kubeconfig_http_path(&self) -> &Path {
        &self.kubeconfig_http
    }

    /// `https://127.0.0.1:PORT`.
    pub fn https_url(&self) -> String {
        self.cluster.https_url()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        self.cluster.http_url()
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.cluster.admin_token
    }

    async fn client_from(yaml: &str) -> Result<kube::Client, HarnessError> {
        let kc = kube::config::Kubeconfig::from_yaml(yaml)
            .map_err(|e| HarnessError::Kube(e.to_string()))?;
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| HarnessError::Kube(e.to_string()))?;
        kube::Client::try_from(cfg).map_err(|e| HarnessError::Kube(e.to_string()))
    }

    /// An admin `kube::Client` over HTTPS.
    pub async fn client(&self) -> Result<kube::Client, HarnessError> {
        Self::client_from(&self.cluster.kubeconfig(
            &self.cluster.admin_token,
            "admin",
            "default",
            true,
        ))
        .await
    }

    /// An admin `kube::Client` over plain HTTP.
    pub async fn client_http(&self) -> Result<kube::Client, HarnessError> {
        Self::client_from(&self.cluster.kubeconfig(
            &self.cluster.admin_token,
            "admin",
            "default",
            false,
        ))
        .await
    }

    /// A client authenticated as a ServiceAccount (which must exist), default namespace `ns`.
    pub async fn service_account_client(
        &self,
        ns: &str,
        sa: &str,
    ) -> Result<kube::Client, HarnessError> {
        let token = self.service_account_token(ns, sa)?;
        let user = format!("system:serviceaccount:{ns}:{sa}");
        Self::client_from(&self.cluster.kubeconfig(&token, &user, ns, true)).await
    }

    /// The token of a ServiceAccount (issued when it was created).
    pub fn service_account_token(&self, ns: &str, sa: &str) -> Result<String, HarnessError> {
        self.cluster.store.token_for(ns, sa).ok_or_else(|| {
            HarnessError::Api(ApiError::new(
                404,
                "NotFound",
                format!("serviceaccounts \"{sa}\" not found in namespace \"{ns}\""),
            ))
        })
    }

    /// Writes a kubeconfig for a ServiceAccount and returns its path.
    pub fn service_account_kubeconfig(&self, ns: &str, sa: &str) -> Result<PathBuf, HarnessError> {
        let token = self.service_account_token(ns, sa)?;
        let user = format!("system:serviceaccount:{ns}:{sa}");
        let p = self
            .cluster
            .config
            .state_dir
            .join(format!("kubeconfig-{ns}-{sa}"));
        std::fs::write(&p, self.cluster.kubeconfig(&token, &user, ns, true))?;
        Ok(p)
    }

    /// Creates a Job from a CronJob now (honours concurrencyPolicy Forbid with an error).
    pub fn trigger_cronjob(&self, ns: &str, name: &str) -> Result<String, HarnessError> {
        Ok(self.cluster.trigger_cronjob(ns, name)?)
    }

    /// Waits until a Job has a Complete or Failed condition; returns the Job.
    pub async fn wait_job(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Value, HarnessError> {
        let jobs = self
            .cluster
            .store
            .resource("batch", "jobs")
            .ok_or_else(|| HarnessError::Timeout("jobs are not served".into()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(j) = self.cluster.store.get(&jobs, ns, name) {
                let done = j["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        matches!(c["type"].as_str(), Some("Complete" | "Failed"))
                            && c["status"] == "True"
                    })
                });
                if done {
                    return Ok(j);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout(format!(
                    "job {ns}/{name} did not finish within {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pods of a Job (label `job-name`).
    pub fn job_pods(&self, ns: &str, job: &str) -> Vec<Value> {
        let Some(pods) = self.cluster.store.resource("", "pods") else {
            return Vec::new();
        };
        self.cluster
            .store
            .list(&pods, Some(ns))
            .0
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["job-name"].as_str() == Some(job))
            .collect()
    }

    /// Captured output of a pod.
    pub fn pod_log(&self, ns: &str, pod: &str) -> String {
        String::from_utf8_lossy(&self.cluster.pod_log(ns, pod)).into_owned()
    }

    /// A pod's working directory (local processes) or volume/ServiceAccount files (podman).
    pub fn pod_dir(&self, ns: &str, pod: &str) -> PathBuf {
        self.cluster
            .config
            .state_dir
            .join("pods")
            .join(ns)
            .join(pod)
    }

    /// Podman mode: `podman container inspect` of the pod's finished container (kept as
    /// `container.json` in the pod directory before the container is removed).
    pub fn pod_container_record(&self, ns: &str, pod: &str) -> Option<Value> {
        let bytes = std::fs::read(self.pod_dir(ns, pod).join("container.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every request served so far.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.cluster.store.request_log()
    }

    /// The logged requests made as `user` (e.g. `system:serviceaccount:NS:NAME`).
    pub fn requests_of(&self, user: &str) -> Vec<RequestLogEntry> {
        let mut log = self.request_log();
        log.retain(|e| e.user == user);
        log
    }

    /// Marks a Deployment Available.
    pub fn mark_available(&self, ns: &str, deploy: &str) -> Result<Value, HarnessError> {
        Ok(self.cluster.mark_available(ns, deploy)?)
    }

    /// Serves an extra resource type (e.g. [`super::resources::knative_service`]).
    pub fn register_resource(&self, def: ResourceDef) {
        self.cluster.store.register(def);
    }

    /// Merges `status` into an object's status (e.g. to make a Knative Service Ready).
    pub fn patch_status(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        status: &Value,
    ) -> Result<Value, HarnessError> {
        let def = self.cluster.store.resource(group, plural).ok_or_else(|| {
            HarnessError::Api(ApiError::new(
                404,
                "NotFound",
                format!("{plural}.{group} is not served"),
            ))
        })?;
        Ok(self.cluster.store.patch_status(&def, ns, name, status)?)
    }
}

/// Runs a cluster until the process is stopped (used by the `test-apiserver` binary).
pub async fn run_forever(tc: TestCluster) {
    let _tc = tc;
    futures::future::pending::<()>().await;
}
