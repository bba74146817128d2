//! The GitHub Action's steps (scripts/action/iter8-action, called by action.yml) on example
//! experiments, with the binaries built here instead of the release download.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// Where cargo put the `iter8` package's binaries (beside this test's directory).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    for b in ["iter8", "iter8-runner"] {
        assert!(
            dir.join(b).is_file(),
            "{b} not built: run `cargo build -p iter8 --bins` (or `cargo test --workspace`)"
        );
    }
    dir.to_path_buf()
}

/// One step of the action, as a runner would start it (GITHUB_* files in `work`).
fn step(work: &Path, verb: &str, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/action/iter8-action"))
        .arg(verb)
        .current_dir(repo())
        .env("ITER8_BIN_DIR", bin_dir())
        .env("RUNNER_TEMP", work)
        .env("GITHUB_PATH", work.join("path"))
        .env("GITHUB_OUTPUT", work.join("output"))
        .env("GITHUB_STEP_SUMMARY", work.join("summary"))
        .env_remove("ITER8_RELEASE")
        .env_remove("KUBECONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run the action's script")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_action_runs_an_example_experiment_and_gates_on_it() {
    let work = tempfile::tempdir().expect("dir");
    let w = work.path();
    let out = step(w, "install", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("iter8 "),
        "{}",
        text(&out.stdout)
    );
    let path = std::fs::read_to_string(w.join("path")).expect("GITHUB_PATH");
    assert_eq!(path.trim(), bin_dir().display().to_string());

    let out = step(
        w,
        "run",
        &[
            ("ITER8_EXPERIMENT", "examples/run-only.yaml"),
            ("ITER8_CONDITIONS", "completed,nofailure"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("all conditions hold: completed, nofailure"));
    let output = std::fs::read_to_string(w.join("output")).expect("GITHUB_OUTPUT");
    let result = output
        .trim()
        .strip_prefix("result=")
        .expect("result output");
    assert!(Path::new(result).is_file(), "{result}");
    let summary = std::fs::read_to_string(w.join("summary")).expect("job summary");
    assert!(summary.starts_with("### Iter8 experiment"), "{summary}");
    assert!(
        summary.contains("Tasks completed: 3 / 3"),
        "the report of the 3 tasks: {summary}"
    );
}

#[test]
fn a_failing_experiment_fails_the_step_and_bad_inputs_are_named() {
    let work = tempfile::tempdir().expect("dir");
    let w = work.path();
    let failing = w.join("failing.yaml");
    std::fs::write(&failing, "spec:\n- run: echo before\n- run: exit 7\n").expect("write");
    let out = step(
        w,
        "run",
        &[
            ("ITER8_EXPERIMENT", failing.to_str().expect("utf8")),
            ("ITER8_CONDITIONS", "completed,nofailure"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("condition false: nofailure"),
        "{}",
        text(&out.stdout)
    );

    let out = step(w, "run", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("set experiment"),
        "{}",
        text(&out.stderr)
    );
    let out = step(
        w,
        "run",
        &[
            ("ITER8_EXPERIMENT", "examples/run-only.yaml"),
            ("ITER8_RELEASE", "hello"),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("not both"),
        "{}",
        text(&out.stderr)
    );
    let out = step(w, "run", &[("ITER8_EXPERIMENT", "no/such.yaml")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("no/such.yaml not found"),
        "{}",
        text(&out.stderr)
    );
}
