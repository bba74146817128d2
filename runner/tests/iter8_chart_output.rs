//! The experiment Iter8 v0.15.8's own chart renders runs on `iter8-runner` unchanged.
//!
//! Shape (from iter8-tools/iter8 v0.15.8 `charts/iter8/templates/_experiment.tpl` and
//! `_task-grpc.tpl`): a top-level `spec:` whose grpc task is preceded by `run: curl -o FILE
//! URL` download steps (one per `protoURL` / `dataURL` / `metadataURL`), a warmup grpc task
//! (`warmup: true`, `total` from warmupNumRequests) and the measured grpc task, each
//! carrying ghz's `proto` / `data-file` / `metadata-file` beside the URLs; and a top-level
//! `result:`. Values are ours; the servers are local (a tonic server with a
//! client-streaming method, and an HTTP server for the documents).
#![allow(clippy::unwrap_used)] // test support helpers outside #[test] fns

mod support;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use iter8::model::ExperimentResult;
use support::{Seen, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iter8_chart_rendered_grpc_experiment_runs_unchanged() {
    let grpc = support::streamer::start().await;
    let docs = TestServer::start(Arc::new(|s: &Seen| match s.path.as_str() {
        "/streamer.proto" => (
            200,
            "text/plain".into(),
            support::streamer::STREAMER_PROTO.into(),
        ),
        "/data.json" => (
            200,
            "application/json".into(),
            r#"[{"value": 2}, {"value": 3}]"#.into(),
        ),
        "/metadata.json" => (200, "application/json".into(), r#"{"x-team": "a"}"#.into()),
        _ => (404, "text/plain".into(), "not found".into()),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let with = format!(
        "      call: streams.Streamer/Sum
      data-file: {d}/data.json
      dataURL: {data}
      host: {host}
      metadata-file: {d}/metadata.json
      metadataURL: {meta}
      proto: {d}/ghz.proto
      protoURL: {proto}
",
        data = docs.url("/data.json"),
        meta = docs.url("/metadata.json"),
        proto = docs.url("/streamer.proto"),
        host = grpc.addr,
    );
    let experiment = format!(
        "spec:
  # task: download proto file from URL
  - run: |
      curl -o {d}/ghz.proto {proto}
  # task: download JSON data file from URL
  - run: |
      curl -o {d}/data.json {data}
  # task: download metadata JSON file from URL
  - run: |
      curl -o {d}/metadata.json {meta}
  # task: generate gRPC requests for app
  # collect Iter8's built-in gRPC latency and error-related metrics
  - task: grpc
    with:
{with}      total: 3
      warmup: true
  # task: generate gRPC requests for app
  # collect Iter8's built-in gRPC latency and error-related metrics
  - task: grpc
    with:
{with}      total: 5
  # task: validate service level objectives for app using
  # the metrics collected in an earlier task
  - task: assess
    with:
      SLOs:
        upper:
        - metric: grpc/error-rate
          limit: 0
result:
  startTime:         \"2026-11-30T07:00:00Z\"
  numCompletedTasks: 0
  failure:           false
  iter8Version:      v0.15
",
        data = docs.url("/data.json"),
        meta = docs.url("/metadata.json"),
        proto = docs.url("/streamer.proto"),
    );
    std::fs::write(dir.path().join("experiment.yaml"), experiment).unwrap();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
                .current_dir(&dir)
                .args(["-f", "experiment.yaml", "-o", "result.yaml", "--quiet"])
                .env_remove("RUST_LOG")
                // No shell on PATH matters not: the download steps need none.
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed: {stderr}");

    // The runner did the downloads itself.
    let proto = std::fs::read_to_string(dir.path().join("ghz.proto")).unwrap();
    assert!(proto.contains("service Streamer"), "{proto}");
    assert!(dir.path().join("data.json").exists());
    assert!(dir.path().join("metadata.json").exists());

    let result: ExperimentResult =
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join("result.yaml")).unwrap())
            .unwrap();
    let ins = result.insights.as_ref().expect("insights");
    // 3 warmup streams + 5 measured; only the measured ones are recorded.
    assert_eq!(grpc.seen.calls.load(Ordering::SeqCst), 8);
    assert_eq!(ins.latest(0, "grpc/request-count"), Some(5.0));
    assert_eq!(ins.latest(0, "grpc/error-count"), Some(0.0));
    // Every stream sent the data array (from dataURL).
    let received = grpc.seen.received.lock().unwrap().clone();
    assert!(received.iter().all(|v| v == &[2, 3]), "{received:?}");
    assert_eq!(result.num_completed_tasks, 6);
    assert!(!result.failure);
}

/// Iter8 v0.15.8's `_task-http.tpl` with `payloadURL`: a `run: curl -o payload.dat URL`
/// step, then the http task with `payloadFile: payload.dat` beside `payloadURL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iter8_chart_rendered_http_experiment_with_payload_url_runs_unchanged() {
    let app = TestServer::start(Arc::new(|s: &Seen| match s.path.as_str() {
        "/payload.json" => (200, "application/json".into(), r#"{"order": 7}"#.into()),
        "/missing.json" => (404, "text/plain".into(), "not found".into()),
        _ => (200, "text/plain".into(), "ok".into()),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let experiment = |payload: &str| {
        format!(
            "spec:
  # task: download payload from payload URL
  - run: |
      curl -o payload.dat {payload}
  # task: generate HTTP requests for app
  # collect Iter8's built-in HTTP latency and error-related metrics
  - task: http
    with:
      numRequests: 6
      payloadFile: payload.dat
      payloadURL: {payload}
      url: {url}
",
            url = app.url("/order"),
        )
    };
    let run = |text: String| {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::fs::write(dir.join("experiment.yaml"), text).unwrap();
            Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
                .current_dir(&dir)
                .args(["-f", "experiment.yaml", "-o", "result.yaml", "--quiet"])
                .env_remove("RUST_LOG")
                // A relative download lands in the temporary directory: this test's own.
                .env("TMPDIR", &dir)
                .output()
                .unwrap()
        })
    };
    let out = run(experiment(&app.url("/payload.json"))).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let posts: Vec<_> = app
        .requests()
        .into_iter()
        .filter(|r| r.path == "/order")
        .collect();
    assert_eq!(posts.len(), 6);
    assert!(posts
        .iter()
        .all(|r| r.method == "POST" && r.body == br#"{"order": 7}"#));

    // A payload that cannot be downloaded: the run step fails and names the URL.
    let out = run(experiment(&app.url("/missing.json"))).await.unwrap();
    assert!(!out.status.success());
    let result: ExperimentResult =
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join("result.yaml")).unwrap())
            .unwrap();
    assert!(result.failure);
    let text = format!("{result:?}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("/missing.json") && text.contains("HTTP status 404"),
        "{text}"
    );
}
