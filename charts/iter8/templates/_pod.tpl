{{/* The runner's pod template (Job and CronJob): iter8-runner run directly, no shell. */}}
{{- define "iter8.podTemplate" -}}
metadata:
  labels:
    {{- /* podLabels may override commonLabels on the pod (not the chart's own labels) */}}
    {{- mergeOverwrite (include "iter8.runnerLabels" . | fromYaml) (.Values.podLabels | default dict) | toYaml | nindent 4 }}
  annotations:
    sidecar.istio.io/inject: "false"
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "iter8.serviceAccountName" . }}
  # the token is mounted explicitly (kube-api-access below): projected, expiring, audience-bound
  automountServiceAccountToken: false
  restartPolicy: Never
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: iter8-runner
      image: {{ include "iter8.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --namespace
        - $(POD_NAMESPACE)
        - --release
        - $(ITER8_RELEASE)
      env:
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: ITER8_RELEASE
          value: {{ .Release.Name | quote }}
        - name: ITER8_REVISION
          value: {{ .Release.Revision | quote }}
        {{- if .Values.failOnSLOViolation }}
        - name: ITER8_FAIL_ON_SLO_VIOLATION
          value: "true"
        {{- end }}
        - name: RUST_LOG
          value: {{ include "iter8.logLevel" . | quote }}
        {{- with include "iter8.valuesNotes" . }}
        - name: ITER8_VALUES_NOTES
          value: {{ . | quote }}
        {{- end }}
        {{- if include "iter8.githubTokenFromValues" . }}
        - name: ITER8_GITHUB_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ include "iter8.githubTokenSecret" . }}
              key: token
        {{- end }}
        {{- with include "iter8.distributedLoadEnv" . }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- if .Values.strict }}
        - name: ITER8_STRICT
          value: "true"
        {{- end }}
        {{- with ((.Values.metrics).pushgateway).url }}
        - name: ITER8_PUSHGATEWAY_URL
          value: {{ . | quote }}
        {{- end }}
        {{- range .Values.secretEnv }}
        - name: {{ .name | quote }}
          valueFrom:
            secretKeyRef:
              name: {{ .secretName | quote }}
              key: {{ .key | quote }}
              {{- if hasKey . "optional" }}
              optional: {{ .optional }}
              {{- end }}
        {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- include "iter8.apiAccessMount" . | nindent 8 }}
        {{- range .Values.secretMounts }}
        - name: {{ .name | quote }}
          mountPath: {{ .mountPath | quote }}
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- include "iter8.apiAccessVolume" . | nindent 4 }}
    {{- range .Values.secretMounts }}
    - name: {{ .name | quote }}
      secret:
        secretName: {{ .secretName | quote }}
        {{- if hasKey . "optional" }}
        optional: {{ .optional }}
        {{- end }}
        {{- with .items }}
        items:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Job spec fields shared by the Job and the CronJob's jobTemplate. */}}
{{- define "iter8.jobSpec" -}}
backoffLimit: 0
{{- include "iter8.distributedLoadJob" . }}
{{- if not (kindIs "invalid" .Values.ttlSecondsAfterFinished) }}
ttlSecondsAfterFinished: {{ .Values.ttlSecondsAfterFinished }}
{{- end }}
{{- if not (kindIs "invalid" .Values.activeDeadlineSeconds) }}
activeDeadlineSeconds: {{ .Values.activeDeadlineSeconds }}
{{- end }}
template:
  {{- include "iter8.podTemplate" . | nindent 2 }}
{{- end }}
