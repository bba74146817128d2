//! The text report: summary, SLOs per version (violations marked, with value, limit and
//! margin), reward winners, latest metric values with units, latency percentiles per
//! endpoint and version, unavailable metrics, errors by status code / kind.
//! Columns are aligned; ANSI colours only when asked (the CLI asks on a TTY).

use std::fmt::Write as _;

use super::verdicts::{self, fmt_effect, fmt_p, fmt_test, verdict_ok, RelativeRow};
use super::view::{self, fmt_num, fmt_with_units, MetricValue};
use crate::model::{ExperimentResult, Insights};

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// How a cell is aligned and coloured.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Style {
    Left,
    Right,
    Good,
    Bad,
}

pub(super) struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<(String, Style)>>,
}

impl Table {
    pub(super) fn new(headers: &[&'static str], right: &[bool]) -> Self {
        Self {
            headers: headers.to_vec(),
            right: right.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(super) fn row(&mut self, cells: Vec<(String, Style)>) {
        self.rows.push(cells);
    }

    pub(super) fn render(&self, out: &mut String, color: bool) {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, (c, _)) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |out: &mut String, cells: Vec<(String, Style)>, header: bool| {
            let mut s = String::from("  ");
            for (i, (c, style)) in cells.iter().enumerate().take(cols) {
                let pad = widths[i].saturating_sub(c.chars().count());
                let right = self.right.get(i).copied().unwrap_or(false) || *style == Style::Right;
                let last = i + 1 == cols;
                let (pre, post) = match (color, style, header) {
                    (true, _, true) => (BOLD, RESET),
                    (true, Style::Good, _) => (GREEN, RESET),
                    (true, Style::Bad, _) => (RED, RESET),
                    _ => ("", ""),
                };
                if right {
                    s.push_str(&" ".repeat(pad));
                }
                s.push_str(pre);
                s.push_str(c);
                s.push_str(post);
                if !right && !last {
                    s.push_str(&" ".repeat(pad));
                }
                if !last {
                    s.push_str("  ");
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(
            out,
            self.headers
                .iter()
                .map(|h| (h.to_string(), Style::Left))
                .collect(),
            true,
        );
        for r in &self.rows {
            line(out, r.clone(), false);
        }
    }
}

pub(super) fn l(s: impl Into<String>) -> (String, Style) {
    (s.into(), Style::Left)
}
pub(super) fn r(s: impl Into<String>) -> (String, Style) {
    (s.into(), Style::Right)
}

pub(super) fn heading(out: &mut String, title: &str, color: bool) {
    out.push('\n');
    if color {
        let _ = writeln!(out, "{BOLD}{title}{RESET}");
    } else {
        let _ = writeln!(out, "{title}");
    }
}

/// Render the text report.
pub fn render(current: &ExperimentResult, color: bool) -> String {
    let mut out = String::new();
    // While a later loop runs, the report is the last finished loop's.
    let result = current.verdict();
    summary(&mut out, result, color);
    let _ = writeln!(out, "  {:<16} {}", "Verdict of:", current.verdict_label());
    let Some(insights) = &result.insights else {
        heading(&mut out, "Metrics", color);
        out.push_str("  No insights yet: no task has recorded a metric.\n");
        return out;
    };
    slos(&mut out, result, color);
    relative(&mut out, insights, color);
    winners(&mut out, result, color);
    comparisons(&mut out, insights, color);
    metrics(&mut out, insights, color);
    latencies(&mut out, insights, color);
    unavailable(&mut out, insights, color);
    errors(&mut out, insights, color);
    super::load::text(&mut out, insights, color);
    out
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn summary(out: &mut String, result: &ExperimentResult, color: bool) {
    if color {
        let _ = writeln!(out, "{BOLD}Experiment summary{RESET}");
    } else {
        out.push_str("Experiment summary\n");
    }
    let paint = |ok: bool, s: String| -> String {
        match (color, ok) {
            (false, _) => s,
            (true, true) => format!("{GREEN}{s}{RESET}"),
            (true, false) => format!("{RED}{s}{RESET}"),
        }
    };
    let failure = match (&result.failure, &result.failed_task) {
        (false, _) => paint(true, "no".to_string()),
        (true, Some(t)) => paint(false, format!("yes: {} failed: {}", t.label(), t.message)),
        (true, None) => paint(false, "yes (no task recorded as failed)".to_string()),
    };
    let any_slo = result.insights.as_ref().is_some_and(|i| {
        i.slos
            .as_ref()
            .is_some_and(|s| !s.upper.is_empty() || !s.lower.is_empty())
            || i.relative_slos.is_some()
            || i.regression.is_some()
    });
    let slos = match any_slo {
        true => {
            let ok = result.slos_satisfied();
            paint(
                ok,
                if ok {
                    "satisfied by every version".to_string()
                } else {
                    "NOT satisfied (see below)".to_string()
                },
            )
        }
        _ => "none given".to_string(),
    };
    let versions = match &result.insights {
        Some(i) => (0..view::num_versions(i).max(1))
            .map(|v| view::version_label(Some(i), v))
            .collect::<Vec<_>>()
            .join(", "),
        None => "-".to_string(),
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "Completed",
            paint(result.completed(), yes_no(result.completed()).to_string()),
        ),
        ("Failure", failure),
        ("SLOs", slos),
        ("Loops", result.num_loops.to_string()),
        (
            "Tasks completed",
            format!("{} / {}", result.num_completed_tasks, result.num_tasks),
        ),
        ("Versions", versions),
        (
            "Start time",
            result
                .start_time
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        ("Runner version", result.iter8_version.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "  {:<16} {v}", format!("{k}:"));
    }
    if let Some(rev) = result.revision {
        let _ = writeln!(out, "  {:<16} {rev}", "Revision:");
    }
    for (i, w) in result.warnings.iter().enumerate() {
        let label = if i == 0 { "Warnings:" } else { "" };
        let _ = writeln!(out, "  {label:<16} {w}");
    }
}

fn slos(out: &mut String, result: &ExperimentResult, color: bool) {
    let rows = view::slo_rows(result);
    if rows.is_empty() {
        return;
    }
    heading(
        out,
        "SLOs (margin: headroom to the limit; negative when violated)",
        color,
    );
    let mut t = Table::new(
        &[
            "version", "metric", "type", "limit", "value", "margin", "status",
        ],
        &[false, false, false, true, true, true, false],
    );
    for row in rows {
        let units = row.units.as_deref();
        let status = if row.satisfied {
            ("ok".to_string(), Style::Good)
        } else if row.value.is_none() {
            ("VIOLATED (no value)".to_string(), Style::Bad)
        } else {
            ("VIOLATED".to_string(), Style::Bad)
        };
        t.row(vec![
            l(row.version_name.clone()),
            l(row.metric.clone()),
            l(format!("{} {}", row.kind.as_str(), row.kind.symbol())),
            r(fmt_with_units(row.limit, units)),
            r(row
                .value
                .map(|x| fmt_with_units(x, units))
                .unwrap_or_else(|| "-".into())),
            r(row
                .margin()
                .map(|x| fmt_with_units(x, units))
                .unwrap_or_else(|| "-".into())),
            status,
        ]);
    }
    t.render(out, color);
}

fn relative_table(out: &mut String, rows: &[RelativeRow], color: bool) {
    let mut t = Table::new(
        &["version", "metric", "limit", "reference", "value", "status"],
        &[false, false, false, true, true, false],
    );
    for row in rows {
        let limit = match row.limit {
            Some(_) => format!("{} = {}", row.rule(), row.show(row.limit)),
            None => row.rule(),
        };
        t.row(vec![
            l(row.version_name.clone()),
            l(row.metric.clone()),
            l(limit),
            r(row.show(row.reference)),
            r(row.show(row.value)),
            (
                row.status(),
                if row.satisfied {
                    Style::Good
                } else {
                    Style::Bad
                },
            ),
        ]);
    }
    t.render(out, color);
}

fn relative(out: &mut String, insights: &Insights, color: bool) {
    let (baseline, regression) = verdicts::relative_rows(insights);
    if let Some(r) = &insights.relative_slos {
        heading(
            out,
            &format!("Relative SLOs (against baseline {})", r.baseline_name),
            color,
        );
        relative_table(out, &baseline, color);
    }
    if insights.regression.is_some() {
        heading(out, "Regression (against the previous loop)", color);
        relative_table(out, &regression, color);
    }
}

fn comparisons(out: &mut String, insights: &Insights, color: bool) {
    let Some(cmp) = &insights.comparisons else {
        return;
    };
    heading(
        out,
        &format!(
            "Comparisons with baseline {} (alpha {}, {}% intervals, minSamples {})",
            cmp.baseline_name,
            fmt_num(cmp.alpha),
            fmt_num((1.0 - cmp.alpha) * 100.0),
            cmp.min_samples
        ),
        color,
    );
    let mut t = Table::new(
        &[
            "metric",
            "version",
            "verdict",
            "effect [interval]",
            "p-value",
            "n (baseline, version)",
            "test",
        ],
        &[false, false, false, false, true, true, false],
    );
    for m in &cmp.metrics {
        for c in &m.versions {
            let style = match verdict_ok(c.verdict) {
                Some(true) => Style::Good,
                Some(false) => Style::Bad,
                None => Style::Left,
            };
            t.row(vec![
                l(m.metric.clone()),
                l(c.version_name.clone()),
                (c.verdict.as_str().to_string(), style),
                l(fmt_effect(insights, m, c)),
                r(c.p_value.map(fmt_p).unwrap_or_else(|| "-".into())),
                r(format!("{}, {}", c.baseline_samples, c.samples)),
                l(match &c.note {
                    Some(n) => n.clone(),
                    None => fmt_test(m, c),
                }),
            ]);
        }
    }
    t.render(out, color);
    for m in &cmp.metrics {
        let _ = writeln!(
            out,
            "  winner on {}: {}",
            m.metric,
            m.winner_name
                .as_deref()
                .unwrap_or("none (no significant difference decides it)")
        );
    }
}

fn winners(out: &mut String, result: &ExperimentResult, color: bool) {
    let rows = view::winner_rows(result);
    if rows.is_empty() {
        return;
    }
    heading(out, "Rewards", color);
    let mut t = Table::new(
        &["reward", "metric", "winner", "value"],
        &[false, false, false, true],
    );
    for row in rows {
        let winner = match (&row.winner_name, row.assessed) {
            (Some(w), _) => w.clone(),
            (None, true) => "none (no version has a value)".to_string(),
            (None, false) => "not assessed yet".to_string(),
        };
        let value = row
            .winner
            .and_then(|w| row.values.get(w).copied().flatten())
            .map(|x| fmt_with_units(x, row.units.as_deref()))
            .unwrap_or_else(|| "-".into());
        t.row(vec![
            l(if row.direction == "max" {
                "max (higher wins)"
            } else {
                "min (lower wins)"
            }),
            l(row.metric.clone()),
            (winner, Style::Good),
            r(value),
        ]);
    }
    t.render(out, color);
}

fn metrics(out: &mut String, insights: &crate::model::Insights, color: bool) {
    let names = view::metric_names(insights);
    let n = view::num_versions(insights).max(1);
    for v in 0..n {
        heading(
            out,
            &format!(
                "Metrics of version {} (latest values)",
                view::version_label(Some(insights), v)
            ),
            color,
        );
        let mut t = Table::new(&["metric", "value", "units"], &[false, true, false]);
        let mut any = false;
        for name in &names {
            let units = view::meta(insights, name)
                .and_then(|m| m.units.clone())
                .unwrap_or_default();
            let value = match view::metric_value(insights, v, name) {
                MetricValue::Value(x) => fmt_num(x),
                MetricValue::Histogram { count, mean } => format!(
                    "histogram: {count} obs, mean {}",
                    mean.map(fmt_num).unwrap_or_else(|| "-".into())
                ),
                MetricValue::Unavailable(_) => "unavailable".to_string(),
                MetricValue::Missing => continue,
            };
            any = true;
            t.row(vec![l(name.clone()), r(value), l(units)]);
        }
        if any {
            t.render(out, color);
        } else {
            out.push_str("  (no values)\n");
        }
    }
}

fn latencies(out: &mut String, insights: &crate::model::Insights, color: bool) {
    let rows = view::latency_rows(insights);
    if rows.is_empty() {
        return;
    }
    heading(out, "Latency per endpoint and version", color);
    // One table per distinct percentile set (usually one).
    let mut pcts: Vec<f64> = Vec::new();
    for r in &rows {
        for (p, _) in &r.percentiles {
            if !pcts.iter().any(|q| q == p) {
                pcts.push(*p);
            }
        }
    }
    pcts.sort_by(|a, b| a.total_cmp(b));
    let labels: Vec<String> = pcts.iter().map(|p| view::percentile_label(*p)).collect();
    // Percentile columns vary, so this table is laid out here rather than by `Table`.
    let mut widths_header: Vec<String> = ["endpoint", "version", "units", "count", "mean", "min"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    widths_header.extend(labels.iter().cloned());
    widths_header.push("max".to_string());
    let mut table_rows: Vec<Vec<String>> = Vec::new();
    for row in &rows {
        let opt = |x: Option<f64>| x.map(fmt_num).unwrap_or_else(|| "-".into());
        let mut cells = vec![
            row.source.clone(),
            row.version_name.clone(),
            row.units.clone().unwrap_or_default(),
            row.count
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            opt(row.mean),
            opt(row.min),
        ];
        for p in &pcts {
            cells.push(opt(row
                .percentiles
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, x)| *x)));
        }
        cells.push(opt(row.max));
        table_rows.push(cells);
    }
    let mut widths: Vec<usize> = widths_header.iter().map(|h| h.chars().count()).collect();
    for r in &table_rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let write_line = |out: &mut String, cells: &[String], header: bool| {
        let mut s = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            let right = i >= 3;
            if header && color {
                s.push_str(BOLD);
            }
            if right {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
            if header && color {
                s.push_str(RESET);
            }
            s.push_str("  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    write_line(out, &widths_header, true);
    for r in &table_rows {
        write_line(out, r, false);
    }
}

fn unavailable(out: &mut String, insights: &crate::model::Insights, color: bool) {
    let rows = view::unavailable_rows(insights);
    if rows.is_empty() {
        return;
    }
    heading(out, "Unavailable metrics", color);
    let mut t = Table::new(&["version", "metric", "reason"], &[false, false, false]);
    for row in rows {
        t.row(vec![
            l(row.version_name),
            l(row.metric),
            (row.reason, Style::Bad),
        ]);
    }
    t.render(out, color);
}

fn errors(out: &mut String, insights: &crate::model::Insights, color: bool) {
    let rows = view::error_rows(insights);
    if rows.is_empty() {
        return;
    }
    heading(out, "Requests by status code / error kind", color);
    let mut t = Table::new(
        &["version", "source", "kind", "code", "count"],
        &[false, false, false, false, true],
    );
    for row in rows {
        t.row(vec![
            l(row.version_name),
            l(row.source),
            l(row.class.as_str()),
            l(row.code),
            r(fmt_num(row.count)),
        ]);
    }
    t.render(out, color);
}
