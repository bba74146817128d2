//! The load plan of a target and the metrics recorded from its report.

use super::*;

impl Target {
    pub(super) fn load_plan(&self) -> LoadPlan {
        if let Some(stages) = &self.stages {
            // The warmup runs at the first stage's rate.
            let qps = stages.first().map_or(0.0, |s| s.qps);
            let mut plan = LoadPlan::new(qps, Stop::default(), self.plan.concurrency);
            plan.stages = stages.clone();
            plan.warmup = self.warmup.as_ref().map(|p| match (p.total, p.duration) {
                (_, Some(d)) => Stop::duration(d),
                (n, None) => Stop::count(n.unwrap_or(DEFAULT_TOTAL)),
            });
            plan.timeout = self.timeout;
            plan.threads = threads_for(self.connections);
            return plan;
        }
        let stop = |p: &Plan| match (p.total, p.duration) {
            (_, Some(d)) => Stop::duration(d),
            (Some(n), None) => Stop::count(n),
            (None, None) => Stop::count(DEFAULT_TOTAL),
        };
        LoadPlan {
            qps: self.plan.rps.unwrap_or(0.0),
            stop: stop(&self.plan),
            connections: self.plan.concurrency,
            warmup: self.warmup.as_ref().map(stop),
            // The engine enforces the deadline (a call past it is dropped: the stream is
            // reset, counted as DEADLINE_EXCEEDED); the server learns it from grpc-timeout.
            timeout: self.timeout,
            threads: threads_for(self.connections),
            ..LoadPlan::new(0.0, Stop::default(), 1)
        }
    }
}

pub(super) fn record(
    ctx: &mut TaskContext<'_>,
    version: usize,
    p: &str,
    t: &Target,
    r: &LoadReport,
) {
    let ins = &mut *ctx.insights;
    let mut put =
        |name: &str, kind: MetricType, desc: &str, units: Option<&str>, value: Option<f64>| {
            let full = format!("{p}/{name}");
            ins.register_metric(&full, MetricMeta::new(kind, desc, units));
            match value {
                Some(v) => ins.record(version, &full, v),
                None => ins.mark_unavailable(version, &full, "no calls were made"),
            }
        };
    put(
        "request-count",
        MetricType::Counter,
        "number of gRPC calls",
        None,
        Some(r.requests as f64),
    );
    put(
        "error-count",
        MetricType::Counter,
        "number of calls whose status was not OK",
        None,
        Some(r.errors as f64),
    );
    put(
        "error-rate",
        MetricType::Gauge,
        "fraction of calls whose status was not OK",
        None,
        Some(r.error_rate()),
    );
    let l = &r.latency;
    let ms = Some("msec");
    put(
        "latency-mean",
        MetricType::Gauge,
        "mean call latency",
        ms,
        l.mean_ms(),
    );
    put(
        "latency-stddev",
        MetricType::Gauge,
        "standard deviation of call latency",
        ms,
        l.stddev_ms(),
    );
    put(
        "latency-min",
        MetricType::Gauge,
        "minimum call latency",
        ms,
        l.min_ms(),
    );
    put(
        "latency-max",
        MetricType::Gauge,
        "maximum call latency",
        ms,
        l.max_ms(),
    );
    for q in &t.percentiles {
        let suffix = percentile_suffix(*q);
        put(
            &format!("latency-{suffix}"),
            MetricType::Gauge,
            &format!("{} percentile of call latency", &suffix[1..]),
            ms,
            l.percentile_ms(*q),
        );
    }
    // Calls by grpc-status; the engine's own backstop timeout is a DEADLINE_EXCEEDED,
    // any other call without a status an UNAVAILABLE.
    let mut codes = [0u64; 17];
    for (status, n) in &r.statuses {
        if let Some(c) = codes.get_mut(usize::from(*status)) {
            *c += n;
        }
    }
    for (kind, n) in &r.error_kinds {
        let code = match kind {
            ErrorKind::Timeout => Code::DeadlineExceeded,
            _ => Code::Unavailable,
        };
        codes[code as usize] += n;
    }
    for (i, n) in codes.iter().enumerate() {
        if *n > 0 || i == 0 {
            let name = code_name(CODES[i]);
            put(
                &format!("status-{name}"),
                MetricType::Counter,
                &format!("number of calls that ended with grpc-status {name}"),
                None,
                Some(*n as f64),
            );
        }
    }
    let hist_name = format!("{p}/latency");
    ins.register_metric(
        &hist_name,
        MetricMeta::new(MetricType::Histogram, "call latency", ms),
    );
    if l.count() > 0 {
        ins.record_histogram(version, &hist_name, &l.to_model());
    }
}
