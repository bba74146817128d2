//! `iter8-runner` end to end on a temporary directory: exit codes and the result file.

use std::path::Path;
use std::process::{Command, Output};

use iter8::model::ExperimentResult;

fn runner(dir: &Path, experiment: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("experiment.yaml"), experiment).expect("write experiment");
    Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir)
        .args(["-f", "experiment.yaml", "-o", "result.yaml"])
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .expect("run iter8-runner")
}

fn result(dir: &Path) -> ExperimentResult {
    let text = std::fs::read_to_string(dir.join("result.yaml")).expect("result file");
    serde_yaml::from_str(&text).expect("result yaml")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn successful_experiment_exits_0_and_writes_the_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = runner(
        dir.path(),
        "spec:\n- run: echo hello\n- run: exit 9\n  if: Result.NumLoops > 1\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = result(dir.path());
    assert_eq!((r.num_loops, r.num_completed_tasks, r.num_tasks), (1, 2, 2));
    assert!(!r.failure);
    // Not a terminal: JSON logs, no progress line.
    let err = stderr(&out);
    assert!(
        err.contains("\"message\":\"task 1 (run): started\""),
        "{err}"
    );
    assert!(!err.contains('\r'), "{err}");

    // --continue: the next loop; now the conditional task runs and fails.
    let out = runner(
        dir.path(),
        "spec:\n- run: echo hello\n- run: exit 9\n  if: Result.NumLoops > 1\n",
        &["--continue", "--quiet"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = result(dir.path());
    assert_eq!((r.num_loops, r.num_completed_tasks), (2, 1));
    let f = r.failed_task.expect("failed task");
    assert_eq!((f.index, f.task.as_str()), (1, "run"));
    assert_eq!(f.message, "the script exited with code 9");
    let err = stderr(&out);
    assert!(
        err.contains("experiment failed: task 2 (run): the script exited with code 9"),
        "{err}"
    );
    // --quiet: only warnings and errors are logged.
    assert!(!err.contains("started"), "{err}");
}

#[test]
fn bad_input_exits_2_with_one_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = runner(
        dir.path(),
        "spec:\n- task: assess\n  with:\n    SLOs:\n      upper:\n      - metric: http/latency-mean\n        limit: 50\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("task 1 (assess): with.SLOs.upper[0]: no earlier task produces metric http/latency-mean"),
        "{}",
        stderr(&out)
    );
    // The result records why nothing ran (what `iter8 assert` reports).
    let r = result(dir.path());
    assert!(r.failure);
    assert_eq!(r.num_completed_tasks, 0);
    let f = r.failed_task.expect("failed task");
    assert_eq!((f.index, f.task.as_str()), (0, "assess"));

    let out = runner(
        dir.path(),
        "spec:\n- task: assess\n  with:\n    SLOs: {upper: [{metric: a/b, limit: ten}]}\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("task 1 (assess): with.SLOs.upper[0].limit: invalid type: string \"ten\", expected a number"),
        "{}",
        stderr(&out)
    );

    let out = runner(dir.path(), "spec:\n- run: 'true'\n  if: Completed(\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("task 1 (run): if: cannot parse"),
        "{}",
        stderr(&out)
    );

    // Missing experiment file.
    let out = Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir.path())
        .args(["-f", "missing.yaml", "-o", "r.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.yaml"), "{}", stderr(&out));

    // Usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .arg("--no-such-flag")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_records_the_interruption_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("experiment.yaml"),
        "spec:\n- run: sleep 30\n- run: 'true'\n",
    )
    .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir.path())
        .args(["-f", "experiment.yaml", "-o", "result.yaml", "--quiet"])
        .spawn()
        .expect("spawn");
    // The result is first written when the loop starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !dir.path().join("result.yaml").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = child.wait().expect("wait").code();
    assert_eq!(code, Some(1));
    let r = result(dir.path());
    assert!(r.failure);
    let f = r.failed_task.expect("failed task");
    assert_eq!(f.index, 0);
    assert_eq!(f.message, iter8::engine::INTERRUPTED);
}

/// A tiny HTTP/1.1 server on 127.0.0.1 (keep-alive; every request gets 200 "ok").
fn ok_server() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    // the request head; GET has no body
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    if writer
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn fail_on_slo_violation_turns_a_violated_slo_into_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = ok_server();
    let experiment = |limit: &str| {
        format!(
            "spec:\n- task: http\n  with:\n    url: http://127.0.0.1:{port}/\n    numRequests: 20\n- task: assess\n  with:\n    SLOs:\n      upper:\n        http/latency-mean: {limit}\n"
        )
    };
    // a mean latency under 0 ms cannot be: the SLO is violated
    let out = runner(dir.path(), &experiment("0"), &["--quiet"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "default: Iter8's exit 0; {}",
        stderr(&out)
    );
    assert!(!result(dir.path()).slos_satisfied());
    let out = runner(
        dir.path(),
        &experiment("0"),
        &["--quiet", "--fail-on-slo-violation"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("SLOs not satisfied (--fail-on-slo-violation)"),
        "{}",
        stderr(&out)
    );
    // the environment variable the chart sets
    let out = Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir.path())
        .args(["-f", "experiment.yaml", "-o", "result.yaml", "--quiet"])
        .env("ITER8_FAIL_ON_SLO_VIOLATION", "true")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // satisfied SLOs: exit 0 with the flag too
    let out = runner(
        dir.path(),
        &experiment("60000"),
        &["--quiet", "--fail-on-slo-violation"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(result(dir.path()).slos_satisfied());
}

fn runner_assert(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iter8-runner"));
    cmd.current_dir(dir)
        .arg("assert")
        .args(args)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run iter8-runner assert")
}

/// `iter8-runner assert` (the chart's `helm test` pod runs it in the runner image): the
/// verdict, output and exit codes of `iter8 assert`.
#[test]
fn runner_assert_gates_on_the_verdict_as_iter8_assert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = ok_server();
    let experiment = |limit: &str| {
        format!(
            "spec:\n- task: http\n  with:\n    url: http://127.0.0.1:{port}/\n    numRequests: 20\n- task: assess\n  with:\n    SLOs:\n      upper:\n        http/latency-mean: {limit}\n"
        )
    };
    let stdout = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let out = runner(dir.path(), &experiment("60000"), &["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ok = ["-f", "result.yaml", "-c", "completed,nofailure,slos"];
    let out = runner_assert(dir.path(), &ok, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("all conditions hold: completed, nofailure, slos"),
        "{}",
        stdout(&out)
    );
    // the chart's runner pods set POD_NAMESPACE and ITER8_RELEASE: no conflict with assert
    let env = [("POD_NAMESPACE", "ns"), ("ITER8_RELEASE", "r")];
    let out = runner_assert(dir.path(), &ok, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // a violated SLO: exit 1, naming it; -o json as iter8 assert
    let out = runner(dir.path(), &experiment("0"), &["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = runner_assert(dir.path(), &ok, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("condition false: slos"), "{text}");
    assert!(text.contains("http/latency-mean"), "{text}");
    let out = runner_assert(
        dir.path(),
        &["-f", "result.yaml", "-c", "slos", "-o", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json verdict");
    assert_eq!(
        (v["ok"].as_bool(), v["exitCode"].as_i64()),
        (Some(false), Some(1))
    );

    // usage errors exit 3 as iter8 assert's (2 is a timeout there)
    let out = runner_assert(dir.path(), &["-f", "result.yaml", "-c", "fast"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("unknown condition \"fast\""),
        "{}",
        stderr(&out)
    );
    let out = runner_assert(dir.path(), &["-f", "result.yaml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = runner_assert(dir.path(), &["-c", "slos", "-f", "missing.yaml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // a run's own flags and assert do not mix
    let out = Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir.path())
        .args(["--quiet", "assert", "-f", "result.yaml", "-c", "slos"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
