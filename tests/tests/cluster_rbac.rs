//! ServiceAccount tokens and RBAC: 403 exactly where the Role does not allow.

#![allow(clippy::unwrap_used)] // test helpers: a failed step is a failed test

use iter8_tests::cluster::TestCluster;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn forbidden(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            assert_eq!(
                (s.code, s.reason.as_str()),
                (403, "Forbidden"),
                "{}",
                s.message
            );
            s.message.clone()
        }
        other => panic!("expected 403, got {other:?}"),
    }
}

async fn apply(client: &kube::Client, v: serde_json::Value) {
    let ar = {
        let av = v["apiVersion"].as_str().unwrap();
        let kind = v["kind"].as_str().unwrap();
        let (g, ver) = av.split_once('/').unwrap_or(("", av));
        let gvk = kube::core::GroupVersionKind::gvk(g, ver, kind);
        kube::discovery::pinned_kind(client, &gvk).await.unwrap().0
    };
    let ns = v["metadata"]["namespace"].as_str();
    let api: Api<kube::core::DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let name = v["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&v))
        .await
        .unwrap();
}

#[tokio::test]
async fn service_account_gets_403_exactly_where_its_role_does_not_allow() {
    let tc = TestCluster::start().await.unwrap();
    let admin = tc.client().await.unwrap();
    for v in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "exp"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "exp"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "runner", "namespace": "exp"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["result"], "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "create"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "runner", "namespace": "exp"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "runner"},
               "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "exp"}]}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "result", "namespace": "exp"}, "stringData": {"a": "1"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other", "namespace": "exp"}, "stringData": {"a": "1"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "exp"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    ] {
        apply(&admin, v).await;
    }
    let sa = tc.service_account_client("exp", "runner").await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), "exp");
    let cms: Api<ConfigMap> = Api::namespaced(sa.clone(), "exp");
    let pods: Api<Pod> = Api::namespaced(sa.clone(), "exp");

    // Allowed.
    secrets.get("result").await.unwrap();
    secrets
        .patch(
            "result",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"b": "2"}})),
        )
        .await
        .unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    pods.logs("p", &LogParams::default()).await.unwrap();

    // Denied, with Kubernetes' wording.
    let msg = forbidden(
        secrets
            .patch("other", &PatchParams::default(), &Patch::Merge(&json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        "secrets \"other\" is forbidden: User \"system:serviceaccount:exp:runner\" cannot patch resource \"secrets\" in API group \"\" in the namespace \"exp\""
    );
    forbidden(secrets.get("other").await.unwrap_err());
    forbidden(secrets.list(&ListParams::default()).await.unwrap_err());
    forbidden(cms.get("c").await.unwrap_err());
    forbidden(pods.get("p").await.unwrap_err());
    let msg = forbidden(
        Api::<ConfigMap>::namespaced(sa.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert!(msg.ends_with("in the namespace \"default\""), "{msg}");
    let msg = forbidden(
        Api::<k8s_openapi::api::core::v1::Namespace>::all(sa.clone())
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert!(msg.ends_with("at the cluster scope"), "{msg}");

    // The request log records the identity and verdicts.
    let log = tc.request_log();
    let denied: Vec<_> = log
        .iter()
        .filter(|e| e.user == "system:serviceaccount:exp:runner" && !e.allowed)
        .collect();
    assert_eq!(denied.len(), 7);
    assert!(denied.iter().all(|e| e.code == 403));
    assert!(denied
        .iter()
        .any(|e| e.verb == "patch" && e.resource == "secrets" && e.name == "other"));
    assert!(log
        .iter()
        .any(|e| e.user == "system:serviceaccount:exp:runner"
            && e.allowed
            && e.subresource == "log"));

    // The admin-only request-log endpoint.
    let req = http::Request::get("/test-cluster/requests")
        .body(Vec::new())
        .unwrap();
    forbidden(sa.request::<serde_json::Value>(req).await.unwrap_err());
    let req = http::Request::get("/test-cluster/requests")
        .body(Vec::new())
        .unwrap();
    let v: serde_json::Value = admin.request(req).await.unwrap();
    assert!(v.as_array().unwrap().iter().any(|e| e["allowed"] == false));

    // A ClusterRoleBinding to cluster-admin allows everything.
    apply(&admin, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "runner-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "exp"}]})).await;
    secrets.get("other").await.unwrap();
    Api::<ConfigMap>::namespaced(sa.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();

    // An unknown token is 401.
    let mut cfg = kube::Config::new(tc.http_url().parse().unwrap());
    cfg.auth_info.token = Some("nope".to_string().into());
    let bad = kube::Client::try_from(cfg).unwrap();
    match Api::<Secret>::namespaced(bad, "exp")
        .get("result")
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!(s.code, 401),
        other => panic!("expected 401, got {other:?}"),
    }
}
