//! `iter8 report`: render a result to standard output, a file or a browser.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{read_required, write_stdout, CliError, ResultReader, SourceArgs, EXIT_OK};
use crate::report::{self, Format};

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

pub(super) fn report_cmd(
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
        write_stdout(out, body.as_bytes())?;
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
