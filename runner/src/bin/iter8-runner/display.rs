//! The progress line on a terminal and the log format.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iter8::tasks::Progress;
use tracing_subscriber::EnvFilter;

use super::{LogFormat, Opts};

/// Live progress on stderr, refreshed 4 times a second, until `stop`.
pub(super) fn progress_display(progress: &Progress, stop: &AtomicBool) {
    let mut last_done = 0u64;
    let mut last_at = Instant::now();
    let mut rate = 0f64;
    let mut last_task = String::new();
    let mut task_start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let task = progress.task();
        let done = progress.done.load(Ordering::Relaxed);
        let total = progress.total.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let now = Instant::now();
        if task != last_task || done < last_done {
            rate = 0.0;
            if task != last_task {
                task_start = now;
            }
            last_task = task.clone();
            last_done = 0;
        }
        let dt = now.duration_since(last_at).as_secs_f64();
        if dt > 0.0 {
            let instant = (done - last_done.min(done)) as f64 / dt;
            rate = if rate == 0.0 {
                instant
            } else {
                0.5 * rate + 0.5 * instant
            };
        }
        last_done = done;
        last_at = now;
        let label = progress.label();
        let mut line = task;
        if !label.is_empty() && !line.ends_with(&format!(" {label}")) {
            line.push_str(&format!(" [{label}]"));
        }
        line.push_str(&format!(" {}s", now.duration_since(task_start).as_secs()));
        if done > 0 || total > 0 {
            if total > 0 {
                let pct = done as f64 * 100.0 / total as f64;
                line.push_str(&format!(": {done}/{total} ({pct:.0}%)"));
            } else {
                line.push_str(&format!(": {done}"));
            }
            line.push_str(&format!(", {rate:.0}/s, {errors} errors"));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

/// stderr for log lines that first clears the progress line.
struct ClearLineStderr;

impl Write for ClearLineStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        err.write_all(b"\r\x1b[2K")?;
        err.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

pub(super) fn init_logging(opts: &Opts, tty: bool, progress: bool) {
    // kube's HTTP trace layer logs every failed request at ERROR, also those a retry then
    // fixes; our retry helper logs what matters (one WARN line per recovered call, one
    // ERROR when a call fails for good). RUST_LOG still wins.
    let default = if opts.quiet {
        "warn,kube_client::client::builder=off"
    } else {
        "info,kube_client::client::builder=off"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let color = iter8::color_allowed(tty);
    let json = match opts.log_format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !tty,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().with_writer(std::io::stderr).try_init()
    } else if progress {
        builder
            .with_target(false)
            .with_ansi(color)
            .with_writer(|| ClearLineStderr)
            .try_init()
    } else {
        builder
            .with_target(false)
            .with_ansi(color)
            .with_writer(std::io::stderr)
            .try_init()
    };
}
