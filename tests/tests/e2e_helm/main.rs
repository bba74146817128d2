//! End to end on the real control plane (`scripts/test-cluster`: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, and our node agent playing the kubelet): the
//! chart installed with the real helm v4 (and v3), the real Job and CronJob controllers
//! creating the runner's pods under Pod Security `restricted`, the node agent running the
//! freshly built `iter8-runner` for the image `iter8-runner`, the real RBAC authorizer
//! judging the runner's ServiceAccount, real garbage collection on `helm uninstall`, and
//! `iter8` reading the verdict from the release's Secret. Load targets are hyper servers
//! on 127.0.0.1 (pods run on the host network).
//!
//! One cluster for the whole binary (it takes seconds to start; state in
//! `target/tmp/e2e-helm-cluster`, stopped at the end), one namespace per scenario; the
//! scenarios run concurrently.
//!
//! The binaries come from the same target directory as this test (`cargo test --workspace`
//! builds them; alone: `cargo build -p iter8 --bins` first).

#[path = "../common/mod.rs"]
mod common;

mod helm_test;
mod lifecycle;
mod loops;
mod ready;
mod verdicts;

use std::path::PathBuf;
use std::time::Duration;

use common::{bin, helm, helm3, iter8, Run};
use iter8_tests::k8s::{restricted_pod_spec, wait_for, Cluster, UpOptions};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{json, Value};

pub const JOB_WAIT: Duration = Duration::from_secs(180);
/// The node agent runs this image's command as-is on the host (for apps the tests need).
pub const HOST_IMAGE: &str = "iter8-test/host:1";

async fn connect() -> Cluster {
    Cluster::connect(UpOptions {
        dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-helm-cluster")),
        images: vec![
            format!("iter8-runner={}", bin("iter8-runner").display()),
            format!("{HOST_IMAGE}=@host"),
        ],
        podman: false,
        node_agent: Some(env!("CARGO_BIN_EXE_iter8-node-agent").into()),
    })
    .await
    .expect("test cluster (scripts/test-cluster up)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_end_to_end_on_the_real_control_plane() {
    let c = connect().await;
    let _down = c.down_on_drop();
    tokio::join!(
        lifecycle::tutorial_install_assert_upgrade_uninstall_and_rbac(&c),
        helm_test::helm_test_gates_on_the_verdict_reading_only_the_release_secret(&c),
        lifecycle::install_upgrade_uninstall_with_helm3(&c),
        loops::cronjob_loops_from_kubectl_accumulate_in_one_result(&c),
        loops::a_cronjob_schedule_fires_and_uninstall_collects_its_jobs(&c),
        ready::ready_on_a_deployment_and_unreachable_target(&c),
        verdicts::cronjob_regression_against_the_previous_loop_and_pushed_verdicts(&c),
        verdicts::job_relative_slos_and_comparison_against_a_baseline(&c),
    );
}

/// Which helm.
#[derive(Clone, Copy, Debug)]
pub enum Helm {
    V4,
    V3,
}

pub async fn helm_with(v: Helm, c: &Cluster, args: &[&str]) -> Run {
    match v {
        Helm::V4 => helm(c, args).await,
        Helm::V3 => helm3(c, args).await,
    }
}

pub fn chart() -> String {
    common::repo_root()
        .join("charts/iter8")
        .display()
        .to_string()
}

/// `helm VERB RELEASE charts/iter8 -n NS --set ...` (`--wait --wait-for-jobs` when `wait`).
pub async fn install(
    v: Helm,
    c: &Cluster,
    verb: &str,
    ns: &str,
    release: &str,
    sets: &[String],
    wait: bool,
) -> Run {
    let chart = chart();
    let mut args: Vec<&str> = vec![verb, release, &chart, "-n", ns];
    for s in sets {
        args.extend(["--set", s]);
    }
    if wait {
        args.extend(["--wait", "--wait-for-jobs", "--timeout", "3m"]);
    }
    helm_with(v, c, &args).await
}

/// An http + assess experiment against `url` with a mean-latency limit (ms).
pub fn http_sets(url: &str, latency_limit: &str) -> Vec<String> {
    vec![
        "tasks={http,assess}".into(),
        format!("http.url={url}"),
        "http.numRequests=20".into(),
        "http.qps=50".into(),
        format!("assess.SLOs.upper.http/latency-mean={latency_limit}"),
        "assess.SLOs.upper.http/error-count=0".into(),
    ]
}

pub async fn report_json(c: &Cluster, ns: &str, release: &str) -> Value {
    let r = iter8(c, &["report", "--release", release, "-n", ns, "-o", "json"]).await;
    assert_eq!(r.code, 0, "{r}");
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("report json: {e}\n{r}"))
}

/// Waits for Job `ns/name` to finish; panics with its status and the node agent's log.
pub async fn finished_job(c: &Cluster, ns: &str, name: &str) -> Value {
    let j = c
        .wait_job(ns, name, JOB_WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_value(j).expect("job json")
}

/// A Deployment `name` whose pods run `sleep` on the host (the node agent runs them), as
/// Pod Security `restricted` admits them; returns when it is Available.
pub async fn sleeping_deployment(c: &Cluster, ns: &str, name: &str) {
    let spec = restricted_pod_spec(vec![json!({
        "name": "main", "image": HOST_IMAGE, "command": ["sleep", "3600"]})]);
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}});
    c.kubectl_run(&["apply", "-f", "-"], Some(&d.to_string()))
        .expect("kubectl apply deployment");
    c.kubectl_run(
        &[
            "wait",
            "-n",
            ns,
            "--for",
            "condition=Available",
            &format!("deploy/{name}"),
            "--timeout",
            "120s",
        ],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}\nnode agent log:\n{}", c.component_log("node-agent")));
}

/// Every object of a kind the chart (and helm) creates that belongs to `release`, by the
/// instance label, helm's `name` label, or the name.
pub async fn leftovers(c: &Cluster, ns: &str, release: &str) -> Vec<String> {
    let mut found = Vec::new();
    let kinds: &[(&str, &str, &str)] = &[
        ("", "v1", "secrets"),
        ("", "v1", "serviceaccounts"),
        ("", "v1", "pods"),
        ("", "v1", "configmaps"),
        ("rbac.authorization.k8s.io", "v1", "roles"),
        ("rbac.authorization.k8s.io", "v1", "rolebindings"),
        ("batch", "v1", "jobs"),
        ("batch", "v1", "cronjobs"),
        ("networking.k8s.io", "v1", "networkpolicies"),
    ];
    for (group, version, plural) in kinds {
        let ar = ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            },
            kind: String::new(),
            plural: plural.to_string(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(c.client(), ns, &ar);
        let all = api.list(&ListParams::default()).await.expect("list");
        for o in all.items {
            let name = o.metadata.name.clone().unwrap_or_default();
            let labelled = o.metadata.labels.as_ref().is_some_and(|l| {
                l.get("app.kubernetes.io/instance").map(String::as_str) == Some(release)
                    || l.get("name").map(String::as_str) == Some(release)
            });
            let named = name == release || name.starts_with(&format!("{release}-"));
            if labelled || named {
                found.push(format!("{plural}/{name}"));
            }
        }
    }
    found
}

/// Waits until nothing of `release` is left in `ns` (garbage collection takes a moment).
pub async fn nothing_left(c: &Cluster, ns: &str, release: &str) {
    let r = wait_for(
        &format!("the objects of release {release} to be gone"),
        Duration::from_secs(90),
        || async {
            let left = leftovers(c, ns, release).await;
            left.is_empty().then_some(())
        },
    )
    .await;
    if let Err(e) = r {
        panic!("{e}: left {:?}", leftovers(c, ns, release).await);
    }
}
