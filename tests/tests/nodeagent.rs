//! The node agent against the real control plane (`scripts/test-cluster up` in a state
//! directory of its own, `target/nodeagent-test-cluster`, with an image map for this
//! test's programs; stopped at the end): the real Job controller sees our exit codes,
//! `kubectl logs` reaches our log endpoint through the API server, garbage collection of
//! a Job's pods completes and ends their processes, and a pod's process calls the API as
//! its ServiceAccount with the token at the standard path. Podman mode runs a real
//! container when podman and an image are present (SKIPPED otherwise).

use std::path::PathBuf;
use std::time::Duration;

use iter8_tests::k8s::{repo_root, restricted_pod_spec, wait_for, Cluster, UpOptions};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};

const HOST_IMAGE: &str = "iter8-test/host:1";
const WHOAMI_IMAGE: &str = "iter8-test/whoami:1";
const WAIT: Duration = Duration::from_secs(120);

fn cluster_dir() -> PathBuf {
    repo_root().join("target/nodeagent-test-cluster")
}

fn podman_image() -> Option<String> {
    let image =
        std::env::var("ITER8_TEST_IMAGE").unwrap_or_else(|_| "localhost/iter8-runner:e2e".into());
    let ok = std::process::Command::new("podman")
        .args(["image", "exists", &image])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(image)
}

async fn connect() -> Cluster {
    Cluster::connect(UpOptions {
        dir: Some(cluster_dir()),
        images: vec![
            format!("{HOST_IMAGE}=@host"),
            format!("{WHOAMI_IMAGE}={}", env!("CARGO_BIN_EXE_iter8-k8s-whoami")),
        ],
        podman: podman_image().is_some(),
        node_agent: Some(env!("CARGO_BIN_EXE_iter8-node-agent").into()),
    })
    .await
    .expect("test cluster")
}

fn host_container(script: &str) -> Value {
    json!({"name": "main", "image": HOST_IMAGE, "command": ["sh", "-c", script]})
}

async fn create_job(c: &Cluster, ns: &str, name: &str, container: Value) -> Job {
    let mut spec = restricted_pod_spec(vec![container]);
    spec["restartPolicy"] = json!("Never");
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }))
    .expect("job");
    Api::<Job>::namespaced(c.client(), ns)
        .create(&PostParams::default(), &job)
        .await
        .expect("create job")
}

/// Waits for the Job's condition Complete or Failed; returns (type, reason).
async fn job_outcome(c: &Cluster, ns: &str, name: &str) -> (String, String) {
    let jobs: Api<Job> = Api::namespaced(c.client(), ns);
    wait_for(&format!("job {name} to finish"), WAIT, || async {
        let j = jobs.get(name).await.ok()?;
        let conds = j.status?.conditions?;
        conds
            .into_iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .map(|c| (c.type_, c.reason.unwrap_or_default()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nnode agent log:\n{}", c.component_log("node-agent")))
}

async fn job_pods(c: &Cluster, ns: &str, job: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.client(), ns)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn kubectl_logs(c: &Cluster, ns: &str, target: &str) -> String {
    let out = c
        .kubectl()
        .args(["logs", "-n", ns, target])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl logs {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn terminated(p: &Pod) -> Value {
    serde_json::to_value(p).unwrap_or_default()["status"]["containerStatuses"][0]["state"]
        ["terminated"]
        .clone()
}

/// Stops this test's cluster when the test ends (also when it fails).
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("scripts/test-cluster"))
            .arg("down")
            .env("ITER8_TEST_CLUSTER_DIR", cluster_dir())
            .status();
    }
}

/// One cluster for all scenarios (it takes seconds to start), which run concurrently.
#[tokio::test]
async fn node_agent_end_to_end() {
    let c = connect().await;
    let _down = Down;
    tokio::join!(
        job_exit_0_completes_and_kubectl_logs_shows_its_output(&c),
        job_exit_3_fails_with_backoff_limit_exceeded(&c),
        deleting_a_job_deletes_its_pods_and_ends_their_processes(&c),
        a_pod_calls_the_api_as_its_service_account(&c),
        podman_runs_a_real_container(&c),
        a_deployment_becomes_available_and_sees_its_volumes_and_env(&c),
        init_containers_run_first_and_share_an_empty_dir(&c),
    );
}

async fn job_exit_0_completes_and_kubectl_logs_shows_its_output(c: &Cluster) {
    let ns = c.namespace("na-ok").await.expect("namespace");
    create_job(
        c,
        &ns,
        "ok",
        host_container("echo hello from the job; echo to stderr >&2; exit 0"),
    )
    .await;
    assert_eq!(job_outcome(c, &ns, "ok").await.0, "Complete");
    let pods = job_pods(c, &ns, "ok").await;
    assert_eq!(pods.len(), 1);
    let t = terminated(&pods[0]);
    assert_eq!(t["exitCode"], 0, "{t}");
    assert_eq!(t["reason"], "Completed", "{t}");
    assert_eq!(
        pods[0].status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    let logs = kubectl_logs(c, &ns, "job/ok");
    assert!(logs.contains("hello from the job\n"), "{logs}");
    assert!(logs.contains("to stderr\n"), "{logs}");
    c.delete_namespace(&ns).await;
}

async fn job_exit_3_fails_with_backoff_limit_exceeded(c: &Cluster) {
    let ns = c.namespace("na-fail").await.expect("namespace");
    create_job(c, &ns, "fail", host_container("echo failing; exit 3")).await;
    assert_eq!(
        job_outcome(c, &ns, "fail").await,
        ("Failed".to_string(), "BackoffLimitExceeded".to_string())
    );
    let pods = job_pods(c, &ns, "fail").await;
    assert_eq!(pods.len(), 1, "backoffLimit 0: one pod");
    let t = terminated(&pods[0]);
    assert_eq!(t["exitCode"], 3, "{t}");
    assert_eq!(t["reason"], "Error", "{t}");
    c.delete_namespace(&ns).await;
}

async fn deleting_a_job_deletes_its_pods_and_ends_their_processes(c: &Cluster) {
    let ns = c.namespace("na-del").await.expect("namespace");
    create_job(
        c,
        &ns,
        "long",
        host_container(
            // `$$$$`: the kubelet's expansion turns `$$` into `$`.
            "echo pid=$$$$; trap 'echo got SIGTERM; exit 0' TERM; while :; do sleep 0.2; done",
        ),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.client(), &ns);
    let pod_name = wait_for("the job's pod to run", WAIT, || async {
        job_pods(c, &ns, "long").await.into_iter().find_map(|p| {
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            running.then(|| p.metadata.name.clone()).flatten()
        })
    })
    .await
    .expect("running pod");
    let pid: u32 = wait_for("the process's pid in its log", WAIT, || async {
        let logs = c
            .kubectl()
            .args(["logs", "-n", &ns, &pod_name])
            .output()
            .ok()?;
        String::from_utf8_lossy(&logs.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("pid=").and_then(|p| p.trim().parse().ok()))
    })
    .await
    .expect("pid");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the process runs"
    );
    let ready = pods.get(&pod_name).await.expect("pod");
    let conds = ready.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "{conds:?}"
    );
    Api::<Job>::namespaced(c.client(), &ns)
        .delete("long", &DeleteParams::background())
        .await
        .expect("delete job");
    wait_for("the job's pods to be deleted", WAIT, || async {
        pods.list(&ListParams::default())
            .await
            .ok()
            .filter(|l| l.items.is_empty())
            .map(|_| ())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nnode agent log:\n{}", c.component_log("node-agent")));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the pod's process {pid} ended"
    );
    c.delete_namespace(&ns).await;
}

async fn run_pod(c: &Cluster, ns: &str, name: &str, mut spec: Value) -> (String, String) {
    spec["restartPolicy"] = json!("Never");
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name}, "spec": spec}))
    .expect("pod");
    let pods: Api<Pod> = Api::namespaced(c.client(), ns);
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let phase = wait_for(&format!("pod {name} to finish"), WAIT, || async {
        let p = pods.get(name).await.ok()?;
        let phase = p.status?.phase?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nnode agent log:\n{}", c.component_log("node-agent")));
    (phase, kubectl_logs(c, ns, &format!("pod/{name}")))
}

async fn a_pod_calls_the_api_as_its_service_account(c: &Cluster) {
    let ns = c.namespace("na-sa").await.expect("namespace");
    let whoami = json!({"name": "main", "image": WHOAMI_IMAGE});
    let (phase, out) = run_pod(c, &ns, "who", restricted_pod_spec(vec![whoami.clone()])).await;
    assert_eq!(phase, "Succeeded", "{out}");
    assert!(
        out.contains(&format!("user=system:serviceaccount:{ns}:default namespace={ns} list-pods=403")),
        "the token at the standard path identifies the pod's ServiceAccount, which the real authorizer denies listing pods: {out}"
    );
    // Granted by a Role, the same program may list pods.
    let rbac = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "list-pods", "namespace": ns},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "list-pods", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "list-pods"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]}]});
    let mut apply = c
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl apply");
    if let Some(mut stdin) = apply.stdin.take() {
        use std::io::Write;
        stdin.write_all(rbac.to_string().as_bytes()).expect("rbac");
    }
    assert!(apply.wait().expect("kubectl").success());
    let (phase, out) = run_pod(c, &ns, "who2", restricted_pod_spec(vec![whoami.clone()])).await;
    assert_eq!(phase, "Succeeded", "{out}");
    assert!(out.contains("list-pods=200"), "{out}");
    // automountServiceAccountToken: false -> no token, and in-cluster configuration fails.
    let mut spec = restricted_pod_spec(vec![whoami]);
    spec["automountServiceAccountToken"] = json!(false);
    let (phase, out) = run_pod(c, &ns, "who3", spec).await;
    assert_eq!(phase, "Failed", "{out}");
    assert!(!out.contains("user="), "{out}");
    c.delete_namespace(&ns).await;
}

async fn podman_runs_a_real_container(c: &Cluster) {
    let Some(image) = podman_image() else {
        println!("SKIPPED podman_runs_a_real_container: podman or the image (ITER8_TEST_IMAGE, default localhost/iter8-runner:e2e) is missing");
        return;
    };
    let ns = c.namespace("na-podman").await.expect("namespace");
    let spec = restricted_pod_spec(vec![
        json!({"name": "main", "image": image, "args": ["--help"]}),
    ]);
    let (phase, out) = run_pod(c, &ns, "podman", spec).await;
    assert_eq!(phase, "Succeeded", "{out}");
    assert!(!out.is_empty(), "the container's output is the pod's log");
    let p = Api::<Pod>::namespaced(c.client(), &ns)
        .get("podman")
        .await
        .expect("pod");
    let v = serde_json::to_value(&p).unwrap_or_default();
    let id = v["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or("");
    assert!(id.starts_with("podman://"), "{v}");
    c.delete_namespace(&ns).await;
}

async fn a_deployment_becomes_available_and_sees_its_volumes_and_env(c: &Cluster) {
    let ns = c.namespace("na-deploy").await.expect("namespace");
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": ns},
         "data": {"greeting": "hello from a configmap"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
         "stringData": {"password": "s3cret"}}]});
    let mut spec = restricted_pod_spec(vec![json!({
        "name": "main", "image": HOST_IMAGE,
        "command": ["sh", "-c", "cat /etc/conf/greeting; echo; echo password=$PASSWORD pod=$(POD); sleep 3600"],
        "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"}],
    })]);
    spec["volumes"] = json!([{"name": "conf", "configMap": {"name": "conf"}}]);
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}});
    for doc in [objects, deploy] {
        let mut apply = c
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl apply");
        if let Some(mut stdin) = apply.stdin.take() {
            use std::io::Write;
            stdin.write_all(doc.to_string().as_bytes()).expect("write");
        }
        assert!(apply.wait().expect("kubectl").success());
    }
    let out = c
        .kubectl()
        .args([
            "wait",
            "-n",
            &ns,
            "--for",
            "condition=Available",
            "deploy/web",
            "--timeout",
            "120s",
        ])
        .output()
        .expect("kubectl wait");
    assert!(
        out.status.success(),
        "{}\nnode agent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.component_log("node-agent")
    );
    let pods = Api::<Pod>::namespaced(c.client(), &ns)
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods");
    assert_eq!(pods.items.len(), 2);
    let name = pods.items[0].metadata.name.clone().unwrap_or_default();
    let logs = wait_for("the container's output", WAIT, || async {
        let o = c.kubectl().args(["logs", "-n", &ns, &name]).output().ok()?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.contains("password=").then_some(text)
    })
    .await
    .expect("logs");
    assert!(logs.contains("hello from a configmap\n"), "{logs}");
    assert!(
        logs.contains(&format!("password=s3cret pod={name}")),
        "{logs}"
    );
    c.delete_namespace(&ns).await;
}

async fn init_containers_run_first_and_share_an_empty_dir(c: &Cluster) {
    let ns = c.namespace("na-init").await.expect("namespace");
    let mut spec = restricted_pod_spec(vec![
        json!({"name": "first", "image": HOST_IMAGE, "command": ["sh", "-c", "echo one > /mnt/order"],
               "volumeMounts": [{"name": "work", "mountPath": "/mnt"}]}),
        json!({"name": "second", "image": HOST_IMAGE, "command": ["sh", "-c", "echo two >> /mnt/order"],
               "volumeMounts": [{"name": "work", "mountPath": "/mnt"}]}),
    ]);
    let containers = spec["containers"].clone();
    spec["initContainers"] = containers;
    spec["containers"] = restricted_pod_spec(vec![json!({
        "name": "main", "image": HOST_IMAGE, "command": ["sh", "-c", "cat /mnt/order"],
        "volumeMounts": [{"name": "work", "mountPath": "/mnt"}]})])["containers"]
        .clone();
    spec["volumes"] = json!([{"name": "work", "emptyDir": {}}]);
    let (phase, out) = run_pod(c, &ns, "init", spec).await;
    assert_eq!(phase, "Succeeded", "{out}");
    assert_eq!(
        out, "one\ntwo\n",
        "init containers ran in order, before the container"
    );
    let p = Api::<Pod>::namespaced(c.client(), &ns)
        .get("init")
        .await
        .expect("pod");
    let v = serde_json::to_value(&p).unwrap_or_default();
    for i in 0..2 {
        assert_eq!(
            v["status"]["initContainerStatuses"][i]["state"]["terminated"]["reason"], "Completed",
            "{v}"
        );
    }
    assert!(
        !std::path::Path::new("/mnt/order").exists(),
        "the emptyDir stayed in the pod's mount namespace"
    );
    c.delete_namespace(&ns).await;
}
