{{/*
Naming and labels shared by every object of the chart.
*/}}

{{/* Chart name, 63 chars (DNS label). */}}
{{- define "iter8.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* name-version, as in the helm.sh/chart label. */}}
{{- define "iter8.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name (the Secret holding spec and result is named after it). */}}
{{- define "iter8.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the ServiceAccount, Role and RoleBinding the runner uses. */}}
{{- define "iter8.rbacName" -}}
{{- printf "%s-iter8" (.Release.Name | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/* The ServiceAccount the runner pod uses: serviceAccountName (the older form: an account
that brings its own permissions), else serviceAccount.name, else the chart's <release>-iter8. */}}
{{- define "iter8.serviceAccountName" -}}
{{- $sa := .Values.serviceAccount | default dict }}
{{- if .Values.serviceAccountName }}
{{- .Values.serviceAccountName }}
{{- else if $sa.name }}
{{- $sa.name }}
{{- else }}
{{- include "iter8.rbacName" . }}
{{- end }}
{{- end }}

{{/* Whether the chart renders the runner's Role and RoleBinding ("true" or ""): always when a
runner runs, unless serviceAccountName names an account that brings its own permissions. */}}
{{- define "iter8.rbacEnabled" -}}
{{- if and (ne .Values.runner "none") (not .Values.serviceAccountName) }}true{{ end }}
{{- end }}

{{/* Whether the chart renders the runner's ServiceAccount ("true" or ""). */}}
{{- define "iter8.serviceAccountCreated" -}}
{{- if and (include "iter8.rbacEnabled" .) ((.Values.serviceAccount | default dict).create | default false) }}true{{ end }}
{{- end }}

{{/* Name of the helm test pod and of its ServiceAccount, Role and RoleBinding. */}}
{{- define "iter8.testName" -}}
{{- printf "%s-iter8-test" (.Release.Name | trunc 52 | trimSuffix "-") }}
{{- end }}

{{/* Whether the chart renders the helm test pod and its RBAC ("true" or ""). */}}
{{- define "iter8.testEnabled" -}}
{{- if and (ne .Values.runner "none") ((.Values.test | default dict).enabled) }}true{{ end }}
{{- end }}

{{/* The API access of the runner and test pods, mounted explicitly (the pods set
automountServiceAccountToken: false, as policy scanners ask): a projected ServiceAccount token
(audience: the API server's; expires after serviceAccount.tokenExpirationSeconds, renewed by
the kubelet), the cluster CA (ConfigMap kube-root-ca.crt) and the namespace, at the path
in-cluster clients read: what the API server's own kube-api-access volume holds. */}}
{{- define "iter8.apiAccessVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: {{ int ((.Values.serviceAccount).tokenExpirationSeconds | default 3600) }}
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                apiVersion: v1
                fieldPath: metadata.namespace
{{- end }}

{{- define "iter8.apiAccessMount" -}}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}

{{/* Job name: <release>-<revision>-job (63 chars at most). */}}
{{- define "iter8.jobName" -}}
{{- $suffix := printf "-%d-job" (int .Release.Revision) }}
{{- printf "%s%s" (.Release.Name | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/* CronJob name: <release>-<revision>-cronjob (52 chars at most: the CronJob controller
appends 11 characters to the names of the Jobs it creates). */}}
{{- define "iter8.cronjobName" -}}
{{- $suffix := printf "-%d-cronjob" (int .Release.Revision) }}
{{- printf "%s%s" (.Release.Name | trunc (int (sub 52 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/* Selector labels: pick the objects of one release. `iter8 log` lists the runner's Jobs
and pods with app.kubernetes.io/instance=<release>,app.kubernetes.io/name=iter8. */}}
{{- define "iter8.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iter8.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels the chart sets itself; commonLabels and podLabels may not set them (the selector
`iter8 log` uses and the revision must stay the chart's). */}}
{{- define "iter8.reservedLabels" -}}
{{- list "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" "app.kubernetes.io/component" "iter8.tools/revision" | toJson }}
{{- end }}

{{/* Standard labels, then commonLabels (on every object of the chart). */}}
{{- define "iter8.labels" -}}
helm.sh/chart: {{ include "iter8.chart" . }}
{{ include "iter8.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: iter8
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the runner's Job / CronJob and pods: standard ones plus the revision. */}}
{{- define "iter8.runnerLabels" -}}
{{ include "iter8.labels" . }}
app.kubernetes.io/component: runner
iter8.tools/revision: {{ .Release.Revision | quote }}
{{- end }}

{{/* The runner image: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "iter8.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/* Whether `tasks` lists a task: include "iter8.hasTask" (list . "ready") */}}
{{- define "iter8.hasTask" -}}
{{- if has (index . 1) ((index . 0).Values.tasks | default list) }}true{{ end }}
{{- end }}

{{/* Validate the top-level values (runner, schedule, tasks). */}}
{{- define "iter8.validate" -}}
{{- if not (has .Values.runner (list "job" "cronjob" "none")) }}
{{- fail (printf "runner: %q is not valid; set runner to job (one loop), cronjob (loops on cronjobSchedule) or none (render the experiment only)" (toString .Values.runner)) }}
{{- end }}
{{- if and (eq .Values.runner "cronjob") (not .Values.cronjobSchedule) }}
{{- fail "cronjobSchedule: missing; runner=cronjob needs a schedule, e.g. --set cronjobSchedule=\"*/5 * * * *\"" }}
{{- end }}
{{- $sa := .Values.serviceAccount | default dict }}
{{- if and (ne .Values.runner "none") (not $sa.create) (not $sa.name) (not .Values.serviceAccountName) }}
{{- fail "serviceAccount.name: missing; serviceAccount.create=false runs the runner as an existing ServiceAccount, so name it, e.g. --set serviceAccount.name=iter8-runner (the chart binds its Role to it), or leave serviceAccount.create=true" }}
{{- end }}
{{- if and .Values.serviceAccountName $sa.name (ne .Values.serviceAccountName $sa.name) }}
{{- fail (printf "serviceAccountName (%s) and serviceAccount.name (%s) disagree; set one: serviceAccount.name (the chart binds its Role to the account) or serviceAccountName (the account brings its own permissions)" .Values.serviceAccountName $sa.name) }}
{{- end }}
{{- $reserved := include "iter8.reservedLabels" . | fromJsonArray }}
{{- range $field := list "commonLabels" "podLabels" }}
{{- range $k, $_ := (index $.Values $field) }}
{{- if has $k $reserved }}
{{- fail (printf "%s: %s is a label the chart sets itself (the release's selector and revision); choose another key" $field $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- include "iter8.validateDistributedLoad" . }}
{{- if not .Values.tasks }}
{{- fail "tasks: empty; list the tasks to run in order, e.g. --set \"tasks={http,assess}\" (known tasks: ready, http, grpc, custommetrics, assess, notify, slack, github)" }}
{{- end }}
{{- $chartEnv := list "POD_NAMESPACE" "POD_NAME" "ITER8_RELEASE" "ITER8_REVISION" "RUST_LOG" "ITER8_LOAD_WORKERS" "ITER8_LOAD_WORKERS_TIMEOUT" "ITER8_JOB_NAME" "JOB_COMPLETION_INDEX" }}
{{- $envNames := $chartEnv }}
{{- range $i, $e := .Values.secretEnv }}
{{- if has $e.name $chartEnv }}
{{- fail (printf "secretEnv[%d].name: %s is set by the chart for the runner; choose another variable name" $i $e.name) }}
{{- else if has $e.name $envNames }}
{{- fail (printf "secretEnv[%d].name: %s is already used by an earlier secretEnv entry; give each variable one entry" $i $e.name) }}
{{- end }}
{{- $envNames = append $envNames $e.name }}
{{- end }}
{{- $mountNames := list }}
{{- $mountPaths := list "/tmp" "/var/run/secrets/kubernetes.io/serviceaccount" }}
{{- range $i, $m := .Values.secretMounts }}
{{- if has $m.name $mountNames }}
{{- fail (printf "secretMounts[%d].name: %s is already used by an earlier secretMounts entry; give each mount its own name" $i $m.name) }}
{{- end }}
{{- if has (trimSuffix "/" $m.mountPath) $mountPaths }}
{{- fail (printf "secretMounts[%d].mountPath: %s is already a mount of the runner (/tmp, the ServiceAccount token's directory or an earlier secretMounts entry); choose another directory" $i $m.mountPath) }}
{{- end }}
{{- $mountNames = append $mountNames $m.name }}
{{- $mountPaths = append $mountPaths (trimSuffix "/" $m.mountPath) }}
{{- end }}
{{- end }}
