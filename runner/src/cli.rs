//! The `iter8` companion CLI: `report` and `assert` on an experiment result.
//!
//! The binary only calls [`main_with_args`]; tests call [`run_with`] in-process with their
//! own output buffers. Exit codes of `assert` (and of every usage / read error):
//! [`EXIT_OK`] all conditions hold, [`EXIT_FALSE`] a condition is false, [`EXIT_TIMEOUT`]
//! `--timeout` passed before the conditions held, [`EXIT_ERROR`] usage or read error.
//!
//! Where the result comes from is a [`ResultSource`]: a file (`-f`) or a Helm release's
//! Secret (`--release`, `-n`, `--kubeconfig`, `--context`). Reading is done by a
//! [`ResultReader`]; [`FileReader`] reads files; a cluster reader plugs in through
//! [`run_with`].

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::model::duration::parse_duration;
use crate::model::ExperimentResult;
use crate::report::{self, view, Format};

/// All conditions hold (or the command succeeded).
pub const EXIT_OK: i32 = 0;
/// A condition is false.
pub const EXIT_FALSE: i32 = 1;
/// `--timeout` passed before the conditions held.
pub const EXIT_TIMEOUT: i32 = 2;
/// Usage error or the result could not be read.
pub const EXIT_ERROR: i32 = 3;

/// `iter8`: read experiment results: report them, gate pipelines on them.
#[derive(Parser, Debug, Clone)]
#[command(name = "iter8", version, about, propagate_version = true)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Show an experiment's result (text, JSON, YAML or a self-contained HTML page).
    Report(ReportArgs),
    /// Check conditions on an experiment's result; exit 0 when all hold, 1 when one is
    /// false, 2 when --timeout passed first, 3 on usage or read errors.
    Assert(AssertArgs),
    /// Print the logs of an experiment's runner pods (Job and CronJob runs, newest first).
    Log(LogArgs),
}

/// `iter8 log --release R [-n N]`.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Helm release of the experiment.
    #[arg(long, value_name = "RELEASE")]
    pub release: String,
    /// Namespace of the release (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// Where the result is read from.
#[derive(Args, Debug, Clone, Default)]
pub struct SourceArgs {
    /// Result file (written by `iter8-runner -o result.yaml`).
    #[arg(short = 'f', long = "file", value_name = "RESULT_FILE")]
    pub file: Option<PathBuf>,
    /// Helm release whose Secret holds the result (in a cluster).
    #[arg(long, value_name = "RELEASE", conflicts_with = "file")]
    pub release: Option<String>,
    /// Namespace of the release (default: the kubeconfig context's).
    #[arg(short = 'n', long, requires = "release")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, requires = "release")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, requires = "release")]
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

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "PATH")]
    pub output_file: Option<PathBuf>,
    /// Open the report in a browser (writes it to --output-file or a temporary file).
    #[arg(long)]
    pub open: bool,
    /// Command that opens the file (default: $BROWSER, else xdg-open or open).
    #[arg(long, env = "BROWSER", hide = true)]
    pub browser: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct AssertArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Conditions that must hold: completed, nofailure, slos (repeat -c or separate with
    /// commas).
    #[arg(
        short = 'c',
        long = "condition",
        required = true,
        value_name = "CONDITION"
    )]
    pub conditions: Vec<String>,
    /// Keep checking (about every second) until the conditions hold or this much time
    /// passed, e.g. 60s, 5m. Without it, check once.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Time between checks while waiting (tests shorten it).
    #[arg(long, value_name = "DURATION", default_value = "1s", hide = true)]
    pub poll_interval: String,
}

/// A condition of `iter8 assert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Completed,
    NoFailure,
    Slos,
}

/// The condition names `assert -c` accepts.
pub const VALID_CONDITIONS: &str = "completed, nofailure, slos";

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::Completed => "completed",
            Condition::NoFailure => "nofailure",
            Condition::Slos => "slos",
        }
    }

    /// Parse repeated / comma-separated condition arguments (duplicates dropped).
    pub fn parse_all(args: &[String]) -> Result<Vec<Condition>, CliError> {
        let mut out = Vec::new();
        for arg in args {
            for part in arg.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let c = match part.to_ascii_lowercase().as_str() {
                    "completed" => Condition::Completed,
                    "nofailure" | "no-failure" => Condition::NoFailure,
                    "slos" => Condition::Slos,
                    _ => {
                        return Err(CliError::Usage(format!(
                            "unknown condition {part:?}: valid conditions are {VALID_CONDITIONS}"
                        )))
                    }
                };
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        if out.is_empty() {
            return Err(CliError::Usage(format!(
                "no condition given: use -c with one or more of {VALID_CONDITIONS}"
            )));
        }
        Ok(out)
    }

    /// Whether the condition holds for `result`.
    pub fn holds(self, result: &ExperimentResult) -> bool {
        match self {
            Condition::Completed => result.completed(),
            Condition::NoFailure => result.no_failure(),
            Condition::Slos => result.slos_satisfied(),
        }
    }

    /// Why the condition is false (lines to print under it).
    pub fn explain(self, result: &ExperimentResult) -> Vec<String> {
        match self {
            Condition::Completed => vec![format!(
                "{} of {} tasks completed in loop {}",
                result.num_completed_tasks, result.num_tasks, result.num_loops
            )],
            Condition::NoFailure => vec![match &result.failed_task {
                Some(t) => format!("task {} ({}) failed: {}", t.index, t.task, t.message),
                None => "a task failed".to_string(),
            }],
            Condition::Slos => {
                let rows = view::slo_rows(result);
                let mut lines: Vec<String> = rows
                    .iter()
                    .filter(|r| !r.satisfied)
                    .map(|r| {
                        let units = r.units.as_deref();
                        match r.value {
                            Some(v) => format!(
                                "SLO violated: version {}: {} = {}, {} limit {}",
                                r.version_name,
                                r.metric,
                                view::fmt_with_units(v, units),
                                r.kind.as_str(),
                                view::fmt_with_units(r.limit, units),
                            ),
                            None => format!(
                                "SLO not satisfied: version {}: {} has no value ({} limit {})",
                                r.version_name,
                                r.metric,
                                r.kind.as_str(),
                                view::fmt_with_units(r.limit, units),
                            ),
                        }
                    })
                    .collect();
                if lines.is_empty() {
                    lines.push("the SLOs were not assessed yet".to_string());
                }
                lines
            }
        }
    }
}

/// Errors of the CLI (all exit with [`EXIT_ERROR`]).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Report(#[from] report::ReportError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
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
         iter8-runner (YAML)"
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
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ReadError::Io {
                path: path.display().to_string(),
                source: e,
            })
        }
    };
    parse_result(&text, &path.display().to_string()).map(Some)
}

/// Parse a result document (YAML or JSON); `what` names it in errors.
pub fn parse_result(text: &str, what: &str) -> Result<ExperimentResult, ReadError> {
    serde_yaml::from_str(text).map_err(|e| ReadError::Invalid {
        path: what.to_string(),
        message: e.to_string(),
    })
}

/// Run the CLI with these arguments (the binary's `main`). Returns the exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    main_with_reader(args, &ClusterReader)
}

/// Like [`main_with_args`], reading results through `reader` (e.g. one that also reads
/// a release's Secret). Usage errors exit with [`EXIT_ERROR`]; `--help` / `--version`
/// with [`EXIT_OK`].
pub fn main_with_reader<I, T>(args: I, reader: &dyn ResultReader) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let opts = match Opts::try_parse_from(args) {
        Ok(o) => o,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    run_with_stdio(&opts, reader)
}

/// Run with standard output / error and the file reader.
pub fn run(opts: &Opts) -> i32 {
    run_with_stdio(opts, &ClusterReader)
}

fn run_with_stdio(opts: &Opts, reader: &dyn ResultReader) -> i32 {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    run_with(opts, reader, color, &mut out, &mut err)
}

/// Run with the given reader and outputs. `color`: ANSI colours in text reports.
pub fn run_with(
    opts: &Opts,
    reader: &dyn ResultReader,
    color: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let outcome = match &opts.command {
        Command::Report(a) => report_cmd(a, reader, color, out),
        Command::Assert(a) => assert_cmd(a, reader, out),
        Command::Log(a) => log_cmd(a, out),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            EXIT_ERROR
        }
    }
}

fn read_required(
    reader: &dyn ResultReader,
    source: &ResultSource,
) -> Result<ExperimentResult, CliError> {
    match reader.read(source)? {
        Some(r) => Ok(r),
        None => Err(CliError::Usage(match source {
            ResultSource::File(p) => format!(
                "result file {} not found: run the experiment first \
                 (iter8-runner -f experiment.yaml -o {})",
                p.display(),
                p.display()
            ),
            other => format!("{other} has no result yet"),
        })),
    }
}

fn report_cmd(
    a: &ReportArgs,
    reader: &dyn ResultReader,
    color: bool,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let source = a.source.source()?;
    let result = read_required(reader, &source)?;
    let to_file = a.open || a.output_file.is_some();
    let body = report::render(&result, a.output, color && !to_file)?;
    let write_err = |path: &str, e: std::io::Error| CliError::Write {
        path: path.to_string(),
        source: e,
    };
    if !to_file {
        out.write_all(body.as_bytes())
            .map_err(|e| write_err("standard output", e))?;
        return Ok(EXIT_OK);
    }
    let path = match &a.output_file {
        Some(p) => p.clone(),
        None => temp_report_path(a.output),
    };
    std::fs::write(&path, body.as_bytes())
        .map_err(|e| write_err(&path.display().to_string(), e))?;
    if !a.open {
        let _ = writeln!(out, "report written to {}", path.display());
        return Ok(EXIT_OK);
    }
    match open_in_browser(&path, a.browser.as_deref()) {
        Ok(cmd) => {
            let _ = writeln!(
                out,
                "report written to {} (opened with {cmd})",
                path.display()
            );
        }
        Err(why) => {
            let _ = writeln!(
                out,
                "report written to {}; {why}: open it in a browser yourself",
                path.display()
            );
        }
    }
    Ok(EXIT_OK)
}

fn temp_report_path(format: Format) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!(
        "iter8-report-{}-{nanos}.{}",
        std::process::id(),
        format.extension()
    ))
}

/// Open `path` with `browser` (a command), else `xdg-open` / `open` where present.
/// Returns the command used, or why none could be used.
fn open_in_browser(path: &Path, browser: Option<&str>) -> Result<String, String> {
    let mut candidates: Vec<String> = Vec::new();
    if let Some(b) = browser.filter(|b| !b.trim().is_empty()) {
        candidates.push(b.to_string());
    } else {
        for c in ["xdg-open", "open"] {
            if find_in_path(c).is_some() {
                candidates.push(c.to_string());
            }
        }
    }
    if candidates.is_empty() {
        return Err("no browser opener found (xdg-open / open; or set $BROWSER)".to_string());
    }
    let mut last = String::new();
    for c in candidates {
        match std::process::Command::new(&c)
            .arg(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => return Ok(c),
            Ok(s) => last = format!("{c} exited with {s}"),
            Err(e) => last = format!("cannot run {c}: {e}"),
        }
    }
    Err(last)
}

fn find_in_path(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

fn assert_cmd(
    a: &AssertArgs,
    reader: &dyn ResultReader,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let conditions = Condition::parse_all(&a.conditions)?;
    let source = a.source.source()?;
    let names = conditions
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ");
    let timeout = match &a.timeout {
        Some(t) => Some(parse_duration(t).map_err(|e| CliError::Usage(format!("--timeout: {e}")))?),
        None => None,
    };
    let poll = parse_duration(&a.poll_interval)
        .map_err(|e| CliError::Usage(format!("--poll-interval: {e}")))?
        .max(Duration::from_millis(10));

    let Some(timeout) = timeout else {
        let result = read_required(reader, &source)?;
        return Ok(report_conditions(&conditions, &result, &names, out));
    };

    let timeout_text = a.timeout.as_deref().unwrap_or_default().trim();
    let deadline = Instant::now() + timeout;
    loop {
        // While waiting, a missing or unreadable result is "not yet".
        let read = reader.read(&source);
        if let Ok(Some(result)) = &read {
            if conditions.iter().all(|c| c.holds(result)) {
                return Ok(report_conditions(&conditions, result, &names, out));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return match read {
                Ok(Some(result)) => {
                    let _ = writeln!(out, "timed out after {} waiting for: {names}", timeout_text);
                    write_false(&conditions, &result, out);
                    Ok(EXIT_TIMEOUT)
                }
                Ok(None) => {
                    let _ = writeln!(
                        out,
                        "timed out after {} waiting for: {names}; {source} has no result yet",
                        timeout_text
                    );
                    Ok(EXIT_TIMEOUT)
                }
                Err(e) => Err(e.into()),
            };
        }
        std::thread::sleep(poll.min(deadline - now));
    }
}

fn write_false(conditions: &[Condition], result: &ExperimentResult, out: &mut dyn Write) {
    for c in conditions.iter().filter(|c| !c.holds(result)) {
        let _ = writeln!(out, "condition false: {}", c.name());
        for line in c.explain(result) {
            let _ = writeln!(out, "  {line}");
        }
    }
}

fn report_conditions(
    conditions: &[Condition],
    result: &ExperimentResult,
    names: &str,
    out: &mut dyn Write,
) -> i32 {
    if conditions.iter().all(|c| c.holds(result)) {
        let _ = writeln!(out, "all conditions hold: {names}");
        EXIT_OK
    } else {
        write_false(conditions, result, out);
        EXIT_FALSE
    }
}

/// Reads result files and, for `--release`, the release's Secret in a cluster (kubeconfig
/// resolved like kubectl). `Ok(None)` while the Secret has no result (of the current
/// revision) yet, so `assert --timeout` keeps polling.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClusterReader;

impl ResultReader for ClusterReader {
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

/// A client and the namespace to use (`-n`, else the kubeconfig context's).
async fn cluster_client(
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

fn log_cmd(a: &LogArgs, out: &mut dyn Write) -> Result<i32, CliError> {
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
    let text = runtime.block_on(async {
        let (client, namespace) = cluster_client(
            a.kubeconfig.as_ref(),
            a.context.as_ref(),
            a.namespace.as_ref(),
        )
        .await
        .map_err(&fail)?;
        let logs = crate::k8s::pod_logs(&client, &namespace, &a.release)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok::<_, CliError>(crate::k8s::format_run_logs(&a.release, &namespace, &logs))
    })?;
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::Write {
            path: "standard output".to_string(),
            source: e,
        })?;
    Ok(EXIT_OK)
}
