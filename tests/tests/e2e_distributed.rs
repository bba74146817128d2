//! Distributed load on the real control plane: the chart with `distributedLoad.pods=3`
//! installed with the real helm v4, the real Job controller running an Indexed Job (three
//! pods, each with its JOB_COMPLETION_INDEX), the node agent running `iter8-runner` for
//! each, the pods meeting in the release's Secret under the chart's Role (the real RBAC
//! authorizer), and pod 0 storing the one merged result.
//!
//! Load targets are hyper servers on 127.0.0.1 (pods run on the host network): `/fast`
//! answers at once; `/alt` makes every odd request (by arrival) wait 60 ms and answers the
//! even ones at once, so the merged histogram is known in advance.
//!
//! One cluster for the binary (`target/tmp/e2e-distributed-cluster`, stopped at the end);
//! a namespace per scenario. The first three scenarios run concurrently; the last one
//! (pods too big for the node, so one never starts) runs alone, after them.
//! The binaries come from the same target directory as this test (`cargo build -p iter8
//! --bins` first when running this file alone).

mod common;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{bin, helm, Run};
use http_body_util::Full;
use iter8::model::ExperimentResult;
use iter8_tests::k8s::{wait_for, Cluster, UpOptions};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::Api;
use serde_json::Value;

const JOB_WAIT: Duration = Duration::from_secs(240);

#[derive(Default)]
struct Counts {
    fast: AtomicU64,
    alt: AtomicU64,
}

async fn server() -> (String, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let c = c.clone();
                    async move {
                        if req.uri().path() == "/alt" {
                            let n = c.alt.fetch_add(1, Ordering::SeqCst) + 1;
                            if n % 2 == 1 {
                                tokio::time::sleep(Duration::from_millis(60)).await;
                            }
                        } else {
                            c.fast.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), counts)
}

async fn connect() -> Cluster {
    Cluster::connect(UpOptions {
        dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-distributed-cluster")),
        images: vec![format!("iter8-runner={}", bin("iter8-runner").display())],
        podman: false,
        node_agent: Some(env!("CARGO_BIN_EXE_iter8-node-agent").into()),
    })
    .await
    .expect("test cluster (scripts/test-cluster up)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_load_over_an_indexed_job() {
    let c = connect().await;
    let _down = c.down_on_drop();
    tokio::join!(
        three_pods_send_exactly_num_requests_and_merge_every_latency(&c),
        three_pods_hold_a_fixed_rate(&c),
        a_pod_that_fails_fails_the_experiment_naming_its_index(&c),
        cronjob_loops_each_share_their_load(&c),
    );
    a_pod_that_never_starts_fails_the_barrier_naming_it(&c).await;
}

/// `helm install RELEASE charts/iter8 -n NS` with 3 pods sharing the load and `sets`.
async fn install(c: &Cluster, ns: &str, release: &str, sets: &[String]) -> Run {
    let chart = common::repo_root()
        .join("charts/iter8")
        .display()
        .to_string();
    let mut args: Vec<String> = vec![
        "install".into(),
        release.into(),
        chart,
        "-n".into(),
        ns.into(),
        "--set".into(),
        "distributedLoad.pods=3".into(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    helm(c, &args).await
}

async fn finished_job(c: &Cluster, ns: &str, name: &str) -> Value {
    let j = c
        .wait_job(ns, name, JOB_WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_value(j).expect("job json")
}

async fn secret(c: &Cluster, ns: &str, name: &str) -> Secret {
    Api::<Secret>::namespaced(c.client(), ns)
        .get(name)
        .await
        .expect("release secret")
}

async fn stored_result(c: &Cluster, ns: &str, release: &str) -> ExperimentResult {
    let s = secret(c, ns, release).await;
    let data = s.data.expect("data");
    let text = String::from_utf8(data["result.yaml"].0.clone()).expect("utf-8");
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("result: {e}\n{text}"))
}

fn value(r: &ExperimentResult, metric: &str) -> Option<f64> {
    r.insights
        .as_ref()?
        .non_histogram_metric_values
        .first()?
        .get(metric)?
        .last()
        .copied()
}

fn index_of(p: &Pod) -> Option<String> {
    p.metadata
        .annotations
        .as_ref()?
        .get("batch.kubernetes.io/job-completion-index")
        .cloned()
}

async fn pod_of_index(c: &Cluster, ns: &str, job: &str, index: &str) -> Option<Pod> {
    c.job_pods(ns, job)
        .await
        .into_iter()
        .find(|p| index_of(p).as_deref() == Some(index))
}

/// The coordinator's log line of the merge (pod 0), as JSON fields.
fn merge_line(log: &str) -> Value {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["workers"].is_u64() && v["fields"]["rate"].is_f64())
        .unwrap_or_else(|| panic!("no merge line in pod 0's log:\n{log}"))["fields"]
        .clone()
}

fn small_pods() -> Vec<String> {
    // Room on the node for every scenario's pods at once.
    vec!["resources.requests.cpu=10m".into()]
}

async fn three_pods_send_exactly_num_requests_and_merge_every_latency(c: &Cluster) {
    let ns = c.namespace("dist-exact").await.expect("namespace");
    let (url, counts) = server().await;
    let mut sets = small_pods();
    sets.extend([
        "tasks={http,assess}".to_string(),
        format!("http.url={url}/alt"),
        "http.numRequests=301".into(),
        "http.qps=0".into(),
        "http.connections=12".into(),
        "assess.SLOs.upper.http/error-count=0".into(),
    ]);
    let r = install(c, &ns, "exact", &sets).await;
    assert_eq!(r.code, 0, "{r}");
    let j = finished_job(c, &ns, "exact-1-job").await;
    assert_eq!(j["status"]["succeeded"], 3, "{j}");
    assert_eq!(j["spec"]["completionMode"], "Indexed", "{j}");
    let pods = c.job_pods(&ns, "exact-1-job").await;
    let mut indexes: Vec<String> = pods.iter().filter_map(index_of).collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);

    let res = stored_result(c, &ns, "exact").await;
    assert!(!res.failure, "{:?}", res.failed_task);
    assert_eq!(res.num_completed_tasks, 2, "assess ran (once, on pod 0)");
    assert_eq!(value(&res, "http/request-count"), Some(301.0));
    assert_eq!(value(&res, "http/status-200"), Some(301.0));
    assert_eq!(
        counts.alt.load(Ordering::SeqCst),
        301,
        "the server saw exactly numRequests"
    );
    let h = &res
        .insights
        .as_ref()
        .expect("insights")
        .histogram_metric_values[0]["http/latency"];
    assert_eq!(h.count, 301);
    let slow: u64 = h
        .buckets
        .iter()
        .filter(|b| b.lower >= 60.0)
        .map(|b| b.count)
        .sum();
    let fast: u64 = h
        .buckets
        .iter()
        .filter(|b| b.upper <= 60.0)
        .map(|b| b.count)
        .sum();
    assert_eq!((slow, fast), (151, 150), "{:?}", h.buckets);
    assert!(res.slos_satisfied(), "error-count 0 holds");

    // Pod 0 merged three partial results, then removed the workers' records.
    let pod0 = pod_of_index(c, &ns, "exact-1-job", "0")
        .await
        .expect("pod 0");
    let line = merge_line(&c.logs(
        &ns,
        &format!("pod/{}", pod0.metadata.name.clone().unwrap_or_default()),
    ));
    assert_eq!(
        (line["workers"].as_u64(), line["requests"].as_u64()),
        (Some(3), Some(301))
    );
    let keys: Vec<String> = secret(c, &ns, "exact")
        .await
        .data
        .expect("data")
        .into_keys()
        .collect();
    for k in ["load-control", "result.yaml", "experiment.yaml"] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
    assert!(
        !keys.iter().any(|k| k.starts_with("load-worker-")),
        "the workers' records are removed at the end: {keys:?}"
    );
    // Least privilege held: every request of the runner's account allowed, and only on
    // the release's Secret.
    let sa_user = format!("system:serviceaccount:{ns}:exact-iter8");
    let reqs = c.requests_of(&sa_user);
    assert!(!reqs.is_empty(), "no request as {sa_user}");
    for e in &reqs {
        // 409: the result's write (with a resourceVersion precondition) met a worker's
        // write; the store re-reads and merges, as with any other writer.
        assert!(
            e.allowed() && (e.code < 300 || (e.verb == "patch" && e.code == 409)),
            "refused: {e:?}"
        );
        if !e.resource.is_empty() {
            assert_eq!(
                (e.resource.as_str(), e.name.as_str()),
                ("secrets", "exact"),
                "{e:?}"
            );
        }
    }
    c.delete_namespace(&ns).await;
}

async fn three_pods_hold_a_fixed_rate(c: &Cluster) {
    let ns = c.namespace("dist-rate").await.expect("namespace");
    let (url, counts) = server().await;
    let mut sets = small_pods();
    sets.extend([
        "tasks={http}".to_string(),
        format!("http.url={url}/fast"),
        "http.numRequests=4500".into(),
        "http.qps=300".into(),
        "http.connections=6".into(),
    ]);
    let r = install(c, &ns, "rate", &sets).await;
    assert_eq!(r.code, 0, "{r}");
    let j = finished_job(c, &ns, "rate-1-job").await;
    assert_eq!(j["status"]["succeeded"], 3, "{j}");
    let res = stored_result(c, &ns, "rate").await;
    assert_eq!(value(&res, "http/request-count"), Some(4500.0));
    assert_eq!(counts.fast.load(Ordering::SeqCst), 4500);
    // The rate: counted requests over the merged run's measured span (earliest start of a
    // pod's load to the latest end), from pod 0's log.
    let pod0 = pod_of_index(c, &ns, "rate-1-job", "0")
        .await
        .expect("pod 0");
    let line = merge_line(&c.logs(
        &ns,
        &format!("pod/{}", pod0.metadata.name.clone().unwrap_or_default()),
    ));
    let (requests, secs) = (
        line["requests"].as_f64().expect("requests"),
        line["elapsed_secs"].as_f64().expect("elapsed"),
    );
    let rate = requests / secs;
    assert!(
        (rate / 300.0 - 1.0).abs() < 0.001,
        "merged rate {rate:.3}/s ({requests} requests in {secs:.4} s) is not within 0.1% of 300/s"
    );
    c.delete_namespace(&ns).await;
}

async fn a_pod_that_fails_fails_the_experiment_naming_its_index(c: &Cluster) {
    let ns = c.namespace("dist-fail").await.expect("namespace");
    let (url, _counts) = server().await;
    let mut sets = small_pods();
    sets.extend([
        "tasks={http,assess}".to_string(),
        format!("http.url={url}/fast"),
        "http.duration=60s".into(),
        "http.qps=30".into(),
        "http.connections=3".into(),
        "assess.SLOs.upper.http/error-count=0".into(),
    ]);
    let r = install(c, &ns, "fail", &sets).await;
    assert_eq!(r.code, 0, "{r}");
    // Once the load runs (pod 2 has reached it), pod 2 is deleted, as an eviction or a
    // drained node would: its runner is told to stop.
    let secrets: Api<Secret> = Api::namespaced(c.client(), &ns);
    wait_for(
        "pod 2 to start its load",
        Duration::from_secs(120),
        || async {
            let s = secrets.get("fail").await.ok()?;
            let d = s.data?;
            let control = d.get("load-control")?;
            String::from_utf8_lossy(&control.0)
                .contains("\"go\":{\"0.0\"")
                .then_some(())
        },
    )
    .await
    .expect("the load started");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pod2 = pod_of_index(c, &ns, "fail-1-job", "2")
        .await
        .expect("pod 2");
    let name = pod2.metadata.name.clone().unwrap_or_default();
    c.kubectl_run(&["delete", "pod", "-n", &ns, &name, "--wait=false"], None)
        .expect("delete pod 2");
    let j = finished_job(c, &ns, "fail-1-job").await;
    assert!(j["status"]["failed"].as_u64().unwrap_or(0) >= 1, "{j}");
    let res = wait_for(
        "the failure in the result",
        Duration::from_secs(60),
        || async {
            let r = stored_result(c, &ns, "fail").await;
            r.failure.then_some(r)
        },
    )
    .await
    .expect("a failed result");
    let f = res.failed_task.expect("failed task");
    assert_eq!((f.index, f.task.as_str()), (0, "http"));
    assert!(f.message.contains("load worker 2 failed"), "{}", f.message);
    assert_eq!(
        res.num_completed_tasks, 0,
        "assess did not run on a partial load"
    );
    c.delete_namespace(&ns).await;
}

async fn a_pod_that_never_starts_fails_the_barrier_naming_it(c: &Cluster) {
    let ns = c.namespace("dist-never").await.expect("namespace");
    let (url, counts) = server().await;
    // Pods that each ask for 40% of the node's CPU: two fit, the third is unschedulable.
    let node = Api::<Node>::all(c.client())
        .list(&Default::default())
        .await
        .expect("nodes")
        .items
        .into_iter()
        .next()
        .expect("a node");
    let cpu = node
        .status
        .and_then(|s| s.allocatable)
        .and_then(|a| a.get("cpu").map(|q| q.0.clone()))
        .expect("allocatable cpu");
    let millis: u64 = cpu
        .parse::<u64>()
        .map(|c| c * 1000)
        .unwrap_or_else(|_| cpu.trim_end_matches('m').parse().expect("cpu quantity"));
    let each = format!("{}m", millis * 4 / 10);
    let sets = vec![
        format!("resources.requests.cpu={each}"),
        format!("resources.limits.cpu={each}"),
        "tasks={http}".to_string(),
        format!("http.url={url}/fast"),
        "http.numRequests=30".into(),
        "http.connections=3".into(),
        "distributedLoad.timeout=15s".into(),
    ];
    let r = install(c, &ns, "never", &sets).await;
    assert_eq!(r.code, 0, "{r}");
    // The pod the scheduler cannot place (the Job controller creates index 0 first, so it
    // is one of the workers).
    let pending = wait_for("an unschedulable pod", Duration::from_secs(60), || async {
        c.job_pods(&ns, "never-1-job").await.into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                    })
                })
        })
    })
    .await
    .expect("one pod stays unschedulable");
    let index = index_of(&pending).expect("its index");
    let j = finished_job(c, &ns, "never-1-job").await;
    assert!(j["status"]["failed"].as_u64().unwrap_or(0) >= 1, "{j}");
    let res = stored_result(c, &ns, "never").await;
    assert!(res.failure);
    let f = res.failed_task.expect("failed task");
    assert!(
        f.message.contains(&format!(
            "load worker {index} of 3 did not reach the start of the load within 15s"
        )) && f.message.contains(&format!("never started: {index}")),
        "{}",
        f.message
    );
    assert_eq!(
        counts.fast.load(Ordering::SeqCst),
        0,
        "no load without every pod"
    );
    c.delete_namespace(&ns).await;
}

async fn cronjob_loops_each_share_their_load(c: &Cluster) {
    let ns = c.namespace("dist-loops").await.expect("namespace");
    let (url, counts) = server().await;
    let mut sets = small_pods();
    sets.extend([
        "tasks={http}".to_string(),
        format!("http.url={url}/fast"),
        "http.numRequests=100".into(),
        "http.qps=200".into(),
        "http.connections=3".into(),
        "runner=cronjob".into(),
        // yearly: only the loops started here run
        "cronjobSchedule=0 0 1 1 *".into(),
    ]);
    let r = install(c, &ns, "loops", &sets).await;
    assert_eq!(r.code, 0, "{r}");
    for i in 1..=2 {
        // A loop as users start one: a new Indexed Job from the CronJob, so a new run.
        let job = format!("loop-{i}");
        c.create_job_from_cronjob(&ns, &job, "loops-1-cronjob");
        let j = finished_job(c, &ns, &job).await;
        assert_eq!(j["status"]["succeeded"], 3, "loop {i}: {j}");
        assert_eq!(j["spec"]["completionMode"], "Indexed", "{j}");
    }
    let res = stored_result(c, &ns, "loops").await;
    assert_eq!(res.num_loops, 2);
    let values = &res
        .insights
        .as_ref()
        .expect("insights")
        .non_histogram_metric_values[0];
    assert_eq!(
        values["http/request-count"],
        [100.0, 100.0],
        "one merged count per loop"
    );
    assert_eq!(counts.fast.load(Ordering::SeqCst), 200);
    let h = &res
        .insights
        .as_ref()
        .expect("insights")
        .histogram_metric_values[0]["http/latency"];
    assert_eq!(h.count, 200, "the loops' merged histograms merge");
    c.delete_namespace(&ns).await;
}
