{{/*
notify: an HTTP call describing the result (a Slack webhook, GitHub repository_dispatch, any
URL). Parameters pass through to the runner's notify task unchanged (url, method, headers,
payloadTemplate, softFailure, slack, github, ...).
*/}}
{{- define "iter8.task.notify" -}}
{{- $v := .Values.notify | default dict }}
{{- if not (or $v.url $v.urlFile $v.slack $v.github) }}
{{- fail "notify.url: missing; tasks includes notify, so set where to send the result: notify.url (e.g. --set notify.url=https://hooks.example.com/iter8), notify.urlFile, notify.slack.url or notify.github.owner/repo" }}
{{- end }}
{{- $with := deepCopy $v }}
{{- $if := $with.if }}
{{- $_ := unset $with "if" }}
{{- include "iter8.envelope" (list "notify" $with $if) }}
{{- end }}
