use gtmpl_value::Value;
use std::char;
use std::convert::TryFrom;

// Patched (iter8-rs): unquoting follows Go's strconv.Unquote and strconv.UnquoteChar, which
// Go's text/template uses. gtmpl's own version sliced past the end of a string ending in a
// backslash (a panic), looped forever on `"\u"`, processed escapes inside raw strings and
// joined `\u` surrogate halves Go refuses. Go strings may hold any bytes; a Rust String
// holds UTF-8 only, so `\x` or octal escapes that do not form UTF-8 are refused here.

/// The value of a character constant such as `'a'`, `'\n'` or `'\u263a'`.
pub fn unquote_char(s: &str, quote: char) -> Option<char> {
    let body = s.strip_prefix(quote)?.strip_suffix(quote)?;
    let (value, rest) = unquote_one(body, quote)?;
    if !rest.is_empty() {
        return None;
    }
    match value {
        Unquoted::Char(c) => Some(c),
        Unquoted::Byte(b) => Some(char::from(b)),
    }
}

/// The value of a string constant: interpreted (`"..."`) or raw (`` `...` ``).
pub fn unquote_str(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    if s.len() < 2 || !s.ends_with(quote) {
        return None;
    }
    let body = &s[1..s.len() - 1];
    match quote {
        '`' => {
            if body.contains('`') {
                return None;
            }
            Some(body.replace('\r', ""))
        }
        '"' => {
            if body.contains('\n') {
                return None;
            }
            let mut bytes = Vec::with_capacity(body.len());
            let mut rest = body;
            while !rest.is_empty() {
                let (value, tail) = unquote_one(rest, '"')?;
                match value {
                    Unquoted::Char(c) => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    Unquoted::Byte(b) => bytes.push(b),
                }
                rest = tail;
            }
            String::from_utf8(bytes).ok()
        }
        _ => None,
    }
}

enum Unquoted {
    Char(char),
    Byte(u8),
}

/// The first character or escape of `s` inside a constant quoted by `quote`, and the rest.
fn unquote_one(s: &str, quote: char) -> Option<(Unquoted, &str)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    if c == quote && (quote == '\'' || quote == '"') {
        return None;
    }
    if c != '\\' {
        return Some((Unquoted::Char(c), chars.as_str()));
    }
    let e = chars.next()?;
    let rest = chars.as_str();
    let simple = |c: char| Some((Unquoted::Char(c), rest));
    match e {
        'a' => simple('\u{0007}'),
        'b' => simple('\u{0008}'),
        'f' => simple('\u{000C}'),
        'n' => simple('\n'),
        'r' => simple('\r'),
        't' => simple('\t'),
        'v' => simple('\u{000B}'),
        '\\' => simple('\\'),
        '\'' | '"' if e == quote => simple(e),
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let digits = rest.get(..n)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let v = u32::from_str_radix(digits, 16).ok()?;
            let rest = &rest[n..];
            if e == 'x' {
                return Some((Unquoted::Byte(u8::try_from(v).ok()?), rest));
            }
            Some((Unquoted::Char(char::from_u32(v)?), rest))
        }
        '0'..='7' => {
            let digits = s.get(1..4)?;
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            let v = u32::from_str_radix(digits, 8).ok()?;
            Some((Unquoted::Byte(u8::try_from(v).ok()?), &s[4..]))
        }
        _ => None,
    }
}

/// Returns
pub fn is_true(val: &Value) -> bool {
    match *val {
        Value::Bool(ref b) => *b,
        Value::String(ref s) => !s.is_empty(),
        Value::Array(ref a) => !a.is_empty(),
        Value::Object(ref o) => !o.is_empty(),
        Value::Map(ref m) => !m.is_empty(),
        Value::Function(_) => true,
        Value::NoValue | Value::Nil => false,
        Value::Number(ref n) => n.as_u64().map(|u| u != 0).unwrap_or_else(|| true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_unquote_char() {
        assert_eq!(unquote_char("'→'", '\''), Some('→'));
        assert_eq!(unquote_char("'→←'", '\''), None);
        assert_eq!(unquote_char(r"'\xf0'", '\''), Some('\u{f0}'));
        assert_eq!(unquote_char(r"'\xf0\x9f'", '\''), None);
        assert_eq!(unquote_char(r"'\u263a'", '\''), Some('☺'));
        assert_eq!(unquote_char(r"'\uD83D'", '\''), None);
        assert_eq!(unquote_char(r"'\U0001F4A9'", '\''), Some('💩'));
        assert_eq!(unquote_char(r"'\U0001F4A'", '\''), None);
        assert_eq!(unquote_char(r"'\U0001F4A99'", '\''), None);
        assert_eq!(unquote_char(r"'\101'", '\''), Some('A'));
        assert_eq!(unquote_char(r"'\''", '\''), Some('\''));
        assert_eq!(unquote_char(r#"'\"'"#, '\''), None);
        assert_eq!(unquote_char(r"'\'", '\''), None);
        assert_eq!(unquote_char("'", '\''), None);
        assert_eq!(unquote_char("''", '\''), None);
    }

    #[test]
    fn test_unquote_str() {
        let s = r#""Fran & Freddie's Diner""#;
        assert_eq!(unquote_str(s), Some("Fran & Freddie's Diner".to_owned()));
        let s = r#""Fran & Freddie's Diner\t\u263a""#;
        assert_eq!(unquote_str(s), Some("Fran & Freddie's Diner\t☺".to_owned()));
        assert_eq!(unquote_str(r#""\xf0\x9f\x92\xa9""#), Some("💩".to_owned()));
        assert_eq!(unquote_str(r#""\xff""#), None);
        assert_eq!(unquote_str(r#""\\""#), Some("\\".to_owned()));
        assert_eq!(unquote_str(r#""a\\\\b""#), Some(r"a\\b".to_owned()));
        assert_eq!(unquote_str(r#""\u""#), None);
        assert_eq!(unquote_str(r#""\""#), None);
        assert_eq!(unquote_str(r#""\'""#), None);
        assert_eq!(unquote_str(r#""\"""#), Some("\"".to_owned()));
        assert_eq!(unquote_str("`a\\`"), Some("a\\".to_owned()));
        assert_eq!(unquote_str("`\\b\\n`"), Some("\\b\\n".to_owned()));
        assert_eq!(unquote_str("`a\r\nb`"), Some("a\nb".to_owned()));
        assert_eq!(unquote_str("\""), None);
        assert_eq!(unquote_str("`"), None);
        assert_eq!(unquote_str(""), None);
    }

    #[test]
    fn test_is_true() {
        let t = Value::from(1i8);
        assert!(is_true(&t));
        // Patched (iter8-rs): zero is false, as in Go (gtmpl's test said true; its code is right).
        let t = Value::from(0u32);
        assert!(!is_true(&t));
    }
}
