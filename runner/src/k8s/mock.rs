//! A tiny in-process Kubernetes API for unit tests (127.0.0.1, ephemeral port): GET of an
//! object or a collection (with `labelSelector` equality terms), merge PATCH with the
//! `metadata.resourceVersion` precondition (409 on mismatch), pod logs, injected faults.
//! The full test API server is in `tests/`; this is just enough for one module's tests.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// What the mock holds and did.
#[derive(Default)]
pub(crate) struct State {
    /// Object path (e.g. `/api/v1/namespaces/ns/secrets/name`) -> object.
    pub objects: BTreeMap<String, Value>,
    /// Pod log path (`.../pods/<name>/log`) -> text.
    pub logs: BTreeMap<String, String>,
    /// Status codes to answer the next requests with (one each), before anything else.
    pub faults: VecDeque<u16>,
    /// Paths (prefixes) answered with 403 Forbidden.
    pub forbidden: Vec<String>,
    /// Before each of the next N PATCHes, another writer changes the object (so the
    /// resourceVersion precondition fails with 409).
    pub concurrent_writes: usize,
    /// Every request: (method, path and query).
    pub requests: Vec<(String, String)>,
    rv: u64,
}

impl State {
    /// Store an object at `path`, giving it a fresh resourceVersion.
    pub fn put(&mut self, path: &str, mut obj: Value) {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(path.to_string(), obj);
    }

    fn bump(&mut self, path: &str) {
        self.rv += 1;
        let rv = self.rv.to_string();
        if let Some(o) = self.objects.get_mut(path) {
            o["metadata"]["resourceVersion"] = json!(rv);
            o["metadata"]["annotations"]["touched-by"] = json!("someone-else");
        }
    }
}

pub(crate) struct MockApi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockApi {
    pub async fn start() -> MockApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockApi { addr, state, task }
    }

    /// A kube client talking to this mock.
    pub fn client(&self) -> kube::Client {
        let uri: http::Uri = format!("http://{}", self.addr).parse().expect("uri");
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        config.default_retry = false; // as crate::k8s::config sets it
        kube::Client::try_from(config).expect("client")
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("lock"))
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn ok(body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/")
        })
    })
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut st = state.lock().expect("lock");
    st.requests
        .push((method.clone(), format!("{path}?{query}")));
    if let Some(code) = st.faults.pop_front() {
        return Ok(status(code, "InternalError", "injected fault"));
    }
    if st.forbidden.iter().any(|p| path.starts_with(p.as_str())) {
        return Ok(status(
            403,
            "Forbidden",
            &format!(
                "{path} is forbidden: User \"system:serviceaccount:default:test\" cannot {method}"
            ),
        ));
    }
    match method.as_str() {
        "GET" => {
            if let Some(text) = st.logs.get(&path) {
                // `tailLines=N`: the last N lines, as the API server answers
                let text = match query_param(&query, "tailLines").and_then(|n| n.parse().ok()) {
                    Some(n) => {
                        let lines: Vec<&str> = text.split_inclusive('\n').collect();
                        lines[lines.len().saturating_sub(n)..].concat()
                    }
                    None => text.clone(),
                };
                return Ok(Response::builder()
                    .status(200)
                    .body(Full::new(Bytes::from(text)))
                    .expect("response"));
            }
            if let Some(obj) = st.objects.get(&path) {
                return Ok(ok(obj));
            }
            // a collection?
            let prefix = format!("{path}/");
            let selector = query_param(&query, "labelSelector").unwrap_or_default();
            let in_collection: Vec<Value> = st
                .objects
                .iter()
                .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
                .map(|(_, o)| o.clone())
                .collect();
            // `.../namespaces/<ns>/<plural>` of any API group, even when empty
            let segments: Vec<&str> = path.split('/').collect();
            let is_collection = !in_collection.is_empty()
                || path.ends_with('s')
                    && segments.len() >= 3
                    && segments[segments.len() - 3] == "namespaces";
            let items: Vec<Value> = in_collection
                .into_iter()
                .filter(|o| labels_match(o, &selector))
                .collect();
            if is_collection {
                let kind = items
                    .first()
                    .and_then(|o| o["kind"].as_str())
                    .unwrap_or("")
                    .to_string();
                return Ok(ok(&json!({
                    "kind": format!("{kind}List"), "apiVersion": "v1",
                    "metadata": {"resourceVersion": st.rv.to_string()}, "items": items,
                })));
            }
            let name = path.rsplit('/').next().unwrap_or("");
            Ok(status(404, "NotFound", &format!("\"{name}\" not found")))
        }
        "PATCH" => {
            if st.concurrent_writes > 0 {
                st.concurrent_writes -= 1;
                st.bump(&path);
            }
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return Ok(status(400, "BadRequest", "patch is not JSON"));
            };
            let current_rv = match st.objects.get(&path) {
                Some(o) => o["metadata"]["resourceVersion"].clone(),
                None => {
                    let name = path.rsplit('/').next().unwrap_or("");
                    return Ok(status(404, "NotFound", &format!("\"{name}\" not found")));
                }
            };
            if let Some(rv) = patch["metadata"].get("resourceVersion") {
                if *rv != current_rv {
                    return Ok(status(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again",
                    ));
                }
            }
            st.rv += 1;
            let rv = st.rv.to_string();
            let obj = st.objects.get_mut(&path).expect("present");
            merge(obj, &patch);
            obj["metadata"]["resourceVersion"] = json!(rv);
            Ok(ok(obj))
        }
        _ => Ok(status(405, "MethodNotAllowed", "not supported by the mock")),
    }
}
