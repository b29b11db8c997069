{{- define "modeldr-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldr-agent.fullname" -}}
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

{{/* Cluster-scoped names carry the namespace: two releases must not share a ClusterRole. */}}
{{- define "modeldr-agent.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "modeldr-agent.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "modeldr-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldr-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-agent
{{- end }}

{{- define "modeldr-agent.labels" -}}
{{ include "modeldr-agent.selectorLabels" . }}
app.kubernetes.io/part-of: modeldr
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{- end }}

{{- define "modeldr-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeldr-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modeldr-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The operator's identity in this member (memberIdentity). */}}
{{- define "modeldr-agent.memberName" -}}
{{- default (printf "%s-member" (include "modeldr-agent.fullname" .) | trunc 63 | trimSuffix "-") .Values.memberIdentity.name }}
{{- end }}
