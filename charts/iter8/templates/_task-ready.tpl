{{/*
ready: wait until Kubernetes objects exist and, for some, have a condition with status True.
Iter8's shortcuts: ready.service (v1 services: exists), ready.deploy (apps/v1 deployments:
Available), ready.ksvc (Knative services: Ready), ready.isvc (KServe inferenceservices:
Ready), ready.chaosengine (LitmusChaos chaosengines: exists); or any object with ready.version + ready.resource + ready.name (+ group, condition).
*/}}

{{/* The targets of the ready task as a YAML list (also used by the ready Role). */}}
{{- define "iter8.readyTargets" -}}
{{- $v := .Values.ready | default dict }}
{{- $ns := $v.namespace | default .Release.Namespace }}
{{- $targets := list }}
{{- if $v.service }}
{{- $targets = append $targets (dict "version" "v1" "resource" "services" "name" $v.service) }}
{{- end }}
{{- if $v.deploy }}
{{- $targets = append $targets (dict "group" "apps" "version" "v1" "resource" "deployments" "name" $v.deploy "condition" "Available") }}
{{- end }}
{{- if $v.ksvc }}
{{- $targets = append $targets (dict "group" "serving.knative.dev" "version" "v1" "resource" "services" "name" $v.ksvc "condition" "Ready") }}
{{- end }}
{{- if $v.isvc }}
{{- $targets = append $targets (dict "group" "serving.kserve.io" "version" "v1beta1" "resource" "inferenceservices" "name" $v.isvc "condition" "Ready") }}
{{- end }}
{{- if $v.chaosengine }}
{{- $targets = append $targets (dict "group" "litmuschaos.io" "version" "v1alpha1" "resource" "chaosengines" "name" $v.chaosengine) }}
{{- end }}
{{- if or $v.name $v.resource $v.group $v.version $v.condition }}
{{- range $k := list "name" "resource" "version" }}
{{- if not (get $v $k) }}
{{- fail (printf "ready.%s: missing; to wait for any object set ready.version, ready.resource and ready.name (e.g. --set ready.version=v1 --set ready.resource=configmaps --set ready.name=my-config), or use ready.deploy / ready.service / ready.ksvc / ready.isvc" $k) }}
{{- end }}
{{- end }}
{{- $t := dict "version" $v.version "resource" $v.resource "name" $v.name }}
{{- if $v.group }}{{ $_ := set $t "group" $v.group }}{{ end }}
{{- if $v.condition }}{{ $_ := set $t "condition" $v.condition }}{{ end }}
{{- $targets = append $targets $t }}
{{- end }}
{{- if not $targets }}
{{- fail "ready: no target; tasks includes ready, so set what to wait for: ready.deploy=NAME (Deployment Available), ready.service=NAME, ready.ksvc=NAME, ready.isvc=NAME, or ready.version + ready.resource + ready.name" }}
{{- end }}
{{- range $t := $targets }}
{{- $_ := set $t "namespace" $ns }}
{{- if $v.timeout }}
{{- $_ := set $t "timeout" (toString $v.timeout) }}
{{- end }}
{{- end }}
{{- toYaml $targets }}
{{- end }}

{{- define "iter8.task.ready" -}}
{{- $targets := include "iter8.readyTargets" . | fromYamlArray }}
{{- $out := list }}
{{- range $t := $targets }}
{{- $out = append $out (dict "task" "ready" "with" $t) }}
{{- end }}
{{- toYaml $out }}
{{- end }}
