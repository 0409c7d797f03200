{{/*
Every permission the operator has, in one place. The operator's code owns the list
(operator/rbac.ts, once it exports one); this helper is where the chart takes it from.

relais.rbac.namespacedRules: in every namespace the operator watches (a ClusterRole when it watches
all of them), and in the release's namespace, where the shared ingest and engage pools run.
*/}}
{{- define "relais.rbac.namespacedRules" -}}
# Senders, Campaigns, Automations: read, add finalizers, write status. Never create or delete them.
- apiGroups: ["relais.dev"]
  resources: ["senders", "campaigns", "automations"]
  verbs: ["get", "list", "watch", "update", "patch"]
- apiGroups: ["relais.dev"]
  resources: ["senders/status", "campaigns/status", "automations/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: ["relais.dev"]
  resources: ["senders/finalizers", "campaigns/finalizers", "automations/finalizers"]
  verbs: ["update"]
# Secrets a Sender references (SMTP, DKIM, VAPID keys): read only.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# The ingest pool's Service.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The pools.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "update", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# The pools' PodMonitors and ServiceMonitors, when the Prometheus Operator's CRDs exist.
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors", "servicemonitors"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# The pools' ScaledObjects, when the autoscaler is KEDA.
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end }}

{{/* relais.rbac.leaderRules: in the release's namespace only. */}}
{{- define "relais.rbac.leaderRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}

{{/* relais.rbac.clusterRules: cluster-scoped reads, always a ClusterRole. */}}
{{- define "relais.rbac.clusterRules" -}}
# Whether the Prometheus Operator's and KEDA's CRDs are installed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
