//! What a notification says: the [`Summary`] of an experiment (the data of payload
//! templates and GitHub's `client_payload`) and the Slack Block Kit message made from it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{ExperimentResult, Insights};

/// What a notification says about the experiment (camelCase JSON).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Every task of the loop completed (unknown inside a task unless the engine says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    /// A task failed.
    pub failure: bool,
    /// Which task failed and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Loops run so far (unknown inside a task unless the engine says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_loops: Option<u64>,
    /// Tasks completed in this loop.
    pub num_completed_tasks: usize,
    /// Every version satisfies every SLO (true when there are no SLOs).
    pub slos_satisfied: bool,
    /// Per version.
    pub versions: Vec<VersionSummary>,
    /// Reward metric -> name of the winning version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub winners: BTreeMap<String, String>,
}

/// One version in a [`Summary`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VersionSummary {
    /// Name (or `version <i>` when unnamed).
    pub name: String,
    /// This version satisfies every SLO.
    pub slos_satisfied: bool,
    /// SLO verdicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<SloVerdict>,
    /// Latest metric values.
    pub metrics: BTreeMap<String, f64>,
    /// Metrics that could not be obtained, and why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unavailable: BTreeMap<String, String>,
}

/// One SLO verdict for a version.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloVerdict {
    pub metric: String,
    /// `upper` (value <= limit) or `lower` (value >= limit).
    pub bound: String,
    pub limit: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub satisfied: bool,
}

impl Summary {
    /// From the insights alone (what a task sees): loops and completion unknown.
    pub fn from_insights(insights: &Insights, num_completed_tasks: usize) -> Self {
        let mut versions = Vec::new();
        let slos = insights.slos.clone().unwrap_or_default();
        let sat = insights.slos_satisfied.clone();
        for v in 0..insights.num_versions {
            let name = insights
                .version_names
                .get(v)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("version {v}"));
            let mut verdicts = Vec::new();
            for (bound, list, satisfied) in [
                ("upper", &slos.upper, sat.as_ref().map(|s| &s.upper)),
                ("lower", &slos.lower, sat.as_ref().map(|s| &s.lower)),
            ] {
                for (i, slo) in list.iter().enumerate() {
                    let ok = satisfied
                        .and_then(|s| s.get(i))
                        .and_then(|per| per.get(v))
                        .copied()
                        .unwrap_or(false);
                    verdicts.push(SloVerdict {
                        metric: slo.metric.clone(),
                        bound: bound.to_string(),
                        limit: slo.limit,
                        value: insights.latest(v, &slo.metric),
                        satisfied: ok,
                    });
                }
            }
            let metrics = insights
                .non_histogram_metric_values
                .get(v)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, vals)| vals.last().map(|x| (k.clone(), *x)))
                        .collect()
                })
                .unwrap_or_default();
            let unavailable = insights
                .unavailable_metrics
                .get(v)
                .cloned()
                .unwrap_or_default();
            versions.push(VersionSummary {
                name,
                slos_satisfied: verdicts.iter().all(|s| s.satisfied),
                slos: verdicts,
                metrics,
                unavailable,
            });
        }
        let mut winners = BTreeMap::new();
        if let (Some(r), Some(w)) = (&insights.rewards, &insights.reward_winners) {
            for (metrics, wins) in [(&r.max, &w.max), (&r.min, &w.min)] {
                for (m, win) in metrics.iter().zip(wins.iter()) {
                    if let Some(vi) = win {
                        if let Some(vs) = versions.get(*vi) {
                            winners.insert(m.clone(), vs.name.clone());
                        }
                    }
                }
            }
        }
        let has_slos = !slos.upper.is_empty() || !slos.lower.is_empty();
        Summary {
            completed: None,
            failure: false,
            failure_reason: None,
            num_loops: None,
            num_completed_tasks,
            slos_satisfied: !has_slos || versions.iter().all(|v| v.slos_satisfied),
            versions,
            winners,
        }
    }

    /// From a whole result (what the engine has).
    pub fn from_result(result: &ExperimentResult) -> Self {
        let insights = result.insights.clone().unwrap_or_default();
        let mut s = Self::from_insights(&insights, result.num_completed_tasks);
        s.completed = Some(result.completed());
        s.failure = result.failure;
        s.failure_reason = result
            .failed_task
            .as_ref()
            .map(|f| format!("{}: {}", f.label(), f.message));
        s.num_loops = Some(result.num_loops);
        s.slos_satisfied = result.slos_satisfied();
        s
    }
}

pub(super) fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{:.4}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

pub(super) fn cut(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// A Slack Block Kit message for the summary (always valid JSON: built, not templated).
pub fn slack_payload(s: &Summary) -> serde_json::Value {
    let verdict = if s.failure {
        "❌ failed".to_string()
    } else if !s.slos_satisfied {
        "⚠️ SLOs not satisfied".to_string()
    } else if s.completed == Some(false) {
        "⏳ not completed".to_string()
    } else if s.versions.iter().all(|v| v.slos.is_empty()) {
        "✅ no failure".to_string()
    } else {
        "✅ SLOs satisfied".to_string()
    };
    let mut facts = vec![format!("*Result:* {verdict}")];
    if let Some(c) = s.completed {
        facts.push(format!("*Completed:* {}", if c { "yes" } else { "no" }));
    }
    if let Some(r) = &s.failure_reason {
        facts.push(format!("*Failure:* {r}"));
    }
    if let Some(n) = s.num_loops {
        facts.push(format!("*Loops:* {n}"));
    }
    let mut blocks = vec![
        serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": "Iter8 experiment"}}),
        serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(facts.join("\n"), 2900)}}),
    ];
    // at most 20 versions (Slack allows 50 blocks)
    for v in s.versions.iter().take(20) {
        let mut lines = vec![format!(
            "*{}* {}",
            v.name,
            if v.slos_satisfied { "✅" } else { "❌" }
        )];
        for slo in &v.slos {
            let op = if slo.bound == "upper" { "<=" } else { ">=" };
            let val = slo.value.map(fmt_value).unwrap_or_else(|| "missing".into());
            lines.push(format!(
                "{} `{}` = {} ({} {})",
                if slo.satisfied { "•" } else { "✗" },
                slo.metric,
                val,
                op,
                fmt_value(slo.limit)
            ));
        }
        for (m, val) in v.metrics.iter().take(20) {
            lines.push(format!("`{m}` = {}", fmt_value(*val)));
        }
        for (m, why) in v.unavailable.iter().take(10) {
            lines.push(format!("`{m}` unavailable: {}", cut(why.clone(), 150)));
        }
        blocks.push(serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(lines.join("\n"), 2900)}}));
    }
    serde_json::json!({
        "text": format!("Iter8 experiment: {verdict}"),
        "blocks": blocks,
    })
}
