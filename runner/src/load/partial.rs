//! A [`LoadReport`] as plain data, so that the load of several processes or pods can be
//! measured apart and merged exactly (see [`crate::dist`]).
//!
//! Nothing is approximated: the HDR histograms travel in HdrHistogram's own interchange
//! format (V2, deflate-compressed, base64: about 13 KB for a worker's 200,000 requests of a
//! realistic latency spread, against 85 KB as JSON (value, count) pairs, so the records of
//! N workers fit in the release's Secret), the fixed grid as its non-empty (index, count)
//! pairs, and the moments as integers (nanoseconds; the 128-bit sums as decimal strings). So merging the partial
//! reports of N workers gives the report one process would have made of all the samples.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::health::{CgroupCpu, GeneratorReport};
use super::schedule::Segment;
use super::{ErrorKind, LagStats, LatencyStats, LoadReport, StageReport, GRID_LEN};

/// The latency statistics of a [`LatencyStats`], exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialLatency {
    /// HDR histogram (microseconds): V2 deflate serialization, base64.
    pub hdr: String,
    /// Fixed grid: `[index, count]` of every non-empty bucket.
    pub grid: Vec<(usize, u64)>,
    pub count: u64,
    /// Sum of latencies in nanoseconds (decimal: it may exceed 64 bits).
    pub sum_ns: String,
    /// Sum of squared latencies in nanoseconds² (decimal).
    pub sum_sq_ns: String,
    pub min_ns: u64,
    pub max_ns: u64,
}

/// What one worker measured in one load phase, with when it ran (wall clock), so that
/// the merged run's span covers every worker's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialReport {
    pub requests: u64,
    pub errors: u64,
    pub latency: PartialLatency,
    pub statuses: BTreeMap<u16, u64>,
    pub error_kinds: BTreeMap<ErrorKind, u64>,
    /// Nanoseconds since the Unix epoch when the measured phase started.
    pub start_unix_ns: u128,
    /// Nanoseconds since the Unix epoch when the measured phase ended.
    pub end_unix_ns: u128,
    /// Per stage of a staged load (the worker's share of each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<PartialStage>,
    /// Schedule lag (fixed rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<PartialLag>,
    /// The worker's CPU and its cgroup's throttling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<PartialGenerator>,
}

/// One stage of a worker's share of a staged load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialStage {
    /// The stage on the one schedule every worker shares (first ticket, tickets, start and
    /// length in seconds, rates).
    pub first: u64,
    pub tickets: u64,
    pub start: f64,
    pub duration: f64,
    pub from_qps: f64,
    pub to_qps: f64,
    pub requests: u64,
    pub errors: u64,
    pub latency: PartialLatency,
    pub statuses: BTreeMap<u16, u64>,
    pub error_kinds: BTreeMap<ErrorKind, u64>,
    pub elapsed_ns: u64,
    pub lag: PartialLag,
}

/// [`LagStats`] exactly: the HDR histogram (V2 deflate serialization, base64) and the
/// counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialLag {
    pub hdr: String,
    pub count: u64,
    pub late: u64,
    pub max_ns: u64,
}

/// [`GeneratorReport`] of one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialGenerator {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns: Option<u64>,
    /// Cgroup CPU periods, throttled periods, nanoseconds throttled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<(u64, u64, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<f64>,
    pub cpus: usize,
}

impl LagStats {
    fn to_partial(&self) -> PartialLag {
        PartialLag {
            hdr: encode_hdr(&self.hdr),
            count: self.count,
            late: self.late,
            max_ns: self.max_ns,
        }
    }

    fn from_partial(p: &PartialLag) -> Result<Self, PartialError> {
        let mut s = LagStats::new();
        s.hdr
            .add(decode_hdr(&p.hdr, "lag.hdr")?)
            .map_err(|e| invalid("lag.hdr", format!("{e:?}")))?;
        if s.hdr.len() != p.count || p.late > p.count {
            return Err(invalid(
                "lag.count",
                format!(
                    "count {} (late {}) disagrees with the histogram ({})",
                    p.count,
                    p.late,
                    s.hdr.len()
                ),
            ));
        }
        s.count = p.count;
        s.late = p.late;
        s.max_ns = p.max_ns;
        Ok(s)
    }
}

/// An HDR histogram in the V2 deflate format, base64.
fn encode_hdr(h: &hdrhistogram::Histogram<u64>) -> String {
    use base64::Engine;
    use hdrhistogram::serialization::Serializer;
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail; should it, the empty text reads back as an error.
    if hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .is_err()
    {
        bytes.clear();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode_hdr(
    text: &str,
    field: &'static str,
) -> Result<hdrhistogram::Histogram<u64>, PartialError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| invalid(field, format!("not base64: {e}")))?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| invalid(field, format!("not an HDR histogram (V2): {e:?}")))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl GeneratorReport {
    fn to_partial(&self) -> PartialGenerator {
        PartialGenerator {
            cpu_ns: self.cpu.map(nanos),
            throttling: self
                .throttling
                .map(|t| (t.periods, t.throttled_periods, nanos(t.throttled))),
            cpu_limit: self.cpu_limit,
            cpus: self.cpus,
        }
    }

    /// Add a worker's: CPU time and throttling counters add, and so do the CPUs and limits
    /// (the workers run side by side).
    fn add_partial(&mut self, p: &PartialGenerator, first: bool) {
        let add = |a: Option<u64>, b: Option<u64>, first: bool| match (a, b) {
            (_, None) => None,
            (None, Some(b)) if first => Some(b),
            (None, Some(_)) => None,
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
        };
        self.cpu = add(self.cpu.map(nanos), p.cpu_ns, first).map(Duration::from_nanos);
        let t = p
            .throttling
            .map(|(periods, throttled_periods, ns)| CgroupCpu {
                periods,
                throttled_periods,
                throttled: Duration::from_nanos(ns),
            });
        self.throttling = match (self.throttling, t) {
            (_, None) => None,
            (None, Some(t)) if first => Some(t),
            (None, Some(_)) => None,
            (Some(a), Some(b)) => Some(CgroupCpu {
                periods: a.periods + b.periods,
                throttled_periods: a.throttled_periods + b.throttled_periods,
                throttled: a.throttled + b.throttled,
            }),
        };
        self.cpu_limit = match (self.cpu_limit, p.cpu_limit) {
            (_, None) => None,
            (None, Some(l)) if first => Some(l),
            (None, Some(_)) => None,
            (Some(a), Some(b)) => Some(a + b),
        };
        self.cpus += p.cpus;
    }
}

/// A partial report that cannot be read back.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PartialError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> PartialError {
    PartialError::Invalid {
        field,
        message: message.into(),
    }
}

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

impl LatencyStats {
    /// The statistics as plain data.
    pub fn to_partial(&self) -> PartialLatency {
        PartialLatency {
            hdr: encode_hdr(&self.hdr),
            grid: self
                .grid
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i, *c))
                .collect(),
            count: self.count,
            sum_ns: self.sum_ns.to_string(),
            sum_sq_ns: self.sum_sq_ns.to_string(),
            min_ns: self.min_ns,
            max_ns: self.max_ns,
        }
    }

    /// Statistics read back from [`LatencyStats::to_partial`].
    pub fn from_partial(p: &PartialLatency) -> Result<Self, PartialError> {
        let mut s = LatencyStats::new();
        s.hdr
            .add(decode_hdr(&p.hdr, "latency.hdr")?)
            .map_err(|e| invalid("latency.hdr", format!("{e:?}")))?;
        for (i, c) in &p.grid {
            let slot = s.grid.get_mut(*i).ok_or_else(|| {
                invalid(
                    "latency.grid",
                    format!("bucket {i} is past the grid ({GRID_LEN})"),
                )
            })?;
            *slot += c;
        }
        s.count = p.count;
        s.sum_ns = p
            .sum_ns
            .parse()
            .map_err(|e| invalid("latency.sumNs", format!("{:?}: {e}", p.sum_ns)))?;
        s.sum_sq_ns = p
            .sum_sq_ns
            .parse()
            .map_err(|e| invalid("latency.sumSqNs", format!("{:?}: {e}", p.sum_sq_ns)))?;
        s.min_ns = p.min_ns;
        s.max_ns = p.max_ns;
        let grid_total: u64 = s.grid.iter().sum();
        if grid_total != s.count || s.hdr.len() != s.count {
            return Err(invalid(
                "latency.count",
                format!(
                    "count {} disagrees with the histograms ({grid_total} on the grid, {} in hdr)",
                    s.count,
                    s.hdr.len()
                ),
            ));
        }
        Ok(s)
    }
}

impl LoadReport {
    /// This report as plain data, placed on the wall clock by [`LoadReport::started`]
    /// (without it, `ended` is taken as the end of the measured phase).
    pub fn to_partial(&self, ended: SystemTime) -> PartialReport {
        let end = match self.started {
            Some(s) => unix_ns(s) + self.elapsed.as_nanos(),
            None => unix_ns(ended),
        };
        PartialReport {
            requests: self.requests,
            errors: self.errors,
            latency: self.latency.to_partial(),
            statuses: self.statuses.clone(),
            error_kinds: self.error_kinds.clone(),
            start_unix_ns: end.saturating_sub(self.elapsed.as_nanos()),
            end_unix_ns: end,
            stages: self
                .stages
                .iter()
                .map(|st| PartialStage {
                    first: st.planned.first,
                    tickets: st.planned.tickets,
                    start: st.planned.start,
                    duration: st.planned.duration,
                    from_qps: st.planned.from_qps,
                    to_qps: st.planned.to_qps,
                    requests: st.requests,
                    errors: st.errors,
                    latency: st.latency.to_partial(),
                    statuses: st.statuses.clone(),
                    error_kinds: st.error_kinds.clone(),
                    elapsed_ns: nanos(st.elapsed),
                    lag: st.lag.to_partial(),
                })
                .collect(),
            lag: (self.lag.count() > 0).then(|| self.lag.to_partial()),
            generator: Some(self.generator.to_partial()),
        }
    }

    /// Merge partial reports into one: counts, statuses, error kinds and latency
    /// statistics add up exactly; `elapsed` spans from the earliest start to the latest end.
    pub fn merge_partials<'a>(
        parts: impl IntoIterator<Item = &'a PartialReport>,
    ) -> Result<LoadReport, PartialError> {
        let mut report = LoadReport::default();
        let mut span: Option<(u128, u128)> = None;
        for (i, p) in parts.into_iter().enumerate() {
            if let Some(l) = &p.lag {
                report.lag.merge(&LagStats::from_partial(l)?);
            }
            if let Some(g) = &p.generator {
                report.generator.add_partial(g, i == 0);
            } else {
                report.generator = GeneratorReport::default();
            }
            if i == 0 {
                report.stages = p
                    .stages
                    .iter()
                    .map(|st| {
                        StageReport::new(Segment {
                            first: st.first,
                            tickets: st.tickets,
                            start: st.start,
                            duration: st.duration,
                            from_qps: st.from_qps,
                            to_qps: st.to_qps,
                        })
                    })
                    .collect();
            } else if p.stages.len() != report.stages.len() {
                return Err(invalid(
                    "stages",
                    format!(
                        "{} stages where the first worker had {}",
                        p.stages.len(),
                        report.stages.len()
                    ),
                ));
            }
            for (st, ps) in report.stages.iter_mut().zip(&p.stages) {
                st.requests += ps.requests;
                st.errors += ps.errors;
                st.latency.merge(&LatencyStats::from_partial(&ps.latency)?);
                st.lag.merge(&LagStats::from_partial(&ps.lag)?);
                for (code, n) in &ps.statuses {
                    *st.statuses.entry(*code).or_default() += n;
                }
                for (kind, n) in &ps.error_kinds {
                    *st.error_kinds.entry(*kind).or_default() += n;
                }
                st.elapsed = st.elapsed.max(Duration::from_nanos(ps.elapsed_ns));
            }
            report.requests += p.requests;
            report.errors += p.errors;
            report
                .latency
                .merge(&LatencyStats::from_partial(&p.latency)?);
            for (code, n) in &p.statuses {
                *report.statuses.entry(*code).or_default() += n;
            }
            for (kind, n) in &p.error_kinds {
                *report.error_kinds.entry(*kind).or_default() += n;
            }
            span = Some(match span {
                None => (p.start_unix_ns, p.end_unix_ns),
                Some((s, e)) => (s.min(p.start_unix_ns), e.max(p.end_unix_ns)),
            });
        }
        if let Some((s, e)) = span {
            let ns = e.saturating_sub(s);
            report.elapsed = Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
            report.started =
                UNIX_EPOCH.checked_add(Duration::from_nanos(u64::try_from(s).unwrap_or(u64::MAX)));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ms: &[u64]) -> LatencyStats {
        let mut s = LatencyStats::new();
        for m in ms {
            s.record(Duration::from_micros(*m));
        }
        s
    }

    fn report(latencies_us: &[u64], elapsed_ms: u64) -> LoadReport {
        let mut r = LoadReport {
            requests: latencies_us.len() as u64 + 1,
            errors: 2,
            latency: stats(latencies_us),
            elapsed: Duration::from_millis(elapsed_ms),
            ..LoadReport::default()
        };
        r.statuses.insert(200, latencies_us.len() as u64 - 1);
        r.statuses.insert(503, 1);
        r.error_kinds.insert(ErrorKind::Refused, 1);
        r
    }

    #[test]
    fn a_report_survives_json_exactly() {
        let r = report(&[3, 1_500, 1_501, 77_000, 4_000_000, 12], 900);
        let end = UNIX_EPOCH + Duration::from_secs(1_000);
        let p = r.to_partial(end);
        let json = serde_json::to_string(&p).expect("serializes");
        let back: PartialReport = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, p);
        let merged = LoadReport::merge_partials([&back]).expect("merges");
        assert_eq!(merged.requests, r.requests);
        assert_eq!(merged.statuses, r.statuses);
        assert_eq!(merged.error_kinds, r.error_kinds);
        assert_eq!(merged.elapsed, r.elapsed);
        assert_eq!(merged.latency.to_model(), r.latency.to_model());
        assert_eq!(merged.latency.hdr, r.latency.hdr);
        for q in [50.0, 90.0, 99.0, 99.9] {
            assert_eq!(merged.latency.percentile_ms(q), r.latency.percentile_ms(q));
        }
    }

    #[test]
    fn merged_partials_equal_one_report_of_all_samples() {
        let parts = [
            vec![5u64, 900, 1_200, 33_000],
            vec![7, 2_500_000],
            vec![1_199, 1_201, 15, 60_000_000],
        ];
        let all: Vec<u64> = parts.iter().flatten().copied().collect();
        let whole = stats(&all);
        let t0 = UNIX_EPOCH + Duration::from_secs(50);
        let partials: Vec<PartialReport> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // worker i ended at t0 + i*10ms after running 100ms
                report(p, 100).to_partial(t0 + Duration::from_millis(10 * i as u64))
            })
            .collect();
        let merged = LoadReport::merge_partials(&partials).expect("merges");
        assert_eq!(merged.latency.to_model(), whole.to_model());
        assert_eq!(merged.latency.hdr, whole.hdr);
        assert_eq!(merged.latency.stddev_ms(), whole.stddev_ms());
        assert_eq!(merged.requests, all.len() as u64 + 3);
        assert_eq!(merged.errors, 6);
        assert_eq!(merged.statuses.get(&503), Some(&3));
        assert_eq!(merged.error_kinds.get(&ErrorKind::Refused), Some(&3));
        // earliest start (t0 - 100ms) to latest end (t0 + 20ms)
        assert_eq!(merged.elapsed, Duration::from_millis(120));
    }

    #[test]
    fn a_damaged_partial_is_refused_naming_the_field() {
        let mut p = report(&[10, 20], 5).to_partial(UNIX_EPOCH + Duration::from_secs(9));
        p.latency.count += 1;
        let e = LoadReport::merge_partials([&p]).unwrap_err();
        assert!(e.to_string().starts_with("latency.count:"), "{e}");
        let mut p = report(&[10, 20], 5).to_partial(UNIX_EPOCH + Duration::from_secs(9));
        p.latency.grid.push((GRID_LEN, 1));
        let e = LoadReport::merge_partials([&p]).unwrap_err();
        assert!(e.to_string().starts_with("latency.grid:"), "{e}");
        p.latency.grid.pop();
        let good = p.latency.hdr.clone();
        p.latency.hdr = "bm90IGhkcg==".into();
        let e = LoadReport::merge_partials([&p]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("latency.hdr: not an HDR histogram"),
            "{e}"
        );
        p.latency.hdr = "%%".into();
        let e = LoadReport::merge_partials([&p]).unwrap_err();
        assert!(e.to_string().starts_with("latency.hdr: not base64"), "{e}");
        p.latency.hdr = good;
        let mut lag = LagStats::new();
        lag.record(Duration::from_micros(5));
        p.lag = Some(PartialLag {
            count: 2,
            ..lag.to_partial()
        });
        let e = LoadReport::merge_partials([&p]).unwrap_err();
        assert!(e.to_string().starts_with("lag.count:"), "{e}");
        p.lag = None;
        p.latency.sum_ns = "x".into();
        let e = LoadReport::merge_partials([&p]).unwrap_err();
        assert!(e.to_string().starts_with("latency.sumNs:"), "{e}");
    }
}
