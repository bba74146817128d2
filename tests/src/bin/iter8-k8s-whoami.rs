//! A tiny in-cluster program for the node agent's tests: loads kube-rs's inferred
//! configuration (in a pod: the ServiceAccount token, CA and namespace at
//! /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT), asks the
//! API server who it is (SelfSubjectReview) and whether it may list pods in its namespace,
//! and prints `user=... namespace=... list-pods=<HTTP code>`.

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = kube::Config::infer()
        .await
        .context("inferring the configuration")?;
    let namespace = cfg.default_namespace.clone();
    let client = kube::Client::try_from(cfg).context("client")?;
    let req: Value = client
        .request(
            http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&json!({
                    "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"
                }))?)?,
        )
        .await
        .context("SelfSubjectReview")?;
    let user = req["status"]["userInfo"]["username"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let code = match pods.list(&ListParams::default()).await {
        Ok(_) => 200,
        Err(kube::Error::Api(e)) => e.code,
        Err(e) => return Err(e).context("listing pods"),
    };
    println!("user={user} namespace={namespace} list-pods={code}");
    Ok(())
}
