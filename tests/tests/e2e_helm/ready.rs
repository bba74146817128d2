//! The ready task against real objects (a Deployment made Available by the real controllers
//! and the node agent; one that does not exist), and a load target that refuses
//! connections.

use crate::common::{iter8, iter8_assert};
use crate::{finished_job, http_sets, install, report_json, sleeping_deployment, Helm};
use iter8_tests::k8s::Cluster;

pub async fn ready_on_a_deployment_and_unreachable_target(c: &Cluster) {
    let ns = c.namespace("ready").await.expect("namespace");
    sleeping_deployment(c, &ns, "web").await;
    let ready = |name: &str| {
        vec![
            "tasks={ready}".to_string(),
            format!("ready.deploy={name}"),
            "ready.timeout=3s".to_string(),
        ]
    };
    let r = install(Helm::V4, c, "install", &ns, "rdy", &ready("web"), false).await;
    assert_eq!(r.code, 0, "{r}");
    let r = install(
        Helm::V4,
        c,
        "install",
        &ns,
        "absent",
        &ready("nothere"),
        false,
    )
    .await;
    assert_eq!(r.code, 0, "{r}");
    // unreachable: a port that was just closed
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let sets = http_sets(&format!("http://127.0.0.1:{port}/"), "5000");
    let r = install(Helm::V4, c, "install", &ns, "down", &sets, false).await;
    assert_eq!(r.code, 0, "{r}");

    let j = finished_job(c, &ns, "rdy-1-job").await;
    assert_eq!(j["status"]["succeeded"], 1, "{j}");
    let r = iter8_assert(c, "completed,nofailure", "rdy", &ns, &[]).await;
    assert_eq!(r.code, 0, "{r}");

    let j = finished_job(c, &ns, "absent-1-job").await;
    assert_eq!(j["status"]["failed"], 1, "{j}");
    let r = iter8_assert(c, "completed,nofailure", "absent", &ns, &[]).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.out.contains("nothere"),
        "the reason names the object: {r}"
    );
    let res = report_json(c, &ns, "absent").await;
    assert_eq!(res["failure"], true, "{res}");

    finished_job(c, &ns, "down-1-job").await;
    let r = iter8_assert(c, "completed,nofailure,slos", "down", &ns, &[]).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(r.out.contains("http/error-count"), "{r}");
    // the reason is recorded: every request counted as refused
    let r = iter8(c, &["report", "--release", "down", "-n", &ns]).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(r.out.to_lowercase().contains("refused"), "{r}");
    let res = report_json(c, &ns, "down").await;
    assert!(res.to_string().contains("http/error-count"), "{res}");
    c.delete_namespace(&ns).await;
}
