//! Every input the runner and the CLI can be given, end to end through the real binaries:
//! numbers too large for Rust, endless files, deep nesting, user computations that never
//! end, wrong ports and paths: each a clear error naming the field (exit 2 for the runner,
//! 3 for `iter8`), never a panic, an abort, a hang or gigabytes of memory.
#![allow(clippy::unwrap_used)] // test support helpers outside #[test] fns

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iter8::model::ExperimentResult;
use support::{closed_port, TestServer};

fn runner(dir: &Path, experiment: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("experiment.yaml"), experiment).unwrap();
    Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir)
        .args(["-f", "experiment.yaml", "-o", "result.yaml", "--quiet"])
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn iter8(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn result(dir: &Path) -> ExperimentResult {
    let text = std::fs::read_to_string(dir.join("result.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Exit 2 with every `says` in stderr, and no panic.
fn refused(experiment: &str, says: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = runner(dir.path(), experiment, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{experiment}\n{err}");
    for s in says {
        assert!(err.contains(s), "{experiment}: no {s:?} in\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn numbers_too_large_for_rust_name_the_field_and_range() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    refused(
        "spec:\n- task: ready\n  with: {name: x, resource: pods, timeout: 1e20}\n",
        &["with.timeout", "at most 100000h"],
    );
    refused(
        &format!("spec:\n- task: http\n  with: {{url: \"{url}\", duration: \"1e19\"}}\n"),
        &["with.duration", "at most 100000h"],
    );
    refused(
        &format!("spec:\n- task: http\n  with: {{url: \"{url}\", qps: 1e-300}}\n"),
        &["with.qps", "at least 0.001"],
    );
    refused(
        "spec:\n- task: grpc\n  with: {host: \"127.0.0.1:1\", call: a.B/C, rps: 1e-300}\n",
        &["with.rps", "at least 0.001"],
    );
    for n in ["9223372036854775808", "1000000000"] {
        refused(
            &format!("spec:\n- task: http\n  with: {{url: \"{url}\", connections: {n}}}\n"),
            &["with.connections", "1 to 10000"],
        );
    }
}

#[test]
fn assert_timeout_too_long_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.yaml");
    std::fs::write(
        &f,
        serde_yaml::to_string(&ExperimentResult::new(1)).unwrap(),
    )
    .unwrap();
    let out = iter8(&[
        "assert",
        "-f",
        f.to_str().unwrap(),
        "-c",
        "completed",
        "--timeout",
        "1e20",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("at most 100000h"), "{}", stderr(&out));
}

#[test]
fn results_whose_counts_would_size_allocations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["18446744073709551615", "1000000"] {
        let f = dir.path().join(format!("r{n}.yaml"));
        std::fs::write(
            &f,
            format!(
                "startTime: 2024-01-01T00:00:00Z\nnumLoops: 1\nnumCompletedTasks: 1\nnumTasks: 1\nfailure: false\niter8Version: x\ninsights:\n  numVersions: {n}\n"
            ),
        )
        .unwrap();
        for cmd in [
            vec!["report", "-f", f.to_str().unwrap()],
            vec!["report", "-o", "html", "-f", f.to_str().unwrap()],
            vec!["assert", "-c", "slos", "-f", f.to_str().unwrap()],
        ] {
            let out = iter8(&cmd);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(3), "{cmd:?}: {err}");
            assert!(
                err.contains("insights.numVersions") && err.contains("at most 1000"),
                "{cmd:?}: {err}"
            );
        }
    }
}

#[test]
fn deep_yaml_is_refused_before_parsing() {
    let deep = format!("spec: {}\n", "[".repeat(150_000));
    refused(&deep, &["more than 256 nested"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.yaml");
    std::fs::write(&f, format!("numLoops: {}", "{a: ".repeat(150_000))).unwrap();
    let out = iter8(&["report", "-f", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 256 nested"),
        "{}",
        stderr(&out)
    );
}

/// An experiment file the runner may not read exits 2 naming the file, like the other
/// unreadable files. As root (CI), the runner is started as `nobody` with util-linux's
/// `setpriv`, since root reads any file.
#[test]
fn an_experiment_file_without_read_permission_is_a_usage_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret.yaml");
    std::fs::write(&file, "spec:\n- run: echo hi\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    // The directory is open to all, so only the file's own mode stands in the way.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // A copy of the runner in it, as the target directory may be closed to `nobody`.
    let runner = dir.path().join("iter8-runner");
    std::fs::copy(env!("CARGO_BIN_EXE_iter8-runner"), &runner).unwrap();
    let file = file.to_string_lossy().into_owned();
    let result = dir
        .path()
        .join("result.yaml")
        .to_string_lossy()
        .into_owned();
    let args = ["-f", file.as_str(), "-o", result.as_str(), "--quiet"];
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let out = if root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&runner)
            .args(args)
            .output()
            .expect("setpriv (util-linux) runs the runner as nobody")
    } else {
        Command::new(&runner).args(args).output().unwrap()
    };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("secret.yaml") && err.to_lowercase().contains("permission denied"),
        "{err}"
    );
}

#[test]
fn endless_and_unreadable_input_files_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
            .current_dir(dir.path())
            .args(["-f", file, "-o", "result.yaml", "--quiet"])
            .output()
            .unwrap()
    };
    let out = run("/dev/zero");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larger than 16 MiB"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("latin1.yaml"),
        b"spec:\n- run: echo caf\xe9\n",
    )
    .unwrap();
    let out = run("latin1.yaml");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not UTF-8 text"),
        "{}",
        stderr(&out)
    );
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let out = run("adir");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));

    let out = iter8(&["report", "-f", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larger than 16 MiB"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn endless_payload_and_ca_files_fail_the_task_with_the_field() {
    let port = closed_port();
    for (field, extra) in [
        (
            "payloadFile",
            format!("url: http://127.0.0.1:{port}/, payloadFile: /dev/zero"),
        ),
        (
            "caFile",
            format!("url: https://127.0.0.1:{port}/, caFile: /dev/zero"),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = runner(
            dir.path(),
            &format!("spec:\n- task: http\n  with: {{{extra}, numRequests: 1}}\n"),
            &[],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let f = result(dir.path()).failed_task.unwrap();
        assert!(
            f.message.contains(field) && f.message.contains("larger than"),
            "{}",
            f.message
        );
    }
}

#[test]
fn slos_on_metrics_no_task_records_are_refused_before_running() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    for (metric, says) in [
        ("http/nope", "records no metric \"nope\""),
        ("http/latency-p101", "not a percentile"),
    ] {
        refused(
            &format!(
                "spec:\n- task: http\n  with: {{url: \"{url}\", numRequests: 1}}\n- task: assess\n  with:\n    SLOs:\n      upper: {{\"{metric}\": 1}}\n"
            ),
            &["task 2 (assess)", says],
        );
    }
}

#[test]
fn invalid_ports_are_errors_not_port_80() {
    for port in ["99999", "-1", "abc"] {
        refused(
            &format!("spec:\n- task: http\n  with: {{url: \"http://127.0.0.1:{port}/\"}}\n"),
            &["with.url", "is not a port number"],
        );
        refused(
            &format!("spec:\n- task: grpc\n  with: {{host: \"127.0.0.1:{port}\", call: a.B/C}}\n"),
            &["with.host", "is not a port number"],
        );
        refused(
            &format!("spec:\n- task: notify\n  with: {{url: \"http://127.0.0.1:{port}/hook\"}}\n"),
            &["with.url", "is not a port number"],
        );
    }
    // custommetrics: the URL comes from a rendered template: the metric is unavailable
    // with the reason, never queried on port 80.
    let dir = tempfile::tempdir().unwrap();
    let out = runner(
        dir.path(),
        "spec:\n- task: custommetrics\n  with:\n    templates:\n      p: {inline: \"url: http://127.0.0.1:99999/q\\nmetrics:\\n- {name: m, type: gauge, jqExpression: .a}\\n\"}\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = result(dir.path());
    let why = &r.insights.unwrap().unavailable_metrics[0]["p/m"];
    assert!(why.contains("is not a port number"), "{why}");
}

#[test]
fn output_that_is_not_a_regular_file_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("experiment.yaml"), "spec:\n- run: 'true'\n").unwrap();
    let target = dir.path().join("target.yaml");
    std::fs::write(&target, "keep me").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("link.yaml")).unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (out_path, kind) in [
        ("link.yaml", "a symbolic link"),
        ("fifo", "a device, FIFO or socket"),
        ("/dev/null", "a device, FIFO or socket"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
            .current_dir(dir.path())
            .args(["-f", "experiment.yaml", "-o", out_path, "--quiet"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{out_path}: {err}");
        assert!(err.contains(kind), "{out_path}: {err}");
    }
    assert!(std::fs::symlink_metadata(dir.path().join("link.yaml"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(!std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_file());
    assert!(!std::fs::symlink_metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_file());
}

#[test]
fn continue_refuses_to_wrap_num_loops() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = ExperimentResult::new(1);
    r.num_loops = u64::MAX;
    std::fs::write(
        dir.path().join("result.yaml"),
        serde_yaml::to_string(&r).unwrap(),
    )
    .unwrap();
    let out = runner(dir.path(), "spec:\n- run: 'true'\n", &["--continue"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("numLoops is at its maximum"),
        "{}",
        stderr(&out)
    );
    assert_eq!(result(dir.path()).num_loops, u64::MAX);
}

#[test]
fn cluster_flags_with_a_file_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.yaml");
    std::fs::write(
        &f,
        serde_yaml::to_string(&ExperimentResult::new(1)).unwrap(),
    )
    .unwrap();
    for flag in [["--kubeconfig", "/tmp/k"], ["--context", "c"], ["-n", "ns"]] {
        for cmd in ["report", "assert"] {
            let mut args = vec![cmd, "-f", f.to_str().unwrap()];
            if cmd == "assert" {
                args.extend(["-c", "completed"]);
            }
            args.extend(flag);
            let out = iter8(&args);
            assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(flag[0]), "{args:?}: {}", stderr(&out));
        }
    }
}

#[test]
fn runner_and_assert_number_the_failed_task_alike() {
    let dir = tempfile::tempdir().unwrap();
    let out = runner(dir.path(), "spec:\n- run: 'true'\n- run: exit 7\n", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("task 2 (run)"), "{}", stderr(&out));
    let r = dir.path().join("result.yaml");
    let out = iter8(&["assert", "-f", r.to_str().unwrap(), "-c", "nofailure"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(text.contains("task 2 (run) failed"), "{text}");
    let out = iter8(&["report", "-f", r.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("task 2 (run) failed"), "{text}");
}

#[test]
fn a_run_against_nothing_has_no_latency_and_fails_latency_slos() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let out = runner(
        dir.path(),
        &format!(
            "spec:\n- task: http\n  with: {{url: \"{url}\", numRequests: 20, qps: 0}}\n- task: assess\n  with:\n    SLOs:\n      upper: {{http/latency-mean: 1000, http/latency-p99: 1000}}\n"
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = result(dir.path());
    assert!(!r.slos_satisfied());
    let ins = r.insights.unwrap();
    assert_eq!(ins.latest(0, "http/request-count"), Some(20.0));
    assert_eq!(ins.latest(0, "http/error-count"), Some(20.0));
    assert_eq!(ins.latest(0, "http/error-refused"), Some(20.0));
    assert_eq!(ins.latest(0, "http/latency-mean"), None);
    assert!(!ins.histogram_metric_values[0].contains_key("http/latency"));
    let sat = ins.slos_satisfied.unwrap();
    assert_eq!(sat.upper, vec![vec![false], vec![false]]);
}

async fn json_server() -> TestServer {
    TestServer::start(Arc::new(|_| {
        (200, "application/json".into(), r#"{"a": 2}"#.into())
    }))
    .await
}

/// The jq evaluator processes (tasks/isolated.rs) whose working directory is `dir`.
fn evaluators_in(dir: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let evaluator = String::from_utf8_lossy(&cmdline).contains("__iter8-eval-jq");
        if evaluator && std::fs::read_link(entry.path().join("cwd")).is_ok_and(|c| c == dir) {
            found.push(pid);
        }
    }
    found
}

fn jq_experiment(server: &TestServer, jq: &str, timeout: &str) -> String {
    format!(
        "spec:\n- task: custommetrics\n  with:\n    timeout: {timeout}\n    templates:\n      p: {{inline: \"url: {}\\nmetrics:\\n- {{name: m, type: gauge, jqExpression: '{jq}'}}\\n\"}}\n",
        server.url("/q")
    )
}

/// Run one jq metric through the runner in `dir`; it exits 0 (a metric that cannot be
/// computed is unavailable, not a failure); the insights.
async fn run_jq(
    server: &TestServer,
    dir: &Path,
    jq: &str,
    timeout: &str,
) -> iter8::model::Insights {
    let exp = jq_experiment(server, jq, timeout);
    let d = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || runner(&d, &exp, &[]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    result(dir).insights.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_that_never_ends_is_cut_at_the_task_timeout() {
    let server = json_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ins = run_jq(&server, dir.path(), "last(repeat(1))", "1s").await;
    let why = &ins.unavailable_metrics[0]["p/m"];
    assert!(why.contains("did not finish within 1s"), "{why}");

    // Recursion (a stack overflow would abort the runner) is refused with the reason.
    let ins = run_jq(&server, dir.path(), "def f: 1 + f; f", "1s").await;
    assert!(ins.unavailable_metrics[0]["p/m"].contains("`def`"));
}

/// A jq expression that asks for gigabytes runs out of its own memory budget (a child
/// process with an address-space limit, tasks/isolated.rs), not the runner's: the metric is
/// unavailable with the reason and the experiment goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_that_asks_for_gigabytes_is_stopped_at_its_memory_budget() {
    let server = json_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ins = run_jq(&server, dir.path(), "[range(1e9)] | length", "5m").await;
    let why = &ins.unavailable_metrics[0]["p/m"];
    assert!(
        why.contains("more than its memory budget of 512 MiB"),
        "{why}"
    );
    // The same evaluator gives ordinary answers.
    let ins = run_jq(&server, dir.path(), ".a * 2", "1m").await;
    assert_eq!(
        ins.latest(0, "p/m"),
        Some(4.0),
        "{:?}",
        ins.unavailable_metrics
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_runner_stuck_in_jq_and_stores_the_result() {
    let server = json_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("experiment.yaml"),
        jq_experiment(&server, "last(repeat(1))", "10m"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir.path())
        .args(["-f", "experiment.yaml", "-o", "result.yaml", "--quiet"])
        .spawn()
        .unwrap();
    // Wait until the query was answered: jq is running now.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.requests().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!server.requests().is_empty(), "the runner never queried");
    // jq runs in its own process (tasks/isolated.rs).
    while evaluators_in(dir.path()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(evaluators_in(dir.path()).len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap().code())
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    // The jq evaluator (a child process started in this directory) ends with the runner (it
    // is killed, then reaped by init): wait for that, not a fixed time.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !evaluators_in(dir.path()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(evaluators_in(dir.path()), Vec::<u32>::new());
    let r = result(dir.path());
    let f = r.failed_task.unwrap();
    assert_eq!(
        (f.index, f.message.as_str()),
        (0, iter8::engine::INTERRUPTED)
    );
}
