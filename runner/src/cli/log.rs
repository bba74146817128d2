//! `iter8 log`: the runner pods' logs of a release.

use std::path::PathBuf;

use std::io::Write;

use clap::Args;

use super::source::cluster_client;
use super::{write_stdout, CliError, ReadError, EXIT_OK};
use crate::k8s::LogOptions;

/// `iter8 log --release R [-n N]` (Iter8: `iter8 k log -g GROUP`).
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Helm release of the experiment (Iter8: `-g` / `--group`).
    #[arg(long, short = 'g', visible_alias = "group", value_name = "RELEASE")]
    pub release: String,
    /// Namespace of the release (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, visible_alias = "kube-context")]
    pub context: Option<String>,
    /// Follow the newest run: print its log as it is written, until its container ends
    /// (waits up to 60s for the container to start).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines of each run's log.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub tail: Option<i64>,
}

pub(super) fn log_cmd(a: &LogArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let source_name = format!("release {}", a.release);
    let fail = |message: String| {
        CliError::Read(ReadError::Source {
            source_name: source_name.clone(),
            message,
        })
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the async runtime: {e}")))?;
    let opts = LogOptions { tail_lines: a.tail };
    runtime.block_on(async {
        let (client, namespace) = cluster_client(
            a.kubeconfig.as_ref(),
            a.context.as_ref(),
            a.namespace.as_ref(),
        )
        .await
        .map_err(&fail)?;
        if !a.follow {
            let logs = crate::k8s::pod_logs(&client, &namespace, &a.release, &opts)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let text = crate::k8s::format_run_logs(&a.release, &namespace, &logs);
            return write_stdout(out, text.as_bytes());
        }
        // Written (and flushed) chunk by chunk; a closed pipe stops the stream.
        let mut write_err = None;
        let mut write = |chunk: &[u8]| {
            write_stdout(out, chunk).map_err(|e| {
                let io = std::io::Error::other(e.to_string());
                write_err = Some(e);
                io
            })
        };
        let followed = crate::k8s::follow_newest_log(
            &client,
            &namespace,
            &a.release,
            &opts,
            crate::k8s::FOLLOW_START_TIMEOUT,
            &mut write,
        )
        .await;
        match (followed, write_err) {
            (_, Some(e)) => Err(e),
            (Ok(_), None) => Ok(()),
            (Err(e), None) => Err(fail(e.to_string())),
        }
    })?;
    Ok(EXIT_OK)
}
