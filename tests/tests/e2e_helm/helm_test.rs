//! `helm test`: the chart's test pod (`iter8-runner assert` in the runner image) passes when
//! the verdict holds and fails, naming the false condition, when it does not; its
//! ServiceAccount may read the release's Secret and nothing else, as the real RBAC authorizer
//! judges it. The runner's pod reaches the API with the chart's explicit projected token.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::common::{helm, target};
use crate::{http_sets, install, nothing_left, Helm};
use iter8_tests::k8s::Cluster;

pub async fn helm_test_gates_on_the_verdict_reading_only_the_release_secret(c: &Cluster) {
    let ns = c.namespace("helm-test").await.expect("namespace");
    let rel = "gate";
    let addr = target().await;
    let url = format!("http://{addr}/");
    let agent_log = || c.component_log("node-agent");

    let r = install(
        Helm::V4,
        c,
        "install",
        &ns,
        rel,
        &http_sets(&url, "60000"),
        true,
    )
    .await;
    assert_eq!(r.code, 0, "helm install: {r}\n{}", agent_log());

    // The verdict holds: the test pod succeeds, and its log (helm test --logs) says so.
    let r = helm(c, &["test", rel, "-n", &ns, "--logs", "--timeout", "2m"]).await;
    assert_eq!(r.code, 0, "helm test: {r}\n{}", agent_log());
    assert!(r.out.contains("gate-iter8-test"), "{r}");
    assert!(
        r.out
            .contains("all conditions hold: completed, nofailure, slos"),
        "the test pod's log: {r}"
    );
    let pod = Api::<Pod>::namespaced(c.client(), &ns)
        .get("gate-iter8-test")
        .await
        .expect("the test pod stays for its logs");
    let spec = pod.spec.expect("spec");
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some("gate-iter8-test")
    );
    assert_eq!(spec.automount_service_account_token, Some(false));

    // The test's ServiceAccount reads the release's Secret, and may neither change it nor
    // read another Secret.
    let sa = c
        .service_account_client(&ns, "gate-iter8-test")
        .await
        .expect("a token of the test's account");
    let secrets: Api<Secret> = Api::namespaced(sa, &ns);
    secrets.get(rel).await.expect("get of the release's Secret");
    let patch = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    let err = secrets
        .patch(rel, &PatchParams::default(), &patch)
        .await
        .expect_err("a patch must be refused");
    assert!(err.to_string().contains("forbidden"), "{err}");
    let err = secrets
        .get(&format!("sh.helm.release.v1.{rel}.v1"))
        .await
        .expect_err("Helm's release Secret must be out of reach");
    assert!(err.to_string().contains("forbidden"), "{err}");

    // An SLO no run can meet: a new Job, a false verdict, and `helm test` fails naming it.
    let r = install(
        Helm::V4,
        c,
        "upgrade",
        &ns,
        rel,
        &http_sets(&url, "0.000001"),
        true,
    )
    .await;
    assert_eq!(r.code, 0, "helm upgrade: {r}\n{}", agent_log());
    let r = helm(c, &["test", rel, "-n", &ns, "--logs", "--timeout", "2m"]).await;
    assert_ne!(r.code, 0, "helm test must fail on a false verdict: {r}");
    assert!(r.out.contains("condition false: slos"), "{r}");
    assert!(r.out.contains("http/latency-mean"), "{r}");

    let r = helm(c, &["uninstall", rel, "-n", &ns, "--wait"]).await;
    assert_eq!(r.code, 0, "helm uninstall: {r}");
    // Helm leaves test pods in place (documented); the rest of the release is gone.
    Api::<Pod>::namespaced(c.client(), &ns)
        .delete("gate-iter8-test", &Default::default())
        .await
        .expect("delete the test pod");
    nothing_left(c, &ns, rel).await;
    c.delete_namespace(&ns).await;
}
