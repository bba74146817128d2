//! The `http` task against hyper servers started here on 127.0.0.1 (ephemeral ports).
//!
//! Server paths: `/ok` 200; `/every3` 500 for every 3rd request (by arrival), else 200;
//! `/status/<n>` status n; `/split` every 10th request (by arrival) waits 100 ms, others
//! answer at once; `/slow` waits 5 s. Every request is recorded (method, version, headers,
//! body) and counted.

#![allow(clippy::unwrap_used)] // test support code: a failure here is a test failure

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use iter8::model::Insights;
use iter8::tasks::http::HttpTask;
use iter8::tasks::{Progress, TaskContext, TaskError};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    version: Version,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct State {
    count: AtomicU64,
    per_path: Mutex<BTreeMap<String, u64>>,
    seen: Mutex<Vec<Seen>>,
}

impl State {
    fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    state.count.fetch_add(1, Ordering::SeqCst);
    let n = {
        let mut pp = state.per_path.lock().unwrap();
        let c = pp.entry(path.clone()).or_default();
        *c += 1;
        *c
    };
    if state.seen.lock().unwrap().len() < 1000 {
        state.seen.lock().unwrap().push(Seen {
            method: parts.method.clone(),
            version: parts.version,
            path: path.clone(),
            headers: parts.headers.clone(),
            body,
        });
    }
    let status = if path == "/every3" {
        if n % 3 == 0 {
            500
        } else {
            200
        }
    } else if let Some(code) = path.strip_prefix("/status/") {
        code.parse().unwrap_or(400)
    } else if path == "/split" {
        if n % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        200
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
        200
    } else {
        200
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(b"hello from the test server")));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    Ok(resp)
}

/// Plain server (HTTP/1.1 and h2c prior knowledge). Returns its base URL.
async fn serve() -> (String, Arc<State>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State::default());
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(st.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), state)
}

/// TLS server with a fresh self-signed certificate for localhost / 127.0.0.1 (ALPN h2 and
/// http/1.1). Returns its base URL (https://localhost:port) and the certificate's PEM.
async fn serve_tls() -> (String, String, Arc<State>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(State::default());
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let st = st.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(move |req| handle(st.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (format!("https://localhost:{port}"), cert_pem, state)
}

struct Run {
    insights: Insights,
    progress: Progress,
    result: Result<(), TaskError>,
}

impl Run {
    fn get(&self, version: usize, name: &str) -> f64 {
        self.insights
            .latest(version, name)
            .unwrap_or_else(|| panic!("no {name} for version {version}: {:#?}", self.insights))
    }
}

async fn run(yaml: &str) -> Run {
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
    Run {
        insights,
        progress,
        result,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_exactly_num_requests_and_counts_them() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "url: {base}/ok\nnumRequests: 37\nqps: 0\nconnections: 5"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(state.count(), 37);
    assert_eq!(r.get(0, "http/request-count"), 37.0);
    assert_eq!(r.get(0, "http/error-count"), 0.0);
    assert_eq!(r.get(0, "http/error-rate"), 0.0);
    assert_eq!(r.get(0, "http/status-200"), 37.0);
    let h = &r.insights.histogram_metric_values[0]["http/latency"];
    assert_eq!(h.count, 37);
    assert_eq!(h.buckets.iter().map(|b| b.count).sum::<u64>(), 37);
    let min = r.get(0, "http/latency-min");
    let max = r.get(0, "http/latency-max");
    let mean = r.get(0, "http/latency-mean");
    assert!(
        min > 0.0 && min <= mean && mean <= max,
        "{min} {mean} {max}"
    );
    assert!(r.get(0, "http/latency-stddev") >= 0.0);
    for p in ["p50", "p75", "p90", "p95", "p99", "p99.9"] {
        let v = r.get(0, &format!("http/latency-{p}"));
        assert!(v >= min && v <= max, "{p} {v}");
    }
    assert_eq!(
        r.insights.metrics_info["http/latency-p99.9"]
            .units
            .as_deref(),
        Some("msec")
    );
    assert_eq!(r.progress.done.load(Ordering::Relaxed), 37);
    // GET without a body by default, HTTP/1.1 with a Host header
    let seen = state.seen.lock().unwrap();
    assert!(seen
        .iter()
        .all(|s| s.method == Method::GET && s.version == Version::HTTP_11));
    assert!(seen[0].headers.get("host").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_is_100_requests_and_every_500_is_an_error() {
    let (base, state) = serve().await;
    let r = run(&format!("url: {base}/every3\nqps: 0")).await;
    r.result.as_ref().unwrap();
    assert_eq!(state.count(), 100);
    assert_eq!(r.get(0, "http/request-count"), 100.0);
    assert_eq!(r.get(0, "http/error-count"), 33.0);
    assert_eq!(r.get(0, "http/status-500"), 33.0);
    assert_eq!(r.get(0, "http/status-200"), 67.0);
    assert!((r.get(0, "http/error-rate") - 0.33).abs() < 1e-12);
    assert_eq!(r.progress.errors.load(Ordering::Relaxed), 33);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentiles_fall_in_the_right_bucket() {
    let (base, _state) = serve().await;
    let r = run(&format!(
        "url: {base}/split\nnumRequests: 40\nqps: 0\nconnections: 1\npercentiles: [80, 99.90]"
    ))
    .await;
    r.result.as_ref().unwrap();
    // 36 fast answers, 4 of >= 100 ms
    assert!(r.get(0, "http/latency-p50") < 100.0);
    assert!(r.get(0, "http/latency-p80") < 100.0);
    assert!(r.get(0, "http/latency-p90") < 100.0);
    assert!(r.get(0, "http/latency-p95") >= 100.0);
    assert!(r.get(0, "http/latency-p99.9") >= 100.0);
    assert!(r.get(0, "http/latency-max") >= 100.0);
    let h = &r.insights.histogram_metric_values[0]["http/latency"];
    let slow: u64 = h
        .buckets
        .iter()
        .filter(|b| b.lower >= 100.0)
        .map(|b| b.count)
        .sum();
    assert_eq!(slow, 4);
    assert!(h.percentile(95.0).unwrap() >= 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_ranges_decide_which_statuses_are_errors() {
    let (base, _state) = serve().await;
    let r = run(&format!("url: {base}/status/404\nnumRequests: 6\nqps: 0")).await;
    assert_eq!(r.get(0, "http/error-count"), 6.0);
    let r = run(&format!(
        "url: {base}/status/404\nnumRequests: 6\nqps: 0\nerrorRanges: [{{lower: 500}}]"
    ))
    .await;
    assert_eq!(r.get(0, "http/error-count"), 0.0);
    assert_eq!(r.get(0, "http/status-404"), 6.0);
    let r = run(&format!(
        "url: {base}/status/204\nnumRequests: 6\nqps: 0\nerrorRanges: [{{lower: 500}}, {{lower: 200, upper: 204}}]"
    ))
    .await;
    assert_eq!(r.get(0, "http/error-count"), 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_payload_reach_the_server() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "url: {base}/echo\nnumRequests: 3\nqps: 0\npayloadStr: '{{\"a\": 1}}'\ncontentType: application/json\nheaders: {{X-Test: yes, Authorization: Bearer t}}"
    ))
    .await;
    r.result.as_ref().unwrap();
    let seen = state.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for s in seen.iter() {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, "/echo");
        assert_eq!(&s.body[..], b"{\"a\": 1}");
        assert_eq!(s.headers["content-type"], "application/json");
        assert_eq!(s.headers["x-test"], "yes");
        assert_eq!(s.headers["authorization"], "Bearer t");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_file_is_posted_and_an_unreadable_one_fails_before_any_request() {
    let (base, state) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.bin");
    std::fs::write(&path, b"line1\nline2\x00binary").unwrap();
    let r = run(&format!(
        "url: {base}/echo\nnumRequests: 2\nqps: 0\npayloadFile: {}",
        path.display()
    ))
    .await;
    r.result.as_ref().unwrap();
    {
        let seen = state.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].method, Method::POST);
        assert_eq!(&seen[0].body[..], b"line1\nline2\x00binary");
    }
    let r = run(&format!(
        "url: {base}/echo\nnumRequests: 2\npayloadFile: {}/missing.json",
        dir.path().display()
    ))
    .await;
    match r.result {
        Err(TaskError::Invalid { field, message }) => {
            assert_eq!(field, "payloadFile");
            assert!(message.contains("missing.json"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(state.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_versions_when_opted_in() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "qps: 0\nnumRequests: 5\nendpointsAreVersions: true\nendpoints:\n  \
         v2: {{url: '{base}/status/500', numRequests: 7}}\n  \
         v1: {{url: '{base}/ok'}}\n"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(state.count(), 12);
    assert_eq!(r.insights.version_names, ["v1", "v2"]);
    assert_eq!(r.get(0, "http-v1/request-count"), 5.0);
    assert_eq!(r.get(0, "http-v1/error-count"), 0.0);
    assert_eq!(r.get(1, "http-v2/request-count"), 7.0);
    assert_eq!(r.get(1, "http-v2/error-count"), 7.0);
    assert_eq!(r.get(1, "http-v2/status-500"), 7.0);
    // the generic names compare versions
    assert_eq!(r.get(0, "http/request-count"), 5.0);
    assert_eq!(r.get(1, "http/error-rate"), 1.0);
    // one histogram per endpoint
    assert_eq!(
        r.insights.histogram_metric_values[0]["http-v1/latency"].count,
        5
    );
    assert_eq!(
        r.insights.histogram_metric_values[1]["http-v2/latency"].count,
        7
    );
    assert!(r.insights.latest(0, "http-v2/request-count").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_load_targets_of_one_version_as_in_iter8() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "qps: 0\nnumRequests: 5\nendpoints:\n  \
         b: {{url: '{base}/status/500', numRequests: 7}}\n  \
         a: {{url: '{base}/ok'}}\n"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(state.count(), 12);
    assert_eq!(r.insights.num_versions, 1);
    assert_eq!(r.get(0, "http-a/request-count"), 5.0);
    assert_eq!(r.get(0, "http-a/error-count"), 0.0);
    assert_eq!(r.get(0, "http-b/request-count"), 7.0);
    assert_eq!(r.get(0, "http-b/error-rate"), 1.0);
    assert_eq!(
        r.insights.histogram_metric_values[0]["http-b/latency"].count,
        7
    );
    // no merged `http/...` names: Iter8 has none with endpoints
    assert!(r.insights.latest(0, "http/request-count").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_requests_are_sent_but_not_counted() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "url: {base}/every3\nnumRequests: 10\nqps: 0\nconnections: 1\nwarmupNumRequests: 5"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(state.count(), 15);
    assert_eq!(r.get(0, "http/request-count"), 10.0);
    // arrivals 6..=15 are measured: 6, 9, 12, 15 are errors
    assert_eq!(r.get(0, "http/error-count"), 4.0);
    // by duration
    let (base, state) = serve().await;
    let r = run(&format!(
        "url: {base}/ok\nnumRequests: 10\nqps: 200\nwarmupDuration: 100ms"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/request-count"), 10.0);
    assert!(state.count() > 10, "{}", state.count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_mode_stops_and_counts_everything_sent() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "url: {base}/ok\nduration: 300ms\nqps: 0\nconnections: 2"
    ))
    .await;
    r.result.as_ref().unwrap();
    let n = r.get(0, "http/request-count");
    assert!(n > 0.0);
    assert_eq!(n as u64, state.count());
    assert_eq!(
        r.insights.histogram_metric_values[0]["http/latency"].count,
        n as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_rate_sends_about_qps_times_duration() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "url: {base}/ok\nduration: 1s\nqps: 50\nconnections: 2"
    ))
    .await;
    r.result.as_ref().unwrap();
    let n = r.get(0, "http/request-count");
    assert!((45.0..=55.0).contains(&n), "{n}");
    assert_eq!(n as u64, state.count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_counted_as_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let r = run(&format!(
        "url: http://{addr}/ok\nnumRequests: 9\nqps: 0\nconnections: 3"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/request-count"), 9.0);
    assert_eq!(r.get(0, "http/error-count"), 9.0);
    assert_eq!(r.get(0, "http/error-refused"), 9.0);
    assert_eq!(r.get(0, "http/error-rate"), 1.0);
    // No response, no latency: connection failures are errors only.
    assert!(!r.insights.histogram_metric_values[0].contains_key("http/latency"));
    assert_eq!(r.insights.latest(0, "http/latency-mean"), None);
    assert!(
        r.insights.unavailable_metrics[0]["http/latency-p99"].contains("no request got a response")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_timeout_are_counted_as_timeouts() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "url: {base}/slow\nnumRequests: 3\nqps: 0\nconnections: 3\ntimeout: 150ms"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/request-count"), 3.0);
    assert_eq!(r.get(0, "http/error-timeout"), 3.0);
    assert!(r.get(0, "http/latency-min") >= 150.0);
    assert_eq!(state.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_without_tls_uses_prior_knowledge() {
    let (base, state) = serve().await;
    let r = run(&format!(
        "url: {base}/every3\nnumRequests: 12\nqps: 0\nhttp2: true"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/request-count"), 12.0);
    assert_eq!(r.get(0, "http/error-count"), 4.0);
    let seen = state.seen.lock().unwrap();
    assert_eq!(seen.len(), 12);
    assert!(seen.iter().all(|s| s.version == Version::HTTP_2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_file_h1_and_h2_and_failures_of_kind_tls() {
    let (base, pem, state) = serve_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let r = run(&format!(
        "url: {base}/ok\nnumRequests: 4\nqps: 0\ncaFile: {}",
        ca.display()
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/status-200"), 4.0);
    let r = run(&format!(
        "url: {base}/ok\nnumRequests: 4\nqps: 0\nhttp2: true\ncaFile: {}",
        ca.display()
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/status-200"), 4.0);
    {
        let seen = state.seen.lock().unwrap();
        assert_eq!(seen.len(), 8);
        assert_eq!(
            seen.iter()
                .filter(|s| s.version == Version::HTTP_11)
                .count(),
            4
        );
        assert_eq!(
            seen.iter().filter(|s| s.version == Version::HTTP_2).count(),
            4
        );
    }
    let r = run(&format!(
        "url: {base}/ok\nnumRequests: 3\nqps: 0\ninsecureSkipVerify: true"
    ))
    .await;
    assert_eq!(r.get(0, "http/status-200"), 3.0);
    // the self-signed certificate is not trusted without the CA file
    let r = run(&format!("url: {base}/ok\nnumRequests: 3\nqps: 0")).await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/error-tls"), 3.0);
    assert_eq!(state.count(), 11);
    // a CA file that is not PEM
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let r = run(&format!(
        "url: {base}/ok\nnumRequests: 3\ncaFile: {}",
        bad.display()
    ))
    .await;
    match r.result {
        Err(TaskError::Invalid { field, .. }) => assert_eq!(field, "caFile"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_fails_before_any_request() {
    let (base, state) = serve().await;
    let r = run(&format!("url: {base}/ok\nnumRequests: 0")).await;
    match r.result {
        Err(TaskError::Invalid { field, .. }) => assert_eq!(field, "numRequests"),
        other => panic!("{other:?}"),
    }
    let r = run(&format!("endpoints: {{a: {{url: '{base}/ok'}}, b: {{}}}}")).await;
    match r.result {
        Err(TaskError::Invalid { field, .. }) => assert_eq!(field, "endpoints.b.url"),
        other => panic!("{other:?}"),
    }
    assert_eq!(state.count(), 0);
}

// ---- HTTP/1.1 framing and connection handling, against a raw TCP server -----------------

/// What the raw server does with each request.
#[derive(Clone, Copy)]
enum Raw {
    /// A chunked 200 (with a trailer), kept alive.
    Chunked,
    /// A kept-alive 200, then the server closes the connection after 30 ms of idleness
    /// without saying so (a keep-alive timeout).
    IdleClose,
    /// Headers promising 100 bytes, 10 bytes, then the connection closes.
    Truncated,
}

/// A raw HTTP/1.1 server; returns its URL, the number of connections accepted and the
/// requests read (raw bytes of each head).
async fn serve_raw(mode: Raw) -> (String, Arc<AtomicU64>, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicU64::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (c, h) = (conns.clone(), heads.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // one request head (GET, no body)
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let read = match mode {
                            Raw::IdleClose if !buf.is_empty() || h.lock().unwrap().is_empty() => {
                                stream.read(&mut chunk).await
                            }
                            Raw::IdleClose => {
                                match tokio::time::timeout(
                                    Duration::from_millis(30),
                                    stream.read(&mut chunk),
                                )
                                .await
                                {
                                    Ok(r) => r,
                                    Err(_) => return, // idle: close without a word
                                }
                            }
                            _ => stream.read(&mut chunk).await,
                        };
                        match read {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    h.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..end]).into_owned());
                    buf.drain(..end);
                    let reply: &[u8] = match mode {
                        Raw::Chunked => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\nx-checksum: 1\r\n\r\n",
                        Raw::IdleClose => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                        Raw::Truncated => b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
                    };
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                    if matches!(mode, Raw::Truncated) {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), conns, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_responses_keep_the_connection_and_the_request_is_exact() {
    let (url, conns, heads) = serve_raw(Raw::Chunked).await;
    let port = url.rsplit(':').next().unwrap().to_string();
    let r = run(&format!(
        "url: {url}/a/b?q=1\nnumRequests: 40\nconnections: 2\nqps: 0\nheaders:\n  X-Test: yes\n"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/request-count"), 40.0);
    assert_eq!(r.get(0, "http/error-count"), 0.0);
    assert_eq!(r.get(0, "http/status-200"), 40.0);
    // persistent connections: one per worker
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 40);
    assert_eq!(
        heads[0],
        format!("GET /a/b?q=1 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-test: yes\r\n\r\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_closed_while_idle_is_replaced_without_an_error() {
    let (url, conns, heads) = serve_raw(Raw::IdleClose).await;
    // 5 req/s on one connection: 200 ms idle between requests, the server closes after 30
    let r = run(&format!(
        "url: {url}/\nnumRequests: 5\nconnections: 1\nqps: 5\n"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/request-count"), 5.0);
    assert_eq!(r.get(0, "http/error-count"), 0.0, "{:#?}", r.insights);
    assert_eq!(r.get(0, "http/status-200"), 5.0);
    assert_eq!(heads.lock().unwrap().len(), 5);
    // every request after the first found its connection closed and opened a new one
    assert_eq!(conns.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_short_is_a_reset() {
    let (url, conns, heads) = serve_raw(Raw::Truncated).await;
    let r = run(&format!(
        "url: {url}/\nnumRequests: 6\nconnections: 2\nqps: 0\n"
    ))
    .await;
    r.result.as_ref().unwrap();
    assert_eq!(r.get(0, "http/request-count"), 6.0);
    assert_eq!(r.get(0, "http/error-count"), 6.0);
    assert_eq!(r.get(0, "http/error-reset"), 6.0);
    // no retry of a response that had started: one request, one connection each
    assert_eq!(heads.lock().unwrap().len(), 6);
    assert_eq!(conns.load(Ordering::SeqCst), 6);
}
