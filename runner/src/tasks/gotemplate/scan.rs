//! A pre-scan of a template's actions, as gtmpl's lexer will read them, for the texts gtmpl
//! itself cannot survive (all found by the fuzz targets, inputs kept in `fuzz/seeds/`):
//! - a lexing error inside an action (an action, string, raw string or character constant
//!   left open): gtmpl's parser can then wait forever on its lexer's channel (`{{ .x | f `,
//!   or a raw string that swallows every later `}}`);
//! - a multi-byte character in an action outside a quoted string: gtmpl's lexer steps back
//!   one byte, not one character, after peeking, and panics on its own thread.
//!
//! And one it cannot survive that Go reads fine, made safe instead of refused: a `{{- ` (trim
//! the text before) after a multi-byte character, with or without whitespace between (gtmpl
//! counts that character as one byte when trimming, and panics). [`prepare`] puts an empty
//! action `{{""}}` right after the character: the output and the line numbers are unchanged.
//!
//! Go reads such texts (an unclosed action is an error there too); here each is an error that
//! names the line and the fix before gtmpl sees the text.

/// Why a template is refused, and the line (1-based) where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub line: usize,
    pub message: String,
}

/// The empty action [`prepare`] inserts: it prints nothing.
const EMPTY_ACTION: &str = "{{\"\"}}";

/// `text` as gtmpl can read it (see the module's documentation), or why it is refused.
pub fn prepare(text: &str) -> Result<std::borrow::Cow<'_, str>, ScanError> {
    let at = scan(text)?;
    if at.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len() + at.len() * EMPTY_ACTION.len());
    let mut last = 0;
    for i in at {
        out.push_str(&text[last..i]);
        out.push_str(EMPTY_ACTION);
        last = i;
    }
    out.push_str(&text[last..]);
    Ok(std::borrow::Cow::Owned(out))
}

/// Scan `text` the way gtmpl's lexer walks it; the places where [`prepare`] inserts an empty
/// action.
pub fn scan(text: &str) -> Result<Vec<usize>, ScanError> {
    let mut inserts = Vec::new();
    let line_at = |pos: usize| text[..pos].matches('\n').count() + 1;
    let fail = |pos: usize, message: String| {
        Err(ScanError {
            line: line_at(pos),
            message,
        })
    };
    let mut pos = 0;
    while let Some(found) = text[pos..].find("{{") {
        let open = pos + found;
        let mut i = open + 2;
        // `{{- ` trims the text before; the marker is `-` followed by a space.
        if text[i..].starts_with("- ") {
            i += 2;
            let kept = text[pos..open].trim_end();
            if kept.chars().next_back().is_some_and(|c| !c.is_ascii()) {
                inserts.push(pos + kept.len());
            }
        }
        if text[i..].starts_with("/*") {
            let start = i + 2;
            let Some(end) = text[start..].find("*/") else {
                return fail(open, "unclosed comment: a `{{/*` without its `*/}}`".into());
            };
            pos = start + end + 2;
            continue;
        }
        let mut chars = text[i..].char_indices().map(|(k, c)| (i + k, c));
        loop {
            let Some((k, c)) = chars.next() else {
                return fail(open, "unclosed action: a `{{` without its `}}`".into());
            };
            match c {
                '}' if text[k..].starts_with("}}") => {
                    pos = k + 2;
                    break;
                }
                '"' | '\'' => {
                    // Quoted: `\` escapes the next character; a newline or the end is an error.
                    let what = if c == '"' {
                        "quoted string"
                    } else {
                        "character constant"
                    };
                    let mut escaped = false;
                    let end = loop {
                        match chars.next() {
                            None | Some((_, '\n')) => {
                                return fail(k, format!("unterminated {what} (a {c} without its closing {c} on the same line)"));
                            }
                            // gtmpl's lexer takes `\\\\` as escaping what follows, so in
                            // `"a\\\\"` it reads on past the closing quote (and its parser then
                            // waits forever: found by fuzzing).
                            Some((_, '\\')) if escaped => {
                                let close = chars.clone().next().is_some_and(|(_, n)| n == c);
                                if close {
                                    return fail(k, format!("a {what} ending in an escaped backslash (\\\\{c}) is not supported by the template engine; use a raw string `...` or printf \"%c\" 92"));
                                }
                                escaped = false;
                            }
                            Some((_, '\\')) => escaped = true,
                            Some((e, q)) if q == c && !escaped => break e,
                            Some(_) => escaped = false,
                        }
                    };
                    if let Err(m) = check_escapes(&text[k + 1..end], c) {
                        return fail(k, format!("{what} {}: {m}", &text[k..=end]));
                    }
                }
                '`' => {
                    let Some((e, _)) = chars.find(|(_, q)| *q == '`') else {
                        return fail(
                            k,
                            "unterminated raw string (a ` without its closing `)".into(),
                        );
                    };
                    // gtmpl unquotes raw strings too and slices past a final backslash (a
                    // panic, found by fuzzing).
                    if text[k + 1..e].ends_with('\\') {
                        return fail(k, "a raw string ending in a backslash is not supported by the template engine; end it with another character or use printf \"%c\" 92".into());
                    }
                }
                c if !c.is_ascii() => {
                    return fail(
                        k,
                        format!(
                            "the character {c:?} inside {{{{ }}}} (outside a quoted string) is \
                             not supported: write non-ASCII names as strings, e.g. \
                             {{{{ index . \"{c}\" }}}}"
                        ),
                    );
                }
                _ => {}
            }
        }
    }
    Ok(inserts)
}

/// The escapes Go's `strconv.Unquote` accepts in a string or character constant quoted by
/// `quote` (gtmpl loops forever on some others, e.g. `"\u"`, found by fuzzing).
fn check_escapes(body: &str, quote: char) -> Result<(), String> {
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            continue;
        }
        let Some(e) = chars.next() else {
            return Err("ends with a lone \\".into());
        };
        let digits = |n: usize, radix: u32, chars: &mut std::str::Chars<'_>| -> Option<u32> {
            let s: String = chars.by_ref().take(n).collect();
            (s.chars().count() == n)
                .then(|| u32::from_str_radix(&s, radix).ok())
                .flatten()
        };
        let ok = match e {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => true,
            q if q == quote => true,
            'x' => digits(2, 16, &mut chars).is_some(),
            'u' => digits(4, 16, &mut chars).is_some_and(|v| char::from_u32(v).is_some()),
            'U' => digits(8, 16, &mut chars).is_some_and(|v| char::from_u32(v).is_some()),
            '0'..='7' => {
                let rest = digits(2, 8, &mut chars);
                rest.is_some_and(|r| (e as u32 - '0' as u32) * 64 + r <= 255)
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "has an invalid escape \\{e}... (Go's escapes: \\n \\t \\\\ \\{quote} \\xFF \\u00e9 \\U0001F600 \\377)"
            ));
        }
    }
    Ok(())
}
