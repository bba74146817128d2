//! One container of a pod, from image to exit, with the pod's restart policy: resolve the
//! runtime, build its environment and command line, run it (its log in the pod's
//! directory), report each state, restart it with back-off when the policy says so, and
//! stop it gracefully when the pod is deleted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::Value;
use tokio::sync::{watch, Notify};

use super::env::{self, Objects};
use super::logs::{self, LogWriter};
use super::podman;
use super::process::{self, Launch};
use super::status::{now, PodStatus, State};
use super::volumes::Prepared;
use super::{resolve_runtime, Ctx, Runtime};

/// The status of a pod, shared by its container runners; `changed` wakes the reporter.
pub struct Shared {
    /// The status.
    pub status: Mutex<PodStatus>,
    /// Notified on every change.
    pub changed: Notify,
}

impl Shared {
    /// Changes the status of container `idx` (an init container when `init`).
    pub fn update(
        &self,
        init: bool,
        idx: usize,
        f: impl FnOnce(&mut super::status::ContainerStatus),
    ) {
        {
            let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
            let list = if init { &mut s.init } else { &mut s.containers };
            if let Some(c) = list.get_mut(idx) {
                f(c);
            }
        }
        self.changed.notify_one();
    }

    fn set_state(&self, init: bool, idx: usize, state: State) {
        self.update(init, idx, |c| c.state = state);
    }
}

/// Stop request: `Some(grace)` once the pod is being deleted.
pub type Stop = watch::Receiver<Option<Duration>>;

/// Waits `d`; true when a stop was requested meanwhile (or before).
async fn stopped_within(stop: &mut Stop, d: Duration) -> bool {
    if stop.borrow().is_some() {
        return true;
    }
    tokio::select! {
        r = stop.changed() => r.is_err() || stop.borrow().is_some(),
        _ = tokio::time::sleep(d) => stop.borrow().is_some(),
    }
}

/// Fetches the ConfigMaps and Secrets a pod refers to (the node may read exactly these).
pub async fn fetch_objects(ctx: &Ctx, pod: &Value) -> Result<Objects, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let (cms, secrets) = env::referenced_objects(pod);
    let mut out = Objects::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for n in cms {
        let got = cm_api
            .get_opt(&n)
            .await
            .map_err(|e| format!("reading configmap \"{n}\": {e}"))?;
        out.configmaps.insert(
            n,
            got.map(|cm| {
                let mut m: std::collections::BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    m.insert(k, v.0);
                }
                m
            }),
        );
    }
    let s_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for n in secrets {
        let got = s_api
            .get_opt(&n)
            .await
            .map_err(|e| format!("reading secret \"{n}\": {e}"))?;
        out.secrets.insert(
            n,
            got.map(|s| {
                let mut m: std::collections::BTreeMap<String, Vec<u8>> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (k, v) in s.string_data.unwrap_or_default() {
                    m.insert(k, v.into_bytes());
                }
                m
            }),
        );
    }
    Ok(out)
}

/// Everything a runner needs about its pod.
#[derive(Clone)]
pub struct PodCtx {
    /// Agent.
    pub ctx: Ctx,
    /// The pod object.
    pub pod: Arc<Value>,
    /// Its directory.
    pub dir: PathBuf,
    /// Its prepared volumes.
    pub volumes: Arc<Prepared>,
    /// Its status.
    pub shared: Arc<Shared>,
}

/// Builds the container's launch, or the waiting reason and message.
async fn build_launch(
    p: &PodCtx,
    container: &Value,
    runtime: &Runtime,
    run: u32,
) -> Result<Launch, String> {
    let pod = &*p.pod;
    let objects = fetch_objects(&p.ctx, pod).await?;
    let (host, port) = p.ctx.config.api_host_port().map_err(|e| e.to_string())?;
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let mut base = vec![
        ("KUBERNETES_SERVICE_HOST".to_string(), host.clone()),
        ("KUBERNETES_SERVICE_PORT".to_string(), port.to_string()),
        (
            "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
            port.to_string(),
        ),
        (
            "KUBERNETES_PORT".to_string(),
            format!("tcp://{host}:{port}"),
        ),
    ];
    if !matches!(runtime, Runtime::Podman(_)) {
        base.splice(
            0..0,
            [
                (
                    "PATH".to_string(),
                    std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
                ),
                ("HOME".to_string(), p.dir.display().to_string()),
                ("HOSTNAME".to_string(), pod_name.to_string()),
            ],
        );
    }
    let env = env::container_env(pod, container, &objects, base)?;
    let (command, args) = env::command_and_args(container, &env);
    let mounts = podman::mounts(container, &p.volumes.plan.sources, None)?;
    let local = |program: String, mut rest: Vec<String>| {
        rest.extend(args.iter().cloned());
        Launch::Local {
            program,
            args: rest,
            env: env.clone(),
            workdir: p.dir.clone(),
            mounts: mounts.clone(),
        }
    };
    Ok(match runtime {
        Runtime::Binary(b) => local(
            b.display().to_string(),
            command.iter().skip(1).cloned().collect(),
        ),
        Runtime::Host => match command.split_first() {
            Some((prog, rest)) => local(prog.clone(), rest.to_vec()),
            None => return Err("the image is mapped to @host, which needs a command".into()),
        },
        Runtime::Podman(img) => {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
            let cname = container["name"].as_str().unwrap_or("c");
            let name: String = format!("iter8-node-{ns}-{pod_name}-{cname}-{run}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let argv = podman::run_args(&podman::RunSpec {
                name: &name,
                hostname: pod_name,
                image: container["image"].as_str().unwrap_or(""),
                image_user: &img.user,
                pod_spec: &pod["spec"],
                container,
                env: &env,
                command: &command,
                args: &args,
                mounts: &mounts,
            })?;
            Launch::Podman { argv, name }
        }
    })
}

/// Runs container `idx` (an init container when `init`) until it is done by the restart
/// policy or stopped. Returns its last exit code, or `None` when stopped before it ran.
pub async fn run(p: PodCtx, init: bool, idx: usize, mut stop: Stop) -> Option<i32> {
    let key = if init { "initContainers" } else { "containers" };
    let container = p.pod["spec"][key][idx].clone();
    let name = container["name"].as_str().unwrap_or("").to_string();
    let image = container["image"].as_str().unwrap_or("").to_string();
    let pod_policy = p.pod["spec"]["restartPolicy"].as_str().unwrap_or("Always");
    // Init containers are restarted on failure unless the pod never restarts.
    let policy = match (init, pod_policy) {
        (true, "Always") => "OnFailure",
        (_, p) => p,
    };
    let mut run_no: u32 = 0;
    let mut backoff = Duration::from_secs(1);
    loop {
        let runtime = loop {
            match resolve_runtime(&p.ctx.config, &image, container["imagePullPolicy"].as_str())
                .await
            {
                Ok(r) => break r,
                Err((reason, msg)) => {
                    p.shared.set_state(init, idx, State::waiting(reason, msg));
                    if stopped_within(&mut stop, Duration::from_secs(5)).await {
                        return None;
                    }
                }
            }
        };
        let launch = loop {
            match build_launch(&p, &container, &runtime, run_no).await {
                Ok(l) => break l,
                Err(msg) => {
                    p.shared.set_state(
                        init,
                        idx,
                        State::waiting("CreateContainerConfigError", msg),
                    );
                    if stopped_within(&mut stop, Duration::from_secs(2)).await {
                        return None;
                    }
                }
            }
        };
        if stop.borrow().is_some() {
            return None;
        }
        let log_file = logs::log_path(&p.dir, &name, run_no);
        let log = match LogWriter::create(&log_file) {
            Ok(l) => l,
            Err(e) => {
                let msg = format!("creating {}: {e}", log_file.display());
                p.shared
                    .set_state(init, idx, State::waiting("RunContainerError", msg));
                if stopped_within(&mut stop, Duration::from_secs(5)).await {
                    return None;
                }
                continue;
            }
        };
        let started_at = now();
        let (code, stopped) = match process::spawn(&launch, &log) {
            Err(msg) => {
                log.note(&msg);
                (128, false)
            }
            Ok(mut r) => {
                let image_id = match &runtime {
                    Runtime::Podman(img) => format!("sha256:{}", img.id),
                    _ => String::new(),
                };
                let cid = r.container_id.clone();
                let st = started_at.clone();
                p.shared.update(init, idx, |c| {
                    c.state = State::Running { started_at: st };
                    c.container_id = cid;
                    c.image_id = image_id;
                });
                let (code, stopped) = tokio::select! {
                    c = r.wait() => (c, false),
                    grace = wait_stop(&mut stop) => (r.stop(grace).await, true),
                };
                let code = r.finish(code, &p.dir).await;
                let cid = r.container_id.clone();
                p.shared.update(init, idx, |c| c.container_id = cid);
                (code, stopped)
            }
        };
        logs::mark_done(&log_file);
        p.shared
            .set_state(init, idx, State::exited(code, started_at));
        let restart = !stopped
            && match policy {
                "Always" => true,
                "OnFailure" => code != 0,
                _ => false,
            };
        if !restart {
            return Some(code);
        }
        p.shared.update(init, idx, |c| {
            c.last_state = Some(c.state.clone());
            c.restart_count += 1;
            c.state = State::waiting(
                "CrashLoopBackOff",
                format!(
                    "back-off {}s restarting failed container={name}",
                    backoff.as_secs()
                ),
            );
        });
        if stopped_within(&mut stop, backoff).await {
            return Some(code);
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
        run_no += 1;
    }
}

/// Waits for a stop request; its grace period.
async fn wait_stop(stop: &mut Stop) -> Duration {
    loop {
        if let Some(g) = *stop.borrow() {
            return g;
        }
        if stop.changed().await.is_err() {
            return Duration::ZERO;
        }
    }
}

/// The agent's own directory for a pod.
pub fn pod_dir(ctx: &Ctx, pod: &Value) -> PathBuf {
    let m = &pod["metadata"];
    logs::pod_dir(
        &ctx.config.state_dir,
        m["namespace"].as_str().unwrap_or(""),
        m["name"].as_str().unwrap_or(""),
        m["uid"].as_str().unwrap_or(""),
    )
}

/// Removes a pod's directory (after its deletion).
pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
