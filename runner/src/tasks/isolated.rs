//! jq evaluations in a child process of the runner, under a memory limit and a deadline.
//!
//! A jq expression can ask for any amount of memory (`[range(1e9)]`) or time
//! (`last(repeat(1))`). A thread can be given a deadline but neither a memory budget (an
//! allocation that fails aborts the whole process) nor a kill. A child process can: the
//! runner starts itself as `iter8-runner __iter8-eval-jq`, the child lowers its own address
//! space limit (`RLIMIT_AS`, [`JQ_MEMORY_BYTES`]) before it reads anything, evaluates, and
//! writes one line; past the deadline the runner kills it. An evaluation that runs out of
//! memory ends the child, not the runner, and is reported as such.
//!
//! The runner binary turns this on at start ([`enable`]); elsewhere (library users, unit
//! tests) evaluations run on a thread with a deadline only ([`super::bounded::run_bounded`]).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// The argument that makes `iter8-runner` a jq evaluator (not for users).
pub const EVAL_JQ_ARG: &str = "__iter8-eval-jq";
/// Address space of a jq evaluation: the binary, its stack and the JSON it works on.
pub const JQ_MEMORY_BYTES: u64 = 512 << 20;
/// Largest input given to an evaluator (the expression plus the document).
const MAX_INPUT_BYTES: u64 = 64 << 20;

static EVALUATOR: OnceLock<PathBuf> = OnceLock::new();

/// Evaluate jq expressions in child processes of `exe` (the runner's own binary).
pub fn enable(exe: PathBuf) {
    let _ = EVALUATOR.set(exe);
}

/// The first output of `expr` over `json`, as a number (see
/// [`super::custommetrics::jq_first_number`]), within `budget` and, when enabled, in a child
/// process with [`JQ_MEMORY_BYTES`] of address space.
pub async fn jq_first_number(expr: String, json: Vec<u8>, budget: Duration) -> Result<f64, String> {
    let what = format!("jq expression {expr:?}");
    let Some(exe) = EVALUATOR.get() else {
        return super::bounded::run_bounded(&what, budget, move || {
            super::custommetrics::jq_first_number(&expr, &json)
        })
        .await?;
    };
    let mut child = tokio::process::Command::new(exe)
        .arg(EVAL_JQ_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{what}: cannot start an evaluator process: {e}"))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| format!("{what}: the evaluator has no stdin"))?;
    let mut input = format!("{}\n", expr.len()).into_bytes();
    input.extend_from_slice(expr.as_bytes());
    input.extend_from_slice(&json);
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    // The child is killed when this future is dropped: at the deadline, or when the task
    // is stopped (SIGTERM, the task's timeout).
    let out = match tokio::time::timeout(budget, child.wait_with_output()).await {
        Err(_) => {
            feed.abort();
            return Err(format!(
                "{what} did not finish within {}s (the time budget of a template or jq \
                 evaluation); does it loop forever?",
                budget.as_secs_f64()
            ));
        }
        Ok(Err(e)) => return Err(format!("{what}: cannot wait for the evaluator: {e}")),
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return parse_reply(stdout.trim_end()).unwrap_or_else(|| {
            Err(format!(
                "{what}: the evaluator replied {:?}",
                stdout.trim_end()
            ))
        });
    }
    if stderr.contains("memory allocation") {
        return Err(format!(
            "{what} needed more than its memory budget of {} MiB; select less data",
            JQ_MEMORY_BYTES >> 20
        ));
    }
    let last = stderr.lines().last().unwrap_or("").trim();
    Err(format!(
        "{what} crashed while evaluating ({}) {last}",
        out.status
    ))
}

/// `ok <number>` or `err <message>`.
fn parse_reply(line: &str) -> Option<Result<f64, String>> {
    if let Some(v) = line.strip_prefix("ok ") {
        return v.parse::<f64>().ok().map(Ok);
    }
    line.strip_prefix("err ")
        .map(|m| Err(m.replace("\\n", "\n")))
}

/// The evaluator: `iter8-runner __iter8-eval-jq` reads `<length of expr>\n<expr><json>` on
/// stdin and writes `ok <number>` or `err <message>` on stdout. Returns the exit code.
pub fn evaluator_main() -> u8 {
    // Should the runner itself be killed (SIGKILL skips its clean-up), the evaluator ends too.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let limit = rustix::process::Rlimit {
        current: Some(JQ_MEMORY_BYTES),
        maximum: Some(JQ_MEMORY_BYTES),
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::As, limit) {
        eprintln!("cannot limit the evaluator's memory: {e}");
        return 1;
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_INPUT_BYTES)
        .read_to_end(&mut input)
    {
        eprintln!("cannot read the input: {e}");
        return 1;
    }
    let reply = match split_input(&input) {
        None => "err the evaluator's input is malformed".to_string(),
        Some((expr, json)) => match super::custommetrics::jq_first_number(expr, json) {
            Ok(v) => format!("ok {v:?}"),
            Err(m) => format!("err {}", m.replace('\n', "\\n")),
        },
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{reply}")
        .and_then(|_| stdout.flush())
        .is_err()
    {
        return 1;
    }
    0
}

fn split_input(input: &[u8]) -> Option<(&str, &[u8])> {
    let nl = input.iter().position(|&b| b == b'\n')?;
    let len: usize = std::str::from_utf8(&input[..nl]).ok()?.parse().ok()?;
    let rest = &input[nl + 1..];
    let expr = std::str::from_utf8(rest.get(..len)?).ok()?;
    Some((expr, &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_inputs_round_trip() {
        assert_eq!(parse_reply("ok 1.5"), Some(Ok(1.5)));
        assert_eq!(parse_reply("ok inf"), Some(Ok(f64::INFINITY)));
        assert_eq!(parse_reply("err a\\nb"), Some(Err("a\nb".into())));
        assert_eq!(parse_reply("what"), None);
        assert_eq!(
            split_input(b"2\n.a{\"a\":1}"),
            Some((".a", &b"{\"a\":1}"[..]))
        );
        assert_eq!(split_input(b"9\n.a"), None);
        assert_eq!(split_input(b"x\n.a"), None);
    }
}
