//! The HTML report: one self-contained file (inline CSS, inline SVG, no script, nothing
//! fetched from the network), readable in light and dark mode (`prefers-color-scheme`).
//!
//! Contents: the verdict up front (completed, failure and reason, every SLO per version with
//! value, limit and margin, the winner per reward); per-endpoint / per-version latency
//! histograms drawn from the stored buckets (linear and log-scale latency axis, switched by
//! a CSS-only toggle) with the percentile curves of all versions overlaid; for multi-loop
//! experiments each SLO metric over the kept loops; every metric with units and
//! description; unavailable metrics; requests by status code / error kind.
//!
//! Plots are drawn with `plotters` (SVG backend only, its built-in text layout: no fonts
//! or system libraries). Text from the result (metric and version names, messages) is
//! HTML-escaped and never put inside the SVG; each plot carries `data-plot`,
//! `data-source` / `data-metric` and `data-version` attributes naming what it shows.

use std::fmt::Write as _;

use super::html_plots::{css_color, finish_svg, histogram_svg, loops_svg, percentiles_svg};
use super::view::{self, fmt_num, fmt_with_units, MetricValue};
use crate::model::{ExperimentResult, Histogram, Insights};

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root{color-scheme:light dark;--bg:#ffffff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--card:#f6f8fa;--ok:#1a7f37;--bad:#cf222e;--okbg:#dafbe1;--badbg:#ffebe9;--warn:#9a6700}
@media (prefers-color-scheme: dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--card:#151b23;--ok:#3fb950;--bad:#f85149;--okbg:#0f2a18;--badbg:#3a1418;--warn:#d29922}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1180px;padding:20px 24px 48px;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 8px}
.sub{color:var(--muted);margin:0 0 14px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid var(--line);background:var(--card);border-radius:8px;padding:8px 12px;min-width:150px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:16px;font-weight:600}
.card.ok{border-color:var(--ok);background:var(--okbg)}
.card.bad{border-color:var(--bad);background:var(--badbg)}
.card.ok .v{color:var(--ok)} .card.bad .v{color:var(--bad)}
.failure{border:1px solid var(--bad);background:var(--badbg);border-radius:8px;padding:10px 12px;margin:10px 0;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{color:var(--muted);font-weight:600;background:var(--card)}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.desc{color:var(--muted);max-width:420px}
tr.violated td{background:var(--badbg)}
.st-ok{color:var(--ok);font-weight:600}.st-bad{color:var(--bad);font-weight:600}.st-na{color:var(--warn);font-weight:600}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;overflow-wrap:anywhere}
.plots{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px;background:var(--card);flex:1 1 460px;max-width:700px}
figcaption{font-size:13px;margin-bottom:4px}
svg.plot{display:block;width:100%;height:auto}
svg.plot text{fill:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:12.5px;margin:4px 0}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.toggle{font-size:13px;color:var(--muted);user-select:none}
.toggle input{vertical-align:-2px;margin-right:4px}
.logx:checked ~ .plots figure.lin{display:none}
.logx:not(:checked) ~ .plots figure.log{display:none}
.note{color:var(--muted);font-size:13px}
.warning{color:var(--bad,#b00020)}
footer{margin-top:32px;color:var(--muted);font-size:12px}
"#;

/// Render the HTML report.
pub fn render(current: &ExperimentResult) -> String {
    // While a later loop runs, the report is the last finished loop's.
    let result = current.verdict();
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<meta name=\"color-scheme\" content=\"light dark\">\n");
    h.push_str("<title>Iter8 experiment report</title>\n<style>");
    h.push_str(CSS);
    h.push_str("</style>\n</head>\n<body>\n");
    let _ = writeln!(
        h,
        "<header><h1>Iter8 experiment report</h1><p class=\"sub\">Started {} &middot; runner {}{}</p></header>",
        esc(&result
            .start_time
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        esc(&result.iter8_version),
        result
            .revision
            .map(|r| format!(" &middot; release revision {r}"))
            .unwrap_or_default()
    );
    verdict(&mut h, result);
    let _ = writeln!(
        h,
        "<p class=\"note\" id=\"verdict-of\">Verdict of {}</p>",
        esc(&current.verdict_label())
    );
    match &result.insights {
        None => {
            h.push_str("<section id=\"metrics\"><h2>Metrics</h2><p class=\"note\">No insights yet: no task has recorded a metric.</p></section>\n");
        }
        Some(insights) => {
            latency(&mut h, insights);
            loops(&mut h, result, insights);
            metrics(&mut h, insights);
            unavailable(&mut h, insights);
            errors(&mut h, insights);
            super::load::html(&mut h, insights);
        }
    }
    h.push_str("<footer>Generated by iter8 report. Self-contained: no scripts, nothing loaded from the network.</footer>\n</body>\n</html>\n");
    h
}

fn card(h: &mut String, key: &str, value: &str, state: Option<bool>) {
    let class = match state {
        Some(true) => "card ok",
        Some(false) => "card bad",
        None => "card",
    };
    let _ = write!(
        h,
        "<div class=\"{class}\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>",
        esc(key),
        esc(value)
    );
}

fn verdict(h: &mut String, result: &ExperimentResult) {
    h.push_str("<section id=\"verdict\"><h2>Verdict</h2>\n<div class=\"cards\">");
    card(
        h,
        "Completed",
        &format!(
            "{} ({} / {} tasks)",
            if result.completed() { "yes" } else { "no" },
            result.num_completed_tasks,
            result.num_tasks
        ),
        Some(result.completed()),
    );
    card(
        h,
        "Failure",
        if result.failure { "yes" } else { "none" },
        Some(!result.failure),
    );
    let slo_rows = view::slo_rows(result);
    let relative_given = result
        .insights
        .as_ref()
        .is_some_and(|i| i.relative_slos.is_some() || i.regression.is_some());
    if slo_rows.is_empty() && relative_given {
        let ok = result.slos_satisfied();
        card(
            h,
            "SLOs",
            if ok {
                "relative limits hold"
            } else {
                "relative limits violated"
            },
            Some(ok),
        );
    } else if slo_rows.is_empty() {
        card(h, "SLOs", "none given", None);
    } else {
        let bad = slo_rows.iter().filter(|r| !r.satisfied).count();
        let ok = result.slos_satisfied() && bad == 0;
        let text = if ok {
            format!("all {} satisfied", slo_rows.len())
        } else {
            format!("{bad} of {} not satisfied", slo_rows.len())
        };
        card(h, "SLOs", &text, Some(ok));
    }
    card(h, "Loops", &result.num_loops.to_string(), None);
    if let Some(i) = &result.insights {
        card(
            h,
            "Versions",
            &view::num_versions(i).max(1).to_string(),
            None,
        );
    }
    h.push_str("</div>\n");
    if result.failure {
        let msg = match &result.failed_task {
            Some(t) => format!("Task {} ({}) failed: {}", t.index + 1, t.task, t.message),
            None => "A task failed (no details recorded).".to_string(),
        };
        let _ = writeln!(
            h,
            "<div class=\"failure\" id=\"failure\">{}</div>",
            esc(&msg)
        );
    }
    if !result.warnings.is_empty() {
        h.push_str("<div class=\"warnings\" id=\"warnings\"><b>Warnings</b><ul>\n");
        for w in &result.warnings {
            let _ = writeln!(h, "<li>{}</li>", esc(w));
        }
        h.push_str("</ul></div>\n");
    }
    if !slo_rows.is_empty() {
        h.push_str("<h3>SLOs per version</h3>\n<p class=\"note\">Margin: headroom to the limit (limit &minus; value for upper limits, value &minus; limit for lower limits); negative when violated.</p>\n");
        h.push_str("<table class=\"slos\"><thead><tr><th>version</th><th>metric</th><th>limit</th><th>value</th><th>margin</th><th>status</th></tr></thead><tbody>\n");
        for r in &slo_rows {
            let units = r.units.as_deref();
            let (class, status) = match (r.satisfied, r.value) {
                (true, _) => ("slo ok", "<span class=\"st-ok\">&#10003; satisfied</span>"),
                (false, Some(_)) => (
                    "slo violated",
                    "<span class=\"st-bad\">&#10007; violated</span>",
                ),
                (false, None) => (
                    "slo violated",
                    "<span class=\"st-bad\">&#10007; no value</span>",
                ),
            };
            let _ = writeln!(
                h,
                "<tr class=\"{class}\" data-version=\"{}\" data-metric=\"{}\" data-kind=\"{}\"><td>{}</td><td><code>{}</code></td><td class=\"num\">{} {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{status}{}</td></tr>",
                esc(&r.version_name),
                esc(&r.metric),
                r.kind.as_str(),
                esc(&r.version_name),
                esc(&r.metric),
                r.kind.symbol().replace('<', "&le;").replace(">=", "&ge;").replace('=', ""),
                esc(&fmt_with_units(r.limit, units)),
                r.value
                    .map(|v| esc(&fmt_with_units(v, units)))
                    .unwrap_or_else(|| "&ndash;".into()),
                r.margin()
                    .map(|v| esc(&fmt_with_units(v, units)))
                    .unwrap_or_else(|| "&ndash;".into()),
                if r.assessed { "" } else { " <span class=\"note\">(not assessed yet)</span>" },
            );
        }
        h.push_str("</tbody></table>\n");
    }
    let winners = view::winner_rows(result);
    if !winners.is_empty() {
        h.push_str("<h3>Rewards</h3>\n<table class=\"rewards\"><thead><tr><th>reward</th><th>metric</th><th>winner</th><th>winning value</th></tr></thead><tbody>\n");
        for w in &winners {
            let winner = match (&w.winner_name, w.assessed) {
                (Some(n), _) => format!("<span class=\"st-ok\">{}</span>", esc(n)),
                (None, true) => "<span class=\"st-na\">none (no version has a value)</span>".into(),
                (None, false) => "<span class=\"st-na\">not assessed yet</span>".into(),
            };
            let value = w
                .winner
                .and_then(|i| w.values.get(i).copied().flatten())
                .map(|v| esc(&fmt_with_units(v, w.units.as_deref())))
                .unwrap_or_else(|| "&ndash;".into());
            let _ = writeln!(
                h,
                "<tr class=\"reward\" data-metric=\"{}\"><td>{}</td><td><code>{}</code></td><td>{winner}</td><td class=\"num\">{value}</td></tr>",
                esc(&w.metric),
                if w.direction == "max" { "max (higher wins)" } else { "min (lower wins)" },
                esc(&w.metric),
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if let Some(i) = &result.insights {
        super::html_verdicts::sections(h, i);
    }
    h.push_str("</section>\n");
}

fn legend(h: &mut String, insights: &Insights, versions: &[usize]) {
    h.push_str("<div class=\"legend\">");
    for &v in versions {
        let _ = write!(
            h,
            "<span><span class=\"sw\" style=\"background:{}\"></span>{}</span>",
            css_color(v),
            esc(&view::version_label(Some(insights), v))
        );
    }
    h.push_str("</div>");
}

fn plot_error(h: &mut String, what: &str, e: &str) {
    let _ = writeln!(
        h,
        "<p class=\"note\">{} could not be drawn: {}</p>",
        esc(what),
        esc(e)
    );
}

fn latency(h: &mut String, insights: &Insights) {
    let n = view::num_versions(insights);
    // Histogram sources (e.g. http/latency, grpc-echo/latency) in name order.
    let mut sources: Vec<&String> = insights
        .histogram_metric_values
        .iter()
        .flat_map(|m| m.keys())
        .collect();
    sources.sort();
    sources.dedup();
    let rows = view::latency_rows(insights);
    if sources.is_empty() && rows.is_empty() {
        return;
    }
    h.push_str("<section id=\"latency\"><h2>Latency</h2>\n");
    for (si, source) in sources.iter().enumerate() {
        let units = view::units_of(insights, source).unwrap_or("ms");
        let with_data: Vec<(usize, &Histogram)> = (0..n)
            .filter_map(|v| {
                insights
                    .histogram_metric_values
                    .get(v)
                    .and_then(|m| m.get(*source))
                    .filter(|h| h.count > 0)
                    .map(|h| (v, h))
            })
            .collect();
        let _ = writeln!(
            h,
            "<div class=\"endpoint\" data-source=\"{}\"><h3><code>{}</code></h3>",
            esc(source),
            esc(source)
        );
        if with_data.is_empty() {
            h.push_str("<p class=\"note\">No observations recorded.</p></div>\n");
            continue;
        }
        let _ = writeln!(
            h,
            "<input type=\"checkbox\" class=\"logx\" id=\"logx-{si}\"><label class=\"toggle\" for=\"logx-{si}\">log-scale latency axis</label>"
        );
        h.push_str("<div class=\"plots\">\n");
        for &(v, hist) in &with_data {
            let vname = view::version_label(Some(insights), v);
            for (log, class) in [(false, "lin"), (true, "log")] {
                let _ = write!(
                    h,
                    "<figure class=\"{class}\"><figcaption>Histogram &middot; version <b>{}</b> &middot; {} requests{}</figcaption>",
                    esc(&vname),
                    hist.count,
                    if log { " &middot; log scale" } else { "" }
                );
                match histogram_svg(hist, v, log, units) {
                    Ok(svg) => h.push_str(&finish_svg(
                        svg,
                        &format!(
                            "data-plot=\"histogram\" data-scale=\"{}\" data-source=\"{}\" data-version=\"{}\" aria-label=\"latency histogram of {} for version {}\"",
                            if log { "log" } else { "linear" },
                            esc(source),
                            esc(&vname),
                            esc(source),
                            esc(&vname)
                        ),
                    )),
                    Err(e) => plot_error(h, "The histogram", &e),
                }
                h.push_str("</figure>\n");
            }
        }
        h.push_str("<figure class=\"pct\"><figcaption>Percentiles, all versions</figcaption>");
        match percentiles_svg(&with_data, units) {
            Ok(svg) => h.push_str(&finish_svg(
                svg,
                &format!(
                    "data-plot=\"percentiles\" data-source=\"{}\" data-versions=\"{}\" aria-label=\"latency percentiles of {}\"",
                    esc(source),
                    with_data.len(),
                    esc(source)
                ),
            )),
            Err(e) => plot_error(h, "The percentile curves", &e),
        }
        let versions: Vec<usize> = with_data.iter().map(|(v, _)| *v).collect();
        legend(h, insights, &versions);
        h.push_str("</figure>\n</div></div>\n");
    }
    if !rows.is_empty() {
        let mut pcts: Vec<f64> = Vec::new();
        for r in &rows {
            for (p, _) in &r.percentiles {
                if !pcts.contains(p) {
                    pcts.push(*p);
                }
            }
        }
        pcts.sort_by(|a, b| a.total_cmp(b));
        h.push_str("<h3>Latency statistics</h3>\n<table class=\"latency\"><thead><tr><th>endpoint</th><th>version</th><th>units</th><th>count</th><th>mean</th><th>min</th>");
        for p in &pcts {
            let _ = write!(h, "<th>{}</th>", esc(&view::percentile_label(*p)));
        }
        h.push_str("<th>max</th></tr></thead><tbody>\n");
        let cell = |x: Option<f64>| {
            x.map(|x| esc(&fmt_num(x)))
                .unwrap_or_else(|| "&ndash;".into())
        };
        for r in &rows {
            let _ = write!(
                h,
                "<tr data-source=\"{}\" data-version=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                esc(&r.source),
                esc(&r.version_name),
                esc(&r.source),
                esc(&r.version_name),
                esc(r.units.as_deref().unwrap_or("")),
                r.count.map(|c| c.to_string()).unwrap_or_else(|| "&ndash;".into()),
                cell(r.mean),
                cell(r.min),
            );
            for p in &pcts {
                let v = r.percentiles.iter().find(|(q, _)| q == p).map(|(_, x)| *x);
                let _ = write!(h, "<td class=\"num\">{}</td>", cell(v));
            }
            let _ = writeln!(h, "<td class=\"num\">{}</td></tr>", cell(r.max));
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
}

fn loops(h: &mut String, result: &ExperimentResult, insights: &Insights) {
    if result.num_loops <= 1 {
        return;
    }
    let metrics = view::slo_metrics(insights);
    if metrics.is_empty() {
        return;
    }
    let n = view::num_versions(insights);
    let _ = writeln!(
        h,
        "<section id=\"loops\"><h2>SLO metrics over loops</h2>\n<p class=\"note\">The last {} of {} loops are kept per metric; the red line is the SLO limit.</p>\n<div class=\"plots\">",
        crate::model::result::MAX_LOOP_HISTORY.min(result.num_loops as usize),
        result.num_loops
    );
    let slos = insights.slos.clone().unwrap_or_default();
    for metric in metrics {
        let series: Vec<(usize, Vec<(f64, f64)>)> = (0..n)
            .filter_map(|v| {
                let vals = insights.non_histogram_metric_values.get(v)?.get(&metric)?;
                if vals.is_empty() {
                    return None;
                }
                let first = result.num_loops as f64 - vals.len() as f64 + 1.0;
                Some((
                    v,
                    vals.iter()
                        .enumerate()
                        .map(|(i, y)| (first + i as f64, *y))
                        .collect(),
                ))
            })
            .collect();
        let limits: Vec<f64> = slos
            .upper
            .iter()
            .chain(slos.lower.iter())
            .filter(|s| crate::model::metrics::normalize_metric_name(&s.metric) == metric)
            .map(|s| s.limit)
            .collect();
        let units = view::units_of(insights, &metric).unwrap_or("");
        let _ = write!(
            h,
            "<figure class=\"loop\"><figcaption><code>{}</code>{}</figcaption>",
            esc(&metric),
            if units.is_empty() {
                String::new()
            } else {
                format!(" ({})", esc(units))
            }
        );
        if series.is_empty() {
            h.push_str("<p class=\"note\">No values recorded.</p></figure>\n");
            continue;
        }
        match loops_svg(&series, &limits, units) {
            Ok(svg) => h.push_str(&finish_svg(
                svg,
                &format!(
                    "data-plot=\"loops\" data-metric=\"{}\" data-versions=\"{}\" aria-label=\"{} over loops\"",
                    esc(&metric),
                    series.len(),
                    esc(&metric)
                ),
            )),
            Err(e) => plot_error(h, "The loop plot", &e),
        }
        let versions: Vec<usize> = series.iter().map(|(v, _)| *v).collect();
        legend(h, insights, &versions);
        h.push_str("</figure>\n");
    }
    h.push_str("</div></section>\n");
}

fn metrics(h: &mut String, insights: &Insights) {
    let names = view::metric_names(insights);
    let n = view::num_versions(insights).max(1);
    h.push_str("<section id=\"metrics\"><h2>Metrics</h2>\n");
    if names.is_empty() {
        h.push_str("<p class=\"note\">No metrics recorded yet.</p></section>\n");
        return;
    }
    h.push_str("<p class=\"note\">Latest values (counters and gauges); histograms show their number of observations and mean.</p>\n");
    h.push_str("<table class=\"metrics\"><thead><tr><th>metric</th><th>type</th><th>units</th><th>description</th>");
    for v in 0..n {
        let _ = write!(
            h,
            "<th>{}</th>",
            esc(&view::version_label(Some(insights), v))
        );
    }
    h.push_str("</tr></thead><tbody>\n");
    for name in names {
        let meta = view::meta(insights, &name);
        let _ = write!(
            h,
            "<tr data-metric=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"desc\">{}</td>",
            esc(&name),
            esc(&name),
            meta.map(|m| format!("{:?}", m.kind)).unwrap_or_default(),
            esc(meta.and_then(|m| m.units.as_deref()).unwrap_or("")),
            esc(meta.map(|m| m.description.as_str()).unwrap_or("")),
        );
        for v in 0..n {
            let cell = match view::metric_value(insights, v, &name) {
                MetricValue::Value(x) => esc(&fmt_num(x)),
                MetricValue::Histogram { count, mean } => format!(
                    "{count} obs{}",
                    mean.map(|m| format!(", mean {}", esc(&fmt_num(m))))
                        .unwrap_or_default()
                ),
                MetricValue::Unavailable(_) => "<span class=\"st-na\">unavailable</span>".into(),
                MetricValue::Missing => "&ndash;".into(),
            };
            let _ = write!(h, "<td class=\"num\">{cell}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n</section>\n");
}

fn unavailable(h: &mut String, insights: &Insights) {
    let rows = view::unavailable_rows(insights);
    if rows.is_empty() {
        return;
    }
    h.push_str("<section id=\"unavailable\"><h2>Unavailable metrics</h2>\n<table class=\"unavailable\"><thead><tr><th>version</th><th>metric</th><th>reason</th></tr></thead><tbody>\n");
    for r in rows {
        let _ = writeln!(
            h,
            "<tr data-metric=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&r.metric),
            esc(&r.version_name),
            esc(&r.metric),
            esc(&r.reason)
        );
    }
    h.push_str("</tbody></table>\n</section>\n");
}

fn errors(h: &mut String, insights: &Insights) {
    let rows = view::error_rows(insights);
    if rows.is_empty() {
        return;
    }
    h.push_str("<section id=\"errors\"><h2>Requests by status code and error kind</h2>\n<table class=\"errors\"><thead><tr><th>version</th><th>source</th><th>kind</th><th>code</th><th>count</th><th>share</th></tr></thead><tbody>\n");
    for r in rows {
        let total = insights
            .non_histogram_metric_values
            .get(r.version)
            .and_then(|m| m.get(&format!("{}/request-count", r.source)))
            .and_then(|v| v.last())
            .copied()
            .filter(|t| *t > 0.0);
        let share = total
            .map(|t| format!("{}%", fmt_num(100.0 * r.count / t)))
            .unwrap_or_else(|| "&ndash;".into());
        let _ = writeln!(
            h,
            "<tr data-metric=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{share}</td></tr>",
            esc(&r.metric),
            esc(&r.version_name),
            esc(&r.source),
            r.class.as_str(),
            esc(&r.code),
            esc(&fmt_num(r.count)),
        );
    }
    h.push_str("</tbody></table>\n</section>\n");
}
