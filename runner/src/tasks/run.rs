//! `run:` steps: a shell script run with `/bin/sh -c` (Iter8 used bash; POSIX sh is what
//! slim images have). The runner's own image has no shell: there a `run:` step fails with a
//! clear message instead of a cryptic spawn error.
//!
//! One exception, so that the experiments Iter8 v0.15's chart renders run unchanged: its
//! download steps, exactly `curl -o FILE URL` (before a grpc task with `protoURL`,
//! `dataURL`, `metadataURL`, `binaryDataURL`, or an http task with `payloadURL`), are done
//! by the runner itself, without a shell or curl: GET URL (16 MiB at most), written to FILE;
//! a relative FILE is placed in the temporary directory (the image's root is read-only).
//! A failed download names the step's URL.

use std::path::Path;
use std::process::Stdio;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{TaskContext, TaskError};

/// The shell `run:` steps use.
pub const SHELL: &str = "/bin/sh";

/// How much of stderr a failure message quotes.
const STDERR_TAIL_BYTES: usize = 2000;

/// A `run:` step.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunTask {
    /// The script, run with `/bin/sh -c`.
    pub run: String,
}

impl RunTask {
    pub fn validate(&self) -> Result<(), TaskError> {
        if self.run.trim().is_empty() {
            return Err(TaskError::invalid(
                "run",
                "the script is empty; give a shell command, e.g. `run: echo hello`",
            ));
        }
        Ok(())
    }

    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        if let Some((file, url)) = curl_download(&self.run) {
            return download(file, url).await;
        }
        self.run_with_shell(ctx, Path::new(SHELL)).await
    }

    /// Run with the given shell (tests use a missing path to check the no-shell message).
    pub async fn run_with_shell(
        &self,
        ctx: &mut TaskContext<'_>,
        shell: &Path,
    ) -> Result<(), TaskError> {
        if !shell.exists() {
            return Err(TaskError::Failed(format!(
                "this image has no shell ({} not found), so `run:` steps cannot run here; use a task instead, or run the experiment where a shell exists",
                shell.display()
            )));
        }
        ctx.progress.start("run", 0);
        let output = tokio::process::Command::new(shell)
            .arg("-c")
            .arg(&self.run)
            .env("TEMP_DIR", std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| TaskError::Failed(format!("cannot start {} -c: {e}", shell.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            tracing::info!(task = ctx.index + 1, "run: {line}");
        }
        if output.status.success() {
            for line in String::from_utf8_lossy(&output.stderr).lines() {
                tracing::info!(task = ctx.index + 1, "run (stderr): {line}");
            }
        }
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = tail(stderr.trim_end(), STDERR_TAIL_BYTES);
        let how = match output.status.code() {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".to_string(),
        };
        Err(TaskError::Failed(if tail.is_empty() {
            format!("the script {how}")
        } else {
            format!("the script {how}; stderr: {tail}")
        }))
    }
}

/// The last `max` bytes of `s`, on a character boundary.
/// `curl -o FILE URL` (Iter8's chart's download step): FILE and URL.
fn curl_download(script: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = script.split_whitespace().collect();
    match words.as_slice() {
        ["curl", "-o", file, url] if url.starts_with("http://") || url.starts_with("https://") => {
            Some((file, url))
        }
        _ => None,
    }
}

/// Time allowed for a download step.
const DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn download(file: &str, url: &str) -> Result<(), TaskError> {
    let shown = super::httpcall::redact_url(url);
    let fail = |why: String| TaskError::Failed(format!("run: curl -o {file} {shown}: {why}"));
    let resp = super::httpcall::send("GET", url, &[], None, DOWNLOAD_TIMEOUT)
        .await
        .map_err(fail)?;
    if !(200..300).contains(&resp.status) {
        return Err(fail(format!("HTTP status {}", resp.status)));
    }
    let path = Path::new(file);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::temp_dir().join(path)
    };
    std::fs::write(&path, &resp.body)
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(
        url = shown.as_str(),
        file = %path.display(),
        bytes = resp.body.len(),
        "run: downloaded by the runner (Iter8's chart download step; no shell needed)"
    );
    Ok(())
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Insights;
    use crate::tasks::Progress;

    async fn run(script: &str, shell: &str) -> Result<(), TaskError> {
        let mut insights = Insights::default();
        let progress = Progress::default();
        let mut ctx = TaskContext {
            index: 0,
            experiment_start: chrono::Utc::now(),
            namespace: None,
            insights: &mut insights,
            progress: &progress,
            kube: None,
        };
        RunTask { run: script.into() }
            .run_with_shell(&mut ctx, Path::new(shell))
            .await
    }

    #[tokio::test]
    async fn success_runs_the_script_through_the_shell() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        let script = format!(
            "echo out; x=1; [ $x -eq 1 ] && echo yes > '{}'",
            marker.display()
        );
        run(&script, SHELL).await.expect("script succeeds");
        assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "yes\n");
    }

    #[tokio::test]
    async fn non_zero_exit_fails_with_code_and_stderr_tail() {
        let e = run("echo first >&2; echo 'disk full' >&2; exit 7", SHELL)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(e, "the script exited with code 7; stderr: first\ndisk full");
        let e = run("exit 1", SHELL).await.unwrap_err().to_string();
        assert_eq!(e, "the script exited with code 1");
        // Long stderr: only the tail is quoted.
        let e = run(
            "i=0; while [ $i -lt 500 ]; do echo line-$i >&2; i=$((i+1)); done; exit 2",
            SHELL,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.ends_with("line-499"), "{e}");
        assert!(!e.contains("line-0\n"), "{e}");
        assert!(e.len() < STDERR_TAIL_BYTES + 100);
    }

    #[tokio::test]
    async fn no_shell_is_a_clear_failure() {
        let e = run("echo hi", "/nonexistent/sh")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("this image has no shell (/nonexistent/sh not found), so `run:` steps cannot run here"),
            "{e}"
        );
    }

    #[test]
    fn empty_script_is_invalid() {
        let e = RunTask { run: "  ".into() }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("run: the script is empty"), "{e}");
        assert!(RunTask { run: "true".into() }.validate().is_ok());
    }
}
