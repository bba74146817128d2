//! Provider templates: where one comes from (`builtin:`, a URL, a file, inline text), and
//! rendering it into a provider spec.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{builtin_template, gotemplate, httpcall, ProviderSpec, TaskError};

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

/// Where a template comes from, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Source<'a> {
    Builtin(&'a str),
    Url(&'a str),
    File(&'a str),
    Inline(&'a str),
}

impl TemplateSource {
    pub(super) fn resolve(&self) -> Result<Source<'_>, String> {
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

pub(super) async fn load_template(
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
