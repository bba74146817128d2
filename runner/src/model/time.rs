//! Times as Iter8 users write them: RFC 3339 (`2024-05-01T12:00:00Z`), and the Go layouts
//! Iter8's templates, docs and stored results use: Go's `time.Time` text
//! (`2024-05-01 12:00:00.5 +0000 UTC`), `Jan 2, 2006 at 3:04pm (MST)`, RFC 1123
//! (`Mon, 02 Jan 2006 15:04:05 MST`) and a date-time without zone (`2024-05-01 12:00:00`,
//! UTC).
//!
//! Zone abbreviations: `UTC`, `GMT`, `Z` and the North-American ones (`EST`, `EDT`, `CST`,
//! `CDT`, `MST`, `MDT`, `PST`, `PDT`) have their offsets; any other abbreviation counts as
//! UTC, as Go's `time.Parse` treats an abbreviation it does not know.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

/// The formats [`parse_time`] accepts, for messages.
pub const TIME_FORMATS: &str =
    "RFC 3339 (2024-05-01T12:00:00Z), \"2024-05-01 12:00:00 +0000 UTC\", \
\"May 1, 2024 at 12:00pm (UTC)\", RFC 1123 (\"Wed, 01 May 2024 12:00:00 UTC\") or \
\"2024-05-01 12:00:00\" (UTC)";

/// Parse a time in one of the accepted formats; the error says which are accepted.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // Go's time.Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST" (the abbreviation
    // is optional; a monotonic clock suffix "m=+0.1" is dropped)
    let go = s.split(" m=").next().unwrap_or(s);
    for f in ["%Y-%m-%d %H:%M:%S%.f %z", "%Y-%m-%d %H:%M:%S %z"] {
        let without_abbrev = strip_trailing_word(go);
        for candidate in [go, without_abbrev] {
            if let Ok(t) = DateTime::parse_from_str(candidate, f) {
                return Ok(t.with_timezone(&Utc));
            }
        }
    }
    // "Jan 2, 2006 at 3:04pm (MST)" and RFC 1123 with an abbreviation
    if let Some((naive, zone)) = split_zone(s) {
        for f in [
            "%b %d, %Y at %I:%M%p",
            "%a, %d %b %Y %H:%M:%S",
            "%b %d, %Y %I:%M%p",
        ] {
            if let Ok(n) = NaiveDateTime::parse_from_str(naive, f) {
                return Ok(in_zone(n, zone));
            }
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(Utc.from_utc_datetime(&n));
        }
    }
    Err(format!(
        "{text:?} is not a time in a known format; use {TIME_FORMATS}"
    ))
}

/// `"... MST"` -> `"..."` (a trailing alphabetic word), else the text itself.
fn strip_trailing_word(s: &str) -> &str {
    match s.rsplit_once(' ') {
        Some((head, last)) if last.chars().all(|c| c.is_ascii_alphabetic()) => head,
        _ => s,
    }
}

/// `"Jan 2, 2006 at 3:04pm (MST)"` -> (`"Jan 2, 2006 at 3:04pm"`, `"MST"`);
/// `"Mon, 02 Jan 2006 15:04:05 MST"` -> (..., `"MST"`).
fn split_zone(s: &str) -> Option<(&str, &str)> {
    if let Some(open) = s.rfind(" (") {
        let zone = s[open + 2..].strip_suffix(')')?;
        return Some((&s[..open], zone));
    }
    let (head, zone) = s.rsplit_once(' ')?;
    zone.chars()
        .all(|c| c.is_ascii_alphabetic())
        .then_some((head, zone))
}

fn in_zone(n: NaiveDateTime, zone: &str) -> DateTime<Utc> {
    let hours = match zone.to_ascii_uppercase().as_str() {
        "EST" | "CDT" => -5,
        "EDT" => -4,
        "CST" => -6,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        _ => 0,
    };
    match FixedOffset::east_opt(hours * 3600).and_then(|o| o.from_local_datetime(&n).single()) {
        Some(t) => t.with_timezone(&Utc),
        None => Utc.from_utc_datetime(&n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn iter8_time_formats() {
        let cases = [
            ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
            (
                "2022-03-16T10:22:58.540897-04:00",
                "2022-03-16T14:22:58.540897Z",
            ),
            ("Jan 2, 2006 at 3:04pm (MST)", "2006-01-02T22:04:00Z"),
            ("Feb 3, 2013 at 7:54pm (UTC)", "2013-02-03T19:54:00Z"),
            ("Feb 3, 2013 at 11:05am (XYZ)", "2013-02-03T11:05:00Z"),
            ("Mon, 02 Jan 2006 15:04:05 PST", "2006-01-02T23:04:05Z"),
            ("Mon, 02 Jan 2006 15:04:05 +0100", "2006-01-02T14:04:05Z"),
            ("2024-05-01 12:00:00.5 +0000 UTC", "2024-05-01T12:00:00.5Z"),
            (
                "2024-05-01 12:00:00 +0200 CEST m=+0.000012",
                "2024-05-01T10:00:00Z",
            ),
            ("2024-05-01 12:00:00", "2024-05-01T12:00:00Z"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_time(text), Ok(utc(want)), "{text}");
        }
        let e = parse_time("1652935205").unwrap_err();
        assert!(e.contains("not a time in a known format"), "{e}");
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
