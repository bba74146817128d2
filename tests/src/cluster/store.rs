//! The in-memory object store: objects as JSON, a global resourceVersion counter, a watch
//! event history and broadcast, service-account tokens and the request log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::patch;
use super::resources::ResourceDef;

/// An API error, rendered as a Kubernetes `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes reason (`NotFound`, `AlreadyExists`, `Conflict`, ...).
    pub reason: String,
    /// Human-readable message, worded like the real API server's.
    pub message: String,
    /// `details` of the Status, if any.
    pub details: Option<Value>,
}

/// `deployments.apps` / `secrets`: the resource name as the API server prints it.
pub fn qualified(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        def.plural.clone()
    } else {
        format!("{}.{}", def.plural, def.group)
    }
}

fn details(def: &ResourceDef, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": def.plural});
    if !def.group.is_empty() {
        d["group"] = json!(def.group);
    }
    d
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }
    /// 404 NotFound for an object.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        ApiError {
            details: Some(details(def, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", qualified(def), name),
            )
        }
    }
    /// 409 AlreadyExists.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        ApiError {
            details: Some(details(def, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", qualified(def), name),
            )
        }
    }
    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(def: &ResourceDef, name: &str) -> Self {
        ApiError {
            details: Some(details(def, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(def),
                    name
                ),
            )
        }
    }
    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    /// 422 Invalid for one field.
    pub fn invalid(def: &ResourceDef, name: &str, field: &str, message: &str) -> Self {
        ApiError {
            details: Some(json!({
                "name": name, "group": def.group, "kind": def.kind,
                "causes": [{"reason": "FieldValueRequired", "message": message, "field": field}],
            })),
            ..Self::new(
                422,
                "Invalid",
                format!(
                    "{} \"{}\" is invalid: {}: {}",
                    def.kind, name, field, message
                ),
            )
        }
    }
    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjKey {
    /// Key for an object of `def`.
    pub fn new(def: &ResourceDef, namespace: &str, name: &str) -> Self {
        ObjKey {
            group: def.group.clone(),
            plural: def.plural.clone(),
            namespace: if def.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

/// One change, as sent to watchers.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub etype: &'static str,
    /// Which object.
    pub key: ObjKey,
    /// The object after the change (before deletion for DELETED, with the new rv).
    pub object: Value,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// User name, e.g. `admin` or `system:serviceaccount:ns:sa`.
    pub user: String,
    /// Groups, e.g. `system:masters`, `system:serviceaccounts:ns`.
    pub groups: Vec<String>,
}

impl Identity {
    /// The harness / kubectl / helm identity.
    pub fn admin() -> Self {
        Identity {
            user: "admin".to_string(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }
    /// A service account identity.
    pub fn service_account(ns: &str, name: &str) -> Self {
        Identity {
            user: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        }
    }
    /// Whether this identity bypasses RBAC.
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// One entry of the request log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestLogEntry {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// User name (`system:anonymous` without a token).
    pub user: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...).
    pub verb: String,
    /// API group of the resource.
    pub api_group: String,
    /// Resource (plural), empty for non-resource paths.
    pub resource: String,
    /// Subresource, e.g. `status`, `log`.
    pub subresource: String,
    /// Namespace of the request.
    pub namespace: String,
    /// Object name, if any.
    pub name: String,
    /// Whether RBAC allowed it.
    pub allowed: bool,
    /// HTTP status code answered.
    pub code: u16,
}

/// What [`Store::subscribe_from`] returns: a receiver, the backlog after the requested
/// resourceVersion, the current objects, and the current resourceVersion.
pub type Subscription = (
    broadcast::Receiver<Arc<WatchEvent>>,
    Vec<Arc<WatchEvent>>,
    Vec<Value>,
    u64,
);

/// The mutable state behind one lock.
#[derive(Debug, Default)]
pub struct State {
    /// Served resource types.
    pub resources: Vec<ResourceDef>,
    /// Last resourceVersion handed out.
    pub rv: u64,
    /// Objects by key.
    pub objects: BTreeMap<ObjKey, Value>,
    /// Every change so far (for watches from a resourceVersion).
    pub history: Vec<Arc<WatchEvent>>,
    /// Last applied configuration per (object, field manager).
    pub applied: HashMap<(ObjKey, String), Value>,
    /// Bearer tokens.
    pub tokens: HashMap<String, Identity>,
    /// Request log.
    pub log: Vec<RequestLogEntry>,
}

/// The store shared by the HTTP server, the controllers and the harness.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

/// RFC 3339 timestamp with second precision, as Kubernetes writes them.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random lowercase suffix like Kubernetes' generateName (`bcdfghjklmnpqrstvwxz2456789`).
pub fn random_suffix(n: usize) -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    (0..n)
        .map(|i| ALPHA[bytes[i % 16] as usize % ALPHA.len()] as char)
        .collect()
}

/// A random bearer token.
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Folds Secret `stringData` into base64 `data`.
pub fn fold_string_data(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let Some(Value::Object(sd)) = m.remove("stringData") else {
        return;
    };
    let data = m
        .entry("data".to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(dm) = data.as_object_mut() {
        for (k, v) in sd {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            dm.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
    }
}

/// Whether anything outside `metadata` and `status` differs (a generation bump).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
            m.remove("apiVersion");
            m.remove("kind");
        }
        v
    };
    strip(old) != strip(new)
}

/// Metadata fields the server owns.
fn carry_server_meta(old: &Value, new: &mut Value) {
    for f in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "managedFields",
    ] {
        if let Some(v) = old["metadata"].get(f) {
            new["metadata"][f] = v.clone();
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new(super::resources::builtin())
    }
}

impl Store {
    /// A store serving `resources`.
    pub fn new(resources: Vec<ResourceDef>) -> Self {
        let (tx, _) = broadcast::channel(8192);
        Store {
            state: Mutex::new(State {
                resources,
                ..State::default()
            }),
            tx,
        }
    }

    /// Locks the state (a poisoned lock is recovered: the state stays usable for tests).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to changes (new events only).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }

    /// Subscribes while holding the lock, returning past events newer than `after` and
    /// the current objects, so that a watcher misses nothing.
    pub fn subscribe_from(&self, after: Option<u64>, group: &str, plural: &str) -> Subscription {
        let st = self.lock();
        let rx = self.tx.subscribe();
        let backlog = match after {
            Some(a) => st
                .history
                .iter()
                .filter(|e| e.rv > a && e.key.group == group && e.key.plural == plural)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let current = st
            .objects
            .iter()
            .filter(|(k, _)| k.group == group && k.plural == plural)
            .map(|(_, v)| v.clone())
            .collect();
        (rx, backlog, current, st.rv)
    }

    /// The resource definition for group + plural.
    pub fn resource(&self, group: &str, plural: &str) -> Option<ResourceDef> {
        self.lock()
            .resources
            .iter()
            .find(|d| d.group == group && d.plural == plural)
            .cloned()
    }

    /// The resource definition for apiVersion + kind.
    pub fn resource_by_kind(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        self.lock()
            .resources
            .iter()
            .find(|d| d.api_version() == api_version && d.kind == kind)
            .cloned()
    }

    /// Registers an extra resource type (replacing one with the same group and plural).
    pub fn register(&self, def: ResourceDef) {
        let mut st = self.lock();
        st.resources
            .retain(|d| !(d.group == def.group && d.plural == def.plural));
        st.resources.push(def);
    }

    /// Current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    fn emit(&self, st: &mut State, etype: &'static str, key: ObjKey, object: Value) {
        let ev = Arc::new(WatchEvent {
            rv: st.rv,
            etype,
            key,
            object,
        });
        st.history.push(ev.clone());
        // No receivers is fine.
        let _ = self.tx.send(ev);
    }

    /// Gets one object.
    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&ObjKey::new(def, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))
    }

    /// Lists objects of `def` in `ns` (all namespaces when `ns` is None).
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>) -> (Vec<Value>, u64) {
        let st = self.lock();
        let items = st
            .objects
            .iter()
            .filter(|(k, _)| {
                k.group == def.group
                    && k.plural == def.plural
                    && (ns.is_none() || !def.namespaced || ns == Some(k.namespace.as_str()))
            })
            .map(|(_, v)| v.clone())
            .collect();
        (items, st.rv)
    }

    /// Creates an object (metadata filled by the server). Checks apiVersion/kind/name.
    pub fn create(&self, def: &ResourceDef, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
        check_type(def, &obj)?;
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        if !obj.get("metadata").is_some_and(|m| m.is_object()) {
            obj["metadata"] = json!({});
        }
        let mut name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            if let Some(g) = obj["metadata"]["generateName"].as_str() {
                name = format!("{g}{}", random_suffix(5));
            }
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                def,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                def,
                &name,
                "metadata.name",
                "Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            ));
        }
        if def.namespaced {
            match obj["metadata"]["namespace"].as_str() {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {}
            }
        }
        let mut st = self.lock();
        if def.namespaced && def.plural != "namespaces" {
            let nskey = ObjKey {
                group: String::new(),
                plural: "namespaces".into(),
                namespace: String::new(),
                name: ns.to_string(),
            };
            if let Some(n) = st.objects.get(&nskey) {
                if n["metadata"]["deletionTimestamp"].is_string() {
                    return Err(ApiError {
                        details: Some(json!({"name": name, "kind": def.plural})),
                        ..ApiError::new(
                            403,
                            "Forbidden",
                            format!("{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated", qualified(def)),
                        )
                    });
                }
            }
            if !st.objects.contains_key(&nskey) {
                return Err(ApiError {
                    details: Some(json!({"name": ns, "kind": "namespaces"})),
                    ..ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
                });
            }
        }
        let key = ObjKey::new(def, ns, &name);
        if st.objects.contains_key(&key) {
            return Err(ApiError::already_exists(def, &name));
        }
        st.rv += 1;
        let m = &mut obj["metadata"];
        m["name"] = json!(name);
        if def.namespaced {
            m["namespace"] = json!(ns);
        } else if let Some(mm) = m.as_object_mut() {
            mm.remove("namespace");
        }
        m["uid"] = json!(uuid::Uuid::new_v4().to_string());
        m["resourceVersion"] = json!(st.rv.to_string());
        m["generation"] = json!(1);
        m["creationTimestamp"] = json!(now());
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        if def.plural == "secrets" {
            fold_string_data(&mut obj);
        }
        apply_defaults(def, &mut obj, st.rv);
        if def.plural == "namespaces" {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        st.objects.insert(key.clone(), obj.clone());
        self.emit(&mut st, "ADDED", key, obj.clone());
        Ok(obj)
    }

    /// Replaces an object. `status_only`: a write to the `status` subresource.
    /// `check_rv`: enforce the body's resourceVersion as a precondition when set.
    pub fn update(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        mut obj: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        check_type(def, &obj)?;
        if !obj.get("metadata").is_some_and(|m| m.is_object()) {
            obj["metadata"] = json!({});
        }
        match obj["metadata"]["name"].as_str() {
            Some(n) if n == name => {}
            Some("") | None => obj["metadata"]["name"] = json!(name),
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
        }
        let mut st = self.lock();
        let key = ObjKey::new(def, ns, name);
        let Some(old) = st.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(def, name));
        };
        if let Some(want) = obj["metadata"]["resourceVersion"].as_str() {
            if !want.is_empty() && Some(want) != old["metadata"]["resourceVersion"].as_str() {
                return Err(ApiError::conflict(def, name));
            }
        }
        if def.plural == "secrets" {
            fold_string_data(&mut obj);
        }
        let mut new = if status_only {
            let mut n = old.clone();
            n["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
            if n["status"].is_null() {
                if let Some(m) = n.as_object_mut() {
                    m.remove("status");
                }
            }
            n
        } else {
            if def.has_status() {
                match old.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        if let Some(m) = obj.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            obj
        };
        carry_server_meta(&old, &mut new);
        if def.namespaced {
            new["metadata"]["namespace"] = json!(ns);
        }
        new["apiVersion"] = json!(def.api_version());
        new["kind"] = json!(def.kind);
        if !status_only && spec_changed(&old, &new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if new == old {
            // A no-op write keeps the resourceVersion, as on a real server.
            return Ok(old);
        }
        st.rv += 1;
        new["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.objects.insert(key.clone(), new.clone());
        self.emit(&mut st, "MODIFIED", key, new.clone());
        Ok(new)
    }

    /// Applies `f` to the current object and writes the result (no rv precondition).
    pub fn modify(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        status_only: bool,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let mut obj = self.get(def, ns, name)?;
        f(&mut obj);
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        self.update(def, ns, name, obj, status_only)
    }

    /// Deletes an object; returns it. Does not cascade (see [`Store::owned_by`]).
    pub fn delete(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let key = ObjKey::new(def, ns, name);
        let Some(mut obj) = st.objects.remove(&key) else {
            return Err(ApiError::not_found(def, name));
        };
        st.applied.retain(|(k, _), _| k != &key);
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        self.emit(&mut st, "DELETED", key, obj.clone());
        Ok(obj)
    }

    /// Keys of objects whose ownerReferences name `uid`.
    pub fn owned_by(&self, uid: &str) -> Vec<ObjKey> {
        self.lock()
            .objects
            .iter()
            .filter(|(_, v)| {
                v["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys of every object in a namespace.
    pub fn in_namespace(&self, ns: &str) -> Vec<ObjKey> {
        self.lock()
            .objects
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect()
    }

    /// Last configuration applied by `manager` to the object.
    pub fn last_applied(&self, key: &ObjKey, manager: &str) -> Option<Value> {
        self.lock()
            .applied
            .get(&(key.clone(), manager.to_string()))
            .cloned()
    }

    /// Records the configuration applied by `manager`.
    pub fn set_applied(&self, key: ObjKey, manager: &str, cfg: Value) {
        self.lock().applied.insert((key, manager.to_string()), cfg);
    }

    /// Adds a bearer token for an identity.
    pub fn add_token(&self, token: &str, id: Identity) {
        self.lock().tokens.insert(token.to_string(), id);
    }

    /// The identity of a bearer token.
    pub fn identity(&self, token: &str) -> Option<Identity> {
        self.lock().tokens.get(token).cloned()
    }

    /// A token of a service account, if one was issued.
    pub fn token_for(&self, ns: &str, sa: &str) -> Option<String> {
        let user = format!("system:serviceaccount:{ns}:{sa}");
        self.lock()
            .tokens
            .iter()
            .find(|(_, id)| id.user == user)
            .map(|(t, _)| t.clone())
    }

    /// Appends to the request log.
    pub fn log_request(&self, e: RequestLogEntry) {
        self.lock().log.push(e);
    }

    /// A copy of the request log.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.lock().log.clone()
    }

    /// Every served resource type.
    pub fn resources(&self) -> Vec<ResourceDef> {
        self.lock().resources.clone()
    }

    /// Applies a (strategic) merge to the object's status and writes it.
    pub fn patch_status(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        status: &Value,
    ) -> Result<Value, ApiError> {
        let mut obj = self.get(def, ns, name)?;
        let mut st = obj.get("status").cloned().unwrap_or(json!({}));
        patch::strategic_merge(&mut st, status);
        obj["status"] = st;
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        self.update(def, ns, name, obj, true)
    }
}

fn default_field(obj: &mut Value, ptr: &str, value: Value) {
    if obj.pointer(ptr).is_none_or(|v| v.is_null()) {
        let mut cur = obj;
        let segs: Vec<&str> = ptr.split('/').skip(1).collect();
        for (i, seg) in segs.iter().enumerate() {
            let key = seg.replace("~1", "/").replace("~0", "~");
            if !cur.is_object() {
                *cur = json!({});
            }
            if i + 1 == segs.len() {
                cur[key.as_str()] = value;
                return;
            }
            cur = &mut cur[key.as_str()];
        }
    }
}

/// The defaults a real API server fills in on create, for the fields clients read back
/// (Helm's readiness checks, kubectl describe).
fn apply_defaults(def: &ResourceDef, obj: &mut Value, rv: u64) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("batch", "jobs") => {
            let uid = obj["metadata"]["uid"].clone();
            let name = obj["metadata"]["name"].clone();
            default_field(obj, "/spec/completions", json!(1));
            default_field(obj, "/spec/parallelism", json!(1));
            default_field(obj, "/spec/backoffLimit", json!(6));
            default_field(obj, "/spec/completionMode", json!("NonIndexed"));
            default_field(obj, "/spec/suspend", json!(false));
            if obj["spec"]["manualSelector"].as_bool() != Some(true) {
                obj["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("batch.kubernetes.io/job-name", &name),
                    ("controller-uid", &uid),
                    ("job-name", &name),
                ] {
                    default_field(
                        obj,
                        &format!("/spec/template/metadata/labels/{}", k.replace('/', "~1")),
                        v.clone(),
                    );
                }
            }
        }
        ("apps", "deployments") => {
            default_field(obj, "/spec/replicas", json!(1));
            default_field(obj, "/spec/revisionHistoryLimit", json!(10));
            default_field(obj, "/spec/progressDeadlineSeconds", json!(600));
            default_field(
                obj,
                "/spec/strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }
        ("", "services") => {
            default_field(obj, "/spec/type", json!("ClusterIP"));
            if obj["spec"]["clusterIP"].as_str() != Some("None") {
                default_field(
                    obj,
                    "/spec/clusterIP",
                    json!(format!("10.96.{}.{}", (rv / 250) % 250, rv % 250 + 1)),
                );
            }
        }
        _ => {}
    }
}

/// Checks apiVersion and kind of a body against the resource.
pub fn check_type(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let Some(m) = obj.as_object() else {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: the body is not a JSON object",
            def.kind
        )));
    };
    let kind = m.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    let av = m.get("apiVersion").and_then(|k| k.as_str()).unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            truncate(&obj.to_string())
        )));
    }
    if av.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in '{}'",
            truncate(&obj.to_string())
        )));
    }
    if av != def.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    if kind != def.kind {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {}: the kind in the data ({kind}) does not match the expected kind ({})",
            def.version, def.kind, def.kind
        )));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_defaults_select_their_pods() {
        let defs = super::super::resources::builtin();
        let jobs = defs.iter().find(|d| d.plural == "jobs").unwrap();
        let mut job = json!({"metadata": {"name": "j", "uid": "u1"}, "spec": {"backoffLimit": 0, "template": {"spec": {}}}});
        apply_defaults(jobs, &mut job, 7);
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(job["spec"]["completions"], 1);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "j"
        );
    }
}
