//! What distributed load costs (`iter8-runner --workers N`, chart `distributedLoad.pods`):
//!
//! - `dist_cost merge [SAMPLES]`: the size of one worker's partial result (JSON, as stored
//!   in its `load-worker-<i>` key) after SAMPLES requests with realistic latencies
//!   (log-normal, median 5 ms, a long tail; fixed-rate lag), and the coordinator's cost of
//!   reading and merging N of them, for N = 2 .. 100.
//! - `dist_cost secret NAMESPACE [N]` (KUBECONFIG): on a real API server, the per-pod calls
//!   of one load phase: a worker's PATCH of its record (arrival; then with its partial
//!   result) and the coordinator's GET of the Secret holding N records, as percentiles over
//!   repeated calls. Creates and deletes the Secret `dist-cost` in NAMESPACE.
//!
//! Prints `key=value` lines.

use std::time::{Duration, Instant, SystemTime};

use iter8::dist::rendezvous::SecretRendezvous;
use iter8::dist::{Rendezvous, Step, WorkerRecord};
use iter8::load::partial::PartialReport;
use iter8::load::LoadReport;

/// Deterministic pseudo-random numbers (no dependency).
struct Lcg(u64);

impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let (u1, u2) = (self.next_f64(), self.next_f64());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * z).exp()
    }
}

/// A worker's report after `samples` requests at a fixed rate for 60 s.
fn realistic(samples: u64, seed: u64) -> PartialReport {
    let mut rng = Lcg(seed.wrapping_mul(2654435761) + 1);
    let mut r = LoadReport::default();
    for i in 0..samples {
        let ms = rng.lognormal(5.0, 0.9);
        r.latency.record(Duration::from_secs_f64(ms / 1000.0));
        r.lag
            .record(Duration::from_secs_f64(rng.lognormal(0.3, 1.2) / 1000.0));
        let status = if i % 500 == 0 { 503 } else { 200 };
        *r.statuses.entry(status).or_default() += 1;
    }
    r.requests = samples;
    r.errors = r.statuses.get(&503).copied().unwrap_or(0);
    r.elapsed = Duration::from_secs(60);
    r.started = Some(SystemTime::now());
    r.to_partial(SystemTime::now())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn merge_mode(samples: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let parts: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            let rec = WorkerRecord {
                run: "bench".into(),
                at: Some(Step { task: 0, phase: 0 }),
                partials: [("0.0".to_string(), realistic(samples, i))].into(),
                failed: None,
            };
            serde_json::to_vec(&rec)
        })
        .collect::<Result<_, _>>()?;
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    println!(
        "samples_per_worker={samples} record_bytes_min={} record_bytes_max={} build_secs={:.1}",
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
        started.elapsed().as_secs_f64()
    );
    for n in [2usize, 3, 10, 30, 100] {
        let mut times = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            let recs: Vec<WorkerRecord> = parts[..n]
                .iter()
                .map(|b| serde_json::from_slice(b))
                .collect::<Result<_, _>>()?;
            let merged =
                LoadReport::merge_partials(recs.iter().filter_map(|r| r.partials.get("0.0")))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            times.push(t.elapsed());
            assert_eq!(merged.requests, samples * n as u64);
        }
        times.sort();
        println!(
            "workers={n} records_bytes={} parse_and_merge_ms_p50={:.2} parse_and_merge_ms_min={:.2}",
            sizes[..n].iter().sum::<usize>(),
            percentile(&times, 0.5),
            percentile(&times, 0.0)
        );
    }
    Ok(())
}

async fn secret_mode(namespace: &str, n: u32) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, DeleteParams, PostParams};
    let client = iter8::k8s::client(&iter8::k8s::ClientOptions::default()).await?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let _ = api.delete("dist-cost", &DeleteParams::default()).await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "dist-cost"},
        "stringData": {"experiment.yaml": "spec: []\n"}
    }))?;
    api.create(&PostParams::default(), &secret).await?;
    let rv = Rendezvous::Secret(Box::new(SecretRendezvous::new(
        client,
        namespace,
        "dist-cost",
    )));
    let partial = realistic(100_000, 7);
    let arrival = WorkerRecord {
        run: "bench".into(),
        at: Some(Step { task: 0, phase: 0 }),
        ..WorkerRecord::default()
    };
    let with_partial = WorkerRecord {
        partials: [("0.0".to_string(), partial)].into(),
        ..arrival.clone()
    };
    println!(
        "record_bytes_arrival={} record_bytes_partial={}",
        serde_json::to_vec(&arrival)?.len(),
        serde_json::to_vec(&with_partial)?.len()
    );
    let reps = 30;
    let mut arrive = Vec::new();
    let mut store = Vec::new();
    for i in 0..reps {
        let index = 1 + (i % (n - 1).max(1));
        let t = Instant::now();
        rv.write_worker(index, &arrival).await?;
        arrive.push(t.elapsed());
        let t = Instant::now();
        rv.write_worker(index, &with_partial).await?;
        store.push(t.elapsed());
    }
    for index in 1..n {
        rv.write_worker(index, &with_partial).await?;
    }
    let mut read = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let all = rv.read_workers(n).await?;
        read.push(t.elapsed());
        assert_eq!(all.len() as u32, n - 1);
    }
    for v in [&mut arrive, &mut store, &mut read] {
        v.sort();
    }
    println!(
        "workers={n} patch_arrival_ms_p50={:.1} patch_arrival_ms_p95={:.1} patch_partial_ms_p50={:.1} patch_partial_ms_p95={:.1} get_all_ms_p50={:.1} get_all_ms_p95={:.1}",
        percentile(&arrive, 0.5),
        percentile(&arrive, 0.95),
        percentile(&store, 0.5),
        percentile(&store, 0.95),
        percentile(&read, 0.5),
        percentile(&read, 0.95),
    );
    let _ = api.delete("dist-cost", &DeleteParams::default()).await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("merge") => merge_mode(args.get(1).map_or(Ok(1_000_000), |s| s.parse())?),
        Some("secret") => {
            let ns = args.get(1).map_or("default", String::as_str).to_string();
            let n: u32 = args.get(2).map_or(Ok(3), |s| s.parse())?;
            tokio::runtime::Runtime::new()?.block_on(secret_mode(&ns, n.max(2)))
        }
        _ => anyhow::bail!("usage: dist_cost merge [SAMPLES] | dist_cost secret NAMESPACE [N]"),
    }
}
