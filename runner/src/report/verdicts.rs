//! Rows of the verdicts beyond absolute SLOs (relative SLOs, regression, comparisons), shared
//! by the text and HTML reports and by `iter8 assert`'s explanations, so that every number
//! agrees.

use super::view::{fmt_num, fmt_with_units, units_of};
use crate::model::verdicts::{
    Bound, MetricComparison, RelativeCheck, StatTest, Verdict, VersionComparison,
};
use crate::model::Insights;

/// One relative limit for one version.
#[derive(Clone, Debug, PartialEq)]
pub struct RelativeRow {
    /// `baseline` (relativeSLOs) or `previous loop` (regression).
    pub against: &'static str,
    pub version_name: String,
    pub metric: String,
    pub bound: Bound,
    pub percent: f64,
    pub value: Option<f64>,
    pub reference: Option<f64>,
    pub limit: Option<f64>,
    pub units: Option<String>,
    pub satisfied: bool,
    pub note: Option<String>,
}

impl RelativeRow {
    /// `<= +10% of baseline` / `>= -5% of previous loop`.
    pub fn rule(&self) -> String {
        match self.bound {
            Bound::Upper => format!("<= +{}% of {}", fmt_num(self.percent), self.against),
            Bound::Lower => format!(">= -{}% of {}", fmt_num(self.percent), self.against),
        }
    }

    /// A number with the metric's units, `-` when missing.
    pub fn show(&self, x: Option<f64>) -> String {
        x.map(|x| fmt_with_units(x, self.units.as_deref()))
            .unwrap_or_else(|| "-".into())
    }

    /// `ok`, `baseline`, `VIOLATED`, `VIOLATED (no value)`, ...
    pub fn status(&self) -> String {
        match (self.satisfied, &self.note) {
            (true, Some(n)) => format!("ok ({n})"),
            (true, None) => "ok".into(),
            (false, Some(n)) => format!("VIOLATED ({n})"),
            (false, None) => "VIOLATED".into(),
        }
    }

    /// One line for `iter8 assert`.
    pub fn explain(&self) -> String {
        match (self.value, self.limit) {
            (Some(v), Some(limit)) => format!(
                "relative SLO violated: version {}: {} = {}, limit {} ({} {})",
                self.version_name,
                self.metric,
                fmt_with_units(v, self.units.as_deref()),
                fmt_with_units(limit, self.units.as_deref()),
                self.rule(),
                self.show(self.reference),
            ),
            _ => format!(
                "relative SLO not satisfied: version {}: {} ({}): {}",
                self.version_name,
                self.metric,
                self.rule(),
                self.note.as_deref().unwrap_or("no value")
            ),
        }
    }
}

fn rows_of(
    insights: &Insights,
    against: &'static str,
    checks: &[RelativeCheck],
) -> Vec<RelativeRow> {
    let mut out = Vec::new();
    for c in checks {
        for (v, o) in c.versions.iter().enumerate() {
            out.push(RelativeRow {
                against,
                version_name: super::view::version_label(Some(insights), v),
                metric: c.metric.clone(),
                bound: c.bound,
                percent: c.percent,
                value: o.value,
                reference: o.reference,
                limit: o.limit,
                units: units_of(insights, &c.metric).map(str::to_string),
                satisfied: o.satisfied,
                note: o.note.clone(),
            });
        }
    }
    out
}

/// Relative SLO rows (against the baseline), then regression rows (previous loop).
pub fn relative_rows(insights: &Insights) -> (Vec<RelativeRow>, Vec<RelativeRow>) {
    (
        insights
            .relative_slos
            .as_ref()
            .map(|r| rows_of(insights, "baseline", &r.checks))
            .unwrap_or_default(),
        insights
            .regression
            .as_ref()
            .map(|r| rows_of(insights, "previous loop", &r.checks))
            .unwrap_or_default(),
    )
}

/// A p-value for people: 4 decimals, scientific below 0.0001.
pub fn fmt_p(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The effect with its interval: `+5 ms [4.9 ms, 5.1 ms]`, or for error rates
/// `+3 pp [1.5 pp, 4.6 pp]` (percentage points).
pub fn fmt_effect(insights: &Insights, m: &MetricComparison, c: &VersionComparison) -> String {
    let Some(e) = c.effect else {
        return "-".into();
    };
    let (scale, units) = match m.test {
        StatTest::TwoProportionZ => (100.0, Some("pp")),
        StatTest::MannWhitneyU => (1.0, units_of(insights, &m.metric).or(Some("ms"))),
    };
    let show = |x: f64| {
        let s = fmt_with_units(x * scale, units);
        if x > 0.0 {
            format!("+{s}")
        } else {
            s
        }
    };
    match (c.ci_lower, c.ci_upper) {
        (Some(lo), Some(hi)) => format!("{} [{}, {}]", show(e), show(lo), show(hi)),
        _ => show(e),
    }
}

/// Details of the test: `Mann-Whitney U (asymptotic), P(slower) 0.93` /
/// `two-proportion z, error rate 1% -> 4%`.
pub fn fmt_test(m: &MetricComparison, c: &VersionComparison) -> String {
    match m.test {
        StatTest::MannWhitneyU => {
            let mut s = m.test.as_str().to_string();
            if let Some(method) = &c.method {
                s.push_str(&format!(" ({method})"));
            }
            if let Some(p) = c.probability_greater {
                s.push_str(&format!(", P(slower) {}", fmt_num(p)));
            }
            s
        }
        StatTest::TwoProportionZ => match (c.baseline_rate, c.rate) {
            (Some(b), Some(r)) => format!(
                "{}, error rate {}% -> {}%",
                m.test.as_str(),
                fmt_num(b * 100.0),
                fmt_num(r * 100.0)
            ),
            _ => m.test.as_str().to_string(),
        },
    }
}

/// Whether a verdict is good news for the version (for colours).
pub fn verdict_ok(v: Verdict) -> Option<bool> {
    match v {
        Verdict::Better => Some(true),
        Verdict::Worse | Verdict::NotEnoughData => Some(false),
        Verdict::NoDifference => None,
    }
}

/// Lines for `iter8 assert -c comparisons` when it is false.
pub fn explain_degradation(insights: &Insights) -> Vec<String> {
    let Some(cmp) = &insights.comparisons else {
        return vec!["no comparisons in the result: give assess a `compare:` (and run it)".into()];
    };
    let mut out = Vec::new();
    for m in &cmp.metrics {
        for c in &m.versions {
            match c.verdict {
                Verdict::Worse => out.push(format!(
                    "version {} is significantly worse than baseline {} on {}: {} (p = {})",
                    c.version_name,
                    cmp.baseline_name,
                    m.metric,
                    fmt_effect(insights, m, c),
                    c.p_value.map(fmt_p).unwrap_or_else(|| "-".into())
                )),
                Verdict::NotEnoughData => out.push(format!(
                    "not enough data to compare version {} with baseline {} on {}: {}",
                    c.version_name,
                    cmp.baseline_name,
                    m.metric,
                    c.note.as_deref().unwrap_or("no observations")
                )),
                Verdict::Better | Verdict::NoDifference => {}
            }
        }
    }
    out
}

/// Lines for `iter8 assert -c winner` when it is false.
pub fn explain_no_winner(insights: &Insights) -> Vec<String> {
    let Some(cmp) = &insights.comparisons else {
        return vec!["no comparisons in the result: give assess a `compare:` (and run it)".into()];
    };
    if cmp.metrics.is_empty() {
        return vec!["no metrics were compared".into()];
    }
    cmp.metrics
        .iter()
        .filter(|m| m.winner.is_none())
        .map(|m| {
            let detail: Vec<String> = m
                .versions
                .iter()
                .map(|c| {
                    format!(
                        "{}: {}{}",
                        c.version_name,
                        c.verdict.as_str(),
                        c.p_value
                            .map(|p| format!(", p = {}", fmt_p(p)))
                            .unwrap_or_default()
                    )
                })
                .collect();
            format!(
                "{}: no significant winner at alpha {} ({})",
                m.metric,
                fmt_num(cmp.alpha),
                if detail.is_empty() {
                    "only the baseline".to_string()
                } else {
                    detail.join("; ")
                }
            )
        })
        .collect()
}
