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

use super::bounded::{self, run_bounded};
use super::gotemplate;
use super::httpcall;
use super::{TaskContext, TaskError};
use crate::model::metrics::normalize_metric_name;
use crate::model::{GoDuration, MetricMeta, MetricType};

/// Provider templates shipped with the runner (and the chart): `builtin:<name>`.
pub const BUILTIN_PROVIDERS: &[(&str, &str)] = &[
    ("prometheus", include_str!("../../providers/prometheus.tpl")),
    ("istio", include_str!("../../providers/istio.tpl")),
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

/// Where a provider template comes from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum TemplateSource {
    /// `builtin:<name>`, a URL, a template text or a file path (see `templates`).
    Auto(String),
    /// Exactly one of the fields.
    Explicit(TemplateRef),
}

/// An explicit template source: exactly one field.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    /// A shipped template: `prometheus` or `istio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// An http(s) URL the runner fetches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file (e.g. a mounted ConfigMap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The template text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

/// Credentials of a provider, from files or environment variables only.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderAuth {
    /// File holding a bearer token (`Authorization: Bearer <token>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    /// Environment variable holding a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Basic authentication (`Authorization: Basic ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
}

/// Basic authentication: the password only from a file.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    /// User name (not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_file: Option<String>,
    /// File holding the password.
    pub password_file: String,
}

/// Where a template comes from, resolved.
#[derive(Debug, Clone, PartialEq)]
enum Source<'a> {
    Builtin(&'a str),
    Url(&'a str),
    File(&'a str),
    Inline(&'a str),
}

impl TemplateSource {
    fn resolve(&self) -> Result<Source<'_>, String> {
        match self {
            TemplateSource::Auto(s) => {
                if let Some(name) = s.strip_prefix("builtin:") {
                    Ok(Source::Builtin(name.trim()))
                } else if s.contains('\n') || s.contains("{{") {
                    Ok(Source::Inline(s))
                } else if s.starts_with("http://") || s.starts_with("https://") {
                    Ok(Source::Url(s.trim()))
                } else if let Some(path) = s.strip_prefix("file://") {
                    Ok(Source::File(path))
                } else if s.trim().is_empty() {
                    Err(
                        "empty; give builtin:prometheus, a URL, a file path or the template text"
                            .into(),
                    )
                } else {
                    Ok(Source::File(s.trim()))
                }
            }
            TemplateSource::Explicit(r) => {
                let given = [&r.builtin, &r.url, &r.file, &r.inline]
                    .iter()
                    .filter(|x| x.is_some())
                    .count();
                if given != 1 {
                    return Err("give exactly one of builtin, url, file, inline".into());
                }
                Ok(match (&r.builtin, &r.url, &r.file, &r.inline) {
                    (Some(b), ..) => Source::Builtin(b),
                    (_, Some(u), ..) => Source::Url(u),
                    (_, _, Some(f), _) => Source::File(f),
                    (_, _, _, Some(i)) => Source::Inline(i),
                    _ => return Err("give exactly one of builtin, url, file, inline".into()),
                })
            }
        }
    }
}

impl ProviderAuth {
    fn validate(&self, field: &str) -> Result<(), TaskError> {
        let n = [
            self.bearer_token_file.is_some(),
            self.bearer_token_env.is_some(),
            self.basic_auth.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n != 1 {
            return Err(TaskError::invalid(
                field,
                "give exactly one of bearerTokenFile, bearerTokenEnv, basicAuth",
            ));
        }
        if let Some(b) = &self.basic_auth {
            if b.username.is_some() == b.username_file.is_some() {
                return Err(TaskError::invalid(
                    format!("{field}.basicAuth"),
                    "give exactly one of username, usernameFile",
                ));
            }
        }
        Ok(())
    }

    /// The `Authorization` header value. Errors name the file or variable, never the secret.
    pub fn header_value(&self) -> Result<String, String> {
        self.header_and_secrets().map(|(h, _)| h)
    }

    /// The `Authorization` header value, and the secret strings in it (to scrub from any
    /// message: a server may echo them back).
    pub fn header_and_secrets(&self) -> Result<(String, Vec<String>), String> {
        if let Some(path) = &self.bearer_token_file {
            let token = read_secret_file(path)?;
            return Ok((format!("Bearer {token}"), vec![token]));
        }
        if let Some(var) = &self.bearer_token_env {
            let token = std::env::var(var)
                .map_err(|_| format!("environment variable {var} (bearer token) is not set"))?;
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(format!(
                    "environment variable {var} (bearer token) is empty"
                ));
            }
            return Ok((format!("Bearer {token}"), vec![token]));
        }
        if let Some(b) = &self.basic_auth {
            let user = match (&b.username, &b.username_file) {
                (Some(u), _) => u.clone(),
                (None, Some(f)) => read_secret_file(f)?,
                (None, None) => return Err("basicAuth: no username".into()),
            };
            let pass = read_secret_file(&b.password_file)?;
            use base64::Engine as _;
            let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            return Ok((format!("Basic {enc}"), vec![enc, pass]));
        }
        Err("no credentials configured".into())
    }
}

/// Replace every secret in `msg` by `***`.
pub fn scrub(msg: &str, secrets: &[String]) -> String {
    let mut out = msg.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// Read a credential file (trailing newline removed). Errors name the path only.
pub fn read_secret_file(path: &str) -> Result<String, String> {
    use crate::model::limits::{read_text_capped, ReadError, MAX_PEM_BYTES};
    let s = read_text_capped(std::path::Path::new(path), MAX_PEM_BYTES).map_err(|e| match e {
        ReadError::Io(e) => format!("cannot read credential file {path}: {}", e.kind()),
        other => format!("cannot read credential file {path}: it {other}"),
    })?;
    let s = s.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err(format!("credential file {path} is empty"));
    }
    Ok(s)
}

/// A provider spec: what a template renders to.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderSpec {
    /// Query endpoint.
    pub url: String,
    /// GET (default) or POST.
    #[serde(default)]
    pub method: Option<String>,
    /// Headers of every query.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The metrics.
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    /// Ignored (Iter8's templates carried the provider's name).
    #[serde(default)]
    pub provider: Option<String>,
}

/// One metric of a provider spec.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub units: Option<String>,
    #[serde(default)]
    pub params: Option<Vec<Param>>,
    #[serde(default)]
    pub body: Option<String>,
    pub jq_expression: String,
}

/// A query parameter.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: String,
    pub value: String,
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

async fn load_template(
    provider: &str,
    src: &TemplateSource,
    call: &httpcall::CallOptions,
) -> Result<String, TaskError> {
    let field = format!("templates.{provider}");
    match src.resolve().map_err(|m| TaskError::invalid(&field, m))? {
        Source::Builtin(b) => builtin_template(b)
            .map(str::to_string)
            .ok_or_else(|| TaskError::invalid(&field, format!("no builtin template {b:?}"))),
        Source::Inline(t) => Ok(t.to_string()),
        Source::File(p) => crate::model::limits::read_text_capped(
            std::path::Path::new(p),
            crate::model::limits::MAX_PAYLOAD_BYTES,
        )
        .map_err(|e| TaskError::Failed(format!("{field}: cannot read template file {p}: {e}"))),
        Source::Url(u) => {
            let resp = httpcall::send_with("GET", u, &[], None, call)
                .await
                .map_err(|e| TaskError::Failed(format!("{field}: cannot fetch template: {e}")))?;
            if !(200..300).contains(&resp.status) {
                return Err(TaskError::Failed(format!(
                    "{field}: cannot fetch template from {}: HTTP {}",
                    httpcall::redact_url(u),
                    resp.status
                )));
            }
            String::from_utf8(resp.body.to_vec()).map_err(|_| {
                TaskError::Failed(format!("{field}: the template at {u} is not UTF-8 text"))
            })
        }
    }
}

/// Render a provider template for one version's data and parse the provider spec.
pub fn render_spec(
    provider: &str,
    text: &str,
    data: &serde_json::Value,
) -> Result<ProviderSpec, TaskError> {
    let rendered = gotemplate::render(provider, text, data)
        .map_err(|e| TaskError::Failed(format!("provider {provider:?}: {e}")))?;
    let spec: ProviderSpec = serde_yaml::from_str(&rendered).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" line {}", l.line()))
            .unwrap_or_default();
        TaskError::Failed(format!(
            "provider {provider:?}: the rendered template is not a provider spec (rendered{at}): {e}"
        ))
    })?;
    if spec.url.trim().is_empty() {
        return Err(TaskError::Failed(format!(
            "provider {provider:?}: the rendered spec has an empty url"
        )));
    }
    Ok(spec)
}

async fn query_metric(
    spec: &ProviderSpec,
    method: &str,
    metric: &MetricSpec,
    auth: Option<&str>,
    call: &httpcall::CallOptions,
) -> Result<f64, String> {
    let params: Vec<(String, String)> = metric
        .params
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    let url = httpcall::with_query(spec.url.trim(), &params);
    let mut headers: Vec<(String, String)> = spec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push((
            "Content-Type".into(),
            "application/json;charset=utf-8".into(),
        ));
    }
    if let Some(a) = auth {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        headers.push(("Authorization".into(), a.to_string()));
    }
    let body = metric.body.as_ref().map(|b| b.as_bytes().to_vec());
    let resp = httpcall::send_with(method, &url, &headers, body, call).await?;
    if !(200..300).contains(&resp.status) {
        return Err(format!(
            "HTTP {} from {}: {}",
            resp.status,
            httpcall::redact_url(spec.url.trim()),
            resp.body_snippet(200)
        ));
    }
    let expr = metric.jq_expression.clone();
    let body = resp.body;
    run_bounded(
        &format!("jq expression {expr:?}"),
        call.timeout,
        move || jq_first_number(&expr, &body),
    )
    .await?
}

/// Apply a jq expression to a JSON document; the first output, as a number.
pub fn jq_first_number(expr: &str, json: &[u8]) -> Result<f64, String> {
    use jaq_core::load::{Arena, File, Loader};
    use jaq_core::{data, unwrap_valr, Compiler, Ctx, Vars};
    use jaq_json::Val;

    bounded::check_jq(expr).map_err(|e| format!("jq expression {expr:?} {e}"))?;
    bounded::check_json_nesting(json).map_err(|e| format!("the response is not accepted: {e}"))?;
    let input =
        jaq_json::read::parse_single(json).map_err(|e| format!("the response is not JSON: {e}"))?;
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File {
        code: expr,
        path: (),
    };
    let modules = loader
        .load(&arena, program)
        .map_err(|_| format!("jq expression {expr:?} does not parse"))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|_| format!("jq expression {expr:?} does not compile (unknown filter?)"))?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let mut out = filter.id.run((ctx, input)).map(unwrap_valr);
    let first = match out.next() {
        None => return Err(format!("no data (jq expression {expr:?} gave no output)")),
        Some(Err(e)) => return Err(format!("jq expression {expr:?} failed: {e}")),
        Some(Ok(v)) => v,
    };
    let value = match &first {
        Val::Null => return Err(format!("no data (jq expression {expr:?} gave null)")),
        Val::Num(n) => n.to_string().parse::<f64>().ok(),
        Val::TStr(b) | Val::BStr(b) => {
            let s = String::from_utf8_lossy(b);
            s.trim().parse::<f64>().ok()
        }
        _ => None,
    };
    match value {
        Some(v) if v.is_nan() => Err(format!("not a number: NaN (jq expression {expr:?})")),
        Some(v) => Ok(v),
        None => {
            let mut shown = first.to_string();
            if shown.len() > 100 {
                shown.truncate(100);
                shown.push_str("...");
            }
            Err(format!("not a number: {shown} (jq expression {expr:?})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jq_numbers_and_numeric_strings() {
        let prom = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"1.5"]}]}}"#;
        assert_eq!(jq_first_number(".data.result[0].value[1]", prom), Ok(1.5));
        assert_eq!(
            jq_first_number(".data.result[0].value[1] | tonumber", prom),
            Ok(1.5)
        );
        assert_eq!(
            jq_first_number(".a[] | .x", br#"{"a":[{"x":3},{"x":4}]}"#),
            Ok(3.0)
        );
        let none = br#"{"data":{"result":[]}}"#;
        assert!(jq_first_number(".data.result[0].value[1]", none)
            .unwrap_err()
            .contains("no data"));
        assert!(jq_first_number(".s", br#"{"s":"abc"}"#)
            .unwrap_err()
            .contains("not a number"));
        assert!(jq_first_number(".s", br#"{"s":"NaN"}"#)
            .unwrap_err()
            .contains("NaN"));
        assert!(jq_first_number(".[", b"{}")
            .unwrap_err()
            .contains("does not parse"));
        assert!(jq_first_number("nosuchfn", b"{}")
            .unwrap_err()
            .contains("does not compile"));
        assert!(jq_first_number(".", b"not json")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn sources_resolve_and_validate() {
        let t: CustomMetricsTask = serde_yaml::from_str(
            r#"
templates:
  a: builtin:prometheus
  b: https://example.com/x.tpl
  c: /etc/t.tpl
  d: "url: {{ .u }}"
  e: {file: /x}
"#,
        )
        .unwrap();
        t.validate().unwrap();
        assert_eq!(
            t.templates["a"].resolve(),
            Ok(Source::Builtin("prometheus"))
        );
        assert_eq!(
            t.templates["b"].resolve(),
            Ok(Source::Url("https://example.com/x.tpl"))
        );
        assert_eq!(t.templates["c"].resolve(), Ok(Source::File("/etc/t.tpl")));
        assert_eq!(
            t.templates["d"].resolve(),
            Ok(Source::Inline("url: {{ .u }}"))
        );
        assert_eq!(t.templates["e"].resolve(), Ok(Source::File("/x")));
        assert_eq!(t.metric_prefixes(), vec!["a", "b", "c", "d", "e"]);

        let bad: CustomMetricsTask =
            serde_yaml::from_str("templates: {a: 'builtin:nope'}").unwrap();
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("templates.a") && e.contains("prometheus"), "{e}");
        let bad: CustomMetricsTask =
            serde_yaml::from_str("templates: {a: {file: x, url: 'http://h'}}").unwrap();
        assert!(bad.validate().is_err());
        let bad: CustomMetricsTask = serde_yaml::from_str(
            "templates: {a: builtin:istio}\nauth: {a: {bearerTokenFile: /t, bearerTokenEnv: T}}",
        )
        .unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("auth.a"));
        let bad: CustomMetricsTask = serde_yaml::from_str(
            "templates: {a: builtin:istio}\nversionValues: [{}, {}]\nversionNames: [x]",
        )
        .unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("versionNames"));
        assert!(serde_yaml::from_str::<CustomMetricsTask>("templates: {}\nbogus: 1").is_err());
    }

    #[test]
    fn json_schema_documents_the_inputs() {
        let schema = serde_json::to_value(schemars::schema_for!(CustomMetricsTask)).unwrap();
        let props = &schema["properties"];
        for key in [
            "templates",
            "values",
            "versionValues",
            "versionNames",
            "startingTime",
            "auth",
            "failOnError",
            "timeout",
        ] {
            assert!(props.get(key).is_some(), "{key} missing from {schema}");
        }
        assert_eq!(schema["additionalProperties"], false);
        assert!(props["templates"]["description"]
            .as_str()
            .unwrap()
            .contains("builtin:prometheus"));
    }

    #[test]
    fn starting_time_in_the_go_layout_iter8_users_write() {
        let t: CustomMetricsTask = serde_yaml::from_str(
            "templates: {p: builtin:prometheus}\nversionValues:\n\
             - {startingTime: \"Jan 1, 2024 at 12:10am (UTC)\"}\n\
             - {startingTime: \"yesterday\"}\n",
        )
        .unwrap();
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let d0 = t.template_data(0, start, start).unwrap();
        assert_eq!(d0["elapsedTimeSeconds"], 600);
        let e = t.validate().unwrap_err().to_string();
        assert!(e.contains("versionValues[1].startingTime"), "{e}");
        assert!(e.contains("Jan 2, 2006") || e.contains("at 12:00pm"), "{e}");
    }

    #[test]
    fn values_merge_per_version_with_elapsed_time() {
        let t: CustomMetricsTask = serde_yaml::from_str(
            r#"
templates: {p: builtin:prometheus}
values: {labels: {app: web, version: v1}, x: 1}
versionValues:
- {}
- {labels: {version: v2}, startingTime: "2024-01-01T00:00:00Z"}
versionNames: [stable, canary]
"#,
        )
        .unwrap();
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let now = start + chrono::Duration::seconds(42);
        let d0 = t.template_data(0, start, now).unwrap();
        let d1 = t.template_data(1, start, now).unwrap();
        assert_eq!(d0["labels"]["version"], "v1");
        assert_eq!(d0["elapsedTimeSeconds"], 42);
        assert_eq!(d0["Values"]["x"], 1);
        assert_eq!(d1["labels"]["version"], "v2");
        assert_eq!(d1["labels"]["app"], "web");
        assert_eq!(d1["elapsedTimeSeconds"], 642);
        assert_eq!(d1["Version"]["name"], "canary");
        // the task's startingTime moves the window start of versions without their own
        let mut t2 = t.clone();
        t2.starting_time = Some(start - chrono::Duration::seconds(100));
        assert_eq!(
            t2.template_data(0, start, now).unwrap()["elapsedTimeSeconds"],
            142
        );
        assert_eq!(
            t2.template_data(1, start, now).unwrap()["elapsedTimeSeconds"],
            642
        );
    }

    #[test]
    fn shipped_templates_render_to_valid_specs() {
        for (name, text) in BUILTIN_PROVIDERS {
            let data = serde_json::json!({
                "labels": {"app": "web", "version": "v2"},
                "elapsedTimeSeconds": 0,
                "latencyPercentiles": [50, 99.9],
            });
            let spec = render_spec(name, text, &data).unwrap();
            let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(
                names,
                vec![
                    "request-count",
                    "error-count",
                    "error-rate",
                    "latency-mean",
                    "latency-p50",
                    "latency-p99.9"
                ],
                "{name}"
            );
            let q = &spec.metrics[0].params.as_ref().unwrap()[0].value;
            assert!(q.contains("app=\"web\""), "{q}");
            assert!(q.contains("[60s]"), "{q}");
            let p50 = &spec.metrics[4].params.as_ref().unwrap()[0].value;
            assert!(p50.contains("histogram_quantile(0.5,"), "{p50}");
            // a window as long as the elapsed time, once longer than the minimum
            let later = serde_json::json!({"elapsedTimeSeconds": 90});
            let spec = render_spec(name, text, &later).unwrap();
            let q = &spec.metrics[0].params.as_ref().unwrap()[0].value;
            assert!(q.contains("[90s]"), "{q}");
        }
    }
}
