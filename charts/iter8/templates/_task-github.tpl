{{/*
github (chart shortcut): a notify task sending a GitHub repository_dispatch
(POST <apiURL>/repos/<owner>/<repo>/dispatches, event_type github.eventType, the summary as
client_payload). The token comes from a Secret: mount it with secretMounts and set
github.tokenFile, or expose it with secretEnv and set github.tokenEnv. Iter8's github.token
(a value) is accepted: the chart keeps it in a Secret of its own (ITER8_GITHUB_TOKEN), and
NOTES and the runner's log recommend the Secret forms.
As with slack, a failed call does not fail the experiment unless github.softFailure=false.
*/}}
{{- define "iter8.task.github" -}}
{{- $v := .Values.github | default dict }}
{{- if not $v.owner }}
{{- fail "github.owner: missing; tasks includes github, so set the repository owner, e.g. --set github.owner=my-org" }}
{{- end }}
{{- if not $v.repo }}
{{- fail "github.repo: missing; tasks includes github, so set the repository name, e.g. --set github.repo=my-app" }}
{{- end }}
{{- if gt (len (compact (list ($v.token | default "") ($v.tokenFile | default "") ($v.tokenEnv | default "")))) 1 }}
{{- fail "github: give exactly one of token, tokenFile, tokenEnv" }}
{{- end }}
{{- if not (or $v.token $v.tokenFile $v.tokenEnv) }}
{{- fail "github.tokenFile: missing; tasks includes github, so mount the token's Secret with secretMounts and set github.tokenFile (e.g. /var/run/iter8/secrets/github/token), or set github.tokenEnv with secretEnv" }}
{{- end }}
{{- $gh := dict "owner" (toString $v.owner) "repo" (toString $v.repo) }}
{{- if $v.token }}{{ $_ := set $gh "tokenEnv" "ITER8_GITHUB_TOKEN" }}{{ else if $v.tokenFile }}{{ $_ := set $gh "tokenFile" $v.tokenFile }}{{ else }}{{ $_ := set $gh "tokenEnv" $v.tokenEnv }}{{ end }}
{{- if $v.eventType }}{{ $_ := set $gh "eventType" $v.eventType }}{{ end }}
{{- if $v.apiURL }}{{ $_ := set $gh "apiURL" $v.apiURL }}{{ end }}
{{- $soft := true }}
{{- if hasKey $v "softFailure" }}{{ $soft = $v.softFailure }}{{ end }}
{{- include "iter8.envelope" (list "notify" (dict "github" $gh "softFailure" $soft) $v.if) }}
{{- end }}
