{{/* freightcast.bytes turns a quantity of the form 20Gi (Ki, Mi, Gi or Ti; the schema allows no
     other) into bytes. */}}
{{- define "freightcast.bytes" -}}
{{- $n := regexReplaceAll "^([0-9]+)(Ki|Mi|Gi|Ti)$" . "${1}" | int64 -}}
{{- $unit := regexReplaceAll "^[0-9]+" . "" -}}
{{- $mult := get (dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776) $unit | int64 -}}
{{- mul $n $mult -}}
{{- end -}}

{{/* freightcast.natsMaxFileStore is each server's JetStream store, in bytes: nats.storage.maxFileStore,
     or 90 % of the claim. The rest of the claim is headroom for what JetStream writes beyond the
     streams' reservations: the replication logs of R3 streams, the file store's indexes, and the
     filesystem's own overhead. */}}
{{- define "freightcast.natsMaxFileStore" -}}
{{- if .Values.nats.storage.maxFileStore -}}
{{- include "freightcast.bytes" .Values.nats.storage.maxFileStore -}}
{{- else -}}
{{- div (mul (include "freightcast.bytes" .Values.nats.storage.size | int64) 9) 10 -}}
{{- end -}}
{{- end -}}

{{/* nats.conf: JetStream on a file store of a fixed size, monitoring on 8222 and, with several
     replicas, a route to every server through the headless Service. server_name comes from the
     pod name (NATS reads $POD_NAME from the environment). */}}
{{- define "freightcast.natsConf" -}}
server_name: $POD_NAME
port: 4222
http_port: 8222
lame_duck_duration: 30s
lame_duck_grace_period: 10s
jetstream {
  store_dir: /data
  # Streams reserve their maxBytes up front; the servers refuse a stream once the reservations
  # reach this (see docs/operate.md, "Capacity").
  max_file_store: {{ include "freightcast.natsMaxFileStore" . }}
  {{- if .Values.nats.syncAlways }}
  # Every write is flushed to disk before it is acknowledged (docs/operate.md, "What a 202 guarantees").
  sync_interval: always
  {{- end }}
}
{{- if gt (int .Values.nats.replicas) 1 }}
cluster {
  name: {{ .Values.nats.clusterName }}
  port: 6222
  routes: [
    {{- range $i := until (int .Values.nats.replicas) }}
    nats://nats-{{ $i }}.nats-headless.{{ $.Release.Namespace }}.svc:6222
    {{- end }}
  ]
}
{{- end }}
{{- if .Values.nats.tls.enabled }}
# Clients must speak TLS; the certificate comes from the Secret {{ .Values.nats.tls.secretName }}.
tls {
  cert_file: /etc/nats-tls/tls.crt
  key_file: /etc/nats-tls/tls.key
}
{{- end }}
{{- if .Values.nats.auth.enabled }}
# Decentralized JWT authentication (freightcast nats-auth init wrote this part).
{{ .Values.nats.auth.config }}
{{- end }}
{{- end -}}
