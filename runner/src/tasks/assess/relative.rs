//! Relative SLOs: limits relative to a baseline version (`relativeSLOs`) or to the
//! previous loop (`regression`), in percent of the reference.
//!
//! ```yaml
//! baseline: v1                  # relativeSLOs and compare refer to it (default: the first version)
//! relativeSLOs:
//!   upper: {http/latency-p99: 10}        # at most 10% above the baseline's p99
//!   lower: {http/request-count: 5}       # at most 5% below the baseline's
//! regression:
//!   upper: {http/latency-mean: 20}       # at most 20% above the previous loop's value
//! ```

use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::metrics::normalize_metric_name;
use crate::model::verdicts::{Bound, RelativeCheck, RelativeOutcome};
use crate::model::Insights;

/// `upper` / `lower` percentages per metric.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RelativeLimits {
    /// Metric -> how many percent above the reference the value may be, e.g.
    /// `http/latency-p99: 10` (or the list form `- {metric: http/latency-p99, percent: 10}`).
    #[serde(default)]
    pub upper: PercentList,
    /// Metric -> how many percent below the reference the value may be.
    #[serde(default)]
    pub lower: PercentList,
}

/// `(metric, percent)` pairs: a map `metric: percent` or a list of `{metric, percent}`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PercentList(pub Vec<(String, f64)>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PercentInput {
    metric: String,
    percent: f64,
}

impl<'de> Deserialize<'de> for PercentList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PercentList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map metric: percent or a list of {metric, percent}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<PercentList, E> {
                Ok(PercentList::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PercentList, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<PercentInput>()? {
                    out.push((p.metric, p.percent));
                }
                Ok(PercentList(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PercentList, A::Error> {
                let mut out = Vec::new();
                while let Some((metric, percent)) = map.next_entry::<String, f64>()? {
                    out.push((metric, percent));
                }
                Ok(PercentList(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for PercentList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl JsonSchema for PercentList {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PercentList".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Allowed change in percent of the reference, per metric: a map metric: percent, or a list of {metric, percent}.",
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "metric": {"type": "string", "description": "Metric name, e.g. http/latency-p99."},
                            "percent": {"type": "number", "minimum": 0}
                        },
                        "required": ["metric", "percent"],
                        "additionalProperties": false
                    }
                },
                {"type": "null"}
            ]
        })
    }
}

impl RelativeLimits {
    /// `(bound, normalised metric, percent)` in the order given, upper first.
    pub fn limits(&self) -> Vec<(Bound, String, f64)> {
        [(Bound::Upper, &self.upper), (Bound::Lower, &self.lower)]
            .into_iter()
            .flat_map(|(b, l)| {
                l.0.iter()
                    .map(move |(m, p)| (b, normalize_metric_name(m), *p))
            })
            .collect()
    }

    /// `(field path, metric)` pairs under `key` (for validation messages).
    pub fn fields(&self, key: &str) -> Vec<(String, String)> {
        [("upper", &self.upper), ("lower", &self.lower)]
            .into_iter()
            .flat_map(|(b, l)| {
                l.0.iter()
                    .map(move |(m, _)| (format!("{key}.{b}.{m}"), m.clone()))
            })
            .collect()
    }

    /// Percentages must be finite and not negative.
    pub fn validate(&self, key: &str) -> Result<(), (String, String)> {
        for (b, l) in [("upper", &self.upper), ("lower", &self.lower)] {
            for (m, p) in &l.0 {
                if !(p.is_finite() && *p >= 0.0) {
                    return Err((
                        format!("with.{key}.{b}.{m}"),
                        format!(
                            "{p} is not a percentage; give how many percent the value may move \
                             {} the reference, e.g. 10",
                            if b == "upper" { "above" } else { "below" }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check(
    bound: Bound,
    percent: f64,
    value: Option<f64>,
    reference: Option<f64>,
    missing_reference: &str,
) -> RelativeOutcome {
    match (value, reference) {
        (None, _) => RelativeOutcome {
            reference,
            note: Some("no value".into()),
            ..Default::default()
        },
        (Some(v), None) => RelativeOutcome {
            value: Some(v),
            note: Some(missing_reference.into()),
            ..Default::default()
        },
        (Some(v), Some(r)) => {
            let limit = bound.limit(r, percent);
            RelativeOutcome {
                value: Some(v),
                reference: Some(r),
                limit: Some(limit),
                satisfied: bound.holds(v, limit),
                note: None,
            }
        }
    }
}

/// Evaluate limits relative to version `baseline` for every version. The baseline itself
/// satisfies them trivially; a version or baseline without a value does not.
pub fn against_baseline(
    insights: &Insights,
    baseline: usize,
    limits: &RelativeLimits,
) -> Vec<RelativeCheck> {
    let n = insights.num_versions.max(1);
    limits
        .limits()
        .into_iter()
        .map(|(bound, metric, percent)| {
            let reference = insights.latest(baseline, &metric);
            let versions = (0..n)
                .map(|v| {
                    let mut o = check(
                        bound,
                        percent,
                        insights.latest(v, &metric),
                        reference,
                        "the baseline has no value",
                    );
                    if v == baseline && o.value.is_some() {
                        o.satisfied = true;
                        o.note = Some("baseline".into());
                    }
                    o
                })
                .collect();
            RelativeCheck {
                metric,
                bound,
                percent,
                versions,
            }
        })
        .collect()
}

/// Evaluate limits relative to each version's previous value (the previous loop). Before
/// there is a previous value (the first loop) the limit holds: nothing can have regressed.
pub fn against_previous_loop(insights: &Insights, limits: &RelativeLimits) -> Vec<RelativeCheck> {
    let n = insights.num_versions.max(1);
    limits
        .limits()
        .into_iter()
        .map(|(bound, metric, percent)| {
            let versions = (0..n)
                .map(|v| {
                    let value = insights.latest(v, &metric);
                    let mut o = check(
                        bound,
                        percent,
                        value,
                        insights.previous(v, &metric),
                        "no previous loop",
                    );
                    if value.is_some() && o.reference.is_none() {
                        o.satisfied = true;
                    }
                    o
                })
                .collect();
            RelativeCheck {
                metric,
                bound,
                percent,
                versions,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(yaml: &str) -> RelativeLimits {
        serde_yaml::from_str(yaml).expect("limits")
    }

    #[test]
    fn map_and_list_forms_and_validation() {
        let a = limits(
            "upper: {http/latency-p99.0: 10}\nlower:\n- {metric: http/request-count, percent: 5}\n",
        );
        assert_eq!(
            a.limits(),
            vec![
                (Bound::Upper, "http/latency-p99".to_string(), 10.0),
                (Bound::Lower, "http/request-count".to_string(), 5.0)
            ]
        );
        assert!(a.validate("relativeSLOs").is_ok());
        let e = limits("upper: {http/latency-mean: -1}\n")
            .validate("regression")
            .unwrap_err();
        assert_eq!(e.0, "with.regression.upper.http/latency-mean");
        assert!(e.1.contains("not a percentage"), "{}", e.1);
        let e = serde_yaml::from_str::<RelativeLimits>("upper:\n- {metric: a/b, limit: 3}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `limit`"), "{e}");
    }

    #[test]
    fn baseline_limits_per_version() {
        let mut i = Insights::default();
        i.ensure_versions(&["v1".into(), "v2".into(), "v3".into()]);
        i.record(0, "http/latency-p99", 100.0);
        i.record(1, "http/latency-p99", 110.0); // exactly +10%: holds
        i.record(2, "http/latency-p99", 110.5);
        let l = limits("upper: {http/latency-p99: 10, http/error-rate: 0}\n");
        let c = against_baseline(&i, 0, &l);
        let sat: Vec<bool> = c[0].versions.iter().map(|v| v.satisfied).collect();
        assert_eq!(sat, vec![true, true, false]);
        assert_eq!(c[0].versions[2].limit, Some(110.0));
        assert_eq!(c[0].versions[0].note.as_deref(), Some("baseline"));
        // No value anywhere: not satisfied, with the reason.
        assert!(c[1].versions.iter().all(|v| !v.satisfied));
        assert_eq!(c[1].versions[1].note.as_deref(), Some("no value"));
        // A baseline of version 1: v1 is 100 / 110 = 9.1% below: a lower limit of 5% fails.
        let c = against_baseline(&i, 1, &limits("lower: {http/latency-p99: 5}\n"));
        let sat: Vec<bool> = c[0].versions.iter().map(|v| v.satisfied).collect();
        assert_eq!(sat, vec![false, true, true]);
    }

    #[test]
    fn previous_loop_limits() {
        let mut i = Insights::default();
        i.ensure_versions(&[]);
        let l = limits("upper: {http/latency-mean: 20}\nlower: {http/request-count: 10}\n");
        i.record(0, "http/latency-mean", 10.0);
        i.record(0, "http/request-count", 100.0);
        let c = against_previous_loop(&i, &l);
        assert!(c.iter().all(|c| c.versions[0].satisfied));
        assert_eq!(c[0].versions[0].note.as_deref(), Some("no previous loop"));
        i.record(0, "http/latency-mean", 12.0); // +20%: holds
        i.record(0, "http/request-count", 89.0); // -11%: regressed
        let c = against_previous_loop(&i, &l);
        assert!(c[0].versions[0].satisfied);
        assert_eq!(c[0].versions[0].reference, Some(10.0));
        assert!(!c[1].versions[0].satisfied);
        assert_eq!(c[1].versions[0].limit, Some(90.0));
        i.record(0, "http/latency-mean", 14.5); // +20.8% over 12
        assert!(!against_previous_loop(&i, &l)[0].versions[0].satisfied);
    }
}
