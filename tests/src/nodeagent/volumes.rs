//! A pod's volumes on this machine, as the kubelet prepares them: `emptyDir` (a directory,
//! or tmpfs for `medium: Memory`), `configMap`, `secret`, `downwardAPI`, and `projected`
//! (`serviceAccountToken` from the TokenRequest API, `configMap`, `secret`,
//! `downwardAPI`: the API server's ServiceAccount admission adds such a volume,
//! `kube-api-access-*`, to every pod that automounts its token). Tokens are refreshed
//! before they expire, as the kubelet does (at 80% of their life).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::env::{field_value, Objects};
use super::podman::{self, VolumeFiles, VolumePlan, VolumeSource};

/// A projected ServiceAccount token file to keep fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFile {
    /// The file.
    pub path: PathBuf,
    /// `audience` (empty: the API server's own).
    pub audience: String,
    /// Requested life.
    pub expiration_seconds: i64,
    /// When to ask for a new one.
    pub refresh_at: Option<Instant>,
}

/// The volume plan and the token files to request.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Directories, files and sources (reused from the podman mode's planner).
    pub plan: VolumePlan,
    /// Token files (written by [`write_token`]).
    pub tokens: Vec<TokenFile>,
}

fn mode(v: &Value, default: u32) -> u32 {
    v.as_u64().map(|m| m as u32).unwrap_or(default)
}

/// Files of a configMap / secret source (`kind` `configmaps` or `secrets`), with `items`
/// and `optional` honoured. Errors are the kubelet's MountVolume messages.
fn object_files(
    vol: &str,
    kind: &str,
    name: &str,
    src: &Value,
    default_mode: u32,
    objects: &Objects,
) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    let singular = if kind == "secrets" {
        "secret"
    } else {
        "configmap"
    };
    let optional = src["optional"].as_bool() == Some(true);
    let empty = BTreeMap::new();
    let entries = match objects.get(kind, name) {
        Some(e) => e,
        None if optional => &empty,
        None => {
            return Err(format!(
                "MountVolume.SetUp failed for volume \"{vol}\": {singular} \"{name}\" not found"
            ))
        }
    };
    let mut files = Vec::new();
    match src["items"].as_array() {
        Some(items) => {
            for it in items {
                let key = it["key"].as_str().unwrap_or("");
                let path = it["path"].as_str().unwrap_or(key);
                match entries.get(key) {
                    Some(c) => files.push((path.to_string(), c.clone(), mode(&it["mode"], default_mode))),
                    None if optional => {}
                    None => return Err(format!(
                        "MountVolume.SetUp failed for volume \"{vol}\": {singular} \"{name}\" has no key \"{key}\""
                    )),
                }
            }
        }
        None => {
            for (k, c) in entries {
                files.push((k.clone(), c.clone(), default_mode));
            }
        }
    }
    Ok(files)
}

fn downward_files(
    pod: &Value,
    items: &Value,
    default_mode: u32,
) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    let mut files = Vec::new();
    for it in items.as_array().cloned().unwrap_or_default() {
        let path = it["path"].as_str().unwrap_or("");
        let Some(fp) = it["fieldRef"]["fieldPath"].as_str() else {
            continue; // resourceFieldRef: no limits are enforced here
        };
        files.push((
            path.to_string(),
            field_value(pod, fp)?.into_bytes(),
            mode(&it["mode"], default_mode),
        ));
    }
    Ok(files)
}

/// Plans the pod's volumes under `volumes_dir`. An error is why the volume cannot be set
/// up yet (the pod stays in ContainerCreating and the agent retries).
pub fn plan(pod: &Value, volumes_dir: &Path, objects: &Objects) -> Result<Prepared, String> {
    let spec = &pod["spec"];
    let vols = spec["volumes"].as_array().cloned().unwrap_or_default();
    // emptyDir, configMap, secret: the podman mode's planner.
    let basic: Vec<Value> = vols
        .iter()
        .filter(|v| {
            v.get("emptyDir").is_some() || v.get("configMap").is_some() || v.get("secret").is_some()
        })
        .cloned()
        .collect();
    let data = |plural: &str, name: &str| -> Option<Vec<(String, Vec<u8>)>> {
        objects
            .get(plural, name)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    let mut plan = podman::volume_plan(&json!({ "volumes": basic }), volumes_dir, &data)?;
    let mut tokens = Vec::new();
    for v in &vols {
        let Some(name) = v["name"].as_str() else {
            continue;
        };
        let dir = volumes_dir.join(name);
        let files = if let Some(d) = v.get("downwardAPI") {
            downward_files(pod, &d["items"], mode(&d["defaultMode"], 0o644))?
        } else if let Some(p) = v.get("projected") {
            let default_mode = mode(&p["defaultMode"], 0o644);
            let mut files = Vec::new();
            for s in p["sources"].as_array().cloned().unwrap_or_default() {
                if let Some(t) = s.get("serviceAccountToken") {
                    tokens.push(TokenFile {
                        path: dir.join(t["path"].as_str().unwrap_or("token")),
                        audience: t["audience"].as_str().unwrap_or("").to_string(),
                        expiration_seconds: t["expirationSeconds"].as_i64().unwrap_or(3600),
                        refresh_at: None,
                    });
                } else if let Some(c) = s.get("configMap") {
                    let n = c["name"].as_str().unwrap_or("");
                    files.extend(object_files(
                        name,
                        "configmaps",
                        n,
                        c,
                        default_mode,
                        objects,
                    )?);
                } else if let Some(c) = s.get("secret") {
                    let n = c["name"].as_str().unwrap_or("");
                    files.extend(object_files(name, "secrets", n, c, default_mode, objects)?);
                } else if let Some(d) = s.get("downwardAPI") {
                    files.extend(downward_files(pod, &d["items"], default_mode)?);
                } else {
                    return Err(format!(
                        "volume \"{name}\": a projected source other than serviceAccountToken, configMap, secret, downwardAPI is not supported by the node agent"
                    ));
                }
            }
            files
        } else if basic.iter().any(|b| b["name"] == v["name"]) {
            continue;
        } else {
            let kind = v
                .as_object()
                .and_then(|o| o.keys().find(|k| k.as_str() != "name").cloned())
                .unwrap_or_else(|| "unknown".into());
            return Err(format!(
                "volume \"{name}\": type {kind} is not supported by the node agent (emptyDir, configMap, secret, downwardAPI, projected are)"
            ));
        };
        for (p, _, _) in &files {
            if p.starts_with('/') || p.split('/').any(|s| s == "..") {
                return Err(format!(
                    "volume \"{name}\": item path \"{p}\" must be relative without '..'"
                ));
            }
        }
        plan.files.push(VolumeFiles {
            dir: dir.clone(),
            files,
        });
        plan.sources.insert(
            name.to_string(),
            VolumeSource::Dir {
                path: dir,
                read_only: true,
            },
        );
    }
    Ok(Prepared { plan, tokens })
}

/// Writes a token atomically (rename in its directory, so a bind mount of the directory
/// sees the new file) and schedules its refresh at 80% of its life.
pub fn write_token(t: &mut TokenFile, token: &str, life: Duration) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = t.path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".token.tmp");
    std::fs::write(&tmp, token)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, &t.path)?;
    t.refresh_at = Some(Instant::now() + life.mul_f64(0.8));
    Ok(())
}

/// Volume name -> source, for [`podman::mounts`].
pub fn sources(p: &Prepared) -> &HashMap<String, VolumeSource> {
    &p.plan.sources
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod as the API server's ServiceAccount admission leaves it.
    fn admitted_pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "kube-api-access-x1y2z", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]}}]}})
    }

    #[test]
    fn the_service_account_volume_is_planned_with_its_token() {
        let mut objects = Objects::default();
        objects.configmaps.insert(
            "kube-root-ca.crt".into(),
            Some(BTreeMap::from([("ca.crt".to_string(), b"PEM".to_vec())])),
        );
        let base = Path::new("/s/volumes");
        let p = plan(&admitted_pod(), base, &objects).unwrap();
        let dir = base.join("kube-api-access-x1y2z");
        assert_eq!(p.tokens.len(), 1);
        assert_eq!(p.tokens[0].path, dir.join("token"));
        assert_eq!(p.tokens[0].expiration_seconds, 3607);
        let files = &p.plan.files.iter().find(|f| f.dir == dir).unwrap().files;
        assert_eq!(
            files,
            &vec![
                ("ca.crt".to_string(), b"PEM".to_vec(), 0o644),
                ("namespace".to_string(), b"ns".to_vec(), 0o644)
            ]
        );
        assert_eq!(p.plan.empty_dirs, vec![base.join("tmp")]);
        assert!(matches!(
            p.plan.sources.get("kube-api-access-x1y2z"),
            Some(VolumeSource::Dir {
                read_only: true,
                ..
            })
        ));
    }

    #[test]
    fn a_missing_root_ca_waits_and_unknown_types_are_named() {
        let e = plan(&admitted_pod(), Path::new("/s"), &Objects::default()).unwrap_err();
        assert!(
            e.contains("configmap \"kube-root-ca.crt\" not found"),
            "{e}"
        );
        let pod = json!({"spec": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}});
        let e = plan(&pod, Path::new("/s"), &Objects::default()).unwrap_err();
        assert!(e.contains("type hostPath is not supported"), "{e}");
    }

    #[test]
    fn tokens_are_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TokenFile {
            path: dir.path().join("v/token"),
            audience: String::new(),
            expiration_seconds: 600,
            refresh_at: None,
        };
        write_token(&mut t, "one", Duration::from_secs(600)).unwrap();
        write_token(&mut t, "two", Duration::from_secs(600)).unwrap();
        assert_eq!(std::fs::read_to_string(&t.path).unwrap(), "two");
        let due = t.refresh_at.unwrap();
        assert!(due > Instant::now() + Duration::from_secs(400));
    }
}
