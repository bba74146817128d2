//! `iter8-runner --workers N`: the load of an experiment shared by N processes on this
//! machine and merged into one result, against a hyper server started here.
//!
//! Server paths: `/fast` answers at once; `/alt` makes every odd request (by arrival, over
//! all connections) wait 60 ms and answers every even one at once, so the latencies of a
//! run are known in advance: exactly half (rounded up) at or above 60 ms, the rest far
//! below.

#![allow(clippy::unwrap_used)] // test support code: a failure here is a test failure

use std::convert::Infallible;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use iter8::model::ExperimentResult;

#[derive(Default)]
struct Counts {
    fast: AtomicU64,
    alt: AtomicU64,
}

/// A server on its own thread and runtime; its address and request counts.
fn server() -> (String, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let c = counts.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let c = c.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let c = c.clone();
                        async move {
                            if req.uri().path() == "/alt" {
                                let n = c.alt.fetch_add(1, Ordering::SeqCst) + 1;
                                if n % 2 == 1 {
                                    tokio::time::sleep(Duration::from_millis(60)).await;
                                }
                            } else {
                                c.fast.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}"), counts)
}

fn runner(dir: &Path, experiment: &str, extra: &[&str]) -> std::process::Child {
    std::fs::write(dir.join("experiment.yaml"), experiment).unwrap();
    Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir)
        .args([
            "-f",
            "experiment.yaml",
            "-o",
            "result.yaml",
            "--log-format",
            "json",
        ])
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("ITER8_LOAD_WORKERS")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> (Output, String) {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

fn result(dir: &Path) -> ExperimentResult {
    serde_yaml::from_str(&std::fs::read_to_string(dir.join("result.yaml")).unwrap()).unwrap()
}

fn value(r: &ExperimentResult, metric: &str) -> Option<f64> {
    r.insights
        .as_ref()?
        .non_histogram_metric_values
        .first()?
        .get(metric)?
        .last()
        .copied()
}

/// The coordinator's log line of the merge, as JSON fields.
fn merge_line(stderr: &str) -> serde_json::Value {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["workers"].is_u64() && v["fields"]["rate"].is_f64())
        .unwrap_or_else(|| panic!("no merge line in:\n{stderr}"))["fields"]
        .clone()
}

#[test]
fn three_workers_send_exactly_num_requests_and_merge_every_latency() {
    let (url, counts) = server();
    let dir = tempfile::tempdir().unwrap();
    let exp = format!(
        "spec:\n- task: http\n  with:\n    url: {url}/alt\n    numRequests: 301\n    qps: 0\n    connections: 12\n"
    );
    let (out, err) = finish(runner(dir.path(), &exp, &["--workers", "3"]));
    assert_eq!(out.status.code(), Some(0), "{err}");
    let r = result(dir.path());
    assert!(!r.failure, "{err}");
    // Exactly numRequests, all of them seen by the server.
    assert_eq!(value(&r, "http/request-count"), Some(301.0));
    assert_eq!(value(&r, "http/status-200"), Some(301.0));
    assert_eq!(counts.alt.load(Ordering::SeqCst), 301);
    let line = merge_line(&err);
    assert_eq!(line["workers"], 3);
    assert_eq!(line["requests"], 301);
    // The merged histogram holds every sample: the 151 odd arrivals at >= 60 ms, the 150
    // even ones below.
    let h = &r.insights.as_ref().unwrap().histogram_metric_values[0]["http/latency"];
    assert_eq!(h.count, 301);
    let slow: u64 = h
        .buckets
        .iter()
        .filter(|b| b.lower >= 60.0)
        .map(|b| b.count)
        .sum();
    let fast: u64 = h
        .buckets
        .iter()
        .filter(|b| b.upper <= 60.0)
        .map(|b| b.count)
        .sum();
    assert_eq!((slow, fast), (151, 150), "{:?}", h.buckets);
    assert!(h.min < 60.0 && h.max >= 60.0, "{h:?}");
    // p25 is a fast request, p75 a slow one (from the merged HDR histogram).
    assert!(value(&r, "http/latency-p50").is_some());
    let p75 = value(&r, "http/latency-p75").unwrap();
    assert!(p75 >= 60.0, "p75 {p75}");
    let mean = value(&r, "http/latency-mean").unwrap();
    assert!(
        (mean - h.sum / 301.0).abs() < 1e-9,
        "mean {mean} vs {}",
        h.sum / 301.0
    );
}

#[test]
fn three_workers_hold_a_fixed_rate_within_a_tenth_of_a_percent() {
    // 6000 requests at 500/s: one schedule of 12 s split over 3 processes. The rate is
    // counted requests over the merged run's measured span (earliest start to latest end).
    let (url, counts) = server();
    let dir = tempfile::tempdir().unwrap();
    let exp = format!(
        "spec:\n- task: http\n  with:\n    url: {url}/fast\n    numRequests: 6000\n    qps: 500\n    connections: 6\n"
    );
    let (out, err) = finish(runner(dir.path(), &exp, &["--workers", "3"]));
    assert_eq!(out.status.code(), Some(0), "{err}");
    let r = result(dir.path());
    assert_eq!(value(&r, "http/request-count"), Some(6000.0));
    assert_eq!(counts.fast.load(Ordering::SeqCst), 6000);
    let line = merge_line(&err);
    let (requests, secs) = (
        line["requests"].as_f64().unwrap(),
        line["elapsed_secs"].as_f64().unwrap(),
    );
    let rate = requests / secs;
    assert!(
        (rate / 500.0 - 1.0).abs() < 0.001,
        "merged rate {rate:.3}/s ({requests} requests in {secs:.4} s) is not within 0.1% of 500/s"
    );
}

/// The pid of this run's worker process `index` (a child of `parent`).
fn worker_pid(parent: u32, index: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // pid (comm) state ppid ...
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(parent) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let idx = index.to_string();
        if args
            .windows(2)
            .any(|w| w[0] == b"--worker-index" && w[1] == idx.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_worker_that_dies_fails_the_experiment_naming_its_index() {
    let (url, _counts) = server();
    let dir = tempfile::tempdir().unwrap();
    let exp = format!(
        "spec:\n- task: http\n  with:\n    url: {url}/fast\n    duration: 6s\n    qps: 50\n    connections: 3\n- task: assess\n  with:\n    SLOs:\n      upper:\n        http/error-count: 0\n"
    );
    let child = runner(dir.path(), &exp, &["--workers", "3"]);
    let parent = child.id();
    // Kill worker 2 once it runs (as a pod killed by the OOM killer would be).
    let mut pid = None;
    for _ in 0..200 {
        pid = worker_pid(parent, 2);
        if pid.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let pid = pid.expect("worker 2 started");
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (out, err) = finish(child);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let r = result(dir.path());
    assert!(r.failure);
    let f = r.failed_task.unwrap();
    assert_eq!((f.index, f.task.as_str()), (0, "http"));
    assert!(
        f.message
            .contains("load worker 2 failed: the worker process exited with signal: 9"),
        "{}",
        f.message
    );
    // assess did not run: the merged result is incomplete.
    assert_eq!(r.num_completed_tasks, 0);
}

#[test]
fn bad_worker_counts_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = finish(runner(
        dir.path(),
        "spec:\n- run: 'true'\n",
        &["--workers", "0"],
    ));
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--workers"), "{err}");
    // More workers than connections: the task fails before any load, saying what to change.
    let (url, counts) = server();
    let exp = format!(
        "spec:\n- task: http\n  with:\n    url: {url}/fast\n    numRequests: 10\n    connections: 2\n"
    );
    let (out, err) = finish(runner(dir.path(), &exp, &["--workers", "3"]));
    assert_eq!(out.status.code(), Some(1), "{err}");
    let f = result(dir.path()).failed_task.unwrap();
    assert!(
        f.message
            .contains("connections: 2 cannot be shared by 3 load workers"),
        "{}",
        f.message
    );
    assert_eq!(counts.fast.load(Ordering::SeqCst), 0);
}
