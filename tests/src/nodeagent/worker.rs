//! One pod on this node, from acceptance to the end of its deletion: volumes and tokens
//! (ContainerCreating until they can be set up), init containers one after another, then
//! the containers together; status reported on every change; tokens refreshed; on
//! deletion the containers are stopped (SIGTERM, SIGKILL after the grace period) and the
//! deletion is finalised (delete with grace 0, uid precondition) as the kubelet does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use super::container::{self, PodCtx, Shared};
use super::podman;
use super::status::{PodStatus, State};
use super::volumes::{self, Prepared, TokenFile};
use super::Ctx;

/// Deletion request for a worker: `Some(grace seconds)` once the pod has a
/// deletionTimestamp (or is gone: 0).
pub type Deleted = watch::Receiver<Option<i64>>;

fn meta<'a>(pod: &'a Value, f: &str) -> &'a str {
    pod["metadata"][f].as_str().unwrap_or("")
}

async fn push(ctx: &Ctx, pod: &Value, shared: &Shared) {
    let status = {
        let mut s = shared.status.lock().unwrap_or_else(|e| e.into_inner());
        s.to_json()
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), meta(pod, "namespace"));
    if let Err(e) = api
        .patch_status(
            meta(pod, "name"),
            &PatchParams::default(),
            // Strategic: conditions merge by type, so others' (DisruptionTarget) stay.
            &Patch::Strategic(json!({ "status": status })),
        )
        .await
    {
        tracing::warn!(pod = meta(pod, "name"), error = %e, "pod status");
    }
}

/// Requests a token for the pod's ServiceAccount, bound to the pod, and writes it.
async fn request_token(ctx: &Ctx, pod: &Value, t: &mut TokenFile) -> Result<(), String> {
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), meta(pod, "namespace"));
    let audiences: Vec<&str> = if t.audience.is_empty() {
        vec![]
    } else {
        vec![t.audience.as_str()]
    };
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": audiences, "expirationSeconds": t.expiration_seconds,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                    "name": meta(pod, "name"), "uid": meta(pod, "uid")}},
    });
    let tr: Value = api
        .create_subresource("token", sa, &PostParams::default(), &body)
        .await
        .map_err(|e| format!("requesting a token for serviceaccount \"{sa}\": {e}"))?;
    let token = tr["status"]["token"]
        .as_str()
        .ok_or_else(|| format!("the token request for \"{sa}\" returned no token"))?;
    let life = tr["status"]["expirationTimestamp"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .and_then(|e| {
            (e.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .ok()
        })
        .unwrap_or(Duration::from_secs(t.expiration_seconds.max(60) as u64));
    // The kubelet refreshes at 80% of the requested life (or after 24 h).
    let life = life.min(Duration::from_secs(t.expiration_seconds.max(60) as u64));
    volumes::write_token(t, token, life).map_err(|e| format!("writing {}: {e}", t.path.display()))
}

/// Sets up the pod's volumes (files, tokens).
async fn setup(ctx: &Ctx, pod: &Value, dir: &std::path::Path) -> Result<Prepared, String> {
    let objects = container::fetch_objects(ctx, pod).await?;
    let mut prep = volumes::plan(pod, &dir.join("volumes"), &objects)?;
    podman::materialize(&prep.plan).map_err(|e| format!("preparing volumes: {e}"))?;
    for t in &mut prep.tokens {
        request_token(ctx, pod, t).await?;
    }
    Ok(prep)
}

fn waiting_all(shared: &Shared, reason: &str, msg: &str) {
    {
        let mut guard = shared.status.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *guard;
        let first_init = !s.init.is_empty();
        for (i, c) in s.init.iter_mut().chain(s.containers.iter_mut()).enumerate() {
            let r = if first_init && i > 0 {
                "PodInitializing"
            } else {
                reason
            };
            c.state = State::waiting(r, if r == reason { msg } else { "" });
        }
    }
    shared.changed.notify_one();
}

async fn finalize(ctx: &Ctx, pod: &Value, dir: &std::path::Path) {
    container::remove_dir(dir);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), meta(pod, "namespace"));
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(meta(pod, "uid").to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(meta(pod, "name"), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = meta(pod, "name"), error = %e, "finalising deletion"),
    }
}

/// Runs one pod until its deletion is finalised.
pub async fn run(ctx: Ctx, pod: Value, mut deleted: Deleted) {
    let dir = container::pod_dir(&ctx, &pod);
    let shared = Arc::new(Shared {
        status: Mutex::new(PodStatus::new(&pod)),
        changed: Notify::new(),
    });
    push(&ctx, &pod, &shared).await;
    // Volumes and tokens first (ContainerCreating until they can be set up).
    let mut prep = loop {
        if deleted.borrow().is_some() {
            return finalize(&ctx, &pod, &dir).await;
        }
        match setup(&ctx, &pod, &dir).await {
            Ok(p) => break p,
            Err(msg) => {
                tracing::info!(pod = meta(&pod, "name"), %msg, "waiting");
                waiting_all(&shared, "ContainerCreating", &msg);
                push(&ctx, &pod, &shared).await;
                tokio::select! {
                    _ = deleted.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let pctx = PodCtx {
        ctx: ctx.clone(),
        pod: Arc::new(pod.clone()),
        dir: dir.clone(),
        volumes: Arc::new(prep.clone()),
        shared: shared.clone(),
    };
    let (stop_tx, stop_rx) = watch::channel(None::<Duration>);
    let n_init = pod["spec"]["initContainers"].as_array().map_or(0, Vec::len);
    let n_main = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let mut runners = FuturesUnordered::new();
    let spawn = |init: bool, idx: usize| {
        let (p, s) = (pctx.clone(), stop_rx.clone());
        async move { (init, idx, container::run(p, init, idx, s).await) }
    };
    if n_init > 0 {
        runners.push(spawn(true, 0));
    } else {
        for i in 0..n_main {
            runners.push(spawn(false, i));
        }
    }
    let mut deleting = false;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shared.changed.notified() => push(&ctx, &pod, &shared).await,
            r = deleted.changed(), if !deleting => {
                let grace = if r.is_err() { Some(0) } else { *deleted.borrow() };
                if let Some(g) = grace {
                    deleting = true;
                    let _ = stop_tx.send(Some(Duration::from_secs(g.max(0) as u64)));
                    if runners.is_empty() {
                        break;
                    }
                }
            }
            Some((init, idx, code)) = runners.next(), if !runners.is_empty() => {
                if init && !deleting && code == Some(0) {
                    if idx + 1 < n_init {
                        runners.push(spawn(true, idx + 1));
                    } else {
                        for i in 0..n_main {
                            runners.push(spawn(false, i));
                        }
                    }
                }
                if runners.is_empty() && deleting {
                    break;
                }
            }
            _ = tick.tick() => {
                for t in prep.tokens.iter_mut().filter(|t| t.refresh_at.is_some_and(|r| r <= Instant::now())) {
                    if let Err(e) = request_token(&ctx, &pod, t).await {
                        tracing::warn!(pod = meta(&pod, "name"), error = %e, "token refresh");
                    }
                }
            }
        }
    }
    push(&ctx, &pod, &shared).await;
    finalize(&ctx, &pod, &dir).await;
}
