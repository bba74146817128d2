//! Was the load generator the bottleneck? Its own CPU time, the CPU throttling of its
//! cgroup (`cpu.stat`, cgroup v2 or v1) over the measured phase, and how far the
//! fixed-rate schedule fell behind; [`warnings`] turns them into advice.
//!
//! - CPU time: `CLOCK_PROCESS_CPUTIME_ID` (every thread of the runner, user and system).
//! - Throttling: the runner's own cgroup, found through `/proc/self/cgroup` and
//!   `/proc/self/mountinfo`: v2 `cpu.stat` (`nr_periods`, `nr_throttled`,
//!   `throttled_usec`) and `cpu.max`; v1 (the `cpu` controller) `cpu.stat` (`throttled_time`
//!   in ns) and `cpu.cfs_quota_us` / `cpu.cfs_period_us`. Absent files mean unknown, never
//!   an error: the load runs the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::report::LoadReport;
use super::stats::LATE_AFTER;

/// Share of CPU periods throttled from which the run is reported as throttled.
pub const THROTTLED_WARN: f64 = 0.10;
/// Share of requests sent late ([`LATE_AFTER`]) from which the schedule is reported as
/// fallen behind.
pub const LATE_WARN: f64 = 0.01;
/// Share of the available CPUs used from which the generator is reported as saturated
/// (when no throttling figures exist).
pub const SATURATED_WARN: f64 = 0.90;

/// Throttling counters of a cgroup (cumulative, or a difference of two readings).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CgroupCpu {
    /// Enforcement periods (the quota applies per period, 100 ms by default).
    pub periods: u64,
    /// Periods in which the cgroup used its whole quota and was stopped.
    pub throttled_periods: u64,
    /// Time the cgroup's threads were stopped.
    pub throttled: Duration,
}

impl CgroupCpu {
    /// Throttled periods over periods (0 without periods).
    pub fn throttled_share(&self) -> f64 {
        if self.periods == 0 {
            0.0
        } else {
            self.throttled_periods as f64 / self.periods as f64
        }
    }

    pub(super) fn minus(&self, earlier: &CgroupCpu) -> CgroupCpu {
        CgroupCpu {
            periods: self.periods.saturating_sub(earlier.periods),
            throttled_periods: self
                .throttled_periods
                .saturating_sub(earlier.throttled_periods),
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }
}

/// The runner's CPU cgroup: where its `cpu.stat` is and which format it has.
#[derive(Clone, Debug, PartialEq)]
pub struct Cgroup {
    pub dir: PathBuf,
    pub v2: bool,
}

impl Cgroup {
    /// The calling process's CPU cgroup, when the files say (None: unknown).
    pub fn own() -> Option<Cgroup> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let candidates = cgroup_dirs(&cgroups, &mounts);
        // the one whose cpu.stat has throttling counters (the cpu controller is on)
        candidates.into_iter().find(|c| c.read_stat().is_some())
    }

    /// Throttling counters now (None: unreadable, or the cpu controller is off).
    pub fn read_stat(&self) -> Option<CgroupCpu> {
        let text = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        parse_cpu_stat(&text, self.v2)
    }

    /// The CPU limit in cores (quota over period), None when unlimited or unknown.
    pub fn limit(&self) -> Option<f64> {
        if self.v2 {
            parse_cpu_max(&std::fs::read_to_string(self.dir.join("cpu.max")).ok()?)
        } else {
            let quota = std::fs::read_to_string(self.dir.join("cpu.cfs_quota_us")).ok()?;
            let period = std::fs::read_to_string(self.dir.join("cpu.cfs_period_us")).ok()?;
            let (q, p): (i64, i64) = (quota.trim().parse().ok()?, period.trim().parse().ok()?);
            (q > 0 && p > 0).then(|| q as f64 / p as f64)
        }
    }
}

/// Candidate CPU cgroup directories of a process, from its `/proc/<pid>/cgroup` and
/// `/proc/<pid>/mountinfo`: the v1 `cpu` hierarchy first, then the v2 one.
pub fn cgroup_dirs(proc_cgroup: &str, mountinfo: &str) -> Vec<Cgroup> {
    let mut v1_path = None;
    let mut v2_path = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "cpu") {
            v1_path = Some(path.to_string());
        }
    }
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount_point), Some(fstype)) =
            (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let super_opts = right.get(2).copied().unwrap_or_default();
        let (path, v2) = match *fstype {
            "cgroup2" => (v2_path.as_deref(), true),
            "cgroup" if super_opts.split(',').any(|o| o == "cpu") => (v1_path.as_deref(), false),
            _ => continue,
        };
        let Some(path) = path else { continue };
        // the path is relative to the hierarchy's root; the mount shows `root` of it
        let rel = if *root == "/" {
            path
        } else {
            path.strip_prefix(root).unwrap_or(path)
        };
        let dir = Path::new(&unescape_mount(mount_point)).join(rel.trim_start_matches('/'));
        out.push(Cgroup { dir, v2 });
    }
    out.sort_by_key(|c| c.v2);
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// `cpu.stat` of cgroup v2 (`throttled_usec`) or v1 (`throttled_time`, ns); None without
/// the throttling counters.
pub fn parse_cpu_stat(text: &str, v2: bool) -> Option<CgroupCpu> {
    let mut periods = None;
    let mut throttled_periods = None;
    let mut throttled = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<u64>() else {
            continue;
        };
        match k {
            "nr_periods" => periods = Some(v),
            "nr_throttled" => throttled_periods = Some(v),
            "throttled_usec" if v2 => throttled = Some(Duration::from_micros(v)),
            "throttled_time" if !v2 => throttled = Some(Duration::from_nanos(v)),
            _ => {}
        }
    }
    Some(CgroupCpu {
        periods: periods?,
        throttled_periods: throttled_periods?,
        throttled: throttled.unwrap_or_default(),
    })
}

/// `cpu.max` (`max 100000` or `50000 100000`) in cores; None when unlimited.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next().unwrap_or("100000").parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// CPU time of this process so far (every thread).
pub fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// One reading at the start of the measured phase.
#[derive(Clone, Debug)]
pub(super) struct Sample {
    cpu: Duration,
    cgroup: Option<(Cgroup, CgroupCpu)>,
}

impl Sample {
    pub(super) fn now() -> Self {
        let cgroup = Cgroup::own().and_then(|c| c.read_stat().map(|s| (c, s)));
        Sample {
            cpu: process_cpu(),
            cgroup,
        }
    }

    /// What happened since this reading.
    pub(super) fn since(&self) -> GeneratorReport {
        let cpu = process_cpu().saturating_sub(self.cpu);
        let (throttling, cpu_limit) = match &self.cgroup {
            Some((c, before)) => (c.read_stat().map(|s| s.minus(before)), c.limit()),
            None => (None, None),
        };
        GeneratorReport {
            cpu: Some(cpu),
            throttling,
            cpu_limit,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The load generator during the measured phase.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeneratorReport {
    /// CPU time the runner used.
    pub cpu: Option<Duration>,
    /// Throttling of its cgroup (None: no cgroup CPU controller found).
    pub throttling: Option<CgroupCpu>,
    /// Its cgroup's CPU limit in cores (None: none or unknown).
    pub cpu_limit: Option<f64>,
    /// CPUs it may run on.
    pub cpus: usize,
}

impl GeneratorReport {
    /// CPUs used on average over `elapsed`.
    pub fn cpus_used(&self, elapsed: Duration) -> Option<f64> {
        let secs = elapsed.as_secs_f64();
        self.cpu
            .filter(|_| secs > 0.0)
            .map(|c| c.as_secs_f64() / secs)
    }

    /// The CPUs it could use: the cgroup limit, at most the CPUs it may run on.
    pub fn cpus_available(&self) -> f64 {
        let cpus = self.cpus.max(1) as f64;
        self.cpu_limit.map_or(cpus, |l| l.min(cpus))
    }
}

fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p >= 10.0 || p == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// What the user should know about the load generator of `report`: empty when it kept up.
pub fn warnings(report: &LoadReport) -> Vec<String> {
    let g = &report.generator;
    let mut out = Vec::new();
    let throttled = g
        .throttling
        .filter(|t| t.periods > 0 && t.throttled_share() >= THROTTLED_WARN);
    let used = g.cpus_used(report.elapsed);
    let saturated = used.is_some_and(|u| u >= SATURATED_WARN * g.cpus_available());
    if let Some(t) = throttled {
        let limit = g
            .cpu_limit
            .map(|l| format!(", CPU limit {} cores", trim(l)))
            .unwrap_or_default();
        out.push(format!(
            "the load generator was throttled for {} of the run ({} of {} CPU periods, {:.1} s stopped{limit}); latencies include that; add pods or raise the CPU limit",
            pct(t.throttled_share()),
            t.throttled_periods,
            t.periods,
            t.throttled.as_secs_f64()
        ));
    } else if saturated {
        out.push(format!(
            "the load generator used {} of its {} CPUs; latencies include its own queueing; add pods or raise the CPU limit",
            trim(used.unwrap_or_default()),
            trim(g.cpus_available())
        ));
    }
    let lag = &report.lag;
    if lag.count() > 0 && lag.late() as f64 >= LATE_WARN * lag.count() as f64 {
        let cause = if throttled.is_some() || saturated {
            "the generator lacked CPU"
        } else {
            "every connection was busy or the generator was not scheduled on time; raise connections, or add pods if its CPU is short"
        };
        out.push(format!(
            "the fixed-rate schedule fell behind: {} of the requests were sent {} ms or more after their due time (p99 {} ms, max {} ms; their latencies are measured from the due time): {cause}",
            pct(lag.late() as f64 / lag.count() as f64),
            LATE_AFTER.as_millis(),
            trim(lag.percentile_ms(99.0).unwrap_or_default()),
            trim(lag.max_ms().unwrap_or_default()),
        ));
    }
    out
}

fn trim(x: f64) -> String {
    crate::report::view::fmt_num((x * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_and_v1_are_found_and_read() {
        // a container with cgroup namespaces: v2 only
        let v2 = cgroup_dirs(
            "0::/\n",
            "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(
            v2,
            vec![Cgroup {
                dir: "/sys/fs/cgroup".into(),
                v2: true
            }]
        );
        // a hybrid host: the v1 cpu controller first
        let hybrid = cgroup_dirs(
            "4:memory:/x\n2:cpu,cpuacct:/kubepods/pod1/c1\n0::/user.slice\n",
            "40 30 0:35 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             41 30 0:36 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             42 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(hybrid.len(), 2);
        assert_eq!(
            hybrid[0].dir,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1")
        );
        assert!(!hybrid[0].v2);
        assert_eq!(
            hybrid[1].dir,
            PathBuf::from("/sys/fs/cgroup/unified/user.slice")
        );
        // a mount of a sub-tree
        let sub = cgroup_dirs(
            "0::/kubepods/pod1/c1\n",
            "30 24 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(sub[0].dir, PathBuf::from("/sys/fs/cgroup/c1"));

        let s2 = "usage_usec 100\nnr_periods 50\nnr_throttled 19\nthrottled_usec 2500000\n";
        assert_eq!(
            parse_cpu_stat(s2, true),
            Some(CgroupCpu {
                periods: 50,
                throttled_periods: 19,
                throttled: Duration::from_millis(2500)
            })
        );
        let s1 = "nr_periods 10\nnr_throttled 5\nthrottled_time 7000000\n";
        let c = parse_cpu_stat(s1, false).unwrap();
        assert_eq!(c.throttled, Duration::from_millis(7));
        assert_eq!(c.throttled_share(), 0.5);
        // v2 without the cpu controller: no throttling counters
        assert_eq!(parse_cpu_stat("usage_usec 5\nuser_usec 3\n", true), None);
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
    }

    #[test]
    fn throttling_and_lag_become_advice() {
        let mut r = LoadReport {
            elapsed: Duration::from_secs(10),
            ..LoadReport::default()
        };
        r.generator = GeneratorReport {
            cpu: Some(Duration::from_secs(1)),
            throttling: Some(CgroupCpu {
                periods: 100,
                throttled_periods: 38,
                throttled: Duration::from_secs(3),
            }),
            cpu_limit: Some(0.5),
            cpus: 2,
        };
        for _ in 0..90 {
            r.lag.record(Duration::from_micros(300));
        }
        for _ in 0..10 {
            r.lag.record(Duration::from_millis(40));
        }
        let w = warnings(&r);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("the load generator was throttled for 38% of the run (38 of 100 CPU periods, 3.0 s stopped, CPU limit 0.5 cores); latencies include that; add pods or raise the CPU limit"), "{}", w[0]);
        assert!(
            w[1].contains("10% of the requests were sent 10 ms or more after their due time"),
            "{}",
            w[1]
        );
        assert!(w[1].ends_with("the generator lacked CPU"), "{}", w[1]);
        // kept up: nothing to say
        r.generator.throttling = Some(CgroupCpu {
            periods: 100,
            throttled_periods: 2,
            throttled: Duration::from_millis(10),
        });
        r.lag = Default::default();
        r.lag.record(Duration::from_micros(800));
        assert!(warnings(&r).is_empty());
        // no cgroup figures, but every CPU busy
        r.generator.throttling = None;
        r.generator.cpu_limit = None;
        r.generator.cpu = Some(Duration::from_secs(19));
        let w = warnings(&r);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("the load generator used 1.9 of its 2 CPUs"),
            "{}",
            w[0]
        );
    }
}
