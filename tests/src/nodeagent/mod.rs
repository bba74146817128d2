//! The node agent: our kubelet for the test cluster (`iter8-node-agent`).
//!
//! Against a real API server it registers a Ready Node and keeps it alive (Lease in
//! `kube-node-lease`, status heartbeats) ([`node`]); with `--bind-pending` binds pending
//! pods to itself where no kube-scheduler runs ([`pods`]); runs each pod's containers ([`worker`]): as local processes through the
//! image map, each in its own mount namespace with the pod's volumes (the ServiceAccount
//! token from the TokenRequest API at the standard path among them) ([`process`],
//! [`volumes`], [`env`]), or with `--podman` as real containers of images in local podman
//! storage; reports pod status as the kubelet does ([`status`]); stops containers and
//! finalises the deletion of deleted pods; and serves the kubelet's log endpoint over TLS
//! ([`server`], [`logs`]).
//!
//! Which runtime runs an image ([`resolve_runtime`]): an image-map entry spelling the
//! image reference exactly wins; then, with `--podman`, an image in local podman storage
//! runs under podman; then an image-map pattern (name, repository or `*`) runs the mapped
//! binary; otherwise the container waits with `ErrImagePull` (`ErrImageNeverPull` for
//! `imagePullPolicy: Never`).

pub mod container;
pub mod env;
pub mod images;
pub mod logs;
pub mod node;
pub mod podman;
pub mod pods;
pub mod process;
pub mod server;
pub mod status;
pub mod volumes;
pub mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use images::{parse_image_mapping, resolve_image, ImageMapping, ImageTarget};
use podman::LocalImage;

/// Errors of the node agent.
#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The kubeconfig could not be loaded.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// An API request failed.
    #[error("{what}: {source}")]
    Api {
        /// What was asked.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// A flag is wrong.
    #[error("{0}")]
    Config(String),
}

impl NodeAgentError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        NodeAgentError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// An API error while doing `what`.
    pub fn api(what: impl Into<String>, source: kube::Error) -> Self {
        NodeAgentError::Api {
            what: what.into(),
            source,
        }
    }
}

/// The agent's configuration (its flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Kubeconfig of the node's identity (`system:node:NAME`).
    pub kubeconfig: PathBuf,
    /// Node name.
    pub node_name: String,
    /// Pod directories (volumes, logs).
    pub state_dir: PathBuf,
    /// Log endpoint address.
    pub listen: SocketAddr,
    /// Serving certificate and key of the log endpoint.
    pub tls_cert: PathBuf,
    /// Its key.
    pub tls_key: PathBuf,
    /// CA of the clients allowed at the log endpoint (the API server's kubelet client).
    pub client_ca: PathBuf,
    /// The API server's URL as pods reach it (`KUBERNETES_SERVICE_HOST`/`PORT`).
    pub api_server_url: String,
    /// The cluster CA.
    pub ca: PathBuf,
    /// Image map.
    pub images: Vec<ImageMapping>,
    /// Run images found in local podman storage under podman.
    pub podman: bool,
    /// Bind pending pods to this node (when no kube-scheduler runs; the node's identity
    /// then needs list/watch on pods and create on pods/binding).
    pub bind_pending: bool,
}

impl Config {
    /// Host and port of the API server URL.
    pub fn api_host_port(&self) -> Result<(String, u16), NodeAgentError> {
        let uri: http::Uri = self.api_server_url.parse().map_err(|e| {
            NodeAgentError::Config(format!(
                "--api-server-url {}: {e} (e.g. https://127.0.0.1:6443)",
                self.api_server_url
            ))
        })?;
        let host = uri
            .host()
            .unwrap_or("127.0.0.1")
            .trim_matches(['[', ']'])
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        Ok((host, port))
    }
}

/// What runs a container's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// The mapped binary replaces the entrypoint.
    Binary(PathBuf),
    /// `command[0]` runs as-is on this machine.
    Host,
    /// A container from local podman storage.
    Podman(LocalImage),
}

/// Picks the runtime of an image (see the module documentation for the precedence), or
/// the waiting reason and message.
pub async fn resolve_runtime(
    config: &Config,
    image: &str,
    pull_policy: Option<&str>,
) -> Result<Runtime, (&'static str, String)> {
    let target = |t: ImageTarget| match t {
        ImageTarget::Binary(b) => Runtime::Binary(b),
        ImageTarget::Host => Runtime::Host,
    };
    if let Some(m) = config.images.iter().find(|m| m.pattern == image) {
        return Ok(target(m.target.clone()));
    }
    if config.podman {
        if let Some(img) = podman::local_image(image).await {
            return Ok(Runtime::Podman(img));
        }
    }
    if let Some(t) = resolve_image(&config.images, image) {
        return Ok(target(t));
    }
    let where_ = if config.podman {
        "neither in local podman storage nor in the node agent's image map (--image PATTERN=PATH)"
    } else {
        "not in the node agent's image map (--image PATTERN=PATH; --podman runs images of local podman storage)"
    };
    if pull_policy == Some("Never") {
        Err((
            "ErrImageNeverPull",
            format!("Container image \"{image}\" is not present with pull policy of Never: it is {where_}"),
        ))
    } else {
        Err((
            "ErrImagePull",
            format!("image \"{image}\" cannot be pulled here: it is {where_}"),
        ))
    }
}

/// Shared state of the running agent.
#[derive(Clone)]
pub struct Ctx {
    /// The node's client.
    pub client: kube::Client,
    /// Flags.
    pub config: Arc<Config>,
}

/// Runs the agent until the process ends: log endpoint, node registration and heartbeat,
/// binding, pods.
pub async fn run(config: Config) -> Result<(), NodeAgentError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    config.api_host_port()?;
    let kc = kube::config::Kubeconfig::read_from(&config.kubeconfig)
        .map_err(|e| NodeAgentError::Kubeconfig(format!("{}: {e}", config.kubeconfig.display())))?;
    let kcfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| NodeAgentError::Kubeconfig(format!("{}: {e}", config.kubeconfig.display())))?;
    let client =
        kube::Client::try_from(kcfg).map_err(|e| NodeAgentError::Kubeconfig(e.to_string()))?;
    std::fs::create_dir_all(config.state_dir.join("pods"))
        .map_err(|e| NodeAgentError::io(&config.state_dir, e))?;
    let tls = server::tls_config(&config.tls_cert, &config.tls_key, &config.client_ca)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| NodeAgentError::Config(format!("--listen {}: {e}", config.listen)))?;
    let port = listener
        .local_addr()
        .map_err(|e| NodeAgentError::Config(format!("--listen {}: {e}", config.listen)))?
        .port();
    let ctx = Ctx {
        client,
        config: Arc::new(config),
    };
    tokio::spawn(server::serve(listener, tls, ctx.config.state_dir.clone()));
    node::register(&ctx, port).await?;
    tracing::info!(node = %ctx.config.node_name, port, "node registered");
    tokio::spawn(node::keep_alive(ctx.clone(), port));
    if ctx.config.bind_pending {
        tokio::spawn(pods::bind_pending(ctx.clone()));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| NodeAgentError::Config(format!("SIGTERM handler: {e}")))?;
    tokio::select! {
        _ = pods::run_node_pods(ctx) => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Stopping: the pods' processes are in process groups of their own; end them too.
    tracing::info!("stopping the containers");
    process::stop_all(std::time::Duration::from_secs(5)).await;
    Ok(())
}
