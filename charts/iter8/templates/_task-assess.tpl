{{/*
assess: SLOs (assess.SLOs.upper.<metric>=<limit>: satisfied when value <= limit;
assess.SLOs.lower.<metric>=<limit>: value >= limit) and rewards (assess.rewards.max /
assess.rewards.min: lists of metrics choosing the winning version). The maps become the
runner's lists: SLOs.upper: [{metric, limit}].
Also baseline (a version name or index), relativeSLOs / regression (upper / lower maps
metric -> percent, passed as maps) and compare (metrics, alpha, minSamples).
*/}}
{{- define "iter8.task.assess" -}}
{{- $v := .Values.assess | default dict }}
{{- if not (or $v.SLOs $v.rewards $v.relativeSLOs $v.regression $v.compare) }}
{{- fail "assess: nothing to assess; tasks includes assess, so set SLOs (e.g. --set assess.SLOs.upper.http/latency-mean=50), rewards (e.g. --set \"assess.rewards.max={http/request-count}\"), relativeSLOs, regression or compare" }}
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
{{- if hasKey $v "baseline" }}
{{- $_ := set $with "baseline" $v.baseline }}
{{- end }}
{{- range $key := list "relativeSLOs" "regression" }}
{{- $r := get $v $key }}
{{- if $r }}
{{- $out := dict }}
{{- range $kind := list "upper" "lower" }}
{{- $m := get $r $kind }}
{{- if $m }}
{{- $pm := dict }}
{{- range $metric, $pct := $m }}
{{- if kindIs "string" $pct }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]*)?([eE][-+]?[0-9]+)?$" $pct) }}
{{- fail (printf "assess.%s.%s.%s: %q is not a percentage; set how many percent the value may move, e.g. 10" $key $kind $metric $pct) }}
{{- end }}
{{- $pct = float64 $pct }}
{{- end }}
{{- $_ := set $pm $metric $pct }}
{{- end }}
{{- $_ := set $out $kind $pm }}
{{- end }}
{{- end }}
{{- $_ := set $with $key $out }}
{{- end }}
{{- end }}
{{- with $v.compare }}
{{- $c := deepCopy . }}
{{- if kindIs "string" $c.alpha }}
{{- $_ := set $c "alpha" (float64 $c.alpha) }}
{{- end }}
{{- $_ := set $with "compare" $c }}
{{- end }}
{{- include "iter8.envelope" (list "assess" $with $v.if) }}
{{- end }}
