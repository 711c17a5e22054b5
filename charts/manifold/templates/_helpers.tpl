{{/*
Names and labels.
*/}}
{{- define "manifold.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "manifold.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "manifold.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "manifold.selectorLabels" -}}
app.kubernetes.io/name: {{ include "manifold.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "manifold.labels" -}}
helm.sh/chart: {{ include "manifold.chart" . }}
{{ include "manifold.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: manifold
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "manifold.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "manifold.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "manifold.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Seconds in a gateway duration: "500ms", "10s", "30m", "1h30m" or a bare number of seconds
(docs/configuration.md). Fractions of a second round up. Anything else fails the render.
*/}}
{{- define "manifold.durationSeconds" -}}
{{- $text := toString . }}
{{- if regexMatch "^[0-9]+$" $text }}
{{- $text }}
{{- else if regexMatch "^([0-9]+(ms|s|m|h))+$" $text }}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" $text -1 }}
{{- $n := regexFind "^[0-9]+" . | int }}
{{- $unit := regexReplaceAll "^[0-9]+" . "" }}
{{- if eq $unit "ms" }}{{ $ms = add $ms $n }}
{{- else if eq $unit "s" }}{{ $ms = add $ms (mul $n 1000) }}
{{- else if eq $unit "m" }}{{ $ms = add $ms (mul $n 60000) }}
{{- else }}{{ $ms = add $ms (mul $n 3600000) }}
{{- end }}
{{- end }}
{{- div (add $ms 999) 1000 }}
{{- else }}
{{- fail (printf "config.shutdown_grace: %q is not a duration (write 10s, 1m30s or a number of seconds)" $text) }}
{{- end }}
{{- end }}

{{/*
Environment variable holding API key NAME: MANIFOLD_API_KEY_<NAME upper-cased, - and . as _>.
(Not a setting: MANIFOLD_* variables that name no top-level key are ignored by the config.)
*/}}
{{- define "manifold.apiKeyEnv" -}}
{{- printf "MANIFOLD_API_KEY_%s" (. | upper | replace "-" "_" | replace "." "_") }}
{{- end }}

{{/*
Whether several pods may run: replicaCount, or autoscaling.maxReplicas when the HPA is on.
*/}}
{{- define "manifold.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/*
The gateway configuration: values.config, with what the chart owns filled in. Refuses
settings that would put a secret in the ConfigMap or contradict the chart.
*/}}
{{- define "manifold.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- if hasKey $cfg "listen" }}
{{- fail "config.listen is set by the chart (0.0.0.0:<containerPort>): set containerPort instead" }}
{{- end }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- /* seal key: from a Secret, never a literal in the ConfigMap */}}
{{- if .Values.sealKey.existingSecret }}
{{- if hasKey $cfg "seal_key" }}
{{- fail "config.seal_key and sealKey.existingSecret are both set: keep sealKey.existingSecret" }}
{{- end }}
{{- $_ := set $cfg "seal_key" "${MANIFOLD_SEAL_KEY}" }}
{{- else if and (hasKey $cfg "seal_key") (not (contains "${" (toString $cfg.seal_key))) }}
{{- fail "config.seal_key must not hold the key itself (it would land in a ConfigMap): set sealKey.existingSecret, or write ${VAR} and supply VAR from a Secret" }}
{{- end }}
{{- /* Redis (_redis.tpl) */}}
{{- include "manifold.redis.applyConfig" (dict "cfg" $cfg "Values" .Values) }}
{{- /* API keys from Secrets, appended to any auth.api_keys of the config */}}
{{- if .Values.apiKeys }}
{{- $auth := get $cfg "auth" | default dict }}
{{- $keys := get $auth "api_keys" | default list }}
{{- range .Values.apiKeys }}
{{- $keys = append $keys (dict "name" .name "env" (include "manifold.apiKeyEnv" .name) "scopes" (.scopes | default list)) }}
{{- end }}
{{- $_ := set $auth "api_keys" $keys }}
{{- $_ := set $cfg "auth" $auth }}
{{- end }}
{{- /* Host/Origin guard, unless the config says otherwise */}}
{{- $security := get $cfg "security" | default dict }}
{{- if not (hasKey $security "dns_rebinding_protection") }}
{{- if .Values.hostGuard.enabled }}
{{- $_ := set $security "dns_rebinding_protection" "on" }}
{{- $svc := include "manifold.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.hostGuard.clusterDomain) }}
{{- $_ := set $security "allowed_hosts" (concat $hosts .Values.hostGuard.extraHosts (get $security "allowed_hosts" | default list) | uniq) }}
{{- else }}
{{- $_ := set $security "dns_rebinding_protection" "off" }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "security" $security }}
{{- toYaml $cfg }}
{{- end }}

{{/*
Refusals that depend on several values at once (the schema checks each value alone).
*/}}
{{- define "manifold.validate" -}}
{{- $cfg := .Values.config | default dict }}
{{- if gt (int (include "manifold.maxReplicas" .)) 1 }}
{{- if not (or (eq (include "manifold.redis.enabled" .) "true") (get $cfg "redis")) }}
{{- fail (printf "%d replicas need a shared Redis (sessions, rate limits, tasks): set redis.url or redis.existingSecret (docs/scaling.md)" (int (include "manifold.maxReplicas" .))) }}
{{- end }}
{{- if not (or .Values.sealKey.existingSecret (contains "${" (toString (get $cfg "seal_key")))) }}
{{- fail (printf "%d replicas need the same seal key: create a Secret and set sealKey.existingSecret (docs/deployment.md, \"Several replicas\")" (int (include "manifold.maxReplicas" .))) }}
{{- end }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas is more than autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- $grace := int (include "manifold.durationSeconds" (get $cfg "shutdown_grace" | default "10s")) }}
{{- $needed := add $grace 5 (int .Values.lifecycle.preStopSleepSeconds) }}
{{- if le (int .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds (%d) + config.shutdown_grace (%ds) + 5s for upstreams to stop = %ds; %d or more leaves room for the spans export" (int .Values.terminationGracePeriodSeconds) (int .Values.lifecycle.preStopSleepSeconds) $grace $needed (add $needed 10)) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.hostGuard.enabled }}
{{- fail "serviceMonitor.enabled with hostGuard.enabled: Prometheus scrapes each pod by its IP, which the Host guard refuses (421); turn one of them off" }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- if and (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- end }}
{{- end }}
