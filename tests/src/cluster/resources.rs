//! The resource types the test API server serves, and their discovery documents.

use serde_json::{json, Value};

/// One served resource type (one group/version/plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group ("" for the core group).
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: String,
    /// Singular name, e.g. `deployment`.
    pub singular: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for kubectl, e.g. `deploy`.
    pub short_names: Vec<String>,
    /// Subresources served, e.g. `status`, `log`.
    pub subresources: Vec<String>,
}

impl ResourceDef {
    /// A new resource definition with no short names and a `status` subresource.
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            kind: kind.to_string(),
            namespaced,
            short_names: Vec::new(),
            subresources: vec!["status".to_string()],
        }
    }

    /// Sets the short names (builder style).
    pub fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets the subresources (builder style).
    pub fn subs(mut self, subs: &[&str]) -> Self {
        self.subresources = subs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `apiVersion` of the objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the type has a `status` subresource (main-resource writes then keep the status).
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }
}

/// The built-in resources: what Helm, kube-rs, kubectl and the Iter8 chart use.
pub fn builtin() -> Vec<ResourceDef> {
    vec![
        ResourceDef::new("", "v1", "namespaces", "Namespace", false).short(&["ns"]),
        ResourceDef::new("", "v1", "secrets", "Secret", true).subs(&[]),
        ResourceDef::new("", "v1", "configmaps", "ConfigMap", true)
            .short(&["cm"])
            .subs(&[]),
        ResourceDef::new("", "v1", "serviceaccounts", "ServiceAccount", true)
            .short(&["sa"])
            .subs(&["token"]),
        ResourceDef::new("", "v1", "services", "Service", true).short(&["svc"]),
        ResourceDef::new("", "v1", "pods", "Pod", true)
            .short(&["po"])
            .subs(&["status", "log"]),
        ResourceDef::new("", "v1", "events", "Event", true)
            .short(&["ev"])
            .subs(&[]),
        ResourceDef::new("apps", "v1", "deployments", "Deployment", true).short(&["deploy"]),
        ResourceDef::new("batch", "v1", "jobs", "Job", true),
        ResourceDef::new("batch", "v1", "cronjobs", "CronJob", true).short(&["cj"]),
        ResourceDef::new("rbac.authorization.k8s.io", "v1", "roles", "Role", true).subs(&[]),
        ResourceDef::new(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
        )
        .subs(&[]),
        ResourceDef::new(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
        )
        .subs(&[]),
        ResourceDef::new(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
        )
        .subs(&[]),
        ResourceDef::new("coordination.k8s.io", "v1", "leases", "Lease", true).subs(&[]),
    ]
}

/// Extra resources for readiness tests: Knative services and KServe inference services.
pub fn knative_service() -> ResourceDef {
    ResourceDef::new("serving.knative.dev", "v1", "services", "Service", true).short(&["ksvc"])
}

/// KServe `InferenceService` (serving.kserve.io/v1beta1).
pub fn kserve_inference_service() -> ResourceDef {
    ResourceDef::new(
        "serving.kserve.io",
        "v1beta1",
        "inferenceservices",
        "InferenceService",
        true,
    )
    .short(&["isvc"])
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `APIResourceList` for one group/version.
pub fn resource_list(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for d in defs
        .iter()
        .filter(|d| d.group == group && d.version == version)
    {
        resources.push(json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": VERBS,
            "shortNames": d.short_names,
            "categories": if matches!((d.group.as_str(), d.plural.as_str()),
                ("", "pods") | ("", "services") | ("apps", "deployments") | ("batch", "jobs") | ("batch", "cronjobs")) {
                vec!["all"]
            } else {
                vec![]
            },
        }));
        for s in &d.subresources {
            let verbs: Vec<&str> = match s.as_str() {
                "log" => vec!["get"],
                "token" => vec!["create"],
                _ => vec!["get", "patch", "update"],
            };
            let kind = match s.as_str() {
                "log" => "Pod".to_string(),
                "token" => "TokenRequest".to_string(),
                _ => d.kind.clone(),
            };
            resources.push(json!({
                "name": format!("{}/{}", d.plural, s),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": kind,
                "verbs": verbs,
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// One `APIGroup` entry for the named group, if served.
pub fn api_group(defs: &[ResourceDef], group: &str) -> Option<Value> {
    let mut versions: Vec<String> = Vec::new();
    for d in defs.iter().filter(|d| d.group == group) {
        if !versions.contains(&d.version) {
            versions.push(d.version.clone());
        }
    }
    let first = versions.first()?.clone();
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    Some(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": vs,
        "preferredVersion": {"groupVersion": format!("{group}/{first}"), "version": first},
    }))
}

/// `APIGroupList` for `/apis`.
pub fn group_list(defs: &[ResourceDef]) -> Value {
    let mut groups: Vec<String> = Vec::new();
    for d in defs.iter().filter(|d| !d.group.is_empty()) {
        if !groups.contains(&d.group) {
            groups.push(d.group.clone());
        }
    }
    let items: Vec<Value> = groups.iter().filter_map(|g| api_group(defs, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": items})
}

/// `APIVersions` for `/api`.
pub fn core_versions(addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
    })
}

/// `/version` document (a recent Kubernetes minor, as Helm's capabilities check needs).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-iter8-test",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
