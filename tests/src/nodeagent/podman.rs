//! Podman mode of the node agent: a pod whose image is in local podman storage runs as a
//! real container (`podman run --runtime runc`, lowered nofile/nproc ulimits, host network
//! so it reaches the API server and test servers on 127.0.0.1), with the pod spec honoured
//! as a kubelet would where it matters: command/args (the image's entrypoint when no
//! command is given), env (values resolved by the agent, incl. downward API),
//! securityContext (user, group, non-root check, read-only root file system, privilege
//! escalation, capabilities, seccomp), volumes (emptyDir, configMap, secret) and the
//! ServiceAccount's credentials at `/var/run/secrets/kubernetes.io/serviceaccount`.
//!
//! The pure part ([`run_args`], [`volume_plan`]) is separate from the I/O (podman calls,
//! files), so the mapping is unit-tested without podman.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

/// Where a kubelet mounts the ServiceAccount's token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The podman program (override with `ITER8_TEST_PODMAN_BIN`).
pub fn program() -> String {
    std::env::var("ITER8_TEST_PODMAN_BIN")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "podman".to_string())
}

/// Runtime flags every container gets: runc (crun is not in Debian's default install
/// here), ulimits low enough for an unprivileged build/CI container.
pub const RUNTIME_ARGS: &[&str] = &[
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// An image found in local podman storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// Image ID (hex).
    pub id: String,
    /// The image's `USER` (may be empty: root).
    pub user: String,
}

/// Looks an image up in local podman storage; `None` when absent or podman is missing.
pub async fn local_image(image: &str) -> Option<LocalImage> {
    if image.is_empty() {
        return None;
    }
    let out = podman_stdout(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}\t{{.Config.User}}",
        image,
    ])
    .await?;
    let text = String::from_utf8_lossy(&out);
    let line = text.lines().next()?;
    let (id, user) = line.split_once('\t').unwrap_or((line, ""));
    Some(LocalImage {
        id: id.trim().to_string(),
        user: user.trim().to_string(),
    })
}

/// What backs a pod volume on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A host directory (emptyDir, configMap, secret); `read_only`: the volume type is
    /// always mounted read-only (configMap, secret).
    Dir { path: PathBuf, read_only: bool },
    /// emptyDir with `medium: Memory`.
    Tmpfs { size: Option<String> },
}

/// One mount of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Host directory (or `None` for tmpfs).
    pub source: Option<PathBuf>,
    /// Path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// tmpfs size (`medium: Memory`).
    pub tmpfs_size: Option<String>,
}

/// Files of one configMap / secret volume to write before the container starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFiles {
    /// Volume directory.
    pub dir: PathBuf,
    /// (relative path, content, mode).
    pub files: Vec<(String, Vec<u8>, u32)>,
}

/// How to prepare a pod's volumes: the directories and files to create, the sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumePlan {
    /// emptyDir directories (created mode 0777, as a kubelet does).
    pub empty_dirs: Vec<PathBuf>,
    /// configMap / secret contents.
    pub files: Vec<VolumeFiles>,
    /// Volume name -> source.
    pub sources: HashMap<String, VolumeSource>,
}

/// Looks up the `data` of a ConfigMap or Secret (None: it does not exist). Secret data is
/// base64; ConfigMap data is text plus base64 `binaryData`.
pub type ObjectData<'a> = dyn Fn(&str, &str) -> Option<Vec<(String, Vec<u8>)>> + 'a;

/// Plans the pod's volumes under `volumes_dir`. `data(plural, name)` returns the decoded
/// entries of a ConfigMap (`configmaps`) or Secret (`secrets`). Errors name the volume and
/// what is missing (the pod then stays in ContainerCreating, as with a kubelet).
pub fn volume_plan(
    pod_spec: &Value,
    volumes_dir: &Path,
    data: &ObjectData<'_>,
) -> Result<VolumePlan, String> {
    let mut plan = VolumePlan::default();
    for v in pod_spec["volumes"].as_array().cloned().unwrap_or_default() {
        let Some(name) = v["name"].as_str() else {
            continue;
        };
        let dir = volumes_dir.join(name);
        if let Some(ed) = v.get("emptyDir") {
            if ed["medium"].as_str() == Some("Memory") {
                let size = ed["sizeLimit"].as_str().map(tmpfs_size);
                plan.sources
                    .insert(name.to_string(), VolumeSource::Tmpfs { size });
            } else {
                plan.empty_dirs.push(dir.clone());
                plan.sources.insert(
                    name.to_string(),
                    VolumeSource::Dir {
                        path: dir,
                        read_only: false,
                    },
                );
            }
            continue;
        }
        let (plural, kind, src, obj_name) = if let Some(cm) = v.get("configMap") {
            ("configmaps", "configmap", cm, cm["name"].as_str())
        } else if let Some(s) = v.get("secret") {
            ("secrets", "secret", s, s["secretName"].as_str())
        } else {
            let kind = v
                .as_object()
                .and_then(|o| o.keys().find(|k| k.as_str() != "name").cloned())
                .unwrap_or_else(|| "unknown".into());
            return Err(format!(
                "volume \"{name}\": type {kind} is not supported by the test cluster (emptyDir, configMap, secret are)"
            ));
        };
        let obj_name = obj_name.unwrap_or("");
        let default_mode = src["defaultMode"]
            .as_u64()
            .map(|m| m as u32)
            .unwrap_or(0o644);
        let optional = src["optional"].as_bool() == Some(true);
        let entries = match data(plural, obj_name) {
            Some(e) => e,
            None if optional => Vec::new(),
            None => {
                return Err(format!(
                "MountVolume.SetUp failed for volume \"{name}\": {kind} \"{obj_name}\" not found"
            ))
            }
        };
        let mut files = Vec::new();
        match src["items"].as_array() {
            Some(items) => {
                for it in items {
                    let key = it["key"].as_str().unwrap_or("");
                    let path = it["path"].as_str().unwrap_or(key);
                    let mode = it["mode"]
                        .as_u64()
                        .map(|m| m as u32)
                        .unwrap_or(default_mode);
                    match entries.iter().find(|(k, _)| k == key) {
                        Some((_, content)) => files.push((path.to_string(), content.clone(), mode)),
                        None if optional => {}
                        None => {
                            return Err(format!(
                                "MountVolume.SetUp failed for volume \"{name}\": {kind} \"{obj_name}\" has no key \"{key}\""
                            ))
                        }
                    }
                }
            }
            None => {
                for (k, content) in &entries {
                    files.push((k.clone(), content.clone(), default_mode));
                }
            }
        }
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
    Ok(plan)
}

/// Kubernetes quantity (`64Mi`, `1G`, `100000`) -> a tmpfs size podman accepts (bytes).
fn tmpfs_size(q: &str) -> String {
    let units: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (u, m) in units {
        if let Some(n) = q.strip_suffix(u).and_then(|n| n.parse::<u64>().ok()) {
            return (n * m).to_string();
        }
    }
    q.to_string()
}

/// The container's mounts from its `volumeMounts` (plus the ServiceAccount directory when
/// `service_account` is given and no volumeMount already uses that path).
pub fn mounts(
    container: &Value,
    sources: &HashMap<String, VolumeSource>,
    service_account: Option<&Path>,
) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for vm in container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let name = vm["name"].as_str().unwrap_or("");
        let target = vm["mountPath"].as_str().unwrap_or("").to_string();
        if !target.starts_with('/') {
            return Err(format!(
                "volumeMount \"{name}\": mountPath \"{target}\" must be absolute"
            ));
        }
        let ro = vm["readOnly"].as_bool() == Some(true);
        let sub = vm["subPath"].as_str().filter(|s| !s.is_empty());
        match sources.get(name) {
            Some(VolumeSource::Dir { path, read_only }) => {
                let source = match sub {
                    Some(s) if s.starts_with('/') || s.split('/').any(|p| p == "..") => {
                        return Err(format!(
                            "volumeMount \"{name}\": subPath \"{s}\" must be relative without '..'"
                        ))
                    }
                    Some(s) => path.join(s),
                    None => path.clone(),
                };
                out.push(Mount {
                    source: Some(source),
                    target,
                    read_only: ro || *read_only,
                    tmpfs_size: None,
                });
            }
            Some(VolumeSource::Tmpfs { size }) => out.push(Mount {
                source: None,
                target,
                read_only: ro,
                tmpfs_size: size.clone(),
            }),
            None => {
                return Err(format!(
                    "volumeMount \"{name}\": no volume named \"{name}\" in the pod spec"
                ))
            }
        }
    }
    if let Some(sa) = service_account {
        if !out.iter().any(|m| m.target == SERVICE_ACCOUNT_DIR) {
            out.push(Mount {
                source: Some(sa.to_path_buf()),
                target: SERVICE_ACCOUNT_DIR.to_string(),
                read_only: true,
                tmpfs_size: None,
            });
        }
    }
    Ok(out)
}

/// Everything `podman run` needs for one container.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    /// Container name (unique on this machine).
    pub name: &'a str,
    /// Host name (the pod's name).
    pub hostname: &'a str,
    /// Image reference as in the pod spec.
    pub image: &'a str,
    /// The image's `USER`.
    pub image_user: &'a str,
    /// The pod's spec (pod-level securityContext).
    pub pod_spec: &'a Value,
    /// The container.
    pub container: &'a Value,
    /// Resolved environment, in order.
    pub env: &'a [(String, String)],
    /// `command` with `$(VAR)` expanded (empty: the image's entrypoint).
    pub command: &'a [String],
    /// `args` with `$(VAR)` expanded.
    pub args: &'a [String],
    /// Mounts.
    pub mounts: &'a [Mount],
}

fn sc_field<'v>(container_sc: &'v Value, pod_sc: &'v Value, field: &str) -> Option<&'v Value> {
    container_sc
        .get(field)
        .filter(|v| !v.is_null())
        .or_else(|| pod_sc.get(field).filter(|v| !v.is_null()))
}

/// The `podman run` arguments (after the program name) for a container, or the error a
/// kubelet would report (e.g. `runAsNonRoot` with an image that runs as root).
pub fn run_args(s: &RunSpec<'_>) -> Result<Vec<String>, String> {
    let mut a: Vec<String> = vec!["run".into()];
    a.extend(RUNTIME_ARGS.iter().map(|x| x.to_string()));
    a.extend(
        [
            "--name",
            s.name,
            "--hostname",
            s.hostname,
            "--network",
            "host",
            "--pull",
            "never",
        ]
        .iter()
        .map(|x| x.to_string()),
    );
    let csc = &s.container["securityContext"];
    let psc = &s.pod_spec["securityContext"];
    let uid = sc_field(csc, psc, "runAsUser").and_then(Value::as_i64);
    let gid = sc_field(csc, psc, "runAsGroup").and_then(Value::as_i64);
    let image_user = s.image_user.split(':').next().unwrap_or("");
    if sc_field(csc, psc, "runAsNonRoot").and_then(Value::as_bool) == Some(true) {
        match uid {
            Some(0) => {
                return Err("container's runAsUser breaks non-root policy (runAsNonRoot: true, runAsUser: 0)".into())
            }
            Some(_) => {}
            None => match image_user {
                "" | "0" | "root" => {
                    return Err("container has runAsNonRoot and image will run as root".into())
                }
                u if u.parse::<u32>().is_err() => {
                    return Err(format!(
                        "container has runAsNonRoot and image has non-numeric user ({u}), cannot verify user is non-root"
                    ))
                }
                _ => {}
            },
        }
    }
    let user = match (uid, gid) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!(
            "{}:{g}",
            if image_user.is_empty() {
                "0"
            } else {
                image_user
            }
        )),
        (None, None) => None,
    };
    if let Some(u) = user {
        a.extend(["--user".into(), u]);
    }
    let mut groups: Vec<i64> = psc["supplementalGroups"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if let Some(fs) = psc["fsGroup"].as_i64() {
        groups.push(fs);
    }
    for g in groups {
        a.extend(["--group-add".into(), g.to_string()]);
    }
    if csc["privileged"].as_bool() == Some(true) {
        a.push("--privileged".into());
    }
    if csc["readOnlyRootFilesystem"].as_bool() == Some(true) {
        // podman would otherwise mount tmpfs on /tmp, /var/tmp and /run; a kubelet does not.
        a.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    if csc["allowPrivilegeEscalation"].as_bool() == Some(false) {
        a.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    for (field, flag) in [("drop", "--cap-drop"), ("add", "--cap-add")] {
        for c in csc["capabilities"][field]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            a.extend([flag.to_string(), c.to_string()]);
        }
    }
    match sc_field(csc, psc, "seccompProfile")
        .and_then(|p| p["type"].as_str())
    {
        None | Some("RuntimeDefault") => {}
        Some("Unconfined") => a.extend(["--security-opt".into(), "seccomp=unconfined".into()]),
        Some(t) => {
            return Err(format!(
                "seccompProfile type {t} is not supported by the test cluster (RuntimeDefault, Unconfined are)"
            ))
        }
    }
    if let Some(w) = s.container["workingDir"].as_str().filter(|w| !w.is_empty()) {
        a.extend(["--workdir".into(), w.to_string()]);
    }
    for m in s.mounts {
        match &m.source {
            Some(src) => {
                let mut v = format!("{}:{}", src.display(), m.target);
                if m.read_only {
                    v.push_str(":ro");
                }
                a.extend(["--volume".into(), v]);
            }
            None => {
                let mut opts = vec![if m.read_only { "ro" } else { "rw" }.to_string()];
                opts.push("mode=1777".into());
                if let Some(sz) = &m.tmpfs_size {
                    opts.push(format!("size={sz}"));
                }
                a.extend(["--tmpfs".into(), format!("{}:{}", m.target, opts.join(","))]);
            }
        }
    }
    for (k, v) in s.env {
        a.extend(["--env".into(), format!("{k}={v}")]);
    }
    if !s.command.is_empty() {
        let ep = serde_json::to_string(s.command).map_err(|e| e.to_string())?;
        a.extend(["--entrypoint".into(), ep]);
    }
    a.push(s.image.to_string());
    a.extend(s.args.iter().cloned());
    Ok(a)
}

/// Writes the ServiceAccount files a kubelet mounts (token, ca.crt, namespace) into `dir`.
pub fn write_service_account(
    dir: &Path,
    token: &str,
    ca_pem: &str,
    namespace: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("token"), token)?;
    std::fs::write(dir.join("ca.crt"), ca_pem)?;
    std::fs::write(dir.join("namespace"), namespace)?;
    set_mode(dir, 0o755)
}

/// Creates the planned directories and files (emptyDirs 0777, like a kubelet).
pub fn materialize(plan: &VolumePlan) -> std::io::Result<()> {
    for d in &plan.empty_dirs {
        std::fs::create_dir_all(d)?;
        set_mode(d, 0o777)?;
    }
    for vf in &plan.files {
        std::fs::create_dir_all(&vf.dir)?;
        set_mode(&vf.dir, 0o755)?;
        for (rel, content, mode) in &vf.files {
            let p = vf.dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, content)?;
            set_mode(&p, *mode)?;
        }
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// `podman inspect` of a container (the first element), or `None`.
pub async fn inspect_container(name: &str) -> Option<Value> {
    let out = podman_stdout(&["container", "inspect", name]).await?;
    let v: Value = serde_json::from_slice(&out).ok()?;
    v.get(0).cloned()
}

/// Stops a container now (pod deleted, deadline).
pub async fn kill_container(name: &str) {
    let _ = tokio::process::Command::new(program())
        .args(["kill", "--signal", "KILL", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// Removes a container (finished or not).
pub async fn remove_container(name: &str) {
    let _ = tokio::process::Command::new(program())
        .args(["rm", "--force", "--time", "0", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// Removes containers synchronously (when a cluster stops).
pub fn remove_containers_blocking(names: &[String]) {
    if names.is_empty() {
        return;
    }
    let _ = std::process::Command::new(program())
        .args(["rm", "--force", "--time", "0"])
        .args(names)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The standard output of a successful `podman ARGS` (stderr discarded), or `None`.
async fn podman_stdout(args: &[&str]) -> Option<Vec<u8>> {
    let out = tokio::process::Command::new(program())
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status.success().then_some(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chart_pod() -> Value {
        json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            "containers": [{
                "name": "iter8-runner", "image": "localhost/iter8-runner:e2e",
                "args": ["--namespace", "$(POD_NAMESPACE)"],
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
        })
    }

    fn args_for(pod: &Value, image_user: &str, mounts: &[Mount]) -> Result<Vec<String>, String> {
        let env = vec![("POD_NAMESPACE".to_string(), "ns".to_string())];
        let args = vec!["--namespace".to_string(), "ns".to_string()];
        run_args(&RunSpec {
            name: "c1",
            hostname: "p1",
            image: "localhost/iter8-runner:e2e",
            image_user,
            pod_spec: pod,
            container: &pod["containers"][0],
            env: &env,
            command: &[],
            args: &args,
            mounts,
        })
    }

    fn has_pair(a: &[String], flag: &str, value: &str) -> bool {
        a.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn restricted_security_context_becomes_podman_flags() {
        let pod = chart_pod();
        let a = args_for(&pod, "65532:65532", &[]).unwrap();
        assert!(has_pair(&a, "--user", "65532:65532"), "{a:?}");
        assert!(a.contains(&"--read-only".to_string()), "{a:?}");
        assert!(a.contains(&"--read-only-tmpfs=false".to_string()), "{a:?}");
        assert!(has_pair(&a, "--security-opt", "no-new-privileges"), "{a:?}");
        assert!(has_pair(&a, "--cap-drop", "ALL"), "{a:?}");
        assert!(has_pair(&a, "--runtime", "runc"), "{a:?}");
        assert!(has_pair(&a, "--ulimit", "nofile=1024:1024"), "{a:?}");
        assert!(has_pair(&a, "--ulimit", "nproc=1024:1024"), "{a:?}");
        assert!(has_pair(&a, "--network", "host"), "{a:?}");
        assert!(has_pair(&a, "--pull", "never"), "{a:?}");
        assert!(has_pair(&a, "--env", "POD_NAMESPACE=ns"), "{a:?}");
        // no command: the image's entrypoint, args after the image
        assert!(!a.contains(&"--entrypoint".to_string()), "{a:?}");
        let img = a
            .iter()
            .position(|x| x == "localhost/iter8-runner:e2e")
            .unwrap();
        assert_eq!(&a[img + 1..], ["--namespace", "ns"]);
    }

    #[test]
    fn without_a_security_context_the_image_defaults_stay() {
        let pod = json!({"containers": [{"name": "c", "image": "x"}]});
        let a = args_for(&pod, "", &[]).unwrap();
        for f in ["--user", "--read-only", "--cap-drop", "--security-opt"] {
            assert!(!a.contains(&f.to_string()), "{f}: {a:?}");
        }
    }

    #[test]
    fn run_as_non_root_is_checked_against_the_image_user() {
        let mut pod = chart_pod();
        pod["securityContext"]
            .as_object_mut()
            .unwrap()
            .remove("runAsUser");
        let e = args_for(&pod, "", &[]).unwrap_err();
        assert!(e.contains("image will run as root"), "{e}");
        let e = args_for(&pod, "nobody", &[]).unwrap_err();
        assert!(e.contains("non-numeric user (nobody)"), "{e}");
        let a = args_for(&pod, "1000", &[]).unwrap();
        assert!(has_pair(&a, "--user", "1000:65532"), "{a:?}");
        pod["containers"][0]["securityContext"]["runAsUser"] = json!(0);
        let e = args_for(&pod, "1000", &[]).unwrap_err();
        assert!(e.contains("breaks non-root policy"), "{e}");
    }

    #[test]
    fn container_security_context_overrides_the_pod_one() {
        let mut pod = chart_pod();
        pod["containers"][0]["securityContext"]["runAsUser"] = json!(1234);
        pod["securityContext"]["fsGroup"] = json!(2000);
        pod["securityContext"]["supplementalGroups"] = json!([3000]);
        pod["containers"][0]["securityContext"]["capabilities"]["add"] =
            json!(["NET_BIND_SERVICE"]);
        let a = args_for(&pod, "", &[]).unwrap();
        assert!(has_pair(&a, "--user", "1234:65532"), "{a:?}");
        assert!(has_pair(&a, "--group-add", "2000"), "{a:?}");
        assert!(has_pair(&a, "--group-add", "3000"), "{a:?}");
        assert!(has_pair(&a, "--cap-add", "NET_BIND_SERVICE"), "{a:?}");
        pod["containers"][0]["securityContext"]["seccompProfile"] = json!({"type": "Localhost"});
        let e = args_for(&pod, "", &[]).unwrap_err();
        assert!(e.contains("seccompProfile type Localhost"), "{e}");
    }

    #[test]
    fn command_replaces_the_entrypoint() {
        let pod = chart_pod();
        let cmd = vec!["/iter8-runner".to_string(), "--quiet".to_string()];
        let a = run_args(&RunSpec {
            name: "c",
            hostname: "h",
            image: "img",
            image_user: "65532",
            pod_spec: &pod,
            container: &pod["containers"][0],
            env: &[],
            command: &cmd,
            args: &[],
            mounts: &[],
        })
        .unwrap();
        assert!(
            has_pair(&a, "--entrypoint", r#"["/iter8-runner","--quiet"]"#),
            "{a:?}"
        );
        assert_eq!(a.last().map(String::as_str), Some("img"));
    }

    #[test]
    fn volumes_and_mounts() {
        let mut pod = chart_pod();
        pod["volumes"] = json!([
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "exp", "configMap": {"name": "exp", "items": [{"key": "e.yaml", "path": "experiment.yaml"}]}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "opt", "secret": {"secretName": "absent", "optional": true}},
        ]);
        pod["containers"][0]["volumeMounts"] = json!([
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "mem", "mountPath": "/mem"},
            {"name": "exp", "mountPath": "/exp"},
            {"name": "creds", "mountPath": "/creds", "readOnly": false},
            {"name": "tmp", "mountPath": "/work", "subPath": "w", "readOnly": true},
        ]);
        let data = |plural: &str, name: &str| -> Option<Vec<(String, Vec<u8>)>> {
            match (plural, name) {
                ("configmaps", "exp") => Some(vec![
                    ("e.yaml".into(), b"spec: []".to_vec()),
                    ("other".into(), b"x".to_vec()),
                ]),
                ("secrets", "creds") => Some(vec![("token".into(), b"s3cret".to_vec())]),
                _ => None,
            }
        };
        let base = Path::new("/state/pod/volumes");
        let plan = volume_plan(&pod, base, &data).unwrap();
        assert_eq!(plan.empty_dirs, vec![base.join("tmp")]);
        assert_eq!(
            plan.files[0].files,
            vec![("experiment.yaml".to_string(), b"spec: []".to_vec(), 0o644)]
        );
        assert_eq!(
            plan.files[1].files,
            vec![("token".to_string(), b"s3cret".to_vec(), 0o400)]
        );
        let sa = Path::new("/state/pod/sa");
        let m = mounts(&pod["containers"][0], &plan.sources, Some(sa)).unwrap();
        let find = |t: &str| m.iter().find(|x| x.target == t).unwrap().clone();
        assert!(!find("/tmp").read_only);
        assert_eq!(find("/mem").tmpfs_size.as_deref(), Some("1048576"));
        assert!(find("/exp").read_only, "configMap volumes are read-only");
        assert!(find("/creds").read_only, "secret volumes are read-only");
        assert_eq!(find("/work").source, Some(base.join("tmp/w")));
        assert!(find("/work").read_only);
        assert_eq!(find(SERVICE_ACCOUNT_DIR).source.as_deref(), Some(sa));
        assert!(find(SERVICE_ACCOUNT_DIR).read_only);
        let a = args_for(&pod, "65532", &m).unwrap();
        assert!(
            has_pair(&a, "--volume", "/state/pod/volumes/exp:/exp:ro"),
            "{a:?}"
        );
        assert!(
            has_pair(&a, "--volume", "/state/pod/volumes/tmp:/tmp"),
            "{a:?}"
        );
        assert!(
            has_pair(&a, "--tmpfs", "/mem:rw,mode=1777,size=1048576"),
            "{a:?}"
        );

        // a missing, non-optional ConfigMap keeps the pod from starting, naming it
        pod["volumes"][2]["configMap"]["name"] = json!("gone");
        let e = volume_plan(&pod, base, &data).unwrap_err();
        assert!(e.contains("configmap \"gone\" not found"), "{e}");
        // unsupported volume types and unknown mounts are named
        pod["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}]);
        let e = volume_plan(&pod, base, &data).unwrap_err();
        assert!(e.contains("type hostPath is not supported"), "{e}");
        let e = mounts(&pod["containers"][0], &HashMap::new(), None).unwrap_err();
        assert!(e.contains("no volume named \"tmp\""), "{e}");
    }
}
