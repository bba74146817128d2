//! Where a result comes from (`-f FILE` or `--release R`) and reading it.

use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::model::ExperimentResult;

/// Where the result is read from.
#[derive(Args, Debug, Clone, Default)]
pub struct SourceArgs {
    /// Result file (written by `iter8-runner -o result.yaml`).
    #[arg(short = 'f', long = "file", value_name = "RESULT_FILE")]
    pub file: Option<PathBuf>,
    /// Helm release whose Secret holds the result (in a cluster; Iter8: `-g` / `--group`).
    #[arg(
        long,
        short = 'g',
        visible_alias = "group",
        value_name = "RELEASE",
        conflicts_with = "file"
    )]
    pub release: Option<String>,
    /// Namespace of the release (default: the kubeconfig context's).
    #[arg(short = 'n', long, requires = "release")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, requires = "release")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, visible_alias = "kube-context", requires = "release")]
    pub context: Option<String>,
}

/// A Helm release holding a result in its Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRef {
    pub name: String,
    pub namespace: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// Where a result is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultSource {
    File(PathBuf),
    Release(ReleaseRef),
}

impl std::fmt::Display for ResultSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultSource::File(p) => write!(f, "result file {}", p.display()),
            ResultSource::Release(r) => match &r.namespace {
                Some(ns) => write!(f, "release {} in namespace {ns}", r.name),
                None => write!(f, "release {}", r.name),
            },
        }
    }
}

impl SourceArgs {
    /// The source these flags name.
    pub fn source(&self) -> Result<ResultSource, CliError> {
        if self.file.is_some() {
            // Cluster flags with a local file would be silently ignored: say so instead.
            for (flag, given) in [
                ("-n/--namespace", self.namespace.is_some()),
                ("--kubeconfig", self.kubeconfig.is_some()),
                ("--context", self.context.is_some()),
            ] {
                if given {
                    return Err(CliError::Usage(format!(
                        "{flag} applies to --release (a result in a cluster) only; -f reads a \
                         local file: leave {flag} out, or use --release instead of -f"
                    )));
                }
            }
        }
        match (&self.file, &self.release) {
            (Some(f), None) => Ok(ResultSource::File(f.clone())),
            (None, Some(r)) => Ok(ResultSource::Release(ReleaseRef {
                name: r.clone(),
                namespace: self.namespace.clone(),
                kubeconfig: self.kubeconfig.clone(),
                context: self.context.clone(),
            })),
            _ => Err(CliError::Usage(
                "no result given: use -f result.yaml (a local run's result) or --release NAME \
                 [-n NAMESPACE] (an experiment in a cluster)"
                    .to_string(),
            )),
        }
    }
}

/// Why a result could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "invalid result file {path}: {message}; the file must be a result written by \
         iter8-runner (YAML) or an Iter8 v0.15 experiment document (spec + result)"
    )]
    Invalid { path: String, message: String },
    #[error("cannot read the result of {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
}

/// Reads results from a [`ResultSource`].
pub trait ResultReader {
    /// `Ok(None)`: the result is not there (yet): no file, or no result in the Secret.
    fn read(&self, source: &ResultSource) -> Result<Option<ExperimentResult>, ReadError>;

    /// Whether the verdict on `result` can no longer change, so `assert --timeout` need
    /// not wait any longer. Default: the result's loop is over (every task completed, or
    /// one failed).
    fn verdict_final(&self, _source: &ResultSource, result: Option<&ExperimentResult>) -> bool {
        result.is_some_and(|r| r.completed() || r.failure)
    }
}

/// Reads result files; a release source is an error (no cluster access in this reader).
#[derive(Debug, Default, Clone, Copy)]
pub struct FileReader;

impl ResultReader for FileReader {
    fn read(&self, source: &ResultSource) -> Result<Option<ExperimentResult>, ReadError> {
        match source {
            ResultSource::File(path) => read_result_file(path),
            ResultSource::Release(_) => Err(ReadError::Source {
                source_name: source.to_string(),
                message: "reading results from a cluster is not available in this build; \
                          use -f with a result file"
                    .to_string(),
            }),
        }
    }
}

/// Read and parse a result file. `Ok(None)` when the file does not exist.
pub fn read_result_file(path: &Path) -> Result<Option<ExperimentResult>, ReadError> {
    use crate::model::limits::{read_text_capped, ReadError as Capped, MAX_DOCUMENT_BYTES};
    let text = match read_text_capped(path, MAX_DOCUMENT_BYTES) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(Capped::Io(e)) => {
            return Err(ReadError::Io {
                path: path.display().to_string(),
                source: e,
            })
        }
        Err(e) => {
            return Err(ReadError::Invalid {
                path: path.display().to_string(),
                message: format!("the file {e}"),
            })
        }
    };
    parse_result(&text, &path.display().to_string()).map(Some)
}

/// Parse a result document (YAML or JSON): ours, or an Iter8 v0.15 experiment document
/// (`spec` + `result`); `what` names it in errors.
pub fn parse_result(text: &str, what: &str) -> Result<ExperimentResult, ReadError> {
    crate::model::iter8doc::parse_any_result(text).map_err(|e| ReadError::Invalid {
        path: what.to_string(),
        message: e.to_string(),
    })
}

/// Reads result files and, for `--release`, the release's Secret in a cluster (kubeconfig
/// resolved like kubectl). `Ok(None)` while the Secret has no result (of the current
/// revision) yet, so `assert --timeout` keeps polling.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClusterReader;

impl ResultReader for ClusterReader {
    /// For a release: no runner of it is active (every Job finished, no CronJob); unknown
    /// (e.g. no permission to list Jobs) counts as "may still change".
    fn verdict_final(&self, source: &ResultSource, result: Option<&ExperimentResult>) -> bool {
        let release = match source {
            ResultSource::File(_) => return result.is_some_and(|r| r.completed() || r.failure),
            ResultSource::Release(r) => r,
        };
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return false;
        };
        runtime.block_on(async {
            let Ok((client, namespace)) = cluster_client(
                release.kubeconfig.as_ref(),
                release.context.as_ref(),
                release.namespace.as_ref(),
            )
            .await
            else {
                return false;
            };
            matches!(
                crate::k8s::runner_active(&client, &namespace, &release.name).await,
                Ok(false)
            )
        })
    }

    fn read(&self, source: &ResultSource) -> Result<Option<ExperimentResult>, ReadError> {
        let release = match source {
            ResultSource::File(path) => return read_result_file(path),
            ResultSource::Release(r) => r,
        };
        let fail = |message: String| ReadError::Source {
            source_name: source.to_string(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(async {
            let (client, namespace) = cluster_client(
                release.kubeconfig.as_ref(),
                release.context.as_ref(),
                release.namespace.as_ref(),
            )
            .await
            .map_err(fail)?;
            crate::store::secret::read_result(client, &namespace, &release.name)
                .await
                .map_err(|e| fail(e.to_string()))
        })
    }
}

/// Reads like [`ClusterReader`], but judges whether a verdict can still change from the
/// result alone (its loop completed or failed), so reading a release needs nothing but `get`
/// on its Secret: what `iter8-runner assert` uses in the chart's `helm test` pod, whose Role
/// allows no more (no listing of Jobs and CronJobs).
#[derive(Debug, Default, Clone, Copy)]
pub struct SecretOnlyReader;

impl ResultReader for SecretOnlyReader {
    fn read(&self, source: &ResultSource) -> Result<Option<ExperimentResult>, ReadError> {
        ClusterReader.read(source)
    }
}

/// A client and the namespace to use (`-n`, else the kubeconfig context's).
pub(super) async fn cluster_client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&String>,
    namespace: Option<&String>,
) -> Result<(kube::Client, String), String> {
    let opts = crate::k8s::ClientOptions {
        kubeconfig: kubeconfig.cloned(),
        context: context.cloned(),
    };
    let client = crate::k8s::client(&opts).await.map_err(|e| e.to_string())?;
    let ns = namespace
        .cloned()
        .unwrap_or_else(|| client.default_namespace().to_string());
    Ok((client, ns))
}
