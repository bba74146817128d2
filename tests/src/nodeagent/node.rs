//! The Node object and its liveness, as the kubelet keeps them: the Node registered with
//! its addresses, kubelet port, capacity and a Ready condition; its Lease in
//! `kube-node-lease` renewed every 10 s and its status heartbeat every 10 s, so the node
//! lifecycle controller never marks it NotReady or taints it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::status::now;
use super::{Ctx, NodeAgentError};

/// Seconds a Lease stays valid without renewal (the kubelet's default).
const LEASE_SECONDS: i64 = 40;
/// How often the Lease is renewed and the status heartbeat sent.
const RENEW: Duration = Duration::from_secs(10);

fn memory_ki() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(8 * 1024 * 1024)
}

/// The Node's status: Ready, addresses, the kubelet endpoint, capacity.
pub fn node_status(port: u16) -> Value {
    // Conditions keep the time they became what they are (the agent's start).
    static SINCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let since = SINCE.get_or_init(now).clone();
    let t = now();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let resources = json!({"cpu": cpus.to_string(), "memory": format!("{}Ki", memory_ki()),
                           "pods": "110", "ephemeral-storage": "100Gi"});
    let cond = |t_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": t, "lastTransitionTime": since})
    };
    json!({
        "capacity": resources, "allocatable": resources,
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                      {"type": "Hostname", "address": "localhost"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "",
                     "kernelVersion": "", "osImage": "iter8 test node",
                     "containerRuntimeVersion": "iter8-node-agent://0.1",
                     "kubeletVersion": "v1.0.0-iter8-node-agent", "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": std::env::consts::ARCH},
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "iter8 node agent is posting ready status"),
        ],
    })
}

/// Creates the Node (or finds it) and reports it Ready.
pub async fn register(ctx: &Ctx, port: u16) -> Result<(), NodeAgentError> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let name = &ctx.config.node_name;
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH },
        }},
    }))
    .map_err(|e| NodeAgentError::Config(e.to_string()))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(NodeAgentError::api(format!("creating node {name}"), e)),
    }
    patch_status(ctx, port).await?;
    renew_lease(ctx).await
}

async fn patch_status(ctx: &Ctx, port: u16) -> Result<(), NodeAgentError> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let name = &ctx.config.node_name;
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": node_status(port)})),
        )
        .await
        .map_err(|e| NodeAgentError::api(format!("updating the status of node {name}"), e))?;
    Ok(())
}

async fn renew_lease(ctx: &Ctx) -> Result<(), NodeAgentError> {
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let name = &ctx.config.node_name;
    let renew = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let spec =
        json!({"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew});
    match leases.get_opt(name).await {
        Ok(Some(_)) => leases
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .map(|_| ())
            .map_err(|e| NodeAgentError::api("renewing the node lease", e)),
        Ok(None) => {
            let nodes: Api<Node> = Api::all(ctx.client.clone());
            let uid = nodes
                .get(name)
                .await
                .ok()
                .and_then(|n| n.metadata.uid)
                .unwrap_or_default();
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]},
                "spec": spec,
            }))
            .map_err(|e| NodeAgentError::Config(e.to_string()))?;
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ())
                .map_err(|e| NodeAgentError::api("creating the node lease", e))
        }
        Err(e) => Err(NodeAgentError::api("reading the node lease", e)),
    }
}

/// Renews the Lease and the status heartbeat forever (errors are logged and retried).
pub async fn keep_alive(ctx: Ctx, port: u16) {
    let mut tick = tokio::time::interval(RENEW);
    loop {
        tick.tick().await;
        if let Err(e) = renew_lease(&ctx).await {
            tracing::warn!(error = %e, "lease");
        }
        if let Err(e) = patch_status(&ctx, port).await {
            tracing::warn!(error = %e, "node status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_is_ready_with_its_endpoint_and_capacity() {
        let s = node_status(10250);
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["addresses"][0]["address"], "127.0.0.1");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(s["allocatable"]["pods"], "110");
        assert!(s["capacity"]["memory"].as_str().unwrap().ends_with("Ki"));
        let _: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "status": s}))
            .expect("a valid NodeStatus");
    }
}
