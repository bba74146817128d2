//! `assess`: check SLOs per version and pick reward winners, from the metrics recorded by
//! earlier tasks.
//!
//! Inputs as in Iter8 v0.15: `SLOs: {upper: [{metric, limit}], lower: [...]}` (Iter8 also
//! accepted `Upper` / `Lower`), plus the chart's map form `upper: {http/latency-mean: 50}`;
//! `rewards: {max: [metric], min: [metric]}`.
//!
//! Beyond Iter8: `baseline` (the version others are measured against), `relativeSLOs`
//! (limits in percent of the baseline's value, [`relative`]), `regression` (limits in
//! percent of the previous loop's value) and `compare` (statistical comparison with the
//! baseline, [`compare`]).

pub mod compare;
pub mod relative;

use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::compare::CompareSpec;
use self::relative::RelativeLimits;
use super::{TaskContext, TaskError};
use crate::model::metrics::normalize_metric_name;
use crate::model::verdicts::{Regression, RelativeSlos};
use crate::model::{Insights, RewardWinners, Rewards, Slo, Slos, SlosSatisfied};

/// Inputs of the `assess` task.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct AssessTask {
    /// Service-level objectives every version must satisfy.
    #[serde(
        rename = "SLOs",
        alias = "slos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub slos: Option<SloLimits>,
    /// Reward metrics: the version with the best value wins (A/B/n).
    #[serde(alias = "Rewards", default, skip_serializing_if = "Option::is_none")]
    pub rewards: Option<RewardSpec>,
    /// The version `relativeSLOs` and `compare` measure the others against: its name (e.g.
    /// `v1`) or index (0 is the first). Default: the first version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<VersionRef>,
    /// Limits relative to the baseline version, in percent of its value: `upper:
    /// {http/latency-p99: 10}` holds when a version's p99 is at most 10% above the
    /// baseline's; `lower` when at most that much below.
    #[serde(
        rename = "relativeSLOs",
        alias = "relativeSlos",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub relative_slos: Option<RelativeLimits>,
    /// Limits relative to the previous loop (CronJob experiments), in percent of each
    /// version's previous value: `upper: {http/latency-mean: 20}` fails when the mean rose
    /// more than 20% since the last loop. Holds in the first loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<RelativeLimits>,
    /// Statistical comparison of every version with the baseline: latency histograms
    /// (Mann-Whitney U) and error rates (two-proportion z-test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareSpec>,
}

/// A version by name or index.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum VersionRef {
    Index(usize),
    Name(String),
}

impl VersionRef {
    /// The version's index in `insights`, or why there is no such version.
    pub fn resolve(&self, insights: &Insights) -> Result<usize, String> {
        let n = insights.num_versions.max(1);
        let found = match self {
            VersionRef::Index(i) => (*i < n).then_some(*i),
            VersionRef::Name(name) => insights.version_names.iter().position(|v| v == name),
        };
        found.ok_or_else(|| {
            let names: Vec<String> = (0..n).map(|v| compare::version_name(insights, v)).collect();
            let what = match self {
                VersionRef::Index(i) => format!("index {i}"),
                VersionRef::Name(name) => format!("{name:?}"),
            };
            format!(
                "baseline {what} is not a version of this experiment; its versions are {} \
                 (give a name or an index from 0)",
                names.join(", ")
            )
        })
    }
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
        if let Some(r) = &self.relative_slos {
            out.extend(r.fields("relativeSLOs"));
        }
        if let Some(r) = &self.regression {
            out.extend(r.fields("regression"));
        }
        if let Some(c) = &self.compare {
            for (i, m) in c.metrics.iter().enumerate() {
                out.push((format!("compare.metrics[{i}]"), m.clone()));
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
        let checks = [
            self.relative_slos
                .as_ref()
                .map(|r| r.validate("relativeSLOs")),
            self.regression.as_ref().map(|r| r.validate("regression")),
            self.compare.as_ref().map(|c| c.validate()),
        ];
        match checks.into_iter().flatten().find_map(Result::err) {
            Some((field, message)) => Err(TaskError::invalid(field, message)),
            None => Ok(()),
        }
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
                    format!(
                        " (prefix {prefix:?}); earlier tasks produce: {}",
                        prefixes.join(", ")
                    )
                };
                return Err(TaskError::invalid(
                    format!("with.{field}"),
                    format!("no earlier task produces metric {metric}{known}"),
                ));
            }
            crate::model::metrics::check_load_metric(&metric)
                .map_err(|m| TaskError::invalid(format!("with.{field}"), m))?;
        }
        Ok(())
    }

    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        assess(ctx.insights, &self.slos(), &self.rewards());
        self.assess_relative(ctx.insights)
    }

    /// Write `relativeSLOs`, `regression` and `comparisons` into `insights`. Fails when the
    /// baseline names no version.
    pub fn assess_relative(&self, insights: &mut Insights) -> Result<(), TaskError> {
        let baseline = match &self.baseline {
            Some(b) if self.relative_slos.is_some() || self.compare.is_some() => b
                .resolve(insights)
                .map_err(|m| TaskError::invalid("with.baseline", m))?,
            _ => 0,
        };
        insights.relative_slos = self.relative_slos.as_ref().map(|l| RelativeSlos {
            baseline,
            baseline_name: compare::version_name(insights, baseline),
            checks: relative::against_baseline(insights, baseline, l),
        });
        insights.regression = self.regression.as_ref().map(|l| Regression {
            checks: relative::against_previous_loop(insights, l),
        });
        insights.comparisons = self
            .compare
            .as_ref()
            .map(|c| compare::compare(insights, baseline, c));
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
            max: rewards
                .max
                .iter()
                .map(|m| winner(m, |a, b| a > b))
                .collect(),
            min: rewards
                .min
                .iter()
                .map(|m| winner(m, |a, b| a < b))
                .collect(),
        };
        insights.rewards = Some(rewards.clone());
        insights.reward_winners = Some(winners);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insights(versions: &[&str], values: &[(usize, &str, f64)]) -> Insights {
        let mut i = Insights::default();
        i.ensure_versions(&versions.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        for &(v, m, x) in values {
            i.record(v, m, x);
        }
        i
    }

    fn task(yaml: &str) -> AssessTask {
        serde_yaml::from_str(yaml).expect("assess inputs")
    }

    #[test]
    fn upper_and_lower_per_version_missing_is_not_satisfied() {
        let t = task(
            "SLOs:\n  upper:\n  - {metric: http/latency-mean, limit: 50}\n  - {metric: http/latency-p99.90, limit: 100}\n  lower:\n  - {metric: http/request-count, limit: 10}\n",
        );
        let mut i = insights(
            &["v1", "v2"],
            &[
                (0, "http/latency-mean", 50.0), // == limit: satisfied
                (1, "http/latency-mean", 50.5),
                (0, "http/latency-p99.9", 80.0), // v2 has no p99.9: not satisfied
                (0, "http/request-count", 10.0),
                (1, "http/request-count", 9.0),
            ],
        );
        assess(&mut i, &t.slos(), &t.rewards());
        let sat = i.slos_satisfied.clone().expect("assessed");
        assert_eq!(sat.upper, vec![vec![true, false], vec![true, false]]);
        assert_eq!(sat.lower, vec![vec![true, false]]);
        let slos = i.slos.clone().expect("slos");
        assert_eq!(slos.upper[1].metric, "http/latency-p99.9");
        assert!(i.reward_winners.is_none());
        // Older loops' values do not count: only the latest.
        i.record(1, "http/latency-mean", 10.0);
        i.record(1, "http/latency-p99.9", 10.0);
        i.record(1, "http/request-count", 11.0);
        assess(&mut i, &t.slos(), &t.rewards());
        let sat = i.slos_satisfied.expect("assessed");
        assert_eq!(sat.upper, vec![vec![true, true], vec![true, true]]);
        assert_eq!(sat.lower, vec![vec![true, true]]);
    }

    #[test]
    fn no_versions_recorded_means_not_satisfied() {
        let t = task("SLOs:\n  upper:\n    http/error-count: 0\n");
        let mut i = Insights::default();
        assess(&mut i, &t.slos(), &t.rewards());
        assert_eq!(i.num_versions, 1);
        assert_eq!(i.slos_satisfied.expect("assessed").upper, vec![vec![false]]);
    }

    #[test]
    fn rewards_pick_winners_across_a_b_n() {
        let t = task(
            "rewards:\n  max: [http-v1/request-count, shop/revenue, shop/none]\n  min: [shop/latency-p50.0]\n",
        );
        let mut i = insights(
            &["a", "b", "c"],
            &[
                (0, "shop/revenue", 5.0),
                (1, "shop/revenue", 7.0),
                (2, "shop/revenue", 7.0), // tie with b: lowest index wins
                (0, "shop/latency-p50", 3.0),
                (1, "shop/latency-p50", 2.0),
                (2, "shop/latency-p50", 2.5),
                (2, "http-v1/request-count", 1.0),
            ],
        );
        assess(&mut i, &t.slos(), &t.rewards());
        let w = i.reward_winners.clone().expect("winners");
        assert_eq!(w.max, vec![Some(2), Some(1), None]);
        assert_eq!(w.min, vec![Some(1)]);
        assert_eq!(
            i.rewards.expect("rewards").min,
            vec!["shop/latency-p50".to_string()]
        );
        assert!(i.slos.is_none() && i.slos_satisfied.is_none());
    }

    #[test]
    fn validate_and_metric_prefix_check() {
        let t = task("SLOs:\n  upper:\n  - {metric: latency, limit: 5}\n");
        let e = t.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("with.SLOs.upper[0]: metric \"latency\" is not `<prefix>/<name>`"),
            "{e}"
        );
        let t = task(
            "SLOs:\n  Upper:\n  - {Metric: http/latency-mean, Limit: 5}\n  lower:\n  - {metric: grpc/latency/mean, limit: 1}\nrewards:\n  min: [http-v2/latency-mean]\n",
        );
        assert!(t.validate().is_ok());
        assert!(t
            .check_metrics(&["http".into(), "grpc".into(), "http-v2".into()])
            .is_ok());
        let e = t.check_metrics(&["http".into()]).unwrap_err().to_string();
        assert_eq!(
            e,
            "with.SLOs.lower[0]: no earlier task produces metric grpc/latency-mean (prefix \"grpc\"); earlier tasks produce: http"
        );
        let e = t.check_metrics(&[]).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "with.SLOs.upper[0]: no earlier task produces metric http/latency-mean; add a task"
            ),
            "{e}"
        );
        let e = t
            .check_metrics(&["http".into(), "grpc".into()])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("with.rewards.min[0]:"), "{e}");
    }
}
