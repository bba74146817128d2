//! Load stages: a fixed-rate schedule in pieces, each a constant rate or a linear ramp.
//!
//! Requests are numbered by the engine's shared ticket counter; the schedule maps ticket
//! `k` to the stage it belongs to and the time it is due. Stage `i` starts at the sum of the
//! durations before it and owns exactly the tickets due inside it: at a constant rate `r`
//! for `d` seconds, tickets `j / r` for every `j` with `j / r < d` (`ceil(r * d)` of them);
//! on a ramp from `r0` to `r1`, the rate grows (or falls) linearly, so the `j`-th ticket of
//! the stage is due when `r0 t + (r1 - r0) t^2 / (2 d)` reaches `j`, and the stage holds
//! about `(r0 + r1) / 2 * d` tickets. The timeline is continuous: a late stage does not
//! shift the next one (its requests are measured from their due time, as every late
//! request is).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::limits::MAX_DURATION;
use crate::model::GoDuration;

/// Most stages a load may have (each has its own statistics in the result).
pub const MAX_STAGES: usize = 32;

/// One stage of a load, as users write it (`http` and `grpc` tasks, `stages`):
/// `{duration: 30s, qps: 200}` holds 200 requests per second for 30 s; with `ramp: true`
/// the rate moves linearly from the previous stage's `qps` (0 before the first stage) to
/// this `qps` over the stage.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadStage {
    /// How long the stage lasts, e.g. `30s`, `2m`.
    pub duration: GoDuration,
    /// Requests per second over all connections (at the end of the stage when `ramp` is
    /// true); more than 0. The grpc task accepts `rps` too.
    #[serde(alias = "rps")]
    pub qps: f64,
    /// Ramp linearly from the previous stage's rate (0 before the first stage) to `qps`
    /// instead of holding `qps` from the start. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<bool>,
}

/// Check a list of stages; the error is (field inside the list, e.g. `[1].qps`, message).
pub fn check_stages(stages: &[LoadStage]) -> Result<(), (String, String)> {
    if stages.is_empty() {
        return Err((
            String::new(),
            "is empty; give at least one stage, e.g. [{duration: 30s, qps: 100}]".into(),
        ));
    }
    if stages.len() > MAX_STAGES {
        return Err((
            String::new(),
            format!(
                "{} stages; at most {MAX_STAGES} (each has its own statistics in the result)",
                stages.len()
            ),
        ));
    }
    let mut total = Duration::ZERO;
    for (i, s) in stages.iter().enumerate() {
        let d = s.duration.as_duration();
        if d.is_zero() {
            return Err((
                format!("[{i}].duration"),
                "must be more than 0, e.g. \"30s\"".into(),
            ));
        }
        if !(s.qps.is_finite() && s.qps > 0.0) {
            return Err((
                format!("[{i}].qps"),
                format!(
                    "{} is not a rate; a stage needs requests per second above 0, e.g. 100",
                    s.qps
                ),
            ));
        }
        crate::model::limits::check_qps(s.qps).map_err(|m| (format!("[{i}].qps"), m))?;
        total = total.saturating_add(d);
        if total > MAX_DURATION {
            return Err((
                format!("[{i}].duration"),
                "the stages last more than 100000h in total".into(),
            ));
        }
    }
    Ok(())
}

/// One stage with its place on the schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// First ticket of the stage.
    pub first: u64,
    /// Tickets in the stage (at least 1).
    pub tickets: u64,
    /// Start, in seconds after the measured phase started.
    pub start: f64,
    /// Length in seconds.
    pub duration: f64,
    /// Rate at the start and at the end of the stage (equal: constant).
    pub from_qps: f64,
    pub to_qps: f64,
}

impl Segment {
    fn new(first: u64, start: f64, duration: f64, from_qps: f64, to_qps: f64) -> Self {
        let mut s = Segment {
            first,
            tickets: 0,
            start,
            duration,
            from_qps,
            to_qps,
        };
        // Tickets due before the end, computed with the very function that times them.
        let expected = ((from_qps + to_qps) / 2.0 * duration).ceil();
        let mut n = if expected.is_finite() && expected > 0.0 {
            expected as u64
        } else {
            1
        };
        while n > 1 && s.offset(n - 1) >= duration {
            n -= 1;
        }
        while s.offset(n) < duration {
            n += 1;
        }
        s.tickets = n.max(1);
        s
    }

    /// Seconds after the stage's start at which its `j`-th ticket is due.
    #[inline]
    pub fn offset(&self, j: u64) -> f64 {
        if j == 0 {
            return 0.0;
        }
        let j = j as f64;
        let r0 = self.from_qps;
        let slope = (self.to_qps - r0) / self.duration;
        if slope == 0.0 {
            return j / r0;
        }
        // r0 t + slope t^2 / 2 = j, in the form that is stable for small slopes and r0 = 0
        let disc = r0 * r0 + 2.0 * slope * j;
        if disc <= 0.0 {
            // a falling ramp never reaches ticket j inside the stage
            return f64::INFINITY;
        }
        2.0 * j / (r0 + disc.sqrt())
    }

    /// The average planned rate.
    pub fn planned_qps(&self) -> f64 {
        (self.from_qps + self.to_qps) / 2.0
    }
}

/// The schedule of the measured phase: its stages, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub segments: Vec<Segment>,
}

impl Schedule {
    /// The schedule of `stages` (checked with [`check_stages`] first).
    pub fn new(stages: &[LoadStage]) -> Self {
        let mut segments = Vec::with_capacity(stages.len());
        let (mut first, mut start, mut prev_qps) = (0u64, 0.0f64, 0.0f64);
        for s in stages {
            let d = s.duration.as_duration().as_secs_f64();
            let from = if s.ramp == Some(true) {
                prev_qps
            } else {
                s.qps
            };
            let seg = Segment::new(first, start, d, from, s.qps);
            first = first.saturating_add(seg.tickets);
            start += d;
            prev_qps = s.qps;
            segments.push(seg);
        }
        Schedule { segments }
    }

    /// Tickets over every stage.
    pub fn total_tickets(&self) -> u64 {
        self.segments
            .last()
            .map_or(0, |s| s.first.saturating_add(s.tickets))
    }

    /// Stage of ticket `k` and when it is due (after the phase's start), or None past the
    /// last stage. `cursor` is the caller's hint (the stage of its previous ticket: tickets
    /// only grow).
    #[inline]
    pub fn due(&self, k: u64, cursor: &mut usize) -> Option<(usize, Duration)> {
        let mut i = *cursor;
        loop {
            let s = self.segments.get(i)?;
            if k < s.first.saturating_add(s.tickets) {
                *cursor = i;
                let secs = s.start + s.offset(k - s.first);
                let at = Duration::try_from_secs_f64(secs)
                    .unwrap_or(MAX_DURATION)
                    .min(MAX_DURATION);
                return Some((i, at));
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(secs: f64, qps: f64, ramp: bool) -> LoadStage {
        LoadStage {
            duration: GoDuration(Duration::from_secs_f64(secs)),
            qps,
            ramp: ramp.then_some(true),
        }
    }

    #[test]
    fn constant_stages_hold_exactly_rate_times_duration_tickets() {
        let s = Schedule::new(&[stage(10.0, 50.0, false), stage(20.0, 200.0, false)]);
        assert_eq!(s.segments[0].tickets, 500);
        assert_eq!(s.segments[1].tickets, 4000);
        assert_eq!(s.segments[1].first, 500);
        assert_eq!(s.total_tickets(), 4500);
        let mut c = 0;
        assert_eq!(s.due(0, &mut c), Some((0, Duration::ZERO)));
        assert_eq!(s.due(499, &mut c), Some((0, Duration::from_secs_f64(9.98))));
        // the second stage starts at 10 s, one ticket every 5 ms
        assert_eq!(s.due(500, &mut c), Some((1, Duration::from_secs(10))));
        assert_eq!(c, 1);
        assert_eq!(
            s.due(501, &mut c),
            Some((1, Duration::from_secs_f64(10.005)))
        );
        assert_eq!(s.due(4500, &mut c), None);
        // a fractional count rounds up: 0.3 s at 10 qps is due at 0, 0.1, 0.2 s
        assert_eq!(Schedule::new(&[stage(0.3, 10.0, false)]).total_tickets(), 3);
        assert_eq!(
            Schedule::new(&[stage(0.25, 10.0, false)]).total_tickets(),
            3
        );
        assert_eq!(Schedule::new(&[stage(1.0, 0.5, false)]).total_tickets(), 1);
    }

    #[test]
    fn a_ramp_holds_the_area_under_its_rate() {
        // 0 -> 100 qps over 10 s: 500 tickets, the j-th due at sqrt(j / 5) s
        let s = Schedule::new(&[stage(10.0, 100.0, true), stage(1.0, 100.0, false)]);
        assert_eq!(s.segments[0].tickets, 500);
        assert_eq!(s.segments[0].planned_qps(), 50.0);
        let mut c = 0;
        let (_, t) = s.due(125, &mut c).unwrap();
        assert!((t.as_secs_f64() - 5.0).abs() < 1e-9, "{t:?}");
        // ramping down 100 -> 20 over 4 s: (100 + 20) / 2 * 4 = 240
        let down = Schedule::new(&[stage(1.0, 100.0, false), stage(4.0, 20.0, true)]);
        assert_eq!(down.segments[1].tickets, 240);
        assert_eq!(down.segments[1].from_qps, 100.0);
        // every ticket of a ramp is due inside its stage and in order
        let seg = down.segments[1];
        let mut last = -1.0;
        for j in 0..seg.tickets {
            let t = seg.offset(j);
            assert!(t > last && t < seg.duration, "{j}: {t}");
            last = t;
        }
        assert!(seg.offset(seg.tickets) >= seg.duration);
    }

    #[test]
    fn bad_stages_name_the_field() {
        let field = |s: &[LoadStage]| check_stages(s).unwrap_err().0;
        assert_eq!(field(&[]), "");
        assert_eq!(
            field(&[stage(1.0, 1.0, false), stage(0.0, 1.0, false)]),
            "[1].duration"
        );
        assert_eq!(field(&[stage(1.0, 0.0, false)]), "[0].qps");
        assert_eq!(field(&[stage(1.0, f64::NAN, false)]), "[0].qps");
        assert_eq!(field(&[stage(1.0, 0.0001, false)]), "[0].qps");
        assert_eq!(field(&vec![stage(1.0, 1.0, false); MAX_STAGES + 1]), "");
        assert!(check_stages(&[stage(1.0, 1.0, true)]).is_ok());
    }
}
