{{/* nats.conf: JetStream on a file store, monitoring on 8222 and, with 3 replicas, a route
     to every server through the headless Service. server_name comes from the pod name (NATS
     reads $POD_NAME from the environment). */}}
{{- define "freightcast.natsConf" -}}
server_name: $POD_NAME
port: 4222
http_port: 8222
lame_duck_duration: 30s
lame_duck_grace_period: 10s
jetstream {
  store_dir: /data
}
{{- if eq (int .Values.nats.replicas) 3 }}
cluster {
  name: {{ .Values.nats.clusterName }}
  port: 6222
  routes: [
    {{- range $i := until 3 }}
    nats://nats-{{ $i }}.nats-headless.{{ $.Release.Namespace }}.svc:6222
    {{- end }}
  ]
}
{{- end }}
{{- end -}}
