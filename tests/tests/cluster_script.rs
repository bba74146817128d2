//! `scripts/test-cluster-legacy up | mark-available | trigger | down` drive the server binary.

#![allow(clippy::unwrap_used)] // test helpers: a failed step is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn script(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg(root().join("scripts/test-cluster-legacy"))
        .args(args)
        .env("ITER8_TEST_CLUSTER_DIR", dir)
        .env("ITER8_TEST_APISERVER", env!("CARGO_BIN_EXE_test-apiserver"))
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stops the cluster even when an assertion fails.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        script(&self.0, &["down"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_up_mark_available_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tc");
    let (ok, out, err) = script(&dir, &["up", "--image", "busybox=@host"]);
    let guard = Down(dir.clone());
    assert!(ok, "up failed: {out} {err}");
    let kubeconfig = out
        .lines()
        .find_map(|l| l.strip_prefix("export KUBECONFIG="))
        .expect("up prints export KUBECONFIG=...")
        .to_string();
    {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        assert!(cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty());

        let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        }))
        .unwrap();
        deploys.create(&PostParams::default(), &d).await.unwrap();
        let (ok, out, err) = script(&dir, &["mark-available", "deploy/web", "-n", "default"]);
        assert!(ok, "mark-available: {out} {err}");
        let got = deploys.get("web").await.unwrap();
        let conds = got.status.unwrap().conditions.unwrap();
        assert!(conds.iter().any(
            |c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")
        ));

        let (ok, _, _) = script(&dir, &["mark-available", "deploy/missing"]);
        assert!(!ok, "marking a missing deployment fails");
        let (ok, out, _) = script(&dir, &["requests"]);
        assert!(ok && out.contains("\"verb\":\"create\""), "{out}");
    }
    drop(guard);
    let (ok, _, _) = script(&dir, &["env"]);
    assert!(!ok, "after down the cluster is not running");
}
