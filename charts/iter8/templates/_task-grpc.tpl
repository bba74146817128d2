{{/*
grpc: gRPC load test (unary or streaming methods) of grpc.host + grpc.call (or grpc.endpoints.<name>.host/call).
Parameters pass through to the runner's grpc task unchanged (Iter8 v0.15 / ghz names;
protoURL / dataURL / metadataURL are fetched by the runner).
*/}}
{{- define "iter8.task.grpc" -}}
{{- $v := .Values.grpc | default dict }}
{{- range $k := list "host" "call" }}
{{- if not (get $v $k) }}
{{- if not $v.endpoints }}
{{- fail (printf "grpc.%s: missing; tasks includes grpc, so set grpc.host (e.g. routeguide.default:50051) and grpc.call (e.g. routeguide.RouteGuide.GetFeature), or grpc.endpoints.<name>.host/call" $k) }}
{{- end }}
{{- range $name, $e := $v.endpoints }}
{{- if not (get $e $k) }}
{{- fail (printf "grpc.endpoints.%s.%s: missing; set it for the endpoint (or grpc.%s for all endpoints)" $name $k $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $with := deepCopy $v }}
{{- $if := $with.if }}
{{- $_ := unset $with "if" }}
{{- include "iter8.numbers" (list $with "rps") }}
{{- include "iter8.envelope" (list "grpc" $with $if) }}
{{- end }}
