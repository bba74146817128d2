//! Result fixtures for the report and assert tests, built through the `Insights` API (the
//! way tasks record them) rather than typed by hand. `tests/fixtures/*.yaml` are these
//! results serialised; `fixtures_are_current` (in tests/report.rs) keeps them in step
//! (regenerate with `UPDATE_FIXTURES=1 cargo test -p iter8 --test report`).
#![allow(dead_code)]

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use iter8::model::{
    ExperimentResult, FailedTask, HistBucket, Histogram, Insights, MetricMeta, MetricType,
    RewardWinners, Rewards, Slo, Slos, SlosSatisfied,
};

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Deterministic pseudo-random numbers (no dependency, same on every machine).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }
    /// Uniform in (0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Log-normal sample with this median and spread.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let (u1, u2) = (self.next_f64(), self.next_f64());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * z).exp()
    }
}

/// Log-linear buckets (8 per power of two), like the load engine's grid.
pub fn bucket_of(x: f64) -> (f64, f64) {
    let x = x.max(0.001);
    let e = x.log2().floor();
    let base = 2f64.powf(e);
    let step = base / 8.0;
    let j = ((x - base) / step).floor().clamp(0.0, 7.0);
    let lower = base + j * step;
    (lower, lower + step)
}

/// A histogram of these samples (milliseconds), as the load engine would store it.
pub fn histogram(samples: &[f64]) -> Histogram {
    let mut counts: std::collections::BTreeMap<u64, (f64, f64, u64)> = Default::default();
    for &x in samples {
        let (lower, upper) = bucket_of(x);
        counts.entry(lower.to_bits()).or_insert((lower, upper, 0)).2 += 1;
    }
    let mut buckets: Vec<HistBucket> = counts
        .into_values()
        .map(|(lower, upper, count)| HistBucket {
            lower,
            upper,
            count,
        })
        .collect();
    buckets.sort_by(|a, b| a.lower.total_cmp(&b.lower));
    Histogram {
        buckets,
        count: samples.len() as u64,
        sum: samples.iter().sum(),
        sum_sq: samples.iter().map(|x| x * x).sum(),
        min: samples.iter().copied().fold(f64::INFINITY, f64::min),
        max: samples.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

fn exact_percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What the http (or grpc) task records for one version: counts, latency statistics,
/// percentiles, the histogram, and counts per status code / error kind.
pub struct Load<'a> {
    pub prefix: &'a str,
    pub median_ms: f64,
    pub sigma: f64,
    pub requests: usize,
    /// (status code or error kind metric suffix, count): e.g. ("status-503", 3).
    pub outcomes: Vec<(&'a str, u64)>,
    /// How many of the outcomes are errors.
    pub errors: u64,
    pub seed: u64,
}

pub fn register_load_metrics(ins: &mut Insights, prefix: &str) {
    let g = |d: &str, u: Option<&str>| MetricMeta::new(MetricType::Gauge, d, u);
    let c = |d: &str| MetricMeta::new(MetricType::Counter, d, None);
    ins.register_metric(
        &format!("{prefix}/request-count"),
        c("number of requests sent"),
    );
    ins.register_metric(
        &format!("{prefix}/error-count"),
        c("number of responses that were errors"),
    );
    ins.register_metric(
        &format!("{prefix}/error-rate"),
        g("fraction of responses that were errors", None),
    );
    for (s, d) in [
        ("mean", "mean latency"),
        ("stddev", "standard deviation of latency"),
        ("min", "minimum latency"),
        ("max", "maximum latency"),
    ] {
        ins.register_metric(&format!("{prefix}/latency-{s}"), g(d, Some("ms")));
    }
    for p in ["50", "75", "90", "95", "99", "99.9"] {
        ins.register_metric(
            &format!("{prefix}/latency-p{p}"),
            g(&format!("{p}th percentile of latency"), Some("ms")),
        );
    }
    ins.register_metric(
        &format!("{prefix}/latency"),
        MetricMeta::new(MetricType::Histogram, "latency histogram", Some("ms")),
    );
}

/// Record one loop of a load test for version `v`.
pub fn record_load(ins: &mut Insights, v: usize, load: &Load) {
    let mut rng = Lcg::new(load.seed);
    let mut samples: Vec<f64> = (0..load.requests)
        .map(|_| round3(rng.lognormal(load.median_ms, load.sigma)))
        .collect();
    let p = load.prefix;
    let n = load.requests as f64;
    ins.record(v, &format!("{p}/request-count"), n);
    ins.record(v, &format!("{p}/error-count"), load.errors as f64);
    ins.record(
        v,
        &format!("{p}/error-rate"),
        load.errors as f64 / n.max(1.0),
    );
    for (suffix, count) in &load.outcomes {
        ins.register_metric(
            &format!("{p}/{suffix}"),
            MetricMeta::new(MetricType::Counter, format!("requests with {suffix}"), None),
        );
        ins.record(v, &format!("{p}/{suffix}"), *count as f64);
    }
    if samples.is_empty() {
        return;
    }
    let hist = histogram(&samples);
    samples.sort_by(|a, b| a.total_cmp(b));
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    ins.record(v, &format!("{p}/latency-mean"), round3(mean));
    ins.record(v, &format!("{p}/latency-stddev"), round3(var.sqrt()));
    ins.record(v, &format!("{p}/latency-min"), samples[0]);
    ins.record(v, &format!("{p}/latency-max"), samples[samples.len() - 1]);
    for (name, pct) in [
        ("50", 50.0),
        ("75", 75.0),
        ("90", 90.0),
        ("95", 95.0),
        ("99", 99.0),
        ("99.9", 99.9),
    ] {
        ins.record(
            v,
            &format!("{p}/latency-p{name}"),
            exact_percentile(&samples, pct),
        );
    }
    ins.record_histogram(v, &format!("{p}/latency"), &hist);
}

/// Assess SLOs and rewards the way the `assess` task does (a missing value fails).
pub fn assess(ins: &mut Insights, upper: &[(&str, f64)], lower: &[(&str, f64)], rewards: Rewards) {
    let slos = Slos {
        upper: upper
            .iter()
            .map(|(m, l)| Slo {
                metric: m.to_string(),
                limit: *l,
            })
            .collect(),
        lower: lower
            .iter()
            .map(|(m, l)| Slo {
                metric: m.to_string(),
                limit: *l,
            })
            .collect(),
    };
    let n = ins.num_versions;
    let sat = |slo: &Slo, upper: bool| -> Vec<bool> {
        (0..n)
            .map(|v| match ins.latest(v, &slo.metric) {
                Some(x) if upper => x <= slo.limit,
                Some(x) => x >= slo.limit,
                None => false,
            })
            .collect()
    };
    let satisfied = SlosSatisfied {
        upper: slos.upper.iter().map(|s| sat(s, true)).collect(),
        lower: slos.lower.iter().map(|s| sat(s, false)).collect(),
    };
    let pick = |metric: &str, max: bool| -> Option<usize> {
        (0..n)
            .filter_map(|v| ins.latest(v, metric).map(|x| (v, x)))
            .reduce(|a, b| {
                if (max && b.1 > a.1) || (!max && b.1 < a.1) {
                    b
                } else {
                    a
                }
            })
            .map(|(v, _)| v)
    };
    let winners = RewardWinners {
        max: rewards.max.iter().map(|m| pick(m, true)).collect(),
        min: rewards.min.iter().map(|m| pick(m, false)).collect(),
    };
    if !(upper.is_empty() && lower.is_empty()) {
        ins.slos = Some(slos);
        ins.slos_satisfied = Some(satisfied);
    }
    if !(rewards.max.is_empty() && rewards.min.is_empty()) {
        ins.rewards = Some(rewards);
        ins.reward_winners = Some(winners);
    }
}

fn base(num_tasks: usize, completed: usize, loops: u64) -> ExperimentResult {
    let mut r = ExperimentResult::new(num_tasks);
    r.start_time = Utc
        .with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .single()
        .expect("valid time");
    r.iter8_version = "0.1.0".to_string();
    r.num_completed_tasks = completed;
    r.num_loops = loops;
    r
}

/// One version (no name), http + assess, everything satisfied.
pub fn one_version() -> ExperimentResult {
    let mut r = base(2, 2, 1);
    let ins = r.insights_mut();
    ins.ensure_versions(&[String::new()]);
    register_load_metrics(ins, "http");
    record_load(
        ins,
        0,
        &Load {
            prefix: "http",
            median_ms: 4.0,
            sigma: 0.4,
            requests: 200,
            outcomes: vec![("status-200", 198), ("status-503", 2)],
            errors: 2,
            seed: 1,
        },
    );
    assess(
        ins,
        &[("http/latency-mean", 50.0), ("http/error-rate", 0.05)],
        &[],
        Rewards::default(),
    );
    r
}

/// Three versions (A/B/n) with rewards; v2 violates the latency SLO, v3 the error rate.
pub fn three_versions() -> ExperimentResult {
    let mut r = base(3, 3, 1);
    let ins = r.insights_mut();
    let names: Vec<String> = ["v1", "v2", "v3"].iter().map(|s| s.to_string()).collect();
    ins.ensure_versions(&names);
    register_load_metrics(ins, "http");
    ins.register_metric(
        "app/conversion-rate",
        MetricMeta::new(
            MetricType::Gauge,
            "share of sessions that bought something",
            Some("%"),
        ),
    );
    let loads = [
        (5.0, 0.3, 0u64, 11u64),
        (30.0, 0.6, 1, 12),
        (6.0, 0.35, 40, 13),
    ];
    for (v, (median, sigma, errors, seed)) in loads.iter().enumerate() {
        record_load(
            ins,
            v,
            &Load {
                prefix: "http",
                median_ms: *median,
                sigma: *sigma,
                requests: 400,
                outcomes: if *errors > 0 {
                    vec![("status-200", 400 - errors), ("status-500", *errors)]
                } else {
                    vec![("status-200", 400)]
                },
                errors: *errors,
                seed: *seed,
            },
        );
    }
    for (v, c) in [3.1, 4.2, 3.7].iter().enumerate() {
        ins.record(v, "app/conversion-rate", *c);
    }
    assess(
        ins,
        &[("http/latency-p99", 100.0), ("http/error-rate", 0.01)],
        &[("app/conversion-rate", 3.0)],
        Rewards {
            max: vec!["app/conversion-rate".into()],
            min: vec!["http/latency-mean".into()],
        },
    );
    r
}

/// The second task (http) failed: the target refused connections.
pub fn failed() -> ExperimentResult {
    let mut r = base(3, 1, 1);
    r.failure = true;
    r.failed_task = Some(FailedTask {
        index: 1,
        task: "http".into(),
        message: "every request failed: connection refused (127.0.0.1:9)".into(),
    });
    let ins = r.insights_mut();
    ins.ensure_versions(&[String::new()]);
    register_load_metrics(ins, "http");
    // Every request was refused: counts, no latencies.
    ins.register_metric(
        "http/error-refused",
        MetricMeta::new(MetricType::Counter, "requests refused by the target", None),
    );
    ins.record(0, "http/request-count", 100.0);
    ins.record(0, "http/error-count", 100.0);
    ins.record(0, "http/error-rate", 1.0);
    ins.record(0, "http/error-refused", 100.0);
    r
}

/// A CronJob after 20 loops: two versions, SLOs assessed every loop.
pub fn cronjob_20_loops() -> ExperimentResult {
    let mut r = base(2, 2, 0);
    for lp in 0..20u64 {
        r.num_loops += 1;
        let ins = r.insights_mut();
        let names: Vec<String> = ["stable", "canary"].iter().map(|s| s.to_string()).collect();
        ins.ensure_versions(&names);
        register_load_metrics(ins, "http");
        for v in 0..2 {
            // The canary degrades in the last loops.
            let median = if v == 1 && lp >= 15 {
                9.0
            } else {
                4.0 + v as f64
            };
            record_load(
                ins,
                v,
                &Load {
                    prefix: "http",
                    median_ms: median,
                    sigma: 0.35,
                    requests: 500,
                    outcomes: vec![("status-200", 500)],
                    errors: 0,
                    seed: 100 + lp * 2 + v as u64,
                },
            );
        }
        assess(
            ins,
            &[("http/latency-p95", 15.0), ("http/error-rate", 0.01)],
            &[],
            Rewards::default(),
        );
    }
    r
}

/// gRPC load plus custom (Prometheus) metrics, one of them unavailable.
pub fn grpc_custom() -> ExperimentResult {
    let mut r = base(3, 3, 1);
    let ins = r.insights_mut();
    let names: Vec<String> = ["baseline", "candidate"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    ins.ensure_versions(&names);
    register_load_metrics(ins, "grpc");
    for (v, (median, unavailable, seed)) in [(2.5, 0u64, 21u64), (2.0, 7, 22)].iter().enumerate() {
        record_load(
            ins,
            v,
            &Load {
                prefix: "grpc",
                median_ms: *median,
                sigma: 0.5,
                requests: 300,
                outcomes: if *unavailable > 0 {
                    vec![
                        ("status-OK", 300 - unavailable),
                        ("status-UNAVAILABLE", *unavailable),
                    ]
                } else {
                    vec![("status-OK", 300)]
                },
                errors: *unavailable,
                seed: *seed,
            },
        );
    }
    ins.register_metric(
        "istio/request-count",
        MetricMeta::new(MetricType::Counter, "requests seen by the mesh", None),
    );
    ins.register_metric(
        "istio/latency-p90",
        MetricMeta::new(
            MetricType::Gauge,
            "90th percentile latency seen by the mesh",
            Some("ms"),
        ),
    );
    ins.register_metric(
        "istio/error-rate",
        MetricMeta::new(
            MetricType::Gauge,
            "share of 5xx responses seen by the mesh",
            None,
        ),
    );
    ins.record(0, "istio/request-count", 1520.0);
    ins.record(1, "istio/request-count", 1497.0);
    ins.record(0, "istio/latency-p90", 12.5);
    ins.record(1, "istio/latency-p90", 11.25);
    ins.record(0, "istio/error-rate", 0.002);
    ins.mark_unavailable(
        1,
        "istio/error-rate",
        "query returned no data (is the candidate receiving traffic?)",
    );
    assess(
        ins,
        &[("grpc/latency-p99", 20.0), ("istio/error-rate", 0.01)],
        &[],
        Rewards::default(),
    );
    r
}

/// The runner started but no task has recorded anything yet.
pub fn no_insights() -> ExperimentResult {
    base(3, 0, 1)
}

/// All fixtures by file name (without `.yaml`).
pub fn all() -> Vec<(&'static str, ExperimentResult)> {
    vec![
        ("one-version", one_version()),
        ("three-versions", three_versions()),
        ("failed", failed()),
        ("cronjob-20-loops", cronjob_20_loops()),
        ("grpc-custom", grpc_custom()),
        ("no-insights", no_insights()),
    ]
}
