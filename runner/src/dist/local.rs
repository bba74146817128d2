//! Distributed load on one machine (`iter8-runner --workers N`): this process is worker 0
//! (the coordinator) and starts workers 1..N as child processes of the same binary, which
//! meet it in a private directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::rendezvous::Rendezvous;
use super::{DistError, WorkerRecord};

/// A fresh private directory for a run's records (removed by [`Children::finish`]).
pub fn make_dir(run: &str) -> Result<PathBuf, DistError> {
    let dir = std::env::temp_dir().join(format!("iter8-workers-{run}"));
    std::fs::create_dir(&dir).map_err(|e| DistError::Io(format!("{}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(dir)
}

/// A run identity: process id and time.
pub fn run_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", std::process::id())
}

/// The worker processes 1..N.
pub struct Children {
    dir: PathBuf,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

impl Children {
    /// Start workers 1..`count` as `exe ARGS --worker-index I`. A worker that cannot be
    /// started, or exits with an error without saying why, gets a failure record written
    /// on its behalf, so the coordinator names it at once instead of waiting out the
    /// timeout.
    pub fn spawn(exe: &Path, args: &[String], count: u32, dir: &Path, run: &str) -> Self {
        let mut watchers = Vec::new();
        for index in 1..count {
            let mut cmd = tokio::process::Command::new(exe);
            cmd.args(args)
                .arg("--worker-index")
                .arg(index.to_string())
                .stdin(Stdio::null())
                .kill_on_drop(true);
            let dir = dir.to_path_buf();
            let run = run.to_string();
            let child = cmd.spawn();
            watchers.push(tokio::spawn(async move {
                let why = match child {
                    Err(e) => format!("could not be started: {e}"),
                    Ok(mut child) => match child.wait().await {
                        Ok(s) if s.success() => return,
                        Ok(s) => format!("exited with {s} (its log is above)"),
                        Err(e) => format!("cannot be waited for: {e}"),
                    },
                };
                let rendezvous = Rendezvous::Dir(dir);
                let mut record = rendezvous
                    .read_workers(index + 1)
                    .await
                    .ok()
                    .and_then(|mut all| all.remove(&index))
                    .filter(|r| r.run == run)
                    .unwrap_or_else(|| WorkerRecord {
                        run: run.clone(),
                        ..WorkerRecord::default()
                    });
                if record.failed.is_none() {
                    record.failed = Some(format!("the worker process {why}"));
                    if let Err(e) = rendezvous.write_worker(index, &record).await {
                        tracing::warn!("load worker {index}: cannot record its failure: {e}");
                    }
                }
            }));
        }
        Children {
            dir: dir.to_path_buf(),
            watchers,
        }
    }

    /// Wait (up to `grace`) for the workers to exit, stop those still running, and remove
    /// the run's directory.
    pub async fn finish(mut self, grace: Duration) {
        let all = futures::future::join_all(self.watchers.iter_mut());
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("load workers still running after the loop ended: stopped");
        }
        for w in &self.watchers {
            // An aborted watcher drops its child, which kills it (kill_on_drop).
            w.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
