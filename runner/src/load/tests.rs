use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::stats::GRID_LEN;
use super::*;
use crate::tasks::Progress;

#[test]
fn grid_buckets_have_two_significant_digits() {
    assert_eq!(grid_index(0), 0);
    assert_eq!(grid_index(999), 0);
    assert_eq!(grid_bounds_ms(0), (0.0, 0.001));
    // 1 µs
    assert_eq!(grid_bounds_ms(grid_index(1000)), (0.001, 0.0011));
    // 1.234 ms
    assert_eq!(grid_bounds_ms(grid_index(1_234_000)), (1.2, 1.3));
    // 57.9 ms
    assert_eq!(grid_bounds_ms(grid_index(57_900_000)), (57.0, 58.0));
    // 9.99 ms -> [9.9, 10)
    assert_eq!(grid_bounds_ms(grid_index(9_990_000)), (9.9, 10.0));
    // 250 s
    assert_eq!(
        grid_bounds_ms(grid_index(250_000_000_000)),
        (250_000.0, 260_000.0)
    );
    // beyond the grid: the last bucket
    assert_eq!(grid_index(u64::MAX), GRID_LEN - 1);
    // contiguous and increasing
    for i in 1..GRID_LEN {
        let (lo, hi) = grid_bounds_ms(i);
        assert!(lo < hi);
        assert_eq!(grid_bounds_ms(i - 1).1, lo, "bucket {i}");
    }
}

#[test]
fn latency_stats_are_exact_and_mergeable() {
    let mut a = LatencyStats::new();
    let mut b = LatencyStats::new();
    for ms in [1u64, 2, 3] {
        a.record(Duration::from_millis(ms));
    }
    b.record(Duration::from_millis(10));
    a.merge(&b);
    assert_eq!(a.count(), 4);
    assert_eq!(a.mean_ms(), Some(4.0));
    assert_eq!(a.min_ms(), Some(1.0));
    assert_eq!(a.max_ms(), Some(10.0));
    let sd = a.stddev_ms().unwrap_or_default();
    assert!((sd - 3.535_533_905_932_737_6).abs() < 1e-9, "{sd}");
    let p50 = a.percentile_ms(50.0).unwrap_or_default();
    assert!((1.99..=2.01).contains(&p50), "{p50}");
    let h = a.to_model();
    assert_eq!(h.count, 4);
    assert_eq!(h.buckets.iter().map(|b| b.count).sum::<u64>(), 4);
    assert_eq!(h.sum, 16.0);
    assert_eq!(h.sum_sq, 1.0 + 4.0 + 9.0 + 100.0);
    assert_eq!(h.buckets[3].lower, 10.0);
}

/// Replies instantly; counts requests; every `fail_every`-th is a 500.
struct Fake {
    sent: AtomicU64,
    fail_every: u64,
    conns: AtomicUsize,
    delay: Duration,
}

impl RequestSender for Fake {
    type Conn = ();
    fn new_conn(&self, _worker: usize) {
        self.conns.fetch_add(1, Ordering::Relaxed);
    }
    async fn send(&self, _conn: &mut ()) -> Outcome {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.fail_every > 0 && n % self.fail_every == 0 {
            Outcome::Response {
                status: 500,
                error: true,
            }
        } else {
            Outcome::Response {
                status: 200,
                error: false,
            }
        }
    }
}

fn fake(fail_every: u64, delay: Duration) -> Fake {
    Fake {
        sent: AtomicU64::new(0),
        fail_every,
        conns: AtomicUsize::new(0),
        delay,
    }
}

#[tokio::test]
async fn exact_count_at_max_rate_over_threads() {
    let mut plan = LoadPlan::new(0.0, Stop::count(1001), 7);
    plan.threads = 3;
    plan.warmup = Some(Stop::count(50));
    let progress = Progress::default();
    let r = run_load(&plan, fake(3, Duration::ZERO), Some(&progress))
        .await
        .unwrap();
    assert_eq!(r.requests, 1001);
    assert_eq!(r.latency.count(), 1001);
    // warmup sent 50 first; the measured phase's fakes numbered 51..=1051
    let errs = (51..=1051).filter(|n| n % 3 == 0).count() as u64;
    assert_eq!(r.errors, errs);
    assert_eq!(r.statuses.get(&500), Some(&errs));
    assert_eq!(r.statuses.get(&200), Some(&(1001 - errs)));
    assert_eq!(progress.done.load(Ordering::Relaxed), 1001);
    assert_eq!(progress.errors.load(Ordering::Relaxed), errs);
}

#[tokio::test]
async fn fixed_rate_duration_sends_the_due_tickets() {
    // 200 qps for 300ms: tickets due at 0, 5ms, ..., 295ms: exactly 60.
    let plan = LoadPlan::new(200.0, Stop::duration(Duration::from_millis(300)), 2);
    let r = run_load(&plan, fake(0, Duration::ZERO), None)
        .await
        .unwrap();
    assert_eq!(r.requests, 60);
    assert_eq!(r.errors, 0);
}

#[tokio::test]
async fn timeouts_are_counted_with_the_timeout_as_latency() {
    let mut plan = LoadPlan::new(0.0, Stop::count(4), 2);
    plan.timeout = Duration::from_millis(20);
    let r = run_load(&plan, fake(0, Duration::from_secs(5)), None)
        .await
        .unwrap();
    assert_eq!(r.requests, 4);
    assert_eq!(r.errors, 4);
    assert_eq!(r.error_kinds.get(&ErrorKind::Timeout), Some(&4));
    assert!(r.latency.min_ms().unwrap_or_default() >= 20.0);
}

#[tokio::test]
async fn late_requests_are_measured_from_their_due_time() {
    // One worker, 1000 qps, each request takes 10ms: request k is due at k ms but is
    // sent at ~10k ms, so its latency grows (no coordinated omission).
    let plan = LoadPlan::new(1000.0, Stop::count(10), 1);
    let r = run_load(&plan, fake(0, Duration::from_millis(10)), None)
        .await
        .unwrap();
    assert_eq!(r.requests, 10);
    // the last one: due at 9ms, done at >= 100ms
    assert!(r.latency.max_ms().unwrap_or_default() >= 90.0);
}

#[tokio::test]
async fn bad_plans_are_rejected() {
    let plan = LoadPlan::new(0.0, Stop::default(), 1);
    assert!(run_load(&plan, fake(0, Duration::ZERO), None)
        .await
        .is_err());
    let plan = LoadPlan::new(0.0, Stop::count(1), 0);
    assert!(run_load(&plan, fake(0, Duration::ZERO), None)
        .await
        .is_err());
}
