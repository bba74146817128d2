{{/*
slack (Iter8's shortcut): a notify task posting the result to a Slack incoming webhook
(slack.url or slack.urlFile). As in Iter8, a failed call does not fail the experiment unless
slack.softFailure=false.
*/}}
{{- define "iter8.task.slack" -}}
{{- $v := .Values.slack | default dict }}
{{- if not (or $v.url $v.urlFile) }}
{{- fail "slack.url: missing; tasks includes slack, so set the Slack incoming-webhook URL, e.g. --set slack.url=https://hooks.slack.com/services/... (or slack.urlFile)" }}
{{- end }}
{{- $hook := dict }}
{{- if $v.url }}{{ $_ := set $hook "url" $v.url }}{{ else }}{{ $_ := set $hook "urlFile" $v.urlFile }}{{ end }}
{{- $soft := true }}
{{- if hasKey $v "softFailure" }}{{ $soft = $v.softFailure }}{{ end }}
{{- include "iter8.envelope" (list "notify" (dict "slack" $hook "softFailure" $soft) $v.if) }}
{{- end }}
