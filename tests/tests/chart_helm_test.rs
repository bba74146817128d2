//! `helm test` of the chart on the real control plane (`scripts/test-cluster up` in a state
//! directory of its own, `target/helm-test-cluster`; the node agent runs the runner image as
//! the freshly built `iter8-runner`), with the real helm (`scripts/helm`, v4): the test pod
//! (`iter8-runner assert` in the runner image) passes when the verdict holds and fails,
//! naming the false condition, when it does not; its ServiceAccount may read the release's
//! Secret and nothing else, checked by the real RBAC authorizer. The load target is a hyper
//! server on 127.0.0.1.
//!
//! Skipped (printed) while `scripts/test-cluster` is the imitation's script. The binaries
//! come from this test's target directory (`cargo build -p iter8 --bins` first when run
//! alone).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{bin, repo_root, target};
use iter8_tests::k8s::{Cluster, UpOptions};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn cluster_dir() -> PathBuf {
    repo_root().join("target/helm-test-cluster")
}

async fn connect() -> Option<Cluster> {
    let script =
        std::fs::read_to_string(repo_root().join("scripts/test-cluster")).unwrap_or_default();
    if !script.contains("iter8-node-agent") {
        println!("SKIPPED: scripts/test-cluster does not start the real control plane with the node agent");
        return None;
    }
    let c = Cluster::connect(UpOptions {
        dir: Some(cluster_dir()),
        images: vec![format!("iter8-runner={}", bin("iter8-runner").display())],
        podman: false,
        node_agent: Some(env!("CARGO_BIN_EXE_iter8-node-agent").into()),
    })
    .await
    .expect("test cluster");
    Some(c)
}

/// Stops this test's cluster when the test ends (also when it fails).
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/test-cluster"))
            .arg("down")
            .env("ITER8_TEST_CLUSTER_DIR", cluster_dir())
            .status();
    }
}

struct Helm {
    code: i32,
    out: String,
}

/// The real helm v4 (`scripts/helm`), as the cluster's admin.
fn helm(c: &Cluster, args: &[&str]) -> Helm {
    let o = Command::new(repo_root().join("scripts/helm"))
        .args(args)
        .env("KUBECONFIG", &c.kubeconfig)
        .current_dir(repo_root())
        .output()
        .expect("run scripts/helm");
    Helm {
        code: o.status.code().unwrap_or(-1),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

fn install(c: &Cluster, verb: &str, ns: &str, url: &str, latency_mean_limit: &str) -> Helm {
    let chart = repo_root().join("charts/iter8").display().to_string();
    let sets = [
        "tasks={http,assess}".to_string(),
        format!("http.url={url}"),
        "http.numRequests=20".into(),
        "http.qps=50".into(),
        "assess.SLOs.upper.http/error-count=0".into(),
        format!("assess.SLOs.upper.http/latency-mean={latency_mean_limit}"),
    ];
    let mut args = vec![verb, "exp", chart.as_str(), "-n", ns];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    args.extend(["--wait", "--wait-for-jobs", "--timeout", "3m"]);
    helm(c, &args)
}

// Several threads: helm runs blocking while the load target (a task of this runtime) answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_test_gates_on_the_verdict_reading_only_the_release_secret() {
    let Some(c) = connect().await else { return };
    let _down = Down;
    let addr = target().await;
    let url = format!("http://{addr}/");
    let ns = c.namespace("helm-test").await.expect("namespace");
    let agent_log = || c.component_log("node-agent");

    let r = install(&c, "install", &ns, &url, "10000");
    assert_eq!(r.code, 0, "helm install: {}\n{}", r.out, agent_log());

    // The verdict holds: the test pod succeeds, and its log says so.
    let r = helm(&c, &["test", "exp", "-n", &ns, "--logs", "--timeout", "2m"]);
    assert_eq!(r.code, 0, "helm test: {}\n{}", r.out, agent_log());
    assert!(r.out.contains("exp-iter8-test"), "{}", r.out);
    assert!(
        r.out
            .contains("all conditions hold: completed, nofailure, slos"),
        "the test pod's log (helm test --logs): {}",
        r.out
    );
    let pod = Api::<Pod>::namespaced(c.client(), &ns)
        .get("exp-iter8-test")
        .await
        .expect("the test pod stays for its logs");
    let spec = pod.spec.expect("spec");
    assert_eq!(spec.service_account_name.as_deref(), Some("exp-iter8-test"));

    // The test's ServiceAccount reads the release's Secret, and may neither change it nor
    // read another Secret (the real RBAC authorizer says so).
    let sa = c
        .service_account_client(&ns, "exp-iter8-test")
        .await
        .expect("token of the test's account");
    let secrets: Api<Secret> = Api::namespaced(sa, &ns);
    secrets
        .get("exp")
        .await
        .expect("get of the release's Secret");
    let patch = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    let err = secrets
        .patch("exp", &PatchParams::default(), &patch)
        .await
        .expect_err("patch must be refused");
    assert!(err.to_string().contains("forbidden"), "{err}");
    let err = secrets
        .get("sh.helm.release.v1.exp.v1")
        .await
        .expect_err("Helm's release Secret must be out of reach");
    assert!(err.to_string().contains("forbidden"), "{err}");

    // An SLO no run can meet: a new Job, a false verdict, and `helm test` fails naming it.
    let r = install(&c, "upgrade", &ns, &url, "0.000001");
    assert_eq!(r.code, 0, "helm upgrade: {}\n{}", r.out, agent_log());
    let r = helm(&c, &["test", "exp", "-n", &ns, "--logs", "--timeout", "2m"]);
    assert_ne!(
        r.code, 0,
        "helm test must fail on a false verdict: {}",
        r.out
    );
    assert!(r.out.contains("condition false: slos"), "{}", r.out);
    assert!(r.out.contains("http/latency-mean"), "{}", r.out);

    let r = helm(&c, &["uninstall", "exp", "-n", &ns, "--wait"]);
    assert_eq!(r.code, 0, "helm uninstall: {}", r.out);
    c.delete_namespace(&ns).await;
}
