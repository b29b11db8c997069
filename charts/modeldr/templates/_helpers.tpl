{{/* Chart name, truncated to 63 characters (a label value). */}}
{{- define "modeldr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of namespaced objects: <release>-modeldr, or the release name when it already
contains the chart name.
*/}}
{{- define "modeldr.fullname" -}}
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

{{/*
Name of cluster-scoped objects (ClusterRole, ClusterRoleBinding). Release names are unique per
namespace only, so the namespace is part of the name: two releases called "modeldr" in two
namespaces must not share (or delete) each other's ClusterRole.
*/}}
{{- define "modeldr.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "modeldr.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "modeldr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modeldr.labels" -}}
helm.sh/chart: {{ include "modeldr.chart" . }}
{{ include "modeldr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modeldr
{{- end }}

{{- define "modeldr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeldr.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modeldr.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "modeldr.secretNamespace" -}}
{{- default .Release.Namespace .Values.memberClusters.secretNamespace }}
{{- end }}

{{- define "modeldr.leaseName" -}}
{{- default (printf "%s-leader" (include "modeldr.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Traffic providers this release grants RBAC for, comma-separated (operator env). */}}
{{- define "modeldr.trafficProviders" -}}
{{- $p := list "webhook" }}
{{- if .Values.rbac.trafficProviders.endpointSlice }}{{ $p = append $p "endpointslice" }}{{ end }}
{{- if .Values.rbac.trafficProviders.gatewayAPI }}{{ $p = append $p "gatewayapi" }}{{ end }}
{{- join "," (sortAlpha $p) }}
{{- end }}
