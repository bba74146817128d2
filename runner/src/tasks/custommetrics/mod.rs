//! The `custommetrics` task: query metrics backends (Prometheus, any REST/JSON API) through
//! provider templates and record the values per version as `<provider>/<metric>`.
//!
//! For each provider in `templates` and each version (one per `versionValues` entry, or a
//! single one), the template is rendered (Go template syntax + Sprig, see
//! [`super::gotemplate`]) over `values` deep-merged with the version's `versionValues`,
//! plus:
//! - `elapsedTimeSeconds`: whole seconds from the starting time to now; the starting time is
//!   the value `startingTime` (RFC 3339 or `Jan 2, 2006 at 3:04pm (MST)`, per version), else the task's `startingTime`, else
//!   the experiment's start (as Iter8);
//! - `Values`: the same merged values (so Helm-style `.Values.x` works too);
//! - `Version`: `{index, name}` of the version.
//!
//! Iter8 templates read values at the top level (`.labels`, `.elapsedTimeSeconds`) and
//! still work unchanged.
//!
//! The rendered YAML is a provider spec: `url`, `method` (GET default), `headers`,
//! `metrics: [{name, description?, type: counter|gauge, units?, params?, body?,
//! jqExpression}]`. Each metric is one request (`params` as query parameters, `body` as the
//! body, header `Content-Type: application/json;charset=utf-8` as Iter8 sent); the jq
//! expression's first output, a number or a numeric string, is the value. A failed query,
//! no data, `null`, a non-number or NaN marks the metric unavailable for the version with
//! the reason (the task still succeeds unless `failOnError: true`).
//!
//! Version names: Iter8 named no versions in this task; we name them only when
//! `versionNames` is given (otherwise names already known from earlier tasks are kept).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::gotemplate;
use super::httpcall;
use super::{TaskContext, TaskError};
use crate::model::metrics::normalize_metric_name;
use crate::model::{GoDuration, MetricMeta, MetricType};

mod provider;
mod template;
#[cfg(test)]
mod tests;

use super::bounded::run_bounded;
pub use super::credentials::{read_secret_file, scrub, BasicAuth, ProviderAuth};
use provider::query_metric;
pub use provider::{jq_first_number, MetricSpec, Param, ProviderSpec};
use template::{load_template, Source};
pub use template::{render_spec, TemplateRef, TemplateSource};

/// Provider templates shipped with the runner (and the chart): `builtin:<name>`.
pub const BUILTIN_PROVIDERS: &[(&str, &str)] = &[
    (
        "prometheus",
        include_str!("../../../providers/prometheus.tpl"),
    ),
    ("istio", include_str!("../../../providers/istio.tpl")),
];

/// The text of a shipped provider template.
pub fn builtin_template(name: &str) -> Option<&'static str> {
    BUILTIN_PROVIDERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Inputs of the `custommetrics` task.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomMetricsTask {
    /// Provider name -> its template. A string is `builtin:prometheus` / `builtin:istio`
    /// (shipped templates), an `http(s)://` URL (fetched by the runner), a template text
    /// (anything with a line break or `{{`), or else a file path. The object form names
    /// the source explicitly: `{builtin: ...}`, `{url: ...}`, `{file: ...}` or
    /// `{inline: ...}`. Metrics are stored as `<provider>/<metric>`.
    pub templates: BTreeMap<String, TemplateSource>,
    /// Values the templates read (e.g. `labels`, `prometheusURL`), for every version.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// One entry per version, deep-merged over `values`. Absent: a single version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_values: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Names of the versions (as many as `versionValues` entries), shown in reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub version_names: Vec<String>,
    /// Start of the window templates see as `elapsedTimeSeconds` (RFC 3339); default: the
    /// experiment's start. A `startingTime` value (per version) wins over this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_time: Option<DateTime<Utc>>,
    /// Provider name -> credentials, sent as the `Authorization` header. Read from files
    /// (a mounted Secret) or environment variables at run time; never written anywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auth: BTreeMap<String, ProviderAuth>,
    /// Fail the task when a metric cannot be obtained (default false: the metric is marked
    /// unavailable with the reason, and the experiment goes on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_on_error: bool,
    /// Time limit of each query (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// PEM file of CA certificate(s) trusted for the providers' https URLs, beside Mozilla's
    /// and the system's roots (e.g. a Prometheus behind OpenShift's service CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate of the providers' https URLs (testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

impl CustomMetricsTask {
    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), TaskError> {
        if self.templates.is_empty() {
            return Err(TaskError::invalid(
                "templates",
                "empty; name at least one provider, e.g. templates: {prom: builtin:prometheus}",
            ));
        }
        for (name, src) in &self.templates {
            let field = format!("templates.{name}");
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
                return Err(TaskError::invalid(
                    field,
                    "a provider name must be non-empty, without '/' or spaces (it prefixes metric names)",
                ));
            }
            match src.resolve().map_err(|m| TaskError::invalid(&field, m))? {
                Source::Builtin(b) if builtin_template(b).is_none() => {
                    let known: Vec<&str> = BUILTIN_PROVIDERS.iter().map(|(n, _)| *n).collect();
                    return Err(TaskError::invalid(
                        field,
                        format!("no builtin template {b:?}; known: {}", known.join(", ")),
                    ));
                }
                Source::Url(u) if u.parse::<http::Uri>().is_err() => {
                    return Err(TaskError::invalid(field, format!("bad URL {u:?}")));
                }
                _ => {}
            }
        }
        if !self.version_names.is_empty()
            && self.version_names.len() != self.version_values.len().max(1)
        {
            return Err(TaskError::invalid(
                "versionNames",
                format!(
                    "{} names for {} versions; give one name per versionValues entry",
                    self.version_names.len(),
                    self.version_values.len().max(1)
                ),
            ));
        }
        for (name, auth) in &self.auth {
            let field = format!("auth.{name}");
            if !self.templates.contains_key(name) {
                return Err(TaskError::invalid(
                    field,
                    format!("no provider {name:?} in templates"),
                ));
            }
            auth.validate(&field)?;
        }
        for (i, vv) in self.version_values.iter().enumerate() {
            if let Some(st) = vv.get("startingTime") {
                parse_starting_time(st).map_err(|m| {
                    TaskError::invalid(format!("versionValues[{i}].startingTime"), m)
                })?;
            }
        }
        if let Some(st) = self.values.get("startingTime") {
            parse_starting_time(st).map_err(|m| TaskError::invalid("values.startingTime", m))?;
        }
        Ok(())
    }

    /// The metric name prefixes this task records (the provider names).
    pub fn metric_prefixes(&self) -> Vec<String> {
        self.templates.keys().cloned().collect()
    }

    fn num_versions(&self) -> usize {
        self.version_values.len().max(1)
    }

    /// The data a provider template sees for version `i`.
    pub fn template_data(
        &self,
        version: usize,
        experiment_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Value, TaskError> {
        let mut merged = serde_json::Value::Object(self.values.clone());
        if let Some(vv) = self.version_values.get(version) {
            deep_merge(&mut merged, &serde_json::Value::Object(vv.clone()));
        }
        let start = match merged.get("startingTime") {
            Some(st) => parse_starting_time(st).map_err(|m| {
                TaskError::invalid(format!("versionValues[{version}].startingTime"), m)
            })?,
            None => self.starting_time.unwrap_or(experiment_start),
        };
        let elapsed = (now - start).num_seconds().max(0);
        let values_copy = merged.clone();
        if let serde_json::Value::Object(m) = &mut merged {
            m.insert(
                "elapsedTimeSeconds".into(),
                serde_json::Value::from(elapsed),
            );
            m.insert("Values".into(), values_copy);
            m.insert(
                "Version".into(),
                serde_json::json!({
                    "index": version,
                    "name": self.version_names.get(version).cloned().unwrap_or_default(),
                }),
            );
        }
        Ok(merged)
    }

    /// Run: render, query, record.
    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        self.validate()?;
        let n = self.num_versions();
        let names: Vec<String> = if self.version_names.is_empty() {
            vec![String::new(); n]
        } else {
            self.version_names.clone()
        };
        ctx.insights.ensure_versions(&names);
        let timeout = self
            .timeout
            .map(|t| t.as_duration())
            .unwrap_or(DEFAULT_TIMEOUT);
        let call = httpcall::CallOptions::for_task(
            timeout,
            self.ca_file.as_deref(),
            self.insecure_skip_verify,
        )?;
        let mut failures: Vec<String> = Vec::new();
        ctx.progress
            .start("custommetrics", (n * self.templates.len()) as u64);

        for (provider, src) in &self.templates {
            let text = load_template(provider, src, &call).await?;
            let (auth_header, secrets) = match self.auth.get(provider) {
                Some(a) => {
                    let (h, s) = a
                        .header_and_secrets()
                        .map_err(|m| TaskError::Failed(format!("auth.{provider}: {m}")))?;
                    (Some(h), s)
                }
                None => (None, Vec::new()),
            };
            for version in 0..n {
                let data = self.template_data(version, ctx.experiment_start, Utc::now())?;
                let spec = {
                    let (p, t) = (provider.clone(), text.clone());
                    run_bounded(
                        &format!("provider {provider:?}: template"),
                        timeout,
                        move || render_spec(&p, &t, &data),
                    )
                    .await
                    .map_err(TaskError::Failed)??
                };
                let method = spec.method.clone().unwrap_or_else(|| "GET".into());
                let mut errors = false;
                for (mi, metric) in spec.metrics.iter().enumerate() {
                    let kind = match metric.kind.to_ascii_lowercase().as_str() {
                        "counter" => MetricType::Counter,
                        "gauge" => MetricType::Gauge,
                        other => {
                            return Err(TaskError::Failed(format!(
                                "provider {provider:?} (version {version}): metrics[{mi}] ({}): type {other:?} is not counter or gauge",
                                metric.name
                            )))
                        }
                    };
                    if metric.name.trim().is_empty() {
                        return Err(TaskError::Failed(format!(
                            "provider {provider:?} (version {version}): metrics[{mi}]: empty name"
                        )));
                    }
                    let full = normalize_metric_name(&format!("{provider}/{}", metric.name));
                    ctx.insights.register_metric(
                        &full,
                        MetricMeta::new(
                            kind,
                            metric.description.clone().unwrap_or_default().trim(),
                            metric.units.as_deref(),
                        ),
                    );
                    let value =
                        query_metric(&spec, &method, metric, auth_header.as_deref(), &call).await;
                    match value {
                        Ok(v) => ctx.insights.record(version, &full, v),
                        Err(reason) => {
                            let reason = scrub(&reason, &secrets);
                            errors = true;
                            tracing::warn!(
                                provider = provider.as_str(),
                                metric = full.as_str(),
                                version,
                                "metric unavailable: {reason}"
                            );
                            failures.push(format!("{full} (version {version}): {reason}"));
                            ctx.insights.mark_unavailable(version, &full, reason);
                        }
                    }
                }
                ctx.progress.inc(errors);
            }
        }
        if self.fail_on_error && !failures.is_empty() {
            let more = if failures.len() > 3 {
                format!(" (and {} more)", failures.len() - 3)
            } else {
                String::new()
            };
            return Err(TaskError::Failed(format!(
                "failOnError: {} metric(s) unavailable: {}{more}",
                failures.len(),
                failures
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        Ok(())
    }
}

/// `startingTime` in RFC 3339 or the Go layouts Iter8 users write
/// (`Jan 2, 2006 at 3:04pm (MST)`, ...; see [`crate::model::time`]).
fn parse_starting_time(v: &serde_json::Value) -> Result<DateTime<Utc>, String> {
    let s = v.as_str().ok_or_else(|| {
        format!(
            "must be a time string; use {}",
            crate::model::time::TIME_FORMATS
        )
    })?;
    crate::model::time::parse_time(s)
}

/// Merge `over` into `base`: objects merge key by key (recursively), anything else replaces.
pub fn deep_merge(base: &mut serde_json::Value, over: &serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}
