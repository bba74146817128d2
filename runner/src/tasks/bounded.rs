//! User-supplied computations (Go templates of `custommetrics` and `notify`, jq expressions
//! of `custommetrics`) within budgets.
//!
//! - Before parsing: a size cap and a nesting cap on the text (both parsers recurse once
//!   per level, so a deep text would overflow the stack), and no recursion the evaluators
//!   cannot bound (a template that calls itself, a jq `def`, which is how jq recurses):
//!   a stack overflow aborts the process, so it must never start.
//! - While running: [`run_bounded`] evaluates on its own thread (with a large stack) under a
//!   deadline. The caller awaits the deadline, so the task's `timeout`, SIGTERM and the
//!   engine's stop all still work while a computation spins (`def f: f; f` is refused, but
//!   `last(repeat(1))` needs no `def`). A computation past its deadline is abandoned: its
//!   thread cannot be killed and runs on until the process exits, which the runner does
//!   when the experiment ends. In the runner, jq runs in a child process instead, with a
//!   memory limit, killed at the deadline (`isolated.rs`).
//! - The JSON a jq expression reads is nesting-capped too (its parser recurses).

use std::time::Duration;

/// Longest template text.
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;
/// Deepest nesting of blocks (`if`, `range`, `with`, `define`, `block`) and of parentheses
/// in a template.
pub const MAX_TEMPLATE_NESTING: usize = 64;
/// Longest jq expression.
pub const MAX_JQ_BYTES: usize = 64 << 10;
/// Deepest nesting of `(`, `[`, `{` and string interpolation in a jq expression.
pub const MAX_JQ_NESTING: usize = 64;
/// Deepest nesting of arrays and objects in a JSON document given to jq.
pub const MAX_JSON_NESTING: usize = 256;
/// Time budget of one template rendering or jq evaluation.
pub const COMPUTE_BUDGET: Duration = Duration::from_secs(10);
/// Stack of the evaluation thread: deep enough for every nesting the caps allow.
const STACK_BYTES: usize = 64 << 20;

/// Run `f` on its own thread; give up after `budget` (the thread is abandoned). `what`
/// names the computation in the error, e.g. `jq expression ".a"`.
pub async fn run_bounded<T, F>(what: &str, budget: Duration, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("iter8-eval".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("{what}: cannot start an evaluation thread: {e}"))?;
    match tokio::time::timeout(budget, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(format!("{what} crashed while evaluating")),
        Err(_) => Err(format!(
            "{what} did not finish within {}s (the time budget of a template or jq \
             evaluation); does it loop forever?",
            budget.as_secs_f64()
        )),
    }
}

/// Refuse a template that is too large, nested too deep, or calls itself (directly or
/// through other templates), before gtmpl parses it.
pub fn check_template(text: &str) -> Result<(), String> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "the template is {} bytes; at most {MAX_TEMPLATE_BYTES} are accepted",
            text.len()
        ));
    }
    // Open blocks: Some(name) for `define` / `block`, None for `if` / `range` / `with`.
    let mut blocks: Vec<Option<String>> = Vec::new();
    // (caller, callee): `template "callee"` inside `define "caller"` ("" at top level).
    let mut calls: Vec<(String, String)> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = action_end(after) else {
            break; // unclosed: gtmpl reports it
        };
        let action = after[..close]
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        rest = &after[close + 2..];
        if action.starts_with("/*") {
            continue;
        }
        let mut depth = 0usize;
        let mut in_str: Option<char> = None;
        let mut escaped = false;
        for c in action.chars() {
            match in_str {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q != '`' {
                        escaped = true;
                    } else if c == q {
                        in_str = None;
                    }
                }
                None => match c {
                    '"' | '`' | '\'' => in_str = Some(c),
                    '(' => {
                        depth += 1;
                        if depth > MAX_TEMPLATE_NESTING {
                            return Err(format!(
                                "parentheses nested more than {MAX_TEMPLATE_NESTING} deep"
                            ));
                        }
                    }
                    ')' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
        }
        let mut words = action.split_whitespace();
        let keyword = words.next().unwrap_or_default();
        let name = words
            .next()
            .map(|w| w.trim_matches(|c| c == '"' || c == '`').to_string());
        match keyword {
            "if" | "range" | "with" | "define" | "block" => {
                let current = blocks.iter().rev().flatten().next().cloned();
                if keyword == "block" {
                    if let Some(n) = &name {
                        calls.push((current.unwrap_or_default(), n.clone()));
                    }
                }
                blocks.push(match keyword {
                    "define" | "block" => Some(name.unwrap_or_default()),
                    _ => None,
                });
                if blocks.len() > MAX_TEMPLATE_NESTING {
                    return Err(format!(
                        "blocks (if, range, with, define) nested more than {MAX_TEMPLATE_NESTING} deep"
                    ));
                }
            }
            "end" => {
                blocks.pop();
            }
            "template" => {
                if let Some(n) = name {
                    let current = blocks.iter().rev().flatten().next().cloned();
                    calls.push((current.unwrap_or_default(), n));
                }
            }
            _ => {}
        }
    }
    if let Some(cycle) = find_cycle(&calls) {
        return Err(format!(
            "template {cycle:?} calls itself (through `template`); recursion is not \
             supported, it would never end"
        ));
    }
    Ok(())
}

/// Where an action's `}}` is (outside string literals).
fn action_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_str: Option<u8> = None;
    while i < b.len() {
        match in_str {
            Some(q) => {
                if b[i] == b'\\' && q != b'`' {
                    i += 1;
                } else if b[i] == q {
                    in_str = None;
                }
            }
            None => match b[i] {
                b'"' | b'`' => in_str = Some(b[i]),
                b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// A template name on a call cycle, if any.
fn find_cycle(calls: &[(String, String)]) -> Option<String> {
    let names: std::collections::BTreeSet<&str> = calls.iter().map(|(a, _)| a.as_str()).collect();
    for start in names {
        // Depth-first from `start`: does any path lead back to it?
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![start];
        while let Some(n) = todo.pop() {
            for (_, callee) in calls.iter().filter(|(c, _)| c == n) {
                if callee == start {
                    return Some(start.to_string());
                }
                if seen.insert(callee.as_str()) {
                    todo.push(callee);
                }
            }
        }
    }
    None
}

/// Refuse a jq expression that is too large, nested too deep, or defines functions (`def`:
/// how jq recurses, and a recursion overflows the stack), before jaq parses it.
pub fn check_jq(expr: &str) -> Result<(), String> {
    if expr.len() > MAX_JQ_BYTES {
        return Err(format!(
            "is {} bytes; at most {MAX_JQ_BYTES} are accepted",
            expr.len()
        ));
    }
    #[derive(PartialEq)]
    enum Frame {
        Str,
        Interp,
        Group,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if stack.last() == Some(&Frame::Str) {
            match c {
                b'\\' if b.get(i + 1) == Some(&b'(') => {
                    stack.push(Frame::Interp);
                    i += 1;
                }
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => stack.push(Frame::Str),
                b'(' | b'[' | b'{' => stack.push(Frame::Group),
                b')' | b']' | b'}' => {
                    stack.pop();
                }
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'd' if expr[i..].starts_with("def")
                    && (i == 0 || !is_ident(b[i - 1]))
                    && !b.get(i + 3).copied().is_some_and(is_ident) =>
                {
                    return Err(
                        "defines a function (`def`); definitions are not accepted (a \
                         recursive one never ends); write the filter inline"
                            .into(),
                    );
                }
                _ => {}
            }
        }
        if stack.len() > MAX_JQ_NESTING {
            return Err(format!(
                "is nested more than {MAX_JQ_NESTING} deep (parentheses, brackets, strings)"
            ));
        }
        i += 1;
    }
    Ok(())
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// Refuse JSON nested deeper than [`MAX_JSON_NESTING`] (strings are skipped).
pub fn check_json_nesting(json: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut i = 0;
    while i < json.len() {
        let c = json[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_JSON_NESTING {
                        return Err(format!(
                            "the JSON is nested more than {MAX_JSON_NESTING} deep"
                        ));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_that_recurse_or_nest_too_deep_are_refused() {
        let e = check_template(r#"{{define "a"}}{{template "a" .}}{{end}}{{template "a"}}"#)
            .expect_err("self");
        assert!(e.contains("template \"a\" calls itself"), "{e}");
        let e = check_template(
            r#"{{- define "a" -}}{{template "b"}}{{end}}{{define "b"}}{{ if 1 }}{{template "a"}}{{end}}{{end}}"#,
        )
        .expect_err("mutual");
        assert!(e.contains("calls itself"), "{e}");
        let e = check_template(r#"{{block "x" .}}{{template "x"}}{{end}}"#).expect_err("block");
        assert!(e.contains("calls itself"), "{e}");
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(check_template(&deep)
            .expect_err("parens")
            .contains("nested more than 64"));
        let blocks = "{{if 1}}".repeat(100_000);
        assert!(check_template(&blocks)
            .expect_err("blocks")
            .contains("nested more than 64"));
        // The shipped provider templates call a defined template many times: fine.
        for t in ["istio", "prometheus"] {
            let text = crate::tasks::custommetrics::builtin_template(t).expect("builtin");
            assert_eq!(check_template(text), Ok(()), "{t}");
        }
        assert_eq!(
            check_template(r#"{{ printf "}}{{template \"a\"}}" }} {{ "(((" }}"#),
            Ok(())
        );
    }

    #[test]
    fn jq_that_recurses_or_nests_too_deep_is_refused() {
        for ok in [
            ".data.result[0].value[1] | tonumber",
            r#"."def" | .undefined | "\(.a) def""#,
            "[.[] | select(.x > 1)] | length # def",
            "last(repeat(1))",
        ] {
            assert_eq!(check_jq(ok), Ok(()), "{ok}");
        }
        for bad in ["def f: f; f", "def f: 1 + f; f", r#""\(def f: f; f)""#] {
            assert!(check_jq(bad).expect_err(bad).contains("`def`"), "{bad}");
        }
        let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
        assert!(check_jq(&deep)
            .expect_err("deep")
            .contains("nested more than 64"));
        let long = ".a | ".repeat(20_000);
        assert!(check_jq(&long).expect_err("long").contains("at most 65536"));
        let deep_json = "[".repeat(100_000);
        assert!(check_json_nesting(deep_json.as_bytes()).is_err());
        assert_eq!(
            check_json_nesting(br#"{"a":"[[[[","b":[1,{"c":2}]}"#),
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_computation_past_its_budget_is_abandoned_not_awaited() {
        let r = run_bounded("spin", Duration::from_millis(50), || loop {
            std::thread::sleep(Duration::from_millis(10));
        })
        .await;
        let e: String = match r {
            Ok(()) => panic!("a spinning computation returned"),
            Err(e) => e,
        };
        assert!(e.contains("spin did not finish within 0.05s"), "{e}");
        assert_eq!(run_bounded("add", COMPUTE_BUDGET, || 1 + 1).await, Ok(2));
        let e = run_bounded("boom", COMPUTE_BUDGET, || -> u8 { panic!("boom") })
            .await
            .expect_err("panicked");
        assert!(e.contains("boom crashed"), "{e}");
    }
}
