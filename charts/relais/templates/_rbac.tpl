{{/*
Every permission the operator has. The operator's code owns the list (operator/rbac.ts);
charts/generate.ts writes it to files/rbac/, and these helpers render it.

relais.rbac.namespacedRules: in every namespace the operator watches (a ClusterRole when it watches
all of them), and in the release's namespace, where the shared ingest and engage pools run.
*/}}
{{- define "relais.rbac.namespacedRules" -}}
{{ .Files.Get "files/rbac/namespaced-rules.yaml" }}
{{- end }}

{{/* relais.rbac.leaderRules: in the release's namespace only. */}}
{{- define "relais.rbac.leaderRules" -}}
{{ .Files.Get "files/rbac/leader-rules.yaml" }}
{{- end }}

{{/* relais.rbac.clusterRules: cluster-scoped reads, always a ClusterRole. */}}
{{- define "relais.rbac.clusterRules" -}}
# Whether the Prometheus Operator's and KEDA's CRDs are installed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
