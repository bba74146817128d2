//! The node agent: plays the kubelet of the test cluster's real control plane (see
//! `iter8_tests::nodeagent`). Started by `scripts/test-cluster up`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use iter8_tests::nodeagent::{parse_image_mapping, run, Config};

/// Registers a Ready Node and runs the pods bound to it as local processes
/// (image map) or podman containers; serves the kubelet's log endpoint over TLS.
#[derive(Debug, Parser)]
#[command(name = "iter8-node-agent")]
struct Args {
    /// Kubeconfig of the node (client certificate CN system:node:NAME, O system:nodes).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Node name.
    #[arg(long, default_value = "iter8-node")]
    node_name: String,
    /// Directory for the pods' volumes and logs.
    #[arg(long)]
    state_dir: PathBuf,
    /// Address of the log endpoint (the kubelet port the Node advertises).
    #[arg(long, default_value = "127.0.0.1:10250")]
    listen: std::net::SocketAddr,
    /// Serving certificate of the log endpoint (PEM).
    #[arg(long)]
    tls_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    tls_key: PathBuf,
    /// CA that signs the clients allowed at the log endpoint (the API server's kubelet client).
    #[arg(long)]
    client_ca: PathBuf,
    /// The API server's URL as pods reach it (KUBERNETES_SERVICE_HOST / _PORT).
    #[arg(long)]
    api_server_url: String,
    /// The cluster CA (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// Image map entry PATTERN=PATH (repeatable): the binary replaces the image's entrypoint;
    /// PATTERN is an exact reference, an image name (any registry and tag), a repository, or `*`;
    /// PATH `@host` runs the container's command as-is.
    #[arg(long = "image")]
    images: Vec<String>,
    /// Run images present in local podman storage as podman containers (exact image-map
    /// entries still win).
    #[arg(long)]
    podman: bool,
    /// Bind pending pods of the default scheduler to this node (only where no kube-scheduler
    /// runs; the node's identity then needs list/watch pods and create pods/binding).
    #[arg(long)]
    bind_pending: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let images = a
        .images
        .iter()
        .map(|s| parse_image_mapping(s).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    run(Config {
        kubeconfig: a.kubeconfig,
        node_name: a.node_name,
        state_dir: a.state_dir,
        listen: a.listen,
        tls_cert: a.tls_cert,
        tls_key: a.tls_key,
        client_ca: a.client_ca,
        api_server_url: a.api_server_url,
        ca: a.ca,
        images,
        podman: a.podman,
        bind_pending: a.bind_pending,
    })
    .await
    .context("iter8-node-agent")
}
