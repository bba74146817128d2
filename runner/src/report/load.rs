//! The load tests' details (`insights.load`): per-stage statistics, the load generator's
//! CPU, throttling and schedule lag, and its warnings, in the text and HTML reports.

use std::fmt::Write as _;

use super::html::esc;
use super::text::{heading, l, r, Style, Table};
use super::view::fmt_num;
use crate::model::{GeneratorInfo, Insights, StageInfo};

const STAGE_HEADERS: [&str; 11] = [
    "source", "stage", "duration", "qps", "requests", "rate", "errors", "p50", "p99", "max",
    "lag p99",
];
const GENERATOR_HEADERS: [&str; 8] = [
    "source",
    "cpu",
    "cpu/request",
    "cpus used",
    "cpu limit",
    "throttled",
    "late requests",
    "lag p99 / max",
];

fn ms(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{} ms", fmt_num(v)))
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{}{unit}", fmt_num(v)))
}

/// One stage's cells, in [`STAGE_HEADERS`] order.
fn stage_cells(source: &str, i: usize, s: &StageInfo) -> Vec<String> {
    let qps = if s.from_qps == s.to_qps {
        fmt_num(s.to_qps)
    } else {
        format!("{} -> {}", fmt_num(s.from_qps), fmt_num(s.to_qps))
    };
    let requests = if s.requests == s.planned_requests {
        s.requests.to_string()
    } else {
        format!("{} of {}", s.requests, s.planned_requests)
    };
    vec![
        source.to_string(),
        (i + 1).to_string(),
        format!("{} s", fmt_num(s.duration_seconds)),
        qps,
        requests,
        fmt_num((s.rate * 100.0).round() / 100.0),
        s.errors.to_string(),
        ms(s.latency.get("p50").copied()),
        ms(s.latency.get("p99").copied()),
        ms(s.latency.get("max").copied()),
        ms(s.lag_p99_ms),
    ]
}

/// The generator's cells, in [`GENERATOR_HEADERS`] order, and whether it was throttled.
fn generator_cells(source: &str, g: &GeneratorInfo) -> Vec<String> {
    let throttled = match (g.throttled_share(), g.throttled_seconds) {
        (Some(share), Some(secs)) => format!(
            "{}% ({} s)",
            fmt_num((share * 1000.0).round() / 10.0),
            fmt_num((secs * 100.0).round() / 100.0)
        ),
        _ => "-".to_string(),
    };
    let late = match (g.late_requests, g.scheduled_requests) {
        (Some(l), Some(n)) => format!("{l} of {n}"),
        _ => "-".to_string(),
    };
    vec![
        source.to_string(),
        opt(g.cpu_seconds.map(|c| (c * 1000.0).round() / 1000.0), " s"),
        opt(
            g.cpu_per_request_us.map(|c| (c * 10.0).round() / 10.0),
            " µs",
        ),
        opt(g.cpus_used.map(|c| (c * 100.0).round() / 100.0), ""),
        opt(g.cpu_limit, ""),
        throttled,
        late,
        format!("{} / {}", ms(g.lag_p99_ms), ms(g.lag_max_ms)),
    ]
}

/// Text: the stages (when any), the generator, the warnings.
pub(super) fn text(out: &mut String, insights: &Insights, color: bool) {
    if insights.load.is_empty() {
        return;
    }
    if insights.load.values().any(|i| !i.stages.is_empty()) {
        heading(out, "Load stages", color);
        let mut right = [true; 11];
        right[0] = false;
        let mut t = Table::new(&STAGE_HEADERS, &right);
        for (source, info) in &insights.load {
            for (i, s) in info.stages.iter().enumerate() {
                t.row(stage_cells(source, i, s).into_iter().map(r).collect());
            }
        }
        t.render(out, color);
    }
    heading(out, "Load generator", color);
    let mut right = [true; 8];
    right[0] = false;
    let mut t = Table::new(&GENERATOR_HEADERS, &right);
    for (source, info) in &insights.load {
        if let Some(g) = &info.generator {
            let mut cells: Vec<(String, Style)> =
                generator_cells(source, g).into_iter().map(r).collect();
            cells[0] = l(source.clone());
            t.row(cells);
        }
    }
    t.render(out, color);
    for (source, info) in &insights.load {
        for w in &info.warnings {
            let line = format!("  warning: {source}: {w}");
            if color {
                let _ = writeln!(out, "\x1b[31m{line}\x1b[0m");
            } else {
                let _ = writeln!(out, "{line}");
            }
        }
    }
}

fn html_table(h: &mut String, class: &str, headers: &[&str], rows: &[Vec<String>]) {
    let _ = write!(h, "<table class=\"{class}\"><thead><tr>");
    for c in headers {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr></thead><tbody>\n");
    for row in rows {
        h.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(h, "<td><code>{}</code></td>", esc(c));
            } else {
                let _ = write!(h, "<td class=\"num\">{}</td>", esc(c));
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
}

/// HTML: the same as [`text`].
pub(super) fn html(h: &mut String, insights: &Insights) {
    if insights.load.is_empty() {
        return;
    }
    h.push_str("<section id=\"load\"><h2>Load</h2>\n");
    for (source, info) in &insights.load {
        for w in &info.warnings {
            let _ = writeln!(
                h,
                "<p class=\"warning\"><strong>Warning</strong> (<code>{}</code>): {}</p>",
                esc(source),
                esc(w)
            );
        }
    }
    let stages: Vec<Vec<String>> = insights
        .load
        .iter()
        .flat_map(|(source, info)| {
            info.stages
                .iter()
                .enumerate()
                .map(move |(i, s)| stage_cells(source, i, s))
        })
        .collect();
    if !stages.is_empty() {
        h.push_str("<h3>Stages</h3>\n");
        html_table(h, "stages", &STAGE_HEADERS, &stages);
    }
    let generators: Vec<Vec<String>> = insights
        .load
        .iter()
        .filter_map(|(source, info)| info.generator.as_ref().map(|g| generator_cells(source, g)))
        .collect();
    if !generators.is_empty() {
        h.push_str("<h3>Load generator</h3>\n");
        html_table(h, "generator", &GENERATOR_HEADERS, &generators);
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use crate::model::{ExperimentResult, GeneratorInfo, LoadInfo, StageInfo};
    use crate::report::{render, Format};

    #[test]
    fn stages_generator_and_warnings_are_in_the_text_json_and_html_reports() {
        let mut result = ExperimentResult::new(1);
        let stage = |from: f64, to: f64, n: u64| StageInfo {
            duration_seconds: 10.0,
            from_qps: from,
            to_qps: to,
            planned_requests: n,
            requests: n,
            errors: 1,
            elapsed_seconds: 10.0,
            rate: n as f64 / 10.0,
            latency: [("p50".to_string(), 1.5), ("p99".to_string(), 7.25)].into(),
            ..StageInfo::default()
        };
        let warning = "the load generator was throttled for 38% of the run";
        result.insights_mut().record_load(
            "http",
            LoadInfo {
                stages: vec![stage(50.0, 50.0, 500), stage(50.0, 200.0, 1250)],
                generator: Some(GeneratorInfo {
                    cpu_seconds: Some(1.25),
                    cpu_periods: Some(100),
                    throttled_periods: Some(38),
                    throttled_seconds: Some(3.0),
                    ..GeneratorInfo::default()
                }),
                warnings: vec![warning.to_string()],
            },
        );
        let text = render(&result, Format::Text, false).unwrap();
        assert!(text.contains("Load stages"), "{text}");
        assert!(text.contains("50 -> 200"), "{text}");
        assert!(text.contains("1250"), "{text}");
        assert!(text.contains("7.25 ms"), "{text}");
        assert!(text.contains("38% (3 s)"), "{text}");
        assert!(
            text.contains(&format!("warning: http: {warning}")),
            "{text}"
        );
        let html = render(&result, Format::Html, false).unwrap();
        assert!(html.contains("<section id=\"load\">"));
        assert!(html.contains(warning));
        assert!(html.contains("50 -&gt; 200"), "{html}");
        let json = render(&result, Format::Json, false).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["insights"]["load"]["http"]["stages"][1]["requests"], 1250);
        assert_eq!(v["insights"]["load"]["http"]["warnings"][0], warning);
    }
}
