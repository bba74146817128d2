//! kubectl (when installed: Debian `kubernetes-client` or `kubectl`) works against the
//! test API server: get, create, apply --validate=false, logs, delete. Skipped, saying so,
//! when no kubectl is on PATH.

#![allow(clippy::unwrap_used)] // test helpers: a failed step is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use iter8_tests::cluster::{ImageMapping, ImageTarget, TestCluster, TestClusterOptions};

fn kubectl_path() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("kubectl"))
        .find(|p| p.is_file())
}

fn kubectl(kc: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(kubectl_path().unwrap())
        .args(args)
        .env("KUBECONFIG", kc)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: kc}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: kc, labels: {app: demo}}
data: {greeting: hi}
---
apiVersion: batch/v1
kind: Job
metadata: {name: hello, namespace: kc}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "echo hello from $(NS)"]
        env:
        - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_create_apply_logs_delete() {
    if kubectl_path().is_none() {
        eprintln!("skipping: kubectl is not installed (Debian package kubernetes-client)");
        return;
    }
    let tc = TestCluster::start_with(TestClusterOptions {
        image_map: vec![ImageMapping {
            pattern: "busybox".into(),
            target: ImageTarget::Binary(PathBuf::from("/bin/sh")),
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    for kc in [
        tc.kubeconfig_path().to_path_buf(),
        tc.kubeconfig_http_path().to_path_buf(),
    ] {
        let (ok, out, err) = kubectl(
            &kc,
            &["apply", "--validate=false", "-f", "-"],
            Some(MANIFESTS),
        );
        assert!(ok, "apply: {out} {err}");
        assert!(out.contains("configmap/settings created"), "{out}");
        let (ok, out, err) = kubectl(
            &kc,
            &["apply", "--validate=false", "-f", "-"],
            Some(MANIFESTS),
        );
        assert!(ok, "re-apply: {err}");
        assert!(out.contains("configmap/settings unchanged"), "{out}");

        let (ok, out, err) = kubectl(
            &kc,
            &[
                "get",
                "configmap",
                "-n",
                "kc",
                "-l",
                "app=demo",
                "-o",
                "jsonpath={.items[*].data.greeting}",
            ],
            None,
        );
        assert!(ok, "get: {err}");
        assert_eq!(out, "hi");
        let (ok, out, _) = kubectl(&kc, &["get", "namespaces"], None);
        assert!(
            ok && out.contains("kube-system") && out.contains("kc"),
            "{out}"
        );

        // kubectl create sends protobuf for ConfigMaps.
        let (ok, _, err) = kubectl(
            &kc,
            &[
                "create",
                "configmap",
                "made",
                "-n",
                "kc",
                "--from-literal=k=v",
            ],
            None,
        );
        assert!(ok, "create: {err}");
        let (_, out, _) = kubectl(
            &kc,
            &["get", "cm", "made", "-n", "kc", "-o", "jsonpath={.data.k}"],
            None,
        );
        assert_eq!(out, "v");

        tc.wait_job("kc", "hello", Duration::from_secs(30))
            .await
            .unwrap();
        let (ok, out, err) = kubectl(&kc, &["logs", "-n", "kc", "job/hello"], None);
        assert!(ok, "logs: {err}");
        assert_eq!(out, "hello from kc\n");

        let (ok, _, err) = kubectl(&kc, &["delete", "-f", "-"], Some(MANIFESTS));
        assert!(ok, "delete: {err}");
        let (ok, _, err) = kubectl(&kc, &["get", "cm", "settings", "-n", "kc"], None);
        assert!(!ok);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "{err}"
        );
        assert!(tc.job_pods("kc", "hello").is_empty());
    }
}
