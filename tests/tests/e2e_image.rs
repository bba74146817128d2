//! End to end through the REAL runner image: the chart installed with the real helm v4 into
//! the real control plane (`scripts/test-cluster up --podman`, a cluster of this test's own
//! in `target/tmp/e2e-image-cluster`, stopped at the end), so the real Job controller's pod
//! runs, through the node agent, the `make image` image (static musl `iter8-runner` on
//! `FROM scratch`) with `podman run --runtime runc`, the chart's restricted securityContext
//! (admitted by Pod Security `restricted`), the ServiceAccount's TokenRequest token mounted
//! where kube-rs's in-cluster configuration finds it, and host networking to reach the API
//! server and the load target on 127.0.0.1.
//!
//! The image: `$ITER8_TEST_IMAGE`, else the Makefile's default
//! (`ghcr.io/iter8-rs/iter8-runner:<appVersion>`); `make test` builds it (`make image`)
//! before the tests. When it is not in local podman storage this test runs `make image`
//! itself. Without podman on PATH the test prints SKIPPED and returns (podman is installed
//! by scripts/setup-test-env, so in `make test` it runs).

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use common::{helm, iter8, iter8_assert, repo_root, target, to_run, Run};
use iter8_tests::k8s::{Cluster, UpOptions};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

const JOB_WAIT: Duration = Duration::from_secs(180);
/// The image's user (Dockerfile `USER`) and the chart's runAsUser / runAsGroup.
const UID: u32 = 65532;

fn podman(args: &[&str]) -> Run {
    to_run(
        Command::new("podman")
            .args(args)
            .output()
            .expect("run podman"),
    )
}

fn podman_available() -> bool {
    Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn app_version() -> String {
    let chart =
        std::fs::read_to_string(repo_root().join("charts/iter8/Chart.yaml")).expect("Chart.yaml");
    let v: serde_yaml::Value = serde_yaml::from_str(&chart).expect("Chart.yaml is YAML");
    v["appVersion"].as_str().expect("appVersion").to_string()
}

/// The image `make image` builds (or `$ITER8_TEST_IMAGE`); built with `make image` when it
/// is not in local podman storage.
fn built_image() -> String {
    let image = std::env::var("ITER8_TEST_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("ghcr.io/iter8-rs/iter8-runner:{}", app_version()));
    if podman(&["image", "exists", &image]).code != 0 {
        eprintln!("{image} is not in local podman storage: building it with `make image`");
        let mut make = Command::new("make");
        make.args(["image", &format!("IMAGE={image}"), "CONTAINER=podman"])
            .current_dir(repo_root());
        // The variables cargo sets for this test process are not the build's.
        for (k, _) in std::env::vars() {
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_CRATE_")
                || k.starts_with("CARGO_PRIMARY_")
                || k.starts_with("CARGO_TARGET_TMPDIR")
            {
                make.env_remove(k);
            }
        }
        let r = to_run(make.output().expect("run make image"));
        assert_eq!(r.code, 0, "make image: {r}");
    }
    image
}

/// A second name for the image under podman's local naming (`localhost/…`), removed again
/// when dropped (only this name: the image and its other names stay).
struct LocalTag(String);

impl LocalTag {
    fn new(image: &str) -> Self {
        let name = format!("localhost/iter8-runner:e2e-{}", std::process::id());
        let r = podman(&["tag", image, &name]);
        assert_eq!(r.code, 0, "podman tag: {r}");
        LocalTag(name)
    }
}

impl Drop for LocalTag {
    fn drop(&mut self) {
        let _ = podman(&["untag", &self.0, &self.0]);
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The only pod of a Job, with a diagnostic when it is not there.
async fn only_pod(c: &Cluster, ns: &str, job: &str) -> Pod {
    let mut pods = c.job_pods(ns, job).await;
    assert_eq!(pods.len(), 1, "pods of {job}: {pods:?}");
    pods.remove(0)
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().expect("pod name")
}

fn json_of(pod: &Pod) -> Value {
    serde_json::to_value(pod).expect("pod json")
}

async fn wait_job(c: &Cluster, ns: &str, job: &str) -> Value {
    match c.wait_job(ns, job, JOB_WAIT).await {
        Ok(j) => serde_json::to_value(j).expect("job json"),
        Err(e) => {
            let mut logs = Vec::new();
            for p in c.job_pods(ns, job).await {
                let v = json_of(&p);
                logs.push(format!(
                    "{}\n{}",
                    v["status"],
                    c.logs(ns, &format!("pod/{}", pod_name(&p)))
                ));
            }
            panic!("{e}\npods:\n{}", logs.join("\n"));
        }
    }
}

/// The pod ran in podman: its status names the podman container and the image, and the
/// container's record (podman inspect, kept by the node agent) is there.
fn container_record(c: &Cluster, pod: &Pod, image_id: &str) -> Value {
    let name = pod_name(pod);
    let v = json_of(pod);
    let cs = &v["status"]["containerStatuses"][0];
    let cid = cs["containerID"].as_str().unwrap_or("");
    assert!(
        cid.starts_with("podman://"),
        "not run by podman: {}",
        v["status"]
    );
    assert_eq!(cs["imageID"], json!(format!("sha256:{image_id}")), "{cs}");
    let rec = c
        .container_record(pod)
        .unwrap_or_else(|| panic!("no container record for pod {name}"));
    assert_eq!(
        format!("podman://{}", rec["Id"].as_str().unwrap_or("")),
        cid,
        "the record is this pod's container"
    );
    assert_eq!(rec["Image"].as_str(), Some(image_id), "the built image ran");
    assert_eq!(rec["OCIRuntime"], "runc", "{}", rec["OCIRuntime"]);
    // the container is gone (the record was taken before removing it)
    let cname = rec["Name"].as_str().expect("container name");
    assert_ne!(podman(&["container", "exists", cname]).code, 0, "{cname}");
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_job_runs_the_real_image_under_podman() {
    if !podman_available() {
        eprintln!(
            "SKIPPED: podman is not installed, so the runner image cannot run \
             (scripts/setup-test-env installs it: apt-get install podman runc)"
        );
        return;
    }
    let image = built_image();
    let r = podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}\t{{.Size}}\t{{.Config.User}}\t{{.Created}}",
        &image,
    ]);
    assert_eq!(r.code, 0, "{r}");
    let fields: Vec<&str> = r.out.trim().split('\t').collect();
    let (image_id, size, user, created) = (fields[0].to_string(), fields[1], fields[2], fields[3]);
    eprintln!(
        "image {image}: id {}, {size} bytes ({:.1} MiB), user {user}, created {created} \
         (`make image` rebuilds it from this tree)",
        &image_id[..12],
        size.parse::<f64>().unwrap_or(0.0) / 1048576.0
    );
    assert_eq!(user, format!("{UID}:{UID}"), "the image's USER");
    let tag = LocalTag::new(&image);
    let (repo, tag_part) = tag.0.rsplit_once(':').expect("repo:tag");

    // Podman mode and no image map: the Job can only run if podman runs the image.
    let c = Cluster::connect(UpOptions {
        dir: Some(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-image-cluster")),
        images: vec![],
        podman: true,
        node_agent: Some(env!("CARGO_BIN_EXE_iter8-node-agent").into()),
    })
    .await
    .expect("test cluster (scripts/test-cluster up --podman)");
    let _down = c.down_on_drop();
    let ns = c.namespace("image").await.expect("namespace");
    let ns = ns.as_str();
    let addr = target().await;
    let rel = "img";
    let chart = repo_root().join("charts/iter8").display().to_string();
    let sets = [
        "tasks={http,assess}".to_string(),
        format!("http.url=http://{addr}/get"),
        "http.numRequests=20".into(),
        "http.qps=50".into(),
        "assess.SLOs.upper.http/latency-mean=5000".into(),
        "assess.SLOs.upper.http/error-count=0".into(),
        format!("image.repository={repo}"),
        format!("image.tag={tag_part}"),
        "image.pullPolicy=Never".into(),
    ];
    let mut args: Vec<&str> = vec!["install", rel, &chart, "-n", ns];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let r = helm(&c, &args).await;
    assert_eq!(r.code, 0, "helm install: {r}");

    let job = wait_job(&c, ns, "img-1-job").await;
    let pod = only_pod(&c, ns, "img-1-job").await;
    let log = c.logs(ns, &format!("pod/{}", pod_name(&pod)));
    assert_eq!(
        job["status"]["succeeded"], 1,
        "{job}\n{log}\n(an image built from older sources? run `make image`)"
    );
    let pod_json = json_of(&pod);
    assert_eq!(
        pod_json["status"]["containerStatuses"][0]["image"],
        json!(tag.0),
        "{}",
        pod_json["status"]
    );
    let rec = container_record(&c, &pod, &image_id);
    // The chart's restricted securityContext, as podman applied it.
    assert_eq!(rec["Config"]["User"], format!("{UID}:{UID}"), "{rec}");
    assert_eq!(rec["HostConfig"]["ReadonlyRootfs"], true, "{rec}");
    assert!(
        strs(&rec["HostConfig"]["SecurityOpt"]).contains(&"no-new-privileges".to_string()),
        "{}",
        rec["HostConfig"]
    );
    let dropped = strs(&rec["HostConfig"]["CapDrop"]);
    for c in ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID", "CAP_DAC_OVERRIDE"] {
        assert!(
            dropped.contains(&c.to_string()),
            "{c} not dropped: {dropped:?}"
        );
    }
    assert!(strs(&rec["HostConfig"]["CapAdd"]).is_empty(), "{rec}");
    // The image's entrypoint with the chart's args ($(VAR) expanded like a kubelet).
    // (podman 4 reports the entrypoint as a string, later versions as a list)
    let entrypoint = &rec["Config"]["Entrypoint"];
    assert!(
        entrypoint == "/iter8-runner" || strs(entrypoint) == ["/iter8-runner"],
        "{entrypoint}"
    );
    assert_eq!(
        strs(&rec["Config"]["Cmd"]),
        ["--namespace", ns, "--release", rel]
    );
    // In-cluster configuration: no kubeconfig, the ServiceAccount mounted read-only.
    let env = strs(&rec["Config"]["Env"]);
    assert!(!env.iter().any(|e| e.starts_with("KUBECONFIG=")), "{env:?}");
    assert!(
        env.iter()
            .any(|e| e.starts_with("KUBERNETES_SERVICE_HOST=")),
        "{env:?}"
    );
    assert!(env.contains(&format!("POD_NAMESPACE={ns}")), "{env:?}");
    let mounts: Vec<(String, bool)> = rec["Mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| {
            (
                m["Destination"].as_str().unwrap_or("").to_string(),
                m["RW"] == true,
            )
        })
        .collect();
    assert!(
        mounts.contains(&(
            "/var/run/secrets/kubernetes.io/serviceaccount".to_string(),
            false
        )),
        "{mounts:?}"
    );
    assert!(mounts.contains(&("/tmp".to_string(), true)), "{mounts:?}");

    // The verdict, the report, the Secret, the log.
    let r = iter8_assert(&c, "completed,nofailure,slos", rel, ns, &[]).await;
    assert_eq!(r.code, 0, "assert: {r}\npod log:\n{log}");
    assert!(r.out.contains("all conditions hold"), "{r}");
    let r = iter8(&c, &["report", "--release", rel, "-n", ns]).await;
    assert_eq!(r.code, 0, "report: {r}");
    for m in [
        "http/latency-mean",
        "http/error-count",
        "http/request-count",
    ] {
        assert!(r.out.contains(m), "report lacks {m}: {r}");
    }
    let client = c.client();
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let secret = secrets.get(rel).await.expect("secret");
    let result = secret
        .data
        .as_ref()
        .and_then(|d| d.get("result.yaml"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_else(|| panic!("no result.yaml in the Secret: {secret:?}"));
    let result: serde_yaml::Value = serde_yaml::from_str(&result).expect("result YAML");
    assert_eq!(result["revision"].as_u64(), Some(1), "{result:?}");
    assert_eq!(result["numCompletedTasks"].as_u64(), Some(2), "{result:?}");
    assert_eq!(result["failure"].as_bool(), Some(false), "{result:?}");
    assert!(
        serde_yaml::to_string(&result["insights"])
            .expect("yaml")
            .contains("http/latency-mean"),
        "{result:?}"
    );
    let r = iter8(&c, &["log", "--release", rel, "-n", ns]).await;
    assert_eq!(r.code, 0, "log: {r}");
    assert!(r.out.contains("revision 1, job img-1-job"), "{r}");
    assert!(r.out.contains("experiment completed"), "{r}");
    // Every request of the container was made with the mounted ServiceAccount token.
    // (the API server's audit log)
    let sa_user = format!("system:serviceaccount:{ns}:{rel}-iter8");
    let reqs = c.requests_of(&sa_user);
    assert!(
        reqs.iter()
            .any(|e| e.verb == "patch" && e.resource == "secrets" && e.name == rel),
        "{reqs:?}"
    );
    assert!(reqs.iter().all(|e| e.allowed()), "{reqs:?}");

    // Behaviour, not just configuration: the chart's pod template (same image, same
    // securityContext) running the runner on a file experiment. Writing the result to the
    // root file system fails with EROFS (a writable root would give EACCES to uid 65532, as
    // / belongs to root); writing to the /tmp emptyDir works, and the file on the host
    // belongs to uid/gid 65532.
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), ns);
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "file-exp"},
        "data": {"experiment.yaml": "spec:\n- task: assess\n  with: {}\n"},
    }))
    .expect("configmap");
    cms.create(&Default::default(), &cm)
        .await
        .expect("create configmap");
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(client, ns);
    let chart_job = serde_json::to_value(jobs.get("img-1-job").await.expect("job")).expect("json");
    let mut outcomes = Vec::new();
    for (name, output) in [
        ("write-root", "/result.yaml"),
        ("write-tmp", "/tmp/result.yaml"),
    ] {
        let mut tmpl = chart_job["spec"]["template"].clone();
        tmpl["metadata"] = json!({"labels": {"app": name}});
        let ct = &mut tmpl["spec"]["containers"][0];
        // No ITER8_RELEASE / POD_NAMESPACE: the runner's file mode.
        ct["env"] = json!([{"name": "RUST_LOG", "value": "info"}]);
        ct["args"] = json!([
            "-f",
            "/exp/experiment.yaml",
            "-o",
            output,
            "--log-format",
            "human"
        ]);
        ct["volumeMounts"]
            .as_array_mut()
            .expect("mounts")
            .push(json!({"name": "exp", "mountPath": "/exp"}));
        tmpl["spec"]["volumes"]
            .as_array_mut()
            .expect("volumes")
            .push(json!({"name": "exp", "configMap": {"name": "file-exp"}}));
        let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": tmpl},
        }))
        .expect("job");
        jobs.create(&Default::default(), &job)
            .await
            .expect("create job");
        let done = wait_job(&c, ns, name).await;
        let pod = only_pod(&c, ns, name).await;
        container_record(&c, &pod, &image_id);
        let log = c.logs(ns, &format!("pod/{}", pod_name(&pod)));
        outcomes.push((done, pod, log));
    }
    let (done, _, log) = &outcomes[0];
    assert_eq!(done["status"]["failed"], 1, "{done}\n{log}");
    assert!(
        log.contains("/result.yaml: Read-only file system (os error 30)"),
        "{log}"
    );
    let (done, pod, log) = &outcomes[1];
    assert_eq!(done["status"]["succeeded"], 1, "{done}\n{log}");
    let file = c.pod_dir(pod).join("volumes/tmp/result.yaml");
    let meta =
        std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}\n{log}", file.display()));
    assert_eq!((meta.uid(), meta.gid()), (UID, UID), "{}", file.display());
    let text = std::fs::read_to_string(&file).expect("result");
    assert!(text.contains("numCompletedTasks: 1"), "{text}");

    // uninstall: the release's objects go; no container of the test is left.
    let r = helm(&c, &["uninstall", rel, "-n", ns, "--wait"]).await;
    assert_eq!(r.code, 0, "helm uninstall: {r}");
    let r = podman(&[
        "ps",
        "--all",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("name=iter8-node-{ns}-{rel}-"),
    ]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.out.trim(), "", "containers left: {r}");
    drop(tag);
}
