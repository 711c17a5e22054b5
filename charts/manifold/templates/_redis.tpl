{{/*
External Redis, in one place. Today it feeds tasks.redis (docs/tasks.md); a later gateway
version adds a top-level `redis:` key, and only these helpers change then.

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
{{- $tasks := get .cfg "tasks" | default dict }}
{{- if hasKey $tasks "redis" }}
{{- fail "config.tasks.redis and redis.* are both set: keep redis.*" }}
{{- end }}
{{- $_ := set $tasks "redis" "${MANIFOLD_REDIS_URL}" }}
{{- $_ := set .cfg "tasks" $tasks }}
{{- else if hasKey (get .cfg "tasks" | default dict) "redis" }}
{{- $url := toString (get (get .cfg "tasks") "redis") }}
{{- if and (not (contains "${" $url)) (regexMatch "^rediss?://[^/@]*:[^/@]*@" $url) }}
{{- fail "config.tasks.redis holds a password (it would land in a ConfigMap): set redis.existingSecret instead" }}
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
