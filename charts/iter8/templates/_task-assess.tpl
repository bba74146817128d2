{{/*
assess: SLOs (assess.SLOs.upper.<metric>=<limit>: satisfied when value <= limit;
assess.SLOs.lower.<metric>=<limit>: value >= limit) and rewards (assess.rewards.max /
assess.rewards.min: lists of metrics choosing the winning version). The maps become the
runner's lists: SLOs.upper: [{metric, limit}].
*/}}
{{- define "iter8.task.assess" -}}
{{- $v := .Values.assess | default dict }}
{{- if not (or $v.SLOs $v.rewards) }}
{{- fail "assess: nothing to assess; tasks includes assess, so set SLOs (e.g. --set assess.SLOs.upper.http/latency-mean=50) or rewards (e.g. --set \"assess.rewards.max={http/request-count}\")" }}
{{- end }}
{{- $with := dict }}
{{- if $v.SLOs }}
{{- $slos := dict }}
{{- range $kind := list "upper" "lower" }}
{{- $m := get $v.SLOs $kind }}
{{- if $m }}
{{- $l := list }}
{{- range $metric := keys $m | sortAlpha }}
{{- $limit := get $m $metric }}
{{- if kindIs "string" $limit }}
{{- if not (regexMatch "^-?[0-9]+(\\.[0-9]*)?([eE][-+]?[0-9]+)?$" $limit) }}
{{- fail (printf "assess.SLOs.%s.%s: %q is not a number; set the limit as a number, e.g. 50 or 0.5" $kind $metric $limit) }}
{{- end }}
{{- $limit = float64 $limit }}
{{- end }}
{{- $l = append $l (dict "metric" $metric "limit" $limit) }}
{{- end }}
{{- $_ := set $slos $kind $l }}
{{- end }}
{{- end }}
{{- $_ := set $with "SLOs" $slos }}
{{- end }}
{{- if $v.rewards }}
{{- $_ := set $with "rewards" $v.rewards }}
{{- end }}
{{- include "iter8.envelope" (list "assess" $with $v.if) }}
{{- end }}
