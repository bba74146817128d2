//! RBAC: Roles, ClusterRoles, RoleBindings and ClusterRoleBindings evaluated per request.

use serde_json::Value;

use super::store::{Identity, ObjKey, Store};

/// What a request wants to do, as RBAC sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Kubernetes verb.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource ("" if none).
    pub subresource: String,
    /// Namespace ("" for cluster scope).
    pub namespace: String,
    /// Object name ("" if none).
    pub name: String,
}

fn list_has(v: &Value, want: &str) -> bool {
    v.as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x.as_str() == Some(want) || x.as_str() == Some("*"))
    })
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !list_has(&rule["verbs"], &a.verb) || !list_has(&rule["apiGroups"], &a.group) {
        return false;
    }
    let resources = rule["resources"].as_array().cloned().unwrap_or_default();
    let wanted = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let res_ok = resources.iter().filter_map(|r| r.as_str()).any(|r| {
        r == "*"
            || r == wanted
            || (!a.subresource.is_empty() && r == format!("*/{}", a.subresource))
    });
    if !res_ok {
        return false;
    }
    match rule["resourceNames"].as_array() {
        Some(names) if !names.is_empty() => {
            !a.name.is_empty() && names.iter().any(|n| n.as_str() == Some(a.name.as_str()))
        }
        _ => true,
    }
}

fn subject_matches(subject: &Value, id: &Identity, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            id.user == format!("system:serviceaccount:{ns}:{name}")
        }
        "User" => id.user == name,
        "Group" => id.groups.iter().any(|g| g == name),
        _ => false,
    }
}

fn role_rules(store: &Store, role_ref: &Value, ns: &str) -> Vec<Value> {
    let name = role_ref["name"].as_str().unwrap_or("");
    let key = match role_ref["kind"].as_str() {
        Some("Role") => ObjKey {
            group: "rbac.authorization.k8s.io".into(),
            plural: "roles".into(),
            namespace: ns.into(),
            name: name.into(),
        },
        Some("ClusterRole") => ObjKey {
            group: "rbac.authorization.k8s.io".into(),
            plural: "clusterroles".into(),
            namespace: String::new(),
            name: name.into(),
        },
        _ => return Vec::new(),
    };
    store
        .lock()
        .objects
        .get(&key)
        .and_then(|r| r["rules"].as_array().cloned())
        .unwrap_or_default()
}

/// Whether the identity may do what the attributes describe.
pub fn authorize(store: &Store, id: &Identity, a: &Attributes) -> bool {
    if id.is_admin() {
        return true;
    }
    let bindings: Vec<(String, Value)> = store
        .lock()
        .objects
        .iter()
        .filter(|(k, _)| {
            k.group == "rbac.authorization.k8s.io"
                && (k.plural == "clusterrolebindings"
                    || (k.plural == "rolebindings"
                        && !a.namespace.is_empty()
                        && k.namespace == a.namespace))
        })
        .map(|(k, v)| (k.namespace.clone(), v.clone()))
        .collect();
    for (bns, b) in bindings {
        let subjects = b["subjects"].as_array().cloned().unwrap_or_default();
        if !subjects.iter().any(|s| subject_matches(s, id, &bns)) {
            continue;
        }
        let rules = role_rules(store, &b["roleRef"], &bns);
        if rules.iter().any(|r| rule_allows(r, a)) {
            return true;
        }
    }
    false
}

/// The 403 message, worded as Kubernetes words it.
pub fn forbidden_message(id: &Identity, a: &Attributes) -> String {
    let res = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let full = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let subject = if a.name.is_empty() {
        format!("{res} is forbidden")
    } else {
        format!("{res} \"{}\" is forbidden", a.name)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    format!(
        "{subject}: User \"{}\" cannot {} resource \"{full}\" in API group \"{}\" {scope}",
        id.user, a.verb, a.group
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_match_verbs_resources_and_names() {
        let rule = json!({"apiGroups": [""], "resources": ["secrets", "pods/log"], "verbs": ["get"], "resourceNames": ["a"]});
        let mut a = Attributes {
            verb: "get".into(),
            resource: "secrets".into(),
            namespace: "ns".into(),
            name: "a".into(),
            ..Default::default()
        };
        assert!(rule_allows(&rule, &a));
        a.name = "b".into();
        assert!(!rule_allows(&rule, &a));
        a.verb = "list".into();
        a.name = String::new();
        assert!(!rule_allows(&rule, &a));
        let id = Identity::service_account("ns", "sa");
        a.name = "x".into();
        a.verb = "patch".into();
        assert_eq!(
            forbidden_message(&id, &a),
            "secrets \"x\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot patch resource \"secrets\" in API group \"\" in the namespace \"ns\""
        );
    }
}
