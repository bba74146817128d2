//! The `iter8` companion CLI: `report`, `assert` and `log` on an experiment result, plus
//! `version` and `completion`.
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
//!
//! Output to a closed pipe (`iter8 report | head -1`) ends the command quietly: what was
//! asked for was read by someone, the rest is not wanted.

mod assert;
mod log;
mod report_cmd;
mod source;

use std::ffi::OsString;
use std::io::Write;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::model::ExperimentResult;
use crate::report;

pub use assert::{AssertArgs, AssertOutput, Condition, VALID_CONDITIONS};
pub use log::LogArgs;
pub use report_cmd::ReportArgs;
pub use source::{
    parse_result, read_result_file, ClusterReader, FileReader, ReadError, ReleaseRef, ResultReader,
    ResultSource, SecretOnlyReader, SourceArgs,
};

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
#[command(
    name = "iter8",
    version,
    long_version = crate::LONG_VERSION,
    about,
    propagate_version = true
)]
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
    /// Print the version, the git commit and the build date.
    Version(VersionArgs),
    /// Print a shell completion script: `source <(iter8 completion bash)`; zsh:
    /// `iter8 completion zsh > "${fpath[1]}/_iter8"`; fish: `iter8 completion fish >
    /// ~/.config/fish/completions/iter8.fish`.
    Completion(CompletionArgs),
}

/// `iter8 version [--short]`.
#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// Print only the version number.
    #[arg(long)]
    pub short: bool,
}

/// `iter8 completion SHELL`.
#[derive(Args, Debug, Clone)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

impl CliError {
    /// Standard output was closed by its reader (`| head`): not worth an error message.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, CliError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::BrokenPipe)
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
    let opts = match Opts::try_parse_from(iter8_k_args(args)) {
        Ok(o) => o,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    run_with_stdio(&opts, reader)
}

/// Iter8 v0.15's forms: `iter8 k assert|report|log ...` is `iter8 assert|report|log ...`,
/// and without `-g` / `--release` (or `-f` for assert and report) the release is Iter8's
/// default group `default`.
fn iter8_k_args<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if args.get(1).is_none_or(|a| a != "k") {
        return args;
    }
    args.remove(1);
    let sub = args
        .get(1)
        .and_then(|a| a.to_str())
        .unwrap_or_default()
        .to_string();
    // `log -f` is --follow; for assert and report `-f` names a result file
    let mut flags = vec!["-g", "--group", "--release", "-h", "--help"];
    if sub != "log" {
        flags.extend(["-f", "--file"]);
    }
    let names_source = args.iter().skip(2).any(|a| {
        let a = a.to_string_lossy();
        flags.iter().any(|f| {
            a == *f
                || a.starts_with(&format!("{f}="))
                || (f.len() == 2 && a.starts_with(f) && !a.starts_with("--"))
        })
    });
    if matches!(sub.as_str(), "assert" | "report" | "log") && !names_source {
        args.push("--group".into());
        args.push("default".into());
    }
    args
}

/// Run with standard output / error and the file reader.
pub fn run(opts: &Opts) -> i32 {
    run_with_stdio(opts, &ClusterReader)
}

fn run_with_stdio(opts: &Opts, reader: &dyn ResultReader) -> i32 {
    use std::io::IsTerminal;
    let color = crate::color_allowed(std::io::stdout().is_terminal());
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
        Command::Report(a) => report_cmd::report_cmd(a, reader, color, out),
        Command::Assert(a) => assert::assert_cmd(a, reader, out),
        Command::Log(a) => log::log_cmd(a, out),
        Command::Version(a) => version_cmd(a, out),
        Command::Completion(a) => completion_cmd(a, out),
    };
    match outcome {
        Ok(code) => code,
        Err(e) if e.is_closed_pipe() => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            EXIT_ERROR
        }
    }
}

/// `assert` alone, for `iter8-runner assert` (the runner image's verdict check, used by the
/// chart's `helm test` pod): the same arguments, output and exit codes as `iter8 assert`,
/// reading through `reader` (the runner passes [`SecretOnlyReader`]). Linking only this, not
/// [`run_with`], keeps the report renderers and completion out of the runner binary.
pub fn assert_with(
    args: &AssertArgs,
    reader: &dyn ResultReader,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match assert::assert_cmd(args, reader, out) {
        Ok(code) => code,
        Err(e) if e.is_closed_pipe() => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            EXIT_ERROR
        }
    }
}

fn version_cmd(a: &VersionArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let text = if a.short {
        format!("{}\n", crate::VERSION)
    } else {
        format!(
            "iter8 {}\ncommit: {}\nbuilt: {}\n",
            crate::VERSION,
            crate::GIT_COMMIT,
            crate::BUILD_DATE
        )
    };
    write_stdout(out, text.as_bytes())?;
    Ok(EXIT_OK)
}

fn completion_cmd(a: &CompletionArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut Opts::command(), "iter8", &mut script);
    write_stdout(out, &script)?;
    Ok(EXIT_OK)
}

/// Write to standard output (a closed pipe becomes [`CliError::is_closed_pipe`]).
pub(crate) fn write_stdout(out: &mut dyn Write, bytes: &[u8]) -> Result<(), CliError> {
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Write {
            path: "standard output".to_string(),
            source: e,
        })
}

pub(crate) fn read_required(
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
