//! The result store under API faults and concurrent runs: the runner's Secret store talks
//! to an API server through the fault-injecting proxy (`iter8_tests::faultproxy`), which
//! hangs, drops, throttles (429 + Retry-After) or refuses chosen requests.
//!
//! The API server is the one of `ITER8_TEST_KUBECONFIG` when set (any cluster: the proxy
//! forwards with that kubeconfig's server and credentials), else the real control plane of
//! `scripts/test-cluster` started here for this binary (no node: nothing runs pods;
//! `target/tmp/store-faults-cluster`, stopped at the end). The scenarios run one after
//! the other on it (their per-request timeouts are short).
//! The binaries come from the same target directory as this test (`cargo build -p iter8
//! --bins` first when running this file alone).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{bin, target, to_run, Run};
use iter8::k8s::retry::RetryPolicy;
use iter8::k8s::ClientOptions;
use iter8::model::ExperimentResult;
use iter8::store::secret::{SecretStore, EXPERIMENT_KEY, RESULT_KEY};
use iter8::store::{Store, StoreError};
use iter8_tests::faultproxy::{Fault, FaultProxy, Rule};
use iter8_tests::k8s::{Cluster, DownOnDrop, UpOptions};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;

const NS: &str = "default";

/// The API server under test.
struct Upstream {
    _down: Option<DownOnDrop>,
    kubeconfig: PathBuf,
}

async fn upstream() -> Upstream {
    if let Some(kc) = std::env::var_os("ITER8_TEST_KUBECONFIG").filter(|k| !k.is_empty()) {
        return Upstream {
            _down: None,
            kubeconfig: PathBuf::from(kc),
        };
    }
    let c = Cluster::connect(UpOptions {
        dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-faults-cluster")),
        // no node agent: these tests run no pods
        node_agent: Some(PathBuf::new()),
        ..Default::default()
    })
    .await
    .expect("test cluster (scripts/test-cluster up)");
    Upstream {
        _down: Some(c.down_on_drop()),
        kubeconfig: c.kubeconfig.clone(),
    }
}

async fn client(kubeconfig: &Path) -> kube::Client {
    iter8::k8s::client(&ClientOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: None,
    })
    .await
    .expect("client")
}

/// The Secret the chart renders for release `name` (revision 1), holding `experiment`.
async fn install(up: &Upstream, name: &str, experiment: &str) {
    let api: Api<Secret> = Api::namespaced(client(&up.kubeconfig).await, NS);
    let _ = api.delete(name, &Default::default()).await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": name},
            "annotations": {"meta.helm.sh/release-name": name, "iter8.tools/revision": "1"},
        },
        "type": "Opaque",
        "stringData": { EXPERIMENT_KEY: experiment },
    }))
    .expect("secret");
    api.create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
}

async fn stored(up: &Upstream, name: &str) -> Option<ExperimentResult> {
    let api: Api<Secret> = Api::namespaced(client(&up.kubeconfig).await, NS);
    let s = api.get(name).await.expect("get secret");
    let bytes = s.data?.get(RESULT_KEY)?.0.clone();
    Some(serde_yaml::from_slice(&bytes).expect("result yaml"))
}

fn policy(request_timeout_ms: u64, budget_ms: u64) -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_elapsed: Duration::from_millis(budget_ms),
        request_timeout: Duration::from_millis(request_timeout_ms),
        max_conflicts: 16,
    }
}

/// One control plane for every scenario (it takes seconds to start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_store_under_api_faults() {
    let up = upstream().await;
    hung_and_dropped_calls_are_retried_and_a_landed_write_is_not_repeated(&up).await;
    calls_that_fail_for_good_say_which_call_and_why(&up).await;
    too_many_requests_waits_as_long_as_retry_after_says(&up).await;
    a_recovered_call_is_one_warn_line_and_an_unstored_result_exits_4(&up).await;
    two_runners_on_one_release_lose_no_loop(&up).await;
    assert_answers_from_the_last_finished_loop_while_the_next_runs(&up).await;
    many_concurrent_claims_get_distinct_numbers(&up).await;
}

const RUN_TRUE: &str = "spec:\n- run: 'true'\n";

async fn hung_and_dropped_calls_are_retried_and_a_landed_write_is_not_repeated(up: &Upstream) {
    install(up, "hangs", RUN_TRUE).await;
    let proxy = FaultProxy::start(&up.kubeconfig).await.expect("proxy");
    proxy.add(
        Rule::new(Fault::Hang)
            .method("GET")
            .path("/secrets/hangs")
            .times(1),
    );
    proxy.add(
        Rule::new(Fault::Drop)
            .method("GET")
            .path("/secrets/hangs")
            .times(1),
    );
    // the first write is applied by the API server, but its answer never comes
    proxy.add(
        Rule::new(Fault::ApplyThenHang)
            .method("PATCH")
            .path("/secrets/hangs")
            .times(1),
    );
    let store = SecretStore::new(client(proxy.kubeconfig_path()).await, NS, "hangs", Some(1))
        .with_retry(policy(1000, 30_000));
    let loaded = store.load().await.expect("load after a hang and a drop");
    assert!(loaded.previous.is_none());
    let mut r = iter8::engine::start_loop(None, 1, Some(1));
    store
        .begin_loop(&mut r)
        .await
        .expect("the write landed although its answer was lost");
    assert_eq!(r.num_loops, 1);
    let seen = proxy.seen();
    let patches: Vec<_> = seen.iter().filter(|s| s.method == "PATCH").collect();
    assert_eq!(
        patches.len(),
        1,
        "the landed write is not repeated: {seen:#?}"
    );
    let gets = seen.iter().filter(|s| s.method == "GET").count();
    assert_eq!(
        gets, 4,
        "hang, drop, load, re-read after the lost answer: {seen:#?}"
    );
    assert_eq!(stored(up, "hangs").await.map(|r| r.num_loops), Some(1));
}

async fn calls_that_fail_for_good_say_which_call_and_why(up: &Upstream) {
    install(up, "fails", RUN_TRUE).await;
    let proxy = FaultProxy::start(&up.kubeconfig).await.expect("proxy");
    let store = |kc: &Path| {
        let kc = kc.to_path_buf();
        async move {
            SecretStore::new(client(&kc).await, NS, "fails", Some(1)).with_retry(policy(300, 1500))
        }
    };

    proxy.add(Rule::new(Fault::Hang).method("GET"));
    let err = store(proxy.kubeconfig_path())
        .await
        .load()
        .await
        .expect_err("hangs");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    assert!(
        msg.starts_with("GET secret default/fails: timed out after 300ms (gave up after "),
        "{msg}"
    );

    proxy.clear();
    proxy.add(Rule::new(Fault::Drop).method("GET"));
    let msg = store(proxy.kubeconfig_path())
        .await
        .load()
        .await
        .expect_err("drops")
        .to_string();
    assert!(
        msg.starts_with("GET secret default/fails: connection dropped"),
        "{msg}"
    );

    // writes: a refusal by the API server is not retried and says so
    proxy.clear();
    let s = store(proxy.kubeconfig_path()).await;
    s.load().await.expect("load");
    proxy.add(Rule::new(Fault::Status(403)).method("PATCH"));
    let msg = s
        .save(&iter8::engine::start_loop(None, 1, Some(1)))
        .await
        .expect_err("403")
        .to_string();
    assert!(
        msg.contains("PATCH secret default/fails: 403 Forbidden"),
        "{msg}"
    );
    assert_eq!(
        proxy.seen().iter().filter(|s| s.method == "PATCH").count(),
        1
    );

    // nothing listening: refused
    let url = proxy.url();
    let kc = std::fs::read_to_string(proxy.kubeconfig_path()).expect("kubeconfig");
    drop(proxy);
    let dir = tempfile::tempdir().expect("dir");
    let closed = dir.path().join("kubeconfig");
    std::fs::write(&closed, kc.replace(&url, "http://127.0.0.1:1")).expect("write");
    let msg = store(&closed)
        .await
        .load()
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        msg.starts_with("GET secret default/fails: connection refused"),
        "{msg}"
    );
}

async fn too_many_requests_waits_as_long_as_retry_after_says(up: &Upstream) {
    install(up, "throttled", RUN_TRUE).await;
    let proxy = FaultProxy::start(&up.kubeconfig).await.expect("proxy");
    proxy.add(
        Rule::new(Fault::TooManyRequests { retry_after: 2 })
            .method("GET")
            .path("/secrets/throttled")
            .times(1),
    );
    // our own backoff would retry after 20 ms; the server asked for 2 s
    let store = SecretStore::new(
        client(proxy.kubeconfig_path()).await,
        NS,
        "throttled",
        Some(1),
    )
    .with_retry(policy(1000, 30_000));
    let start = tokio::time::Instant::now();
    store.load().await.expect("load after 429");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "retried before Retry-After: {:?}",
        start.elapsed()
    );
    assert_eq!(proxy.seen().len(), 2);
}

/// `iter8-runner` in cluster mode for release `name`, through `kubeconfig`; JSON logs.
fn runner(kubeconfig: &Path, name: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(bin("iter8-runner"));
    c.args([
        "--namespace",
        NS,
        "--release",
        name,
        "--log-format",
        "json",
        "--kubeconfig",
    ])
    .arg(kubeconfig)
    .env("ITER8_REVISION", "1")
    .env_remove("RUST_LOG")
    .env_remove("KUBECONFIG")
    .env_remove("POD_NAMESPACE")
    .env_remove("ITER8_RELEASE")
    .stdin(Stdio::null())
    .kill_on_drop(true);
    c
}

async fn run(mut c: tokio::process::Command) -> Run {
    to_run(c.output().await.expect("run iter8-runner"))
}

fn lines_at(run: &Run, level: &str) -> Vec<String> {
    run.err
        .lines()
        .filter(|l| l.contains(&format!("\"level\":\"{level}\"")))
        .map(str::to_string)
        .collect()
}

async fn a_recovered_call_is_one_warn_line_and_an_unstored_result_exits_4(up: &Upstream) {
    install(up, "logs", RUN_TRUE).await;
    let proxy = FaultProxy::start(&up.kubeconfig).await.expect("proxy");
    proxy.add(Rule::new(Fault::Status(503)).method("PATCH").times(2));
    let r = run(runner(proxy.kubeconfig_path(), "logs")).await;
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(lines_at(&r, "ERROR"), Vec::<String>::new(), "{r}");
    let warns = lines_at(&r, "WARN");
    assert_eq!(warns.len(), 1, "{r}");
    assert!(
        warns[0].contains("PATCH secret default/logs succeeded on attempt 3"),
        "{}",
        warns[0]
    );

    // a write the API server refuses: the result cannot be stored, exit 4, result logged
    proxy.clear();
    proxy.add(Rule::new(Fault::Status(403)).method("PATCH"));
    let r = run(runner(proxy.kubeconfig_path(), "logs")).await;
    assert_eq!(r.code, 4, "{r}");
    assert!(
        r.err.contains(
            "cannot write the result: forbidden: PATCH secret default/logs: 403 Forbidden"
        ),
        "{r}"
    );
    assert!(r.err.contains("it is logged here whole"), "{r}");
}

async fn two_runners_on_one_release_lose_no_loop(up: &Upstream) {
    const ROUNDS: usize = 3;
    const REQUESTS: u64 = 40;
    let addr = target().await;
    install(
        up,
        "pair",
        &format!(
            "spec:\n- task: http\n  with:\n    url: http://{addr}/\n    numRequests: {REQUESTS}\n- run: 'true'\n"
        ),
    )
    .await;
    let kc = up.kubeconfig.clone();
    let one = |kc: PathBuf| async move {
        let mut codes = Vec::new();
        for _ in 0..ROUNDS {
            let r = run(runner(&kc, "pair")).await;
            codes.push((r.code, r.err));
        }
        codes
    };
    let (a, b) = tokio::join!(tokio::spawn(one(kc.clone())), tokio::spawn(one(kc)));
    for (code, err) in a.expect("a").into_iter().chain(b.expect("b")) {
        assert_eq!(code, 0, "{err}");
    }
    let r = stored(up, "pair").await.expect("result");
    let loops = 2 * ROUNDS as u64;
    assert_eq!(r.num_loops, loops, "every loop counted: {r:#?}");
    let i = r.insights.as_ref().expect("insights");
    let counts = &i.non_histogram_metric_values[0]["http/request-count"];
    assert_eq!(
        counts.iter().sum::<f64>(),
        (loops * REQUESTS) as f64,
        "no loop's requests lost: {counts:?}"
    );
    let hist = &i.histogram_metric_values[0]["http/latency"];
    assert_eq!(hist.count, loops * REQUESTS);
    for o in &r.overlaps {
        assert!(o.with < o.loop_number && o.loop_number <= loops, "{o:?}");
    }
    assert!(r.completed() && r.verdict().num_loops == loops);
}

async fn assert_answers_from_the_last_finished_loop_while_the_next_runs(up: &Upstream) {
    install(up, "cron", "spec:\n- run: 'true'\n- run: 'true'\n").await;
    let r = run(runner(&up.kubeconfig, "cron")).await;
    assert_eq!(r.code, 0, "{r}");
    // loop 2: its first write lands, the next one hangs (the loop is still running)
    let proxy = FaultProxy::start(&up.kubeconfig).await.expect("proxy");
    proxy.add(Rule::new(Fault::Hang).method("PATCH").skip(1));
    let mut second = runner(proxy.kubeconfig_path(), "cron")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    while !proxy.seen().iter().any(|s| s.fault == Fault::Hang) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = tokio::process::Command::new(bin("iter8"))
        .args([
            "assert",
            "-c",
            "completed,nofailure",
            "--release",
            "cron",
            "-n",
            NS,
            "--kubeconfig",
        ])
        .arg(&up.kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("iter8 assert");
    let a = to_run(out);
    assert_eq!(a.code, 0, "{a}");
    assert!(
        a.out
            .contains("verdict of loop 1 (loop 2 is running: 0 of 2 tasks done)"),
        "{a}"
    );
    let _ = second.kill().await;
    let r = stored(up, "cron").await.expect("result");
    assert_eq!((r.num_loops, r.verdict().num_loops), (2, 1));
}

async fn many_concurrent_claims_get_distinct_numbers(up: &Upstream) {
    install(up, "claims", RUN_TRUE).await;
    let kc = up.kubeconfig.clone();
    let one = |kc: PathBuf| async move {
        let mut mine = Vec::new();
        for _ in 0..8 {
            let store = SecretStore::new(client(&kc).await, NS, "claims", Some(1));
            let loaded = store.load().await.expect("load");
            let mut r = iter8::engine::start_loop(loaded.previous, 1, Some(1));
            store.begin_loop(&mut r).await.expect("claim");
            r.num_completed_tasks = 1;
            r.record_finished_loop();
            store.save(&r).await.expect("save");
            mine.push(r.num_loops);
        }
        mine
    };
    let (a, b) = tokio::join!(tokio::spawn(one(kc.clone())), tokio::spawn(one(kc)));
    let mut all: Vec<u64> = a.expect("a").into_iter().chain(b.expect("b")).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=16).collect::<Vec<_>>());
    assert_eq!(stored(up, "claims").await.map(|r| r.num_loops), Some(16));
}
