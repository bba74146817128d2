//! iter8-runner in cluster mode (--namespace/--release, as the chart runs it): the errors
//! that need no API server. Runs against a cluster are in the end-to-end tests.

use std::process::Command;

fn runner() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iter8-runner"));
    for v in [
        "POD_NAMESPACE",
        "ITER8_RELEASE",
        "ITER8_REVISION",
        "KUBECONFIG",
    ] {
        c.env_remove(v);
    }
    c
}

#[test]
fn a_missing_kubeconfig_is_a_usage_error_naming_it() {
    let out = runner()
        .args([
            "--namespace",
            "ns",
            "--release",
            "exp",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--kubeconfig /nonexistent/kubeconfig"),
        "{err}"
    );
}

#[test]
fn release_without_namespace_is_refused() {
    let out = runner().args(["--release", "exp"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--namespace"));
}

#[test]
fn release_and_namespace_come_from_the_chart_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:1\"}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .expect("write");
    // A bad revision is refused before any request: the environment was read.
    let out = runner()
        .env("POD_NAMESPACE", "ns")
        .env("ITER8_RELEASE", "exp")
        .env("ITER8_REVISION", "latest")
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ITER8_REVISION") && err.contains("\"latest\""),
        "{err}"
    );
}
