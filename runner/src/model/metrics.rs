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
