//! Iter8 v0.15 users' inputs run unchanged, with the verdict Iter8 gives: experiment files
//! in the shape of Iter8's testdata and chart output, run by `iter8-runner` against local
//! servers, then judged by `iter8 assert` / `iter8 report`.
#![allow(clippy::unwrap_used)] // test support helpers outside #[test] fns

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use iter8::model::ExperimentResult;
use support::TestServer;

fn runner(dir: &Path, experiment: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("experiment.yaml"), experiment).expect("write experiment");
    Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir)
        .args(["-f", "experiment.yaml", "-o", "result.yaml", "--quiet"])
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .expect("run iter8-runner")
}

fn iter8(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iter8"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run iter8")
}

fn result(dir: &Path) -> ExperimentResult {
    let text = std::fs::read_to_string(dir.join("result.yaml")).expect("result file");
    serde_yaml::from_str(&text).expect("result yaml")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `/ok` answers 200, anything else 500.
async fn server() -> TestServer {
    TestServer::start(Arc::new(|s| {
        let status = if s.path == "/ok" { 200 } else { 500 };
        (status, "text/plain".into(), "x".into())
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_one_version_and_an_slo_on_one_endpoint_is_judged_for_it() {
    let s = server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // As Iter8's chart renders http.endpoints with an assess task: SLOs name one endpoint
    // each; an uncommon percentile (p97.5, not in `percentiles`) is computed on demand.
    let exp = format!(
        "spec:\n- task: http\n  with:\n    numRequests: 20\n    qps: 0\n    endpoints:\n      \
         get:\n        url: {}\n      post:\n        url: {}\n        payloadStr: hi\n\
         - task: assess\n  with:\n    SLOs:\n      upper:\n      - metric: http-get/error-rate\n        \
         limit: 0\n      - metric: http-get/latency-p97.5\n        limit: 10000\n      \
         - metric: http-post/latency-p99.90\n        limit: 10000\n",
        s.url("/ok"),
        s.url("/ok")
    );
    let out = runner(dir.path(), &exp, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = result(dir.path());
    let ins = r.insights.as_ref().expect("insights");
    assert_eq!(ins.num_versions, 1);
    assert!(r.slos_satisfied(), "{:#?}", ins.slos_satisfied);
    let out = iter8(
        dir.path(),
        &[
            "assert",
            "-f",
            "result.yaml",
            "-c",
            "completed",
            "-c",
            "nofailure",
            "-c",
            "slos",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = iter8(dir.path(), &["report", "-f", "result.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("http-get/latency-p97.5"),
        "{}",
        text(&out)
    );

    // The SLO of the failing endpoint fails for the one version, not "no value".
    let exp = exp
        .replace(&s.url("/ok"), &s.url("/fail"))
        .replacen(&s.url("/fail"), &s.url("/ok"), 1)
        .replace("http-get/error-rate", "http-post/error-rate");
    let out = runner(dir.path(), &exp, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = iter8(dir.path(), &["assert", "-f", "result.yaml", "-c", "slos"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("http-post/error-rate = 1"),
        "{}",
        text(&out)
    );
}

/// An Iter8 v0.15 experiment document (spec + result in one, as Iter8 kept it in its
/// Secret's `experiment.yaml`): an http load test whose SLOs hold. Our own values, in the
/// shape of Iter8's Go types (base/experiment.go) and its testdata.
const ITER8_HTTP_DOC: &str = r#"spec:
- task: http
  with:
    url: http://app.test/
    numRequests: 40
- task: assess
  with:
    SLOs:
      upper:
      - metric: http/error-rate
        limit: 0.05
      - metric: http/latency-p95.0
        limit: 80
- if: SLOs()
  run: echo SLOs satisfied
result:
  startTime: "2023-06-01T08:15:30.25-07:00"
  numLoops: 1
  numCompletedTasks: 3
  failure: false
  iter8Version: v0.15
  insights:
    numVersions: 1
    versionNames: null
    metricsInfo:
      http/error-count:
        description: number of responses that were errors
        type: Counter
      http/error-rate:
        description: fraction of responses that were errors
        type: Gauge
      http/latency:
        description: Latency Histogram
        type: Histogram
        units: msec
      http/latency-mean:
        description: mean of observed latency values
        type: Gauge
        units: msec
      http/latency-p95:
        description: 95-th percentile of observed latency values
        type: Gauge
        units: msec
      http/request-count:
        description: number of requests sent
        type: Counter
    nonHistMetricValues:
    - http/error-count:
      - 1
      http/error-rate:
      - 0.025
      http/latency-mean:
      - 23.75
      http/latency-p95:
      - 61.5
      http/request-count:
      - 40
    histMetricValues:
    - http/latency:
      - count: 25
        lower: 10
        upper: 20
      - count: 12
        lower: 20
        upper: 50
      - count: 3
        lower: 50
        upper: 70
    SLOs:
      upper:
      - metric: http/error-rate
        limit: 0.05
      - metric: http/latency-p95.0
        limit: 80
    SLOsSatisfied:
      upper:
      - - true
      - - true
"#;

/// A gRPC experiment in its second CronJob loop: Iter8 kept every latency as a sample
/// metric and appended one counter value per loop. Iter8's logic gives: p50 of the sample
/// (montanaflynn/stats: 6 values, index 3 -> the 3rd smallest) = 7 <= 10 holds; the latest
/// error-count is 2 > 0, so `slos` is false; completed (2 of 2) and nofailure hold.
const ITER8_GRPC_DOC: &str = r#"spec:
- task: grpc
  with:
    host: app.test:50051
    call: helloworld.Greeter.SayHello
    total: 6
- task: assess
  with:
    SLOs:
      upper:
      - metric: grpc/latency/p50
        limit: 10
      - metric: grpc/error-count
        limit: 0
result:
  startTime: "2023-06-01T08:15:30Z"
  numLoops: 2
  numCompletedTasks: 2
  failure: false
  iter8Version: v0.15
  insights:
    numVersions: 1
    metricsInfo:
      grpc/error-count:
        description: number of responses that were errors
        type: Counter
      grpc/latency:
        description: gRPC Latency Sample
        type: Sample
        units: msec
      grpc/request-count:
        description: number of requests sent
        type: Counter
    nonHistMetricValues:
    - grpc/error-count:
      - 0
      - 2
      grpc/latency:
      - 4
      - 9
      - 12
      - 3
      - 30
      - 7
      grpc/request-count:
      - 6
      - 6
    SLOs:
      upper:
      - metric: grpc/latency/p50
        limit: 10
      - metric: grpc/error-count
        limit: 0
    SLOsSatisfied:
      upper:
      - - true
      - - false
"#;

#[test]
fn iter8_result_documents_give_iter8s_verdicts_and_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("http.yaml"), ITER8_HTTP_DOC).expect("write");
    std::fs::write(dir.path().join("grpc.yaml"), ITER8_GRPC_DOC).expect("write");
    let all = ["-c", "completed", "-c", "nofailure", "-c", "slos"];

    let out = iter8(
        dir.path(),
        &[&["assert", "-f", "http.yaml"][..], &all].concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = iter8(dir.path(), &["report", "-f", "http.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = text(&out);
    for needle in ["http/latency-p95", "61.5", "0.025", "40"] {
        assert!(report.contains(needle), "{needle}: {report}");
    }

    let out = iter8(
        dir.path(),
        &[&["assert", "-f", "grpc.yaml"][..], &all].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("condition false: slos"), "{said}");
    assert!(said.contains("grpc/error-count = 2"), "{said}");
    assert!(!said.contains("condition false: completed"), "{said}");
    let out = iter8(
        dir.path(),
        &["assert", "-f", "grpc.yaml", "-c", "completed,nofailure"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // the numbers Iter8 computed from the sample
    let out = iter8(dir.path(), &["report", "-f", "grpc.yaml", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r: ExperimentResult = serde_json::from_slice(&out.stdout).expect("json");
    let ins = r.insights.expect("insights");
    assert_eq!(ins.latest(0, "grpc/latency/p50"), Some(7.0));
    assert_eq!(ins.latest(0, "grpc/latency/p95"), Some(21.0));
    assert_eq!(ins.latest(0, "grpc/latency/mean"), Some(65.0 / 6.0));
    assert_eq!(ins.latest(0, "grpc/latency/max"), Some(30.0));
    assert_eq!(ins.latest(0, "grpc/error-count"), Some(2.0));
    assert_eq!((r.num_loops, r.num_tasks), (2, 2));
}

#[test]
fn iter8_cli_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("grpc.yaml"), ITER8_GRPC_DOC).expect("write");
    // `iter8 k assert ... -t`: a finished run whose SLOs fail exits 1 at once
    let out = iter8(
        dir.path(),
        &[
            "k",
            "assert",
            "-c",
            "completed",
            "-c",
            "nofailure",
            "-c",
            "slos",
            "-f",
            "grpc.yaml",
            "-t",
            "200s",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the verdict can no longer change"),
        "{}",
        text(&out)
    );
    let out = iter8(dir.path(), &["k", "report", "-f", "grpc.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = iter8(dir.path(), &["version"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).starts_with("iter8 "), "{}", text(&out));
    // -g GROUP, --kube-context and Iter8's default group name the release to read
    let kubeconfig = dir.path().join("no-kubeconfig");
    for (args, release) in [
        (vec!["k", "assert", "-c", "slos", "-g", "my-exp"], "my-exp"),
        (
            vec!["k", "report", "--group", "my-exp", "--kube-context", "ctx"],
            "my-exp",
        ),
        (vec!["k", "assert", "-c", "slos"], "default"),
        (vec!["k", "log", "-g", "my-exp"], "my-exp"),
    ] {
        let mut args: Vec<&str> = args;
        args.extend(["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")]);
        let out = iter8(dir.path(), &args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("release {release}")),
            "{args:?}: {}",
            text(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_run_with_a_warning_and_strict_refuses_them() {
    let s = server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // a typo Iter8 ignored (its own testdata has `connect-timeeout`)
    let exp = format!(
        "spec:\n- task: http\n  with:\n    url: {}\n    numRequests: 5\n    qps: 0\n    \
         contenType: text/plain\n- task: assess\n  with:\n    SLOs:\n      upper:\n      \
         - metric: http/error-rate\n        limit: 0\n",
        s.url("/ok")
    );
    let out = runner(dir.path(), &exp, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("with.contenType: unknown key ignored; did you mean `contentType`?"),
        "{}",
        text(&out)
    );
    let r = result(dir.path());
    assert_eq!(
        r.warnings,
        ["task 1 (http): with.contenType: unknown key ignored; did you mean `contentType`?"]
    );
    assert!(r.slos_satisfied());
    let out = iter8(dir.path(), &["report", "-f", "result.yaml"]);
    assert!(text(&out).contains("Warnings:"), "{}", text(&out));
    // --strict keeps the old refusal: exit 2, nothing sent
    let before = s.requests().len();
    let out = runner(dir.path(), &exp, &["--strict"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("unknown field `contenType`"),
        "{}",
        text(&out)
    );
    assert_eq!(s.requests().len(), before);
}
