//! The Job and CronJob controllers run containers as local processes.

#![allow(clippy::unwrap_used)] // test helpers: a failed step is a failed test

use std::path::PathBuf;
use std::time::Duration;

use iter8_tests::cluster::{ImageMapping, ImageTarget, TestCluster, TestClusterOptions};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn cluster() -> TestCluster {
    TestCluster::start_with(TestClusterOptions {
        image_map: vec![ImageMapping {
            pattern: "busybox".into(),
            target: ImageTarget::Binary(PathBuf::from("/bin/sh")),
        }],
        ..Default::default()
    })
    .await
    .unwrap()
}

fn job(name: &str, script: &str, extra_spec: serde_json::Value) -> Job {
    let mut spec = json!({
        "backoffLimit": 0,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "docker.io/library/busybox:1.36",
            "command": ["sh", "-c"], "args": [script],
            "env": [
                {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "GREETING", "value": "hello"},
            ],
        }]}},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn condition(j: &serde_json::Value, t: &str) -> Option<String> {
    j["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .and_then(|c| c["reason"].as_str().map(String::from))
}

#[tokio::test]
async fn job_success_failure_and_logs() {
    let tc = cluster().await;
    let client = tc.client().await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    jobs.create(
        &PostParams::default(),
        &job(
            "ok",
            "echo $GREETING from $MY_NS/$MY_POD; test -f \"$KUBECONFIG\" && echo has-kubeconfig",
            json!({}),
        ),
    )
    .await
    .unwrap();
    let done = tc.wait_job("default", "ok", WAIT).await.unwrap();
    assert_eq!(done["status"]["succeeded"], 1);
    assert_eq!(
        condition(&done, "Complete").as_deref(),
        Some("CompletionsReached")
    );
    assert!(done["status"]["completionTime"].is_string());
    let list = pods
        .list(&ListParams::default().labels("job-name=ok"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let pod = &list.items[0];
    let pod_name = pod.metadata.name.clone().unwrap();
    assert!(pod_name.starts_with("ok-") && pod_name.len() == "ok-".len() + 5);
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );
    let log = pods.logs(&pod_name, &LogParams::default()).await.unwrap();
    assert_eq!(
        log,
        format!("hello from default/{pod_name}\nhas-kubeconfig\n")
    );

    jobs.create(
        &PostParams::default(),
        &job(
            "bad",
            "echo failing >&2; exit 1",
            json!({"backoffLimit": 1}),
        ),
    )
    .await
    .unwrap();
    let done = tc.wait_job("default", "bad", WAIT).await.unwrap();
    assert_eq!(
        condition(&done, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(done["status"]["failed"], 2);
    let bad_pods = tc.job_pods("default", "bad");
    assert_eq!(bad_pods.len(), 2, "backoffLimit 1 means two attempts");
    for p in &bad_pods {
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
        assert_eq!(
            tc.pod_log("default", p["metadata"]["name"].as_str().unwrap()),
            "failing\n"
        );
    }
}

#[tokio::test]
async fn deadline_ttl_and_deletion_kill_processes() {
    let tc = cluster().await;
    let client = tc.client().await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");

    jobs.create(
        &PostParams::default(),
        &job("slow", "sleep 30", json!({"activeDeadlineSeconds": 1})),
    )
    .await
    .unwrap();
    let done = tc.wait_job("default", "slow", WAIT).await.unwrap();
    assert_eq!(
        condition(&done, "Failed").as_deref(),
        Some("DeadlineExceeded")
    );

    jobs.create(
        &PostParams::default(),
        &job("ttl", "true", json!({"ttlSecondsAfterFinished": 0})),
    )
    .await
    .unwrap();
    let mut gone = false;
    for _ in 0..200 {
        if jobs.get_opt("ttl").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "ttlSecondsAfterFinished: 0 deletes the finished job");
    assert!(tc.job_pods("default", "ttl").is_empty());

    jobs.create(
        &PostParams::default(),
        &job("running", "echo started; sleep 30", json!({})),
    )
    .await
    .unwrap();
    let mut running = false;
    for _ in 0..200 {
        if tc
            .job_pods("default", "running")
            .first()
            .is_some_and(|p| p["status"]["phase"] == "Running")
        {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(running);
    jobs.delete("running", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        tc.job_pods("default", "running").is_empty(),
        "background propagation deletes the pods"
    );
}

#[tokio::test]
async fn cronjob_trigger_forbid_and_schedule() {
    let tc = cluster().await;
    let client = tc.client().await.unwrap();
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let cj = |name: &str, script: &str| -> CronJob {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"metadata": {"labels": {"from": name}}, "spec": {"backoffLimit": 0, "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}}}}},
        }))
        .unwrap()
    };
    cjs.create(&PostParams::default(), &cj("loop", "sleep 30"))
        .await
        .unwrap();
    let first = tc.trigger_cronjob("default", "loop").unwrap();
    let err = tc.trigger_cronjob("default", "loop").unwrap_err();
    assert!(err.to_string().contains("Forbid"), "{err}");
    let got = cjs.get("loop").await.unwrap();
    let active = got.status.unwrap().active.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].name.as_deref(), Some(first.as_str()));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let j = jobs.get(&first).await.unwrap();
    assert_eq!(j.metadata.labels.unwrap()["from"], "loop");
    assert_eq!(j.metadata.owner_references.unwrap()[0].kind, "CronJob");

    // Schedule: with the last schedule 10 minutes ago, a tick starts the missed run.
    cjs.create(&PostParams::default(), &cj("tick", "true"))
        .await
        .unwrap();
    let past = (chrono::Utc::now() - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    tc.patch_status(
        "batch",
        "cronjobs",
        "default",
        "tick",
        &json!({"lastScheduleTime": past}),
    )
    .unwrap();
    let mut started = None;
    for _ in 0..100 {
        let list = jobs
            .list(&ListParams::default().labels("from=tick"))
            .await
            .unwrap();
        if let Some(j) = list.items.first() {
            started = j.metadata.name.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = started.expect("the schedule started a job");
    let done = tc.wait_job("default", &started, WAIT).await.unwrap();
    assert_eq!(done["status"]["succeeded"], 1);
    let st = cjs.get("tick").await.unwrap().status.unwrap();
    assert_ne!(st.last_schedule_time.map(|t| t.0.to_string()), Some(past));
}

#[tokio::test]
async fn pod_log_follow_streams_until_the_process_ends() {
    use futures::AsyncBufReadExt;
    use futures::TryStreamExt;
    let tc = cluster().await;
    let client = tc.client().await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("follow", "echo one; sleep 0.3; echo two", json!({})),
    )
    .await
    .unwrap();
    let mut pod_name = None;
    for _ in 0..200 {
        if let Some(p) = tc.job_pods("default", "follow").first() {
            pod_name = p["metadata"]["name"].as_str().map(String::from);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pod_name = pod_name.unwrap();
    let stream = pods
        .log_stream(
            &pod_name,
            &LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let lines: Vec<String> = stream.lines().try_collect().await.unwrap();
    assert_eq!(lines, ["one", "two"]);
    let tail = pods
        .logs(
            &pod_name,
            &LogParams {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "two\n");
}
