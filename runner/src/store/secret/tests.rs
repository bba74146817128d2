use super::*;
use crate::k8s::mock::MockApi;
use crate::model::{HistBucket, Histogram, MetricMeta, MetricType};
use serde_json::json;

const PATH: &str = "/api/v1/namespaces/ns/secrets/exp";
const EXPERIMENT: &str = "spec:\n- task: http\n  with:\n    url: http://127.0.0.1/\n";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_elapsed: Duration::from_millis(400),
        request_timeout: Duration::from_millis(200),
        max_conflicts: 4,
    }
}

async fn api_with_secret(result: Option<&ExperimentResult>) -> MockApi {
    let api = MockApi::start().await;
    let mut data = json!({ EXPERIMENT_KEY: b64(EXPERIMENT) });
    if let Some(r) = result {
        data[RESULT_KEY] = json!(b64(&serde_yaml::to_string(r).expect("yaml")));
    }
    api.with(|s| {
        s.put(
            PATH,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {
                    "name": "exp", "namespace": "ns",
                    "labels": {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "exp"},
                    "annotations": {"meta.helm.sh/release-name": "exp", REVISION_LABEL: "3"},
                },
                "type": "Opaque",
                "data": data,
            }),
        )
    });
    api
}

fn stored_result(api: &MockApi) -> Option<ExperimentResult> {
    api.with(|s| {
        let text = s.objects[PATH]["data"][RESULT_KEY]
            .as_str()
            .map(str::to_string)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("b64");
        Some(serde_yaml::from_slice(&bytes).expect("result"))
    })
}

fn result(rev: Option<i64>, loops: u64) -> ExperimentResult {
    let mut r = ExperimentResult::new(1);
    r.revision = rev;
    r.num_loops = loops;
    r
}

#[tokio::test]
async fn load_reads_experiment_and_revision_then_save_patches_only_the_result() {
    let api = api_with_secret(None).await;
    let store = SecretStore::new(api.client(), "ns", "exp", Some(3));
    let stored = store.load().await.expect("load");
    assert_eq!(stored.experiment_yaml, EXPERIMENT);
    assert!(stored.previous.is_none());
    assert_eq!(stored.revision, Some(3));

    let mut r = ExperimentResult::new(1);
    r.num_loops = 1;
    store.save(&r).await.expect("save");
    let saved = stored_result(&api).expect("result written");
    assert_eq!(saved.revision, Some(3), "the revision is recorded");
    assert_eq!(saved.num_loops, 1);
    api.with(|s| {
        let o = &s.objects[PATH];
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm"
        );
        assert_eq!(
            o["metadata"]["annotations"]["meta.helm.sh/release-name"],
            "exp"
        );
        assert_eq!(o["data"][EXPERIMENT_KEY], b64(EXPERIMENT));
        let patches: Vec<_> = s.requests.iter().filter(|(m, _)| m == "PATCH").collect();
        assert_eq!(patches.len(), 1);
    });
    // a second save uses the resourceVersion of the first write: no extra GET
    store.save(&r).await.expect("save again");
    let gets = api.with(|s| s.requests.iter().filter(|(m, _)| m == "GET").count());
    assert_eq!(gets, 1);
}

#[tokio::test]
async fn same_revision_continues_and_a_newer_revision_starts_fresh() {
    let api = api_with_secret(Some(&result(Some(3), 5))).await;
    let same = SecretStore::new(api.client(), "ns", "exp", Some(3));
    let prev = same
        .load()
        .await
        .expect("load")
        .previous
        .expect("continued");
    assert_eq!(prev.num_loops, 5);

    let newer = SecretStore::new(api.client(), "ns", "exp", Some(4));
    assert!(newer.load().await.expect("load").previous.is_none());

    // no revision given: the Secret's annotation (3) decides
    let from_annotation = SecretStore::new(api.client(), "ns", "exp", None);
    let stored = from_annotation.load().await.expect("load");
    assert_eq!(stored.revision, Some(3));
    assert_eq!(stored.previous.map(|p| p.num_loops), Some(5));
}

#[tokio::test]
async fn conflict_rereads_and_reapplies_without_dropping_the_other_writer() {
    let api = api_with_secret(None).await;
    let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
    store.load().await.expect("load");
    api.with(|s| s.concurrent_writes = 2);
    store
        .save(&result(None, 1))
        .await
        .expect("save after conflicts");
    assert_eq!(stored_result(&api).map(|r| r.num_loops), Some(1));
    api.with(|s| {
        let patches = s.requests.iter().filter(|(m, _)| m == "PATCH").count();
        assert_eq!(patches, 3, "two conflicts, then success");
        assert_eq!(
            s.objects[PATH]["metadata"]["annotations"]["touched-by"],
            "someone-else"
        );
    });
}

#[tokio::test]
async fn endless_conflicts_give_up_and_say_so() {
    let api = api_with_secret(None).await;
    let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
    store.load().await.expect("load");
    api.with(|s| s.concurrent_writes = 100);
    let err = store.save(&result(None, 1)).await.expect_err("gives up");
    assert!(
        err.to_string()
            .contains("still conflicting after 5 attempts"),
        "{err}"
    );
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let api = api_with_secret(None).await;
    let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
    api.with(|s| s.faults.extend([503, 500]));
    store.load().await.expect("load after two 5xx");
    api.with(|s| s.faults.extend([429, 504]));
    store
        .save(&result(None, 2))
        .await
        .expect("save after 429 and 504");
    assert_eq!(stored_result(&api).map(|r| r.num_loops), Some(2));
}

#[tokio::test]
async fn transient_errors_give_up_within_the_bound() {
    let api = api_with_secret(None).await;
    let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
    store.load().await.expect("load");
    api.with(|s| s.faults.extend(std::iter::repeat_n(503, 1000)));
    let err = store.save(&result(None, 1)).await.expect_err("bounded");
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
    let attempts = api.with(|s| s.requests.len());
    assert!((3..1000).contains(&attempts), "{attempts}");
}

#[tokio::test]
async fn unreachable_api_is_a_bounded_io_error() {
    let api = MockApi::start().await;
    let client = api.client();
    drop(api); // nothing listens any more
    let store = SecretStore::new(client, "ns", "exp", Some(1)).with_retry(fast());
    let err = store.load().await.expect_err("unreachable");
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
}

#[tokio::test]
async fn forbidden_and_missing_secrets_are_reported_clearly() {
    let api = api_with_secret(None).await;
    api.with(|s| s.forbidden.push(PATH.into()));
    let err = SecretStore::new(api.client(), "ns", "exp", None)
        .load()
        .await
        .expect_err("403");
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
    assert!(
        err.to_string().contains("secret ns/exp: 403 Forbidden"),
        "{err}"
    );

    let err = SecretStore::new(api.client(), "ns", "nope", None)
        .load()
        .await
        .expect_err("404");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains("helm install"), "{err}");
}

#[test]
fn revision_parses_from_the_environment_value() {
    assert_eq!(parse_revision(None).expect("none"), None);
    assert_eq!(parse_revision(Some(" ")).expect("empty"), None);
    assert_eq!(parse_revision(Some("12")).expect("12"), Some(12));
    let err = parse_revision(Some("twelve")).expect_err("bad");
    assert!(err.to_string().contains("ITER8_REVISION"), "{err}");
}

#[tokio::test]
async fn read_result_of_a_secret_iter8_wrote() {
    // Iter8 v0.15 kept spec and result together under `experiment.yaml`
    let api = MockApi::start().await;
    let doc = "spec:\n- task: http\n  with: {url: http://app.test/}\n- task: assess\n  with:\n    \
               SLOs: {upper: [{metric: http/error-rate, limit: 0}]}\nresult:\n  numLoops: 1\n  \
               numCompletedTasks: 2\n  failure: false\n  insights:\n    numVersions: 1\n    \
               metricsInfo: {http/error-rate: {description: rate, type: Gauge}}\n    \
               nonHistMetricValues: [{http/error-rate: [0.5]}]\n    \
               SLOs: {upper: [{metric: http/error-rate, limit: 0}]}\n    \
               SLOsSatisfied: {upper: [[false]]}\n";
    api.with(|s| {
        s.put(
            PATH,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "exp", "namespace": "ns"},
                "type": "Opaque",
                "data": {EXPERIMENT_KEY: b64(doc)},
            }),
        )
    });
    let r = read_result(api.client(), "ns", "exp")
        .await
        .expect("read")
        .expect("a result");
    assert!(r.completed() && r.no_failure() && !r.slos_satisfied());
    assert_eq!(
        r.insights.and_then(|i| i.latest(0, "http/error-rate")),
        Some(0.5)
    );
}

#[tokio::test]
async fn read_result_for_the_cli() {
    let api = api_with_secret(None).await;
    assert_eq!(
        read_result(api.client(), "ns", "exp").await.expect("read"),
        None
    );
    let store = SecretStore::new(api.client(), "ns", "exp", Some(3));
    store.load().await.expect("load");
    store.save(&result(None, 7)).await.expect("save");
    let r = read_result(api.client(), "ns", "exp")
        .await
        .expect("read")
        .expect("some");
    assert_eq!((r.num_loops, r.revision), (7, Some(3)));
    // helm upgrade: the Secret's revision moves on; the old result is not the verdict
    api.with(|s| {
        let o = s.objects.get_mut(PATH).expect("secret");
        o["metadata"]["annotations"][REVISION_LABEL] = json!("4");
    });
    assert_eq!(
        read_result(api.client(), "ns", "exp").await.expect("read"),
        None
    );
    let err = read_result(api.client(), "ns", "missing")
        .await
        .expect_err("404");
    assert!(matches!(err, StoreError::NotFound(_)));
}

#[tokio::test]
async fn many_cronjob_loops_keep_the_secret_small() {
    let api = api_with_secret(None).await;
    let store = SecretStore::new(api.client(), "ns", "exp", Some(3));
    let mut r = result(None, 0);
    let mut sizes = Vec::new();
    for lp in 1..=60u64 {
        let stored = store.load().await.expect("load");
        if let Some(p) = stored.previous {
            r = p;
        }
        r.num_loops = lp;
        let i = r.insights_mut();
        i.ensure_versions(&["v1".into(), "v2".into()]);
        for v in 0..2 {
            i.register_metric(
                "http/latency-mean",
                MetricMeta::new(MetricType::Gauge, "mean", Some("msec")),
            );
            for m in [
                "request-count",
                "error-count",
                "latency-mean",
                "latency-p99",
                "latency-p99.9",
            ] {
                i.record(v, &format!("http/{m}"), lp as f64 * 1.37);
            }
            let lower = (lp % 40) as f64;
            i.record_histogram(
                v,
                "http/latency",
                &Histogram {
                    buckets: vec![HistBucket {
                        lower,
                        upper: lower + 1.0,
                        count: 10,
                    }],
                    count: 10,
                    sum: 10.0 * lower,
                    sum_sq: 10.0 * lower * lower,
                    min: lower,
                    max: lower + 1.0,
                },
            );
        }
        store.save(&r).await.expect("save");
        sizes.push(api.with(|s| {
            s.objects[PATH]["data"][RESULT_KEY]
                .as_str()
                .map_or(0, str::len)
        }));
    }
    let stored = stored_result(&api).expect("result");
    assert_eq!(stored.num_loops, 60);
    let last = *sizes.last().expect("sizes");
    assert!(last < 64 * 1024, "result is {last} bytes after 60 loops");
    // bounded: once the per-loop window and the histogram grid are full, it stops growing
    assert!(
        last <= sizes[44] + sizes[44] / 10,
        "{} -> {last}",
        sizes[44]
    );
}

/// A loop of `requests` requests on what `store` loaded (as the engine runs it).
async fn run_loop(store: &SecretStore, requests: u64) -> ExperimentResult {
    let stored = store.load().await.expect("load");
    let mut r = crate::engine::start_loop(stored.previous, 1, stored.revision);
    store.begin_loop(&mut r).await.expect("begin");
    let i = r.insights_mut();
    i.ensure_versions(&["v1".into()]);
    i.record(0, "http/request-count", requests as f64);
    i.record_histogram(
        0,
        "http/latency",
        &Histogram {
            buckets: vec![HistBucket {
                lower: 1.0,
                upper: 2.0,
                count: requests,
            }],
            count: requests,
            sum: requests as f64,
            sum_sq: requests as f64,
            min: 1.0,
            max: 2.0,
        },
    );
    r
}

async fn finish(store: &SecretStore, mut r: ExperimentResult) {
    r.num_completed_tasks = r.num_tasks;
    r.record_finished_loop();
    store.save(&r).await.expect("save");
}

#[tokio::test]
async fn two_runners_on_one_release_keep_every_loop() {
    let api = api_with_secret(None).await;
    let a = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
    let b = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
    let first = run_loop(&a, 1).await;
    finish(&a, first).await;
    // both read loop 1's result, then both run a loop at the same time
    let ra = run_loop(&a, 10).await;
    let rb = run_loop(&b, 20).await;
    assert_eq!(
        (ra.num_loops, rb.num_loops),
        (2, 3),
        "b took the next number"
    );
    assert_eq!(
        rb.overlaps,
        vec![crate::model::Overlap {
            loop_number: 3,
            with: 2
        }]
    );
    finish(&a, ra).await;
    finish(&b, rb).await;
    let stored = stored_result(&api).expect("result");
    assert_eq!(stored.num_loops, 3);
    let i = stored.insights.as_ref().expect("insights");
    let counts = &i.non_histogram_metric_values[0]["http/request-count"];
    assert_eq!(counts.iter().sum::<f64>(), 31.0, "{counts:?}");
    assert_eq!(i.histogram_metric_values[0]["http/latency"].count, 31);
    assert_eq!(stored.overlaps.len(), 1);
    assert_eq!(stored.verdict().num_loops, 3);
    // a third loop continues the merged result
    let rc = run_loop(&a, 5).await;
    assert_eq!(rc.num_loops, 4);
    assert!(
        rc.overlaps.len() == 1,
        "no new overlap: loop 3 had finished"
    );
}

#[tokio::test]
async fn the_last_finished_loop_stays_the_verdict_while_a_later_loop_runs() {
    let api = api_with_secret(None).await;
    let store = SecretStore::new(api.client(), "ns", "exp", Some(3)).with_retry(fast());
    let first = run_loop(&store, 1).await;
    finish(&store, first).await;
    let second = run_loop(&store, 1).await;
    store.save(&second).await.expect("save");
    let stored = stored_result(&api).expect("result");
    assert_eq!(stored.num_loops, 2);
    assert!(!stored.completed(), "loop 2 is running");
    let verdict = stored.verdict();
    assert_eq!(
        verdict.num_loops, 1,
        "the verdict says which loop it belongs to"
    );
    assert!(verdict.completed() && verdict.no_failure());
}
