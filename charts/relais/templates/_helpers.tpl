{{/* Names, labels and the image reference shared by every template. */}}

{{- define "relais.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "relais.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "relais.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "relais.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "relais.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "relais.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: relais
{{- end }}

{{- define "relais.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "relais.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "relais.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "relais.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image the operator runs and gives to its pools: repository@digest or repository:tag. */}}
{{- define "relais.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "relais.tokenSecretName" -}}
{{- default (printf "%s-token" (include "relais.fullname" .)) .Values.tokenSecret.name }}
{{- end }}

{{/* The namespaces the operator reconciles, or nothing for all. */}}
{{- define "relais.watchNamespaces" -}}
{{- join "," .Values.operator.watchNamespaces }}
{{- end }}

{{/* Namespaces that get the namespaced Role: every watched one plus the release's (shared pools). */}}
{{- define "relais.roleNamespaces" -}}
{{- $namespaces := list .Release.Namespace }}
{{- range .Values.operator.watchNamespaces }}
{{- $namespaces = append $namespaces . }}
{{- end }}
{{- toJson (uniq $namespaces) }}
{{- end }}

{{/* Rules the schema cannot say: fails the install with the field's name. */}}
{{- define "relais.validate" -}}
{{- range $pool := list "ingest" "engage" }}
{{- $values := index $.Values.pools $pool }}
{{- if lt (int $values.maxReplicas) (int $values.minReplicas) }}
{{- fail (printf "pools.%s.maxReplicas (%v) must be at least pools.%s.minReplicas (%v)" $pool $values.maxReplicas $pool $values.minReplicas) }}
{{- end }}
{{- end }}
{{- if and .Values.operator.leaderElection (ge (int .Values.operator.leaderElection.renewDeadlineMs) (int .Values.operator.leaderElection.leaseDurationMs)) }}
{{- fail "operator.leaderElection.renewDeadlineMs must be less than operator.leaderElection.leaseDurationMs" }}
{{- end }}
{{- end }}
