//! Verdicts over loops and versions: a CronJob experiment whose `assess.regression` limit
//! catches a loop that got slower than the previous one, with the verdict metrics pushed by
//! the runner pod to a real Pushgateway (Debian `prometheus-pushgateway`) through the
//! chart's `metrics.pushgateway.url`; and a Job comparing two versions
//! (`http.endpointsAreVersions`) with `assess.baseline`, `assess.relativeSLOs` and
//! `assess.compare` set by `--set`.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{helm, iter8, iter8_assert};
use crate::{finished_job, install, report_json, Helm};
use iter8_tests::k8s::Cluster;

async fn install_ok(c: &Cluster, ns: &str, release: &str, sets: &[String], wait: bool) {
    let r = install(Helm::V4, c, "install", ns, release, sets, wait).await;
    assert_eq!(r.code, 0, "helm install: {r}");
}

/// A load target on 127.0.0.1 answering after `delay` milliseconds.
async fn slow_target(delay: Arc<AtomicU64>) -> std::net::SocketAddr {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let delay = delay.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let ms = delay.load(Ordering::Relaxed);
                    async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A Pushgateway on a free port, killed on drop.
struct Pushgateway(Child, String);

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn pushgateway() -> Pushgateway {
    let bin = "/usr/bin/prometheus-pushgateway";
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} missing: run scripts/setup-test-env (Debian package prometheus-pushgateway)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-pushgateway");
    let pg = Pushgateway(child, format!("http://127.0.0.1:{port}"));
    for _ in 0..60 {
        if metrics_page(&pg).await.is_some() {
            return pg;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the Pushgateway did not start within 30s");
}

async fn metrics_page(pg: &Pushgateway) -> Option<String> {
    let r = iter8::tasks::httpcall::send(
        "GET",
        &format!("{}/metrics", pg.1),
        &[],
        None,
        Duration::from_secs(2),
    )
    .await
    .ok()?;
    (r.status == 200).then(|| String::from_utf8_lossy(&r.body).into_owned())
}

pub async fn cronjob_regression_against_the_previous_loop_and_pushed_verdicts(c: &Cluster) {
    let ns = c.namespace("regression").await.expect("namespace");
    let delay = Arc::new(AtomicU64::new(10));
    let addr = slow_target(delay.clone()).await;
    let pg = pushgateway().await;
    let sets = [
        "runner=cronjob".to_string(),
        // yearly: only our triggers run it
        "cronjobSchedule=0 0 1 1 *".into(),
        "tasks={http,assess}".into(),
        format!("http.url=http://{addr}/"),
        "http.numRequests=30".into(),
        "http.qps=100".into(),
        "assess.SLOs.upper.http/error-count=0".into(),
        "assess.regression.upper.http/latency-mean=100".into(),
        format!("metrics.pushgateway.url={}", pg.1),
    ];
    install_ok(c, &ns, "slower", &sets, false).await;

    let run_loop = |n: u64, ms: u64| {
        delay.store(ms, Ordering::Relaxed);
        let ns = &ns;
        async move {
            // as users start a loop by hand
            let job = format!("slower-loop-{n}");
            c.create_job_from_cronjob(ns, &job, "slower-1-cronjob");
            let j = finished_job(c, ns, &job).await;
            assert_eq!(j["status"]["succeeded"], 1, "loop {n}: {j}");
        }
    };
    // Loops 1 and 2 at the same speed: nothing regressed.
    run_loop(1, 10).await;
    run_loop(2, 10).await;
    let r = iter8_assert(c, "completed,nofailure,slos", "slower", &ns, &[]).await;
    assert_eq!(r.code, 0, "{r}");
    let page = metrics_page(&pg).await.expect("pushgateway");
    assert!(
        page.contains(&format!("iter8_experiment_loops_total{{instance=\"\",job=\"iter8\",namespace=\"{ns}\",release=\"slower\"}} 2")),
        "{page}"
    );
    assert!(
        page.contains(&format!("iter8_experiment_slos_satisfied{{instance=\"\",job=\"iter8\",namespace=\"{ns}\",release=\"slower\"}} 1")),
        "{page}"
    );

    // Loop 3 is eight times slower than loop 2: the regression limit catches it.
    run_loop(3, 80).await;
    let res = report_json(c, &ns, "slower").await;
    assert_eq!(res["numLoops"], 3, "{res}");
    let check = &res["insights"]["regression"]["checks"][0];
    assert_eq!(check["metric"], "http/latency-mean", "{res}");
    assert_eq!(check["versions"][0]["satisfied"], false, "{res}");
    let history = res["insights"]["nonHistogramMetricValues"][0]["http/latency-mean"]
        .as_array()
        .expect("history")
        .clone();
    assert_eq!(check["versions"][0]["reference"], history[1], "{res}");
    let r = iter8_assert(c, "slos", "slower", &ns, &[]).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.out
            .contains("relative SLO violated: version default: http/latency-mean")
            && r.out.contains("previous loop"),
        "{r}"
    );
    let page = metrics_page(&pg).await.expect("pushgateway");
    assert!(
        page.contains(&format!("iter8_experiment_slo_satisfied{{bound=\"upper\",instance=\"\",job=\"iter8\",metric=\"http/latency-mean\",namespace=\"{ns}\",reference=\"previous_loop\",release=\"slower\",version=\"default\"}} 0")),
        "{page}"
    );
    let r = helm(c, &["uninstall", "slower", "-n", &ns]).await;
    assert_eq!(r.code, 0, "{r}");
    c.delete_namespace(&ns).await;
}

pub async fn job_relative_slos_and_comparison_against_a_baseline(c: &Cluster) {
    let ns = c.namespace("baseline").await.expect("namespace");
    let fast = slow_target(Arc::new(AtomicU64::new(2))).await;
    let slow = slow_target(Arc::new(AtomicU64::new(20))).await;
    let sets = [
        "tasks={http,assess}".to_string(),
        "http.numRequests=40".into(),
        "http.qps=100".into(),
        "http.endpointsAreVersions=true".into(),
        format!("http.endpoints.v1.url=http://{fast}/"),
        format!("http.endpoints.v2.url=http://{slow}/"),
        "assess.baseline=v1".into(),
        "assess.relativeSLOs.upper.http/latency-mean=10".into(),
        "assess.relativeSLOs.lower.http/request-count=5".into(),
        "assess.compare.metrics={http/latency,http/error-rate}".into(),
    ];
    install_ok(c, &ns, "ab", &sets, true).await;
    let res = report_json(c, &ns, "ab").await;
    assert_eq!(
        res["insights"]["versionNames"],
        serde_json::json!(["v1", "v2"]),
        "{res}"
    );
    let rel = &res["insights"]["relativeSLOs"];
    assert_eq!(rel["baselineName"], "v1", "{res}");
    let mean = &rel["checks"][0];
    assert_eq!(mean["metric"], "http/latency-mean", "{res}");
    assert_eq!(mean["versions"][0]["satisfied"], true, "{res}");
    assert_eq!(mean["versions"][1]["satisfied"], false, "{res}");
    assert_eq!(rel["checks"][1]["versions"][1]["satisfied"], true, "{res}");
    let latency = &res["insights"]["comparisons"]["metrics"][0];
    assert_eq!(latency["versions"][0]["verdict"], "worse", "{res}");
    assert_eq!(latency["winnerName"], "v1", "{res}");

    let r = iter8_assert(c, "completed,nofailure", "ab", &ns, &[]).await;
    assert_eq!(r.code, 0, "{r}");
    let r = iter8_assert(c, "slos", "ab", &ns, &[]).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.out
            .contains("relative SLO violated: version v2: http/latency-mean"),
        "{r}"
    );
    let r = iter8_assert(c, "comparisons", "ab", &ns, &[]).await;
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.out
            .contains("version v2 is significantly worse than baseline v1 on http/latency"),
        "{r}"
    );
    let r = iter8(c, &["report", "--release", "ab", "-n", &ns]).await;
    assert!(r.out.contains("Comparisons with baseline v1"), "{r}");
    let r = helm(c, &["uninstall", "ab", "-n", &ns]).await;
    assert_eq!(r.code, 0, "{r}");
    c.delete_namespace(&ns).await;
}
