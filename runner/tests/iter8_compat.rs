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
