//! Metric naming: `<prefix>/<name>`, with the normalisations users expect.

/// Normalise a metric name as written by a user (SLOs, rewards, `if:` conditions) to the
/// name under which tasks store it.
///
/// - percentile suffixes drop trailing zeros: `http/latency-p99.90` -> `http/latency-p99.9`,
///   `grpc/latency-p95.0` -> `grpc/latency-p95`;
/// - Iter8's gRPC names with a slash before the statistic resolve to the http-style names:
///   `grpc/latency/mean` -> `grpc/latency-mean`, `grpc/latency/p95.0` -> `grpc/latency-p95`.
pub fn normalize_metric_name(name: &str) -> String {
    let name = name.trim();
    let (prefix, rest) = match name.split_once('/') {
        Some((p, r)) => (p, r),
        None => return name.to_string(),
    };
    // Iter8 gRPC style: latency/mean, latency/p95.0, error-count stays as is.
    let rest = rest.replacen("latency/", "latency-", 1);
    let rest = match rest.rsplit_once("-p") {
        Some((head, pct))
            if !pct.is_empty() && pct.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            format!("{head}-p{}", normalize_percentile(pct))
        }
        _ => rest,
    };
    format!("{prefix}/{rest}")
}

/// Check a (normalised) metric name of the load tasks (`http`, `http-<endpoint>`, `grpc`,
/// `grpc-<endpoint>` prefixes) against the names they record, so that an SLO on
/// `http/nope` or `http/latency-p101` is refused before anything runs. Names of other
/// prefixes (custom metrics providers) are not checked here.
pub fn check_load_metric(name: &str) -> Result<(), String> {
    let Some((prefix, rest)) = name.split_once('/') else {
        return Ok(());
    };
    let http = prefix == "http" || prefix.starts_with("http-");
    let grpc = prefix == "grpc" || prefix.starts_with("grpc-");
    if !http && !grpc {
        return Ok(());
    }
    const FIXED: [&str; 8] = [
        "request-count",
        "error-count",
        "error-rate",
        "latency",
        "latency-mean",
        "latency-stddev",
        "latency-min",
        "latency-max",
    ];
    if FIXED.contains(&rest) {
        return Ok(());
    }
    if let Some(p) = rest.strip_prefix("latency-p") {
        return match p.parse::<f64>() {
            Ok(x) if p.chars().all(|c| c.is_ascii_digit() || c == '.') && (0.0..=100.0).contains(&x) => Ok(()),
            _ => Err(format!(
                "{name}: {p:?} is not a percentile; use latency-p<X> with X from 0 to 100, e.g. {prefix}/latency-p99.9"
            )),
        };
    }
    if let Some(code) = rest.strip_prefix("status-") {
        let ok = if http {
            code.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c)) && code.len() == 3
        } else {
            !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if ok {
            return Ok(());
        }
        return Err(format!(
            "{name}: {code:?} is not a status; use {}",
            if http {
                "an HTTP status code, e.g. http/status-503"
            } else {
                "a gRPC code name, e.g. grpc/status-UNAVAILABLE"
            }
        ));
    }
    if http {
        if let Some(kind) = rest.strip_prefix("error-") {
            if ["refused", "timeout", "reset", "tls", "other"].contains(&kind) {
                return Ok(());
            }
        }
    }
    Err(format!(
        "{name}: the {} task records no metric {rest:?}; it records {}, latency-mean, \
         latency-stddev, latency-min, latency-max, latency-p<X> (0 to 100), status-<code>{}",
        if http { "http" } else { "grpc" },
        "request-count, error-count, error-rate",
        if http {
            " and error-<refused|timeout|reset|tls|other>"
        } else {
            ""
        }
    ))
}

/// `99.90` -> `99.9`, `95.0` -> `95`, `50` -> `50`.
pub fn normalize_percentile(p: &str) -> String {
    if let Some((int, frac)) = p.split_once('.') {
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            int.to_string()
        } else {
            format!("{int}.{frac}")
        }
    } else {
        p.to_string()
    }
}

/// The metric name suffix for a percentile value: 99.9 -> `p99.9`, 50.0 -> `p50`.
pub fn percentile_suffix(p: f64) -> String {
    let s = format!("{p:.6}");
    format!("p{}", normalize_percentile(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_metric_names_are_checked() {
        for ok in [
            "http/latency-mean",
            "http/latency-p99.9",
            "http/latency-p0",
            "http/latency-p100",
            "http-v1/error-rate",
            "http/status-503",
            "http/error-refused",
            "http/latency",
            "grpc/latency-p95",
            "grpc/status-UNAVAILABLE",
            "istio/anything",
            "nocolon",
        ] {
            assert_eq!(check_load_metric(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("http/nope", "records no metric \"nope\""),
            ("http/latency-p101", "not a percentile"),
            ("http/latency-pabc", "not a percentile"),
            ("http/status-5000", "not a status"),
            ("grpc/error-refused", "grpc task records no metric"),
        ] {
            let e = check_load_metric(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn normalises_percentiles_and_iter8_grpc_names() {
        assert_eq!(
            normalize_metric_name("http/latency-p99.90"),
            "http/latency-p99.9"
        );
        assert_eq!(
            normalize_metric_name("http/latency-p99.9"),
            "http/latency-p99.9"
        );
        assert_eq!(
            normalize_metric_name("http-v1/latency-p50.0"),
            "http-v1/latency-p50"
        );
        assert_eq!(
            normalize_metric_name("grpc/latency/mean"),
            "grpc/latency-mean"
        );
        assert_eq!(
            normalize_metric_name("grpc/latency/p95.0"),
            "grpc/latency-p95"
        );
        assert_eq!(normalize_metric_name("grpc/error-rate"), "grpc/error-rate");
        assert_eq!(
            normalize_metric_name("istio/request-count"),
            "istio/request-count"
        );
        assert_eq!(normalize_metric_name("plain"), "plain");
        assert_eq!(percentile_suffix(99.9), "p99.9");
        assert_eq!(percentile_suffix(50.0), "p50");
        assert_eq!(percentile_suffix(99.99), "p99.99");
    }
}
