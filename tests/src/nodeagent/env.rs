//! A container's environment as the kubelet builds it: `envFrom`, then `env` (values,
//! `$(VAR)` references to earlier variables, downward-API `fieldRef`, `secretKeyRef`,
//! `configMapKeyRef`), and the `$(VAR)` expansion of `command` and `args`.
//!
//! Pure: the ConfigMaps and Secrets a pod refers to are fetched beforehand ([`Objects`]).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// The decoded entries of the ConfigMaps and Secrets of one namespace, by name; a name
/// mapped to `None` does not exist.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// ConfigMaps (`data` plus decoded `binaryData`).
    pub configmaps: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    /// Secrets (decoded `data`).
    pub secrets: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl Objects {
    /// The entries of `kind` (`configmaps` or `secrets`) named `name`, if it exists.
    pub fn get(&self, kind: &str, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        let m = if kind == "secrets" {
            &self.secrets
        } else {
            &self.configmaps
        };
        m.get(name).and_then(Option::as_ref)
    }
}

/// The names of the ConfigMaps and Secrets a pod refers to (env, envFrom, volumes,
/// projected sources), each list sorted and without duplicates.
pub fn referenced_objects(pod: &Value) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    let spec = &pod["spec"];
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().cloned().unwrap_or_default());
    for c in containers {
        for e in c["env"].as_array().cloned().unwrap_or_default() {
            push_name(&mut cms, &e["valueFrom"]["configMapKeyRef"]["name"]);
            push_name(&mut secrets, &e["valueFrom"]["secretKeyRef"]["name"]);
        }
        for e in c["envFrom"].as_array().cloned().unwrap_or_default() {
            push_name(&mut cms, &e["configMapRef"]["name"]);
            push_name(&mut secrets, &e["secretRef"]["name"]);
        }
    }
    for v in spec["volumes"].as_array().cloned().unwrap_or_default() {
        push_name(&mut cms, &v["configMap"]["name"]);
        push_name(&mut secrets, &v["secret"]["secretName"]);
        for s in v["projected"]["sources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            push_name(&mut cms, &s["configMap"]["name"]);
            push_name(&mut secrets, &s["secret"]["name"]);
        }
    }
    for l in [&mut cms, &mut secrets] {
        l.sort();
        l.dedup();
    }
    (cms, secrets)
}

fn push_name(list: &mut Vec<String>, v: &Value) {
    if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
        list.push(s.to_string());
    }
}

/// Expands `$(VAR)` with the variables defined so far, as the kubelet does: `$$` is a
/// literal `$`, an undefined `$(VAR)` stays as written.
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            match r.find(')') {
                Some(j) => {
                    let name = &r[..j];
                    match lookup(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &r[j + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = r;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a downward-API `fieldPath` of a pod (`metadata.name`,
/// `metadata.labels['k']`, `spec.serviceAccountName`, `status.podIP`, ...).
pub fn field_value(pod: &Value, path: &str) -> Result<String, String> {
    let meta = &pod["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    for (prefix, field) in [
        ("metadata.labels['", "labels"),
        ("metadata.annotations['", "annotations"),
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let key = rest.trim_end_matches("']");
            return Ok(s(&meta[field][key]));
        }
    }
    Ok(match path {
        "metadata.name" => s(&meta["name"]),
        "metadata.namespace" => s(&meta["namespace"]),
        "metadata.uid" => s(&meta["uid"]),
        "metadata.labels" | "metadata.annotations" => {
            let field = path.trim_start_matches("metadata.");
            meta[field]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
        }
        "spec.nodeName" => s(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => s(&pod["spec"]["serviceAccountName"]),
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => {
            "127.0.0.1".to_string()
        }
        other => return Err(format!("unsupported fieldRef fieldPath \"{other}\"")),
    })
}

fn key_ref(objects: &Objects, ns: &str, kind: &str, r: &Value) -> Result<Option<String>, String> {
    let name = r["name"].as_str().unwrap_or("");
    let key = r["key"].as_str().unwrap_or("");
    let optional = r["optional"].as_bool() == Some(true);
    let (singular, title) = if kind == "secrets" {
        ("secret", "Secret")
    } else {
        ("configmap", "ConfigMap")
    };
    match objects.get(kind, name) {
        None if optional => Ok(None),
        None => Err(format!("{singular} \"{name}\" not found")),
        Some(m) => match m.get(key) {
            Some(b) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {key} in {title} {ns}/{name}")),
        },
    }
}

/// The container's variables (`envFrom` then `env`), appended to `base` (the variables
/// the agent defines, e.g. `KUBERNETES_SERVICE_HOST`). An error is the kubelet's
/// `CreateContainerConfigError` message.
pub fn container_env(
    pod: &Value,
    container: &Value,
    objects: &Objects,
    base: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let mut env = base;
    for ef in container["envFrom"].as_array().cloned().unwrap_or_default() {
        let prefix = ef["prefix"].as_str().unwrap_or("");
        for (field, kind, singular) in [
            ("configMapRef", "configmaps", "configmap"),
            ("secretRef", "secrets", "secret"),
        ] {
            let r = &ef[field];
            if !r.is_object() {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            match objects.get(kind, name) {
                Some(m) => {
                    for (k, v) in m {
                        env.push((
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(v).into_owned(),
                        ));
                    }
                }
                None if r["optional"].as_bool() == Some(true) => {}
                None => return Err(format!("{singular} \"{name}\" not found")),
            }
        }
    }
    for e in container["env"].as_array().cloned().unwrap_or_default() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let value = if let Some(v) = e["value"].as_str() {
            Some(expand(v, &env))
        } else if let Some(from) = e.get("valueFrom").filter(|v| v.is_object()) {
            if let Some(p) = from["fieldRef"]["fieldPath"].as_str() {
                Some(field_value(pod, p)?)
            } else if from["secretKeyRef"].is_object() {
                key_ref(objects, ns, "secrets", &from["secretKeyRef"])?
            } else if from["configMapKeyRef"].is_object() {
                key_ref(objects, ns, "configmaps", &from["configMapKeyRef"])?
            } else if from["resourceFieldRef"].is_object() {
                Some("0".to_string())
            } else {
                return Err(format!("env {name}: unsupported valueFrom"));
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            env.push((name.to_string(), v));
        }
    }
    Ok(dedup_last(env))
}

/// Keeps the last definition of each variable, in first-definition order.
fn dedup_last(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (k, v) in env {
        match out.iter_mut().find(|(ok, _)| *ok == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// `command` and `args` of a container with `$(VAR)` expanded.
pub fn command_and_args(container: &Value, env: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| expand(s, env))
                    .collect()
            })
            .unwrap_or_default()
    };
    (strs(&container["command"]), strs(&container["args"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_follows_the_kubelet() {
        let v = vars(&[("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)", &v), "1-two");
        assert_eq!(expand("$$(A)", &v), "$(A)");
        assert_eq!(expand("$(UNDEF) $A $", &v), "$(UNDEF) $A $");
        assert_eq!(expand("x$(A", &v), "x$(A");
        assert_eq!(expand("$$$(A)", &v), "$1");
    }

    #[test]
    fn env_from_objects_fields_and_references() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                                      "labels": {"app": "web"}},
                         "spec": {"serviceAccountName": "sa", "nodeName": "n"}});
        let c = json!({"name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}},
            {"name": "URL", "value": "http://$(IP)/$(NS)/$(CM_X)"},
        ]});
        let mut objects = Objects::default();
        objects.configmaps.insert(
            "cm".into(),
            Some(BTreeMap::from([("X".to_string(), b"x1".to_vec())])),
        );
        objects.secrets.insert(
            "s".into(),
            Some(BTreeMap::from([("pw".to_string(), b"s3cret".to_vec())])),
        );
        objects.secrets.insert("gone".into(), None);
        let env = container_env(&pod, &c, &objects, vars(&[("HOME", "/h")])).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HOME"), Some("/h"));
        assert_eq!(get("CM_X"), Some("x1"));
        assert_eq!(get("NS"), Some("ns"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("PW"), Some("s3cret"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("URL"), Some("http://127.0.0.1/ns/x1"));

        let bad = json!({"name": "c", "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "pw"}}}]});
        let e = container_env(&pod, &bad, &objects, vec![]).unwrap_err();
        assert_eq!(e, "secret \"nope\" not found");
        let bad = json!({"name": "c", "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "user"}}}]});
        let e = container_env(&pod, &bad, &objects, vec![]).unwrap_err();
        assert_eq!(e, "couldn't find key user in Secret ns/s");
    }

    #[test]
    fn referenced_objects_are_collected() {
        let pod = json!({"spec": {
            "containers": [{"env": [{"name": "a", "valueFrom": {"configMapKeyRef": {"name": "c1", "key": "k"}}}],
                            "envFrom": [{"secretRef": {"name": "s1"}}]}],
            "volumes": [{"name": "v", "configMap": {"name": "c2"}},
                        {"name": "w", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}},
                                                                 {"serviceAccountToken": {"path": "token"}}]}}]}});
        let (cms, secrets) = referenced_objects(&pod);
        assert_eq!(cms, ["c1", "c2", "kube-root-ca.crt"]);
        assert_eq!(secrets, ["s1"]);
    }
}
