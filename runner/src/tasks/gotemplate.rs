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
//! Differences from Go that template authors may meet: `range` over a missing value is an
//! error (give a default: `range (.labels | default (dict))`), and `range` over a map is
//! unordered (use `range $k := keys .m` for a sorted walk).
//!
//! Functions: the Go builtins (`eq ne lt le gt ge len and or not urlquery print println
//! printf index call`) plus `default empty coalesce required fail ternary quote squote
//! toJson toJSON toPrettyJson toString upper lower title trim trimAll trimPrefix trimSuffix
//! replace contains hasPrefix hasSuffix split join list dict hasKey keys get add add1 sub
//! mul div mod addf subf mulf divf max min int int64 float64 round b64enc b64dec indent nindent kindOf
//! typeOf`.

use std::collections::HashMap;

use base64::Engine as _;
use gtmpl::{Context, Func, FuncError, Template, Value};
use gtmpl_value::Number;

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

/// The Sprig functions (and aliases) added to every template.
const SPRIG: &[(&str, Func)] = &[
    ("urlquery", urlquery as Func),
    ("default", default as Func),
    ("empty", empty as Func),
    ("coalesce", coalesce as Func),
    ("required", required as Func),
    ("fail", fail as Func),
    ("ternary", ternary as Func),
    ("quote", quote as Func),
    ("squote", squote as Func),
    ("toJson", to_json as Func),
    ("toJSON", to_json as Func),
    ("toPrettyJson", to_pretty_json as Func),
    ("toString", to_string as Func),
    ("upper", upper as Func),
    ("lower", lower as Func),
    ("title", title as Func),
    ("trim", trim as Func),
    ("trimAll", trim_all as Func),
    ("trimPrefix", trim_prefix as Func),
    ("trimSuffix", trim_suffix as Func),
    ("replace", replace as Func),
    ("contains", contains as Func),
    ("hasPrefix", has_prefix as Func),
    ("hasSuffix", has_suffix as Func),
    ("split", split as Func),
    ("join", join as Func),
    ("list", list as Func),
    ("dict", dict as Func),
    ("hasKey", has_key as Func),
    ("keys", keys as Func),
    ("get", get as Func),
    ("add", add as Func),
    ("add1", add1 as Func),
    ("sub", sub as Func),
    ("mul", mul as Func),
    ("div", div as Func),
    ("mod", modulo as Func),
    ("addf", addf as Func),
    ("subf", subf as Func),
    ("mulf", mulf as Func),
    ("divf", divf as Func),
    ("max", max as Func),
    ("min", min as Func),
    ("int", int as Func),
    ("int64", int as Func),
    ("float64", float64 as Func),
    ("round", round as Func),
    ("b64enc", b64enc as Func),
    ("b64dec", b64dec as Func),
    ("indent", indent as Func),
    ("nindent", nindent as Func),
    ("kindOf", kind_of as Func),
    ("typeOf", kind_of as Func),
];

/// Parse and render `text` (named `name` in errors) over `data`.
pub fn render(name: &str, text: &str, data: &serde_json::Value) -> Result<String, TemplateError> {
    let mut tmpl = Template::with_name(name);
    tmpl.add_funcs(SPRIG);
    tmpl.parse(text).map_err(|e| parse_error(name, text, &e))?;
    let ctx = Context::from(to_gtmpl(data));
    let out = tmpl
        .render(&ctx)
        .map_err(|e| render_error(name, text, &e.to_string()))?;
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
            line: missing_value_line(text, data),
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
                    unclosed_action_line(text).unwrap_or(line)
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

/// The line of the last `{{` that has no `}}` after it.
fn unclosed_action_line(text: &str) -> Option<usize> {
    let open = text.rfind("{{")?;
    if text[open..].contains("}}") {
        return None;
    }
    Some(text[..open].matches('\n').count() + 1)
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

fn render_error(name: &str, text: &str, msg: &str) -> TemplateError {
    if msg.starts_with("invalid range") {
        // gtmpl (unlike Go) refuses to range over a missing value
        let line = text
            .lines()
            .position(|l| l.contains("range"))
            .map(|i| i + 1);
        return TemplateError::Render {
            name: name.to_string(),
            line,
            message: format!(
                "{msg}: range over a missing value; set it, or give a default, e.g. `range (.labels | default (dict))`"
            ),
        };
    }
    TemplateError::Render {
        name: name.to_string(),
        line: guess_line(text, msg),
        message: msg.to_string(),
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

// ---- helpers ---------------------------------------------------------------------------

fn err(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

fn exactly(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() != n {
        return Err(FuncError::ExactlyXArgs(name.to_string(), n));
    }
    Ok(())
}

fn at_least(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() < n {
        return Err(FuncError::AtLeastXArgs(name.to_string(), n));
    }
    Ok(())
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) | Value::Map(m) => m.is_empty(),
        Value::Number(n) => num_f64(n) == Some(0.0),
        Value::Function(_) => false,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::NoValue | Value::Nil => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Map(_) | Value::Object(_) => from_gtmpl(v).to_string(),
        other => other.to_string(),
    }
}

fn float(name: &str, v: &Value) -> Result<f64, FuncError> {
    match v {
        Value::Number(n) => num_f64(n).ok_or_else(|| err(format!("{name}: not a number: {v}"))),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| err(format!("{name}: not a number: {s:?}"))),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::NoValue | Value::Nil => Ok(0.0),
        _ => Err(err(format!("{name}: not a number: {v}"))),
    }
}

fn num_f64(n: &Number) -> Option<f64> {
    n.as_f64()
        .or_else(|| n.as_i64().map(|i| i as f64))
        .or_else(|| n.as_u64().map(|u| u as f64))
}

fn is_int(v: &Value) -> bool {
    matches!(v, Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some())
        || matches!(v, Value::String(s) if s.trim().parse::<i64>().is_ok())
        || matches!(v, Value::Bool(_) | Value::NoValue | Value::Nil)
}

fn num_result(all_int: bool, x: f64) -> Value {
    if all_int && x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn arith(name: &str, args: &[Value], op: fn(f64, f64) -> f64) -> Result<Value, FuncError> {
    at_least(name, args, 2)?;
    let all_int = args.iter().all(is_int);
    let mut acc = float(name, &args[0])?;
    for a in &args[1..] {
        acc = op(acc, float(name, a)?);
    }
    Ok(num_result(all_int, acc))
}

/// Go's `url.QueryEscape`: what `urlquery` and query parameters use.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `urlquery` (gtmpl's own does not escape `&`, `=` or `+`).
fn urlquery(args: &[Value]) -> Result<Value, FuncError> {
    let joined: Vec<String> = args.iter().map(text).collect();
    Ok(Value::String(query_escape(&joined.concat())))
}

// ---- Sprig functions -------------------------------------------------------------------

fn default(args: &[Value]) -> Result<Value, FuncError> {
    at_least("default", args, 1)?;
    match args.get(1) {
        Some(v) if !is_empty(v) => Ok(v.clone()),
        _ => Ok(args[0].clone()),
    }
}

fn empty(args: &[Value]) -> Result<Value, FuncError> {
    exactly("empty", args, 1)?;
    Ok(Value::Bool(is_empty(&args[0])))
}

fn coalesce(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args
        .iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

fn required(args: &[Value]) -> Result<Value, FuncError> {
    exactly("required", args, 2)?;
    match &args[1] {
        Value::NoValue | Value::Nil => Err(err(format!("required: \"{}\"", text(&args[0])))),
        v => Ok(v.clone()),
    }
}

fn fail(args: &[Value]) -> Result<Value, FuncError> {
    exactly("fail", args, 1)?;
    Err(err(format!("fail: \"{}\"", text(&args[0]))))
}

fn ternary(args: &[Value]) -> Result<Value, FuncError> {
    exactly("ternary", args, 3)?;
    Ok(if !is_empty(&args[2]) {
        args[0].clone()
    } else {
        args[1].clone()
    })
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|v| !matches!(v, Value::NoValue | Value::Nil))
        .map(|v| serde_json::Value::String(text(v)).to_string())
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

fn squote(args: &[Value]) -> Result<Value, FuncError> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|v| !matches!(v, Value::NoValue | Value::Nil))
        .map(|v| format!("'{}'", text(v)))
        .collect();
    Ok(Value::String(quoted.join(" ")))
}

fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toJson", args, 1)?;
    Ok(Value::String(from_gtmpl(&args[0]).to_string()))
}

fn to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toPrettyJson", args, 1)?;
    serde_json::to_string_pretty(&from_gtmpl(&args[0]))
        .map(Value::String)
        .map_err(|e| err(format!("toPrettyJson: {e}")))
}

fn to_string(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toString", args, 1)?;
    Ok(Value::String(text(&args[0])))
}

fn str_fn(name: &str, args: &[Value], f: fn(&str) -> String) -> Result<Value, FuncError> {
    exactly(name, args, 1)?;
    Ok(Value::String(f(&text(&args[0]))))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    str_fn("upper", args, |s| s.to_uppercase())
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    str_fn("lower", args, |s| s.to_lowercase())
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    str_fn("title", args, |s| {
        s.split(' ')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn trim(args: &[Value]) -> Result<Value, FuncError> {
    str_fn("trim", args, |s| s.trim().to_string())
}

fn trim_all(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimAll", args, 2)?;
    let cut: Vec<char> = text(&args[0]).chars().collect();
    Ok(Value::String(
        text(&args[1]).trim_matches(cut.as_slice()).to_string(),
    ))
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimPrefix", args, 2)?;
    let (p, s) = (text(&args[0]), text(&args[1]));
    Ok(Value::String(s.strip_prefix(&p).unwrap_or(&s).to_string()))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimSuffix", args, 2)?;
    let (p, s) = (text(&args[0]), text(&args[1]));
    Ok(Value::String(s.strip_suffix(&p).unwrap_or(&s).to_string()))
}

fn replace(args: &[Value]) -> Result<Value, FuncError> {
    exactly("replace", args, 3)?;
    Ok(Value::String(
        text(&args[2]).replace(&text(&args[0]), &text(&args[1])),
    ))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    exactly("contains", args, 2)?;
    Ok(Value::Bool(text(&args[1]).contains(&text(&args[0]))))
}

fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasPrefix", args, 2)?;
    Ok(Value::Bool(text(&args[1]).starts_with(&text(&args[0]))))
}

fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasSuffix", args, 2)?;
    Ok(Value::Bool(text(&args[1]).ends_with(&text(&args[0]))))
}

/// Sprig's `split` returns a dict `_0`, `_1`, ...; `splitList` a list. We return the dict.
fn split(args: &[Value]) -> Result<Value, FuncError> {
    exactly("split", args, 2)?;
    let sep = text(&args[0]);
    let s = text(&args[1]);
    Ok(Value::Map(
        s.split(sep.as_str())
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::String(p.to_string())))
            .collect(),
    ))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    exactly("join", args, 2)?;
    let sep = text(&args[0]);
    match &args[1] {
        Value::Array(a) => Ok(Value::String(
            a.iter().map(text).collect::<Vec<_>>().join(&sep),
        )),
        v => Ok(Value::String(text(v))),
    }
}

fn list(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(args.to_vec()))
}

fn dict(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() % 2 != 0 {
        return Err(err(
            "dict: needs key/value pairs (an even number of arguments)",
        ));
    }
    Ok(Value::Map(
        args.chunks(2)
            .map(|kv| (text(&kv[0]), kv[1].clone()))
            .collect(),
    ))
}

fn has_key(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasKey", args, 2)?;
    match &args[0] {
        Value::Map(m) | Value::Object(m) => Ok(Value::Bool(m.contains_key(&text(&args[1])))),
        _ => Ok(Value::Bool(false)),
    }
}

fn keys(args: &[Value]) -> Result<Value, FuncError> {
    let mut out: Vec<String> = Vec::new();
    for a in args {
        if let Value::Map(m) | Value::Object(m) = a {
            out.extend(m.keys().cloned());
        }
    }
    out.sort();
    Ok(Value::Array(out.into_iter().map(Value::String).collect()))
}

fn get(args: &[Value]) -> Result<Value, FuncError> {
    exactly("get", args, 2)?;
    match &args[0] {
        Value::Map(m) | Value::Object(m) => Ok(m
            .get(&text(&args[1]))
            .cloned()
            .unwrap_or(Value::String(String::new()))),
        _ => Ok(Value::String(String::new())),
    }
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    arith("add", args, |a, b| a + b)
}

fn add1(args: &[Value]) -> Result<Value, FuncError> {
    exactly("add1", args, 1)?;
    Ok(num_result(is_int(&args[0]), float("add1", &args[0])? + 1.0))
}

fn sub(args: &[Value]) -> Result<Value, FuncError> {
    arith("sub", args, |a, b| a - b)
}

fn mul(args: &[Value]) -> Result<Value, FuncError> {
    arith("mul", args, |a, b| a * b)
}

fn div(args: &[Value]) -> Result<Value, FuncError> {
    exactly("div", args, 2)?;
    let (a, b) = (float("div", &args[0])?, float("div", &args[1])?);
    if b == 0.0 {
        return Err(err("div: division by zero"));
    }
    if is_int(&args[0]) && is_int(&args[1]) {
        Ok(Value::from((a / b).trunc() as i64))
    } else {
        Ok(Value::from(a / b))
    }
}

fn addf(args: &[Value]) -> Result<Value, FuncError> {
    arith("addf", args, |a, b| a + b).map(|v| Value::from(float("addf", &v).unwrap_or(0.0)))
}

fn subf(args: &[Value]) -> Result<Value, FuncError> {
    arith("subf", args, |a, b| a - b).map(|v| Value::from(float("subf", &v).unwrap_or(0.0)))
}

fn mulf(args: &[Value]) -> Result<Value, FuncError> {
    arith("mulf", args, |a, b| a * b).map(|v| Value::from(float("mulf", &v).unwrap_or(0.0)))
}

/// Float division (Sprig's `divf`): `divf 99.9 100` is 0.999.
fn divf(args: &[Value]) -> Result<Value, FuncError> {
    exactly("divf", args, 2)?;
    let (a, b) = (float("divf", &args[0])?, float("divf", &args[1])?);
    if b == 0.0 {
        return Err(err("divf: division by zero"));
    }
    Ok(Value::from(a / b))
}

fn modulo(args: &[Value]) -> Result<Value, FuncError> {
    exactly("mod", args, 2)?;
    let (a, b) = (float("mod", &args[0])?, float("mod", &args[1])?);
    if b == 0.0 {
        return Err(err("mod: division by zero"));
    }
    Ok(num_result(true, (a % b).trunc()))
}

fn max(args: &[Value]) -> Result<Value, FuncError> {
    arith("max", args, f64::max)
}

fn min(args: &[Value]) -> Result<Value, FuncError> {
    arith("min", args, f64::min)
}

fn int(args: &[Value]) -> Result<Value, FuncError> {
    exactly("int", args, 1)?;
    Ok(Value::from(float("int", &args[0])?.trunc() as i64))
}

fn float64(args: &[Value]) -> Result<Value, FuncError> {
    exactly("float64", args, 1)?;
    Ok(Value::from(float("float64", &args[0])?))
}

fn round(args: &[Value]) -> Result<Value, FuncError> {
    at_least("round", args, 2)?;
    let x = float("round", &args[0])?;
    let places = float("round", &args[1])? as i32;
    let f = 10f64.powi(places);
    Ok(Value::from((x * f).round() / f))
}

fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    exactly("b64enc", args, 1)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(text(&args[0])),
    ))
}

fn b64dec(args: &[Value]) -> Result<Value, FuncError> {
    exactly("b64dec", args, 1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text(&args[0]))
        .map_err(|e| err(format!("b64dec: {e}")))?;
    Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
}

fn indent_text(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    s.split('\n')
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    exactly("indent", args, 2)?;
    let n = float("indent", &args[0])?.max(0.0) as usize;
    Ok(Value::String(indent_text(n, &text(&args[1]))))
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    exactly("nindent", args, 2)?;
    let n = float("nindent", &args[0])?.max(0.0) as usize;
    Ok(Value::String(format!(
        "\n{}",
        indent_text(n, &text(&args[1]))
    )))
}

fn kind_of(args: &[Value]) -> Result<Value, FuncError> {
    exactly("kindOf", args, 1)?;
    let kind = match &args[0] {
        Value::NoValue | Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Map(_) | Value::Object(_) => "map",
        Value::Function(_) => "func",
        Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => "int",
        Value::Number(_) => "float64",
    };
    Ok(Value::String(kind.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, d: serde_json::Value) -> Result<String, TemplateError> {
        render("t", t, &d)
    }

    #[test]
    fn sprig_functions_behave_as_in_helm() {
        let d = json!({"a": "x", "n": 3, "labels": {"app": "web"}, "l": ["p", "q"]});
        assert_eq!(
            r(r#"{{ .missing | default "d" }}"#, d.clone()).unwrap(),
            "d"
        );
        assert_eq!(r(r#"{{ .a | default "d" }}"#, d.clone()).unwrap(), "x");
        assert_eq!(r(r#"{{ .a | quote }}"#, d.clone()).unwrap(), "\"x\"");
        assert_eq!(r(r#"{{ .a | upper }}"#, d.clone()).unwrap(), "X");
        assert_eq!(r(r#"{{ join "," .l }}"#, d.clone()).unwrap(), "p,q");
        assert_eq!(r(r#"{{ add .n 2 }}"#, d.clone()).unwrap(), "5");
        assert_eq!(r(r#"{{ div 7 2 }}"#, d.clone()).unwrap(), "3");
        assert_eq!(r(r#"{{ mul .n 1.5 }}"#, d.clone()).unwrap(), "4.5");
        assert_eq!(r(r#"{{ divf 50 100 }}"#, d.clone()).unwrap(), "0.5");
        assert_eq!(
            r(r#"{{ divf 99.9 100 }}"#, d.clone()).unwrap(),
            "0.9990000000000001"
        );
        assert_eq!(r(r#"{{ max .n 10 }}"#, d.clone()).unwrap(), "10");
        assert_eq!(
            r(r#"{{ replace "a" "b" "banana" }}"#, d.clone()).unwrap(),
            "bbnbnb"
        );
        assert_eq!(
            r(r#"{{ toJson .labels }}"#, d.clone()).unwrap(),
            r#"{"app":"web"}"#
        );
        assert_eq!(
            r(r#"{{ toJson (dict "k" (list 1 "two")) }}"#, d.clone()).unwrap(),
            r#"{"k":[1,"two"]}"#
        );
        assert_eq!(r(r#"{{ "a b" | b64enc }}"#, d.clone()).unwrap(), "YSBi");
        assert_eq!(
            r(r#"{{ printf "%d-%s" .n .a }}"#, d.clone()).unwrap(),
            "3-x"
        );
        assert_eq!(
            r(r#"{{ "a b&c" | urlquery }}"#, d.clone()).unwrap(),
            "a+b%26c"
        );
        assert_eq!(r(r#"{{ kindOf .labels }}"#, d.clone()).unwrap(), "map");
        assert_eq!(r(r#"{{ float64 "1.5" }}"#, d.clone()).unwrap(), "1.5");
        assert_eq!(r(r#"{{ int 2.7 }}"#, d.clone()).unwrap(), "2");
        assert_eq!(r(r#"{{ trim "  z " }}"#, d.clone()).unwrap(), "z");
        assert_eq!(
            r(
                "{{- range $k, $v := .labels }}{{ $k }}={{ $v }}{{ end }}",
                d.clone()
            )
            .unwrap(),
            "app=web"
        );
    }

    #[test]
    fn iter8_style_templates_with_define_and_fail() {
        let t = r#"{{- define "labels" }}
{{- range $key, $val := .labels }}
{{- if or (eq (kindOf $val) "slice") (eq (kindOf $val) "map") }}
{{- fail (printf "labels should be primitive but %s is not" $key) }}
{{- end }}{{ $key }}="{{ $val }}",
{{- end }}
{{- end -}}
q: sum(m{ {{- template "labels" . }}}[{{ .elapsedTimeSeconds }}s])"#;
        let out = r(
            t,
            json!({"labels": {"app": "web"}, "elapsedTimeSeconds": 5}),
        )
        .unwrap();
        assert_eq!(out, "q: sum(m{app=\"web\",}[5s])");
        let e = r(
            t,
            json!({"labels": {"app": ["x"]}, "elapsedTimeSeconds": 5}),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("labels should be primitive but app is not"),
            "{msg}"
        );
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn syntax_errors_name_template_and_line() {
        let e = r("a: 1\nb: {{ .x \n", json!({})).unwrap_err();
        assert!(
            matches!(e, TemplateError::Parse { line: Some(2), .. }),
            "{e}"
        );
        let e = r("a: 1\nb: 2\nc: {{ nosuchfn .x }}\n", json!({})).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("\"t\" line 3"), "{msg}");
        assert!(msg.contains("nosuchfn"), "{msg}");
    }

    #[test]
    fn missing_value_is_an_error_with_its_line() {
        let e = r("a: 1\nb: {{ .x }}\n", json!({"y": 1})).unwrap_err();
        assert_eq!(
            e,
            TemplateError::MissingValue {
                name: "t".into(),
                line: Some(2),
                snippet: "b: <no value>".into()
            }
        );
        let e = r(
            "a: 1\n\nq: {{ required \"set labels\" .labels }}\n",
            json!({}),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("line 3") && msg.contains("set labels"),
            "{msg}"
        );
    }
}
