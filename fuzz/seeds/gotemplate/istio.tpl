{{- /*
Provider template: Prometheus of an Istio mesh (builtin:istio), standard Istio metrics
istio_requests_total and istio_request_duration_milliseconds_bucket.

Rendered per version with the task's `values` merged with that version's `versionValues`:
  prometheusURL       Prometheus base URL (default http://prometheus.istio-system:9090)
  labels              Istio labels that select this version, e.g.
                      {destination_workload: web-v2, destination_workload_namespace: default}
  reporter            reporter label (default destination)
  latencyPercentiles  percentiles computed with histogram_quantile (default [50, 90, 95, 99])
  counterFunction     last_over_time (default, as Iter8) or increase
  minWindowSeconds    shortest window, so that a scrape falls inside it (default 60)
  elapsedTimeSeconds  implicit: now minus startingTime (or the experiment's start);
                      the window is [max(elapsedTimeSeconds, minWindowSeconds) s]
Metrics: request-count, error-count (5xx), error-rate, latency-mean (ms), latency-p<P> (ms).
*/ -}}
{{- define "selector" -}}
reporter="{{ .reporter | default "destination" }}",
{{- range $k, $v := (.labels | default (dict)) }}{{ $k }}="{{ $v }}",{{ end -}}
{{- end -}}
{{- $w := printf "%ds" (max .elapsedTimeSeconds (.minWindowSeconds | default 60)) -}}
{{- $fn := .counterFunction | default "last_over_time" -}}
url: {{ .prometheusURL | default "http://prometheus.istio-system:9090" | trimSuffix "/" }}/api/v1/query
method: GET
metrics:
- name: request-count
  type: counter
  description: Number of requests
  params:
  - name: query
    value: sum({{ $fn }}(istio_requests_total{ {{- template "selector" . }}}[{{ $w }}]))
  jqExpression: .data.result[0].value[1]
- name: error-count
  type: counter
  description: Number of requests answered with a 5xx status
  params:
  - name: query
    value: sum({{ $fn }}(istio_requests_total{ {{- template "selector" . }}response_code=~"5.."}[{{ $w }}])) or on() vector(0)
  jqExpression: .data.result[0].value[1]
- name: error-rate
  type: gauge
  description: Fraction of requests answered with a 5xx status
  params:
  - name: query
    value: (sum({{ $fn }}(istio_requests_total{ {{- template "selector" . }}response_code=~"5.."}[{{ $w }}])) or on() vector(0)) / sum({{ $fn }}(istio_requests_total{ {{- template "selector" . }}}[{{ $w }}]))
  jqExpression: .data.result[0].value[1]
- name: latency-mean
  type: gauge
  description: Mean latency
  units: msec
  params:
  - name: query
    value: sum({{ $fn }}(istio_request_duration_milliseconds_sum{ {{- template "selector" . }}}[{{ $w }}])) / sum({{ $fn }}(istio_request_duration_milliseconds_count{ {{- template "selector" . }}}[{{ $w }}]))
  jqExpression: .data.result[0].value[1]
{{- range $p := (.latencyPercentiles | default (list 50 90 95 99)) }}
- name: latency-p{{ $p }}
  type: gauge
  description: {{ $p }}th percentile latency
  units: msec
  params:
  - name: query
    value: histogram_quantile({{ divf $p 100 }}, sum by (le) ({{ $fn }}(istio_request_duration_milliseconds_bucket{ {{- template "selector" $ }}}[{{ $w }}])))
  jqExpression: .data.result[0].value[1]
{{- end }}
