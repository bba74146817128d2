//! Iter8's own provider templates, fetched by URL as Iter8 did, rendered with Go's
//! text/template semantics and queried against a real Prometheus (`support::prometheus`,
//! the Debian package).
#![allow(clippy::unwrap_used)] // test support helpers outside #[test] fns

mod support;

use std::sync::Arc;

use chrono::Utc;
use iter8::model::Insights;
use iter8::tasks::custommetrics::CustomMetricsTask;
use iter8::tasks::{Progress, TaskContext};
use support::prometheus::{Prometheus, ScrapeJob};
use support::{Seen, TestServer};

/// Istio's standard metrics for one workload (two reporters), in the Prometheus text format.
const ISTIO_EXPOSITION: &str = r#"# TYPE istio_requests_total counter
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

/// A provider template in the shape of Iter8 v0.14.5's `custommetrics/istio-prom.tpl`
/// (the template the v0.15 custom-metrics tutorials fetch by URL), written here from the
/// structure of iter8-tools/iter8 `testdata/custommetrics/istio-prom.tpl`: a `define`d
/// label block that ranges over `.labels` (optional) with `kindOf` / `fail` / `printf`, a
/// defaulted `.istioPromURL`, `[{{ .elapsedTimeSeconds }}s]` windows, and a metric per
/// `.latencyPercentiles` entry (optional) built with `$`.
const ISTIO_PROM_V014: &str = r#"# labels              map[string]interface{}  optional
# elapsedTimeSeconds  int                     implicit
# latencyPercentiles  []int                   optional

{{- define "labels"}}
{{- range $key, $val := .labels }}
{{- if or (eq (kindOf $val) "slice") (eq (kindOf $val) "map")}}
{{- fail (printf "labels should be a primitive types but received: %s :%s" $key $val) }}
{{- end }}
{{- if eq $key "response_code"}}
{{- fail "labels should not contain 'response_code'" }}
{{- end }}
        {{ $key }}="{{ $val }}",
{{- end }}
{{- end}}

url: {{ .istioPromURL | default "http://prometheus.istio-system:9090/api/v1/query" }}
provider: istio-prom
method: GET
metrics:
- name: request-count
  type: counter
  description: |
    Number of requests
  params:
  - name: query
    value: |
      sum(last_over_time(istio_requests_total{
        {{- template "labels" . }}
      }[{{ .elapsedTimeSeconds }}s])) or on() vector(0)
  jqExpression: .data.result[0].value[1] | tonumber
- name: error-count
  type: counter
  description: |
    Number of unsuccessful requests
  params:
  - name: query
    value: |
      sum(last_over_time(istio_requests_total{
        response_code=~'5..',
        {{- template "labels" . }}
      }[{{ .elapsedTimeSeconds }}s])) or on() vector(0)
  jqExpression: .data.result[0].value[1] | tonumber
- name: latency-mean
  type: gauge
  description: |
    Mean latency
  params:
  - name: query
    value: |
      (sum(last_over_time(istio_request_duration_milliseconds_sum{
        {{- template "labels" . }}
      }[{{ .elapsedTimeSeconds }}s])) or on() vector(0))/(sum(last_over_time(istio_requests_total{
        {{- template "labels" . }}
      }[{{ .elapsedTimeSeconds }}s])) or on() vector(0))
  jqExpression: .data.result[0].value[1] | tonumber
{{- range $i, $p := .latencyPercentiles }}
- name: latency-p{{ $p }}
  type: gauge
  description: |
    {{ $p }} percentile latency
  params:
  - name: query
    value: |
      histogram_quantile(0.{{ $p }}, sum(rate(istio_request_duration_milliseconds_bucket{
        {{- template "labels" $ }}
      }[{{ $.elapsedTimeSeconds }}s])) by (le))
  jqExpression: .data.result[0].value[1] | tonumber
{{- end }}"#;

async fn run(yaml: &str, insights: &mut Insights) -> Result<(), iter8::tasks::TaskError> {
    let task: CustomMetricsTask = serde_yaml::from_str(yaml).unwrap();
    task.validate()?;
    let progress = Progress::default();
    let mut ctx = TaskContext {
        index: 0,
        // A minute ago: the windows are [60s] (Iter8: elapsedTimeSeconds).
        experiment_start: Utc::now() - chrono::Duration::seconds(60),
        namespace: None,
        insights,
        progress: &progress,
        kube: None,
    };
    task.run(&mut ctx).await
}

#[tokio::test]
async fn iter8_v014_istio_template_with_optional_values_left_out() {
    // One server: the scrape target (/metrics) and the template's URL.
    let server = TestServer::start(Arc::new(|s: &Seen| {
        if s.path == "/metrics" {
            (
                200,
                "text/plain; version=0.0.4".into(),
                ISTIO_EXPOSITION.into(),
            )
        } else {
            (200, "text/plain".into(), ISTIO_PROM_V014.into())
        }
    }))
    .await;
    let prom = Prometheus::start(&[ScrapeJob {
        name: "istio",
        target: server.addr,
        honor_labels: false,
    }]);
    prom.wait_for("sum(istio_requests_total)", |body| {
        body.contains("\"5400\"")
    })
    .await;
    let templates = &server;

    // As the tutorials launch it: labels given, latencyPercentiles left out (Go's range
    // runs zero times over it).
    let yaml = format!(
        "templates: {{istio-prom: {}}}\nvalues:\n  istioPromURL: {}/api/v1/query\n  labels: {{destination_workload: web-v1, reporter: destination}}\n",
        templates.url("/istio-prom.tpl"),
        prom.url
    );
    let mut insights = Insights::default();
    run(&yaml, &mut insights).await.unwrap();
    let v = |m: &str| insights.latest(0, &format!("istio-prom/{m}"));
    assert_eq!(v("request-count"), Some(400.0), "{insights:#?}");
    assert_eq!(v("error-count"), Some(20.0));
    assert_eq!(v("latency-mean"), Some(20.0));
    assert!(
        !insights
            .metrics_info
            .keys()
            .any(|k| k.contains("latency-p")),
        "no percentiles asked: {:?}",
        insights.metrics_info.keys()
    );

    // No labels either: every istio_requests_total series (5,000 more from the source
    // reporter).
    let yaml = format!(
        "templates: {{istio-prom: {}}}\nvalues:\n  istioPromURL: {}/api/v1/query\n",
        templates.url("/istio-prom.tpl"),
        prom.url
    );
    let mut insights = Insights::default();
    run(&yaml, &mut insights).await.unwrap();
    assert_eq!(insights.latest(0, "istio-prom/request-count"), Some(5400.0));

    // A label the template refuses: the error names the provider and the `fail` line
    // inside the define (line 11 of the template).
    let yaml = format!(
        "templates: {{istio-prom: {}}}\nvalues:\n  istioPromURL: {}/api/v1/query\n  labels: {{response_code: '200'}}\n",
        templates.url("/istio-prom.tpl"),
        prom.url
    );
    let mut insights = Insights::default();
    let outcome = run(&yaml, &mut insights).await;
    let text = match outcome {
        Err(e) => e.to_string(),
        Ok(()) => format!("{:?}", insights.unavailable_metrics),
    };
    assert!(
        text.contains("line 11") && text.contains("should not contain 'response_code'"),
        "{text}"
    );
}
