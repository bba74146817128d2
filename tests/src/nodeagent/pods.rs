//! Pods and this node: binding pending pods to it (our stand-in for kube-scheduler: one
//! node, so every pod that names the default scheduler goes here, through the
//! `pods/binding` subresource), and one worker per pod bound to it, told when the pod is
//! being deleted. Both loops list, then watch until something changes (or 10 s), then
//! list again.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{worker, Ctx};

/// Waits until the pods of `fields` change (a watch event) or 10 s pass.
async fn wait_for_change(api: &Api<Pod>, fields: &str, rv: &str) {
    let wp = WatchParams::default().fields(fields).timeout(10);
    match api.watch(&wp, rv).await {
        Ok(stream) => {
            let mut stream = Box::pin(stream);
            let _ = stream.next().await;
        }
        Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
    }
}

async fn bind(ctx: &Ctx, pod: &Pod) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let body = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": ctx.config.node_name}});
    api.create_subresource::<Value, Value>("binding", name, &PostParams::default(), &body)
        .await
        .map(|_| ())
}

/// Binds every pending pod of the default scheduler to this node, forever.
pub async fn bind_pending(ctx: Ctx) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let fields = "spec.nodeName=";
    let mut warned = false;
    loop {
        let list = match api.list(&ListParams::default().fields(fields)).await {
            Ok(l) => l,
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "listing pending pods (the node's identity needs list/watch pods and create pods/binding to bind them)");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        for pod in &list.items {
            let sched = pod
                .spec
                .as_ref()
                .and_then(|s| s.scheduler_name.as_deref())
                .unwrap_or("default-scheduler");
            if pod.metadata.deletion_timestamp.is_some() || sched != "default-scheduler" {
                continue;
            }
            if let Err(e) = bind(&ctx, pod).await {
                tracing::warn!(pod = pod.metadata.name.as_deref().unwrap_or(""), error = %e, "binding");
            }
        }
        let rv = list.metadata.resource_version.unwrap_or_default();
        wait_for_change(&api, fields, &rv).await;
    }
}

struct Entry {
    uid: String,
    deleted: watch::Sender<Option<i64>>,
    task: tokio::task::JoinHandle<()>,
}

fn deletion_grace(pod: &Value) -> Option<i64> {
    pod["metadata"]["deletionTimestamp"].as_str().map(|_| {
        pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30)
    })
}

/// Runs the pods bound to this node, forever.
pub async fn run_node_pods(ctx: Ctx) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let fields = format!("spec.nodeName={}", ctx.config.node_name);
    let mut workers: HashMap<(String, String), Entry> = HashMap::new();
    // Pods whose deletion this agent finalised (they may linger for a finalizer).
    let mut finalised: std::collections::HashSet<String> = Default::default();
    loop {
        let list = match api.list(&ListParams::default().fields(&fields)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "listing the node's pods");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut seen = std::collections::HashSet::new();
        let listed: std::collections::HashSet<String> = list
            .items
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        finalised.retain(|u| listed.contains(u));
        for pod in list.items {
            let Ok(v) = serde_json::to_value(&pod) else {
                continue;
            };
            let ns = v["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            let uid = v["metadata"]["uid"].as_str().unwrap_or("").to_string();
            let key = (ns, name);
            seen.insert(key.clone());
            if finalised.contains(&uid) {
                continue;
            }
            if workers.get(&key).is_some_and(|e| e.uid != uid) {
                if let Some(old) = workers.remove(&key) {
                    let _ = old.deleted.send(Some(0));
                }
            }
            let grace = deletion_grace(&v);
            match workers.get(&key) {
                Some(e) => {
                    if grace.is_some() && e.deleted.borrow().is_none() {
                        let _ = e.deleted.send(grace);
                    }
                }
                None => {
                    let phase = v["status"]["phase"].as_str().unwrap_or("");
                    if matches!(phase, "Succeeded" | "Failed") && grace.is_none() {
                        // Finished before this agent started: nothing to run again.
                        continue;
                    }
                    let (tx, rx) = watch::channel(grace);
                    let task = tokio::spawn(worker::run(ctx.clone(), v, rx));
                    workers.insert(
                        key,
                        Entry {
                            uid,
                            deleted: tx,
                            task,
                        },
                    );
                }
            }
        }
        // Pods gone from the API (deleted with grace 0 by someone else): stop at once.
        for (key, e) in workers.iter() {
            if !seen.contains(key) && e.deleted.borrow().is_none() {
                let _ = e.deleted.send(Some(0));
            }
        }
        workers.retain(|_, e| {
            let done = e.task.is_finished();
            if done {
                finalised.insert(e.uid.clone());
            }
            !done
        });
        let rv = list.metadata.resource_version.unwrap_or_default();
        wait_for_change(&api, &fields, &rv).await;
    }
}
