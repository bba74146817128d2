//! A release's life with Iter8's tutorial values: install (the real Job controller makes
//! the pod, Pod Security `restricted` admits it, the node agent runs the runner), `iter8
//! assert`, the runner's ServiceAccount as the real RBAC authorizer judges it, `helm
//! upgrade` (a new Job, a fresh result), `helm uninstall` (nothing of the release left,
//! by real garbage collection); and the same life with helm v3.

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{json, Value};

use crate::common::{bin, helm, iter8, iter8_assert, target, to_run};
use crate::{
    finished_job, http_sets, install, nothing_left, report_json, sleeping_deployment, Helm,
};
use iter8_tests::k8s::{wait_for, Cluster};

/// Iter8's tutorial values (`--set "tasks={ready,http,assess}" --set ready.deploy=httpbin
/// --set ready.service=httpbin --set ready.timeout=60s --set http.url=... --set
/// assess.SLOs.upper.http/latency-mean=50 --set assess.SLOs.upper.http/error-count=0
/// --set runner=job`), with the load sent to `url` and a mean-latency limit that CPU
/// contention on a shared 2-core machine cannot break (the tutorial's 50 ms is for a
/// real network).
fn tutorial_sets(url: &str, latency_limit: &str) -> Vec<String> {
    vec![
        "tasks={ready,http,assess}".into(),
        "ready.deploy=httpbin".into(),
        "ready.service=httpbin".into(),
        "ready.timeout=60s".into(),
        format!("http.url={url}"),
        "http.numRequests=20".into(),
        "http.qps=50".into(),
        format!("assess.SLOs.upper.http/latency-mean={latency_limit}"),
        "assess.SLOs.upper.http/error-count=0".into(),
        "runner=job".into(),
    ]
}

pub async fn tutorial_install_assert_upgrade_uninstall_and_rbac(c: &Cluster) {
    let ns = c.namespace("tutorial").await.expect("namespace");
    let rel = "exp";
    // The tutorial's app: Deployment and Service httpbin. (No cluster DNS or kube-proxy
    // here: the load goes to this test's server on 127.0.0.1.)
    sleeping_deployment(c, &ns, "httpbin").await;
    c.kubectl_run(
        &[
            "create",
            "service",
            "clusterip",
            "httpbin",
            "--tcp=80:80",
            "-n",
            &ns,
        ],
        None,
    )
    .expect("kubectl create service");
    let addr = target().await;
    let url = format!("http://{addr}/get");

    let r = install(
        Helm::V4,
        c,
        "install",
        &ns,
        rel,
        &tutorial_sets(&url, "2000"),
        false,
    )
    .await;
    assert_eq!(r.code, 0, "helm install: {r}");
    assert!(r.out.contains("iter8 assert --release exp"), "NOTES: {r}");
    let r = iter8_assert(
        c,
        "completed,nofailure,slos",
        rel,
        &ns,
        &["--timeout", "150s"],
    )
    .await;
    assert_eq!(
        r.code,
        0,
        "assert: {r}\nrunner log:\n{}",
        c.logs(&ns, "job/exp-1-job")
    );
    assert!(r.out.contains("all conditions hold"), "{r}");

    // The real Job controller made the pod; the node agent ran it to exit 0.
    let job = finished_job(c, &ns, "exp-1-job").await;
    assert_eq!(job["status"]["succeeded"], 1, "{job}");
    let pods = c.job_pods(&ns, "exp-1-job").await;
    assert_eq!(pods.len(), 1, "{pods:?}");
    let pod = serde_json::to_value(&pods[0]).expect("pod json");
    assert_eq!(pod["status"]["phase"], "Succeeded", "{}", pod["status"]);
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0,
        "{}",
        pod["status"]
    );
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["name"].as_str(),
            owner["controller"].as_bool()
        ),
        (Some("Job"), Some("exp-1-job"), Some(true)),
        "{owner}"
    );
    // Admitted under Pod Security `restricted` (the cluster enforces it everywhere): the
    // audit log records the Job controller's create with the enforced policy and no
    // violation.
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let creates: Vec<_> = c
        .audit_events()
        .into_iter()
        .filter(|e| e.verb == "create" && e.resource == "pods" && e.namespace == ns)
        .filter(|e| e.code == 201 && e.uri.contains("/pods"))
        .filter(|e| e.user == "system:serviceaccount:kube-system:job-controller")
        .collect();
    assert!(
        !creates.is_empty(),
        "no pod create by the Job controller in {ns}"
    );
    for e in &creates {
        assert_eq!(
            e.annotations["pod-security.kubernetes.io/enforce-policy"], "restricted:latest",
            "{e:?}"
        );
        assert!(
            e.annotations
                .get("pod-security.kubernetes.io/audit-violations")
                .is_none(),
            "{e:?}"
        );
    }

    let r = iter8(c, &["report", "--release", rel, "-n", &ns]).await;
    assert_eq!(r.code, 0, "report: {r}");
    for m in [
        "http/latency-mean",
        "http/error-count",
        "http/request-count",
    ] {
        assert!(r.out.contains(m), "report lacks {m}: {r}");
    }
    let res = report_json(c, &ns, rel).await;
    assert_eq!(res["numLoops"], 1, "{res}");
    assert_eq!(res["revision"], 1, "{res}");

    // `iter8 log` (pods/log through the API server to the node agent) shows the runner's
    // own lines, headed by revision, Job and loop.
    let r = iter8(c, &["log", "--release", rel, "-n", &ns]).await;
    assert_eq!(r.code, 0, "log: {r}");
    assert!(r.out.contains("revision 1, job exp-1-job"), "{r}");
    assert!(r.out.contains("loop 1"), "{r}");
    assert!(r.out.contains("experiment completed"), "{r}");
    assert!(
        c.logs(&ns, &format!("pod/{pod_name}"))
            .contains("experiment completed"),
        "kubectl logs shows the same"
    );

    rbac(c, &ns, rel).await;

    // upgrade with a stricter SLO: a new Job, a fresh result of revision 2, assert fails;
    // the first Job is gone (helm deletes it) and its pod with it (garbage collection).
    let r = install(
        Helm::V4,
        c,
        "upgrade",
        &ns,
        rel,
        &tutorial_sets(&url, "0.0001"),
        true,
    )
    .await;
    assert_eq!(r.code, 0, "helm upgrade: {r}");
    let job = finished_job(c, &ns, "exp-2-job").await;
    assert_eq!(job["status"]["succeeded"], 1, "{job}");
    let res = report_json(c, &ns, rel).await;
    assert_eq!(res["numLoops"], 1, "{res}");
    assert_eq!(res["revision"], 2, "{res}");
    let r = iter8_assert(c, "completed,nofailure,slos", rel, &ns, &[]).await;
    assert_eq!(r.code, 1, "assert after upgrade: {r}");
    assert!(r.out.contains("condition false: slos"), "{r}");
    assert!(r.out.contains("http/latency-mean"), "{r}");
    wait_for(
        "the first Job's pod to be collected",
        crate::JOB_WAIT,
        || async { c.job_pods(&ns, "exp-1-job").await.is_empty().then_some(()) },
    )
    .await
    .expect("garbage collection of exp-1-job's pod");

    // uninstall: nothing of the release is left (helm deletes the Job, garbage collection
    // its pod).
    let r = helm(c, &["uninstall", rel, "-n", &ns, "--wait"]).await;
    assert_eq!(r.code, 0, "helm uninstall: {r}");
    nothing_left(c, &ns, rel).await;
    let r = iter8(c, &["report", "--release", rel, "-n", &ns]).await;
    assert_ne!(r.code, 0, "{r}");
    assert!(r.err.contains("not found"), "{r}");
    c.delete_namespace(&ns).await;
}

/// The runner's ServiceAccount: everything it did was allowed and touched only what its
/// Roles name; anything else gets 403 from the real authorizer.
async fn rbac(c: &Cluster, ns: &str, rel: &str) {
    let sa_user = format!("system:serviceaccount:{ns}:exp-iter8");
    let reqs = c.requests_of(&sa_user);
    assert!(!reqs.is_empty(), "the runner made no request as {sa_user}");
    for e in &reqs {
        assert!(e.allowed() && e.code < 300, "runner request refused: {e:?}");
        if !e.resource.is_empty() {
            assert!(
                matches!(
                    (e.resource.as_str(), e.name.as_str()),
                    ("secrets", "exp") | ("services", "httpbin") | ("deployments", "httpbin")
                ),
                "{e:?}"
            );
        }
    }
    assert!(
        reqs.iter()
            .any(|e| e.verb == "patch" && e.resource == "secrets"),
        "no patch: {reqs:?}"
    );
    let roles: Api<Role> = Api::namespaced(c.client(), ns);
    let role = roles.get("exp-iter8").await.expect("role");
    let rules = serde_json::to_value(role.rules.unwrap_or_default()).expect("json");
    assert_eq!(
        rules,
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [rel],
                "verbs": ["get", "patch"]}]),
    );
    let ready = roles.get("exp-iter8-ready").await.expect("ready role");
    let rules = serde_json::to_value(ready.rules.unwrap_or_default()).expect("json");
    for r in rules.as_array().expect("rules") {
        assert_eq!(r["verbs"], json!(["get"]), "{rules}");
        assert_eq!(r["resourceNames"], json!(["httpbin"]), "{rules}");
    }

    // Another release's Secret in the same namespace.
    let secrets: Api<Secret> = Api::namespaced(c.client(), ns);
    let other: Secret = serde_json::from_value(json!({
        "metadata": {"name": "other"},
        "stringData": {"experiment.yaml": "spec:\n- task: assess\n  with: {}\n"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &other)
        .await
        .expect("create other");

    // As the ServiceAccount: what the Roles name is allowed, the rest is 403.
    let sa = c
        .service_account_client(ns, "exp-iter8")
        .await
        .expect("sa client");
    let sa_secrets: Api<Secret> = Api::namespaced(sa.clone(), ns);
    assert!(sa_secrets.get(rel).await.is_ok(), "get its own Secret");
    let code = |r: Result<Value, kube::Error>| match r {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("{e}"),
    };
    let as_value =
        |r: Result<Secret, kube::Error>| r.map(|s| serde_json::to_value(s).unwrap_or_default());
    assert_eq!(
        code(as_value(sa_secrets.get("other").await)),
        403,
        "another Secret"
    );
    assert_eq!(
        code(
            sa_secrets
                .list(&ListParams::default())
                .await
                .map(|l| serde_json::to_value(l.items).unwrap_or_default())
        ),
        403,
        "list Secrets"
    );
    assert_eq!(
        code(
            sa_secrets
                .delete(rel, &Default::default())
                .await
                .map(|_| Value::Null)
        ),
        403,
        "delete its own Secret"
    );
    let sa_pods: Api<Pod> = Api::namespaced(sa.clone(), ns);
    assert_eq!(
        code(
            sa_pods
                .list(&ListParams::default())
                .await
                .map(|l| serde_json::to_value(l.items).unwrap_or_default())
        ),
        403,
        "list pods"
    );
    let sa_services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(sa, ns);
    assert!(
        sa_services.get("httpbin").await.is_ok(),
        "the ready Role's Service"
    );
    assert_eq!(
        code(
            sa_services
                .get("not-httpbin")
                .await
                .map(|s| serde_json::to_value(s).unwrap_or_default())
        ),
        403,
        "a Service the ready Role does not name"
    );

    // The runner itself pointed at the other release's Secret: 403, reported clearly.
    let sa_kc = c
        .service_account_kubeconfig(ns, "exp-iter8")
        .expect("sa kubeconfig");
    let o = tokio::process::Command::new(bin("iter8-runner"))
        .args([
            "--namespace",
            ns,
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
    assert_eq!(r.code, 2, "{r}");
    assert!(r.err.contains("forbidden") && r.err.contains("403"), "{r}");
    assert!(r.err.contains("other"), "{r}");
    let denied = wait_for(
        "the audit log's denial",
        std::time::Duration::from_secs(10),
        || async {
            let d: Vec<_> = c
                .requests_of(&sa_user)
                .into_iter()
                .filter(|e| e.name == "other")
                .collect();
            (!d.is_empty()).then_some(d)
        },
    )
    .await
    .expect("denials in the audit log");
    assert!(
        denied.iter().all(|e| !e.allowed() && e.code == 403),
        "{denied:?}"
    );
    secrets
        .delete("other", &Default::default())
        .await
        .expect("delete other");
}

pub async fn install_upgrade_uninstall_with_helm3(c: &Cluster) {
    let ns = c.namespace("helm3").await.expect("namespace");
    let rel = "exp3";
    let addr = target().await;
    let url = format!("http://{addr}/get");
    let r = install(
        Helm::V3,
        c,
        "install",
        &ns,
        rel,
        &http_sets(&url, "2000"),
        true,
    )
    .await;
    assert_eq!(r.code, 0, "helm3 install: {r}");
    let r = iter8_assert(c, "completed,nofailure,slos", rel, &ns, &[]).await;
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(report_json(c, &ns, rel).await["revision"], 1);

    let r = install(
        Helm::V3,
        c,
        "upgrade",
        &ns,
        rel,
        &http_sets(&url, "0.0001"),
        true,
    )
    .await;
    assert_eq!(r.code, 0, "helm3 upgrade: {r}");
    let job = finished_job(c, &ns, "exp3-2-job").await;
    assert_eq!(job["status"]["succeeded"], 1, "{job}");
    let res = report_json(c, &ns, rel).await;
    assert_eq!(res["revision"], 2, "{res}");
    let r = iter8_assert(c, "slos", rel, &ns, &[]).await;
    assert_eq!(r.code, 1, "{r}");

    let r = crate::helm_with(Helm::V3, c, &["uninstall", rel, "-n", &ns, "--wait"]).await;
    assert_eq!(r.code, 0, "helm3 uninstall: {r}");
    nothing_left(c, &ns, rel).await;
    c.delete_namespace(&ns).await;
}
