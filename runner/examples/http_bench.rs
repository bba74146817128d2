//! Benchmark driver for `scripts/bench`: runs the `http` task's load (the same code as an
//! experiment) and prints one line of `key=value` figures, including this process's CPU
//! time and peak RSS (from /proc).
//!
//! Usage: `http_bench URL CONNECTIONS QPS NUM_REQUESTS DURATION [THREADS]`
//! (`NUM_REQUESTS` 0 = none, `DURATION` a Go duration or `0` = none; `QPS` 0 = max rate).

use std::time::Instant;

use iter8::tasks::http::HttpTask;
use iter8::tasks::Progress;

fn proc_figures() -> ((f64, f64), u64) {
    // utime, stime (fields 14, 15 of /proc/self/stat, in clock ticks of 1/100 s on Linux)
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut / 100.0, st / 100.0))
        })
        .unwrap_or((f64::NAN, f64::NAN));
    let hwm_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    (cpu, hwm_kib)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        anyhow::bail!("usage: http_bench URL CONNECTIONS QPS NUM_REQUESTS DURATION [THREADS]");
    }
    let mut yaml = format!(
        "url: {}\nconnections: {}\nqps: {}\n",
        args[0], args[1], args[2]
    );
    if args[3] != "0" {
        yaml.push_str(&format!("numRequests: {}\n", args[3]));
    }
    if args[4] != "0" {
        yaml.push_str(&format!("duration: {}\n", args[4]));
    }
    let task: HttpTask = serde_yaml::from_str(&yaml)?;
    task.validate()?;
    // The runner's own runtime is irrelevant to the load (the engine runs its own worker
    // threads); a current-thread runtime keeps this process lean.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let progress = Progress::default();
    let started = Instant::now();
    let reports = rt.block_on(task.measure(&progress))?;
    let wall = started.elapsed().as_secs_f64();
    let ((user, sys), hwm) = proc_figures();
    for (_, r) in reports {
        println!(
            "requests={} errors={} elapsed_s={:.4} rate={:.1} wall_s={:.4} cpu_s={:.2} \
             user_s={:.2} sys_s={:.2} peak_rss_kib={} p50_ms={:.3} p99_ms={:.3} statuses={:?} kinds={:?}",
            r.requests,
            r.errors,
            r.elapsed.as_secs_f64(),
            r.rate(),
            wall,
            user + sys,
            user,
            sys,
            hwm,
            r.latency.percentile_ms(50.0).unwrap_or(f64::NAN),
            r.latency.percentile_ms(99.0).unwrap_or(f64::NAN),
            r.statuses,
            r.error_kinds,
        );
    }
    Ok(())
}
