//! HTTP routing and the REST verbs of the test API server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};

use super::auth::{self, Attributes};
use super::patch;
use super::resources::{self, ResourceDef};
use super::store::{ApiError, Identity, ObjKey, RequestLogEntry};
use super::Cluster;

/// Response body type.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

/// Percent-decodes a query component (`+` is a space, as Go encodes queries).
pub fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// A request for a resource.
#[derive(Debug, Clone)]
struct ResReq {
    def: ResourceDef,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    NonResource(Value),
    Resource(Box<ResReq>),
    Admin(Vec<String>),
    NotFound,
}

fn not_found_generic() -> ApiError {
    ApiError {
        details: Some(json!({})),
        ..ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
}

fn route(cluster: &Cluster, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let defs = cluster.store.resources();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Route::NonResource(resources::version()),
        ["healthz"] | ["livez"] | ["readyz"] => return Route::NonResource(json!("ok")),
        ["api"] => return Route::NonResource(resources::core_versions(&cluster.host_port())),
        ["apis"] => return Route::NonResource(resources::group_list(&defs)),
        ["test-cluster", rest @ ..] => {
            return Route::Admin(rest.iter().map(|s| s.to_string()).collect())
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g] => {
            return match resources::api_group(&defs, g) {
                Some(v) => Route::NonResource(v),
                None => Route::NotFound,
            }
        }
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::NotFound,
    };
    if rest.is_empty() {
        return match resources::resource_list(&defs, group, version) {
            Some(v) => Route::NonResource(v),
            None => Route::NotFound,
        };
    }
    let find = |plural: &str| {
        defs.iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    };
    let is_plural = |p: &str| find(p).is_some_and(|d| d.namespaced);
    let (namespace, rest): (Option<String>, &[&str]) = match rest {
        ["namespaces", ns, r0, tail @ ..] if is_plural(r0) => {
            let mut v = vec![*r0];
            v.extend_from_slice(tail);
            return build(find(r0), Some(ns.to_string()), &v);
        }
        _ => (None, rest),
    };
    build(find(rest[0]), namespace, rest)
}

fn build(def: Option<ResourceDef>, namespace: Option<String>, rest: &[&str]) -> Route {
    let Some(def) = def else {
        return Route::NotFound;
    };
    let name = rest.get(1).map(|s| s.to_string());
    let sub = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 {
        return Route::NotFound;
    }
    if let Some(s) = &sub {
        if !def.subresources.contains(s) {
            return Route::NotFound;
        }
    }
    if namespace.is_none() && def.namespaced && name.is_some() {
        // /api/v1/pods/NAME is not a valid path.
        return Route::NotFound;
    }
    Route::Resource(Box::new(ResReq {
        def,
        namespace,
        name,
        sub,
    }))
}

fn verb_of(method: &Method, r: &ResReq, q: &HashMap<String, String>) -> &'static str {
    let watch = q.get("watch").is_some_and(|v| v == "true" || v == "1");
    match (method.as_str(), r.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// Handles one HTTP request. `insecure`: it came in on the plain-HTTP listener, where a
/// request without credentials is the admin (like kube-apiserver's old insecure port;
/// Go clients do not send bearer tokens over plain HTTP).
pub async fn handle(
    cluster: Arc<Cluster>,
    req: Request<Incoming>,
    insecure: bool,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| path.clone());
    let q = parse_query(req.uri().query());
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let identity = match &token {
        Some(t) => match cluster.store.identity(t) {
            Some(id) => Some(id),
            None => {
                return error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"));
            }
        },
        None if insecure => Some(Identity::admin()),
        None => None,
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let mut entry = RequestLogEntry {
        method: method.to_string(),
        path: path_q,
        user: identity
            .as_ref()
            .map(|i| i.user.clone())
            .unwrap_or_else(|| "system:anonymous".into()),
        verb: String::new(),
        api_group: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        allowed: true,
        code: 200,
    };
    let resp = match route(&cluster, &path) {
        Route::NotFound => error_response(&not_found_generic()),
        Route::NonResource(v) => {
            entry.verb = method.as_str().to_lowercase();
            let public = matches!(
                path.as_str(),
                "/version" | "/healthz" | "/livez" | "/readyz"
            );
            if identity.is_none() && !public {
                entry.allowed = false;
                error_response(&ApiError::new(
                    403,
                    "Forbidden",
                    format!("forbidden: User \"system:anonymous\" cannot get path \"{path}\""),
                ))
            } else if v.is_string() {
                let mut r = Response::new(full("ok"));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain"),
                );
                r
            } else {
                json_response(200, &v)
            }
        }
        Route::Admin(segs) => {
            entry.verb = "admin".into();
            match &identity {
                Some(id) if id.is_admin() => admin(&cluster, &method, &segs).await,
                _ => {
                    entry.allowed = false;
                    error_response(&ApiError::new(
                        403,
                        "Forbidden",
                        "the test-cluster endpoints are for the admin identity only",
                    ))
                }
            }
        }
        Route::Resource(r) => {
            let verb = verb_of(&method, &r, &q);
            let mut attrs = Attributes {
                verb: verb.to_string(),
                group: r.def.group.clone(),
                resource: r.def.plural.clone(),
                subresource: r.sub.clone().unwrap_or_default(),
                namespace: r.namespace.clone().unwrap_or_default(),
                name: r.name.clone().unwrap_or_default(),
            };
            if r.def.plural == "namespaces" {
                attrs.namespace = attrs.name.clone();
            }
            if attrs.name.is_empty() && (verb == "list" || verb == "watch") {
                if let Some(fs) = q.get("fieldSelector") {
                    if let Ok(f) = super::selector::FieldSelector::parse(fs) {
                        attrs.name = f.name().unwrap_or("").to_string();
                    }
                }
            }
            entry.verb = verb.to_string();
            entry.api_group = attrs.group.clone();
            entry.resource = attrs.resource.clone();
            entry.subresource = attrs.subresource.clone();
            entry.namespace = attrs.namespace.clone();
            entry.name = attrs.name.clone();
            match &identity {
                None => {
                    entry.allowed = false;
                    let anon = Identity {
                        user: "system:anonymous".into(),
                        groups: vec!["system:unauthenticated".into()],
                    };
                    error_response(&forbidden(&anon, &attrs))
                }
                Some(id) if !auth::authorize(&cluster.store, id, &attrs) => {
                    entry.allowed = false;
                    error_response(&forbidden(id, &attrs))
                }
                Some(_) => {
                    let body = match req.into_body().collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) => {
                            let resp = error_response(&ApiError::bad_request(format!(
                                "reading the request body: {e}"
                            )));
                            entry.code = resp.status().as_u16();
                            cluster.store.log_request(entry);
                            return resp;
                        }
                    };
                    match serve(&cluster, verb, &r, &q, &ctype, &accept, body).await {
                        Ok(resp) => resp,
                        Err(e) => error_response(&e),
                    }
                }
            }
        }
    };
    entry.code = resp.status().as_u16();
    cluster.store.log_request(entry);
    resp
}

fn forbidden(id: &Identity, a: &Attributes) -> ApiError {
    let mut details = json!({"kind": a.resource});
    if !a.name.is_empty() {
        details["name"] = json!(a.name);
    }
    if !a.group.is_empty() {
        details["group"] = json!(a.group);
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(403, "Forbidden", auth::forbidden_message(id, a))
    }
}

async fn admin(cluster: &Arc<Cluster>, method: &Method, segs: &[String]) -> Response<Body> {
    let segs: Vec<&str> = segs.iter().map(|s| s.as_str()).collect();
    let result = match (method.as_str(), segs.as_slice()) {
        ("GET", ["requests"]) => Ok(json!(cluster.store.request_log())),
        ("POST", ["mark-available", ns, name]) => cluster
            .mark_available(ns, name)
            .map(|o| json!({"name": o["metadata"]["name"]})),
        ("POST", ["trigger-cronjob", ns, name]) => {
            cluster.trigger_cronjob(ns, name).map(|j| json!({"job": j}))
        }
        ("POST", ["sa-kubeconfig", ns, sa]) => match cluster.store.token_for(ns, sa) {
            Some(token) => {
                let user = format!("system:serviceaccount:{ns}:{sa}");
                let path = cluster
                    .config
                    .state_dir
                    .join(format!("kubeconfig-{ns}-{sa}"));
                match std::fs::write(&path, cluster.kubeconfig(&token, &user, ns, true)) {
                    Ok(()) => Ok(json!({"path": path.display().to_string()})),
                    Err(e) => Err(ApiError::new(
                        500,
                        "InternalError",
                        format!("writing {}: {e}", path.display()),
                    )),
                }
            }
            None => Err(ApiError::new(
                404,
                "NotFound",
                format!("serviceaccounts \"{sa}\" not found in namespace \"{ns}\""),
            )),
        },
        _ => Err(not_found_generic()),
    };
    match result {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

/// Decodes a request body by content type into JSON.
fn decode_body(def: &ResourceDef, ctype: &str, body: &[u8]) -> Result<Value, ApiError> {
    let ct = ctype.split(';').next().unwrap_or("").trim();
    match ct {
        "application/vnd.kubernetes.protobuf" => super::proto::decode(&def.plural, body),
        "application/yaml" | "application/apply-patch+yaml" => {
            let v: serde_yaml::Value = serde_yaml::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
            })?;
            serde_json::to_value(v).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
            })
        }
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}",
                def.kind
            ))
        }),
    }
}

fn list_object(def: &ResourceDef, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|a| a.contains("as=Table"))
}

fn table(def: &ResourceDef, items: &[Value], rv: u64, q: &HashMap<String, String>) -> Value {
    let include_object = q.get("includeObject").map(|s| s.as_str()) == Some("Object");
    let extra = match def.plural.as_str() {
        "pods" => Some(("Status", "/status/phase")),
        "namespaces" => Some(("Status", "/status/phase")),
        "secrets" => Some(("Type", "/type")),
        _ => None,
    };
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    if let Some((n, _)) = extra {
        cols.push(
            json!({"name": n, "type": "string", "format": "", "description": n, "priority": 0}),
        );
    }
    cols.push(json!({"name": "Created At", "type": "date", "format": "", "description": "CreationTimestamp", "priority": 0}));
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            if let Some((_, p)) = extra {
                cells.push(o.pointer(p).cloned().unwrap_or(json!("")));
            }
            cells.push(o["metadata"]["creationTimestamp"].clone());
            let object = if include_object {
                o.clone()
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": cols,
        "rows": rows,
    })
}

fn table_or(def: &ResourceDef, obj: Value, accept: &str, q: &HashMap<String, String>) -> Value {
    if wants_table(accept) {
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        table(def, &[obj], rv, q)
    } else {
        obj
    }
}

async fn serve(
    cluster: &Arc<Cluster>,
    verb: &str,
    r: &ResReq,
    q: &HashMap<String, String>,
    ctype: &str,
    accept: &str,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let def = &r.def;
    let ns = r.namespace.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let sub = r.sub.as_deref();
    match verb {
        "get" => {
            if sub == Some("log") {
                return pod_log(cluster, def, &ns, &name, q).await;
            }
            let obj = cluster.store.get(def, &ns, &name)?;
            Ok(json_response(200, &table_or(def, obj, accept, q)))
        }
        "list" => {
            let (items, rv) = cluster.store.list(def, r.namespace.as_deref());
            let items = filter(items, q)?;
            if wants_table(accept) {
                return Ok(json_response(200, &table(def, &items, rv, q)));
            }
            Ok(json_response(200, &list_object(def, items, rv)))
        }
        "watch" => watch(cluster, def, r.namespace.clone(), q),
        "create" => {
            if sub == Some("token") {
                return token_request(cluster, &ns, &name, &body);
            }
            if sub.is_some() {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ));
            }
            let obj = decode_body(def, ctype, &body)?;
            if dry_run(q) {
                super::store::check_type(def, &obj)?;
                return Ok(json_response(201, &obj));
            }
            let created = cluster.create(def, &ns, obj)?;
            Ok(json_response(201, &created))
        }
        "update" => {
            let obj = decode_body(def, ctype, &body)?;
            if dry_run(q) {
                return Ok(json_response(200, &obj));
            }
            let updated = cluster
                .store
                .update(def, &ns, &name, obj, sub == Some("status"))?;
            Ok(json_response(200, &updated))
        }
        "patch" => {
            let (obj, created) = patch_object(cluster, def, &ns, &name, sub, q, ctype, &body)?;
            Ok(json_response(if created { 201 } else { 200 }, &obj))
        }
        "delete" => {
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(&body).unwrap_or(json!({}))
            };
            if let Some(want) = opts["preconditions"]["resourceVersion"].as_str() {
                let cur = cluster.store.get(def, &ns, &name)?;
                if cur["metadata"]["resourceVersion"].as_str() != Some(want) {
                    return Err(ApiError::conflict(def, &name));
                }
            }
            if def.plural == "namespaces"
                && ["default", "kube-system", "kube-public"].contains(&name.as_str())
            {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                    ),
                ));
            }
            let policy = q
                .get("propagationPolicy")
                .cloned()
                .or_else(|| opts["propagationPolicy"].as_str().map(String::from));
            let orphan = q.get("orphanDependents").is_some_and(|v| v == "true")
                || opts["orphanDependents"].as_bool() == Some(true);
            let deleted = cluster.delete(def, &ns, &name, policy.as_deref(), orphan)?;
            Ok(json_response(200, &deleted))
        }
        "deletecollection" => {
            let (items, rv) = cluster.store.list(def, r.namespace.as_deref());
            let items = filter(items, q)?;
            let policy = q.get("propagationPolicy").cloned();
            let mut deleted = Vec::new();
            for it in items {
                let n = it["metadata"]["name"].as_str().unwrap_or("").to_string();
                let ins = it["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if let Ok(d) = cluster.delete(def, &ins, &n, policy.as_deref(), false) {
                    deleted.push(d);
                }
            }
            Ok(json_response(200, &list_object(def, deleted, rv)))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

fn filter(items: Vec<Value>, q: &HashMap<String, String>) -> Result<Vec<Value>, ApiError> {
    let ls = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(super::selector::LabelSelector::parse(s).map_err(ApiError::bad_request)?),
        None => None,
    };
    let fs = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(super::selector::FieldSelector::parse(s).map_err(ApiError::bad_request)?),
        None => None,
    };
    Ok(items
        .into_iter()
        .filter(|o| {
            ls.as_ref()
                .is_none_or(|l| l.matches(o["metadata"].get("labels")))
        })
        .filter(|o| fs.as_ref().is_none_or(|f| f.matches(o)))
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    cluster: &Arc<Cluster>,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    q: &HashMap<String, String>,
    ctype: &str,
    body: &[u8],
) -> Result<(Value, bool), ApiError> {
    let ct = ctype.split(';').next().unwrap_or("").trim().to_string();
    let status_only = sub == Some("status");
    match ct.as_str() {
        "application/apply-patch+yaml" => {
            let manager = q.get("fieldManager").cloned().unwrap_or_default();
            if manager.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    name,
                    "fieldManager",
                    "Required value: is required for apply patch",
                ));
            }
            let cfg = decode_body(def, &ct, body)?;
            super::store::check_type(def, &cfg)?;
            if let Some(n) = cfg["metadata"]["name"].as_str() {
                if n != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
            }
            let key = ObjKey::new(def, ns, name);
            let manager_key = format!("{manager}/{}", sub.unwrap_or(""));
            match cluster.store.get(def, ns, name) {
                Err(e) if e.code == 404 => {
                    if status_only {
                        return Err(e);
                    }
                    let mut obj = cfg.clone();
                    obj["metadata"]["name"] = json!(name);
                    let mut created = cluster.create(def, ns, obj)?;
                    cluster.store.set_applied(key, &manager_key, cfg);
                    created = set_managed(cluster, def, ns, name, &manager, status_only)
                        .unwrap_or(created);
                    Ok((created, true))
                }
                Err(e) => Err(e),
                Ok(mut cur) => {
                    if let Some(last) = cluster.store.last_applied(&key, &manager_key) {
                        patch::prune_removed(&mut cur, &last, &cfg);
                    }
                    let mut cfg_no_rv = cfg.clone();
                    let precondition = cfg["metadata"]["resourceVersion"].clone();
                    if let Some(m) = cfg_no_rv["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                    }
                    patch::strategic_merge(&mut cur, &cfg_no_rv);
                    if precondition.is_string() {
                        cur["metadata"]["resourceVersion"] = precondition;
                    } else if let Some(m) = cur["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                    }
                    let updated = cluster.store.update(def, ns, name, cur, status_only)?;
                    cluster.store.set_applied(key, &manager_key, cfg);
                    let updated = set_managed(cluster, def, ns, name, &manager, status_only)
                        .unwrap_or(updated);
                    Ok((updated, false))
                }
            }
        }
        "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json" => {
            let p: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding patch: {e}"))
            })?;
            // A resourceVersion the patch sets is a precondition (409 when the object moved
            // on). Without one, the patch applies to the latest object: like kube-apiserver's
            // GuaranteedUpdate, a write that lands between our read and our update makes us
            // read again and re-apply, so concurrent patches never lose each other's changes.
            let explicit_rv = match ct.as_str() {
                "application/json-patch+json" => p.as_array().is_some_and(|ops| {
                    ops.iter()
                        .any(|op| op["path"] == "/metadata/resourceVersion")
                }),
                _ => p["metadata"]["resourceVersion"].is_string(),
            };
            loop {
                let cur = cluster.store.get(def, ns, name)?;
                let rv = cur["metadata"]["resourceVersion"].clone();
                let mut new = cur.clone();
                match ct.as_str() {
                    "application/json-patch+json" => {
                        let jp: json_patch::Patch =
                            serde_json::from_value(p.clone()).map_err(|e| {
                                ApiError::bad_request(format!("error decoding JSON patch: {e}"))
                            })?;
                        json_patch::patch(&mut new, &jp).map_err(|e| {
                            ApiError::new(
                                422,
                                "Invalid",
                                format!("the server rejected our request due to an error in our request: {e}"),
                            )
                        })?;
                    }
                    "application/merge-patch+json" => patch::merge_patch(&mut new, &p),
                    _ => patch::strategic_merge(&mut new, &p),
                }
                if !explicit_rv {
                    // precondition: the version this patch was applied to
                    new["metadata"]["resourceVersion"] = rv;
                }
                if dry_run(q) {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                    }
                    return Ok((new, false));
                }
                match cluster.store.update(def, ns, name, new, status_only) {
                    Err(e) if !explicit_rv && e.code == 409 => continue,
                    r => return Ok((r?, false)),
                }
            }
        }
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct})"),
        )),
    }
}

/// Records a (simplified) managedFields entry for an apply; does not bump resourceVersion.
fn set_managed(
    cluster: &Arc<Cluster>,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    manager: &str,
    status_only: bool,
) -> Option<Value> {
    let key = ObjKey::new(def, ns, name);
    let mut st = cluster.store.lock();
    let obj = st.objects.get_mut(&key)?;
    let mut entries: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let subresource = if status_only { "status" } else { "" };
    entries.retain(|e| {
        !(e["manager"].as_str() == Some(manager)
            && e["operation"].as_str() == Some("Apply")
            && e["subresource"].as_str().unwrap_or("") == subresource)
    });
    let mut e = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": def.api_version(),
        "time": super::store::now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    });
    if status_only {
        e["subresource"] = json!("status");
    }
    entries.push(e);
    obj["metadata"]["managedFields"] = json!(entries);
    Some(obj.clone())
}

fn token_request(
    cluster: &Arc<Cluster>,
    ns: &str,
    sa: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let def = cluster
        .store
        .resource("", "serviceaccounts")
        .ok_or_else(not_found_generic)?;
    cluster.store.get(&def, ns, sa)?;
    let mut req: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let token = cluster.issue_token(ns, sa);
    req["kind"] = json!("TokenRequest");
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["status"] = json!({
        "token": token,
        "expirationTimestamp": (chrono::Utc::now() + chrono::Duration::hours(24)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    Ok(json_response(201, &req))
}

async fn pod_log(
    cluster: &Arc<Cluster>,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    cluster.store.get(def, ns, name)?;
    let follow = q.get("follow").is_some_and(|v| v == "true");
    let tail: Option<usize> = q.get("tailLines").and_then(|t| t.parse().ok());
    let text = |bytes: Vec<u8>| -> Vec<u8> {
        match tail {
            Some(n) => {
                let s = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = s.lines().collect();
                let start = lines.len().saturating_sub(n);
                let mut out = lines[start..].join("\n");
                if !out.is_empty() {
                    out.push('\n');
                }
                out.into_bytes()
            }
            None => bytes,
        }
    };
    let ctype = http::HeaderValue::from_static("text/plain");
    if !follow {
        let mut r = Response::new(full(text(cluster.pod_log(ns, name))));
        r.headers_mut().insert(header::CONTENT_TYPE, ctype);
        return Ok(r);
    }
    let cluster = cluster.clone();
    let (ns, name, def) = (ns.to_string(), name.to_string(), def.clone());
    let stream = futures::stream::unfold(0usize, move |sent| {
        let cluster = cluster.clone();
        let (ns, name, def) = (ns.clone(), name.clone(), def.clone());
        async move {
            loop {
                let all = cluster.pod_log(&ns, &name);
                if all.len() > sent {
                    let chunk = Bytes::copy_from_slice(&all[sent..]);
                    return Some((Ok::<_, Infallible>(Frame::data(chunk)), all.len()));
                }
                let done = match cluster.store.get(&def, &ns, &name) {
                    Ok(p) => matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")),
                    Err(_) => true,
                };
                if done {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(header::CONTENT_TYPE, ctype);
    Ok(r)
}

fn event_line(etype: &str, obj: &Value) -> Bytes {
    let mut s = json!({"type": etype, "object": obj}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn watch(
    cluster: &Arc<Cluster>,
    def: &ResourceDef,
    ns: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let ls = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(super::selector::LabelSelector::parse(s).map_err(ApiError::bad_request)?),
        None => None,
    };
    let fs = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(super::selector::FieldSelector::parse(s).map_err(ApiError::bad_request)?),
        None => None,
    };
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    if send_initial && q.get("resourceVersionMatch").map(|s| s.as_str()) != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            def,
            "",
            "resourceVersionMatch",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let after: Option<u64> = if send_initial || rv_param.is_empty() || rv_param == "0" {
        None
    } else {
        match rv_param.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid resource version: {rv_param}"
                )))
            }
        }
    };
    let (rx, backlog, current, now_rv) =
        cluster.store.subscribe_from(after, &def.group, &def.plural);
    let matches = {
        let ns = ns.clone();
        move |o: &Value| {
            (ns.is_none() || o["metadata"]["namespace"].as_str() == ns.as_deref())
                && ls
                    .as_ref()
                    .is_none_or(|l| l.matches(o["metadata"].get("labels")))
                && fs.as_ref().is_none_or(|f| f.matches(o))
        }
    };
    let mut first: Vec<Bytes> = Vec::new();
    if after.is_none() {
        for o in current.iter().filter(|o| matches(o)) {
            first.push(event_line("ADDED", o));
        }
        if send_initial {
            let bm = json!({
                "kind": def.kind,
                "apiVersion": def.api_version(),
                "metadata": {
                    "resourceVersion": now_rv.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            });
            first.push(event_line("BOOKMARK", &bm));
        }
    } else {
        for e in backlog.iter().filter(|e| matches(&e.object)) {
            first.push(event_line(e.etype, &e.object));
        }
    }
    let last_sent = after.unwrap_or(now_rv);
    let initial = futures::stream::iter(
        first
            .into_iter()
            .map(|b| Ok::<_, Infallible>(Frame::data(b))),
    );
    let (group, plural) = (def.group.clone(), def.plural.clone());
    let live = futures::stream::unfold((rx, last_sent), move |(mut rx, last)| {
        let matches = matches.clone();
        let (group, plural) = (group.clone(), plural.clone());
        async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        if e.rv <= last {
                            continue;
                        }
                        if e.key.group == group && e.key.plural == plural && matches(&e.object) {
                            return Some((
                                Ok::<_, Infallible>(Frame::data(event_line(e.etype, &e.object))),
                                (rx, e.rv),
                            ));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return None,
                    Err(_) => return None,
                }
            }
        }
    });
    let deadline = tokio::time::sleep(Duration::from_secs(timeout));
    let stream = initial.chain(live).take_until(deadline);
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Base64 helper for tests and the controllers.
pub fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_never_panics() {
        assert_eq!(
            percent_decode("app%3Dweb%2Ctier+in+%28a%29"),
            "app=web,tier in (a)"
        );
        assert_eq!(percent_decode("%é%4"), "%é%4");
        assert_eq!(percent_decode("%"), "%");
    }
}
