//! Controllers: Jobs run their pod's first container as a local process (or, in podman mode,
//! as a container from local podman storage); CronJobs create
//! Jobs on schedule; Deployments can be marked Available automatically.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use super::store::{now, random_suffix, ApiError};
use super::{podman, Cluster, ImageTarget, ResourceDef};

fn def(c: &Cluster, group: &str, plural: &str) -> Result<ResourceDef, ApiError> {
    c.store
        .resource(group, plural)
        .ok_or_else(|| ApiError::new(404, "NotFound", format!("{plural} are not served")))
}

/// How one pod run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Exit(i32),
    Deleted,
    Deadline,
}

fn condition(t: &str, reason: &str, message: &str) -> Value {
    let n = now();
    json!({"type": t, "status": "True", "reason": reason, "message": message,
           "lastProbeTime": n, "lastTransitionTime": n})
}

/// Runs a Job to completion: one pod per attempt, up to `backoffLimit + 1` attempts,
/// bounded by `activeDeadlineSeconds`; deletes it `ttlSecondsAfterFinished` after it ends.
pub async fn run_job(cluster: Arc<Cluster>, ns: String, name: String, uid: String) {
    let Ok(jobs) = def(&cluster, "batch", "jobs") else {
        return;
    };
    let Ok(job) = cluster.store.get(&jobs, &ns, &name) else {
        return;
    };
    let spec = job["spec"].clone();
    if spec["suspend"].as_bool() == Some(true) {
        return;
    }
    let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
    let deadline = spec["activeDeadlineSeconds"]
        .as_u64()
        .map(|s| Instant::now() + Duration::from_secs(s));
    let ttl = spec["ttlSecondsAfterFinished"].as_u64();
    let start = now();
    let same_job = |c: &Cluster| {
        c.store
            .get(&jobs, &ns, &name)
            .is_ok_and(|j| j["metadata"]["uid"].as_str() == Some(uid.as_str()))
    };
    let mut failed = 0i64;
    let final_status: Value = loop {
        if !same_job(&cluster) {
            return;
        }
        let _ = cluster.store.modify(&jobs, &ns, &name, true, |j| {
            j["status"]["startTime"] = json!(start);
            j["status"]["active"] = json!(1);
            j["status"]["ready"] = json!(0);
        });
        let outcome = run_pod(&cluster, &job, deadline).await;
        if !same_job(&cluster) {
            return;
        }
        match outcome {
            Outcome::Exit(0) => {
                break json!({
                    "startTime": start, "completionTime": now(), "succeeded": 1, "ready": 0,
                    "failed": if failed > 0 { json!(failed) } else { Value::Null },
                    "conditions": [
                        condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                        condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
                    ],
                })
            }
            Outcome::Deadline => {
                break json!({
                    "startTime": start, "failed": failed + 1, "ready": 0,
                    "conditions": [
                        condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"),
                        condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
                    ],
                })
            }
            Outcome::Exit(_) | Outcome::Deleted => {
                failed += 1;
                if failed > backoff_limit {
                    break json!({
                        "startTime": start, "failed": failed, "ready": 0,
                        "conditions": [
                            condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                            condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                        ],
                    });
                }
                let _ = cluster.store.modify(&jobs, &ns, &name, true, |j| {
                    j["status"]["failed"] = json!(failed);
                });
                tokio::time::sleep(cluster.config.job_backoff).await;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    continue;
                }
            }
        }
    };
    let mut status = final_status;
    if let Some(m) = status.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    let _ = cluster.store.modify(&jobs, &ns, &name, true, |j| {
        j["status"] = status;
    });
    if let Some(t) = ttl {
        tokio::time::sleep(Duration::from_secs(t)).await;
        if same_job(&cluster) {
            let _ = cluster.delete(&jobs, &ns, &name, Some("Background"), false);
        }
    }
}

fn env_value(cluster: &Cluster, pod: &Value, v: &Value) -> Option<String> {
    if let Some(s) = v.get("value").and_then(|s| s.as_str()) {
        return Some(s.to_string());
    }
    let from = v.get("valueFrom")?;
    if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(|p| p.as_str()) {
        return Some(match path {
            "status.podIP" | "status.hostIP" => "127.0.0.1".to_string(),
            p if p.starts_with("metadata.labels['") || p.starts_with("metadata.annotations['") => {
                let (field, rest) = p.split_once("['")?;
                let key = rest.trim_end_matches("']");
                let f = field.trim_start_matches("metadata.");
                pod["metadata"][f][key].as_str().unwrap_or("").to_string()
            }
            p => {
                let ptr = format!("/{}", p.replace('.', "/"));
                pod.pointer(&ptr)
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string()
            }
        });
    }
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    for (kind, plural) in [
        ("secretKeyRef", "secrets"),
        ("configMapKeyRef", "configmaps"),
    ] {
        if let Some(r) = from.get(kind) {
            let d = cluster.store.resource("", plural)?;
            let obj = cluster
                .store
                .get(&d, ns, r["name"].as_str().unwrap_or(""))
                .ok()?;
            let key = r["key"].as_str().unwrap_or("");
            let raw = obj["data"][key].as_str()?;
            if plural == "secrets" {
                use base64::Engine;
                let b = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
                return Some(String::from_utf8_lossy(&b).into_owned());
            }
            return Some(raw.to_string());
        }
    }
    None
}

/// Expands `$(VAR)` references in command and args, as the kubelet does.
fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = s.to_string();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

async fn set_pod_status(
    cluster: &Cluster,
    pods: &ResourceDef,
    ns: &str,
    name: &str,
    status: Value,
) {
    let _ = cluster
        .store
        .modify(pods, ns, name, true, |p| p["status"] = status);
}

async fn run_pod(cluster: &Arc<Cluster>, job: &Value, deadline: Option<Instant>) -> Outcome {
    let Ok(pods) = def(cluster, "", "pods") else {
        return Outcome::Deleted;
    };
    let ns = job["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let job_name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let job_uid = job["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let template = &job["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, v) in [
        ("job-name", &job_name),
        ("controller-uid", &job_uid),
        ("batch.kubernetes.io/job-name", &job_name),
        ("batch.kubernetes.io/controller-uid", &job_uid),
    ] {
        labels[k] = json!(v);
    }
    let pod_name = format!("{job_name}-{}", random_suffix(5));
    let mut spec = template["spec"].clone();
    let sa = spec["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(sa);
    spec["nodeName"] = json!("iter8-test-node");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod_name, "namespace": ns, "labels": labels,
            "annotations": template["metadata"]["annotations"].clone(),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                                 "uid": job_uid, "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": spec,
    });
    let Ok(pod) = cluster.create(&pods, &ns, pod) else {
        return Outcome::Deleted;
    };
    let _ = cluster.store.modify(&pods, &ns, &pod_name, true, |p| {
        p["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    });
    let (kill_tx, mut kill_rx) = tokio::sync::oneshot::channel::<()>();
    cluster.register_kill(&ns, &pod_name, kill_tx);
    let outcome = run_container(cluster, &pods, &pod, &sa, deadline, &mut kill_rx).await;
    cluster.unregister_kill(&ns, &pod_name);
    outcome
}

async fn wait_killed(
    kill_rx: &mut tokio::sync::oneshot::Receiver<()>,
    deadline: Option<Instant>,
) -> Outcome {
    let dl = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = kill_rx => Outcome::Deleted,
        _ = dl => Outcome::Deadline,
    }
}

async fn run_container(
    cluster: &Arc<Cluster>,
    pods: &ResourceDef,
    pod: &Value,
    sa: &str,
    deadline: Option<Instant>,
    kill_rx: &mut tokio::sync::oneshot::Receiver<()>,
) -> Outcome {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let container = pod["spec"]["containers"][0].clone();
    let cname = container["name"].as_str().unwrap_or("main").to_string();
    let image = container["image"].as_str().unwrap_or("").to_string();
    let waiting = |reason: &str, message: &str| {
        json!({"phase": "Pending", "containerStatuses": [{
            "name": cname, "image": image, "imageID": "", "ready": false, "restartCount": 0,
            "started": false, "state": {"waiting": {"reason": reason, "message": message}}}]})
    };
    let log = cluster.log_buffer(&ns, &name);
    // The service account must exist (a real kubelet cannot mount its token otherwise).
    let token = loop {
        if let Some(t) = cluster.store.token_for(&ns, sa) {
            break t;
        }
        set_pod_status(
            cluster,
            pods,
            &ns,
            &name,
            waiting(
                "CreateContainerConfigError",
                &format!("serviceaccount \"{sa}\" not found"),
            ),
        )
        .await;
        tokio::select! {
            o = wait_killed(kill_rx, deadline) => return o,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    // Podman mode: an image in local podman storage runs as a real container; other
    // images fall back to the image map (local processes).
    let local = if cluster.config.podman {
        podman::local_image(&image).await
    } else {
        None
    };
    let target = match &local {
        Some(_) => None,
        None => super::resolve_image(&cluster.config.image_map, &image),
    };
    if local.is_none() && target.is_none() {
        let never = container["imagePullPolicy"].as_str() == Some("Never");
        let msg = if cluster.config.podman {
            format!(
                "image \"{image}\" is neither in local podman storage (build or tag it there, e.g. make image) nor in the test cluster's image map"
            )
        } else {
            format!(
                "image \"{image}\" is not in the test cluster's image map (map it to a local binary)"
            )
        };
        let reason = if never && cluster.config.podman {
            "ErrImageNeverPull"
        } else {
            "ErrImagePull"
        };
        lock_append(&log, format!("{msg}\n").as_bytes());
        set_pod_status(cluster, pods, &ns, &name, waiting(reason, &msg)).await;
        return wait_killed(kill_rx, deadline).await;
    }
    let pod_dir = cluster.config.state_dir.join("pods").join(&ns).join(&name);
    if let Err(e) = std::fs::create_dir_all(&pod_dir) {
        lock_append(
            &log,
            format!("creating {}: {e}\n", pod_dir.display()).as_bytes(),
        );
        return Outcome::Exit(128);
    }
    let (host, port) = cluster
        .host_port()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap_or_default();
    let service_env = [
        ("KUBERNETES_SERVICE_HOST".to_string(), host),
        ("KUBERNETES_SERVICE_PORT".to_string(), port.clone()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".to_string(), port),
    ];
    let mut env: Vec<(String, String)> = Vec::new();
    if local.is_none() {
        let kubeconfig = pod_dir.join("kubeconfig");
        let sa_user = format!("system:serviceaccount:{ns}:{sa}");
        if let Err(e) = std::fs::write(&kubeconfig, cluster.kubeconfig(&token, &sa_user, &ns, true))
        {
            lock_append(&log, format!("writing kubeconfig: {e}\n").as_bytes());
            return Outcome::Exit(128);
        }
        env.extend([
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("HOME".into(), pod_dir.display().to_string()),
            ("HOSTNAME".into(), name.clone()),
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
        ]);
    }
    env.extend(service_env);
    for e in container["env"].as_array().cloned().unwrap_or_default() {
        let Some(k) = e["name"].as_str() else {
            continue;
        };
        let v = env_value(cluster, pod, &e).unwrap_or_default();
        let v = expand(&v, &env);
        env.push((k.to_string(), v));
    }
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .map(|s| expand(s, &env))
                    .collect()
            })
            .unwrap_or_default()
    };
    let command = strs(&container["command"]);
    let args = strs(&container["args"]);
    let launch = match (&local, target) {
        (Some(img), _) => {
            match prepare_podman(
                cluster, pods, pod, &container, &pod_dir, img, &token, sa, &env, &command, &args,
                deadline, kill_rx,
            )
            .await
            {
                Ok(l) => l,
                Err(o) => return o,
            }
        }
        (None, Some(ImageTarget::Binary(b))) => {
            let mut a: Vec<String> = command.iter().skip(1).cloned().collect();
            a.extend(args);
            Launch {
                program: b.display().to_string(),
                argv: a,
                env: Some(env),
                container: None,
            }
        }
        (None, Some(ImageTarget::Host)) => match command.split_first() {
            Some((p, rest)) => {
                let mut a = rest.to_vec();
                a.extend(args);
                Launch {
                    program: p.clone(),
                    argv: a,
                    env: Some(env),
                    container: None,
                }
            }
            None => {
                let msg = "image mapped to @host needs a command";
                lock_append(&log, format!("{msg}\n").as_bytes());
                set_pod_status(
                    cluster,
                    pods,
                    &ns,
                    &name,
                    waiting("CreateContainerError", msg),
                )
                .await;
                return wait_killed(kill_rx, deadline).await;
            }
        },
        (None, None) => return Outcome::Exit(128),
    };
    let image_id = local
        .as_ref()
        .map(|i| format!("sha256:{}", i.id))
        .unwrap_or_default();
    let program = launch.program.clone();
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(&launch.argv);
    if let Some(env) = &launch.env {
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    cmd.current_dir(&pod_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(c) = &launch.container {
        cluster.track_container(c, true);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("starting {program}: {e}");
            lock_append(&log, format!("{msg}\n").as_bytes());
            set_pod_status(
                cluster,
                pods,
                &ns,
                &name,
                waiting("RunContainerError", &msg),
            )
            .await;
            if let Some(c) = &launch.container {
                cluster.track_container(c, false);
            }
            return Outcome::Exit(128);
        }
    };
    let pgid = child.id();
    if let Some(id) = pgid {
        cluster.track_group(id, true);
    }
    let started = now();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        let log = log.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                lock_append(&log, &buf[..n]);
            }
        })
    })
    .collect();
    set_pod_status(
        cluster,
        pods,
        &ns,
        &name,
        json!({"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1", "startTime": started,
               "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
               "containerStatuses": [{"name": cname, "image": image, "imageID": image_id, "ready": true,
                   "restartCount": 0, "started": true, "state": {"running": {"startedAt": started}}}]}),
    )
    .await;
    let mut outcome = tokio::select! {
        r = child.wait() => match r {
            Ok(s) => Outcome::Exit(s.code().unwrap_or(137)),
            Err(_) => Outcome::Exit(128),
        },
        o = wait_killed(kill_rx, deadline) => {
            if let Some(c) = &launch.container {
                podman::kill_container(c).await;
            }
            if let Some(id) = pgid {
                kill_group(id);
            }
            let _ = child.kill().await;
            o
        }
    };
    if let Some(id) = pgid {
        // Background children of the container process die with it, as in a container.
        kill_group(id);
        cluster.track_group(id, false);
    }
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
    }
    let mut container_id = String::new();
    if let Some(c) = &launch.container {
        // The container's own record (user, read-only root, capabilities, exit code) is kept
        // in the pod directory as `container.json`, then the container is removed.
        if let Some(info) = podman::inspect_container(c).await {
            if let Outcome::Exit(_) = outcome {
                if let Some(code) = info["State"]["ExitCode"].as_i64() {
                    outcome = Outcome::Exit(code as i32);
                }
            }
            container_id = format!("podman://{}", info["Id"].as_str().unwrap_or(""));
            let _ = std::fs::write(
                pod_dir.join("container.json"),
                serde_json::to_vec_pretty(&info).unwrap_or_default(),
            );
        }
        podman::remove_container(c).await;
        cluster.track_container(c, false);
    }
    let (phase, code, reason) = match outcome {
        Outcome::Exit(0) => ("Succeeded", 0, "Completed"),
        Outcome::Exit(c) => ("Failed", c, "Error"),
        Outcome::Deleted => ("Failed", 137, "Killed"),
        Outcome::Deadline => ("Failed", 137, "DeadlineExceeded"),
    };
    let mut terminated =
        json!({"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now()});
    if !container_id.is_empty() {
        terminated["containerID"] = json!(container_id);
    }
    let mut cstatus = json!({"name": cname, "image": image, "imageID": image_id, "ready": false,
                   "restartCount": 0, "started": false, "state": {"terminated": terminated}});
    if !container_id.is_empty() {
        cstatus["containerID"] = json!(container_id);
    }
    set_pod_status(
        cluster,
        pods,
        &ns,
        &name,
        json!({"phase": phase, "podIP": "127.0.0.1", "hostIP": "127.0.0.1", "startTime": started,
               "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now()}],
               "containerStatuses": [cstatus]}),
    )
    .await;
    outcome
}

/// How a pod's container is started: a local process, or `podman run`.
struct Launch {
    program: String,
    argv: Vec<String>,
    /// The process environment (local processes); `None` inherits (podman, which passes
    /// the container's environment with `--env`).
    env: Option<Vec<(String, String)>>,
    /// The podman container's name.
    container: Option<String>,
}

/// Whether the ServiceAccount token is mounted: the pod's `automountServiceAccountToken`,
/// else the ServiceAccount's, else true.
fn automount_token(cluster: &Cluster, pod: &Value, sa: &str) -> bool {
    if let Some(b) = pod["spec"]["automountServiceAccountToken"].as_bool() {
        return b;
    }
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    cluster
        .store
        .resource("", "serviceaccounts")
        .and_then(|d| cluster.store.get(&d, ns, sa).ok())
        .and_then(|s| s["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// The decoded entries of a ConfigMap (`data` + base64 `binaryData`) or Secret (base64
/// `data`); `None` when the object does not exist.
fn object_entries(
    cluster: &Cluster,
    ns: &str,
    plural: &str,
    name: &str,
) -> Option<Vec<(String, Vec<u8>)>> {
    use base64::Engine;
    let d = cluster.store.resource("", plural)?;
    let obj = cluster.store.get(&d, ns, name).ok()?;
    let b64 = |v: &Value| {
        v.as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
    };
    let mut out = Vec::new();
    if let Some(m) = obj["data"].as_object() {
        for (k, v) in m {
            let bytes = if plural == "secrets" {
                b64(v)
            } else {
                v.as_str().map(|s| s.as_bytes().to_vec())
            };
            if let Some(b) = bytes {
                out.push((k.clone(), b));
            }
        }
    }
    if let Some(m) = obj["binaryData"].as_object() {
        for (k, v) in m {
            if let Some(b) = b64(v) {
                out.push((k.clone(), b));
            }
        }
    }
    Some(out)
}

/// Prepares a podman run: volumes, ServiceAccount files, the `podman run` arguments.
/// While something is missing (a ConfigMap of a volume) or the spec cannot run (runAsNonRoot
/// with a root image) the pod waits with the kubelet's reason, until deleted or the deadline.
#[allow(clippy::too_many_arguments)]
async fn prepare_podman(
    cluster: &Arc<Cluster>,
    pods: &ResourceDef,
    pod: &Value,
    container: &Value,
    pod_dir: &std::path::Path,
    img: &podman::LocalImage,
    token: &str,
    sa: &str,
    env: &[(String, String)],
    command: &[String],
    args: &[String],
    deadline: Option<Instant>,
    kill_rx: &mut tokio::sync::oneshot::Receiver<()>,
) -> Result<Launch, Outcome> {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let cname = container["name"].as_str().unwrap_or("main");
    let image = container["image"].as_str().unwrap_or("");
    let cont_name = format!("iter8-test-{ns}-{name}-{}", random_suffix(5));
    let sa_dir = pod_dir.join("serviceaccount");
    let mount_sa = automount_token(cluster, pod, sa);
    if mount_sa {
        if let Err(e) = podman::write_service_account(&sa_dir, token, &cluster.tls.ca_pem, &ns) {
            lock_append(
                &cluster.log_buffer(&ns, &name),
                format!("writing the service account files: {e}\n").as_bytes(),
            );
            return Err(Outcome::Exit(128));
        }
    }
    loop {
        let attempt = (|| -> Result<Vec<String>, (String, &'static str)> {
            let data = |plural: &str, obj: &str| object_entries(cluster, &ns, plural, obj);
            let plan = podman::volume_plan(&pod["spec"], &pod_dir.join("volumes"), &data)
                .map_err(|e| (e, "ContainerCreating"))?;
            let mounts = podman::mounts(
                container,
                &plan.sources,
                mount_sa.then_some(sa_dir.as_path()),
            )
            .map_err(|e| (e, "CreateContainerConfigError"))?;
            let argv = podman::run_args(&podman::RunSpec {
                name: &cont_name,
                hostname: &name,
                image,
                image_user: &img.user,
                pod_spec: &pod["spec"],
                container,
                env,
                command,
                args,
                mounts: &mounts,
            })
            .map_err(|e| (e, "CreateContainerConfigError"))?;
            podman::materialize(&plan)
                .map_err(|e| (format!("preparing volumes: {e}"), "CreateContainerError"))?;
            Ok(argv)
        })();
        match attempt {
            Ok(argv) => {
                return Ok(Launch {
                    program: podman::program(),
                    argv,
                    env: None,
                    container: Some(cont_name),
                })
            }
            Err((msg, reason)) => {
                set_pod_status(
                    cluster,
                    pods,
                    &ns,
                    &name,
                    json!({"phase": "Pending", "containerStatuses": [{
                        "name": cname, "image": image, "imageID": "", "ready": false,
                        "restartCount": 0, "started": false,
                        "state": {"waiting": {"reason": reason, "message": msg}}}]}),
                )
                .await;
            }
        }
        tokio::select! {
            o = wait_killed(kill_rx, deadline) => return Err(o),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Kills a process group (the container's processes) with SIGKILL.
pub fn kill_group(pgid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn lock_append(buf: &Mutex<Vec<u8>>, bytes: &[u8]) {
    buf.lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend_from_slice(bytes);
}

fn job_finished(j: &Value) -> bool {
    j["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True"
        })
    })
}

fn owned_jobs(cluster: &Cluster, ns: &str, cj_uid: &str) -> Vec<Value> {
    let Ok(jobs) = def(cluster, "batch", "jobs") else {
        return Vec::new();
    };
    cluster
        .store
        .list(&jobs, Some(ns))
        .0
        .into_iter()
        .filter(|j| {
            j["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|o| o["uid"].as_str() == Some(cj_uid)))
        })
        .collect()
}

fn job_ref(j: &Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"],
           "namespace": j["metadata"]["namespace"], "uid": j["metadata"]["uid"],
           "resourceVersion": j["metadata"]["resourceVersion"]})
}

/// Creates the Job of a CronJob for `scheduled`. `manual`: a harness trigger (random
/// name suffix) rather than a schedule tick (name suffix = minutes since the epoch).
pub fn fire_cronjob(
    cluster: &Arc<Cluster>,
    ns: &str,
    name: &str,
    scheduled: chrono::DateTime<chrono::Utc>,
    manual: bool,
) -> Result<String, ApiError> {
    let cjs = def(cluster, "batch", "cronjobs")?;
    let jobs = def(cluster, "batch", "jobs")?;
    let cj = cluster.store.get(&cjs, ns, name)?;
    let uid = cj["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let active: Vec<Value> = owned_jobs(cluster, ns, &uid)
        .into_iter()
        .filter(|j| !job_finished(j))
        .collect();
    match cj["spec"]["concurrencyPolicy"].as_str() {
        Some("Forbid") if !active.is_empty() => {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "cronjob \"{name}\" has an active job and concurrencyPolicy is Forbid; not starting another"
                ),
            ))
        }
        Some("Replace") => {
            for j in &active {
                let n = j["metadata"]["name"].as_str().unwrap_or("");
                let _ = cluster.delete(&jobs, ns, n, Some("Background"), false);
            }
        }
        _ => {}
    }
    let job_name = if manual {
        format!("{name}-manual-{}", random_suffix(5))
    } else {
        format!("{name}-{}", scheduled.timestamp() / 60)
    };
    let tmpl = &cj["spec"]["jobTemplate"];
    let mut meta = tmpl["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(job_name);
    meta["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] =
        json!(scheduled.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    meta["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": name,
        "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
    let job =
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": tmpl["spec"]});
    let created = cluster.create(&jobs, ns, job)?;
    let mut refs: Vec<Value> = active.iter().map(job_ref).collect();
    if cj["spec"]["concurrencyPolicy"].as_str() == Some("Replace") {
        refs.clear();
    }
    refs.push(job_ref(&created));
    let sched = scheduled.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    cluster.store.modify(&cjs, ns, name, true, |c| {
        c["status"]["lastScheduleTime"] = json!(sched);
        c["status"]["active"] = json!(refs);
    })?;
    Ok(job_name)
}

/// One pass of the CronJob controller: refresh `status.active`, prune history, and fire
/// schedules that are due.
pub fn cron_tick(cluster: &Arc<Cluster>) {
    let Ok(cjs) = def(cluster, "batch", "cronjobs") else {
        return;
    };
    let Ok(jobs) = def(cluster, "batch", "jobs") else {
        return;
    };
    let now_t = chrono::Utc::now();
    for cj in cluster.store.list(&cjs, None).0 {
        let ns = cj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = cj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let uid = cj["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let owned = owned_jobs(cluster, &ns, &uid);
        let active: Vec<Value> = owned
            .iter()
            .filter(|j| !job_finished(j))
            .map(job_ref)
            .collect();
        let cur_active = cj["status"]["active"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names = |v: &[Value]| -> Vec<String> {
            v.iter()
                .map(|r| r["name"].as_str().unwrap_or("").to_string())
                .collect()
        };
        let last_success = owned
            .iter()
            .filter(|j| j["status"]["succeeded"].as_i64().unwrap_or(0) > 0)
            .filter_map(|j| j["status"]["completionTime"].as_str().map(String::from))
            .max();
        if names(&active) != names(&cur_active)
            || (last_success.is_some()
                && cj["status"]["lastSuccessfulTime"].as_str() != last_success.as_deref())
        {
            let _ = cluster.store.modify(&cjs, &ns, &name, true, |c| {
                if active.is_empty() {
                    if let Some(s) = c["status"].as_object_mut() {
                        s.remove("active");
                    }
                } else {
                    c["status"]["active"] = json!(active);
                }
                if let Some(t) = &last_success {
                    c["status"]["lastSuccessfulTime"] = json!(t);
                }
            });
        }
        // History limits.
        for (succeeded, limit) in [
            (
                true,
                cj["spec"]["successfulJobsHistoryLimit"]
                    .as_u64()
                    .unwrap_or(3),
            ),
            (
                false,
                cj["spec"]["failedJobsHistoryLimit"].as_u64().unwrap_or(1),
            ),
        ] {
            let mut done: Vec<&Value> = owned
                .iter()
                .filter(|j| job_finished(j))
                .filter(|j| (j["status"]["succeeded"].as_i64().unwrap_or(0) > 0) == succeeded)
                .collect();
            done.sort_by_key(|j| {
                j["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            });
            let excess = done.len().saturating_sub(limit as usize);
            for j in done.iter().take(excess) {
                let n = j["metadata"]["name"].as_str().unwrap_or("");
                let _ = cluster.delete(&jobs, &ns, n, Some("Background"), false);
            }
        }
        if cj["spec"]["suspend"].as_bool() == Some(true) {
            continue;
        }
        let Some(schedule) = cj["spec"]["schedule"].as_str() else {
            continue;
        };
        let Ok(cron) = schedule.parse::<croner::Cron>() else {
            continue;
        };
        let since = cj["status"]["lastScheduleTime"]
            .as_str()
            .or(cj["metadata"]["creationTimestamp"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or(now_t);
        let mut due = None;
        let mut t = since;
        for _ in 0..1000 {
            match cron.find_next_occurrence(&t, false) {
                Ok(n) if n <= now_t => {
                    due = Some(n);
                    t = n;
                }
                _ => break,
            }
        }
        if let Some(at) = due {
            let _ = fire_cronjob(cluster, &ns, &name, at, false);
        }
    }
}

/// Starts the background controllers (CronJob ticks every second; Deployment
/// auto-availability when configured). Returns their task handles.
pub fn spawn(cluster: Arc<Cluster>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    let c = cluster.clone();
    handles.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            cron_tick(&c);
        }
    }));
    if cluster.config.auto_available {
        let c = cluster.clone();
        let mut rx = cluster.store.subscribe();
        handles.push(tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        if e.key.group == "apps"
                            && e.key.plural == "deployments"
                            && e.etype != "DELETED"
                        {
                            let gen = e.object["metadata"]["generation"].as_i64();
                            if e.object["status"]["observedGeneration"].as_i64() != gen {
                                let _ = c.mark_available(&e.key.namespace, &e.key.name);
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        }));
    }
    handles
}
