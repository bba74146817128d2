{{/*
Distributed load (distributedLoad.pods > 1): the runner's Job is Indexed, one pod per share
of the load; the pods meet in the release's Secret (no new permission: the Role already
grants get and patch of exactly that Secret). The runner learns its index from
JOB_COMPLETION_INDEX (set by the Job controller), the number of pods from
ITER8_LOAD_WORKERS, and the run it belongs to from its Job's name (a CronJob loop is a new
Job, so a new run).
*/}}

{{/* How many pods share the load (1 when distributedLoad is not set). */}}
{{- define "iter8.loadPods" -}}
{{- $d := .Values.distributedLoad | default dict }}
{{- int ($d.pods | default 1) }}
{{- end }}

{{/* Job spec fields of an Indexed Job (nothing for one pod). */}}
{{- define "iter8.distributedLoadJob" -}}
{{- $pods := int (include "iter8.loadPods" .) }}
{{- if gt $pods 1 }}
completionMode: Indexed
completions: {{ $pods }}
parallelism: {{ $pods }}
{{- end }}
{{- end }}

{{/* The runner's environment for distributed load (nothing for one pod). */}}
{{- define "iter8.distributedLoadEnv" -}}
{{- $pods := int (include "iter8.loadPods" .) }}
{{- if gt $pods 1 }}
{{- $timeout := (.Values.distributedLoad | default dict).timeout | default "5m" }}
{{- if not (kindIs "string" $timeout) }}
{{- $timeout = printf "%ds" (int $timeout) }}
{{- end }}
- name: ITER8_LOAD_WORKERS
  value: {{ $pods | quote }}
- name: ITER8_LOAD_WORKERS_TIMEOUT
  value: {{ $timeout | quote }}
- name: ITER8_JOB_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['job-name']
{{- end }}
{{- end }}

{{/* Bad combinations, refused at helm install. */}}
{{- define "iter8.validateDistributedLoad" -}}
{{- $pods := int (include "iter8.loadPods" .) }}
{{- if gt $pods 1 }}
{{- $tasks := .Values.tasks | default list }}
{{- if not (or (has "http" $tasks) (has "grpc" $tasks)) }}
{{- fail (printf "distributedLoad.pods: %d pods share the load of http and grpc tasks, and tasks has neither; add an http or grpc task, or leave distributedLoad.pods at 1" $pods) }}
{{- end }}
{{- if has "http" $tasks }}
{{- $c := int ((.Values.http | default dict).connections | default 4) }}
{{- if lt $c $pods }}
{{- fail (printf "http.connections: %d connections cannot be shared by %d pods (each pod needs at least one); set http.connections to %d or more, or lower distributedLoad.pods" $c $pods $pods) }}
{{- end }}
{{- end }}
{{- if has "grpc" $tasks }}
{{- $c := int ((.Values.grpc | default dict).concurrency | default 50) }}
{{- if lt $c $pods }}
{{- fail (printf "grpc.concurrency: %d concurrent calls cannot be shared by %d pods (each pod needs at least one); set grpc.concurrency to %d or more, or lower distributedLoad.pods" $c $pods $pods) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
