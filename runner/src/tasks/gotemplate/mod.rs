//! Go template rendering (the syntax of Helm and Iter8 templates) with the Sprig functions
//! Helm users know, shared by `custommetrics` (provider templates) and `notify` (payloads).
//!
//! The engine is `gtmpl` (a port of Go's `text/template`); the Sprig functions below are
//! added as gtmpl functions, with Sprig's argument order (so `{{ .x | default "y" }}` and
//! `{{ replace "a" "b" .s }}` read as in Helm). Data is passed as maps, so a missing key
//! renders as `<no value>` as in Go; we turn any `<no value>` in the output into an error
//! naming the template and the line, because a half-rendered query is never what the user
//! meant.
//!
//! As in Go, `range` over a missing value runs zero times, and errors name the line of the
//! action that failed (also inside `define`d templates): see [`instrument`]. A difference
//! from Go that template authors may meet: `range` over a map is unordered (use
//! `range $k := keys .m` for a sorted walk).
//!
//! Functions: the Go builtins (`eq ne lt le gt ge len and or not urlquery print println
//! printf index call`) plus `default empty coalesce required fail ternary quote squote
//! toJson toJSON toPrettyJson toString upper lower title trim trimAll trimPrefix trimSuffix
//! replace contains hasPrefix hasSuffix split join list dict hasKey keys get add add1 sub
//! mul div mod addf subf mulf divf max min int int64 float64 round b64enc b64dec indent nindent kindOf
//! typeOf`.

use std::collections::HashMap;

use gtmpl::{Context, Func, Template, Value};
use gtmpl_value::Number;

mod instrument;
mod scan;
mod sprig;
#[cfg(test)]
mod tests;

pub use sprig::query_escape;
use sprig::SPRIG;

/// A template could not be parsed or rendered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// Bad syntax, or a function that does not exist.
    #[error("template {name:?}{}: {message}", line_suffix(*.line))]
    Parse {
        name: String,
        line: Option<usize>,
        message: String,
    },
    /// The template parsed but failed while rendering (a function failed, a bad value).
    #[error("template {name:?}{}: {message}", line_suffix(*.line))]
    Render {
        name: String,
        line: Option<usize>,
        message: String,
    },
    /// A value the template prints is missing.
    #[error(
        "template {name:?}{}: a value is missing ({snippet:?} rendered as `<no value>`); set it in the values, or give it a default with `| default ...`",
        line_suffix(*.line)
    )]
    MissingValue {
        name: String,
        line: Option<usize>,
        snippet: String,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    match line {
        Some(l) => format!(" line {l}"),
        None => String::new(),
    }
}

/// Largest rendered template.
pub const MAX_OUTPUT_BYTES: usize = 4 << 20;

/// A writer that refuses to grow past [`MAX_OUTPUT_BYTES`] (gtmpl then stops rendering).
struct CappedOutput(Vec<u8>);

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.0.resize(MAX_OUTPUT_BYTES, b' ');
            return Err(std::io::Error::other("template output too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parse and render `text` (named `name` in errors) over `data`.
///
/// The text is checked first ([`super::bounded::check_template`]: size, nesting, no
/// recursion) and the output is capped at [`MAX_OUTPUT_BYTES`], so a template cannot
/// overflow the stack or fill the memory; callers bound the time with
/// [`super::bounded::run_bounded`].
///
/// Texts left open and invalid escapes are refused first by [`scan::check`], with the line
/// where they start.
pub fn render(name: &str, text: &str, data: &serde_json::Value) -> Result<String, TemplateError> {
    scan::check(text).map_err(|e| TemplateError::Parse {
        name: name.to_string(),
        line: Some(e.line),
        message: e.message,
    })?;
    super::bounded::check_template(text).map_err(|message| TemplateError::Parse {
        name: name.to_string(),
        line: None,
        message,
    })?;
    let mut tmpl = Template::with_name(name);
    tmpl.add_funcs(SPRIG);
    // The text as written first: syntax errors name the user's lines.
    tmpl.parse(text).map_err(|e| parse_error(name, text, &e))?;
    // Then the instrumented text (line markers, Go's range over a missing value); should
    // it not parse (a construct the rewriting does not know), the text as written runs.
    let mut instrumented = Template::with_name(name);
    instrumented.add_funcs(SPRIG);
    instrumented.add_funcs(&[
        (instrument::AT, instrument::at as Func),
        (instrument::ITEMS, instrument::items as Func),
    ]);
    let tmpl = match instrumented.parse(instrument::instrument(text)) {
        Ok(()) => instrumented,
        Err(e) => {
            tracing::debug!("template {name:?}: instrumented copy does not parse ({e}); rendering without line markers");
            tmpl
        }
    };
    let ctx = Context::from(to_gtmpl(data));
    instrument::reset();
    let mut sink = CappedOutput(Vec::new());
    if let Err(e) = tmpl.execute(&mut sink, &ctx) {
        if sink.0.len() >= MAX_OUTPUT_BYTES {
            return Err(TemplateError::Render {
                name: name.to_string(),
                line: None,
                message: format!(
                    "the output is larger than {MAX_OUTPUT_BYTES} bytes (the limit); does a range repeat too often?"
                ),
            });
        }
        return Err(render_error(
            name,
            text,
            &e.to_string(),
            instrument::last_line(),
        ));
    }
    let out = String::from_utf8_lossy(&sink.0);
    let (out, missing_line) = instrument::strip(&out);
    if let Some(pos) = out.find("<no value>") {
        let rendered_line = out[..pos].matches('\n').count();
        let snippet = out
            .lines()
            .nth(rendered_line)
            .unwrap_or_default()
            .trim()
            .to_string();
        return Err(TemplateError::MissingValue {
            name: name.to_string(),
            line: missing_line.or_else(|| missing_value_line(text, data)),
            snippet,
        });
    }
    Ok(out)
}

fn parse_error(name: &str, text: &str, e: &gtmpl::error::ParseError) -> TemplateError {
    let msg = e.to_string();
    // gtmpl's format: "template: <name>:<line>: <message>"
    let prefix = format!("template: {name}:");
    if let Some(rest) = msg.strip_prefix(&prefix) {
        if let Some((line, message)) = rest.split_once(':') {
            if let Ok(line) = line.trim().parse::<usize>() {
                let message = message.trim();
                let line = if message.contains("unclosed action") {
                    scan::check(text).err().map_or(line, |e| e.line)
                } else {
                    nearest_action_line(text, line)
                };
                return TemplateError::Parse {
                    name: name.to_string(),
                    line: Some(line),
                    message: message.to_string(),
                };
            }
        }
    }
    TemplateError::Parse {
        name: name.to_string(),
        line: guess_line(text, &msg),
        message: msg,
    }
}

/// gtmpl sometimes reports the line after the faulty action (it has read the next token):
/// walk back to the nearest line holding an action.
fn nearest_action_line(text: &str, line: usize) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut l = line.min(lines.len());
    while l >= 1 {
        let s = lines[l - 1];
        if s.contains("{{") || s.contains("}}") {
            return l;
        }
        l -= 1;
    }
    line
}

/// A render error at `line` (the action that failed), else at the line guessed from the
/// message.
fn render_error(name: &str, text: &str, msg: &str, line: Option<usize>) -> TemplateError {
    let line = line.or_else(|| guess_line(text, msg));
    if msg.starts_with("invalid range") {
        return TemplateError::Render {
            name: name.to_string(),
            line,
            // gtmpl's message shows the value as a Rust debug value (`invalid range
            // Number(Number { n: U(5) })`): say what kind of value it was instead.
            message: format!(
                "cannot range over {}: range needs a list or a map",
                range_value_kind(msg)
            ),
        };
    }
    TemplateError::Render {
        name: name.to_string(),
        line,
        message: msg.to_string(),
    }
}

/// What kind of value gtmpl's `invalid range <debug value>` message is about.
fn range_value_kind(msg: &str) -> &'static str {
    let value = msg.trim_start_matches("invalid range").trim_start();
    match value.split(['(', ' ']).next().unwrap_or_default() {
        "Number" => "a number",
        "String" => "a text",
        "Bool" => "true/false",
        "Function" => "a function",
        _ => "a missing value",
    }
}

/// gtmpl's render errors carry no position: find the first line of the template that
/// contains a distinctive word of the message (a function or field name, a quoted text).
fn guess_line(text: &str, msg: &str) -> Option<usize> {
    let mut candidates: Vec<String> = Vec::new();
    // quoted parts first (messages of `required` / `fail` appear verbatim in the template)
    for part in msg.split('"').skip(1).step_by(2) {
        if part.len() >= 3 {
            candidates.push(part.to_string());
        }
    }
    let words: Vec<&str> = msg
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| w.len() >= 3)
        .collect();
    const COMMON: &[&str] = &[
        "template",
        "function",
        "defined",
        "argument",
        "arguments",
        "requires",
        "least",
        "exactly",
        "unable",
        "convert",
        "value",
        "from",
        "the",
        "for",
        "not",
        "and",
        "with",
        "error",
        "evaluating",
        "pipe",
        "field",
        "only",
        "maps",
        "objects",
        "have",
        "fields",
        "cannot",
        "invalid",
        "range",
        "variable",
        "found",
        "number",
        "string",
        "expected",
    ];
    for w in words {
        if !COMMON.contains(&w.to_ascii_lowercase().as_str()) {
            candidates.push(w.trim_matches('.').to_string());
        }
    }
    for c in candidates.iter().filter(|c| !c.is_empty()) {
        for (i, line) in text.lines().enumerate() {
            if line.contains("{{") && line.contains(c.as_str()) {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The line of the first action that prints a field chain (`.a.b`) absent from `data`.
/// Actions that only test a value (`if`, `with`, `range`, `default`) are skipped.
fn missing_value_line(text: &str, data: &serde_json::Value) -> Option<usize> {
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let end = after.find("}}").unwrap_or(after.len());
            let action = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
            rest = &after[end..];
            let first = action.split_whitespace().next().unwrap_or_default();
            if matches!(
                first,
                "if" | "with" | "range" | "else" | "end" | "define" | "template" | "block"
            ) || action.contains("default")
                || action.contains("required")
                || action.starts_with("/*")
            {
                continue;
            }
            for token in action.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
                if token.starts_with('.') && token.len() > 1 && !lookup(data, token) {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

fn lookup(data: &serde_json::Value, chain: &str) -> bool {
    let mut cur = data;
    for key in chain.trim_start_matches('.').split('.') {
        match cur.get(key) {
            Some(v) => cur = v,
            None => return false,
        }
    }
    !cur.is_null()
}

/// serde_json -> gtmpl (objects become maps: a missing key reads as "no value", as in Go).
pub fn to_gtmpl(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_gtmpl).collect()),
        serde_json::Value::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), to_gtmpl(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// gtmpl -> serde_json (maps with sorted keys, so `toJson` output is stable).
pub fn from_gtmpl(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => number_json(n),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(from_gtmpl).collect()),
        Value::Object(m) | Value::Map(m) => {
            let sorted: std::collections::BTreeMap<_, _> =
                m.iter().map(|(k, v)| (k.clone(), from_gtmpl(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
    }
}

fn number_json(n: &Number) -> serde_json::Value {
    if let Some(i) = n.as_i64() {
        serde_json::Value::from(i)
    } else if let Some(u) = n.as_u64() {
        serde_json::Value::from(u)
    } else {
        n.as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}
