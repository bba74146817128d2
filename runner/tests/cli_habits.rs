//! The habits users bring from kubectl and helm, on the real binaries: `version`,
//! shell completion, `assert -o json`, `-n` / `--kube-context`, a closed pipe, `NO_COLOR`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ITER8: &str = env!("CARGO_BIN_EXE_iter8");
const RUNNER: &str = env!("CARGO_BIN_EXE_iter8-runner");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.yaml"))
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("POD_NAMESPACE")
        .env_remove("ITER8_RELEASE")
        .output()
        .expect("run binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let out = run(ITER8, &["version"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("iter8 {}", env!("CARGO_PKG_VERSION")));
    let commit = lines[1].strip_prefix("commit: ").expect("commit line");
    // In a git checkout (and without ITER8_GIT_COMMIT) it is the checked-out commit.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_string());
    match (head, option_env!("ITER8_GIT_COMMIT")) {
        (_, Some(given)) => assert_eq!(commit, given),
        (Some(head), None) => assert_eq!(commit, head),
        (None, None) => assert_eq!(commit, "unknown"),
    }
    let built = lines[2].strip_prefix("built: ").expect("built line");
    let when = chrono::DateTime::parse_from_rfc3339(built).expect("RFC 3339 build date");
    assert!(when <= chrono::Utc::now(), "{built} is in the future");

    assert_eq!(
        text(&run(ITER8, &["version", "--short"]).stdout),
        format!("{}\n", env!("CARGO_PKG_VERSION"))
    );
    // --version of both binaries carries the same build information.
    for bin in [ITER8, RUNNER] {
        let v = text(&run(bin, &["--version"]).stdout);
        assert!(
            v.contains(&format!("(commit {commit}, built {built})")),
            "{v}"
        );
    }
}

#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let out = run(ITER8, &["completion", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("iter8.bash");
    std::fs::write(&script, &out.stdout).expect("write");
    // Source it in a real bash and call the completion function as bash does on TAB
    // (command, word being completed, previous word).
    let complete = |words: &str, cword: usize| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; \
                 COMP_POINT=${{#COMP_LINE}}; _iter8 iter8 \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .expect("bash");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let subcommands = complete("iter8 ''", 1);
    for sub in ["report", "assert", "log", "version", "completion"] {
        assert!(
            subcommands.split_whitespace().any(|w| w == sub),
            "{subcommands}"
        );
    }
    assert_eq!(complete("iter8 as", 1).trim(), "assert");
    let flags = complete("iter8 log --", 2);
    for flag in ["--follow", "--tail", "--kube-context", "--namespace"] {
        assert!(flags.split_whitespace().any(|w| w == flag), "{flags}");
    }
}

#[test]
fn zsh_and_fish_completion_scripts() {
    let zsh = text(&run(ITER8, &["completion", "zsh"]).stdout);
    assert!(zsh.starts_with("#compdef iter8"), "{zsh}");
    let fish = text(&run(ITER8, &["completion", "fish"]).stdout);
    assert!(
        fish.contains("complete -c iter8") && fish.contains("-a \"assert\""),
        "{fish}"
    );
    let bad = run(ITER8, &["completion", "tcsh"]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        text(&bad.stderr).contains("possible values: bash"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn assert_json_output_for_pipelines() {
    let ok = fixture("one-version");
    let out = run(
        ITER8,
        &[
            "assert",
            "-f",
            ok.to_str().expect("utf8"),
            "-c",
            "completed,nofailure,slos",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["ok"], true);
    assert_eq!(v["outcome"], "hold");
    assert_eq!(v["exitCode"], 0);
    let names: Vec<&str> = v["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["completed", "nofailure", "slos"]);

    let bad = fixture("three-versions");
    let out = run(
        ITER8,
        &[
            "assert",
            "-f",
            bad.to_str().expect("utf8"),
            "-c",
            "completed,slos",
            "--output=json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (v["ok"].clone(), v["outcome"].clone()),
        (false.into(), "false".into())
    );
    assert_eq!(v["conditions"][0]["holds"], true);
    assert_eq!(v["conditions"][1]["holds"], false);
    let reasons = v["conditions"][1]["reasons"].to_string();
    assert!(
        reasons.contains("SLO violated: version v3: http/error-rate"),
        "{reasons}"
    );

    // A timeout with no result: outcome timeout, exit 2, the reason per condition.
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("none.yaml");
    let out = run(
        ITER8,
        &[
            "assert",
            "-f",
            missing.to_str().expect("utf8"),
            "-c",
            "completed",
            "-o",
            "json",
            "--timeout",
            "50ms",
            "--poll-interval",
            "10ms",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["outcome"], "timeout");
    assert_eq!(v["exitCode"], 2);
    assert!(v["message"]
        .as_str()
        .expect("message")
        .starts_with("timed out after 50ms"));
    assert!(v["conditions"][0]["reasons"][0]
        .as_str()
        .expect("reason")
        .ends_with("has no result yet"));
}

/// Run with standard output a pipe whose reader is gone before anything is written.
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(ITER8)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    (child.wait().expect("wait").code(), err)
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let f = fixture("three-versions");
    let f = f.to_str().expect("utf8");
    for args in [
        vec!["report", "-f", f, "-o", "html"],
        vec!["report", "-f", f],
        vec!["version"],
        vec!["completion", "bash"],
    ] {
        let (code, err) = into_closed_pipe(&args);
        assert_eq!((code, err.as_str()), (Some(0), ""), "iter8 {args:?}");
    }
    // assert keeps its verdict as exit code
    let (code, err) = into_closed_pipe(&["assert", "-f", f, "-c", "slos"]);
    assert_eq!((code, err.as_str()), (Some(1), ""));
}

#[test]
fn kube_context_is_accepted_beside_context_and_runner_takes_n() {
    let dir = tempfile::tempdir().expect("dir");
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:1\"}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .expect("write");
    let kc = kc.to_str().expect("utf8");
    // The context named by either flag is looked up (and is missing).
    for flag in ["--context", "--kube-context"] {
        let out = run(
            ITER8,
            &[
                "report",
                "--release",
                "exp",
                "-n",
                "ns",
                "--kubeconfig",
                kc,
                flag,
                "nowhere",
            ],
        );
        assert_eq!(out.status.code(), Some(3));
        assert!(
            text(&out.stderr).contains("nowhere"),
            "{flag}: {}",
            text(&out.stderr)
        );
        let out = run(
            RUNNER,
            &[
                "-n",
                "ns",
                "--release",
                "exp",
                "--kubeconfig",
                kc,
                flag,
                "nowhere",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("nowhere"),
            "{flag}: {}",
            text(&out.stderr)
        );
    }
    // -n satisfies --release's need of a namespace
    let out = run(RUNNER, &["--release", "exp"]);
    assert!(text(&out.stderr).contains("--namespace"));
}

/// The runner's human log on a terminal (a pty made by util-linux `script`).
fn runner_on_a_terminal(dir: &Path, no_color: bool) -> String {
    std::fs::write(dir.join("e.yaml"), "spec:\n- run: echo hi\n").expect("write");
    let cmd = format!("{RUNNER} -f e.yaml -o r.yaml --log-format human");
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let out = c.output().expect("script (util-linux)");
    assert!(out.status.success(), "{}", text(&out.stdout));
    text(&out.stdout)
}

#[test]
fn no_color_turns_off_the_runners_colours() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no util-linux `script` to make a terminal");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let coloured = runner_on_a_terminal(dir.path(), false);
    assert!(coloured.contains("task 1 (run): started"), "{coloured}");
    assert!(
        coloured.contains("\x1b[32m"),
        "levels are green on a terminal: {coloured:?}"
    );
    let plain = runner_on_a_terminal(dir.path(), true);
    assert!(plain.contains("task 1 (run): started"), "{plain}");
    // No SGR (colour / dim / bold) sequence; the progress line's erase (ESC[2K) may stay.
    assert!(has_sgr(&coloured));
    assert!(!has_sgr(&plain), "{plain:?}");
}

/// Whether `s` holds an ANSI "select graphic rendition" sequence: ESC [ digits/; m.
fn has_sgr(s: &str) -> bool {
    s.split("\x1b[").skip(1).any(|rest| {
        let params = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
        params.starts_with('m')
    })
}
