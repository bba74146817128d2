//! Durations as Iter8 (Go) writes them: `500ms`, `10s`, `1m30s`, `1.5h`, `250us`, `0`.
//! A bare number is taken as seconds (Iter8's chart accepted both).

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::limits::{check_duration_secs, MAX_DURATION};

/// A duration that reads and writes Go-style strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

/// Parse a Go duration string. The error says what is accepted.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let bad = || {
        format!(
            "invalid duration {input:?}: use a number with a unit (ns, us, ms, s, m, h), e.g. \"500ms\", \"10s\", \"1m30s\""
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return in_range(input, secs);
        }
        return Err(bad());
    }
    if s.starts_with('-') {
        return Err(format!(
            "invalid duration {input:?}: a duration cannot be negative"
        ));
    }
    let mut total = 0f64;
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * factor;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() {
        return Err(bad());
    }
    in_range(input, total)
}

/// `secs` as a Duration, when it is at most [`MAX_DURATION`] (Rust's `Duration` and the
/// clocks overflow far above it).
fn in_range(input: &str, secs: f64) -> Result<Duration, String> {
    check_duration_secs(secs).map_err(|_| {
        format!(
            "invalid duration {input:?}: too long; use at most {} (about 11 years)",
            format_duration(MAX_DURATION)
        )
    })
}

/// Format a duration the way Go does for whole units (`1m30s`, `500ms`, `2h0m0s` -> `2h`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return trim_float(nanos as f64 / 1e3, "us");
    }
    if nanos < 1_000_000_000 {
        return trim_float(nanos as f64 / 1e6, "ms");
    }
    let secs = d.as_secs_f64();
    let h = (secs / 3600.0).floor();
    let m = ((secs - h * 3600.0) / 60.0).floor();
    let s = secs - h * 3600.0 - m * 60.0;
    let mut out = String::new();
    if h > 0.0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0.0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0.0 {
        out.push_str(&trim_float(s, "s"));
    }
    out
}

fn trim_float(v: f64, unit: &str) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for GoDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(GoDuration)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Num(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Str(s) => parse_duration(&s)
                .map(GoDuration)
                .map_err(serde::de::Error::custom),
            Raw::Num(n) if n.is_finite() && n >= 0.0 => in_range(&n.to_string(), n)
                .map(GoDuration)
                .map_err(serde::de::Error::custom),
            Raw::Num(n) => Err(serde::de::Error::custom(format!(
                "invalid duration {n}: a duration cannot be negative"
            ))),
        }
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GoDuration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: a number with a unit (ns, us, ms, s, m, h), e.g. \"500ms\", \"10s\", \"1m30s\"; a bare number is seconds.",
            "type": ["string", "number"],
            "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^[0-9]+(\\.[0-9]+)?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "10", "ten seconds", "10x", "-5s", "s", "1m30"] {
            if bad == "10" {
                continue;
            }
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("duration"), "{err}");
        }
    }

    #[test]
    fn durations_too_long_for_rust_are_errors_not_panics() {
        for s in ["1e19", "1e20", "1e300", "100001h", "18446744073709551616s"] {
            let e = parse_duration(s).expect_err(s);
            assert!(e.contains("too long; use at most 100000h"), "{e}");
        }
        assert_eq!(
            parse_duration("100000h"),
            Ok(Duration::from_secs(360_000_000))
        );
        for y in ["1e20", "\"1e19\"", "1.0e300"] {
            let e = serde_yaml::from_str::<GoDuration>(y).expect_err(y);
            assert!(e.to_string().contains("at most 100000h"), "{y}: {e}");
        }
    }

    #[test]
    fn formats_and_round_trips() {
        for s in ["10s", "500ms", "1m30s", "2h", "250us", "1.5s"] {
            let d = parse_duration(s).expect(s);
            assert_eq!(format_duration(d), s);
        }
        let g: GoDuration = serde_yaml::from_str("\"1m\"").expect("yaml");
        assert_eq!(g.0, Duration::from_secs(60));
        let g: GoDuration = serde_yaml::from_str("2.5").expect("yaml");
        assert_eq!(g.0, Duration::from_millis(2500));
        assert!(serde_yaml::from_str::<GoDuration>("\"soon\"").is_err());
    }
}
