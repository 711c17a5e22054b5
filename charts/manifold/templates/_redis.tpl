{{/*
External Redis, in one place. It feeds the config's top-level `redis:` key, which turns on
everything replicas share (sessions, message routing, rate limits, tasks: docs/scaling.md).

The URL reaches the gateway as the environment variable MANIFOLD_REDIS_URL (from a Secret, or
from redis.url for a password-less URL), and the config refers to it as ${MANIFOLD_REDIS_URL}:
the URL never lands in the ConfigMap.
*/}}

{{- define "manifold.redis.enabled" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{/* Sets the config's Redis settings; called with (dict "cfg" $cfg "Values" .Values). */}}
{{- define "manifold.redis.applyConfig" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}
{{- if and .Values.redis.url .Values.redis.existingSecret }}
{{- fail "redis.url and redis.existingSecret are both set: choose one" }}
{{- end }}
{{- if hasKey (get .cfg "tasks" | default dict) "redis" }}
{{- fail "config.tasks.redis and redis.* are both set: keep redis.*" }}
{{- end }}
{{- $shared := get .cfg "redis" }}
{{- if kindIs "map" $shared }}
{{- if hasKey $shared "url" }}
{{- fail "config.redis.url and redis.* are both set: keep redis.*" }}
{{- end }}
{{- $_ := set $shared "url" "${MANIFOLD_REDIS_URL}" }}
{{- else if $shared }}
{{- fail "config.redis and redis.* are both set: keep redis.*" }}
{{- else }}
{{- $_ := set .cfg "redis" "${MANIFOLD_REDIS_URL}" }}
{{- end }}
{{- else }}
{{- $urls := list (toString (get (get .cfg "tasks" | default dict) "redis" | default "")) }}
{{- $shared := get .cfg "redis" }}
{{- if kindIs "map" $shared }}
{{- $urls = append $urls (toString (get $shared "url" | default "")) }}
{{- else }}
{{- $urls = append $urls (toString ($shared | default "")) }}
{{- end }}
{{- range $urls }}
{{- if and (not (contains "${" .)) (regexMatch "^rediss?://[^/@]*:[^/@]*@" .) }}
{{- fail "the Redis URL in config holds a password (it would land in a ConfigMap): set redis.existingSecret instead" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The container's environment entry for the Redis URL, if any. */}}
{{- define "manifold.redis.env" -}}
{{- if .Values.redis.existingSecret }}
- name: MANIFOLD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else if .Values.redis.url }}
- name: MANIFOLD_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- end }}
{{- end }}
