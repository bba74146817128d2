{{/*
custommetrics: query metrics backends (Prometheus, any REST/JSON API) through provider
templates. custommetrics.templates maps a provider name to its template (inline, or the
Prometheus template shipped with the runner); values / versionValues fill them in.
Parameters pass through to the runner's custommetrics task unchanged.
*/}}
{{- define "iter8.task.custommetrics" -}}
{{- $v := .Values.custommetrics | default dict }}
{{- if not $v.templates }}
{{- fail "custommetrics.templates: missing; tasks includes custommetrics, so name the provider templates to query, e.g. --set custommetrics.templates.prometheus=prometheus (plus custommetrics.values.*)" }}
{{- end }}
{{- $with := deepCopy $v }}
{{- $if := $with.if }}
{{- $_ := unset $with "if" }}
{{- include "iter8.envelope" (list "custommetrics" $with $if) }}
{{- end }}
