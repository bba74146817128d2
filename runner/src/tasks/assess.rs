//! `assess`: check SLOs per version and pick reward winners, from the metrics recorded by
//! earlier tasks.
//!
//! Inputs as in Iter8 v0.15: `SLOs: {upper: [{metric, limit}], lower: [...]}` (Iter8 also
//! accepted `Upper` / `Lower`), plus the chart's map form `upper: {http/latency-mean: 50}`;
//! `rewards: {max: [metric], min: [metric]}`.

use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{TaskContext, TaskError};
use crate::model::metrics::normalize_metric_name;
use crate::model::{Insights, RewardWinners, Rewards, Slo, Slos, SlosSatisfied};

/// Inputs of the `assess` task.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct AssessTask {
    /// Service-level objectives every version must satisfy.
    #[serde(
        rename = "SLOs",
        alias = "slos",
        alias = "Slos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub slos: Option<SloLimits>,
    /// Reward metrics: the version with the best value wins (A/B/n).
    #[serde(
        alias = "Rewards",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rewards: Option<RewardSpec>,
}

/// Upper and lower limits on metrics.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SloLimits {
    /// Satisfied when the metric's value <= limit, e.g. `- metric: http/latency-mean` /
    /// `limit: 50` (or the map form `http/latency-mean: 50`).
    #[serde(alias = "Upper", default)]
    pub upper: SloList,
    /// Satisfied when the metric's value >= limit.
    #[serde(alias = "Lower", default)]
    pub lower: SloList,
}

/// A list of `{metric, limit}`; also accepted as a map `metric: limit`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SloList(pub Vec<Slo>);

/// One SLO as written in the experiment.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct SloInput {
    #[serde(alias = "Metric")]
    metric: String,
    #[serde(alias = "Limit")]
    limit: f64,
}

impl<'de> Deserialize<'de> for SloList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SloList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of {metric, limit} or a map metric: limit")
            }
            fn visit_unit<E: de::Error>(self) -> Result<SloList, E> {
                Ok(SloList::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SloList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<SloInput>()? {
                    out.push(Slo {
                        metric: s.metric,
                        limit: s.limit,
                    });
                }
                Ok(SloList(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SloList, A::Error> {
                let mut out = Vec::new();
                while let Some((metric, limit)) = map.next_entry::<String, f64>()? {
                    out.push(Slo { metric, limit });
                }
                Ok(SloList(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for SloList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl JsonSchema for SloList {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SloList".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "SLOs as a list of {metric, limit}, or as a map metric: limit.",
            "anyOf": [
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "metric": {"type": "string", "description": "Metric name, e.g. http/latency-mean."},
                            "limit": {"type": "number"}
                        },
                        "required": ["metric", "limit"],
                        "additionalProperties": false
                    }
                },
                {"type": "object", "additionalProperties": {"type": "number"}},
                {"type": "null"}
            ]
        })
    }
}

/// Reward metrics.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    /// Metrics where the highest value wins.
    #[serde(alias = "Max", default)]
    pub max: Vec<String>,
    /// Metrics where the lowest value wins.
    #[serde(alias = "Min", default)]
    pub min: Vec<String>,
}

impl AssessTask {
    /// SLOs with normalised metric names.
    pub fn slos(&self) -> Slos {
        let norm = |l: &SloList| {
            l.0.iter()
                .map(|s| Slo {
                    metric: normalize_metric_name(&s.metric),
                    limit: s.limit,
                })
                .collect()
        };
        match &self.slos {
            Some(s) => Slos {
                upper: norm(&s.upper),
                lower: norm(&s.lower),
            },
            None => Slos::default(),
        }
    }

    /// Rewards with normalised metric names.
    pub fn rewards(&self) -> Rewards {
        let norm = |v: &[String]| v.iter().map(|m| normalize_metric_name(m)).collect();
        match &self.rewards {
            Some(r) => Rewards {
                max: norm(&r.max),
                min: norm(&r.min),
            },
            None => Rewards::default(),
        }
    }

    /// Each (field path, metric) this task refers to.
    fn metrics(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(s) = &self.slos {
            for (kind, list) in [("upper", &s.upper), ("lower", &s.lower)] {
                for (i, slo) in list.0.iter().enumerate() {
                    out.push((format!("SLOs.{kind}[{i}]"), slo.metric.clone()));
                }
            }
        }
        if let Some(r) = &self.rewards {
            for (kind, list) in [("max", &r.max), ("min", &r.min)] {
                for (i, m) in list.iter().enumerate() {
                    out.push((format!("rewards.{kind}[{i}]"), m.clone()));
                }
            }
        }
        out
    }

    pub fn validate(&self) -> Result<(), TaskError> {
        for (field, metric) in self.metrics() {
            let metric = metric.trim();
            let ok = metric
                .split_once('/')
                .is_some_and(|(p, n)| !p.is_empty() && !n.is_empty());
            if !ok {
                return Err(TaskError::invalid(
                    format!("with.{field}"),
                    format!(
                        "metric {metric:?} is not `<prefix>/<name>`; use e.g. http/latency-mean or http/error-rate"
                    ),
                ));
            }
        }
        if let Some(s) = &self.slos {
            for (kind, list) in [("upper", &s.upper), ("lower", &s.lower)] {
                for (i, slo) in list.0.iter().enumerate() {
                    if !slo.limit.is_finite() {
                        return Err(TaskError::invalid(
                            format!("with.SLOs.{kind}[{i}].limit"),
                            format!("limit of {} must be a finite number", slo.metric),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Pre-run check: every metric must come from an earlier task (`prefixes`: the metric
    /// name prefixes earlier tasks produce).
    pub fn check_metrics(&self, prefixes: &[String]) -> Result<(), TaskError> {
        for (field, metric) in self.metrics() {
            let metric = normalize_metric_name(&metric);
            let prefix = metric.split('/').next().unwrap_or_default();
            if !prefixes.iter().any(|p| p == prefix) {
                let known = if prefixes.is_empty() {
                    "; add a task that produces it (e.g. `task: http`) before assess".to_string()
                } else {
                    format!(" (prefix {prefix:?}); earlier tasks produce: {}", prefixes.join(", "))
                };
                return Err(TaskError::invalid(
                    format!("with.{field}"),
                    format!("no earlier task produces metric {metric}{known}"),
                ));
            }
        }
        Ok(())
    }

    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        assess(ctx.insights, &self.slos(), &self.rewards());
        Ok(())
    }
}

/// Write `SLOs`, `SLOsSatisfied`, `rewards` and `rewardWinners` into `insights`.
pub fn assess(insights: &mut Insights, slos: &Slos, rewards: &Rewards) {
    // At least one version: with none recorded, every SLO is unsatisfied (missing value).
    insights.ensure_versions(&[]);
    let n = insights.num_versions;
    let check = |list: &[Slo], ok: fn(f64, f64) -> bool| -> Vec<Vec<bool>> {
        list.iter()
            .map(|slo| {
                (0..n)
                    .map(|v| {
                        insights
                            .latest(v, &slo.metric)
                            .is_some_and(|value| ok(value, slo.limit))
                    })
                    .collect()
            })
            .collect()
    };
    let satisfied = SlosSatisfied {
        upper: check(&slos.upper, |v, l| v <= l),
        lower: check(&slos.lower, |v, l| v >= l),
    };
    if slos.upper.is_empty() && slos.lower.is_empty() {
        insights.slos = None;
        insights.slos_satisfied = None;
    } else {
        insights.slos = Some(slos.clone());
        insights.slos_satisfied = Some(satisfied);
    }
    let winner = |metric: &str, better: fn(f64, f64) -> bool| -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for v in 0..n {
            if let Some(value) = insights.latest(v, metric).filter(|x| !x.is_nan()) {
                if best.is_none_or(|(_, b)| better(value, b)) {
                    best = Some((v, value));
                }
            }
        }
        best.map(|(v, _)| v)
    };
    if rewards.max.is_empty() && rewards.min.is_empty() {
        insights.rewards = None;
        insights.reward_winners = None;
    } else {
        let winners = RewardWinners {
            max: rewards.max.iter().map(|m| winner(m, |a, b| a > b)).collect(),
            min: rewards.min.iter().map(|m| winner(m, |a, b| a < b)).collect(),
        };
        insights.rewards = Some(rewards.clone());
        insights.reward_winners = Some(winners);
    }
}
