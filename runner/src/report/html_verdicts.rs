//! The HTML report's verdicts beyond absolute SLOs: relative SLOs, regression and the
//! comparisons of versions (tables inside the Verdict section; rows from [`super::verdicts`]).

use std::fmt::Write as _;

use super::html::esc;
use super::verdicts::{self, fmt_effect, fmt_p, fmt_test, verdict_ok, RelativeRow};
use super::view::fmt_num;
use crate::model::Insights;

fn relative_table(h: &mut String, id: &str, rows: &[RelativeRow]) {
    let _ = writeln!(
        h,
        "<table class=\"relative\" id=\"{id}\"><thead><tr><th>version</th><th>metric</th><th>limit</th><th>reference</th><th>value</th><th>status</th></tr></thead><tbody>"
    );
    for r in rows {
        let (class, status) = if r.satisfied {
            (
                "slo ok",
                format!("<span class=\"st-ok\">&#10003; {}</span>", esc(&r.status())),
            )
        } else {
            (
                "slo violated",
                format!(
                    "<span class=\"st-bad\">&#10007; {}</span>",
                    esc(&r.status())
                ),
            )
        };
        let limit = match r.limit {
            Some(_) => format!("{} = {}", r.rule(), r.show(r.limit)),
            None => r.rule(),
        };
        let _ = writeln!(
            h,
            "<tr class=\"{class}\" data-version=\"{}\" data-metric=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{status}</td></tr>",
            esc(&r.version_name),
            esc(&r.metric),
            esc(&r.version_name),
            esc(&r.metric),
            esc(&limit),
            esc(&r.show(r.reference)),
            esc(&r.show(r.value)),
        );
    }
    h.push_str("</tbody></table>\n");
}

/// Relative SLO, regression and comparison tables (nothing when the result has none).
pub fn sections(h: &mut String, insights: &Insights) {
    let (baseline, regression) = verdicts::relative_rows(insights);
    if let Some(r) = &insights.relative_slos {
        let _ = writeln!(
            h,
            "<h3>Relative SLOs (against baseline {})</h3>",
            esc(&r.baseline_name)
        );
        relative_table(h, "relative-slos", &baseline);
    }
    if insights.regression.is_some() {
        h.push_str("<h3>Regression (against the previous loop)</h3>\n");
        relative_table(h, "regression", &regression);
    }
    let Some(cmp) = &insights.comparisons else {
        return;
    };
    let _ = writeln!(
        h,
        "<h3>Comparisons with baseline {}</h3>\n<p class=\"note\">A version is better or worse only when the difference is significant at alpha {} (two-sided); intervals are {}% intervals of the effect: the Hodges-Lehmann shift of latency, the difference of error rates in percentage points. Versions with fewer than {} observations get no verdict.</p>",
        esc(&cmp.baseline_name),
        esc(&fmt_num(cmp.alpha)),
        esc(&fmt_num((1.0 - cmp.alpha) * 100.0)),
        cmp.min_samples
    );
    h.push_str("<table class=\"comparisons\" id=\"comparisons\"><thead><tr><th>metric</th><th>version</th><th>verdict</th><th>effect [interval]</th><th>p-value</th><th>n (baseline, version)</th><th>test</th></tr></thead><tbody>\n");
    for m in &cmp.metrics {
        for c in &m.versions {
            let class = match verdict_ok(c.verdict) {
                Some(true) => "st-ok",
                Some(false) => "st-bad",
                None => "st-na",
            };
            let _ = writeln!(
                h,
                "<tr class=\"comparison\" data-metric=\"{}\" data-version=\"{}\" data-verdict=\"{}\"><td><code>{}</code></td><td>{}</td><td><span class=\"{class}\">{}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}, {}</td><td>{}</td></tr>",
                esc(&m.metric),
                esc(&c.version_name),
                esc(c.verdict.as_str()),
                esc(&m.metric),
                esc(&c.version_name),
                esc(c.verdict.as_str()),
                esc(&fmt_effect(insights, m, c)),
                c.p_value.map(|p| esc(&fmt_p(p))).unwrap_or_else(|| "&ndash;".into()),
                c.baseline_samples,
                c.samples,
                esc(&c.note.clone().unwrap_or_else(|| fmt_test(m, c))),
            );
        }
    }
    h.push_str("</tbody></table>\n<ul class=\"winners\">\n");
    for m in &cmp.metrics {
        let _ = writeln!(
            h,
            "<li data-metric=\"{}\">winner on <code>{}</code>: {}</li>",
            esc(&m.metric),
            esc(&m.metric),
            match &m.winner_name {
                Some(w) => format!("<span class=\"st-ok\">{}</span>", esc(w)),
                None => "<span class=\"st-na\">none (no significant difference decides it)</span>"
                    .into(),
            }
        );
    }
    h.push_str("</ul>\n");
}
