//! Verdicts beyond absolute SLOs, end to end with `iter8-runner` and `iter8` on local runs
//! (the shipped examples against a local service): relative SLOs against a baseline,
//! regression against the previous loop (`--continue`), the statistical comparison of
//! versions with `iter8 assert -c comparisons|winner`, and the verdict metrics in a real
//! Prometheus through a real Pushgateway (Debian packages).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use iter8::model::verdicts::Verdict;
use iter8::model::ExperimentResult;
use support::prometheus::{Prometheus, Pushgateway, ScrapeJob};

/// The demo service's routes (runner/examples/demo-server.rs), with a wider gap so that a
/// busy machine cannot close it: `/v1` after 20 ms (the demo: 5 ms), `/v2` and `/get` after
/// 2 ms; plus `/var` after `delay` ms and `/flaky` (every 2nd request 500).
struct Service {
    addr: SocketAddr,
    delay: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Service {
    async fn start() -> Service {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let delay = Arc::new(AtomicU64::new(2));
        let flaky = Arc::new(AtomicU64::new(0));
        let (d, f) = (delay.clone(), flaky.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (d, f) = (d.clone(), f.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (d, f) = (d.clone(), f.clone());
                        async move {
                            let (status, ms) = match req.uri().path() {
                                "/v1" => (200, 20),
                                "/v2" | "/get" => (200, 2),
                                "/var" => (200, d.load(Ordering::Relaxed)),
                                "/flaky" => {
                                    let n = f.fetch_add(1, Ordering::Relaxed);
                                    (if n % 2 == 1 { 500 } else { 200 }, 1)
                                }
                                _ => (404, 0),
                            };
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"ok\n")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Service { addr, delay, task }
    }
}

/// A shipped example with the demo service's address replaced by `svc`'s.
fn example(name: &str, svc: &Service) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .replace("http://127.0.0.1:8080", &format!("http://{}", svc.addr))
}

async fn runner(dir: &Path, experiment: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("experiment.yaml"), experiment).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir)
        .args(["-f", "experiment.yaml", "-o", "result.yaml", "--quiet"])
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap()
}

/// `iter8 <args> -f result.yaml`: exit code and stdout.
async fn iter8(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_iter8"))
        .current_dir(dir)
        .args(args)
        .args(["-f", "result.yaml"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn result(dir: &Path) -> ExperimentResult {
    serde_yaml::from_str(&std::fs::read_to_string(dir.join("result.yaml")).unwrap()).unwrap()
}

fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_slos_against_a_baseline() {
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = example("relative-slos.yaml", &svc);
    ok(&runner(dir.path(), &yaml, &[]).await);
    let r = result(dir.path());
    let rel = r
        .insights
        .as_ref()
        .unwrap()
        .relative_slos
        .clone()
        .expect("relativeSLOs");
    assert_eq!((rel.baseline, rel.baseline_name.as_str()), (0, "v1"));
    let metrics: Vec<&str> = rel.checks.iter().map(|c| c.metric.as_str()).collect();
    assert_eq!(
        metrics,
        [
            "http/latency-p50",
            "http/latency-mean",
            "http/request-count"
        ]
    );
    // v2 (2 ms) is faster than v1 (20 ms): every relative limit holds.
    for c in &rel.checks {
        assert!(c.versions.iter().all(|v| v.satisfied), "{c:?}");
        assert_eq!(c.versions[0].note.as_deref(), Some("baseline"));
    }
    let mean = &rel.checks[1].versions[1];
    let (limit, reference) = (mean.limit.unwrap(), mean.reference.unwrap());
    assert!((limit - reference * 1.1).abs() < 1e-9, "{mean:?}");
    assert_eq!(iter8(dir.path(), &["assert", "-c", "slos"]).await.0, 0);
    let (_, text) = iter8(dir.path(), &["report"]).await;
    assert!(
        text.contains("Relative SLOs (against baseline v1)"),
        "{text}"
    );

    // Against v2 as the baseline, v1 is far more than 10% slower.
    ok(&runner(
        dir.path(),
        &yaml.replace("baseline: v1", "baseline: v2"),
        &[],
    )
    .await);
    let r = result(dir.path());
    let rel = r.insights.as_ref().unwrap().relative_slos.clone().unwrap();
    assert_eq!(rel.baseline_name, "v2");
    assert!(!rel.checks[1].versions[0].satisfied, "{:?}", rel.checks[1]);
    assert!(!r.slos_satisfied());
    let (code, out) = iter8(dir.path(), &["assert", "-c", "slos"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("relative SLO violated: version v1: http/latency-mean = "),
        "{out}"
    );
    let (_, html) = iter8(dir.path(), &["report", "-o", "html"]).await;
    assert!(html.contains("id=\"relative-slos\""), "{html}");

    // A baseline that is no version fails the assess task, naming the field.
    let out = runner(
        dir.path(),
        &yaml.replace("baseline: v1", "baseline: v9"),
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let f = result(dir.path()).failed_task.expect("failed");
    assert!(
        f.message.starts_with("with.baseline: baseline \"v9\" is not a version of this experiment; its versions are v1, v2"),
        "{}",
        f.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_against_the_previous_loop_with_continue() {
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = example("regression.yaml", &svc).replace("/get", "/var");
    // Loop 1: nothing to compare with; loop 2: the same speed.
    svc.delay.store(10, Ordering::Relaxed);
    ok(&runner(dir.path(), &yaml, &[]).await);
    let r = result(dir.path());
    let reg = r
        .insights
        .as_ref()
        .unwrap()
        .regression
        .clone()
        .expect("regression");
    assert!(reg.checks.iter().all(|c| c.versions[0].satisfied));
    assert_eq!(
        reg.checks[0].versions[0].note.as_deref(),
        Some("no previous loop")
    );
    ok(&runner(dir.path(), &yaml, &["--continue"]).await);
    let r = result(dir.path());
    assert_eq!(r.num_loops, 2);
    let reg = r.insights.as_ref().unwrap().regression.clone().unwrap();
    let mean = &reg.checks[0].versions[0];
    assert!(mean.reference.is_some() && mean.satisfied, "{mean:?}");
    assert_eq!(iter8(dir.path(), &["assert", "-c", "slos"]).await.0, 0);

    // Loop 3: six times slower than loop 2: a regression.
    svc.delay.store(60, Ordering::Relaxed);
    ok(&runner(dir.path(), &yaml, &["--continue"]).await);
    let r = result(dir.path());
    assert_eq!(r.num_loops, 3);
    let reg = r.insights.as_ref().unwrap().regression.clone().unwrap();
    let mean = &reg.checks[0].versions[0];
    assert!(!mean.satisfied, "{mean:?}");
    let values = &r.insights.as_ref().unwrap().non_histogram_metric_values[0]["http/latency-mean"];
    assert_eq!(mean.reference, Some(values[1]));
    assert_eq!(mean.value, Some(values[2]));
    let (code, out) = iter8(dir.path(), &["assert", "-c", "slos"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("relative SLO violated: version default: http/latency-mean = ")
            && out.contains("<= +100% of previous loop"),
        "{out}"
    );
    let (_, text) = iter8(dir.path(), &["report"]).await;
    assert!(
        text.contains("Regression (against the previous loop)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparison_of_versions_and_assert_conditions() {
    let svc = Service::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = example("compare.yaml", &svc);
    ok(&runner(dir.path(), &yaml, &[]).await);
    let r = result(dir.path());
    let cmp = r
        .insights
        .as_ref()
        .unwrap()
        .comparisons
        .clone()
        .expect("comparisons");
    assert_eq!(
        (cmp.baseline_name.as_str(), cmp.alpha, cmp.min_samples),
        ("v1", 0.05, 30)
    );
    let latency = &cmp.metrics[0];
    assert_eq!(latency.metric, "http/latency");
    let v2 = &latency.versions[0];
    assert_eq!(
        (v2.version_name.as_str(), v2.verdict),
        ("v2", Verdict::Better),
        "{v2:?}"
    );
    assert_eq!((v2.samples, v2.baseline_samples), (100, 100));
    assert!(v2.p_value.unwrap() < 1e-6, "{v2:?}");
    // About 18 ms faster; the interval holds the estimate.
    let (e, lo, hi) = (
        v2.effect.unwrap(),
        v2.ci_lower.unwrap(),
        v2.ci_upper.unwrap(),
    );
    assert!(e < -10.0 && lo <= e && e <= hi, "{v2:?}");
    assert_eq!(latency.winner_name.as_deref(), Some("v2"));
    // No errors in either version: no difference, no winner.
    let errors = &cmp.metrics[1];
    assert_eq!(errors.versions[0].verdict, Verdict::NoDifference);
    assert_eq!(errors.versions[0].p_value, Some(1.0));
    assert_eq!(errors.winner, None);

    assert_eq!(
        iter8(dir.path(), &["assert", "-c", "comparisons"]).await.0,
        0
    );
    let (code, out) = iter8(dir.path(), &["assert", "-c", "winner"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("http/error-rate: no significant winner at alpha 0.05"),
        "{out}"
    );
    let (_, text) = iter8(dir.path(), &["report"]).await;
    assert!(
        text.contains("Comparisons with baseline v1 (alpha 0.05, 95% intervals, minSamples 30)"),
        "{text}"
    );
    assert!(text.contains("winner on http/latency: v2"), "{text}");
    let (_, html) = iter8(dir.path(), &["report", "-o", "html"]).await;
    assert!(
        html.contains("data-metric=\"http/latency\" data-version=\"v2\" data-verdict=\"better\""),
        "{html}"
    );

    // A third version that fails every 2nd request is significantly worse on errors.
    let three = yaml.replace(
        "      v2:\n",
        &format!(
            "      v3:\n        url: http://{}/flaky\n      v2:\n",
            svc.addr
        ),
    );
    ok(&runner(dir.path(), &three, &[]).await);
    let r = result(dir.path());
    let cmp = r.insights.as_ref().unwrap().comparisons.clone().unwrap();
    let v3 = cmp.metrics[1]
        .versions
        .iter()
        .find(|v| v.version_name == "v3")
        .expect("v3");
    assert_eq!(v3.verdict, Verdict::Worse, "{v3:?}");
    assert_eq!(v3.rate, Some(0.5));
    let (code, out) = iter8(dir.path(), &["assert", "-c", "comparisons"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "version v3 is significantly worse than baseline v1 on http/error-rate: +50 pp"
        ),
        "{out}"
    );

    // Fewer requests than minSamples: not enough data, and the gate does not pass.
    ok(&runner(
        dir.path(),
        &yaml.replace("minSamples: 30", "minSamples: 1000"),
        &[],
    )
    .await);
    let (code, out) = iter8(dir.path(), &["assert", "-c", "comparisons"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not enough data to compare version v2 with baseline v1 on http/latency: v2 has 100 observations, baseline v1 100; each needs minSamples 1000"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_metrics_reach_prometheus_through_a_pushgateway() {
    let svc = Service::start().await;
    let pg = Pushgateway::start().await;
    let prom = Prometheus::start(&[ScrapeJob {
        name: "pushgateway",
        target: pg.addr,
        honor_labels: true,
    }]);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "metadata: {{name: shop, namespace: team-a}}\n{}",
        example("compare.yaml", &svc)
    );
    ok(&runner(dir.path(), &yaml, &["--pushgateway", &pg.url]).await);

    // The Pushgateway holds the group; Prometheus scraped it with the experiment's labels.
    let page = pg.metrics().await;
    assert!(
        page.contains("iter8_comparison_verdict{baseline=\"v1\",instance=\"\",job=\"iter8\",metric=\"http/latency\",namespace=\"team-a\",release=\"shop\",verdict=\"better\",version=\"v2\"} 1"),
        "{page}"
    );
    let sel = "{job=\"iter8\",namespace=\"team-a\",release=\"shop\"}";
    prom.wait_for(&format!("iter8_experiment_loops_total{sel}"), |b| {
        b.contains("\"1\"]")
    })
    .await;
    let body = prom
        .wait_for(
            "iter8_comparison_verdict{release=\"shop\",metric=\"http/latency\",version=\"v2\"}",
            |b| b.contains("\"verdict\":\"better\""),
        )
        .await;
    assert!(body.contains("\"baseline\":\"v1\""), "{body}");
    let body = prom
        .wait_for(
            "iter8_metric_value{release=\"shop\",metric=\"http/request-count\",version=\"v1\"}",
            |b| b.contains("\"result\":[{"),
        )
        .await;
    assert!(body.contains("\"100\"]"), "{body}");
    prom.wait_for("iter8_comparison_p_value{release=\"shop\",version=\"v2\",metric=\"http/latency\"} < 0.000001", |b| {
        b.contains("\"result\":[{")
    })
    .await;
    prom.wait_for(
        &format!(
            "iter8_experiment_slos_satisfied{sel} == 1 and iter8_experiment_failure{sel} == 0"
        ),
        |b| b.contains("\"result\":[{"),
    )
    .await;

    // The next loop replaces the group: a relative SLO that v2 violates (baseline v2 is
    // faster than v1), and no comparisons any more.
    let next = format!(
        "metadata: {{name: shop, namespace: team-a}}\n{}",
        example("relative-slos.yaml", &svc).replace("baseline: v1", "baseline: v2")
    );
    ok(&runner(dir.path(), &next, &["--continue", "--pushgateway", &pg.url]).await);
    let page = pg.metrics().await;
    assert!(!page.contains("iter8_comparison_verdict{"), "{page}");
    assert!(
        page.contains("iter8_experiment_slo_satisfied{bound=\"upper\",instance=\"\",job=\"iter8\",metric=\"http/latency-mean\",namespace=\"team-a\",reference=\"baseline\",release=\"shop\",version=\"v1\"} 0"),
        "{page}"
    );
    prom.wait_for(&format!("iter8_experiment_loops_total{sel} == 2"), |b| {
        b.contains("\"result\":[{")
    })
    .await;
    prom.wait_for(&format!("iter8_experiment_slos_satisfied{sel} == 0"), |b| {
        b.contains("\"result\":[{")
    })
    .await;

    // An unreachable Pushgateway is a warning, not a failed experiment.
    let port = support::closed_port();
    let out = runner(
        dir.path(),
        &yaml,
        &["--pushgateway", &format!("http://127.0.0.1:{port}")],
    )
    .await;
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot push the verdict metrics"), "{err}");
}
