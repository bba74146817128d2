{{- /*
Provider template: any Prometheus (builtin:prometheus).

Rendered per version with the task's `values` merged with that version's `versionValues`:
  prometheusURL       Prometheus base URL (default http://prometheus.monitoring.svc:9090)
  labels              label matchers that select this version, e.g. {app: web, version: v2}
  requestsMetric      counter of requests (default http_requests_total)
  errorMatcher        matcher that selects failed requests (default code=~"5..")
  durationMetric      histogram base name, without _bucket/_sum/_count
                      (default http_request_duration_seconds)
  durationScale       factor from the histogram's unit to milliseconds (default 1000)
  latencyPercentiles  percentiles computed with histogram_quantile (default [50, 90, 95, 99])
  counterFunction     how counters are read over the window [elapsedTimeSeconds s]:
                      last_over_time (default: totals since the version started, as Iter8)
                      or increase (growth during the window only)
  minWindowSeconds    shortest window, so that a scrape falls inside it (default 60)
  elapsedTimeSeconds  implicit: now minus startingTime (or the experiment's start);
                      the window is [max(elapsedTimeSeconds, minWindowSeconds) s]
Metrics (prefix = the provider name in `templates`): request-count, error-count, error-rate,
latency-mean (ms), latency-p<P> (ms).
*/ -}}
{{- define "selector" -}}
{{- range $k, $v := (.labels | default (dict)) }}{{ $k }}="{{ $v }}",{{ end -}}
{{- end -}}
{{- $w := printf "%ds" (max .elapsedTimeSeconds (.minWindowSeconds | default 60)) -}}
{{- $fn := .counterFunction | default "last_over_time" -}}
{{- $req := .requestsMetric | default "http_requests_total" -}}
{{- $err := .errorMatcher | default "code=~\"5..\"" -}}
{{- $dur := .durationMetric | default "http_request_duration_seconds" -}}
{{- $scale := .durationScale | default 1000 -}}
url: {{ .prometheusURL | default "http://prometheus.monitoring.svc:9090" | trimSuffix "/" }}/api/v1/query
method: GET
metrics:
- name: request-count
  type: counter
  description: Number of requests
  params:
  - name: query
    value: sum({{ $fn }}({{ $req }}{ {{- template "selector" . }}}[{{ $w }}]))
  jqExpression: .data.result[0].value[1]
- name: error-count
  type: counter
  description: Number of failed requests
  params:
  - name: query
    value: sum({{ $fn }}({{ $req }}{ {{- template "selector" . }}{{ $err }}}[{{ $w }}])) or on() vector(0)
  jqExpression: .data.result[0].value[1]
- name: error-rate
  type: gauge
  description: Fraction of failed requests
  params:
  - name: query
    value: (sum({{ $fn }}({{ $req }}{ {{- template "selector" . }}{{ $err }}}[{{ $w }}])) or on() vector(0)) / sum({{ $fn }}({{ $req }}{ {{- template "selector" . }}}[{{ $w }}]))
  jqExpression: .data.result[0].value[1]
- name: latency-mean
  type: gauge
  description: Mean latency
  units: msec
  params:
  - name: query
    value: {{ $scale }} * sum({{ $fn }}({{ $dur }}_sum{ {{- template "selector" . }}}[{{ $w }}])) / sum({{ $fn }}({{ $dur }}_count{ {{- template "selector" . }}}[{{ $w }}]))
  jqExpression: .data.result[0].value[1]
{{- range $p := (.latencyPercentiles | default (list 50 90 95 99)) }}
- name: latency-p{{ $p }}
  type: gauge
  description: {{ $p }}th percentile latency
  units: msec
  params:
  - name: query
    value: {{ $scale }} * histogram_quantile({{ divf $p 100 }}, sum by (le) ({{ $fn }}({{ $dur }}_bucket{ {{- template "selector" $ }}}[{{ $w }}])))
  jqExpression: .data.result[0].value[1]
{{- end }}
