//! The test Kubernetes API server as a process (used by `scripts/test-cluster`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use iter8_tests::cluster::{parse_image_mapping, resources, TestCluster, TestClusterOptions};

/// A Kubernetes API server for tests: in-memory state, Job/CronJob controllers, RBAC.
#[derive(Debug, Parser)]
struct Args {
    /// Plain HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    http_addr: std::net::SocketAddr,
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    https_addr: std::net::SocketAddr,
    /// Directory for kubeconfigs and pod working directories.
    #[arg(long)]
    state_dir: PathBuf,
    /// Image map entry IMAGE=PATH (repeatable); PATH `@host` runs the container command as-is.
    #[arg(long = "image")]
    images: Vec<String>,
    /// Mark Deployments Available as soon as they are written.
    #[arg(long)]
    auto_available: bool,
    /// Also serve Knative Services and KServe InferenceServices.
    #[arg(long)]
    serving_crds: bool,
    /// Podman mode: pods whose image is in local podman storage run as containers
    /// (`podman run --runtime runc`); other images use the image map.
    #[arg(long, env = "ITER8_TEST_PODMAN", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    podman: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let image_map = args
        .images
        .iter()
        .map(|s| parse_image_mapping(s).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut extra = Vec::new();
    if args.serving_crds {
        extra.push(resources::knative_service());
        extra.push(resources::kserve_inference_service());
    }
    let tc = TestCluster::start_with(TestClusterOptions {
        image_map,
        auto_available: args.auto_available,
        extra_resources: extra,
        http_addr: Some(args.http_addr),
        https_addr: Some(args.https_addr),
        state_dir: Some(args.state_dir.clone()),
        podman: args.podman,
    })
    .await
    .context("starting the test API server")?;
    std::fs::write(args.state_dir.join("admin-token"), tc.admin_token())
        .context("writing admin-token")?;
    std::fs::write(
        args.state_dir.join("urls"),
        format!("{}\n{}\n", tc.https_url(), tc.http_url()),
    )
    .context("writing urls")?;
    println!("https: {}", tc.https_url());
    println!("http: {}", tc.http_url());
    println!("kubeconfig: {}", tc.kubeconfig_path().display());
    iter8_tests::cluster::harness::run_forever(tc).await;
    Ok(())
}
