//! End to end: the chart installed with real Helm (scripts/helm or $HELM) into the test
//! cluster, the Job / CronJob running the freshly built `iter8-runner`, and `iter8` reading
//! the verdict from the release's Secret. The load target is a hyper server on 127.0.0.1.
//!
//! The binaries come from the same target directory as this test (`cargo test --workspace`
//! builds them; alone: `cargo build -p iter8 --bins` first).

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{bin, helm, iter8, iter8_assert, repo_root, target, to_run, Run};
use iter8_tests::cluster::{ImageMapping, ImageTarget, TestCluster, TestClusterOptions};
use serde_json::{json, Value};

const NS: &str = "default";
const JOB_WAIT: Duration = Duration::from_secs(120);

async fn cluster() -> TestCluster {
    TestCluster::start_with(TestClusterOptions {
        image_map: vec![ImageMapping {
            pattern: "iter8-runner".into(),
            target: ImageTarget::Binary(bin("iter8-runner")),
        }],
        ..Default::default()
    })
    .await
    .expect("test cluster")
}

fn chart() -> String {
    repo_root().join("charts/iter8").display().to_string()
}

async fn install(
    tc: &TestCluster,
    verb: &str,
    release: &str,
    sets: &[String],
    wait_jobs: bool,
) -> Run {
    let chart = chart();
    let mut args: Vec<&str> = vec![verb, release, &chart, "-n", NS];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    if wait_jobs {
        args.extend(["--wait", "--wait-for-jobs", "--timeout", "2m"]);
    }
    helm(tc, &args).await
}

fn http_sets(url: &str, latency_limit: &str) -> Vec<String> {
    vec![
        "tasks={http,assess}".into(),
        format!("http.url={url}"),
        "http.numRequests=20".into(),
        "http.qps=50".into(),
        format!("assess.SLOs.upper.http/latency-mean={latency_limit}"),
        "assess.SLOs.upper.http/error-count=0".into(),
    ]
}

async fn secret_json(tc: &TestCluster, name: &str) -> Option<Value> {
    let client = tc.client().await.expect("client");
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, NS);
    api.get_opt(name)
        .await
        .expect("get secret")
        .map(|s| serde_json::to_value(s).expect("json"))
}

fn decoded(secret: &Value, key: &str) -> Option<String> {
    let b = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
    String::from_utf8(bytes).ok()
}

async fn report_json(tc: &TestCluster, release: &str) -> Value {
    let r = iter8(
        tc,
        &["report", "--release", release, "-n", NS, "-o", "json"],
    )
    .await;
    assert_eq!(r.code, 0, "{r}");
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("report json: {e}\n{r}"))
}

/// Every object kind the chart (and Helm) creates, listed by the instance label and by name.
async fn leftovers(tc: &TestCluster, release: &str) -> Vec<String> {
    let client = tc.client().await.expect("client");
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
    ];
    for (group, version, plural) in kinds {
        let ar = kube::api::ApiResource {
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
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(client.clone(), NS, &ar);
        let all = api
            .list(&kube::api::ListParams::default())
            .await
            .expect("list");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_install_assert_upgrade_uninstall_and_rbac() {
    let tc = cluster().await;
    let addr = target().await;
    let url = format!("http://{addr}/get");
    let rel = "exp";

    // install: the Job runs the runner; `assert --timeout` polls the Secret until the
    // result is there.
    let r = install(&tc, "install", rel, &http_sets(&url, "5000"), false).await;
    assert_eq!(r.code, 0, "helm install: {r}");
    assert!(r.out.contains("iter8 assert --release exp"), "NOTES: {r}");
    let r = iter8_assert(
        &tc,
        "completed,nofailure,slos",
        rel,
        NS,
        &["--timeout", "60s"],
    )
    .await;
    assert_eq!(r.code, 0, "assert: {r}");
    assert!(r.out.contains("all conditions hold"), "{r}");
    let job = tc.wait_job(NS, "exp-1-job", JOB_WAIT).await.expect("job");
    assert_eq!(job["status"]["succeeded"], 1, "{job}");
    let r = iter8(&tc, &["report", "--release", rel, "-n", NS]).await;
    assert_eq!(r.code, 0, "report: {r}");
    for m in [
        "http/latency-mean",
        "http/error-count",
        "http/request-count",
    ] {
        assert!(r.out.contains(m), "report lacks {m}: {r}");
    }
    let res = report_json(&tc, rel).await;
    assert_eq!(res["numLoops"], 1, "{res}");
    assert_eq!(res["revision"], 1, "{res}");

    // `iter8 log` shows the runner's own lines, headed by revision, Job and loop.
    let r = iter8(&tc, &["log", "--release", rel, "-n", NS]).await;
    assert_eq!(r.code, 0, "log: {r}");
    assert!(r.out.contains("revision 1, job exp-1-job"), "{r}");
    assert!(r.out.contains("loop 1"), "{r}");
    assert!(r.out.contains("experiment completed"), "{r}");

    // RBAC: every request of the runner was allowed; the Role is exactly get/patch on the
    // release's Secret.
    let sa_user = format!("system:serviceaccount:{NS}:exp-iter8");
    let runner_reqs: Vec<_> = tc.requests_of(&sa_user);
    assert!(
        !runner_reqs.is_empty(),
        "the runner made no request as {sa_user}"
    );
    for e in &runner_reqs {
        assert!(e.allowed, "runner request denied: {e:?}");
        if !e.resource.is_empty() {
            assert_eq!(
                (e.resource.as_str(), e.name.as_str()),
                ("secrets", rel),
                "{e:?}"
            );
        }
    }
    assert!(
        runner_reqs.iter().any(|e| e.verb == "patch"),
        "no patch: {runner_reqs:?}"
    );
    let client = tc.client().await.expect("client");
    let roles: kube::Api<k8s_openapi::api::rbac::v1::Role> =
        kube::Api::namespaced(client.clone(), NS);
    let role = roles.get("exp-iter8").await.expect("role");
    let rules = serde_json::to_value(role.rules.unwrap_or_default()).expect("json");
    let verbs = rules[0]["verbs"].as_array().cloned().unwrap_or_default();
    let mut verbs: Vec<&str> = verbs.iter().filter_map(Value::as_str).collect();
    verbs.sort();
    assert!(
        verbs == ["get", "patch"] || verbs == ["get", "patch", "update"],
        "{rules}"
    );
    assert_eq!(rules.as_array().map(Vec::len), Some(1), "{rules}");
    assert_eq!(rules[0]["resources"], json!(["secrets"]), "{rules}");
    assert_eq!(rules[0]["resourceNames"], json!([rel]), "{rules}");
    assert_eq!(rules[0]["apiGroups"], json!([""]), "{rules}");

    // A runner with this release's ServiceAccount pointed at another release's Secret: 403,
    // reported clearly.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), NS);
    let other: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "other"},
        "stringData": {"experiment.yaml": "spec:\n- task: assess\n  with: {}\n"}
    }))
    .expect("secret");
    secrets
        .create(&Default::default(), &other)
        .await
        .expect("create other");
    let sa_kc = tc
        .service_account_kubeconfig(NS, "exp-iter8")
        .expect("sa kubeconfig");
    let o = tokio::process::Command::new(bin("iter8-runner"))
        .args([
            "--namespace",
            NS,
            "--release",
            "other",
            "--log-format",
            "human",
        ])
        .env("KUBECONFIG", &sa_kc)
        .env_remove("ITER8_REVISION")
        .env_remove("ITER8_RELEASE")
        .env_remove("POD_NAMESPACE")
        .output()
        .await
        .expect("runner");
    let r = to_run(o);
    eprintln!("runner pointed at another release's Secret:\n{r}");
    assert_eq!(r.code, 2, "{r}");
    assert!(r.err.contains("forbidden") && r.err.contains("403"), "{r}");
    assert!(r.err.contains("other"), "{r}");
    let denied: Vec<_> = tc
        .requests_of(&sa_user)
        .into_iter()
        .filter(|e| e.name == "other")
        .collect();
    assert!(
        !denied.is_empty() && denied.iter().all(|e| !e.allowed),
        "{denied:?}"
    );

    // upgrade with a stricter SLO: a new Job, a fresh result of revision 2, assert fails.
    let r = install(&tc, "upgrade", rel, &http_sets(&url, "0.0001"), true).await;
    assert_eq!(r.code, 0, "helm upgrade: {r}");
    let job = tc.wait_job(NS, "exp-2-job", JOB_WAIT).await.expect("job 2");
    assert_eq!(job["status"]["succeeded"], 1, "{job}");
    let res = report_json(&tc, rel).await;
    assert_eq!(res["numLoops"], 1, "{res}");
    assert_eq!(res["revision"], 2, "{res}");
    let r = iter8_assert(&tc, "completed,nofailure,slos", rel, NS, &[]).await;
    assert_eq!(r.code, 1, "assert after upgrade: {r}");
    assert!(r.out.contains("condition false: slos"), "{r}");
    assert!(r.out.contains("http/latency-mean"), "{r}");

    // uninstall: nothing of the release is left.
    secrets
        .delete("other", &Default::default())
        .await
        .expect("delete other");
    let r = helm(&tc, &["uninstall", rel, "-n", NS, "--wait"]).await;
    assert_eq!(r.code, 0, "helm uninstall: {r}");
    let mut left = leftovers(&tc, rel).await;
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = leftovers(&tc, rel).await;
    }
    assert!(left.is_empty(), "left after uninstall: {left:?}");
    let r = iter8(&tc, &["report", "--release", rel, "-n", NS]).await;
    eprintln!("report after uninstall:\n{r}");
    assert_eq!(r.code, 3, "{r}");
    assert!(r.err.contains("not found"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_loops_continue_one_bounded_result() {
    let tc = cluster().await;
    let addr = target().await;
    let url = format!("http://{addr}/get");
    let mut sets = http_sets(&url, "5000");
    sets.push("runner=cronjob".into());
    // yearly: only our triggers run it
    sets.push("cronjobSchedule=0 0 1 1 *".into());
    let r = install(&tc, "install", "loops", &sets, false).await;
    assert_eq!(r.code, 0, "helm install: {r}");
    for i in 1..=3 {
        let job = tc.trigger_cronjob(NS, "loops-1-cronjob").expect("trigger");
        let j = tc.wait_job(NS, &job, JOB_WAIT).await.expect("job");
        assert_eq!(j["status"]["succeeded"], 1, "loop {i}: {j}");
    }
    let res = report_json(&tc, "loops").await;
    assert_eq!(res["numLoops"], 3, "{res}");
    let client = tc.client().await.expect("client");
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, NS);
    let lp = kube::api::ListParams::default().labels("app.kubernetes.io/instance=loops");
    assert_eq!(secrets.list(&lp).await.expect("list").items.len(), 1);
    let s = secret_json(&tc, "loops").await.expect("secret");
    let result = decoded(&s, "result.yaml").expect("result.yaml");
    assert!(result.len() < 64 * 1024, "result is {} bytes", result.len());
    let r = iter8_assert(&tc, "completed,nofailure,slos", "loops", NS, &[]).await;
    assert_eq!(r.code, 0, "{r}");
    let r = iter8(&tc, &["log", "--release", "loops", "-n", NS]).await;
    assert_eq!(r.code, 0, "{r}");
    for l in ["loop 1", "loop 2", "loop 3", "cronjob loops-1-cronjob"] {
        assert!(r.out.contains(l), "log lacks {l}: {r}");
    }
    // newest first
    let (p3, p1) = (r.out.find("loop 3"), r.out.find("loop 1"));
    assert!(p3 < p1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_on_a_deployment_and_unreachable_target() {
    let tc = cluster().await;
    let client = tc.client().await.expect("client");
    let deploys: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client, NS);
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
    }))
    .expect("deploy");
    deploys
        .create(&Default::default(), &d)
        .await
        .expect("create");
    tc.mark_available(NS, "web").expect("available");

    let ready = |name: &str| {
        vec![
            "tasks={ready}".to_string(),
            format!("ready.deploy={name}"),
            "ready.timeout=3s".to_string(),
        ]
    };
    let r = install(&tc, "install", "rdy", &ready("web"), false).await;
    assert_eq!(r.code, 0, "{r}");
    let r = install(&tc, "install", "absent", &ready("nothere"), false).await;
    assert_eq!(r.code, 0, "{r}");

    // unreachable: a port that was just closed
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let r = install(
        &tc,
        "install",
        "down",
        &http_sets(&format!("http://127.0.0.1:{port}/"), "5000"),
        false,
    )
    .await;
    assert_eq!(r.code, 0, "{r}");

    let j = tc.wait_job(NS, "rdy-1-job", JOB_WAIT).await.expect("job");
    assert_eq!(j["status"]["succeeded"], 1, "{j}");
    let r = iter8_assert(&tc, "completed,nofailure", "rdy", NS, &[]).await;
    assert_eq!(r.code, 0, "{r}");

    let j = tc
        .wait_job(NS, "absent-1-job", JOB_WAIT)
        .await
        .expect("job");
    assert_eq!(j["status"]["failed"], 1, "{j}");
    let r = iter8_assert(&tc, "completed,nofailure", "absent", NS, &[]).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.out.contains("nothere"),
        "the reason names the object: {r}"
    );
    let res = report_json(&tc, "absent").await;
    assert_eq!(res["failure"], true, "{res}");

    tc.wait_job(NS, "down-1-job", JOB_WAIT).await.expect("job");
    let r = iter8_assert(&tc, "completed,nofailure,slos", "down", NS, &[]).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(r.out.contains("http/error-count"), "{r}");
    // the reason is recorded: every request counted as refused
    let r = iter8(&tc, &["report", "--release", "down", "-n", NS]).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(r.out.to_lowercase().contains("refused"), "{r}");
    let res = report_json(&tc, "down").await;
    let text = res.to_string();
    assert!(text.contains("http/error-count"), "{res}");
}
