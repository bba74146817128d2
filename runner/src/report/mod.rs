//! Rendering results: text, JSON / YAML, self-contained HTML.
//!
//! - [`text`]: the human report (`iter8 report`), aligned columns, colour only on a TTY.
//! - JSON / YAML: the [`ExperimentResult`] exactly as stored, serialised with serde
//!   (camelCase keys; the JSON Schema is `runner/schema/result.schema.json`). These formats
//!   are stable: they change only when the result model changes, additively.
//! - [`html`]: one self-contained file (inline CSS and SVG, nothing fetched).
//!
//! [`view`] derives what the human formats show (SLO rows, winners, errors, latencies) so
//! text and HTML agree on every number.

pub mod html;
mod html_plots;
mod html_verdicts;
mod load;
pub mod text;
pub mod verdicts;
pub mod view;

use crate::model::ExperimentResult;

/// Output format of `iter8 report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    #[default]
    Text,
    /// The result as JSON (camelCase, as stored).
    Json,
    /// The result as YAML (camelCase, as stored).
    Yaml,
    /// A self-contained HTML page with plots.
    Html,
}

impl Format {
    /// File extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Html => "html",
        }
    }
}

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot serialise the result as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot serialise the result as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// Render `result` in `format`. `color` applies to text only (ANSI colours for a TTY).
pub fn render(
    result: &ExperimentResult,
    format: Format,
    color: bool,
) -> Result<String, ReportError> {
    Ok(match format {
        Format::Text => text::render(result, color),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(result)?;
            s.push('\n');
            s
        }
        Format::Yaml => serde_yaml::to_string(result)?,
        Format::Html => html::render(result),
    })
}
