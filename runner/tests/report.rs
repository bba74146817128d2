//! `iter8 report` (text, JSON, YAML, HTML) and `iter8 assert`, in-process, on result
//! fixtures built through the `Insights` API (tests/common) and stored in tests/fixtures.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use iter8::cli::{self, FileReader, Opts, EXIT_ERROR, EXIT_FALSE, EXIT_OK, EXIT_TIMEOUT};
use iter8::model::{ExperimentResult, MetricMeta, MetricType};
use iter8::report::view::{fmt_num, fmt_with_units};
use iter8::report::{self, html, text, Format};

fn fixture(name: &str) -> ExperimentResult {
    common::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn fixture_path(name: &str) -> PathBuf {
    common::fixtures_dir().join(format!("{name}.yaml"))
}

/// Run the CLI in-process; returns (exit code, stdout, stderr).
fn iter8(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["iter8"];
    all.extend_from_slice(args);
    let opts = match Opts::try_parse_from(&all) {
        Ok(o) => o,
        Err(e) => return (cli::main_with_args(&all), String::new(), e.to_string()),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run_with(&opts, &FileReader, false, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn fixtures_are_current() {
    let dir = common::fixtures_dir();
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    for (name, result) in common::all() {
        let yaml = serde_yaml::to_string(&result).expect("serialise");
        let path = dir.join(format!("{name}.yaml"));
        if update {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(&path, &yaml).expect("write fixture");
            continue;
        }
        let stored = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FIXTURES=1 regenerates)", path.display()));
        assert_eq!(
            stored,
            yaml,
            "{} is stale: regenerate with UPDATE_FIXTURES=1 cargo test -p iter8 --test report",
            path.display()
        );
        // And the file reads back to the same result.
        let back = cli::read_result_file(&path).expect("read").expect("exists");
        assert_eq!(back, result, "{name}");
    }
}

// ---------- text ----------

/// The line of a text table that contains every one of `needles`.
fn line_with<'a>(text: &'a str, needles: &[&str]) -> &'a str {
    text.lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no line with {needles:?} in:\n{text}"))
}

/// Whitespace-separated cells of a line.
fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn text_summary_of_one_version() {
    let r = fixture("one-version");
    let t = text::render(&r, false);
    assert!(t.starts_with("Experiment summary\n"), "{t}");
    assert_eq!(cells(line_with(&t, &["Completed:"])), ["Completed:", "yes"]);
    assert_eq!(cells(line_with(&t, &["Failure:"])), ["Failure:", "no"]);
    assert_eq!(cells(line_with(&t, &["Loops:"])), ["Loops:", "1"]);
    assert_eq!(
        cells(line_with(&t, &["Tasks completed:"])),
        ["Tasks", "completed:", "2", "/", "2"]
    );
    assert_eq!(
        cells(line_with(&t, &["Runner version:"])),
        ["Runner", "version:", "0.1.0"]
    );
    assert_eq!(
        cells(line_with(&t, &["SLOs:"])),
        ["SLOs:", "satisfied", "by", "every", "version"]
    );
    // SLO rows: value, limit and margin.
    let ins = r.insights.as_ref().expect("insights");
    let mean = ins.latest(0, "http/latency-mean").expect("mean");
    let row = cells(line_with(&t, &["default", "http/latency-mean", "upper"]));
    assert_eq!(
        row,
        [
            "default",
            "http/latency-mean",
            "upper",
            "<=",
            "50",
            "ms",
            &fmt_num(mean),
            "ms",
            &fmt_num(50.0 - mean),
            "ms",
            "ok"
        ]
    );
    let row = cells(line_with(&t, &["default", "http/error-rate", "upper"]));
    assert_eq!(
        row,
        [
            "default",
            "http/error-rate",
            "upper",
            "<=",
            "0.05",
            "0.01",
            "0.04",
            "ok"
        ]
    );
    // Metric values with units, sorted.
    let metrics: Vec<&str> = t
        .lines()
        .skip_while(|l| !l.starts_with("Metrics of version default"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| cells(l)[0])
        .collect();
    let mut sorted = metrics.clone();
    sorted.sort();
    assert_eq!(metrics, sorted);
    assert!(metrics.contains(&"http/latency-p99.9"), "{metrics:?}");
    assert_eq!(
        cells(line_with(&t, &["http/request-count"])),
        ["http/request-count", "200"]
    );
    let p99 = ins.latest(0, "http/latency-p99").expect("p99");
    assert_eq!(
        cells(line_with(&t, &["http/latency-p99 "])),
        ["http/latency-p99", &fmt_num(p99), "ms"]
    );
    // Latency percentiles per endpoint: the stored values.
    let header = cells(line_with(&t, &["endpoint", "version", "count"]));
    assert_eq!(
        header,
        [
            "endpoint", "version", "units", "count", "mean", "min", "p50", "p75", "p90", "p95",
            "p99", "p99.9", "max"
        ]
    );
    let row = cells(line_with(&t, &["http/latency ", "default", "200"]));
    assert_eq!(
        row[7],
        fmt_num(ins.latest(0, "http/latency-p75").expect("p75"))
    );
    assert_eq!(row[10], fmt_num(p99));
    // Errors by status code.
    assert_eq!(
        cells(line_with(&t, &["default", "http", "status", "503"])),
        ["default", "http", "status", "503", "2"]
    );
    assert!(!t.contains('\x1b'), "no colours when not asked");
    assert!(text::render(&r, true).contains("\x1b[32m"));
}

#[test]
fn text_marks_violations_and_winners_of_three_versions() {
    let r = fixture("three-versions");
    let ins = r.insights.as_ref().expect("insights");
    let t = text::render(&r, false);
    assert!(line_with(&t, &["SLOs:"]).contains("NOT satisfied"));
    let p99 = ins.latest(1, "http/latency-p99").expect("p99");
    assert!(p99 > 100.0, "fixture: v2 violates p99 ({p99})");
    let row = cells(line_with(&t, &["v2", "http/latency-p99"]));
    assert_eq!(
        row,
        [
            "v2",
            "http/latency-p99",
            "upper",
            "<=",
            "100",
            "ms",
            &fmt_num(p99),
            "ms",
            &fmt_num(100.0 - p99),
            "ms",
            "VIOLATED"
        ]
    );
    assert_eq!(
        cells(line_with(&t, &["v3", "http/error-rate"])),
        [
            "v3",
            "http/error-rate",
            "upper",
            "<=",
            "0.01",
            "0.1",
            "-0.09",
            "VIOLATED"
        ]
    );
    assert_eq!(
        cells(line_with(&t, &["v1", "app/conversion-rate", "lower"])),
        [
            "v1",
            "app/conversion-rate",
            "lower",
            ">=",
            "3",
            "%",
            "3.1",
            "%",
            "0.1",
            "%",
            "ok"
        ]
    );
    // Every SLO row of every version, the status column aligned under its header.
    let header = line_with(&t, &["version", "metric", "margin", "status"]);
    let col = header.find("status").expect("status column");
    let rows: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("VIOLATED") || l.ends_with(" ok"))
        .collect();
    assert_eq!(rows.len(), 9, "3 SLOs x 3 versions:\n{t}");
    for l in rows {
        let status_at = l
            .rfind("VIOLATED")
            .or_else(|| l.rfind("ok"))
            .expect("status");
        assert_eq!(status_at, col, "misaligned: {l:?}");
    }
    assert_eq!(
        cells(line_with(&t, &["max (higher wins)"])),
        [
            "max",
            "(higher",
            "wins)",
            "app/conversion-rate",
            "v2",
            "4.2",
            "%"
        ]
    );
    let mean_v1 = ins.latest(0, "http/latency-mean").expect("mean");
    assert_eq!(
        cells(line_with(&t, &["min (lower wins)"])),
        [
            "min",
            "(lower",
            "wins)",
            "http/latency-mean",
            "v1",
            &fmt_num(mean_v1),
            "ms"
        ]
    );
    for v in ["v1", "v2", "v3"] {
        assert!(t.contains(&format!("Metrics of version {v} (latest values)")));
    }
    assert_eq!(
        cells(line_with(&t, &["v3", "http", "status", "500"])),
        ["v3", "http", "status", "500", "40"]
    );
}

#[test]
fn text_shows_failure_errors_unavailable_and_no_insights() {
    let t = text::render(&fixture("failed"), false);
    assert_eq!(
        line_with(&t, &["Failure:"]).trim(),
        "Failure:         yes: task 2 (http) failed: every request failed: connection refused (127.0.0.1:9)"
    );
    assert_eq!(cells(line_with(&t, &["Completed:"])), ["Completed:", "no"]);
    assert_eq!(
        cells(line_with(&t, &["Tasks completed:"])),
        ["Tasks", "completed:", "1", "/", "3"]
    );
    assert_eq!(
        cells(line_with(&t, &["default", "error", "refused"])),
        ["default", "http", "error", "refused", "100"]
    );

    let t = text::render(&fixture("grpc-custom"), false);
    assert_eq!(
        line_with(&t, &["candidate", "istio/error-rate", "query"]).trim(),
        "candidate  istio/error-rate  query returned no data (is the candidate receiving traffic?)"
    );
    assert_eq!(
        cells(line_with(
            &t,
            &["candidate", "istio/error-rate", "VIOLATED"]
        )),
        [
            "candidate",
            "istio/error-rate",
            "upper",
            "<=",
            "0.01",
            "-",
            "-",
            "VIOLATED",
            "(no",
            "value)"
        ]
    );
    assert_eq!(
        cells(line_with(&t, &["candidate", "grpc", "UNAVAILABLE"])),
        ["candidate", "grpc", "status", "UNAVAILABLE", "7"]
    );
    assert_eq!(
        cells(line_with(&t, &["istio/latency-p90"])),
        ["istio/latency-p90", "12.5", "ms"]
    );
    assert!(line_with(&t, &["grpc/latency ", "baseline"]).contains("300"));
    assert!(line_with(&t, &["grpc/latency ", "candidate"]).contains("300"));

    let t = text::render(&fixture("no-insights"), false);
    assert!(t.contains("No insights yet"), "{t}");
    assert_eq!(
        cells(line_with(&t, &["Tasks completed:"])),
        ["Tasks", "completed:", "0", "/", "3"]
    );

    let t = text::render(&fixture("cronjob-20-loops"), false);
    assert_eq!(cells(line_with(&t, &["Loops:"])), ["Loops:", "20"]);
}

#[test]
fn json_and_yaml_are_the_result_as_is() {
    for (name, r) in common::all() {
        let j = report::render(&r, Format::Json, false).expect("json");
        let back: ExperimentResult = serde_json::from_str(&j).expect("parse json");
        assert_eq!(back, r, "{name}");
        assert!(j.contains("\"numCompletedTasks\""), "camelCase keys");
        let y = report::render(&r, Format::Yaml, false).expect("yaml");
        let back: ExperimentResult = serde_yaml::from_str(&y).expect("parse yaml");
        assert_eq!(back, r, "{name}");
    }
}

// ---------- HTML ----------

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The HTML of one element that starts with `start` (up to its closing `end`).
fn element<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in the report"));
    let j = html[i..].find(end).expect("closing tag") + i;
    &html[i..j + end.len()]
}

fn assert_offline(html: &str, name: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "http://", "https://", "src=", "href=", "url(", "@import", "<script", "<link", "<img",
        "<iframe", "<object", "<embed",
    ] {
        assert!(!lower.contains(bad), "{name}: the report contains {bad:?}");
    }
}

#[test]
fn html_is_self_contained_and_small() {
    for (name, r) in common::all() {
        let html = html::render(&r);
        assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
        assert!(html.trim_end().ends_with("</html>"), "{name}");
        assert_offline(&html, name);
        assert!(html.contains("prefers-color-scheme: dark"), "{name}");
        assert!(html.len() < 1024 * 1024, "{name}: {} bytes", html.len());
    }
    let big = html::render(&fixture("cronjob-20-loops"));
    assert!(big.len() < 1024 * 1024, "20 loops: {} bytes", big.len());
}

#[test]
fn html_has_every_slo_row_with_its_numbers() {
    for (name, r) in common::all() {
        let html = html::render(&r);
        let Some(ins) = &r.insights else {
            assert!(html.contains("No insights yet"), "{name}");
            continue;
        };
        let Some(slos) = &ins.slos else {
            assert!(!html.contains("class=\"slo "), "{name}");
            continue;
        };
        let sat = ins.slos_satisfied.as_ref().expect("assessed");
        let mut rows = 0;
        for v in 0..ins.num_versions {
            let vname = iter8::report::view::version_label(Some(ins), v);
            for (upper, list, sats) in [
                (true, &slos.upper, &sat.upper),
                (false, &slos.lower, &sat.lower),
            ] {
                for (i, slo) in list.iter().enumerate() {
                    let row = element(
                        &html,
                        &format!(
                            "data-version=\"{vname}\" data-metric=\"{}\" data-kind=\"{}\"",
                            slo.metric,
                            if upper { "upper" } else { "lower" }
                        ),
                        "</tr>",
                    );
                    rows += 1;
                    let units = ins
                        .metrics_info
                        .get(&slo.metric)
                        .and_then(|m| m.units.as_deref());
                    assert!(
                        row.contains(&fmt_with_units(slo.limit, units)),
                        "{name}: {row}"
                    );
                    match ins.latest(v, &slo.metric) {
                        Some(x) => {
                            let margin = if upper { slo.limit - x } else { x - slo.limit };
                            assert!(
                                row.contains(&format!(">{}<", fmt_with_units(x, units))),
                                "{name}: {row}"
                            );
                            assert!(
                                row.contains(&format!(">{}<", fmt_with_units(margin, units))),
                                "{name}: {row}"
                            );
                        }
                        None => assert!(row.contains("no value"), "{name}: {row}"),
                    }
                    let violated = !sats[i][v];
                    assert_eq!(
                        row.contains("violated") || row.contains("no value"),
                        violated,
                        "{name}: {row}"
                    );
                }
            }
        }
        assert_eq!(count(&html, "<tr class=\"slo "), rows, "{name}");
    }
    // Spot checks with fixed numbers.
    let html = html::render(&fixture("three-versions"));
    let row = element(
        &html,
        "data-version=\"v3\" data-metric=\"http/error-rate\"",
        "</tr>",
    );
    assert!(
        row.contains(">0.1<") && row.contains(" 0.01<") && row.contains(">-0.09<"),
        "{row}"
    );
    assert!(row.contains("violated"));
    let row = element(
        &html,
        "data-version=\"v1\" data-metric=\"app/conversion-rate\"",
        "</tr>",
    );
    assert!(
        row.contains(">3.1 %<") && row.contains(">0.1 %<") && row.contains("satisfied"),
        "{row}"
    );
    let reward = element(
        &html,
        "<tr class=\"reward\" data-metric=\"app/conversion-rate\"",
        "</tr>",
    );
    assert!(
        reward.contains(">v2<") && reward.contains(">4.2 %<"),
        "{reward}"
    );
    let html = html::render(&fixture("failed"));
    let failure = element(&html, "<div class=\"failure\"", "</div>");
    assert!(
        failure.contains(
            "Task 2 (http) failed: every request failed: connection refused (127.0.0.1:9)"
        ),
        "{failure}"
    );
}

/// Data curves of a plot (series lines are 2px wide; axes and ticks 1px).
fn curves(svg: &str) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter(|e| {
            e.split('>')
                .next()
                .unwrap_or_default()
                .contains("stroke-width=\"2\"")
        })
        .count()
}

#[test]
fn html_has_every_plot() {
    for (name, r) in common::all() {
        let html = html::render(&r);
        let mut expected = 0;
        if let Some(ins) = &r.insights {
            let mut sources: Vec<&String> = ins
                .histogram_metric_values
                .iter()
                .flat_map(|m| m.keys())
                .collect();
            sources.sort();
            sources.dedup();
            for source in sources {
                let mut versions = 0;
                for (v, m) in ins.histogram_metric_values.iter().enumerate() {
                    let Some(h) = m.get(source) else { continue };
                    versions += 1;
                    let vname = iter8::report::view::version_label(Some(ins), v);
                    for scale in ["linear", "log"] {
                        let start = format!("data-plot=\"histogram\" data-scale=\"{scale}\" data-source=\"{source}\" data-version=\"{vname}\"");
                        assert_eq!(count(&html, &start), 1, "{name}: {start}");
                        let svg = element(&html, &start, "</svg>");
                        // One bar per non-empty bucket.
                        let buckets = h.buckets.iter().filter(|b| b.count > 0).count();
                        assert!(
                            count(svg, "<rect") >= buckets,
                            "{name} {source} {vname} {scale}"
                        );
                        expected += 1;
                    }
                }
                let start = format!("data-plot=\"percentiles\" data-source=\"{source}\" data-versions=\"{versions}\"");
                let svg = element(&html, &start, "</svg>");
                assert_eq!(curves(svg), versions, "{name}: one curve per version");
                expected += 1;
            }
            if r.num_loops > 1 {
                for metric in iter8::report::view::slo_metrics(ins) {
                    let start = format!("data-plot=\"loops\" data-metric=\"{metric}\"");
                    let svg = element(&html, &start, "</svg>");
                    // A line per version plus the limit line; a point per loop and version.
                    assert_eq!(curves(svg), ins.num_versions, "{name} {metric}");
                    assert_eq!(
                        count(svg, "stroke=\"#CF222E\""),
                        1,
                        "{name} {metric}: limit line"
                    );
                    assert_eq!(
                        count(svg, "<circle"),
                        20 * ins.num_versions,
                        "{name} {metric}"
                    );
                    expected += 1;
                }
            }
        }
        assert_eq!(count(&html, "<svg"), expected, "{name}");
    }
    // Concrete counts: 3 versions x (linear + log) + 1 percentile plot.
    assert_eq!(count(&html::render(&fixture("three-versions")), "<svg"), 7);
    // 2 versions x 2 + 1, and 2 SLO metrics over the loops.
    assert_eq!(
        count(&html::render(&fixture("cronjob-20-loops")), "<svg"),
        7
    );
    assert_eq!(count(&html::render(&fixture("failed")), "<svg"), 0);
}

#[test]
fn html_lists_every_metric_unavailable_and_errors() {
    let r = fixture("grpc-custom");
    let ins = r.insights.as_ref().expect("insights");
    let html = html::render(&r);
    for (metric, meta) in &ins.metrics_info {
        let row = element(
            &html,
            &format!("<tr data-metric=\"{metric}\"><td><code>"),
            "</tr>",
        );
        assert!(row.contains(&format!("<td>{:?}</td>", meta.kind)), "{row}");
        assert!(row.contains(&meta.description), "{row}");
        if let Some(u) = &meta.units {
            assert!(row.contains(&format!("<td>{u}</td>")), "{row}");
        }
    }
    let row = element(
        &html,
        "<tr data-metric=\"istio/latency-p90\"><td><code>",
        "</tr>",
    );
    assert!(row.contains(">12.5<") && row.contains(">11.25<"), "{row}");
    let unavailable = element(&html, "<section id=\"unavailable\"", "</section>");
    assert!(unavailable.contains("query returned no data (is the candidate receiving traffic?)"));
    let errors = element(&html, "<section id=\"errors\"", "</section>");
    let row = element(
        errors,
        "<tr data-metric=\"grpc/status-UNAVAILABLE\"",
        "</tr>",
    );
    assert!(
        row.contains("<td>candidate</td>") && row.contains(">7<") && row.contains(">2.333%<"),
        "{row}"
    );
}

#[test]
fn html_escapes_text_from_the_result() {
    let mut r = fixture("one-version");
    r.failure = true;
    r.failed_task = Some(iter8::model::FailedTask {
        index: 0,
        task: "run".into(),
        message: "\"><img src=x onerror=alert(1)> see http://127.0.0.1:9/x".into(),
    });
    let ins = r.insights_mut();
    ins.version_names[0] = "<b>v1</b>".into();
    ins.register_metric(
        "<script>alert(1)</script>",
        MetricMeta::new(MetricType::Gauge, "<i>evil</i> & co", Some("<u>")),
    );
    ins.record(0, "<script>alert(1)</script>", 1.0);
    ins.mark_unavailable(0, "x/\"quoted'", "<style>body{display:none}</style>");
    let html = html::render(&r);
    assert!(!html.contains("<script"), "unescaped script");
    assert!(!html.contains("<img"));
    assert!(!html.contains("<b>v1</b>") && !html.contains("<i>evil") && !html.contains("<u>"));
    assert!(!html.contains("<style>body"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("data-version=\"&lt;b&gt;v1&lt;/b&gt;\""));
    assert!(html.contains("x/&quot;quoted&#39;"));
    // The URL from the message is text, never a reference.
    assert_eq!(count(&html, "http://"), 1);
    assert!(html.contains("see http://127.0.0.1:9/x</div>"));
    let lower = html.to_ascii_lowercase();
    for bad in ["src=\"", "href=", "url(", "=\"http:", "=\"https:"] {
        assert!(!lower.contains(bad), "{bad}");
    }
}

// ---------- CLI: report ----------

#[test]
fn cli_report_formats() {
    let path = fixture_path("three-versions");
    let r = fixture("three-versions");
    let (code, out, err) = iter8(&["report", "-f", p(&path)]);
    assert_eq!(code, EXIT_OK, "{err}");
    assert_eq!(out, text::render(&r, false));
    let (code, out, _) = iter8(&["report", "-f", p(&path), "-o", "json"]);
    assert_eq!(code, EXIT_OK);
    assert_eq!(
        serde_json::from_str::<ExperimentResult>(&out).expect("json"),
        r
    );
    let (code, out, _) = iter8(&["report", "--file", p(&path), "--output", "yaml"]);
    assert_eq!(code, EXIT_OK);
    assert_eq!(
        serde_yaml::from_str::<ExperimentResult>(&out).expect("yaml"),
        r
    );
    let (code, out, _) = iter8(&["report", "-f", p(&path), "-o", "html"]);
    assert_eq!(code, EXIT_OK);
    assert_eq!(out, html::render(&r));
}

#[test]
fn cli_report_to_a_file_and_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture_path("one-version");
    let out_file = dir.path().join("r.html");
    let (code, out, err) = iter8(&[
        "report",
        "-f",
        p(&path),
        "-o",
        "html",
        "--output-file",
        p(&out_file),
    ]);
    assert_eq!(code, EXIT_OK, "{err}");
    assert!(out.contains(p(&out_file)), "{out}");
    let written = std::fs::read_to_string(&out_file).expect("written");
    assert_eq!(written, html::render(&fixture("one-version")));

    // --open with an opener that succeeds.
    let opened = dir.path().join("opened.html");
    let (code, out, err) = iter8(&[
        "report",
        "-f",
        p(&path),
        "-o",
        "html",
        "--open",
        "--output-file",
        p(&opened),
        "--browser",
        "true",
    ]);
    assert_eq!(code, EXIT_OK, "{err}");
    assert!(out.contains("opened with true"), "{out}");
    assert!(opened.is_file());
    // --open where no opener works: the user is told where the file is.
    let (code, out, _) = iter8(&[
        "report",
        "-f",
        p(&path),
        "-o",
        "html",
        "--open",
        "--browser",
        "/nonexistent/opener",
    ]);
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("open it in a browser yourself"), "{out}");
    let shown = out
        .split_whitespace()
        .find(|w| w.ends_with(".html;"))
        .expect("path in message")
        .trim_end_matches(';')
        .to_string();
    let tmp = PathBuf::from(&shown);
    assert!(tmp.is_file(), "{shown}");
    let _ = std::fs::remove_file(tmp);
}

#[test]
fn cli_report_errors_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.yaml");
    let (code, _, err) = iter8(&["report", "-f", p(&missing)]);
    assert_eq!(code, EXIT_ERROR);
    assert!(
        err.contains(p(&missing)) && err.contains("not found"),
        "{err}"
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "numLoops: [1,\nstartTime: x\n").expect("write");
    let (code, _, err) = iter8(&["report", "-f", p(&bad)]);
    assert_eq!(code, EXIT_ERROR);
    assert!(err.contains(p(&bad)) && err.contains("line "), "{err}");
    let (code, _, err) = iter8(&["report"]);
    assert_eq!(code, EXIT_ERROR);
    assert!(
        err.contains("-f result.yaml") && err.contains("--release"),
        "{err}"
    );
    let (code, _, _) = iter8(&["report", "-f", p(&missing), "-o", "pdf"]);
    assert_eq!(code, EXIT_ERROR, "unknown format is a usage error");
    let (code, _, err) = iter8(&["report", "--release", "my-exp", "-n", "ns"]);
    assert_eq!(code, EXIT_ERROR);
    assert!(err.contains("release my-exp in namespace ns"), "{err}");
}

// ---------- CLI: assert ----------

#[test]
fn assert_all_hold_exit_0() {
    let path = fixture_path("one-version");
    let (code, out, err) = iter8(&[
        "assert",
        "-f",
        p(&path),
        "-c",
        "completed",
        "-c",
        "nofailure",
        "-c",
        "slos",
    ]);
    assert_eq!(code, EXIT_OK, "{out}{err}");
    assert_eq!(
        out.trim(),
        "all conditions hold: completed, nofailure, slos (verdict of loop 1)"
    );
    // Comma-separated, mixed with repeated.
    let (code, out, _) = iter8(&[
        "assert",
        "-f",
        p(&path),
        "-c",
        "completed,nofailure",
        "-c",
        "SLOs",
    ]);
    assert_eq!(code, EXIT_OK, "{out}");
}

#[test]
fn assert_false_conditions_exit_1_and_are_named() {
    let path = fixture_path("three-versions");
    let r = fixture("three-versions");
    let ins = r.insights.as_ref().expect("insights");
    let (code, out, _) = iter8(&["assert", "-f", p(&path), "-c", "completed,nofailure,slos"]);
    assert_eq!(code, EXIT_FALSE, "{out}");
    assert!(!out.contains("condition false: completed"));
    assert!(!out.contains("condition false: nofailure"));
    assert!(out.contains("condition false: slos"), "{out}");
    let p99 = ins.latest(1, "http/latency-p99").expect("p99");
    assert!(
        out.contains(&format!(
            "SLO violated: version v2: http/latency-p99 = {} ms, upper limit 100 ms",
            fmt_num(p99)
        )),
        "{out}"
    );
    assert!(
        out.contains("SLO violated: version v3: http/error-rate = 0.1, upper limit 0.01"),
        "{out}"
    );
    assert_eq!(count(&out, "SLO violated"), 2, "{out}");

    let (code, out, _) = iter8(&[
        "assert",
        "-f",
        p(&fixture_path("failed")),
        "-c",
        "completed,nofailure",
        "-c",
        "slos",
    ]);
    assert_eq!(code, EXIT_FALSE);
    assert!(
        out.contains("condition false: completed\n  1 of 3 tasks completed in loop 1"),
        "{out}"
    );
    assert!(
        out.contains("condition false: nofailure\n  task 2 (http) failed: every request failed"),
        "{out}"
    );
    assert!(
        !out.contains("condition false: slos"),
        "no SLOs given: holds\n{out}"
    );

    let (code, out, _) = iter8(&[
        "assert",
        "-f",
        p(&fixture_path("grpc-custom")),
        "-c",
        "slos",
    ]);
    assert_eq!(code, EXIT_FALSE);
    assert!(
        out.contains("SLO not satisfied: version candidate: istio/error-rate has no value (upper limit 0.01)"),
        "{out}"
    );
}

#[test]
fn assert_usage_and_read_errors_exit_3() {
    let path = fixture_path("one-version");
    let (code, _, err) = iter8(&["assert", "-f", p(&path), "-c", "completed,bogus"]);
    assert_eq!(code, EXIT_ERROR);
    assert!(
        err.contains("unknown condition \"bogus\"") && err.contains("completed, nofailure, slos"),
        "{err}"
    );
    let (code, _, _) = iter8(&["assert", "-f", p(&path)]);
    assert_eq!(code, EXIT_ERROR, "-c is required");
    let (code, _, err) = iter8(&["assert", "-f", p(&path), "-c", "slos", "--timeout", "soon"]);
    assert_eq!(code, EXIT_ERROR);
    assert!(
        err.contains("--timeout") && err.contains("\"soon\""),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("result.yaml");
    let (code, _, err) = iter8(&["assert", "-f", p(&missing), "-c", "completed"]);
    assert_eq!(code, EXIT_ERROR);
    assert!(err.contains(p(&missing)), "{err}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "startTime: 2026-01-01T00:00:00Z\nnumLoops: {\n").expect("write");
    let (code, _, err) = iter8(&["assert", "-f", p(&bad), "-c", "completed"]);
    assert_eq!(code, EXIT_ERROR);
    assert!(
        err.contains(&format!("invalid result file {}", p(&bad))) && err.contains("line "),
        "{err}"
    );
    // Invalid YAML with --timeout: still invalid at the deadline -> a read error.
    let (code, _, err) = iter8(&[
        "assert",
        "-f",
        p(&bad),
        "-c",
        "completed",
        "--timeout",
        "200ms",
        "--poll-interval",
        "20ms",
    ]);
    assert_eq!(code, EXIT_ERROR);
    assert!(err.contains("invalid result file"), "{err}");
}

#[test]
fn assert_timeout_exit_2_and_a_final_verdict_exits_1_at_once() {
    // The run is over (every task completed): the SLO verdict can no longer change, so
    // assert does not wait out the timeout; it exits 1 as Iter8 does.
    let path = fixture_path("three-versions");
    let (code, out, _) = iter8(&[
        "assert",
        "-f",
        p(&path),
        "-c",
        "slos",
        "--timeout",
        "600s",
        "--poll-interval",
        "50ms",
    ]);
    assert_eq!(code, EXIT_FALSE, "{out}");
    assert!(out.contains("the verdict can no longer change"), "{out}");
    assert!(out.contains("SLO violated: version v2"), "{out}");
    // A run still going (not completed, no failure) is waited for until the timeout.
    let dir = tempfile::tempdir().expect("tempdir");
    let going = dir.path().join("going.yaml");
    std::fs::write(
        &going,
        serde_yaml::to_string(&fixture("no-insights")).expect("yaml"),
    )
    .expect("write");
    let (code, out, _) = iter8(&[
        "assert",
        "-f",
        p(&going),
        "-c",
        "completed",
        "--timeout",
        "300ms",
        "--poll-interval",
        "50ms",
    ]);
    assert_eq!(code, EXIT_TIMEOUT, "{out}");
    assert!(
        out.contains("timed out after 300ms waiting for: completed"),
        "{out}"
    );
    // A file that never appears is "not yet" while waiting, then a timeout.
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("result.yaml");
    let (code, out, _) = iter8(&[
        "assert",
        "-f",
        p(&missing),
        "-c",
        "completed",
        "--timeout",
        "200ms",
        "--poll-interval",
        "50ms",
    ]);
    assert_eq!(code, EXIT_TIMEOUT);
    assert!(out.contains("has no result yet"), "{out}");
}

fn write_later(
    path: PathBuf,
    result: ExperimentResult,
    delay: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let yaml = serde_yaml::to_string(&result).expect("yaml");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, yaml).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
    })
}

#[test]
fn assert_polls_until_the_file_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("result.yaml");
    let writer = write_later(
        path.clone(),
        fixture("one-version"),
        Duration::from_millis(300),
    );
    let (code, out, err) = iter8(&[
        "assert",
        "-f",
        p(&path),
        "-c",
        "completed,nofailure,slos",
        "--timeout",
        "60s",
        "--poll-interval",
        "50ms",
    ]);
    writer.join().expect("writer");
    assert_eq!(code, EXIT_OK, "{out}{err}");
}

#[test]
fn assert_polls_until_the_result_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("result.yaml");
    std::fs::write(
        &path,
        serde_yaml::to_string(&fixture("no-insights")).expect("yaml"),
    )
    .expect("write");
    // Not completed yet: without --timeout that is a false condition.
    let (code, _, _) = iter8(&["assert", "-f", p(&path), "-c", "completed"]);
    assert_eq!(code, EXIT_FALSE);
    let writer = write_later(
        path.clone(),
        fixture("one-version"),
        Duration::from_millis(300),
    );
    let (code, out, err) = iter8(&[
        "assert",
        "-f",
        p(&path),
        "-c",
        "completed",
        "-c",
        "slos",
        "--timeout",
        "60s",
        "--poll-interval",
        "50ms",
    ]);
    writer.join().expect("writer");
    assert_eq!(code, EXIT_OK, "{out}{err}");
    assert!(
        out.trim()
            .starts_with("all conditions hold: completed, slos (verdict of loop "),
        "{out}"
    );
}

#[test]
fn binary_exit_codes() {
    // The real binary: exit codes reach the shell.
    let bin = env!("CARGO_BIN_EXE_iter8");
    let status = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("run iter8")
    };
    let ok = fixture_path("one-version");
    let bad = fixture_path("three-versions");
    assert_eq!(
        status(&["assert", "-f", p(&ok), "-c", "completed,nofailure,slos"])
            .status
            .code(),
        Some(0)
    );
    let out = status(&["assert", "-f", p(&bad), "-c", "slos"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SLO violated: version v2"));
    // the run is over: a false verdict is final, exit 1 without waiting (as Iter8 ends)
    assert_eq!(
        status(&["assert", "-f", p(&bad), "-c", "slos", "--timeout", "100ms"])
            .status
            .code(),
        Some(1)
    );
    let out = status(&["assert", "-f", p(&ok), "-c", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("valid conditions are completed, nofailure, slos"));
    assert_eq!(status(&["bogus-subcommand"]).status.code(), Some(3));
    assert_eq!(status(&["--help"]).status.code(), Some(0));
    let out = status(&["report", "-f", p(&ok)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Experiment summary"));
}

#[test]
fn odd_results_render_without_panicking() {
    use iter8::model::{HistBucket, Histogram};
    let b = |lower: f64, upper: f64, count: u64| HistBucket {
        lower,
        upper,
        count,
    };
    let hists = vec![
        vec![b(5.0, 5.0, 3)],                   // zero width
        vec![b(-2.0, -1.0, 1), b(0.0, 1.0, 2)], // negative and zero bounds
        vec![b(f64::NAN, 1.0, 1), b(1.0, f64::INFINITY, 1)],
        vec![b(1e300, f64::MAX, 4)],
        vec![b(2.0, 1.0, 5)], // upside down
        vec![b(1.0, 2.0, 0)], // empty buckets only
    ];
    for (i, buckets) in hists.into_iter().enumerate() {
        let mut r = fixture("cronjob-20-loops");
        let count = buckets.iter().map(|b| b.count).sum();
        let h = Histogram {
            buckets,
            count,
            sum: f64::NAN,
            sum_sq: 1.0,
            min: f64::NEG_INFINITY,
            max: f64::NAN,
        };
        let ins = r.insights_mut();
        ins.histogram_metric_values[0].insert("http/latency".into(), h);
        ins.record(1, "http/latency-p95", f64::NAN);
        ins.record(0, "http/latency-p95", f64::INFINITY);
        if let Some(s) = ins.slos.as_mut() {
            s.upper[0].limit = f64::NAN;
        }
        let html = html::render(&r);
        assert!(html.ends_with("</html>\n"), "case {i}");
        let t = text::render(&r, false);
        assert!(t.contains("Experiment summary"), "case {i}");
    }
}

/// A CronJob's loop 2 is running (no task done yet); loop 1 finished with every SLO met.
fn loop_two_running() -> ExperimentResult {
    let mut r = fixture("one-version");
    r.num_loops = 1;
    r.record_finished_loop();
    r.num_loops = 2;
    r.num_completed_tasks = 0;
    r
}

#[test]
fn assert_answers_from_the_last_finished_loop_while_a_later_loop_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("result.yaml");
    std::fs::write(
        &path,
        serde_yaml::to_string(&loop_two_running()).expect("yaml"),
    )
    .expect("write");
    let (code, out, err) = iter8(&["assert", "-f", p(&path), "-c", "completed,nofailure,slos"]);
    assert_eq!(code, EXIT_OK, "{out}{err}");
    assert!(
        out.contains("(verdict of loop 1 (loop 2 is running: 0 of "),
        "{out}"
    );
    // The report says the same, and shows loop 1's result.
    let (code, out, err) = iter8(&["report", "-f", p(&path)]);
    assert_eq!(code, EXIT_OK, "{err}");
    assert!(out.contains("Verdict of:"), "{out}");
    assert!(out.contains("loop 1 (loop 2 is running"), "{out}");
    // Once loop 2 fails, its own verdict counts.
    let mut failed = loop_two_running();
    failed.failure = true;
    failed.record_finished_loop();
    std::fs::write(&path, serde_yaml::to_string(&failed).expect("yaml")).expect("write");
    let (code, out, _) = iter8(&["assert", "-f", p(&path), "-c", "nofailure"]);
    assert_eq!(code, EXIT_FALSE, "{out}");
    assert!(out.contains("verdict of loop 2"), "{out}");
}
