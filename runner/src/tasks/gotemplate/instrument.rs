//! Go `text/template` behaviour that gtmpl lacks, obtained by rewriting the template text
//! before gtmpl parses it (the user's text is parsed as written first, so syntax errors
//! keep their own lines):
//!
//! - Lines: every action is preceded by a marker action `{{__iter8_at N}}` (with the same
//!   left trim, so whitespace trimming is unchanged) that records line N as the line being
//!   executed and prints a private-use marker, removed from the output afterwards. A render
//!   error names the line of the action that failed (gtmpl's errors carry no position), and
//!   a `<no value>` in the output is attributed to the action that printed it, also inside
//!   `define`d templates.
//! - `range` over a missing (nil) value runs zero times, as in Go (gtmpl refuses it):
//!   `range PIPE` becomes `range __iter8_items (PIPE)`.

use std::cell::Cell;

use gtmpl::{FuncError, Value};

/// The marker function and the range wrapper.
pub(super) const AT: &str = "__iter8_at";
pub(super) const ITEMS: &str = "__iter8_items";

/// Markers in the output: OPEN line CLOSE (Unicode private-use characters).
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

thread_local! {
    static LAST_LINE: Cell<usize> = const { Cell::new(0) };
}

/// Forget the line of a previous render (rendering is synchronous, per thread).
pub(super) fn reset() {
    LAST_LINE.with(|l| l.set(0));
}

/// The line of the last action started on this thread, if any.
pub(super) fn last_line() -> Option<usize> {
    Some(LAST_LINE.with(Cell::get)).filter(|l| *l > 0)
}

/// `__iter8_at N`: record N, print a marker.
pub(super) fn at(args: &[Value]) -> Result<Value, FuncError> {
    let line = match args.first() {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        _ => 0,
    };
    LAST_LINE.with(|l| l.set(line));
    Ok(Value::String(format!("{OPEN}{line}{CLOSE}")))
}

/// `__iter8_items V`: V, or an empty list when V is missing (Go ranges zero times).
pub(super) fn items(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        None | Some(Value::Nil) | Some(Value::NoValue) => Ok(Value::Array(Vec::new())),
        Some(v) => Ok(v.clone()),
    }
}

/// Remove the markers; also return the line of the action that printed the first
/// `<no value>`, if any.
pub(super) fn strip(out: &str) -> (String, Option<usize>) {
    let mut clean = String::with_capacity(out.len());
    let mut line = None;
    let mut missing_at = None;
    let mut rest = out;
    while let Some(i) = rest.find(OPEN) {
        let before = &rest[..i];
        if missing_at.is_none() && before.contains("<no value>") {
            missing_at = line;
        }
        clean.push_str(before);
        let after = &rest[i + OPEN.len_utf8()..];
        let Some(j) = after.find(CLOSE) else {
            rest = after;
            break;
        };
        line = after[..j].parse().ok();
        rest = &after[j + CLOSE.len_utf8()..];
    }
    if missing_at.is_none() && rest.contains("<no value>") {
        missing_at = line;
    }
    clean.push_str(rest);
    (clean, missing_at)
}

/// The template with a line marker before every action and `range` pipelines wrapped.
/// Comments are copied as they are.
pub(super) fn instrument(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut pos = 0;
    while let Some(off) = text[pos..].find("{{") {
        let start = pos + off;
        out.push_str(&text[pos..start]);
        let line = text[..start].matches('\n').count() + 1;
        let body_start = start + 2;
        let trim = text[body_start..].starts_with("- ")
            || text[body_start..].starts_with("-\t")
            || text[body_start..].starts_with("-\n")
            || text[body_start..].starts_with("-\r");
        let inner_start = if trim { body_start + 2 } else { body_start };
        let Some(close) = action_end(text, inner_start) else {
            // Unclosed: leave the rest to the parser (it reports it).
            out.push_str(&text[start..]);
            return out;
        };
        let body = &text[body_start..close];
        let inner = body.trim_start_matches('-').trim_start();
        if !inner.starts_with("/*") {
            out.push_str(if trim { "{{- " } else { "{{" });
            out.push_str(&format!("{AT} {line}}}}}"));
        }
        out.push_str("{{");
        out.push_str(&rewrite_range(body));
        out.push_str("}}");
        pos = close + 2;
    }
    out.push_str(&text[pos..]);
    out
}

/// The offset of the `}}` that closes the action whose text starts at `from` (quoted
/// strings and comments skipped).
fn action_end(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    let comment = text[from..].trim_start().starts_with("/*");
    if comment {
        let end = text[from..].find("*/")? + from + 2;
        return text[end..].find("}}").map(|j| end + j);
    }
    while i + 1 < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
                i += 1;
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// `range [DECL :=] PIPE` -> `range [DECL :=] __iter8_items (PIPE)`; other actions as they
/// are. `body` is the action's text between the delimiters (trim markers included).
fn rewrite_range(body: &str) -> String {
    let lead_len = body.len() - body.trim_start_matches('-').trim_start().len();
    let (lead, rest) = body.split_at(lead_len);
    let Some(after) = rest.strip_prefix("range") else {
        return body.to_string();
    };
    if !after.starts_with(char::is_whitespace) {
        return body.to_string();
    }
    // Keep a right trim marker (` -`) outside the wrapped pipeline.
    let trimmed = after.trim_end();
    let (pipe_part, tail) = match trimmed.strip_suffix('-') {
        Some(p) if p.ends_with(char::is_whitespace) => (p, " -"),
        _ => (trimmed, ""),
    };
    let (decl, pipe) = match top_level_declare(pipe_part) {
        Some(i) => (&pipe_part[..i + 2], &pipe_part[i + 2..]),
        None => ("", pipe_part),
    };
    let pipe = pipe.trim();
    if pipe.is_empty() {
        return body.to_string();
    }
    format!("{lead}range{decl} {ITEMS} ({pipe}){tail}")
}

/// The offset of a `:=` outside quoted strings.
fn top_level_declare(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'"' | b'`' | b'\'' => return None,
            b':' if b[i + 1] == b'=' => return Some(i),
            _ => i += 1,
        }
    }
    None
}
