//! Benchmark driver for `scripts/bench-grpc`: runs the `grpc` task's load (the same code as
//! an experiment: every reply decoded, grpc-status checked) against
//! `helloworld.Greeter/SayHello` described inline, and prints one line of `key=value`
//! figures including this process's CPU time (from /proc).
//!
//! Usage: `grpc_bench HOST:PORT CONCURRENCY CONNECTIONS TOTAL`

use std::time::Instant;

use iter8::tasks::grpc::GrpcTask;
use iter8::tasks::Progress;

const PROTO: &str = r#"
syntax = "proto3";
package helloworld;
service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
message HelloRequest { string name = 1; }
message HelloReply { string message = 1; }
"#;

fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        anyhow::bail!("usage: grpc_bench HOST:PORT CONCURRENCY CONNECTIONS TOTAL");
    }
    let mut task: GrpcTask = serde_yaml::from_str(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\ndata: {{name: world}}\nconcurrency: {}\nconnections: {}\ntotal: {}\n",
        args[0], args[1], args[2], args[3]
    ))?;
    task.proto_text = Some(PROTO.to_string());
    task.validate()?;
    // Log as the runner does (EnvFilter, default "info"): with a subscriber, disabled
    // trace-level spans of the HTTP/2 stack cost next to nothing, as in a real run; without
    // one, `tracing` falls back to checking the `log` crate on every span.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let progress = Progress::default();
    let started = Instant::now();
    let reports = rt.block_on(task.measure(&progress))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds();
    for (_, r) in reports {
        println!(
            "requests={} errors={} elapsed_s={:.4} rate={:.1} wall_s={:.4} cpu_s={:.2} p50_ms={:.3} p99_ms={:.3} statuses={:?}",
            r.requests,
            r.errors,
            r.elapsed.as_secs_f64(),
            r.rate(),
            wall,
            cpu,
            r.latency.percentile_ms(50.0).unwrap_or(f64::NAN),
            r.latency.percentile_ms(99.0).unwrap_or(f64::NAN),
            r.statuses,
        );
    }
    Ok(())
}
