{{/* Resource-name prefix: the release name when it already says freightcast. */}}
{{- define "freightcast.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object of the release. */}}
{{- define "freightcast.labels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{ include "freightcast.commonLabels" . }}
{{- end -}}

{{- define "freightcast.commonLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The manager's selector; the same as the kustomize install's, so either can take over. */}}
{{- define "freightcast.managerSelector" -}}
app.kubernetes.io/name: freightcast
app.kubernetes.io/component: manager
{{- end -}}

{{- define "freightcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-manager" (include "freightcast.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The one image: the operator's and every data-plane pod's. */}}
{{- define "freightcast.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The NATS server pipelines use unless they name their own. */}}
{{- define "freightcast.natsURL" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://nats.%s.svc:4222" .Release.Namespace -}}
{{- else -}}
{{- required "nats.url is required when nats.enabled is false (the NATS server pipelines use by default)" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* NATS labels and selector. The names (nats, nats-headless) are fixed so that the default URL
     nats://nats.<namespace>.svc:4222 works. */}}
{{- define "freightcast.natsSelector" -}}
app.kubernetes.io/name: nats
app.kubernetes.io/part-of: freightcast
{{- end -}}

{{- define "freightcast.natsLabels" -}}
{{ include "freightcast.natsSelector" . }}
{{ include "freightcast.commonLabels" . }}
app.kubernetes.io/component: queue
{{- end -}}

{{/* The ValidatingWebhookConfiguration (cluster-scoped, named like the ClusterRole). */}}
{{- define "freightcast.webhookConfiguration" -}}
{{ include "freightcast.fullname" . }}-validating-webhook
{{- end -}}
