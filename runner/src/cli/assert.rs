//! `iter8 assert`: conditions on a result, checked once or until a timeout.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;

use super::{read_required, CliError, ResultReader, SourceArgs, EXIT_FALSE, EXIT_OK, EXIT_TIMEOUT};
use crate::model::duration::parse_duration;
use crate::model::ExperimentResult;
use crate::report::{self, view};

#[derive(Args, Debug, Clone)]
pub struct AssertArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Conditions that must hold: completed, nofailure, slos (absolute and relative SLOs),
    /// comparisons (no version significantly worse than the baseline, enough data for
    /// every comparison), winner (every compared metric has a significant winner); repeat
    /// -c or separate with commas.
    #[arg(
        short = 'c',
        long = "condition",
        required = true,
        value_name = "CONDITION"
    )]
    pub conditions: Vec<String>,
    /// Keep checking (about every second) until the conditions hold, the verdict can no
    /// longer change (the run finished: exit 1), or this much time passed (exit 2), e.g.
    /// 60s, 5m. Without it, check once.
    #[arg(short = 't', long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Output: text, or one JSON object for pipelines.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = AssertOutput::Text)]
    pub output: AssertOutput,
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
    /// `assess.compare`: no version is significantly worse than the baseline and every
    /// comparison had enough data.
    Comparisons,
    /// `assess.compare`: every compared metric has a significant winner.
    Winner,
}

/// The condition names `assert -c` accepts.
pub const VALID_CONDITIONS: &str = "completed, nofailure, slos, comparisons, winner";

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::Completed => "completed",
            Condition::NoFailure => "nofailure",
            Condition::Slos => "slos",
            Condition::Comparisons => "comparisons",
            Condition::Winner => "winner",
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
                    "comparisons" | "comparison" => Condition::Comparisons,
                    "winner" => Condition::Winner,
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
            Condition::Comparisons => result.comparisons_ok(),
            Condition::Winner => result.has_winners(),
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
                Some(t) => format!("{} failed: {}", t.label(), t.message),
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
                if let Some(i) = &result.insights {
                    let (baseline, regression) = report::verdicts::relative_rows(i);
                    lines.extend(
                        baseline
                            .iter()
                            .chain(regression.iter())
                            .filter(|r| !r.satisfied)
                            .map(|r| r.explain()),
                    );
                }
                if lines.is_empty() {
                    lines.push("the SLOs were not assessed yet".to_string());
                }
                lines
            }
            Condition::Comparisons | Condition::Winner => {
                let Some(i) = &result.insights else {
                    return vec!["no insights yet: no task has recorded a metric".to_string()];
                };
                let lines = if self == Condition::Comparisons {
                    report::verdicts::explain_degradation(i)
                } else {
                    report::verdicts::explain_no_winner(i)
                };
                if lines.is_empty() {
                    vec!["the comparisons were not assessed yet".to_string()]
                } else {
                    lines
                }
            }
        }
    }
}

/// How `iter8 assert` prints its verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AssertOutput {
    /// Lines for people: `all conditions hold: ...` or each false condition and why.
    #[default]
    Text,
    /// One JSON object for pipelines (`jq -e .ok`): `ok`, `outcome`
    /// (`hold` | `false` | `timeout`), `exitCode`, `conditions` (`name`, `holds`,
    /// `reasons`), `source`, `message`.
    Json,
}

/// The verdict of one condition.
#[derive(Debug, Clone, serde::Serialize)]
struct ConditionVerdict {
    name: &'static str,
    holds: bool,
    /// Why the condition is false (empty when it holds).
    reasons: Vec<String>,
}

/// What `assert` found.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    ok: bool,
    outcome: &'static str,
    exit_code: i32,
    source: String,
    conditions: Vec<ConditionVerdict>,
    /// The timeout line (`timed out after 60s waiting for: ...`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// The loop the verdict belongs to: the last finished loop while a later one runs.
    #[serde(rename = "loop", skip_serializing_if = "Option::is_none")]
    loop_number: Option<u64>,
    /// `loop 3`, or `loop 3 (loop 4 is running: 1 of 2 tasks done)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict_of: Option<String>,
}

impl Verdict {
    fn of(conditions: &[Condition], current: &ExperimentResult, source: String) -> Verdict {
        // While a later loop runs, the verdict is the last finished loop's.
        let result = current.verdict();
        let conditions: Vec<ConditionVerdict> = conditions
            .iter()
            .map(|c| {
                let holds = c.holds(result);
                ConditionVerdict {
                    name: c.name(),
                    holds,
                    reasons: if holds { Vec::new() } else { c.explain(result) },
                }
            })
            .collect();
        let ok = conditions.iter().all(|c| c.holds);
        Verdict {
            ok,
            outcome: if ok { "hold" } else { "false" },
            exit_code: if ok { EXIT_OK } else { EXIT_FALSE },
            source,
            conditions,
            message: None,
            loop_number: Some(result.num_loops),
            verdict_of: Some(current.verdict_label()),
        }
    }

    /// A timeout: the last result read (if any) says which conditions are still false.
    fn timeout(
        conditions: &[Condition],
        result: Option<&ExperimentResult>,
        source: String,
        message: String,
    ) -> Verdict {
        let mut v = match result {
            Some(r) => Verdict::of(conditions, r, source),
            None => Verdict {
                ok: false,
                outcome: "false",
                exit_code: EXIT_FALSE,
                conditions: conditions
                    .iter()
                    .map(|c| ConditionVerdict {
                        name: c.name(),
                        holds: false,
                        reasons: vec![format!("{source} has no result yet")],
                    })
                    .collect(),
                source,
                message: None,
                loop_number: None,
                verdict_of: None,
            },
        };
        v.ok = false;
        v.outcome = "timeout";
        v.exit_code = EXIT_TIMEOUT;
        v.message = Some(message);
        v
    }

    fn write(&self, format: AssertOutput, names: &str, out: &mut dyn Write) {
        match format {
            AssertOutput::Json => {
                if let Ok(text) = serde_json::to_string_pretty(self) {
                    let _ = writeln!(out, "{text}");
                }
            }
            AssertOutput::Text => {
                if let Some(m) = &self.message {
                    let _ = writeln!(out, "{m}");
                }
                if self.ok {
                    match &self.verdict_of {
                        Some(v) => {
                            let _ = writeln!(out, "all conditions hold: {names} (verdict of {v})");
                        }
                        None => {
                            let _ = writeln!(out, "all conditions hold: {names}");
                        }
                    }
                }
                for c in self.conditions.iter().filter(|c| !c.holds) {
                    // a missing result is said once, in the timeout line
                    if self.message.is_some()
                        && c.reasons.iter().any(|r| r.ends_with("has no result yet"))
                    {
                        continue;
                    }
                    let _ = writeln!(out, "condition false: {}", c.name);
                    for line in &c.reasons {
                        let _ = writeln!(out, "  {line}");
                    }
                }
                if let (false, Some(v)) = (self.ok, &self.verdict_of) {
                    let _ = writeln!(out, "verdict of {v}");
                }
            }
        }
    }
}

pub(super) fn assert_cmd(
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
    let finish = |v: Verdict, out: &mut dyn Write| {
        v.write(a.output, &names, out);
        Ok(v.exit_code)
    };

    let Some(timeout) = timeout else {
        let result = read_required(reader, &source)?;
        return finish(Verdict::of(&conditions, &result, source.to_string()), out);
    };

    let timeout_text = a.timeout.as_deref().unwrap_or_default().trim();
    let deadline = Instant::now() + timeout;
    loop {
        // While waiting, a missing or unreadable result is "not yet".
        let read = reader.read(&source);
        if let Ok(Some(result)) = &read {
            if conditions.iter().all(|c| c.holds(result.verdict())) {
                return finish(Verdict::of(&conditions, result, source.to_string()), out);
            }
        }
        // The run is over: the verdict can no longer change, so there is nothing to wait
        // for (Iter8 exits 1 here too, but only once the timeout passed).
        if let Ok(result) = &read {
            if reader.verdict_final(&source, result.as_ref()) {
                let message = format!(
                    "the run is over: the verdict can no longer change (not waiting out \
                     --timeout {timeout_text})"
                );
                let mut v = match result {
                    Some(r) => Verdict::of(&conditions, r, source.to_string()),
                    None => Verdict::timeout(&conditions, None, source.to_string(), String::new()),
                };
                v.ok = false;
                v.outcome = "false";
                v.exit_code = EXIT_FALSE;
                v.message = Some(match result {
                    Some(_) => message,
                    None => format!("{message}; {source} has no result and no run is active"),
                });
                return finish(v, out);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let result = read?;
            let mut message = format!("timed out after {timeout_text} waiting for: {names}");
            if result.is_none() {
                message.push_str(&format!("; {source} has no result yet"));
            }
            let v = Verdict::timeout(&conditions, result.as_ref(), source.to_string(), message);
            return finish(v, out);
        }
        std::thread::sleep(poll.min(deadline - now));
    }
}
