//! Splitting one load plan over N workers (processes or pods) so that the totals are exact.
//!
//! - Integers (`numRequests`, `connections`, warmup requests): worker `i` of `n` gets
//!   `total / n`, plus one when `i < total % n` (the remainder goes to the first workers).
//! - Fixed rate: every worker sends at `qps / n`, and worker `i` starts `i / qps` after the
//!   first ([`Share::start_offset`]): worker `i` then sends exactly the global tickets
//!   `i, i + n, i + 2n, ...` of the one-worker schedule (ticket `k` due at `k / qps`), so the
//!   union of all workers' schedules is the schedule one worker would run, and the request
//!   counts of a count-bound run are those of the integer split above.
//! - Stages: every worker runs the whole staged schedule from the common start and sends
//!   the tickets `i, i + n, i + 2n, ...` of it ([`TicketShare`]), so every stage's tickets
//!   are sent exactly once over the workers, each at its due time.
//! - Durations: every worker stops at the same moment, so at a fixed rate worker `i` (which
//!   starts `i / qps` later) runs `duration - i / qps`, and the workers send exactly the
//!   tickets due before the duration, as one worker would. Max rate (`qps <= 0`) stays max
//!   rate, every worker for the whole duration.

use std::time::Duration;

use super::{LoadPlan, Stop, TicketShare};

/// Worker `index`'s part of `total` over `workers` (remainder over the first workers).
/// `workers` is at least 1; `index < workers`.
pub fn share(total: u64, workers: u32, index: u32) -> u64 {
    let n = u64::from(workers.max(1));
    let i = u64::from(index);
    total / n + u64::from(i < total % n)
}

/// A worker's part of a plan and when it starts relative to worker 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    pub plan: LoadPlan,
    /// Start this long after worker 0 (fixed rate: `index / qps`; else zero).
    pub start_offset: Duration,
}

/// Worker `index` of `workers`'s part of `plan`. An error (a sentence naming the field and
/// the fix) when the plan cannot be shared: every worker needs at least one connection.
pub fn split_plan(plan: &LoadPlan, workers: u32, index: u32) -> Result<Share, String> {
    let workers = workers.max(1);
    if index >= workers {
        return Err(format!(
            "load worker index {index} is not below the number of workers {workers}"
        ));
    }
    if workers == 1 {
        return Ok(Share {
            plan: plan.clone(),
            start_offset: Duration::ZERO,
        });
    }
    let connections = plan.connections as u64;
    if connections < u64::from(workers) {
        return Err(format!(
            "connections: {connections} cannot be shared by {workers} load workers (each needs \
             at least one); set connections to {workers} or more, or use fewer workers"
        ));
    }
    let split_stop = |s: &Stop| Stop {
        num_requests: s.num_requests.map(|n| share(n, workers, index)),
        duration: s.duration,
    };
    let mut p = plan.clone();
    p.connections = share(connections, workers, index) as usize;
    p.stop = split_stop(&plan.stop);
    p.warmup = plan.warmup.as_ref().map(split_stop);
    let mut start_offset = Duration::ZERO;
    if !plan.stages.is_empty() {
        // Stages: every worker runs the one schedule from the common start and sends every
        // n-th of its tickets, so the union is the one-worker schedule, stage by stage; the
        // warmup runs at 1/n of its rate.
        p.tickets = TicketShare {
            first: u64::from(index),
            step: u64::from(workers),
        };
        p.qps = plan.qps / f64::from(workers);
    } else if plan.fixed_rate() {
        p.qps = plan.qps / f64::from(workers);
        start_offset =
            Duration::try_from_secs_f64(f64::from(index) / plan.qps).unwrap_or(Duration::ZERO);
        // Every worker stops when worker 0 does: of the one-worker schedule, exactly the
        // tickets due before the duration are sent.
        p.stop.duration = plan.stop.duration.map(|d| d.saturating_sub(start_offset));
    }
    Ok(Share {
        plan: p,
        start_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_exactly_with_the_remainder_first() {
        assert_eq!(
            (0..3).map(|i| share(100, 3, i)).collect::<Vec<_>>(),
            [34, 33, 33]
        );
        assert_eq!(
            (0..4).map(|i| share(6, 4, i)).collect::<Vec<_>>(),
            [2, 2, 1, 1]
        );
        assert_eq!(
            (0..5).map(|i| share(2, 5, i)).collect::<Vec<_>>(),
            [1, 1, 0, 0, 0]
        );
        for total in [0u64, 1, 7, 999, 1_000_003, u64::MAX] {
            for n in [1u32, 2, 3, 7, 64] {
                let sum: u128 = (0..n).map(|i| u128::from(share(total, n, i))).sum();
                assert_eq!(sum, u128::from(total), "{total} over {n}");
                let max = (0..n).map(|i| share(total, n, i)).max();
                let min = (0..n).map(|i| share(total, n, i)).min();
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1));
            }
        }
    }

    fn plan(qps: f64, stop: Stop, connections: usize) -> LoadPlan {
        let mut p = LoadPlan::new(qps, stop, connections);
        p.warmup = Some(Stop::count(10));
        p
    }

    #[test]
    fn a_plan_is_split_so_totals_are_exact() {
        let p = plan(300.0, Stop::count(1000), 8);
        let shares: Vec<Share> = (0..3)
            .map(|i| split_plan(&p, 3, i).expect("splits"))
            .collect();
        let reqs: Vec<_> = shares.iter().map(|s| s.plan.stop.num_requests).collect();
        assert_eq!(reqs, [Some(334), Some(333), Some(333)]);
        let conns: Vec<_> = shares.iter().map(|s| s.plan.connections).collect();
        assert_eq!(conns, [3, 3, 2]);
        let warm: Vec<_> = shares
            .iter()
            .map(|s| s.plan.warmup.and_then(|w| w.num_requests))
            .collect();
        assert_eq!(warm, [Some(4), Some(3), Some(3)]);
        for (i, s) in shares.iter().enumerate() {
            assert_eq!(s.plan.qps, 100.0);
            assert_eq!(s.plan.timeout, p.timeout);
            assert_eq!(s.start_offset, Duration::from_secs_f64(i as f64 / 300.0));
        }
    }

    #[test]
    fn the_union_of_the_shifted_schedules_is_the_one_worker_schedule() {
        // Worker i's ticket k is due at offset_i + k / (qps / n); every global ticket
        // j < total appears exactly once, due at j / qps.
        let (qps, total, n) = (250.0, 1001u64, 4u32);
        let p = plan(qps, Stop::count(total), 4);
        let mut due: Vec<f64> = Vec::new();
        for i in 0..n {
            let s = split_plan(&p, n, i).expect("splits");
            let count = s.plan.stop.num_requests.unwrap_or_default();
            for k in 0..count {
                due.push(s.start_offset.as_secs_f64() + k as f64 / s.plan.qps);
            }
        }
        due.sort_by(f64::total_cmp);
        assert_eq!(due.len() as u64, total);
        for (j, d) in due.iter().enumerate() {
            assert!((d - j as f64 / qps).abs() < 1e-9, "ticket {j} due at {d}");
        }
    }

    #[test]
    fn at_a_fixed_rate_for_a_duration_the_workers_send_the_one_worker_tickets() {
        // 100 qps for 1.005 s: one worker sends tickets due at 0, 10ms, ..., 1000ms: 101.
        let d = Duration::from_millis(1005);
        let p = plan(100.0, Stop::duration(d), 3);
        let mut sent = 0u64;
        for i in 0..3 {
            let s = split_plan(&p, 3, i).expect("splits");
            let mine = s.plan.stop.duration.expect("duration");
            assert_eq!(s.start_offset + mine, d, "worker {i} ends with worker 0");
            // tickets k due at k / qps_i before the worker's duration
            let period = 1.0 / s.plan.qps;
            sent += (0..)
                .take_while(|k| (*k as f64) * period < mine.as_secs_f64())
                .count() as u64;
        }
        assert_eq!(sent, 101);
    }

    #[test]
    fn durations_and_max_rate_stay_as_they_are() {
        let d = Duration::from_secs(30);
        let p = plan(0.0, Stop::duration(d), 5);
        for i in 0..2 {
            let s = split_plan(&p, 2, i).expect("splits");
            assert_eq!(s.plan.stop.duration, Some(d));
            assert_eq!(s.plan.stop.num_requests, None);
            assert_eq!(s.plan.qps, 0.0);
            assert_eq!(s.start_offset, Duration::ZERO);
        }
        let one = split_plan(&p, 1, 0).expect("splits");
        assert_eq!(one.plan, p);
    }

    #[test]
    fn too_few_connections_or_a_bad_index_is_a_clear_error() {
        let p = plan(8.0, Stop::count(100), 2);
        let e = split_plan(&p, 3, 0).unwrap_err();
        assert!(
            e.starts_with("connections: 2 cannot be shared by 3 load workers"),
            "{e}"
        );
        assert!(e.contains("set connections to 3 or more"), "{e}");
        let e = split_plan(&p, 2, 2).unwrap_err();
        assert!(e.contains("index 2"), "{e}");
    }
}
