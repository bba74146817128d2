//! The `custommetrics` task against a real Prometheus (Debian package `prometheus`, started
//! here on 127.0.0.1 scraping a local target every second) and against local REST servers.
#![allow(clippy::unwrap_used)] // test support helpers outside #[test] fns

mod support;

use std::sync::Arc;

use chrono::Utc;
use iter8::model::{Insights, MetricType};
use iter8::tasks::custommetrics::CustomMetricsTask;
use iter8::tasks::{Progress, TaskContext, TaskError};
use support::prometheus::{Prometheus, ScrapeJob};
use support::{closed_port, Seen, TestServer};

async fn run_task(
    yaml: &str,
    insights: &mut Insights,
    start: chrono::DateTime<Utc>,
) -> Result<(), TaskError> {
    let task: CustomMetricsTask = serde_yaml::from_str(yaml).expect("task YAML");
    task.validate()?;
    let progress = Progress::default();
    let mut ctx = TaskContext {
        index: 0,
        experiment_start: start,
        namespace: None,
        insights,
        progress: &progress,
        kube: None,
    };
    task.run(&mut ctx).await
}

fn close(actual: Option<f64>, expected: f64, tol: f64, what: &str) {
    let a = actual.unwrap_or_else(|| panic!("{what}: no value"));
    assert!(
        (a - expected).abs() <= tol,
        "{what}: {a} not within {tol} of {expected}"
    );
}

// ---- real Prometheus -------------------------------------------------------------------

/// Known data, per version (v1, v2), in the Prometheus text format. Durations in seconds
/// for the generic template, milliseconds for the Istio one.
const EXPOSITION: &str = r#"# TYPE http_requests_total counter
http_requests_total{app="web",version="v1",code="200"} 950
http_requests_total{app="web",version="v1",code="500"} 50
http_requests_total{app="web",version="v2",code="200"} 1990
http_requests_total{app="web",version="v2",code="503"} 10
http_requests_total{app="other",version="v1",code="500"} 777
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{app="web",version="v1",le="0.01"} 100
http_request_duration_seconds_bucket{app="web",version="v1",le="0.05"} 500
http_request_duration_seconds_bucket{app="web",version="v1",le="0.1"} 900
http_request_duration_seconds_bucket{app="web",version="v1",le="0.5"} 990
http_request_duration_seconds_bucket{app="web",version="v1",le="1"} 1000
http_request_duration_seconds_bucket{app="web",version="v1",le="+Inf"} 1000
http_request_duration_seconds_sum{app="web",version="v1"} 80
http_request_duration_seconds_count{app="web",version="v1"} 1000
http_request_duration_seconds_bucket{app="web",version="v2",le="0.01"} 1000
http_request_duration_seconds_bucket{app="web",version="v2",le="0.05"} 1800
http_request_duration_seconds_bucket{app="web",version="v2",le="0.1"} 1980
http_request_duration_seconds_bucket{app="web",version="v2",le="0.5"} 2000
http_request_duration_seconds_bucket{app="web",version="v2",le="1"} 2000
http_request_duration_seconds_bucket{app="web",version="v2",le="+Inf"} 2000
http_request_duration_seconds_sum{app="web",version="v2"} 40
http_request_duration_seconds_count{app="web",version="v2"} 2000
# TYPE istio_requests_total counter
istio_requests_total{reporter="destination",destination_workload="web-v1",response_code="200"} 380
istio_requests_total{reporter="destination",destination_workload="web-v1",response_code="503"} 20
istio_requests_total{reporter="source",destination_workload="web-v1",response_code="200"} 5000
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload="web-v1",le="10"} 200
istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload="web-v1",le="100"} 400
istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload="web-v1",le="+Inf"} 400
istio_request_duration_milliseconds_sum{reporter="destination",destination_workload="web-v1"} 8000
istio_request_duration_milliseconds_count{reporter="destination",destination_workload="web-v1"} 400
"#;

/// A real Prometheus scraping `target`, once the target's data is queryable.
async fn start_prometheus(target: std::net::SocketAddr) -> Prometheus {
    let prom = Prometheus::start(&[ScrapeJob {
        name: "target",
        target,
        honor_labels: false,
    }]);
    prom.wait_for("sum(http_requests_total{app=\"web\"})", |body| {
        body.contains("\"3000\"")
    })
    .await;
    prom
}

#[tokio::test]
async fn prometheus_and_istio_templates_against_a_real_prometheus() {
    let target = TestServer::start(Arc::new(|s: &Seen| {
        if s.path == "/metrics" {
            (200, "text/plain; version=0.0.4".into(), EXPOSITION.into())
        } else {
            (404, "text/plain".into(), "not found".into())
        }
    }))
    .await;
    let prom = start_prometheus(target.addr).await;

    let mut insights = Insights::default();
    // The experiment started a minute ago: the window is [60s].
    let start = Utc::now() - chrono::Duration::seconds(60);
    let yaml = format!(
        r#"
templates:
  prom: builtin:prometheus
values:
  prometheusURL: {url}
  labels: {{app: web}}
  latencyPercentiles: [50, 90, 95, 99]
versionValues:
- labels: {{version: v1}}
- labels: {{version: v2}}
versionNames: [v1, v2]
"#,
        url = prom.url
    );
    run_task(&yaml, &mut insights, start).await.unwrap();
    assert_eq!(insights.version_names, vec!["v1", "v2"]);
    assert!(
        insights.unavailable_metrics.iter().all(|m| m.is_empty()),
        "{:?}",
        insights.unavailable_metrics
    );
    // Counts are exact; ratios and interpolated quantiles within 1e-6 (float arithmetic).
    let tol = 1e-6;
    close(
        insights.latest(0, "prom/request-count"),
        1000.0,
        tol,
        "v1 request-count",
    );
    close(
        insights.latest(1, "prom/request-count"),
        2000.0,
        tol,
        "v2 request-count",
    );
    close(
        insights.latest(0, "prom/error-count"),
        50.0,
        tol,
        "v1 error-count",
    );
    close(
        insights.latest(1, "prom/error-count"),
        10.0,
        tol,
        "v2 error-count",
    );
    close(
        insights.latest(0, "prom/error-rate"),
        0.05,
        tol,
        "v1 error-rate",
    );
    close(
        insights.latest(1, "prom/error-rate"),
        0.005,
        tol,
        "v2 error-rate",
    );
    close(
        insights.latest(0, "prom/latency-mean"),
        80.0,
        tol,
        "v1 mean (ms)",
    );
    close(
        insights.latest(1, "prom/latency-mean"),
        20.0,
        tol,
        "v2 mean (ms)",
    );
    // histogram_quantile interpolates linearly inside the bucket:
    // v1 p50: rank 500 = top of (10ms, 50ms] -> 50; p90: rank 900 -> 100;
    // p95: rank 950 in (100ms, 500ms] holding 90 -> 100 + 400 * 50/90; p99: rank 990 -> 500.
    close(insights.latest(0, "prom/latency-p50"), 50.0, 1e-6, "v1 p50");
    close(
        insights.latest(0, "prom/latency-p90"),
        100.0,
        1e-6,
        "v1 p90",
    );
    close(
        insights.latest(0, "prom/latency-p95"),
        100.0 + 400.0 * 50.0 / 90.0,
        1e-6,
        "v1 p95",
    );
    close(
        insights.latest(0, "prom/latency-p99"),
        500.0,
        1e-6,
        "v1 p99",
    );
    // v2: p50 rank 1000 -> 10; p90 rank 1800 -> 50; p95 rank 1900 in (50, 100] holding 180.
    close(insights.latest(1, "prom/latency-p50"), 10.0, 1e-6, "v2 p50");
    close(insights.latest(1, "prom/latency-p90"), 50.0, 1e-6, "v2 p90");
    close(
        insights.latest(1, "prom/latency-p95"),
        50.0 + 50.0 * 100.0 / 180.0,
        1e-6,
        "v2 p95",
    );
    close(
        insights.latest(1, "prom/latency-p99"),
        100.0,
        1e-6,
        "v2 p99",
    );
    assert_eq!(
        insights.metrics_info["prom/request-count"].kind,
        MetricType::Counter
    );
    assert_eq!(
        insights.metrics_info["prom/error-rate"].kind,
        MetricType::Gauge
    );
    assert_eq!(
        insights.metrics_info["prom/latency-p95"].units.as_deref(),
        Some("msec")
    );

    // The Istio template: reporter="destination" only, 5xx errors, millisecond histogram.
    let mut insights = Insights::default();
    let yaml = format!(
        r#"
templates: {{mesh: builtin:istio}}
values:
  prometheusURL: {url}
  labels: {{destination_workload: web-v1}}
  latencyPercentiles: [50]
"#,
        url = prom.url
    );
    run_task(&yaml, &mut insights, start).await.unwrap();
    close(
        insights.latest(0, "mesh/request-count"),
        400.0,
        tol,
        "istio request-count",
    );
    close(
        insights.latest(0, "mesh/error-count"),
        20.0,
        tol,
        "istio error-count",
    );
    close(
        insights.latest(0, "mesh/error-rate"),
        0.05,
        tol,
        "istio error-rate",
    );
    close(
        insights.latest(0, "mesh/latency-mean"),
        20.0,
        tol,
        "istio mean",
    );
    // rank 200 = top of the first bucket (0, 10]
    close(
        insights.latest(0, "mesh/latency-p50"),
        10.0,
        tol,
        "istio p50",
    );

    // A selector that matches nothing: no data, marked unavailable with the reason.
    let mut insights = Insights::default();
    let yaml = format!(
        r#"
templates: {{prom: builtin:prometheus}}
values: {{prometheusURL: {url}, labels: {{app: nosuch}}}}
"#,
        url = prom.url
    );
    run_task(&yaml, &mut insights, start).await.unwrap();
    let why = &insights.unavailable_metrics[0]["prom/request-count"];
    assert!(why.contains("no data"), "{why}");
    assert_eq!(insights.latest(0, "prom/request-count"), None);
    // error-count has `or on() vector(0)`: 0, a real value
    assert_eq!(insights.latest(0, "prom/error-count"), Some(0.0));
}

// ---- REST providers ---------------------------------------------------------------------

fn json_server_handler() -> support::Handler {
    Arc::new(|s: &Seen| {
        match s.path.as_str() {
        "/stats" => {
            let version = s.param("version").unwrap_or_default();
            let body = match version.as_str() {
                "v1" => r#"{"conversions": {"rate": "0.12", "count": 34}}"#,
                "v2" => r#"{"conversions": {"rate": 0.31, "count": 80}}"#,
                _ => r#"{"conversions": null}"#,
            };
            (200, "application/json".into(), body.into())
        }
        "/search" => {
            let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap_or_default();
            let n = body["metric"].as_str().unwrap_or_default().len();
            (200, "application/json".into(), format!(r#"{{"hits":[{n}]}}"#))
        }
        "/broken" => (500, "text/plain".into(), "database on fire".into()),
        "/echo" => (401, "text/plain".into(), format!("denied: {:?}", s.headers)),
        "/text" => (200, "text/plain".into(), "hello".into()),
        "/template" => (
            200,
            "text/plain".into(),
            "url: {{ .base }}/stats\nmetrics:\n- name: c\n  type: counter\n  params: [{name: version, value: v2}]\n  jqExpression: .conversions.count\n".into(),
        ),
        _ => (404, "text/plain".into(), "not found".into()),
    }
    })
}

#[tokio::test]
async fn rest_provider_with_jq_per_version() {
    let srv = TestServer::start(json_server_handler()).await;
    let mut insights = Insights::default();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t-token-value\n").unwrap();
    let yaml = format!(
        r#"
templates:
  shop: |
    url: {base}/stats
    headers:
      X-Team: {{{{ .team | upper }}}}
    metrics:
    # description, units and params are optional (Iter8 crashed without them)
    - name: conversion-rate
      type: gauge
      params:
      - name: version
        value: {{{{ .version }}}}
      jqExpression: .conversions.rate
    - name: conversions
      type: counter
      description: Conversions
      params: [{{name: version, value: "{{{{ .version }}}}"}}]
      jqExpression: .conversions.count
  search: |
    url: {base}/search
    method: POST
    metrics:
    - name: hits
      type: gauge
      body: '{{{{ dict "metric" .Values.version | toJson }}}}'
      jqExpression: .hits[0]
values: {{team: growth}}
versionValues: [{{version: v1}}, {{version: v2}}, {{version: v3}}]
auth:
  shop: {{bearerTokenFile: {token}}}
"#,
        base = srv.url(""),
        token = token.display()
    );
    run_task(&yaml, &mut insights, Utc::now()).await.unwrap();
    assert_eq!(insights.num_versions, 3);
    assert_eq!(insights.latest(0, "shop/conversion-rate"), Some(0.12));
    assert_eq!(insights.latest(1, "shop/conversion-rate"), Some(0.31));
    assert_eq!(insights.latest(0, "shop/conversions"), Some(34.0));
    assert_eq!(insights.latest(1, "shop/conversions"), Some(80.0));
    assert_eq!(insights.latest(0, "search/hits"), Some(2.0));
    // v3: the API answers null: unavailable, with the reason
    assert!(insights.unavailable_metrics[2]["shop/conversion-rate"].contains("no data"));
    assert_eq!(
        insights.metrics_info["shop/conversion-rate"].description,
        ""
    );
    assert_eq!(
        insights.metrics_info["shop/conversions"].description,
        "Conversions"
    );

    let reqs = srv.requests();
    let shop: Vec<&Seen> = reqs.iter().filter(|r| r.path == "/stats").collect();
    assert_eq!(shop.len(), 6);
    assert_eq!(shop[0].method, "GET");
    assert_eq!(shop[0].header("x-team"), Some("GROWTH"));
    assert_eq!(
        shop[0].header("authorization"),
        Some("Bearer s3cr3t-token-value")
    );
    assert_eq!(
        shop[0].header("content-type"),
        Some("application/json;charset=utf-8")
    );
    let search: Vec<&Seen> = reqs.iter().filter(|r| r.path == "/search").collect();
    assert_eq!(search[0].method, "POST");
    assert_eq!(search[0].header("authorization"), None);
    assert_eq!(search[0].json(), serde_json::json!({"metric": "v1"}));

    // The token never lands in the result.
    let result = serde_yaml::to_string(&insights).unwrap();
    assert!(!result.contains("s3cr3t"), "{result}");
}

#[tokio::test]
async fn template_from_url_and_file() {
    let srv = TestServer::start(json_server_handler()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.tpl");
    std::fs::write(
        &file,
        "url: {{ .base }}/stats\nmetrics:\n- {name: r, type: gauge, params: [{name: version, value: v1}], jqExpression: .conversions.rate}\n",
    )
    .unwrap();
    let mut insights = Insights::default();
    let yaml = format!(
        "templates:\n  fromurl: {url}\n  fromfile: {{file: {file}}}\nvalues: {{base: '{base}'}}\n",
        url = srv.url("/template"),
        file = file.display(),
        base = srv.url("")
    );
    run_task(&yaml, &mut insights, Utc::now()).await.unwrap();
    assert_eq!(insights.latest(0, "fromurl/c"), Some(80.0));
    assert_eq!(insights.latest(0, "fromfile/r"), Some(0.12));
}

#[tokio::test]
async fn provider_down_bad_status_and_non_numbers_are_unavailable_with_reasons() {
    let srv = TestServer::start(json_server_handler()).await;
    let down = closed_port();
    let mut insights = Insights::default();
    let yaml = format!(
        r#"
templates:
  down: |
    url: http://127.0.0.1:{down}/api
    metrics: [{{name: m, type: gauge, jqExpression: .x}}]
  broken: |
    url: {base}/broken
    metrics: [{{name: m, type: gauge, jqExpression: .x}}]
  text: |
    url: {base}/text
    metrics: [{{name: m, type: gauge, jqExpression: .x}}]
  word: |
    url: {base}/search
    metrics: [{{name: m, type: gauge, jqExpression: '"many"'}}]
"#,
        base = srv.url("")
    );
    run_task(&yaml, &mut insights, Utc::now()).await.unwrap();
    let u = &insights.unavailable_metrics[0];
    assert!(u["down/m"].contains("cannot connect"), "{}", u["down/m"]);
    assert!(u["broken/m"].contains("HTTP 500"), "{}", u["broken/m"]);
    assert!(
        u["broken/m"].contains("database on fire"),
        "{}",
        u["broken/m"]
    );
    assert!(u["text/m"].contains("not JSON"), "{}", u["text/m"]);
    assert!(u["word/m"].contains("not a number"), "{}", u["word/m"]);
    // visible in the result
    let y = serde_yaml::to_string(&insights).unwrap();
    assert!(
        y.contains("unavailableMetrics") && y.contains("cannot connect"),
        "{y}"
    );

    // failOnError: the same outage fails the task, naming the metric.
    let mut insights = Insights::default();
    let yaml = format!(
        "templates:\n  down: |\n    url: http://127.0.0.1:{down}/api\n    metrics: [{{name: m, type: gauge, jqExpression: .x}}]\nfailOnError: true\n"
    );
    let e = run_task(&yaml, &mut insights, Utc::now())
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("failOnError") && msg.contains("down/m"),
        "{msg}"
    );
    assert!(insights.unavailable_metrics[0].contains_key("down/m"));
}

#[tokio::test]
async fn template_errors_name_provider_and_line() {
    let cases = [
        // bad syntax (unclosed action) on line 2
        ("url: http://h\nmetrics: {{ .x\n", "line 2"),
        // unknown function on line 3
        (
            "url: http://h\nmetrics:\n- name: {{ nosuchfunc .x }}\n",
            "nosuchfunc",
        ),
        // missing value on line 4
        (
            "url: http://h\nmetrics:\n- name: a\n  type: {{ .kind }}\n  jqExpression: .x\n",
            "line 4",
        ),
    ];
    for (tpl, expect) in cases {
        let task = CustomMetricsTask {
            templates: [(
                "myprov".to_string(),
                iter8::tasks::custommetrics::TemplateSource::Auto(tpl.to_string()),
            )]
            .into(),
            values: Default::default(),
            version_values: vec![],
            version_names: vec![],
            starting_time: None,
            auth: Default::default(),
            fail_on_error: false,
            timeout: None,
            ca_file: None,
            insecure_skip_verify: None,
        };
        let mut insights = Insights::default();
        let progress = Progress::default();
        let mut ctx = TaskContext {
            index: 0,
            experiment_start: Utc::now(),
            namespace: None,
            insights: &mut insights,
            progress: &progress,
            kube: None,
        };
        let msg = task.run(&mut ctx).await.unwrap_err().to_string();
        assert!(msg.contains("\"myprov\""), "{msg}");
        assert!(msg.contains(expect), "{expect:?} not in {msg}");
    }
    // the unknown function's line, and the missing value's hint
    let e = run_task(
        "templates:\n  p: \"url: x\\nmetrics:\\n- name: {{ nosuchfunc .x }}\\n\"\n",
        &mut Insights::default(),
        Utc::now(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 3"), "{e}");
    // a rendered spec that is not a provider spec (type missing)
    let e = run_task(
        "templates:\n  p: \"url: http://h\\nmetrics:\\n- {name: a, jqExpression: .x}\\n{{/* c */}}\"\n",
        &mut Insights::default(),
        Utc::now(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("\"p\"") && e.contains("type"), "{e}");
}

#[tokio::test]
async fn auth_from_env_and_basic_auth_files_never_logged() {
    let srv = TestServer::start(json_server_handler()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user"), "alice\n").unwrap();
    std::fs::write(dir.path().join("pass"), "pa55-w0rd-xyz\n").unwrap();
    std::env::set_var("ITER8_TEST_CM_TOKEN", "env-t0ken-abc");
    let logs = support::LogBuf::default();
    let _g = logs.install();
    let mut insights = Insights::default();
    let yaml = format!(
        r#"
templates:
  a: |
    url: {base}/echo
    metrics: [{{name: m, type: gauge, jqExpression: .x}}]
  b: |
    url: {base}/stats
    metrics: [{{name: m, type: gauge, params: [{{name: version, value: v1}}], jqExpression: .conversions.rate}}]
auth:
  a: {{bearerTokenEnv: ITER8_TEST_CM_TOKEN}}
  b: {{basicAuth: {{usernameFile: {d}/user, passwordFile: {d}/pass}}}}
"#,
        base = srv.url(""),
        d = dir.path().display()
    );
    run_task(&yaml, &mut insights, Utc::now()).await.unwrap();
    let reqs = srv.requests();
    let a = reqs.iter().find(|r| r.path == "/echo").unwrap();
    assert_eq!(a.header("authorization"), Some("Bearer env-t0ken-abc"));
    let b = reqs.iter().find(|r| r.path == "/stats").unwrap();
    // base64("alice:pa55-w0rd-xyz")
    assert_eq!(
        b.header("authorization"),
        Some("Basic YWxpY2U6cGE1NS13MHJkLXh5eg==")
    );
    // the server echoed the token back: the reason is scrubbed
    let why = &insights.unavailable_metrics[0]["a/m"];
    assert!(
        why.contains("HTTP 401") && why.contains("Bearer ***"),
        "{why}"
    );
    let out = serde_yaml::to_string(&insights).unwrap() + &logs.text();
    assert!(
        logs.text().contains("metric unavailable"),
        "logs: {}",
        logs.text()
    );
    for secret in [
        "env-t0ken-abc",
        "pa55-w0rd-xyz",
        "YWxpY2U6cGE1NS13MHJkLXh5eg",
    ] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }

    // a missing credential file: a clear error naming the file, not a panic
    let yaml = "templates: {a: {inline: 'url: http://h'}}\nauth: {a: {bearerTokenFile: /nonexistent/token}}\n";
    let e = run_task(yaml, &mut Insights::default(), Utc::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/token"), "{e}");
}

#[tokio::test]
async fn assess_over_custom_metrics_with_a_missing_one() {
    use iter8::tasks::assess::AssessTask;
    let srv = TestServer::start(json_server_handler()).await;
    let yaml = format!(
        r#"
templates:
  shop: |
    url: {base}/stats
    metrics:
    - name: conversion-rate
      type: gauge
      params: [{{name: version, value: "{{{{ .version }}}}"}}]
      jqExpression: .conversions.rate
    - name: conversions
      type: counter
      params: [{{name: version, value: "{{{{ .version }}}}"}}]
      jqExpression: .conversions.count
versionValues: [{{version: v1}}, {{version: v2}}, {{version: v3}}]
versionNames: [v1, v2, v3]
"#,
        base = srv.url("")
    );
    let cm: CustomMetricsTask = serde_yaml::from_str(&yaml).unwrap();
    let assess: AssessTask = serde_yaml::from_str(
        "SLOs:\n  lower: {shop/conversion-rate: 0.1}\n  upper: {shop/conversions: 50}\nrewards: {max: [shop/conversion-rate]}\n",
    )
    .unwrap();
    assess.validate().unwrap();
    // the engine checks assess's metrics against the prefixes of earlier tasks
    assess.check_metrics(&cm.metric_prefixes()).unwrap();

    let mut insights = Insights::default();
    let progress = Progress::default();
    let mut ctx = TaskContext {
        index: 0,
        experiment_start: Utc::now(),
        namespace: None,
        insights: &mut insights,
        progress: &progress,
        kube: None,
    };
    cm.run(&mut ctx).await.unwrap();
    ctx.index = 1;
    assess.run(&mut ctx).await.unwrap();

    // v1: rate 0.12 >= 0.1, count 34 <= 50: satisfied. v2: rate 0.31 ok, count 80 > 50.
    // v3: the API has no data: both metrics missing, so neither SLO is satisfied.
    let sat = insights.slos_satisfied.clone().unwrap();
    assert_eq!(sat.lower, vec![vec![true, true, false]]);
    assert_eq!(sat.upper, vec![vec![true, false, false]]);
    assert!(insights.unavailable_metrics[2].contains_key("shop/conversion-rate"));
    // the reward winner is v2 (0.31)
    assert_eq!(insights.reward_winners.as_ref().unwrap().max, vec![Some(1)]);
}
