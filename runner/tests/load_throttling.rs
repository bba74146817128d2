//! The runner reports when the load generator itself was the bottleneck: a real
//! `iter8-runner` process loads a local HTTP server
//! - inside a CPU cgroup whose quota is far too small for its rate (cgroup v2 `cpu.max`, or
//!   v1's `cpu.cfs_quota_us`, made by the test; skipped, saying why, only where no CPU
//!   cgroup can be made: not root, no cpu controller), and
//! - while the test stops and continues it (SIGSTOP / SIGCONT), so its fixed-rate schedule
//!   falls behind (works everywhere).
//!
//! The assertions are on what the result says (throttled periods, late requests, the
//! warnings), never on how long anything took.

#![allow(clippy::unwrap_used)] // test code: a failure here is a test failure

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use iter8::model::{ExperimentResult, LoadInfo};
use tokio::net::TcpListener;

const RUNNER: &str = env!("CARGO_BIN_EXE_iter8-runner");

async fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/")
}

fn experiment(dir: &Path, url: &str, qps: u32, duration: &str) -> PathBuf {
    let path = dir.join("experiment.yaml");
    std::fs::write(
        &path,
        format!(
            "spec:\n- task: http\n  with:\n    url: {url}\n    qps: {qps}\n    duration: {duration}\n    connections: 8\n"
        ),
    )
    .unwrap();
    path
}

fn load_info(result: &Path) -> LoadInfo {
    let text = std::fs::read_to_string(result).unwrap();
    let r: ExperimentResult = iter8::model::result::parse_result(&text).unwrap();
    assert!(!r.failure, "{text}");
    r.insights.unwrap().load["http"].clone()
}

/// A CPU cgroup made for the test (removed on drop): `procs` is where a pid goes.
struct CpuCgroup {
    dir: PathBuf,
    procs: PathBuf,
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Mount points of cgroup v2 and of v1's cpu controller, from /proc/self/mountinfo.
fn cgroup_mounts() -> (Option<PathBuf>, Option<PathBuf>) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (mut v2, mut v1) = (None, None);
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount = left.split(' ').nth(4).map(PathBuf::from);
        let mut r = right.split(' ');
        match (r.next(), r.nth(1)) {
            (Some("cgroup2"), _) => v2 = v2.or(mount),
            (Some("cgroup"), Some(opts)) if opts.split(',').any(|o| o == "cpu") => {
                v1 = v1.or(mount)
            }
            _ => {}
        }
    }
    (v2, v1)
}

/// A cgroup allowed `quota_us` of CPU per 100 ms, or why none can be made here.
fn cpu_cgroup(quota_us: u32) -> Result<CpuCgroup, String> {
    let name = format!("iter8-test-{}", std::process::id());
    let (v2, v1) = cgroup_mounts();
    let mut why = Vec::new();
    if let Some(root) = v2 {
        let ok = std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"));
        if ok {
            // the cpu controller for the root's children, then a child with a quota
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
            let dir = root.join(&name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let cg = CpuCgroup {
                        procs: dir.join("cgroup.procs"),
                        dir: dir.clone(),
                    };
                    match std::fs::write(dir.join("cpu.max"), format!("{quota_us} 100000")) {
                        Ok(()) => return Ok(cg),
                        Err(e) => why.push(format!("{}/cpu.max: {e}", dir.display())),
                    }
                }
                Err(e) => why.push(format!("mkdir {}: {e}", dir.display())),
            }
        } else {
            why.push(format!("{}: no cpu controller", root.display()));
        }
    }
    if let Some(root) = v1 {
        let dir = root.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let cg = CpuCgroup {
                    procs: dir.join("cgroup.procs"),
                    dir: dir.clone(),
                };
                let set = std::fs::write(dir.join("cpu.cfs_period_us"), "100000").and_then(|_| {
                    std::fs::write(dir.join("cpu.cfs_quota_us"), quota_us.to_string())
                });
                match set {
                    Ok(()) => return Ok(cg),
                    Err(e) => why.push(format!("{}/cpu.cfs_quota_us: {e}", dir.display())),
                }
            }
            Err(e) => why.push(format!("mkdir {}: {e}", dir.display())),
        }
    }
    if why.is_empty() {
        why.push("no cgroup v2 or v1 cpu hierarchy is mounted".into());
    }
    Err(why.join("; "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_under_a_too_small_cpu_quota_is_reported_as_throttled() {
    // 2 ms of CPU per 100 ms: far less than 2000 requests/s need
    let cg = match cpu_cgroup(2000) {
        Ok(cg) => cg,
        Err(why) => {
            eprintln!("SKIPPED: cannot make a CPU cgroup here ({why}); run as root on a host with the cpu controller");
            return;
        }
    };
    let url = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), &url, 2000, "2s");
    let out = dir.path().join("result.yaml");
    // the shell puts itself into the cgroup, then becomes the runner
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("echo $$ > \"$0\" && exec \"$@\"")
        .arg(&cg.procs)
        .arg(RUNNER)
        .arg("-f")
        .arg(&exp)
        .arg("-o")
        .arg(&out)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&status.stderr).to_string();
    assert!(status.status.success(), "{log}");
    let info = load_info(&out);
    let g = info.generator.as_ref().unwrap();
    eprintln!("generator: {g:?}\nwarnings: {:?}", info.warnings);
    assert!(
        g.throttled_periods.is_some_and(|t| t > 0),
        "the cgroup's throttling was not seen: {g:?}"
    );
    assert_eq!(g.cpu_limit, Some(0.02), "{g:?}");
    assert!(
        info.warnings
            .iter()
            .any(|w| w.starts_with("the load generator was throttled for")
                && w.contains("add pods or raise the CPU limit")),
        "{info:?}"
    );
    // and the log says it too
    assert!(
        log.contains("the load generator was throttled for"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_is_stopped_now_and_then_falls_behind_its_schedule() {
    let url = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), &url, 200, "2s");
    let out = dir.path().join("result.yaml");
    let mut child = tokio::process::Command::new(RUNNER)
        .arg("-f")
        .arg(&exp)
        .arg("-o")
        .arg(&out)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    // stopped 150 ms of every 250 ms until it exits: as a CPU-starved generator is
    let status = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        signal("-STOP");
        tokio::time::sleep(Duration::from_millis(150)).await;
        signal("-CONT");
    };
    assert!(status.success());
    let info = load_info(&out);
    let g = info.generator.as_ref().unwrap();
    eprintln!("generator: {g:?}\nwarnings: {:?}", info.warnings);
    assert_eq!(g.scheduled_requests, Some(400), "{g:?}");
    assert!(
        g.late_requests.is_some_and(|l| l >= 4),
        "stopped for 60% of the time, yet no request was late: {g:?}"
    );
    assert!(g.lag_max_ms.is_some_and(|m| m >= 10.0), "{g:?}");
    assert!(
        info.warnings
            .iter()
            .any(|w| w.starts_with("the fixed-rate schedule fell behind")),
        "{info:?}"
    );
}
