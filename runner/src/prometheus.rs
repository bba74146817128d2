//! Verdict metrics for Prometheus: the result in the text exposition format, pushed to a
//! Pushgateway at the end of every loop (`iter8-runner --pushgateway URL`, chart value
//! `metrics.pushgateway.url`).
//!
//! Why a push: the runner is a Job or CronJob, Prometheus' own case for the Pushgateway
//! ("service-level batch jobs"): it ends before any scrape could see it, and the verdict is
//! about the release, not about the pod. One `PUT` per loop replaces the experiment's whole
//! group (`job="iter8"`, `namespace`, `release`), so a metric or version that disappears
//! from the result disappears from Prometheus too; the group stays until it is deleted
//! (`DELETE /metrics/job/iter8/namespace/NS/release/R`), so the last verdict remains
//! queryable after the Job is gone. Prometheus scrapes the Pushgateway with
//! `honor_labels: true` (keeps `namespace` / `release` as pushed).
//!
//! Series (all gauges but the loop counter; `version` is the version's name):
//! - `iter8_experiment_loops_total`, `iter8_experiment_tasks_completed`,
//!   `iter8_experiment_tasks`, `iter8_experiment_completed` (0/1),
//!   `iter8_experiment_failure` (0/1), `iter8_experiment_slos_satisfied` (0/1),
//!   `iter8_experiment_start_time_seconds`;
//! - `iter8_experiment_slo_satisfied{version, metric, bound, reference}` (0/1; reference:
//!   `limit` for absolute SLOs, `baseline` for relative SLOs, `previous_loop` for regression);
//! - `iter8_metric_value{version, metric}`: the latest value of every counter and gauge;
//! - `iter8_comparison_verdict{metric, version, baseline, verdict}` (1 for the verdict),
//!   `iter8_comparison_p_value`, `iter8_comparison_effect`,
//!   `iter8_comparison_effect_lower` / `_upper` (interval bounds) `{metric, version, baseline}`,
//!   `iter8_comparison_winner{metric, version}` (1);
//! - `iter8_reward_winner{metric, version, direction}` (1).

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;

use crate::model::verdicts::{RelativeCheck, Verdict};
use crate::model::ExperimentResult;
use crate::tasks::httpcall;

/// Why the metrics could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Http(String),
    #[error("the Pushgateway at {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// Where and as what the metrics are pushed.
#[derive(Clone, Debug, PartialEq)]
pub struct PushTarget {
    /// Base URL of the Pushgateway, e.g. `http://pushgateway.monitoring:9091`.
    pub url: String,
    /// The experiment: its namespace and release (the group's labels).
    pub namespace: String,
    pub release: String,
}

/// A label value escaped for the exposition format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A finite value in the exposition format (`NaN`, `+Inf`, `-Inf` otherwise).
fn value(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x == f64::INFINITY {
        "+Inf".into()
    } else if x == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{x}")
    }
}

struct Writer {
    out: String,
    /// Labels added to every series (e.g. namespace and release when not pushed).
    common: Vec<(String, String)>,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], x: f64) {
        let mut all: Vec<String> = self
            .common
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        all.extend(labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))));
        if all.is_empty() {
            let _ = writeln!(self.out, "{name} {}", value(x));
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {}", all.join(","), value(x));
        }
    }
}

fn bool01(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn version_name(result: &ExperimentResult, v: usize) -> String {
    crate::report::view::version_label(result.insights.as_ref(), v)
}

/// The result as Prometheus text exposition (format 0.0.4), with `common` labels on every
/// series (empty when pushing: the Pushgateway adds the group's labels).
pub fn exposition(result: &ExperimentResult, common: &[(&str, &str)]) -> String {
    let mut w = Writer {
        out: String::new(),
        common: common
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    w.family(
        "iter8_experiment_loops_total",
        "counter",
        "Loops the experiment started (numLoops of its result).",
    );
    w.sample("iter8_experiment_loops_total", &[], result.num_loops as f64);
    w.family(
        "iter8_experiment_tasks",
        "gauge",
        "Tasks of the experiment.",
    );
    w.sample("iter8_experiment_tasks", &[], result.num_tasks as f64);
    w.family(
        "iter8_experiment_tasks_completed",
        "gauge",
        "Tasks completed in the current loop (skipped ones count).",
    );
    w.sample(
        "iter8_experiment_tasks_completed",
        &[],
        result.num_completed_tasks as f64,
    );
    w.family(
        "iter8_experiment_completed",
        "gauge",
        "1 when every task of the current loop completed.",
    );
    w.sample(
        "iter8_experiment_completed",
        &[],
        bool01(result.completed()),
    );
    w.family(
        "iter8_experiment_failure",
        "gauge",
        "1 when a task failed in the current loop.",
    );
    w.sample("iter8_experiment_failure", &[], bool01(result.failure));
    w.family(
        "iter8_experiment_slos_satisfied",
        "gauge",
        "1 when every version satisfies every SLO, relative SLO and regression limit.",
    );
    w.sample(
        "iter8_experiment_slos_satisfied",
        &[],
        bool01(result.slos_satisfied()),
    );
    w.family(
        "iter8_experiment_start_time_seconds",
        "gauge",
        "When the experiment's first loop started (Unix time).",
    );
    w.sample(
        "iter8_experiment_start_time_seconds",
        &[],
        result.start_time.timestamp_millis() as f64 / 1000.0,
    );
    let Some(insights) = &result.insights else {
        return w.out;
    };
    // SLOs, absolute and relative.
    let mut slo_rows: Vec<(String, String, &'static str, &'static str, bool)> = Vec::new();
    for row in crate::report::view::slo_rows(result) {
        slo_rows.push((
            row.version_name,
            row.metric,
            row.kind.as_str(),
            "limit",
            row.satisfied,
        ));
    }
    let relative = |checks: &[RelativeCheck], reference: &'static str, rows: &mut Vec<_>| {
        for c in checks {
            for (v, o) in c.versions.iter().enumerate() {
                rows.push((
                    version_name(result, v),
                    c.metric.clone(),
                    c.bound.as_str(),
                    reference,
                    o.satisfied,
                ));
            }
        }
    };
    if let Some(r) = &insights.relative_slos {
        relative(&r.checks, "baseline", &mut slo_rows);
    }
    if let Some(r) = &insights.regression {
        relative(&r.checks, "previous_loop", &mut slo_rows);
    }
    if !slo_rows.is_empty() {
        w.family(
            "iter8_experiment_slo_satisfied",
            "gauge",
            "1 when the version satisfies the SLO (reference: limit, baseline or previous_loop).",
        );
        for (version, metric, bound, reference, ok) in &slo_rows {
            w.sample(
                "iter8_experiment_slo_satisfied",
                &[
                    ("version", version),
                    ("metric", metric),
                    ("bound", bound),
                    ("reference", reference),
                ],
                bool01(*ok),
            );
        }
    }
    // Latest values.
    let mut values: Vec<(String, String, f64)> = Vec::new();
    for (v, m) in insights.non_histogram_metric_values.iter().enumerate() {
        for (metric, history) in m {
            if let Some(x) = history.last() {
                values.push((version_name(result, v), metric.clone(), *x));
            }
        }
    }
    if !values.is_empty() {
        w.family(
            "iter8_metric_value",
            "gauge",
            "Latest value of an experiment metric (latencies in milliseconds).",
        );
        for (version, metric, x) in &values {
            w.sample(
                "iter8_metric_value",
                &[("version", version), ("metric", metric)],
                *x,
            );
        }
    }
    // Comparisons.
    if let Some(cmp) = &insights.comparisons {
        let baseline = cmp.baseline_name.as_str();
        w.family(
            "iter8_comparison_verdict",
            "gauge",
            "1 for the verdict of the version against the baseline (better, worse, no-difference, not-enough-data).",
        );
        for m in &cmp.metrics {
            for c in &m.versions {
                let verdict = match c.verdict {
                    Verdict::Better => "better",
                    Verdict::Worse => "worse",
                    Verdict::NoDifference => "no-difference",
                    Verdict::NotEnoughData => "not-enough-data",
                };
                w.sample(
                    "iter8_comparison_verdict",
                    &[
                        ("metric", &m.metric),
                        ("version", &c.version_name),
                        ("baseline", baseline),
                        ("verdict", verdict),
                    ],
                    1.0,
                );
            }
        }
        for (name, help, get) in [
            (
                "iter8_comparison_p_value",
                "Two-sided p-value of the comparison with the baseline.",
                (|c| c.p_value) as fn(&crate::model::verdicts::VersionComparison) -> Option<f64>,
            ),
            (
                "iter8_comparison_effect",
                "Effect against the baseline: latency shift (ms) or difference of error rates.",
                |c| c.effect,
            ),
            (
                "iter8_comparison_effect_lower",
                "Lower bound of the effect's confidence interval (level 1 - alpha).",
                |c| c.ci_lower,
            ),
            (
                "iter8_comparison_effect_upper",
                "Upper bound of the effect's confidence interval (level 1 - alpha).",
                |c| c.ci_upper,
            ),
        ] {
            let samples: Vec<(&str, &str, f64)> = cmp
                .metrics
                .iter()
                .flat_map(|m| {
                    m.versions.iter().filter_map(move |c| {
                        get(c).map(|x| (m.metric.as_str(), c.version_name.as_str(), x))
                    })
                })
                .collect();
            if samples.is_empty() {
                continue;
            }
            w.family(name, "gauge", help);
            for (metric, version, x) in samples {
                w.sample(
                    name,
                    &[
                        ("metric", metric),
                        ("version", version),
                        ("baseline", baseline),
                    ],
                    x,
                );
            }
        }
        let winners: Vec<(&str, &str)> = cmp
            .metrics
            .iter()
            .filter_map(|m| Some((m.metric.as_str(), m.winner_name.as_deref()?)))
            .collect();
        if !winners.is_empty() {
            w.family(
                "iter8_comparison_winner",
                "gauge",
                "1 for the version that significantly wins the metric's comparison.",
            );
            for (metric, version) in winners {
                w.sample(
                    "iter8_comparison_winner",
                    &[("metric", metric), ("version", version)],
                    1.0,
                );
            }
        }
    }
    let rewards: Vec<(String, String, &'static str)> = crate::report::view::winner_rows(result)
        .into_iter()
        .filter_map(|r| Some((r.metric, r.winner_name?, r.direction)))
        .collect();
    if !rewards.is_empty() {
        w.family(
            "iter8_reward_winner",
            "gauge",
            "1 for the version with the best value of a reward metric (direction max or min).",
        );
        for (metric, version, direction) in &rewards {
            w.sample(
                "iter8_reward_winner",
                &[
                    ("metric", metric),
                    ("version", version),
                    ("direction", direction),
                ],
                1.0,
            );
        }
    }
    w.out
}

/// A grouping-key path segment: `name/value`, or `name@base64/...` for values a URL path
/// cannot carry as they are.
fn group_segment(name: &str, v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        format!("{name}/{v}")
    } else {
        let enc = base64::engine::general_purpose::URL_SAFE.encode(v.as_bytes());
        // The Pushgateway reads an empty value as `=` padding-only base64.
        format!(
            "{name}@base64/{}",
            if enc.is_empty() { "=".into() } else { enc }
        )
    }
}

/// The group's URL: `<base>/metrics/job/iter8/namespace/<ns>/release/<release>`.
pub fn group_url(target: &PushTarget) -> String {
    format!(
        "{}/metrics/job/iter8/{}/{}",
        target.url.trim_end_matches('/'),
        group_segment("namespace", &target.namespace),
        group_segment("release", &target.release)
    )
}

/// Replace the experiment's group on the Pushgateway with the metrics of `result`.
pub async fn push(target: &PushTarget, result: &ExperimentResult) -> Result<(), PushError> {
    let url = group_url(target);
    let body = exposition(result, &[]);
    let resp = httpcall::send(
        "PUT",
        &url,
        &[(
            "Content-Type".to_string(),
            "text/plain; version=0.0.4".to_string(),
        )],
        Some(body.into_bytes()),
        Duration::from_secs(10),
    )
    .await
    .map_err(PushError::Http)?;
    if !(200..300).contains(&resp.status) {
        return Err(PushError::Status {
            url: httpcall::redact_url(&url),
            status: resp.status,
            body: resp.body_snippet(300),
        });
    }
    Ok(())
}

/// Push the loop's verdict metrics (failures are logged, never fatal).
pub async fn push_loop(
    target: &PushTarget,
    metadata: &crate::model::spec::ExperimentMetadata,
    result: &ExperimentResult,
) {
    let mut target = target.clone();
    if target.namespace.is_empty() {
        target.namespace = metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
    }
    if target.release.is_empty() {
        target.release = metadata.name.clone().unwrap_or_else(|| "local".into());
    }
    match push(&target, result).await {
        Ok(()) => tracing::info!(
            url = %httpcall::redact_url(&target.url),
            "verdict metrics pushed to the Pushgateway"
        ),
        Err(e) => tracing::warn!("cannot push the verdict metrics: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_key_is_path_safe() {
        let t = PushTarget {
            url: "http://127.0.0.1:9091/".into(),
            namespace: "team-a".into(),
            release: "my exp/1".into(),
        };
        assert_eq!(
            group_url(&t),
            "http://127.0.0.1:9091/metrics/job/iter8/namespace/team-a/release@base64/bXkgZXhwLzE="
        );
    }

    #[test]
    fn exposition_of_a_bare_result_escapes_labels() {
        let r = ExperimentResult::new(2);
        let text = exposition(&r, &[("release", "a\"b\\c")]);
        assert!(
            text.contains("iter8_experiment_loops_total{release=\"a\\\"b\\\\c\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE iter8_experiment_failure gauge\n"),
            "{text}"
        );
        assert!(!text.contains("iter8_metric_value"), "{text}");
    }
}
