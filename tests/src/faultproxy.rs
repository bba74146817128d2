//! A fault-injecting reverse proxy in front of any Kubernetes API server: it listens on
//! plain HTTP on 127.0.0.1 and forwards to the upstream named by a kubeconfig (TLS, the
//! kubeconfig's credentials: token, client certificate, exec), so a client under test
//! talks to the proxy as it would to the API server, and the proxy decides, per request,
//! to pass it through or to fail it the way networks and API servers fail.
//!
//! ```no_run
//! # async fn f(kubeconfig: &std::path::Path) -> anyhow::Result<()> {
//! use iter8_tests::faultproxy::{Fault, FaultProxy, Rule};
//! let proxy = FaultProxy::start(kubeconfig).await?;
//! proxy.add(Rule::new(Fault::Hang).method("GET").path("/secrets/exp").times(2));
//! proxy.add(Rule::new(Fault::TooManyRequests { retry_after: 1 }).method("PATCH").times(1));
//! let kc = proxy.kubeconfig_path();          // point the client under test here
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

/// What the proxy does with a request a rule matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forward it and answer with the upstream's response (a rule that only counts).
    Pass,
    /// Never answer (the connection stays open until the client gives up).
    Hang,
    /// Close the connection without an answer.
    Drop,
    /// Forward it (the API server applies it), then never answer.
    ApplyThenHang,
    /// Forward it (the API server applies it), then close the connection without an answer.
    ApplyThenDrop,
    /// 429 Too Many Requests with `Retry-After: N` (header and `details.retryAfterSeconds`,
    /// as kube-apiserver sends it).
    TooManyRequests { retry_after: u32 },
    /// Answer with this status as a Kubernetes `Status` (409 Conflict, 500, 503, ...).
    Status(u16),
}

/// Which requests a fault applies to: method, a substring of the path, and the matching
/// requests' ordinal numbers (`skip` first, then `times`).
#[derive(Debug, Clone)]
pub struct Rule {
    fault: Fault,
    method: Option<String>,
    path: Option<String>,
    skip: usize,
    times: Option<usize>,
    seen: usize,
}

impl Rule {
    /// A rule applying `fault` to every request (narrow it with the builders).
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            method: None,
            path: None,
            skip: 0,
            times: None,
            seen: 0,
        }
    }

    /// Only requests with this method (`GET`, `PATCH`, ...).
    pub fn method(mut self, m: &str) -> Self {
        self.method = Some(m.to_ascii_uppercase());
        self
    }

    /// Only requests whose path contains `p`.
    pub fn path(mut self, p: &str) -> Self {
        self.path = Some(p.to_string());
        self
    }

    /// Let the first `n` matching requests through untouched.
    pub fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    /// Apply to `n` matching requests (after `skip`), then let the rest through.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self.path.as_deref().is_none_or(|p| path.contains(p))
    }

    /// Count a matching request; true when the fault applies to it.
    fn take(&mut self) -> bool {
        self.seen += 1;
        let n = self.seen;
        n > self.skip && self.times.is_none_or(|t| n <= self.skip + t)
    }
}

/// One request the proxy saw and what it did with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub fault: Fault,
    /// The upstream's status when the request was forwarded and answered.
    pub status: Option<u16>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// The proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("kubeconfig {0}: {1}")]
    Kubeconfig(String, String),
    #[error("proxy: {0}")]
    Io(#[from] std::io::Error),
}

impl FaultProxy {
    /// A proxy to the API server of `kubeconfig`'s current context, with its credentials.
    pub async fn start(kubeconfig: &Path) -> Result<FaultProxy, ProxyError> {
        let bad = |e: &dyn std::fmt::Display| {
            ProxyError::Kubeconfig(kubeconfig.display().to_string(), e.to_string())
        };
        let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| bad(&e))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(&e))?;
        // Transparent: no retries, no timeouts of its own (faults are the test's to choose).
        config.default_retry = false;
        config.read_timeout = None;
        config.write_timeout = None;
        let namespace = config.default_namespace.clone();
        let upstream = kube::Client::try_from(config).map_err(|e| bad(&e))?;

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let dir = tempfile::tempdir()?;
        let kubeconfig_path = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig_path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fault-proxy\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: fault-proxy\n  context:\n    cluster: fault-proxy\n    user: fault-proxy\n    namespace: {namespace}\ncurrent-context: fault-proxy\nusers:\n- name: fault-proxy\n  user: {{}}\n"
            ),
        )?;
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (st, upstream) = (st.clone(), upstream.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, st.clone(), upstream.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(FaultProxy {
            addr,
            state,
            _dir: dir,
            kubeconfig: kubeconfig_path,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig that reaches the upstream through the proxy (no credentials: the
    /// proxy adds the upstream kubeconfig's).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client of the upstream through the proxy.
    pub async fn client(&self) -> Result<kube::Client, ProxyError> {
        let bad = |e: &dyn std::fmt::Display| {
            ProxyError::Kubeconfig(self.kubeconfig.display().to_string(), e.to_string())
        };
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| bad(&e))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(&e))?;
        kube::Client::try_from(config).map_err(|e| bad(&e))
    }

    /// Add a rule; the first rule (in order added) that matches a request and still
    /// applies decides its fate; no rule: pass through.
    pub fn add(&self, rule: Rule) {
        self.with(|s| s.rules.push(rule));
    }

    /// Remove every rule (everything passes through).
    pub fn clear(&self) {
        self.with(|s| s.rules.clear());
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut g = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }
}

type ProxyBody = Full<Bytes>;

fn status_response(code: u16, retry_after: Option<u32>) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = match code {
        403 => "Forbidden",
        409 => "Conflict",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    };
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected by the fault proxy: {code} {reason}"),
        "reason": reason, "code": code,
    });
    if let Some(s) = retry_after {
        body["details"] = json!({ "retryAfterSeconds": s });
    }
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(s) = retry_after {
        b = b.header("retry-after", s.to_string());
    }
    b.body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the fault proxy")]
struct Dropped;

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    upstream: kube::Client,
) -> Result<Response<ProxyBody>, Dropped> {
    let method = req.method().as_str().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let fault = {
        let mut g = match state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut fault = Fault::Pass;
        for rule in g.rules.iter_mut() {
            if rule.matches(&method, &path) && rule.take() {
                fault = rule.fault.clone();
                break;
            }
        }
        fault
    };
    let record = |status: Option<u16>| {
        let mut g = match state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            fault: fault.clone(),
            status,
        });
    };
    match fault {
        Fault::Hang => {
            record(None);
            std::future::pending::<()>().await;
            Err(Dropped)
        }
        Fault::Drop => {
            record(None);
            Err(Dropped)
        }
        Fault::TooManyRequests { retry_after } => {
            record(Some(429));
            Ok(status_response(429, Some(retry_after)))
        }
        Fault::Status(code) => {
            record(Some(code));
            Ok(status_response(code, None))
        }
        Fault::Pass | Fault::ApplyThenHang | Fault::ApplyThenDrop => {
            let response = forward(req, &upstream).await;
            record(response.as_ref().map(|r| r.status().as_u16()).ok());
            match fault {
                Fault::ApplyThenHang => {
                    std::future::pending::<()>().await;
                    Err(Dropped)
                }
                Fault::ApplyThenDrop => Err(Dropped),
                _ => Ok(response.unwrap_or_else(|e| {
                    let mut r = status_response(502, None);
                    *r.body_mut() = Full::new(Bytes::from(format!("fault proxy: upstream: {e}")));
                    r
                })),
            }
        }
    }
}

async fn forward(
    req: Request<Incoming>,
    upstream: &kube::Client,
) -> Result<Response<ProxyBody>, String> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut out = http::Request::builder().method(parts.method).uri(path);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "authorization" | "content-length" | "connection" | "transfer-encoding"
        ) {
            out = out.header(name, value);
        }
    }
    let out = out
        .body(kube::client::Body::from(bytes.to_vec()))
        .map_err(|e| e.to_string())?;
    let res = upstream.send(out).await.map_err(|e| e.to_string())?;
    let (parts, body) = res.into_parts();
    let bytes = body.collect_bytes().await.map_err(|e| e.to_string())?;
    let mut b = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            b = b.header(name, value);
        }
    }
    b.body(Full::new(bytes)).map_err(|e| e.to_string())
}
