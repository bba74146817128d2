//! Helpers shared by the end-to-end tests (e2e_helm, e2e_image): paths, running helm (v4
//! and v3) and iter8 against the test cluster (the real control plane of
//! `scripts/test-cluster`), and a load target on 127.0.0.1.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use iter8_tests::k8s::Cluster;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A binary of the `iter8` package, next to this test's target directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not built: run `cargo build -p iter8 --bins` (or `cargo test --workspace`)",
        p.display()
    );
    p
}

pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

pub fn to_run(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The real helm v4 (`$HELM`, else `scripts/helm-path 4`) against the cluster.
pub async fn helm(c: &Cluster, args: &[&str]) -> Run {
    run_helm(&helm_binary("HELM", "4"), c, args).await
}

/// The real helm v3 (`$HELM3`, else `scripts/helm-path 3`) against the cluster.
pub async fn helm3(c: &Cluster, args: &[&str]) -> Run {
    run_helm(&helm_binary("HELM3", "3"), c, args).await
}

fn helm_binary(var: &str, major: &str) -> String {
    if let Some(h) = std::env::var(var).ok().filter(|h| !h.is_empty()) {
        return h;
    }
    let o = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/helm-path"))
        .arg(major)
        .output()
        .expect("scripts/helm-path");
    assert!(
        o.status.success(),
        "scripts/helm-path {major}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

async fn run_helm(helm: &str, c: &Cluster, args: &[&str]) -> Run {
    let o = tokio::process::Command::new(helm)
        .args(args)
        .env("KUBECONFIG", &c.kubeconfig)
        .current_dir(repo_root())
        .output()
        .await
        .expect("run helm");
    to_run(o)
}

pub async fn iter8(c: &Cluster, args: &[&str]) -> Run {
    let o = tokio::process::Command::new(bin("iter8"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run iter8");
    to_run(o)
}

/// `iter8 assert -c CONDITIONS --release RELEASE -n NS` plus `extra` arguments.
pub async fn iter8_assert(
    c: &Cluster,
    conditions: &str,
    release: &str,
    ns: &str,
    extra: &[&str],
) -> Run {
    let mut args = vec!["assert", "-c", conditions, "--release", release, "-n", ns];
    args.extend_from_slice(extra);
    iter8(c, &args).await
}

/// A hyper server answering 200 on 127.0.0.1 (the experiment's load target).
pub async fn target() -> SocketAddr {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}
