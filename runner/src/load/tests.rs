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

/// Replies after 2 ms, except every request from the `hang_from`-th on, which never completes.
struct HangsLater {
    sent: AtomicU64,
    hang_from: u64,
}

impl RequestSender for HangsLater {
    type Conn = ();
    fn new_conn(&self, _worker: usize) {}
    async fn send(&self, _conn: &mut ()) -> Outcome {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.hang_from {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        Outcome::Response {
            status: 200,
            error: false,
        }
    }
}

#[tokio::test]
async fn a_worker_timer_moved_forward_times_out_each_request_from_its_send() {
    // One worker reuses one timer, moved forward before every request: after 130 fast
    // requests (at least 260 ms, longer than the 200 ms timeout, so the first deadline has
    // passed) the hanging ones must still time out, each a full timeout after its send. The
    // timeout is far above a 2 ms reply, so a busy machine does not time out a fast one.
    let mut plan = LoadPlan::new(0.0, Stop::count(133), 1);
    plan.timeout = Duration::from_millis(200);
    let sender = HangsLater {
        sent: AtomicU64::new(0),
        hang_from: 131,
    };
    // a guard against a timer that never fires (the test fails instead of hanging)
    let r = tokio::time::timeout(Duration::from_secs(60), run_load(&plan, sender, None))
        .await
        .expect("the hanging requests timed out")
        .unwrap();
    assert_eq!(r.requests, 133);
    assert_eq!(r.error_kinds.get(&ErrorKind::Timeout), Some(&3));
    assert_eq!(r.statuses.get(&200), Some(&130));
    // the three timeouts are the three largest latencies, each at least the timeout
    assert!(r.latency.max_ms().unwrap_or_default() >= 200.0);
    assert!(
        r.latency
            .percentile_ms(100.0 * 131.0 / 133.0)
            .unwrap_or_default()
            >= 200.0
    );
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

fn stage(ms: u64, qps: f64, ramp: bool) -> LoadStage {
    LoadStage {
        duration: crate::model::GoDuration(Duration::from_millis(ms)),
        qps,
        ramp: ramp.then_some(true),
    }
}

#[tokio::test]
async fn stages_send_their_scheduled_requests_each() {
    // 200 qps for 300 ms (60), then a ramp 200 -> 400 qps over 200 ms (60), then 100 qps
    // for 100 ms (10); the warmup at the plan's qps is not part of any stage
    let mut plan = LoadPlan::new(100.0, Stop::default(), 3);
    plan.threads = 2;
    plan.warmup = Some(Stop::count(7));
    plan.stages = vec![
        stage(300, 200.0, false),
        stage(200, 400.0, true),
        stage(100, 100.0, false),
    ];
    let progress = Progress::default();
    let r = run_load(&plan, fake(4, Duration::ZERO), Some(&progress))
        .await
        .unwrap();
    let counts: Vec<u64> = r.stages.iter().map(|s| s.requests).collect();
    assert_eq!(counts, [60, 60, 10]);
    assert_eq!(
        r.stages
            .iter()
            .map(|s| s.planned.tickets)
            .collect::<Vec<_>>(),
        [60, 60, 10]
    );
    assert_eq!(r.requests, 130);
    assert_eq!(progress.done.load(Ordering::Relaxed), 130);
    // every stage's statistics add up to the totals
    assert_eq!(r.stages.iter().map(|s| s.errors).sum::<u64>(), r.errors);
    assert_eq!(
        r.stages.iter().map(|s| s.latency.count()).sum::<u64>(),
        r.latency.count()
    );
    // fake numbers 8..=137 in the measured phase: every 4th is a 500
    assert_eq!(r.errors, (8..=137).filter(|n| n % 4 == 0).count() as u64);
    for s in &r.stages {
        assert_eq!(
            s.statuses.values().sum::<u64>(),
            s.requests,
            "{:?}",
            s.planned
        );
        // a stage lasts at least as planned, so its rate is at most the planned one
        assert!(s.elapsed.as_secs_f64() >= s.planned.duration);
        assert!(s.rate() > 0.0 && s.rate() <= s.planned.tickets as f64 / s.planned.duration);
        assert_eq!(s.rate(), s.requests as f64 / s.elapsed.as_secs_f64());
        assert_eq!(s.lag.count(), s.requests);
    }
    assert_eq!(r.stages[1].planned.from_qps, 200.0);
    assert_eq!(r.stages[1].planned.planned_qps(), 300.0);
    assert_eq!(r.lag.count(), 130);
}

#[tokio::test]
async fn bad_stages_are_rejected_by_the_engine() {
    let mut plan = LoadPlan::new(10.0, Stop::default(), 1);
    plan.stages = vec![stage(100, 10.0, false), stage(100, 0.0, false)];
    let e = run_load(&plan, fake(0, Duration::ZERO), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("stages[1].qps"), "{e}");
}

#[tokio::test]
async fn a_schedule_that_falls_behind_is_measured_as_lag() {
    // One worker, 1000 qps, 10 ms per request: request k is due at k ms and sent at about
    // 10k ms, so every request from the third on is sent 10 ms or more late.
    let plan = LoadPlan::new(1000.0, Stop::count(10), 1);
    let r = run_load(&plan, fake(0, Duration::from_millis(10)), None)
        .await
        .unwrap();
    assert_eq!(r.lag.count(), 10);
    assert!(r.lag.late() >= 8, "{}", r.lag.late());
    assert!(r.lag.max_ms().unwrap_or_default() >= 81.0);
    let w = health::warnings(&r);
    assert!(
        w.iter()
            .any(|w| w.contains("the fixed-rate schedule fell behind")),
        "{w:?}"
    );
    // at max rate there is no schedule to fall behind
    let plan = LoadPlan::new(0.0, Stop::count(10), 1);
    let r = run_load(&plan, fake(0, Duration::ZERO), None)
        .await
        .unwrap();
    assert_eq!(r.lag.count(), 0);
    assert!(r.generator.cpu.is_some());
}

#[tokio::test]
async fn a_staged_load_split_over_workers_merges_to_the_one_worker_schedule() {
    let mut plan = LoadPlan::new(200.0, Stop::default(), 6);
    plan.stages = vec![
        stage(300, 200.0, false),
        stage(200, 400.0, true),
        stage(100, 100.0, false),
    ];
    plan.warmup = Some(Stop::count(9));
    let shares: Vec<_> = (0..3)
        .map(|i| split::split_plan(&plan, 3, i).unwrap())
        .collect();
    assert!(shares.iter().all(|s| s.start_offset.is_zero()));
    assert_eq!(
        shares.iter().map(|s| s.plan.tickets).collect::<Vec<_>>(),
        (0..3)
            .map(|i| TicketShare { first: i, step: 3 })
            .collect::<Vec<_>>()
    );
    let runs = shares
        .iter()
        .map(|s| run_load(&s.plan, fake(0, Duration::ZERO), None));
    let reports: Vec<LoadReport> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    // tickets 0..130 dealt round robin: 44, 43, 43
    assert_eq!(
        reports.iter().map(|r| r.requests).collect::<Vec<_>>(),
        [44, 43, 43]
    );
    let end = std::time::SystemTime::now();
    let parts: Vec<_> = reports.iter().map(|r| r.to_partial(end)).collect();
    // through JSON, as the workers store them
    let parts: Vec<partial::PartialReport> = parts
        .iter()
        .map(|p| serde_json::from_str(&serde_json::to_string(p).unwrap()).unwrap())
        .collect();
    let merged = LoadReport::merge_partials(&parts).unwrap();
    assert_eq!(
        merged.stages.iter().map(|s| s.requests).collect::<Vec<_>>(),
        [60, 60, 10]
    );
    assert_eq!(
        merged.stages.iter().map(|s| s.planned).collect::<Vec<_>>(),
        reports[0]
            .stages
            .iter()
            .map(|s| s.planned)
            .collect::<Vec<_>>()
    );
    assert_eq!(merged.requests, 130);
    assert_eq!(
        merged.stages.iter().map(|s| s.latency.count()).sum::<u64>(),
        130
    );
    assert_eq!(merged.lag.count(), 130);
    let cpu: Duration = reports.iter().filter_map(|r| r.generator.cpu).sum();
    assert_eq!(merged.generator.cpu, Some(cpu));
    assert_eq!(
        merged.generator.cpus,
        reports.iter().map(|r| r.generator.cpus).sum::<usize>()
    );
}
