//! A pre-scan of a template's actions, as Go's lexer reads them, for the mistakes Go refuses
//! too (an action, string, raw string, character constant or comment left open; an escape
//! Go's `strconv.Unquote` does not know), so each is refused before parsing with the line where
//! it starts and the fix. The template engine (gtmpl, vendored and patched in `vendor/gtmpl`
//! where our fuzz targets found it panicking or hanging) refuses them as well, but names the
//! line where it gave up, often the last one.

/// Why a template is refused, and the line (1-based) where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub line: usize,
    pub message: String,
}

/// Walk `text`'s actions as Go's lexer does; the first mistake found, with its line.
pub fn check(text: &str) -> Result<(), ScanError> {
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
                    // Quoted: `\` escapes the character after it; a newline or the end is an
                    // error.
                    let what = if c == '"' {
                        "quoted string"
                    } else {
                        "character constant"
                    };
                    let unterminated = || {
                        fail(k, format!("unterminated {what} (a {c} without its closing {c} on the same line)"))
                    };
                    let end = loop {
                        match chars.next() {
                            None | Some((_, '\n')) => return unterminated(),
                            Some((_, '\\')) => {
                                if matches!(chars.next(), None | Some((_, '\n'))) {
                                    return unterminated();
                                }
                            }
                            Some((e, q)) if q == c => break e,
                            Some(_) => {}
                        }
                    };
                    if let Err(m) = check_escapes(&text[k + 1..end], c) {
                        return fail(k, format!("{what} {}: {m}", &text[k..=end]));
                    }
                }
                '`' if !chars.any(|(_, q)| q == '`') => {
                    return fail(
                        k,
                        "unterminated raw string (a ` without its closing `)".into(),
                    );
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The escapes Go's `strconv.Unquote` accepts in a string or character constant quoted by
/// `quote` (gtmpl 0.7.1 looped forever on some others, e.g. `"\u"`, found by fuzzing).
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
