{{/*
notify: an HTTP call describing the result (a Slack webhook, GitHub repository_dispatch, any
URL). Parameters pass through to the runner's notify task unchanged (url, method, headers,
payloadTemplate, softFailure, ...).
*/}}
{{- define "iter8.task.notify" -}}
{{- $v := .Values.notify | default dict }}
{{- if not $v.url }}
{{- fail "notify.url: missing; tasks includes notify, so set the URL to call, e.g. --set notify.url=https://hooks.slack.com/services/..." }}
{{- end }}
{{- $with := deepCopy $v }}
{{- $if := $with.if }}
{{- $_ := unset $with "if" }}
{{- include "iter8.envelope" (list "notify" $with $if) }}
{{- end }}
