//! Latency statistics of a phase: an HDR histogram for percentiles, a fixed log-linear grid
//! for the mergeable [`crate::model::Histogram`], exact moments; constant memory.

use std::time::Duration;

use crate::model::{HistBucket, Histogram as ModelHistogram};

/// Upper bound of the microsecond HDR histogram (1 hour); larger latencies saturate.
const HDR_MAX_US: u64 = 3_600_000_000;

/// Latency statistics of a phase (mergeable).
#[derive(Clone, Debug)]
pub struct LatencyStats {
    /// Latencies in microseconds (3 significant digits), for percentiles.
    pub hdr: hdrhistogram::Histogram<u64>,
    /// Counts on the fixed grid of [`grid_bounds_ms`] (index = grid bucket).
    pub(super) grid: Vec<u64>,
    pub(super) count: u64,
    pub(super) sum_ns: u128,
    pub(super) sum_sq_ns: u128,
    pub(super) min_ns: u64,
    pub(super) max_ns: u64,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyStats {
    pub fn new() -> Self {
        // Bounds are constants that hdrhistogram accepts (1 <= low, high >= 2 * low, 3 digits).
        let hdr = match hdrhistogram::Histogram::new_with_bounds(1, HDR_MAX_US, 3) {
            Ok(h) => h,
            Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
        };
        LatencyStats {
            hdr,
            grid: vec![0; GRID_LEN],
            count: 0,
            sum_ns: 0,
            sum_sq_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }

    /// Record one latency.
    #[inline]
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let us = (ns.saturating_add(500) / 1000).max(1);
        self.hdr.saturating_record(us);
        self.grid[grid_index(ns)] += 1;
        self.count += 1;
        self.sum_ns += ns as u128;
        self.sum_sq_ns += (ns as u128) * (ns as u128);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &LatencyStats) {
        // Same bounds on both sides, so `add` cannot fail; saturate if it ever would.
        if self.hdr.add(&other.hdr).is_err() {
            for v in other.hdr.iter_recorded() {
                self.hdr
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        for (a, b) in self.grid.iter_mut().zip(&other.grid) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.sum_sq_ns += other.sum_sq_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ns as f64 / self.count as f64 / 1e6)
    }

    /// Population standard deviation in ms (exact moments).
    pub fn stddev_ms(&self) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let mean = self.sum_ns as f64 / n;
        let var = (self.sum_sq_ns as f64 / n - mean * mean).max(0.0);
        Some(var.sqrt() / 1e6)
    }

    pub fn min_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.min_ns as f64 / 1e6)
    }

    pub fn max_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.max_ns as f64 / 1e6)
    }

    /// Percentile `p` (0..=100) in ms, from the HDR histogram (within 0.1%), clamped to the
    /// exact min and max.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let q = (p / 100.0).clamp(0.0, 1.0);
        let us = self.hdr.value_at_quantile(q);
        let min = self.min_ns as f64 / 1e6;
        let max = self.max_ns as f64 / 1e6;
        Some((us as f64 / 1000.0).clamp(min, max))
    }

    /// The shared, mergeable histogram (ms): non-empty grid buckets plus exact moments.
    pub fn to_model(&self) -> ModelHistogram {
        if self.count == 0 {
            return ModelHistogram::default();
        }
        let buckets = self
            .grid
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                let (lower, upper) = grid_bounds_ms(i);
                HistBucket {
                    lower,
                    upper,
                    count: *c,
                }
            })
            .collect();
        ModelHistogram {
            buckets,
            count: self.count,
            sum: self.sum_ns as f64 / 1e6,
            sum_sq: self.sum_sq_ns as f64 / 1e12,
            min: self.min_ns as f64 / 1e6,
            max: self.max_ns as f64 / 1e6,
        }
    }
}

// ---- the fixed latency grid -------------------------------------------------------------
//
// Bucket 0 is [0, 0.001) ms. Then, for each decade from 0.001 ms (1 µs) to 10^7 ms, 90
// buckets of two significant digits: [1.0, 1.1), [1.1, 1.2), ... [9.9, 10) times the decade.
// Latencies of 10^7 ms (2.8 h) and more fall into the last bucket. Bounds are computed the
// same way everywhere (integers divided by powers of ten), so equal buckets have equal bits
// and histograms of different pods or loops merge exactly.

const GRID_DECADES: usize = 10;
pub(super) const GRID_LEN: usize = 1 + GRID_DECADES * 90;

/// Grid bucket of a latency in nanoseconds.
#[inline]
pub fn grid_index(ns: u64) -> usize {
    if ns < 1000 {
        return 0;
    }
    // digits of ns: 4 (1 µs) ..= 13 (< 10^13 ns = 10^7 ms)
    let digits = ns.ilog10() as usize + 1;
    if digits > 3 + GRID_DECADES {
        return GRID_LEN - 1;
    }
    let scale = 10u64.pow(digits as u32 - 2);
    let m = (ns / scale) as usize; // 10..=99
    1 + (digits - 4) * 90 + (m - 10)
}

/// `[lower, upper)` in milliseconds of grid bucket `i`.
pub fn grid_bounds_ms(i: usize) -> (f64, f64) {
    if i == 0 {
        return (0.0, 0.001);
    }
    let i = i.min(GRID_LEN - 1) - 1;
    let decade = i / 90; // 0 => bucket lower bounds 1.0e-3 ms
    let m = (i % 90 + 10) as u64;
    // value = m * 10^(decade - 4) ms
    let exp = decade as i32 - 4;
    let at = |m: u64| -> f64 {
        if exp >= 0 {
            (m * 10u64.pow(exp as u32)) as f64
        } else {
            m as f64 / 10u64.pow((-exp) as u32) as f64
        }
    };
    (at(m), at(m + 1))
}

// ---- schedule lag -----------------------------------------------------------------------------

/// A request sent this much after its due time counts as late in [`LagStats::late`].
pub const LATE_AFTER: Duration = Duration::from_millis(10);

/// How far behind a fixed-rate schedule requests were sent (send time minus due time),
/// mergeable. The timer's own resolution (about 1 ms) is part of it.
#[derive(Clone, Debug)]
pub struct LagStats {
    /// Lags in microseconds, 2 significant digits.
    pub(super) hdr: hdrhistogram::Histogram<u64>,
    pub(super) count: u64,
    pub(super) late: u64,
    pub(super) max_ns: u64,
}

impl Default for LagStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LagStats {
    pub fn new() -> Self {
        // Constant bounds that hdrhistogram accepts.
        let hdr = match hdrhistogram::Histogram::new_with_bounds(1, HDR_MAX_US, 2) {
            Ok(h) => h,
            Err(e) => unreachable!("constant histogram bounds rejected: {e}"),
        };
        LagStats {
            hdr,
            count: 0,
            late: 0,
            max_ns: 0,
        }
    }

    #[inline]
    pub fn record(&mut self, lag: Duration) {
        let ns = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        self.hdr.saturating_record((ns / 1000).max(1));
        self.count += 1;
        if lag >= LATE_AFTER {
            self.late += 1;
        }
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, other: &LagStats) {
        if self.hdr.add(&other.hdr).is_err() {
            for v in other.hdr.iter_recorded() {
                self.hdr
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.count += other.count;
        self.late += other.late;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Requests whose lag was measured (fixed rate only).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Requests sent [`LATE_AFTER`] or more after their due time.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Percentile `p` (0..=100) of the lag in ms.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        (self.count > 0).then(|| {
            let us = self.hdr.value_at_quantile((p / 100.0).clamp(0.0, 1.0));
            (us as f64 / 1000.0).min(self.max_ns as f64 / 1e6)
        })
    }

    pub fn max_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.max_ns as f64 / 1e6)
    }
}
