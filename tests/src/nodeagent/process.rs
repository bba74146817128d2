//! Starting and stopping one container: a local process (the image map's binary) in its
//! own mount namespace, where the pod's volumes (the ServiceAccount's projected volume at
//! `/var/run/secrets/kubernetes.io/serviceaccount` included) are bind-mounted at their
//! `mountPath` (util-linux `unshare --mount --propagation private` and `mount --bind`, so
//! nothing leaks to the host or to other pods); or `podman run` of a local image.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use super::logs::LogWriter;
use super::podman::{self, Mount};

/// How a container is started.
#[derive(Debug, Clone)]
pub enum Launch {
    /// A local process.
    Local {
        /// The program (the mapped binary, or `command[0]` for `@host`).
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Its whole environment.
        env: Vec<(String, String)>,
        /// Working directory (the pod's directory unless `workingDir` is given).
        workdir: PathBuf,
        /// Volumes bind-mounted in its mount namespace.
        mounts: Vec<Mount>,
    },
    /// `podman ARGV` (a `run` command line) of container `name`.
    Podman { argv: Vec<String>, name: String },
}

/// Quotes a word for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'"'"'"#))
}

/// Where sources are staged before they are mounted: the first of a few directories no
/// mount target covers (`/var/run` is `/run`).
fn stage_root(mounts: &[Mount]) -> &'static str {
    let norm = |t: &str| {
        let t = t.trim_end_matches('/');
        match t.strip_prefix("/var/run") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("/run{rest}"),
            _ => t.to_string(),
        }
    };
    let covers = |target: &str, path: &str| {
        let t = norm(target);
        t.is_empty() || path == t || path.starts_with(&format!("{t}/"))
    };
    [
        "/run/iter8-node-agent",
        "/var/lib/iter8-node-agent",
        "/opt/iter8-node-agent",
        "/srv/iter8-node-agent",
    ]
    .into_iter()
    .find(|root| !mounts.iter().any(|m| covers(&m.target, root)))
    .unwrap_or("/run/iter8-node-agent")
}

/// The `sh` script that mounts `mounts` and then runs `"$@"`. Sources are first bound
/// under a private tmpfs stage (a volume mounted at `/tmp` would otherwise hide sources
/// under `/tmp`), then onto their targets, parents before children, as runc does.
pub fn mount_script(mounts: &[Mount]) -> String {
    let mut s = String::from("set -e\n");
    if mounts.is_empty() {
        s.push_str("exec \"$@\"\n");
        return s;
    }
    let stage = stage_root(mounts);
    let qstage = sh_quote(stage);
    s.push_str(&format!(
        "mkdir -p {qstage}\nmount -t tmpfs -o mode=0700 tmpfs {qstage}\n"
    ));
    for (i, m) in mounts.iter().enumerate() {
        if let Some(src) = &m.source {
            let src = sh_quote(&src.display().to_string());
            let st = sh_quote(&format!("{stage}/{i}"));
            s.push_str(&format!(
                "if [ -d {src} ]; then mkdir {st}; else : > {st}; fi\nmount --bind {src} {st}\n"
            ));
        }
    }
    let mut order: Vec<usize> = (0..mounts.len()).collect();
    order.sort_by_key(|i| mounts[*i].target.trim_end_matches('/').matches('/').count());
    for i in order {
        let m = &mounts[i];
        let dst = sh_quote(&m.target);
        match &m.source {
            Some(_) => {
                let st = sh_quote(&format!("{stage}/{i}"));
                s.push_str(&format!(
                    "if [ -d {st} ]; then mkdir -p {dst}; else mkdir -p \"$(dirname {dst})\"; [ -e {dst} ] || : > {dst}; fi\n"
                ));
                s.push_str(&format!("mount --bind {st} {dst}\n"));
                if m.read_only {
                    s.push_str(&format!("mount -o remount,bind,ro {dst}\n"));
                }
            }
            None => {
                let mut opts = format!("{},mode=1777", if m.read_only { "ro" } else { "rw" });
                if let Some(size) = &m.tmpfs_size {
                    opts.push_str(&format!(",size={size}"));
                }
                s.push_str(&format!(
                    "mkdir -p {dst}\nmount -t tmpfs -o {opts} tmpfs {dst}\n"
                ));
            }
        }
    }
    s.push_str(&format!("umount -l {qstage}\nexec \"$@\"\n"));
    s
}

/// Finds a program on the agent's `PATH` (absolute paths are used as given).
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Process groups (and podman containers) running now, for [`stop_all`].
static RUNNING: std::sync::Mutex<Vec<(u32, Option<String>)>> = std::sync::Mutex::new(Vec::new());

fn running_list() -> std::sync::MutexGuard<'static, Vec<(u32, Option<String>)>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops every container this agent runs (the agent is stopping): SIGTERM, SIGKILL after
/// `grace`.
pub async fn stop_all(grace: Duration) {
    let all: Vec<(u32, Option<String>)> = running_list().clone();
    for (pgid, podman_name) in &all {
        match podman_name {
            Some(n) => {
                let _ = tokio::process::Command::new(podman::program())
                    .args(["stop", "--time", &grace.as_secs().to_string(), n])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
            }
            None => signal_group(*pgid, "TERM"),
        }
    }
    let end = std::time::Instant::now() + grace;
    while std::time::Instant::now() < end
        && all
            .iter()
            .any(|(p, _)| Path::new(&format!("/proc/{p}")).exists())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (pgid, podman_name) in &all {
        signal_group(*pgid, "KILL");
        if let Some(n) = podman_name {
            podman::remove_container(n).await;
        }
    }
}

/// A started container.
#[derive(Debug)]
pub struct Running {
    child: tokio::process::Child,
    pgid: Option<u32>,
    podman: Option<String>,
    copies: Vec<tokio::task::JoinHandle<()>>,
    /// `iter8-node://PID` or, once known, `podman://ID`.
    pub container_id: String,
}

/// Starts a container; its stdout and stderr go to `log`.
pub fn spawn(launch: &Launch, log: &LogWriter) -> Result<Running, String> {
    let mut cmd = match launch {
        Launch::Local {
            program,
            args,
            env,
            workdir,
            mounts,
        } => {
            let tool = |name: &str| {
                which(name)
                    .map(|p| p.display().to_string())
                    .ok_or_else(|| format!("{name} not found on PATH (util-linux)"))
            };
            let mut c = tokio::process::Command::new(tool("unshare")?);
            // sh finds mount/mkdir on the agent's PATH, whatever PATH the container sets.
            let agent_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
            let script = format!("PATH={}\n{}", sh_quote(&agent_path), mount_script(mounts));
            c.args(["--mount", "--propagation", "private", "--"])
                .arg(tool("sh")?)
                .args(["-c", &script, "sh"])
                .arg(program)
                .args(args)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .current_dir(workdir);
            c
        }
        Launch::Podman { argv, .. } => {
            let mut c = tokio::process::Command::new(podman::program());
            c.args(argv);
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| match launch {
        Launch::Local { program, .. } => format!("starting {program}: {e}"),
        Launch::Podman { .. } => format!("starting {}: {e}", podman::program()),
    })?;
    let mut copies = Vec::new();
    if let Some(out) = child.stdout.take() {
        copies.push(tokio::spawn(log.clone().copy("stdout", out)));
    }
    if let Some(err) = child.stderr.take() {
        copies.push(tokio::spawn(log.clone().copy("stderr", err)));
    }
    let pgid = child.id();
    if let Some(g) = pgid {
        let name = match launch {
            Launch::Podman { name, .. } => Some(name.clone()),
            Launch::Local { .. } => None,
        };
        running_list().push((g, name));
    }
    Ok(Running {
        container_id: format!("iter8-node://{}", pgid.unwrap_or(0)),
        pgid,
        podman: match launch {
            Launch::Podman { name, .. } => Some(name.clone()),
            Launch::Local { .. } => None,
        },
        child,
        copies,
    })
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn exit_code(s: std::io::Result<ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match s {
        Ok(s) => s
            .code()
            .or_else(|| s.signal().map(|sig| 128 + sig))
            .unwrap_or(128),
        Err(_) => 128,
    }
}

impl Running {
    /// Waits for the process to end; its exit code (128 + signal when killed).
    pub async fn wait(&mut self) -> i32 {
        exit_code(self.child.wait().await)
    }

    /// Stops it as the kubelet does: SIGTERM (podman: `podman stop`), SIGKILL after
    /// `grace`; returns the exit code.
    pub async fn stop(&mut self, grace: Duration) -> i32 {
        if let Some(name) = &self.podman {
            let _ = tokio::process::Command::new(podman::program())
                .args(["stop", "--time", &grace.as_secs().to_string(), name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        } else if let Some(g) = self.pgid {
            signal_group(g, "TERM");
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(s) => exit_code(s),
            Err(_) => {
                if let Some(name) = &self.podman {
                    podman::kill_container(name).await;
                }
                if let Some(g) = self.pgid {
                    signal_group(g, "KILL");
                }
                let _ = self.child.start_kill();
                exit_code(self.child.wait().await)
            }
        }
    }

    /// After the process ended: kills what it left in its group, drains the log, and for
    /// podman takes the exit code and ID from `podman container inspect` (saved as
    /// `container.json` in `dir`) and removes the container.
    pub async fn finish(&mut self, code: i32, dir: &Path) -> i32 {
        if let Some(g) = self.pgid {
            signal_group(g, "KILL");
            running_list().retain(|(p, _)| *p != g);
        }
        for c in self.copies.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), c).await;
        }
        let Some(name) = self.podman.clone() else {
            return code;
        };
        let mut code = code;
        if let Some(info) = podman::inspect_container(&name).await {
            if let Some(c) = info["State"]["ExitCode"].as_i64() {
                code = c as i32;
            }
            self.container_id = format!("podman://{}", info["Id"].as_str().unwrap_or(""));
            let _ = std::fs::write(
                dir.join(format!("{name}.json")),
                serde_json::to_vec_pretty(&info).unwrap_or_default(),
            );
        }
        podman::remove_container(&name).await;
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r#"'a'"'"'b'"#);
    }

    #[tokio::test]
    async fn a_local_process_sees_its_volumes_and_nothing_leaks() {
        if which("unshare").is_none() || !nix_root() {
            println!("SKIPPED: needs root and util-linux unshare");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        std::fs::write(vol.join("token"), "t0k3n").unwrap();
        let target = dir.path().join("mnt/sa");
        let log_file = dir.path().join("c.log");
        let log = LogWriter::create(&log_file).unwrap();
        let launch = Launch::Local {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                format!(
                    "cat {}/token; echo; echo $GREETING; touch {}/x 2>/dev/null || echo read-only; exit 3",
                    target.display(),
                    target.display()
                ),
            ],
            env: vec![
                ("GREETING".into(), "hello".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            workdir: dir.path().to_path_buf(),
            mounts: vec![
                // an emptyDir over the directory holding the other volume's source
                Mount {
                    source: Some(dir.path().join("empty")),
                    target: dir.path().display().to_string(),
                    read_only: false,
                    tmpfs_size: None,
                },
                Mount {
                    source: Some(vol.clone()),
                    target: target.display().to_string(),
                    read_only: true,
                    tmpfs_size: None,
                },
            ],
        };
        let mut r = spawn(&launch, &log).unwrap();
        let code = r.wait().await;
        let code = r.finish(code, dir.path()).await;
        assert_eq!(code, 3);
        let out = crate::nodeagent::logs::LogOptions::default().render(
            &crate::nodeagent::logs::parse(&std::fs::read(&log_file).unwrap()),
        );
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains("t0k3n\nhello\nread-only\n"), "{out}");
        assert!(
            !target.join("token").exists(),
            "the bind mount stays in the process's namespace"
        );
    }

    #[tokio::test]
    async fn stop_sends_sigterm_then_sigkill() {
        if which("unshare").is_none() || !nix_root() {
            println!("SKIPPED: needs root and util-linux unshare");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = LogWriter::create(&dir.path().join("c.log")).unwrap();
        let launch = |script: &str| Launch::Local {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            workdir: dir.path().to_path_buf(),
            mounts: vec![],
        };
        // exits on SIGTERM with its own code
        let mut r = spawn(
            &launch("trap 'exit 7' TERM; while :; do sleep 0.1; done"),
            &log,
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(r.stop(Duration::from_secs(20)).await, 7);
        // ignores SIGTERM: killed after the grace period
        let mut r = spawn(&launch("trap '' TERM; while :; do sleep 0.1; done"), &log).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(r.stop(Duration::from_millis(500)).await, 128 + 9);
    }

    fn nix_root() -> bool {
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    }
}
