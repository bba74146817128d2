//! The test API server behaves as a real one for kube-rs: CRUD, selectors, conflicts,
//! every patch type, apply, watch and watch-list, protobuf Secrets, Status errors.

#![allow(clippy::unwrap_used)] // test helpers: a failed step is a failed test

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use iter8_tests::cluster::{proto, resources, TestCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{DynamicObject, GroupVersionKind};
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
        "data": {"a": "1"},
    }))
    .unwrap()
}

fn code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_selectors_conflicts_over_https_and_http() {
    let tc = TestCluster::start().await.unwrap();
    for client in [tc.client().await.unwrap(), tc.client_http().await.unwrap()] {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let created = api
            .create(
                &PostParams::default(),
                &cm("one", &[("app", "a"), ("tier", "web")]),
            )
            .await
            .unwrap();
        assert!(created.metadata.uid.is_some());
        assert!(created.metadata.creation_timestamp.is_some());
        let rv1 = created.metadata.resource_version.clone().unwrap();
        api.create(&PostParams::default(), &cm("two", &[("app", "b")]))
            .await
            .unwrap();
        let (c, reason) = code(
            api.create(&PostParams::default(), &cm("one", &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!((c, reason.as_str()), (409, "AlreadyExists"));

        let got = api.get("one").await.unwrap();
        assert_eq!(got.data.unwrap()["a"], "1");
        assert!(api.get_opt("missing").await.unwrap().is_none());
        let (c, reason) = code(api.get("missing").await.unwrap_err());
        assert_eq!((c, reason.as_str()), (404, "NotFound"));

        let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
            let mut v: Vec<String> = l
                .items
                .into_iter()
                .map(|c| c.metadata.name.unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(
                api.list(&ListParams::default().labels("app=a"))
                    .await
                    .unwrap()
            ),
            ["one"]
        );
        assert_eq!(
            names(
                api.list(&ListParams::default().labels("app!=a"))
                    .await
                    .unwrap()
            ),
            ["two"]
        );
        assert_eq!(
            names(
                api.list(&ListParams::default().labels("app in (a,b)"))
                    .await
                    .unwrap()
            ),
            ["one", "two"]
        );
        assert_eq!(
            names(
                api.list(&ListParams::default().labels("app notin (a)"))
                    .await
                    .unwrap()
            ),
            ["two"]
        );
        assert_eq!(
            names(
                api.list(&ListParams::default().labels("tier"))
                    .await
                    .unwrap()
            ),
            ["one"]
        );
        assert_eq!(
            names(
                api.list(&ListParams::default().labels("!tier"))
                    .await
                    .unwrap()
            ),
            ["two"]
        );
        assert_eq!(
            names(
                api.list(&ListParams::default().fields("metadata.name=two"))
                    .await
                    .unwrap()
            ),
            ["two"]
        );
        let all: Api<ConfigMap> = Api::all(client.clone());
        assert_eq!(
            names(
                all.list(&ListParams::default().fields("metadata.namespace=default"))
                    .await
                    .unwrap()
            ),
            ["one", "two"]
        );

        // Replace with the current resourceVersion works; with a stale one, 409 Conflict.
        let mut fresh = api.get("one").await.unwrap();
        fresh.data = Some(BTreeMap::from([("a".to_string(), "2".to_string())]));
        let replaced = api
            .replace("one", &PostParams::default(), &fresh)
            .await
            .unwrap();
        assert_ne!(
            replaced.metadata.resource_version.as_deref(),
            Some(rv1.as_str())
        );
        let mut stale = fresh.clone();
        stale.metadata.resource_version = Some(rv1.clone());
        let (c, reason) = code(
            api.replace("one", &PostParams::default(), &stale)
                .await
                .unwrap_err(),
        );
        assert_eq!((c, reason.as_str()), (409, "Conflict"));

        api.delete("one", &DeleteParams::default()).await.unwrap();
        api.delete("two", &DeleteParams::default()).await.unwrap();
        assert!(api.get_opt("one").await.unwrap().is_none());
        let (c, _) = code(
            api.delete("one", &DeleteParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(c, 404);
    }
}

#[tokio::test]
async fn every_patch_type_and_apply() {
    let tc = TestCluster::start().await.unwrap();
    let client = tc.client().await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let dep = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]}]}}},
    });
    // Apply creates a missing object.
    let pp = PatchParams::apply("test").force();
    let created = api.patch("web", &pp, &Patch::Apply(&dep)).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());

    // Strategic merge: containers merged by name, env merged by name.
    let sp = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]}}}});
    let d = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&sp))
        .await
        .unwrap();
    let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("nginx:1"));
    let env: Vec<&str> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["A", "B"]);
    assert_eq!(d.metadata.generation, Some(2));

    // Merge patch: replaces lists, null deletes.
    let mp = json!({"metadata": {"labels": {"app": null, "x": "y"}}});
    let d = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&mp))
        .await
        .unwrap();
    let labels = d.metadata.labels.unwrap();
    assert_eq!(labels.get("x").map(|s| s.as_str()), Some("y"));
    assert!(!labels.contains_key("app"));

    // JSON patch.
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:2"},
        {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
    ]))
    .unwrap();
    let d = api
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(
        d.spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:2")
    );
    assert_eq!(d.metadata.annotations.unwrap()["k"], "v");

    // A failing JSON patch test op is a 422.
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/name", "value": "other"}]))
            .unwrap();
    let (c, _) = code(
        api.patch("web", &PatchParams::default(), &Patch::<()>::Json(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(c, 422);

    // Apply again without a label the manager applied before: the label is removed.
    let mut dep2 = dep.clone();
    dep2["metadata"]["labels"] = json!({"other": "1"});
    let d = api.patch("web", &pp, &Patch::Apply(&dep2)).await.unwrap();
    let labels = d.metadata.labels.unwrap();
    assert_eq!(labels.get("other").map(|s| s.as_str()), Some("1"));
    assert!(!labels.contains_key("app"));
    assert!(d
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .any(|m| m.manager.as_deref() == Some("test")));

    // Status subresource: main-resource writes keep status; status writes keep spec.
    let st = json!({"status": {"readyReplicas": 1}});
    let d = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(1));
    let d = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"readyReplicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(1));
    let d = tc.mark_available("default", "web").unwrap();
    assert_eq!(d["status"]["conditions"][0]["type"], "Available");
}

#[tokio::test]
async fn watch_and_watch_list() {
    let tc = TestCluster::start().await.unwrap();
    let client = tc.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("before", &[]))
        .await
        .unwrap();

    // Watch-list: initial ADDED events, then a bookmark annotated initial-events-end.
    let mut s = api
        .watch(&WatchParams::streaming_lists().timeout(5), "")
        .await
        .unwrap()
        .boxed();
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("before")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    match s.try_next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(|s| s.as_str()),
                Some("true")
            )
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
    drop(s);

    // Watch from a resourceVersion: later changes only, in order.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("after", &[]))
        .await
        .unwrap();
    api.patch(
        "after",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"b": "2"}})),
    )
    .await
    .unwrap();
    api.delete("after", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(ev) = s.try_next().await.unwrap() {
        kinds.push(match ev {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.unwrap()),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            other => format!("{other:?}"),
        });
        if kinds.len() == 3 {
            break;
        }
    }
    assert_eq!(kinds, ["ADDED after", "MODIFIED after", "DELETED after"]);
}

#[tokio::test]
async fn secrets_string_data_and_protobuf() {
    let tc = TestCluster::start().await.unwrap();
    let client = tc.client().await.unwrap();
    let api: Api<Secret> = Api::namespaced(client.clone(), "default");
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "hello"},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.data.unwrap()["k"].0, b"hello");
    assert!(created.string_data.is_none());

    // A protobuf body, as Helm's release storage sends it.
    let mut data = BTreeMap::new();
    data.insert("release".to_string(), b"payload".to_vec());
    let body = proto::encode_secret("sh.helm.release.v1.r.v1", "default", &data);
    let req = http::Request::post("/api/v1/namespaces/default/secrets")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf, application/json",
        )
        .body(body)
        .unwrap();
    let v: serde_json::Value = client.request(req).await.unwrap();
    assert_eq!(v["kind"], "Secret");
    let got = api.get("sh.helm.release.v1.r.v1").await.unwrap();
    assert_eq!(got.data.unwrap()["release"].0, b"payload");
}

#[tokio::test]
async fn bad_input_gets_status_errors() {
    let tc = TestCluster::start().await.unwrap();
    let client = tc.client().await.unwrap();
    let send = |method: &str, path: &str, ctype: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ctype)
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    let cases = [
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "{not json",
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/yaml",
            "a: [b",
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
            422,
            "Invalid",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/widgets",
            "application/json",
            "{}",
            404,
            "NotFound",
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps/a",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}"#,
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/nope/configmaps",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
            404,
            "NotFound",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            "text/plain",
            "{}",
            415,
            "UnsupportedMediaType",
        ),
    ];
    for (method, path, ctype, body, want_code, want_reason) in cases {
        let err = client
            .request::<serde_json::Value>(send(method, path, ctype, body))
            .await
            .unwrap_err();
        match err {
            kube::Error::Api(s) => {
                assert_eq!(
                    (s.code, s.reason.as_str()),
                    (want_code, want_reason),
                    "{method} {path} {body}: {}",
                    s.message
                );
                assert_eq!(s.status, Some(kube::core::response::StatusSummary::Failure));
                assert!(!s.message.is_empty());
            }
            other => panic!("{method} {path}: expected a Status, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn namespaces_and_registered_resources() {
    let tc = TestCluster::start().await.unwrap();
    let client = tc.client().await.unwrap();
    let ns: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = ns
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "exp"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "exp");
    cms.create(&PostParams::default(), &cm("in-exp", &[]))
        .await
        .unwrap();
    ns.delete("exp", &DeleteParams::default()).await.unwrap();
    let terminating = ns.get("exp").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let (c, _) = code(
        cms.create(&PostParams::default(), &cm("late", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(c, 403);
    let mut gone = false;
    for _ in 0..100 {
        if ns.get_opt("exp").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the namespace goes once its content is deleted");
    assert!(cms.get_opt("in-exp").await.unwrap().is_none());

    // Discovery sees a registered resource, and it is served.
    tc.register_resource(resources::knative_service());
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let gvk = GroupVersionKind::gvk("serving.knative.dev", "v1", "Service");
    let (ar, _caps) = discovery
        .resolve_gvk(&gvk)
        .expect("knative service discovered");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "ks"}, "spec": {},
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    tc.patch_status(
        "serving.knative.dev",
        "services",
        "default",
        "ks",
        &json!({"conditions": [{"type": "Ready", "status": "True"}]}),
    )
    .unwrap();
    let got = api.get("ks").await.unwrap();
    assert_eq!(got.data["status"]["conditions"][0]["type"], "Ready");
    assert!(discovery.groups().any(|g| g.name() == "apps"));
}

#[tokio::test]
async fn deployments_become_available_automatically_when_asked() {
    let tc = TestCluster::start_with(iter8_tests::cluster::TestClusterOptions {
        auto_available: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<Deployment> = Api::namespaced(tc.client().await.unwrap(), "default");
    let dep: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "auto"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}},
                 "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &dep).await.unwrap();
    let mut available = None;
    for _ in 0..100 {
        let d = api.get("auto").await.unwrap();
        if let Some(s) = d.status.filter(|s| s.available_replicas == Some(2)) {
            available = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let status = available.expect("the deployment became available");
    assert_eq!(status.observed_generation, Some(1));
    assert!(status
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")));
}

#[tokio::test]
async fn delete_collection_and_dry_run() {
    let tc = TestCluster::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(tc.client().await.unwrap(), "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, &cm("dry", &[])).await.unwrap();
    assert!(
        api.get_opt("dry").await.unwrap().is_none(),
        "dryRun=All stores nothing"
    );
    for (n, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.create(&PostParams::default(), &cm(n, &[("app", app)]))
            .await
            .unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
}
