# Versions of every external tool Relais provisions. One place; the cache is keyed by them.
# shellcheck shell=bash
NODE_VERSION=26.12.1
NATS_SERVER_VERSION=2.15.2
NATSCLI_VERSION=0.5.0
KUBERNETES_VERSION=1.36.3
ETCD_VERSION=3.6.16
HELM_VERSION=4.3.1
KUBECONFORM_VERSION=0.7.0
