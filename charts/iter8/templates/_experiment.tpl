{{/*
The experiment document the runner reads (Secret key experiment.yaml): `metadata` (release
name and namespace) and a top-level `spec:`
list of task envelopes `{task: <name>, if?: <condition>, with: {...}}`, in the order of
`.Values.tasks`. Each task's envelope comes from its `_task-<name>.tpl`.
*/}}
{{- define "iter8.experiment" -}}
{{- include "iter8.validate" . -}}
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
spec:
{{- range $i, $t := .Values.tasks }}
{{- if eq $t "ready" }}
{{ include "iter8.task.ready" $ }}
{{- else if eq $t "http" }}
{{ include "iter8.task.http" $ }}
{{- else if eq $t "grpc" }}
{{ include "iter8.task.grpc" $ }}
{{- else if eq $t "custommetrics" }}
{{ include "iter8.task.custommetrics" $ }}
{{- else if eq $t "assess" }}
{{ include "iter8.task.assess" $ }}
{{- else if eq $t "notify" }}
{{ include "iter8.task.notify" $ }}
{{- else if eq $t "slack" }}
{{ include "iter8.task.slack" $ }}
{{- else if eq $t "github" }}
{{ include "iter8.task.github" $ }}
{{- else }}
{{- fail (printf "tasks[%d]: unknown task %q; known tasks: ready, http, grpc, custommetrics, assess, notify, slack, github" $i (toString $t)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* One task envelope as a YAML list item: include "iter8.envelope" (list "http" $with $if) */}}
{{- define "iter8.envelope" -}}
{{- $task := dict "task" (index . 0) "with" (index . 1) }}
{{- if index . 2 }}
{{- $_ := set $task "if" (index . 2) }}
{{- end }}
{{- toYaml (list $task) }}
{{- end }}

{{/* Numbers given with --set come as strings when they have a fraction ("8.5"): make them
numbers. include "iter8.numbers" (list $dict "qps" "limit") modifies $dict in place. */}}
{{- define "iter8.numbers" -}}
{{- $d := index . 0 }}
{{- range $k := rest . }}
{{- if and (hasKey $d $k) (kindIs "string" (get $d $k)) }}
{{- $_ := set $d $k (float64 (get $d $k)) }}
{{- end }}
{{- end }}
{{- end }}
