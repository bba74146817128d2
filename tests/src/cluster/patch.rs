//! Merge patch (RFC 7386), strategic merge patch and a simplified server-side apply.
//!
//! Strategic merge patch simplifications: lists are merged by key only for the usual
//! fields (`containers`, `initContainers`, `ephemeralContainers`, `env`, `volumes`,
//! `imagePullSecrets` by `name`; `volumeMounts` by `mountPath`; `conditions` by `type`;
//! `ports` by `containerPort` or `port`; `ownerReferences` by `uid`); `finalizers` are
//! merged as a set; every other list is replaced. Directives: `$patch: delete` on a list
//! item or map, `$patch: replace` on a map; other `$` keys (`$setElementOrder`,
//! `$retainKeys`, `$deleteFromPrimitiveList`) are ignored.
//!
//! Server-side apply simplification: the server remembers each field manager's last
//! applied configuration; an apply removes the fields that manager applied before and
//! no longer applies, then merges the new configuration strategically. Conflicts between
//! managers are never reported (as with `force=true`).

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(pm) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(tm) = target {
                for (k, v) in pm {
                    if v.is_null() {
                        tm.remove(k);
                    } else {
                        merge_patch(tm.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The merge key of a list field, by field name and first item.
fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "ports" => {
            if sample.and_then(|s| s.get("containerPort")).is_some() {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        _ => None,
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Strategic merge patch (with the simplifications in the module docs).
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(pm) = patch else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(|v| v.as_str()) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else { return };
    for (k, v) in pm {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(_) => {
                if v.get("$patch").and_then(|p| p.as_str()) == Some("delete") {
                    tm.remove(k);
                } else {
                    strategic_merge(tm.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            Value::Array(items) => {
                let existing = tm.get(k).and_then(|e| e.as_array()).cloned();
                let merged = merge_list(k, existing, items);
                tm.insert(k.clone(), Value::Array(merged));
            }
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
}

fn merge_list(field: &str, existing: Option<Vec<Value>>, items: &[Value]) -> Vec<Value> {
    if field == "finalizers" {
        let mut out = existing.unwrap_or_default();
        for i in items {
            if !out.contains(i) {
                out.push(i.clone());
            }
        }
        return out;
    }
    let Some(key) = merge_key(field, items.first()) else {
        return items.iter().map(strip_directives).collect();
    };
    let mut out = existing.unwrap_or_default();
    for item in items {
        let Some(kv) = item.get(key) else {
            out.push(strip_directives(item));
            continue;
        };
        let pos = out.iter().position(|e| e.get(key) == Some(kv));
        let delete = item.get("$patch").and_then(|p| p.as_str()) == Some("delete");
        match (pos, delete) {
            (Some(p), true) => {
                out.remove(p);
            }
            (None, true) => {}
            (Some(p), false) => strategic_merge(&mut out[p], item),
            (None, false) => out.push(strip_directives(item)),
        }
    }
    out
}

/// Removes from `target` what `last` had and `new` no longer has (apply's pruning step).
pub fn prune_removed(target: &mut Value, last: &Value, new: &Value) {
    let (Value::Object(tm), Value::Object(lm)) = (target, last) else {
        return;
    };
    let nm = new.as_object();
    for (k, lv) in lm {
        let nv = nm.and_then(|n| n.get(k));
        match nv {
            None => {
                tm.remove(k);
            }
            Some(nv) => {
                if let Some(tv) = tm.get_mut(k) {
                    match (lv, nv) {
                        (Value::Object(_), Value::Object(_)) => prune_removed(tv, lv, nv),
                        (Value::Array(la), Value::Array(na)) => {
                            if let Some(key) = merge_key(k, la.first()) {
                                prune_list(tv, key, la, na);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

fn prune_list(target: &mut Value, key: &str, last: &[Value], new: &[Value]) {
    let Value::Array(ta) = target else { return };
    for li in last {
        let Some(kv) = li.get(key) else { continue };
        let still = new.iter().find(|n| n.get(key) == Some(kv));
        match still {
            None => ta.retain(|t| t.get(key) != Some(kv)),
            Some(ni) => {
                if let Some(t) = ta.iter_mut().find(|t| t.get(key) == Some(kv)) {
                    prune_removed(t, li, ni);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t =
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]});
        strategic_merge(
            &mut t,
            &json!({"containers": [{"name": "b", "image": "z"}, {"name": "a", "$patch": "delete"}]}),
        );
        assert_eq!(t, json!({"containers": [{"name": "b", "image": "z"}]}));
        let mut t = json!({"args": ["a", "b"]});
        strategic_merge(&mut t, &json!({"args": ["c"]}));
        assert_eq!(t, json!({"args": ["c"]}));
    }

    #[test]
    fn prune_removes_fields_no_longer_applied() {
        let mut t = json!({"data": {"a": "1", "b": "2", "c": "3"}});
        prune_removed(
            &mut t,
            &json!({"data": {"a": "1", "b": "2"}}),
            &json!({"data": {"a": "1"}}),
        );
        assert_eq!(t, json!({"data": {"a": "1", "c": "3"}}));
    }
}
