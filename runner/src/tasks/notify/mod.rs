//! The `notify` task: one HTTP call that tells the world how the experiment went (a Slack
//! webhook, a GitHub `repository_dispatch`, any URL).
//!
//! Forms (exactly one of `url` / `urlFile` / `slack` / `github`):
//! - generic: `url` (or `urlFile`), `method` (default POST when there is a payload, GET
//!   without), `headers`, `params` (query parameters), `payloadTemplate` (Go template +
//!   Sprig over the [`Summary`]), `auth` (bearer token / basic auth from files or env);
//! - `slack: {url | urlFile}`: POST a Block Kit message (header, verdict, per-version SLO
//!   and metric lines; `text` as the notification fallback). `payloadTemplate` replaces it
//!   (it must render to JSON);
//! - `github: {owner, repo, tokenFile | tokenEnv, eventType, apiURL}`: POST
//!   `<apiURL>/repos/<owner>/<repo>/dispatches` with `{event_type, client_payload: summary}`
//!   and `Authorization: Bearer <token>`, `Accept: application/vnd.github+json`.
//!
//! `softFailure: true`: a failed call (no answer, non-2xx status) is logged and the task
//! succeeds. Secrets (tokens, passwords, URLs from files) are read at run time and never
//! appear in errors or logs: messages are scrubbed of them.
//!
//! The summary: [`NotifyTask::run`] sees only the task context, so `numLoops` and
//! `completed` are unknown there (absent from the summary) and `failure` is false (a
//! failed task stops the loop before notify). The engine can call
//! [`NotifyTask::run_with_summary`] with [`Summary::from_result`] to include them.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::credentials::{read_secret_file, scrub, ProviderAuth};
use super::gotemplate;
use super::httpcall;
use super::{TaskContext, TaskError};
use crate::model::GoDuration;

mod summary;

pub use summary::{slack_payload, SloVerdict, Summary, VersionSummary};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_GITHUB_API: &str = "https://api.github.com";

/// Inputs of the `notify` task.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyTask {
    /// URL to call (generic form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// File holding the URL (when the URL itself is a secret, e.g. a webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<String>,
    /// HTTP method: default POST when there is a payload, GET without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Payload: a Go template (Sprig functions) rendered over the experiment summary
    /// (`.completed`, `.failure`, `.failureReason`, `.numLoops`, `.slosSatisfied`,
    /// `.versions[i].name / .slosSatisfied / .slos / .metrics / .unavailable`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_template: Option<String>,
    /// URL of the payload template (Iter8's `payloadTemplateURL`), fetched by the runner
    /// when the task runs (16 MiB at most; a failed download names the URL).
    #[serde(
        default,
        rename = "payloadTemplateURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_template_url: Option<String>,
    /// Content type of the payload (default: application/json when it parses as JSON,
    /// else text/plain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Credentials sent as the `Authorization` header, from files or env (generic form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ProviderAuth>,
    /// A failed call does not fail the experiment (it is logged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft_failure: bool,
    /// Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackNotify>,
    /// GitHub repository_dispatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GitHubNotify>,
    /// Time limit of the call (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// PEM file of CA certificate(s) trusted for an https URL, beside Mozilla's and the
    /// system's roots (a webhook behind a company CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate of an https URL (testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Slack incoming webhook: exactly one of `url`, `urlFile` (the webhook URL is a secret:
/// prefer `urlFile` with a mounted Secret).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackNotify {
    /// Webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// File holding the webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<String>,
}

/// GitHub `repository_dispatch`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitHubNotify {
    /// Repository owner (user or organisation).
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// File holding a token allowed to dispatch (a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// Environment variable holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// `event_type` of the dispatch (default `iter8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// API base URL (default https://api.github.com; GitHub Enterprise:
    /// https://HOST/api/v3).
    #[serde(default, rename = "apiURL", skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// The request a notify task sends.
#[derive(Debug)]
struct Call {
    method: String,
    url: String,
    /// How the URL is shown in messages (a URL from a file is not shown).
    shown_url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Strings scrubbed from every message.
    secrets: Vec<String>,
}

impl NotifyTask {
    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), TaskError> {
        let forms = [
            self.url.is_some(),
            self.url_file.is_some(),
            self.slack.is_some(),
            self.github.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if forms != 1 {
            return Err(TaskError::invalid(
                "url",
                "give exactly one of url, urlFile, slack, github (e.g. url: https://hooks.example.com/iter8)",
            ));
        }
        if let Some(u) = &self.url {
            check_url("url", u)?;
        }
        if let Some(m) = &self.method {
            if m.parse::<http::Method>().is_err() || m.is_empty() {
                return Err(TaskError::invalid(
                    "method",
                    format!("{m:?} is not an HTTP method; use GET or POST"),
                ));
            }
        }
        if let Some(s) = &self.slack {
            if s.url.is_some() == s.url_file.is_some() {
                return Err(TaskError::invalid(
                    "slack",
                    "give exactly one of url, urlFile (the webhook URL; a file from a mounted Secret is safer)",
                ));
            }
            if let Some(u) = &s.url {
                check_url("slack.url", u)?;
            }
        }
        if let Some(g) = &self.github {
            if g.owner.trim().is_empty() || g.owner.contains('/') {
                return Err(TaskError::invalid(
                    "github.owner",
                    "the repository owner, e.g. my-org",
                ));
            }
            if g.repo.trim().is_empty() || g.repo.contains('/') {
                return Err(TaskError::invalid(
                    "github.repo",
                    "the repository name, e.g. my-app",
                ));
            }
            if g.token_file.is_some() == g.token_env.is_some() {
                return Err(TaskError::invalid(
                    "github",
                    "give exactly one of tokenFile, tokenEnv (the token never goes in the spec)",
                ));
            }
            if let Some(u) = &g.api_url {
                check_url("github.apiURL", u)?;
            }
        }
        if let Some(a) = &self.auth {
            if self.slack.is_some() || self.github.is_some() {
                return Err(TaskError::invalid(
                    "auth",
                    "only for the generic form (url / urlFile)",
                ));
            }
            let n = [
                a.bearer_token_file.is_some(),
                a.bearer_token_env.is_some(),
                a.basic_auth.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if n != 1 {
                return Err(TaskError::invalid(
                    "auth",
                    "give exactly one of bearerTokenFile, bearerTokenEnv, basicAuth",
                ));
            }
        }
        if let Some(u) = &self.payload_template_url {
            if self.payload_template.is_some() {
                return Err(TaskError::invalid(
                    "payloadTemplateURL",
                    "give either payloadTemplate or payloadTemplateURL, not both",
                ));
            }
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(TaskError::invalid(
                    "payloadTemplateURL",
                    format!("{u:?} is not an http(s) URL"),
                ));
            }
        }
        if let Some(t) = &self.payload_template {
            // syntax only: render errors need the summary
            if let Err(e) = gotemplate::render("payloadTemplate", t, &serde_json::json!({})) {
                if matches!(e, gotemplate::TemplateError::Parse { .. }) {
                    return Err(TaskError::invalid("payloadTemplate", e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Run with the summary the task context allows (see the module docs).
    pub async fn run(&self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        let summary = Summary::from_insights(ctx.insights, ctx.index);
        self.run_with_summary(&summary).await
    }

    /// Send the notification describing `summary`.
    pub async fn run_with_summary(&self, summary: &Summary) -> Result<(), TaskError> {
        self.validate()?;
        let timeout = self
            .timeout
            .map(|t| t.as_duration())
            .unwrap_or(DEFAULT_TIMEOUT);
        // a bad caFile is bad input, not a failed call: never soft
        let options = httpcall::CallOptions::for_task(
            timeout,
            self.ca_file.as_deref(),
            self.insecure_skip_verify,
        )?;
        let fetched;
        let template = match &self.payload_template_url {
            Some(u) => {
                fetched = match fetch_template(u, &options).await {
                    Ok(t) => t,
                    Err(e) => {
                        return self.soft(TaskError::Failed(format!(
                            "notify: payloadTemplateURL: GET {}: {e}",
                            httpcall::redact_url(u)
                        )))
                    }
                };
                Some(fetched.as_str())
            }
            None => self.payload_template.as_deref(),
        };
        let rendered = match self.render_payload(summary, template, timeout).await {
            Ok(r) => r,
            Err(e) => return self.soft(e),
        };
        let call = match self.build(summary, rendered) {
            Ok(c) => c,
            Err(e) => return self.soft(e),
        };
        let outcome = httpcall::send_with(
            &call.method,
            &call.url,
            &call.headers,
            call.body.clone(),
            &options,
        )
        .await;
        let result = match outcome {
            Ok(resp) if (200..300).contains(&resp.status) => {
                tracing::info!(
                    "notify: {} {} answered {}",
                    call.method,
                    call.shown_url,
                    resp.status
                );
                Ok(())
            }
            Ok(resp) => Err(format!(
                "{} {} answered HTTP {}: {}",
                call.method,
                call.shown_url,
                resp.status,
                resp.body_snippet(200)
            )),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Ok(()),
            Err(msg) => {
                let msg = scrub(&msg.replace(&call.url, &call.shown_url), &call.secrets);
                self.soft(TaskError::Failed(format!("notify: {msg}")))
            }
        }
    }

    fn soft(&self, e: TaskError) -> Result<(), TaskError> {
        if self.soft_failure {
            tracing::warn!("{e} (softFailure: the experiment goes on)");
            Ok(())
        } else {
            Err(e)
        }
    }

    /// The rendered payload template (`payloadTemplate`, or the one fetched from
    /// `payloadTemplateURL`), within `timeout` on its own thread.
    async fn render_payload(
        &self,
        summary: &Summary,
        template: Option<&str>,
        timeout: Duration,
    ) -> Result<Option<String>, TaskError> {
        let Some(t) = template.map(str::to_string) else {
            return Ok(None);
        };
        let summary_json = serde_json::to_value(summary)
            .map_err(|e| TaskError::Failed(format!("notify: summary: {e}")))?;
        let mut data = summary_json.clone();
        if let serde_json::Value::Object(m) = &mut data {
            m.insert("Summary".into(), summary_json);
        }
        super::bounded::run_bounded("notify: payloadTemplate", timeout, move || {
            gotemplate::render("payloadTemplate", &t, &data)
        })
        .await
        .map_err(TaskError::Failed)?
        .map(Some)
        .map_err(|e| TaskError::Failed(format!("notify: {e}")))
    }

    fn build(&self, summary: &Summary, rendered: Option<String>) -> Result<Call, TaskError> {
        let summary_json = serde_json::to_value(summary)
            .map_err(|e| TaskError::Failed(format!("notify: summary: {e}")))?;
        let mut secrets = Vec::new();
        let mut headers: Vec<(String, String)> = Vec::new();

        if let Some(g) = &self.github {
            let token = match (&g.token_file, &g.token_env) {
                (Some(f), _) => read_secret_file(f),
                (None, Some(v)) => std::env::var(v)
                    .map(|t| t.trim().to_string())
                    .ok()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| format!("environment variable {v} (GitHub token) is not set")),
                _ => Err("github: no token".to_string()),
            }
            .map_err(|m| TaskError::Failed(format!("notify: github: {m}")))?;
            secrets.push(token.clone());
            let api = g
                .api_url
                .as_deref()
                .unwrap_or(DEFAULT_GITHUB_API)
                .trim_end_matches('/');
            let url = format!("{api}/repos/{}/{}/dispatches", g.owner, g.repo);
            let body = serde_json::json!({
                "event_type": g.event_type.as_deref().unwrap_or("iter8"),
                "client_payload": summary_json,
            });
            headers.push(("Accept".into(), "application/vnd.github+json".into()));
            headers.push(("Authorization".into(), format!("Bearer {token}")));
            headers.push(("X-GitHub-Api-Version".into(), "2022-11-28".into()));
            headers.push(("User-Agent".into(), format!("iter8/{}", crate::VERSION)));
            headers.push(("Content-Type".into(), "application/json".into()));
            return Ok(Call {
                method: "POST".into(),
                shown_url: url.clone(),
                url,
                headers,
                body: Some(body.to_string().into_bytes()),
                secrets,
            });
        }

        if let Some(s) = &self.slack {
            let (url, shown) = match (&s.url, &s.url_file) {
                (Some(u), _) => (u.clone(), slack_shown(u)),
                (None, Some(f)) => {
                    let u = read_secret_file(f)
                        .map_err(|m| TaskError::Failed(format!("notify: slack: {m}")))?;
                    secrets.push(u.clone());
                    (u.trim().to_string(), format!("the Slack webhook from {f}"))
                }
                _ => return Err(TaskError::invalid("slack", "no URL")),
            };
            let payload = match rendered {
                Some(p) => {
                    serde_json::from_str::<serde_json::Value>(&p).map_err(|e| {
                        TaskError::Failed(format!(
                            "notify: payloadTemplate: a Slack payload must be JSON: {e}"
                        ))
                    })?;
                    p
                }
                None => slack_payload(summary).to_string(),
            };
            headers.push(("Content-Type".into(), "application/json".into()));
            return Ok(Call {
                method: "POST".into(),
                url,
                shown_url: shown,
                headers,
                body: Some(payload.into_bytes()),
                secrets,
            });
        }

        // generic
        let (base, shown) = match (&self.url, &self.url_file) {
            (Some(u), _) => (u.clone(), httpcall::redact_url(u)),
            (None, Some(f)) => {
                let u = read_secret_file(f)
                    .map_err(|m| TaskError::Failed(format!("notify: urlFile: {m}")))?;
                secrets.push(u.clone());
                (u.trim().to_string(), format!("the URL from {f}"))
            }
            _ => return Err(TaskError::invalid("url", "missing")),
        };
        let params: Vec<(String, String)> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let url = httpcall::with_query(&base, &params);
        if let Some(a) = &self.auth {
            let (value, creds) = a
                .header_and_secrets()
                .map_err(|m| TaskError::Failed(format!("notify: auth: {m}")))?;
            secrets.extend(creds);
            headers.push(("Authorization".into(), value));
        }
        for (k, v) in &self.headers {
            headers.push((k.clone(), v.clone()));
        }
        let method = self
            .method
            .clone()
            .map(|m| m.to_ascii_uppercase())
            .unwrap_or_else(|| if rendered.is_some() { "POST" } else { "GET" }.into());
        if let Some(p) = &rendered {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                let ct = self.content_type.clone().unwrap_or_else(|| {
                    if serde_json::from_str::<serde_json::Value>(p).is_ok() {
                        "application/json".into()
                    } else {
                        "text/plain; charset=utf-8".into()
                    }
                });
                headers.push(("Content-Type".into(), ct));
            }
        }
        let shown_url = if self.url_file.is_some() {
            shown
        } else {
            httpcall::redact_url(&url)
        };
        Ok(Call {
            method,
            url,
            shown_url,
            headers,
            body: rendered.map(String::into_bytes),
            secrets,
        })
    }
}

fn check_url(field: &str, u: &str) -> Result<(), TaskError> {
    if !(u.starts_with("http://") || u.starts_with("https://")) || u.parse::<http::Uri>().is_err() {
        return Err(TaskError::invalid(
            field,
            format!("{:?} is not an http(s) URL", httpcall::redact_url(u)),
        ));
    }
    crate::model::limits::check_url_port(u)
        .map_err(|m| TaskError::invalid(field, format!("{:?}: {m}", httpcall::redact_url(u))))
}

/// Slack webhook URLs carry their secret in the path: show the host only.
fn slack_shown(u: &str) -> String {
    match u.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or_default();
            format!("{scheme}://{host}/...")
        }
        None => "the Slack webhook".into(),
    }
}

/// GET a payload template (`payloadTemplateURL`): the UTF-8 body of a 2xx reply.
async fn fetch_template(url: &str, options: &httpcall::CallOptions) -> Result<String, String> {
    let resp = httpcall::send_with("GET", url, &[], None, options).await?;
    if !(200..300).contains(&resp.status) {
        return Err(format!("HTTP status {}", resp.status));
    }
    String::from_utf8(resp.body.to_vec()).map_err(|_| "the template is not UTF-8 text".into())
}
