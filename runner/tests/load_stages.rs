//! Load stages of the `http` task against a real HTTP server (hyper on 127.0.0.1): the
//! per-stage counts come from the schedule (exact), the achieved rates from the result;
//! nothing is asserted on wall-clock timing.

#![allow(clippy::unwrap_used)] // test code: a failure here is a test failure

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use iter8::model::Insights;
use iter8::tasks::http::HttpTask;
use iter8::tasks::{Progress, TaskContext, TaskError};
use tokio::net::TcpListener;

/// Every 5th request is a 503; counts what it served.
async fn serve() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        let status = if n % 5 == 0 {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::OK
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"ok")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), count)
}

async fn run(yaml: &str) -> (Insights, Result<(), TaskError>) {
    let task: HttpTask = serde_yaml::from_str(yaml).unwrap();
    let mut insights = Insights::default();
    let progress = Progress::default();
    let result = {
        let mut ctx = TaskContext {
            index: 0,
            experiment_start: chrono::Utc::now(),
            namespace: None,
            insights: &mut insights,
            progress: &progress,
            kube: None,
        };
        task.run(&mut ctx).await
    };
    (insights, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stage_sends_its_scheduled_requests_and_reports_its_own_metrics() {
    let (base, served) = serve().await;
    // 40 qps for 1 s (40), a ramp from 40 to 120 qps over 1 s (80), 20 qps for 0.5 s (10)
    let (ins, result) = run(&format!(
        "url: {base}/\nconnections: 4\nwarmupNumRequests: 3\nstages:\n\
         - {{duration: 1s, qps: 40}}\n\
         - {{duration: 1s, qps: 120, ramp: true}}\n\
         - {{duration: 500ms, qps: 20}}\n"
    ))
    .await;
    result.unwrap();
    let info = &ins.load["http"];
    let stages = &info.stages;
    assert_eq!(
        stages.iter().map(|s| s.requests).collect::<Vec<_>>(),
        [40, 80, 10]
    );
    assert_eq!(
        stages
            .iter()
            .map(|s| s.planned_requests)
            .collect::<Vec<_>>(),
        [40, 80, 10]
    );
    assert_eq!(
        stages
            .iter()
            .map(|s| (s.from_qps, s.to_qps))
            .collect::<Vec<_>>(),
        [(40.0, 40.0), (40.0, 120.0), (20.0, 20.0)]
    );
    // the totals are the sum of the stages; the warmup is in neither
    assert_eq!(served.load(Ordering::SeqCst), 3 + 130);
    assert_eq!(ins.latest(0, "http/request-count"), Some(130.0));
    let errors: u64 = stages.iter().map(|s| s.errors).sum();
    assert_eq!(ins.latest(0, "http/error-count"), Some(errors as f64));
    // server numbers 4..=133 in the measured phase: every 5th is a 503
    assert_eq!(errors, (4..=133).filter(|n| n % 5 == 0).count() as u64);
    for s in stages {
        assert_eq!(s.statuses.values().sum::<u64>(), s.requests);
        assert_eq!(s.statuses.get("503").copied().unwrap_or(0), s.errors);
        // a stage lasts at least as planned: its achieved rate is at most the planned one
        assert!(s.elapsed_seconds >= s.duration_seconds, "{s:?}");
        assert!((s.rate - s.requests as f64 / s.elapsed_seconds).abs() < 1e-9);
        assert!(
            s.rate > 0.0 && s.rate <= s.planned_requests as f64 / s.duration_seconds,
            "{s:?}"
        );
        let h = s.histogram.as_ref().unwrap();
        assert_eq!(h.count, s.requests);
        let (p50, p99, max) = (s.latency["p50"], s.latency["p99"], s.latency["max"]);
        assert!(p50 <= p99 && p99 <= max, "{:?}", s.latency);
        assert!(s.lag_p99_ms.is_some());
    }
    // every request was measured against the schedule
    let g = info.generator.as_ref().unwrap();
    assert_eq!(g.scheduled_requests, Some(130));
    assert!(g.cpu_seconds.is_some_and(|c| c > 0.0));
}

#[tokio::test]
async fn stages_conflict_with_qps_num_requests_and_duration() {
    let cases = [
        ("stages: []", "stages"),
        ("stages: [{duration: 1s, qps: 0}]", "stages[0].qps"),
        ("stages: [{duration: 0s, qps: 5}]", "stages[0].duration"),
        ("qps: 5\nstages: [{duration: 1s, qps: 5}]", "qps"),
        (
            "numRequests: 5\nstages: [{duration: 1s, qps: 5}]",
            "numRequests",
        ),
        ("duration: 2s\nstages: [{duration: 1s, qps: 5}]", "duration"),
        (
            "stages: [{duration: 1s, qps: 5}]\nendpoints: {a: {qps: 3}}",
            "endpoints.a.qps",
        ),
        (
            "endpoints: {a: {stages: [{duration: 1s, qps: 5, ramp: true}], duration: 1s}}",
            "endpoints.a.duration",
        ),
    ];
    for (yaml, field) in cases {
        let t: HttpTask = serde_yaml::from_str(&format!("url: http://a/\n{yaml}")).unwrap();
        match t.validate() {
            Err(TaskError::Invalid { field: f, .. }) => assert_eq!(f, field, "{yaml}"),
            other => panic!("{yaml}: {other:?}"),
        }
    }
    // an endpoint that sets its own amount of load does not inherit the stages
    let t: HttpTask = serde_yaml::from_str(
        "url: http://a/\nstages: [{duration: 1s, qps: 5}]\nendpoints: {a: {numRequests: 3}, b: {}}",
    )
    .unwrap();
    t.validate().unwrap();
    let e = serde_yaml::from_str::<HttpTask>("url: http://a/\nstages: [{duration: 1s, rate: 5}]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rate"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_shared_by_three_worker_processes_merge_to_the_one_schedule() {
    let (base, served) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("experiment.yaml"),
        format!(
            "spec:\n- task: http\n  with:\n    url: {base}/\n    connections: 6\n    stages:\n    \
             - {{duration: 1s, qps: 30}}\n    - {{duration: 1s, qps: 90, ramp: true}}\n"
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir.path())
        .args([
            "-f",
            "experiment.yaml",
            "-o",
            "result.yaml",
            "--quiet",
            "--workers",
            "3",
        ])
        .env_remove("ITER8_LOAD_WORKERS")
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let text = std::fs::read_to_string(dir.path().join("result.yaml")).unwrap();
    let r = iter8::model::result::parse_result(&text).unwrap();
    let ins = r.insights.unwrap();
    // 30 in the first stage, (30 + 90) / 2 = 60 in the ramp, over the three processes
    let stages = &ins.load["http"].stages;
    assert_eq!(
        stages.iter().map(|s| s.requests).collect::<Vec<_>>(),
        [30, 60],
        "{log}"
    );
    assert_eq!(ins.latest(0, "http/request-count"), Some(90.0));
    assert_eq!(served.load(Ordering::SeqCst), 90);
    assert!(stages
        .iter()
        .all(|s| s.histogram.as_ref().map(|h| h.count) == Some(s.requests)));
}
