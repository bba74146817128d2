{{/*
Iter8 v0.15 values accepted for compatibility (iter8-tools/docs parameters page and
tutorials): logLevel=warning/fatal/panic, iter8Image, majorMinor, slack.method,
github.token. What is ignored or has a safer form is said in NOTES.txt and, through
ITER8_VALUES_NOTES, in the runner's log.
*/}}

{{/* The runner's RUST_LOG level for .Values.logLevel (Iter8's logrus names mapped). */}}
{{- define "iter8.logLevel" -}}
{{- $l := .Values.logLevel | default "info" | toString }}
{{- if eq $l "warning" }}warn{{ else if has $l (list "fatal" "panic") }}error{{ else }}{{ $l }}{{ end }}
{{- end }}

{{/* The name of the Secret holding github.token (when given as a value). */}}
{{- define "iter8.githubTokenSecret" -}}
{{- printf "%s-github-token" (include "iter8.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Whether github.token is used (the github task is listed and the token is a value). */}}
{{- define "iter8.githubTokenFromValues" -}}
{{- if and (include "iter8.hasTask" (list . "github")) ((.Values.github).token) }}true{{ end }}
{{- end }}

{{/* One line per Iter8 value that is ignored or has a safer form; empty when none. */}}
{{- define "iter8.valuesNotes" -}}
{{- $notes := list }}
{{- if .Values.iter8Image }}
{{- $notes = append $notes (printf "iter8Image=%s is ignored: the runner image is image.repository/image.tag (%s)" (toString .Values.iter8Image) (include "iter8.image" .)) }}
{{- end }}
{{- if .Values.majorMinor }}
{{- $notes = append $notes (printf "majorMinor=%s is ignored: this chart's runner reads Iter8 v0.15 experiments as they are" (toString .Values.majorMinor)) }}
{{- end }}
{{- if has (toString .Values.logLevel) (list "warning" "fatal" "panic") }}
{{- $notes = append $notes (printf "logLevel=%s is Iter8's name; the runner logs at %s" (toString .Values.logLevel) (include "iter8.logLevel" .)) }}
{{- end }}
{{- if ((.Values.slack).method) }}
{{- $notes = append $notes (printf "slack.method=%s is ignored: Slack webhooks take POST" (toString .Values.slack.method)) }}
{{- end }}
{{- if include "iter8.githubTokenFromValues" . }}
{{- $notes = append $notes (printf "github.token is a value: Helm keeps it in its release Secret and the chart in the Secret %s; safer: your own Secret with secretEnv and github.tokenEnv" (include "iter8.githubTokenSecret" .)) }}
{{- end }}
{{- join "; " $notes }}
{{- end }}
