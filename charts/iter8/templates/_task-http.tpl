{{/*
http: load test one URL (http.url) or several named endpoints (http.endpoints.<name>.url;
endpoint keys override the top-level ones). Parameters pass through to the runner's http
task unchanged (Iter8 v0.15 names); http.if sets the task's condition.
*/}}
{{- define "iter8.task.http" -}}
{{- $v := .Values.http | default dict }}
{{- if not (or $v.url $v.endpoints) }}
{{- fail "http.url: missing; tasks includes http, so set the URL to load, e.g. --set http.url=http://httpbin.default/get (or http.endpoints.<name>.url for several endpoints)" }}
{{- end }}
{{- $with := deepCopy $v }}
{{- $if := $with.if }}
{{- $_ := unset $with "if" }}
{{- include "iter8.numbers" (list $with "qps") }}
{{- range $name, $e := ($with.endpoints | default dict) }}
{{- if not (or $e.url $v.url) }}
{{- fail (printf "http.endpoints.%s.url: missing; set the URL of endpoint %s (or http.url for all endpoints)" $name $name) }}
{{- end }}
{{- include "iter8.numbers" (list $e "qps") }}
{{- end }}
{{- include "iter8.envelope" (list "http" $with $if) }}
{{- end }}
