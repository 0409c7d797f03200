#!/usr/bin/env bash
# Provisions every external tool Relais needs for local mode and tests, idempotently.
#
# Each tool is cached outside the repo in $RELAIS_TOOLS_DIR/<tool>-<version>/ and linked into
# $RELAIS_TOOLS_DIR/bin. A tool is skipped when a binary of the right version is already there,
# in $RELAIS_BIN_DIR (a folder of official binaries a user downloaded), or on PATH.
# Go-built tools come from the Go module proxy; redis-server and promtool from Debian packages.
#
# Usage: scripts/provision-tools.sh [tool ...]   (no argument = all; tools: nats_server natscli
#        redis etcd kubernetes helm kubeconform prometheus crds grafana_dashboard_check)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$here/versions.sh"

tools_dir=${RELAIS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relais/tools}
bin_dir="$tools_dir/bin"
mkdir -p "$bin_dir"

log() { printf '[provision] %s\n' "$*" >&2; }

# have NAME VERSION_SUBSTRING [CACHE_DIR] -- is a binary of that version already reachable?
# Prints the path of the binary found.
have() {
  local name=$1 want=$2 cached=${3:+$3/$1} candidate
  for candidate in "${RELAIS_BIN_DIR:+$RELAIS_BIN_DIR/$name}" "$cached" "$bin_dir/$name" "$(command -v "$name" 2>/dev/null || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    if version_of "$name" "$candidate" | grep -qF -- "$want"; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

version_of() {
  local name=$1 path=$2
  case "$name" in
    nats-server) "$path" --version 2>/dev/null ;;
    nats) "$path" --version 2>/dev/null ;;
    kube-apiserver | kube-controller-manager) "$path" --version 2>/dev/null ;;
    kubectl) "$path" version --client 2>/dev/null ;;
    etcd) "$path" --version 2>/dev/null ;;
    helm) "$path" version --short 2>/dev/null ;;
    kubeconform) "$path" -v 2>/dev/null ;;
    redis-server) "$path" --version 2>/dev/null ;;
    promtool | prometheus) "$path" --version 2>&1 ;;
  esac
}

link() { # link NAME PATH
  if [ "$2" != "$bin_dir/$1" ]; then ln -sfn "$2" "$bin_dir/$1"; fi
}

# go_install NAME VERSION PACKAGE@VERSION -- go install into the versioned cache folder.
go_install() {
  local name=$1 version=$2 pkg=$3 dest="$tools_dir/$1-$2/bin" found
  if found=$(have "$name" "$version" "$dest"); then link "$name" "$found"; log "$name $version: present ($found)"; return; fi
  log "$name $version: building $pkg"
  mkdir -p "$dest"
  GOBIN="$dest" GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install -trimpath -ldflags "${4:-}" "$pkg"
  link "$name" "$dest/$name"
}

provision_nats_server() {
  go_install nats-server "$NATS_SERVER_VERSION" "github.com/nats-io/nats-server/v2@v$NATS_SERVER_VERSION" "-s -w"
}

provision_natscli() {
  go_install nats "$NATSCLI_VERSION" "github.com/nats-io/natscli/nats@v$NATSCLI_VERSION" \
    "-s -w -X main.version=v$NATSCLI_VERSION"
}

provision_kubeconform() {
  go_install kubeconform "$KUBECONFORM_VERSION" "github.com/yannh/kubeconform/cmd/kubeconform@v$KUBECONFORM_VERSION" \
    "-s -w -X main.version=v$KUBECONFORM_VERSION"
}

provision_helm() {
  go_install helm "$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION" \
    "-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION"
}

# A wrapper module builds a binary whose main package lives in a module that `go install pkg@v`
# refuses (local replace directives), or that has no main package of its own.
wrapper_dir() { # wrapper_dir NAME -> prints a fresh folder
  local dir="$tools_dir/.build/$1"
  rm -rf "$dir" && mkdir -p "$dir" && printf '%s\n' "$dir"
}

provision_etcd() {
  local version=$ETCD_VERSION dest="$tools_dir/etcd-$ETCD_VERSION/bin" found dir
  if found=$(have etcd "$version" "$dest"); then link etcd "$found"; log "etcd $version: present ($found)"; return; fi
  log "etcd $version: building"
  dir=$(wrapper_dir etcd)
  cat >"$dir/main.go" <<'GO'
// Command etcd is etcd's server, built from the Go module proxy for Relais' test harness.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (
    cd "$dir"
    go mod init relais.dev/tools/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@v$version" >/dev/null
    go mod tidy >/dev/null
    mkdir -p "$dest"
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.Version=$version" -o "$dest/etcd" .
  )
  link etcd "$dest/etcd"
}

# Kubernetes' go.mod replaces its k8s.io/* staging modules with local folders, so the wrapper
# replaces each by the published module of the same release (v0.<minor>.<patch>).
provision_kubernetes() {
  local version=$KUBERNETES_VERSION dest="$tools_dir/kubernetes-$KUBERNETES_VERSION/bin" dir found
  local all_present=1 name
  for name in kube-apiserver kube-controller-manager kubectl; do
    if found=$(have "$name" "v$version" "$dest"); then link "$name" "$found"; else all_present=0; fi
  done
  if [ "$all_present" = 1 ]; then log "kubernetes $version: present"; return; fi
  log "kubernetes $version: building kube-apiserver, kube-controller-manager, kubectl (about 12 minutes cold)"
  dir=$(wrapper_dir kubernetes)
  local major=${version%%.*} rest=${version#*.} minor staging_version gomod
  minor=${rest%%.*}
  staging_version="v0.${version#*.}"
  gomod=$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^\s*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  {
    printf 'module relais.dev/tools/kubernetes\n\ngo 1.26.0\n\n'
    grep '^godebug ' "$gomod" || true
    printf '\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$version"
    sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod" | while read -r mod; do
      printf '\t%s => %s %s\n' "$mod" "$mod" "$staging_version"
    done
    printf ')\n'
  } >"$dir/go.mod"
  printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"\n\t_ "k8s.io/kubectl/pkg/cmd"\n)\n' >"$dir/tools.go"
  local ldflags="-s -w" pkgpath
  for pkgpath in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkgpath.gitVersion=v$version -X $pkgpath.gitMajor=$major -X $pkgpath.gitMinor=$minor"
    ldflags="$ldflags -X $pkgpath.gitTreeState=clean -X $pkgpath.buildDate=1970-01-01T00:00:00Z"
  done
  (
    cd "$dir"
    GOFLAGS=-mod=mod go mod tidy >/dev/null
    mkdir -p "$dest"
    GOBIN="$dest" CGO_ENABLED=0 go install -trimpath -buildvcs=false -ldflags "$ldflags" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
  )
  for name in kube-apiserver kube-controller-manager kubectl; do link "$name" "$dest/$name"; done
}

apt_install() { # apt_install PACKAGE...
  if [ "$(id -u)" != 0 ]; then
    log "need root to install Debian packages: $*  (run: sudo apt-get install -y $*)"
    return 1
  fi
  if [ -z "${RELAIS_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    export RELAIS_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

provision_redis() {
  local found
  if found=$(have redis-server "v=" ); then link redis-server "$found"; log "redis-server: present ($found)"; return; fi
  log "redis-server: installing Debian package redis-server"
  apt_install redis-server
  link redis-server "$(command -v redis-server)"
}

provision_prometheus() {
  local found
  if found=$(have promtool "promtool") && have prometheus "prometheus" >/dev/null; then
    link promtool "$found"; link prometheus "$(have prometheus prometheus)"
    log "prometheus + promtool: present"; return
  fi
  log "prometheus: installing Debian package prometheus"
  apt_install prometheus
  # The Debian package starts a system service; the harness runs its own instances instead.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
  link promtool "$(command -v promtool)"
  link prometheus "$(command -v prometheus)"
}

# Third-party CRDs the chart's tests need (kubeconform schemas, and installed into the test API
# server): the Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule, and KEDA's
# ScaledObject, taken from their Go modules. Laid out in $tools_dir/crds/.
provision_crds() {
  local dest="$tools_dir/crds-po$PROMETHEUS_OPERATOR_VERSION-keda$KEDA_VERSION" po keda file
  if [ -f "$dest/keda.sh_scaledobjects.yaml" ]; then
    ln -sfn "$dest" "$tools_dir/crds"; log "crds: present ($dest)"; return
  fi
  log "crds: Prometheus Operator $PROMETHEUS_OPERATOR_VERSION and KEDA $KEDA_VERSION from the Go module proxy"
  po=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  keda=$(go mod download -json "github.com/kedacore/keda/v2@v$KEDA_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  mkdir -p "$dest"
  for file in podmonitors servicemonitors prometheusrules; do
    cp "$po/example/prometheus-operator-crd/monitoring.coreos.com_$file.yaml" "$dest/"
  done
  cp "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" "$dest/"
  chmod u+w "$dest"/*.yaml
  ln -sfn "$dest" "$tools_dir/crds"
}

# grafana-dashboard-check: decodes dashboard JSON strictly with Grafana's foundation SDK for Go
# (generated from Grafana's dashboard schema: unknown fields, wrong types and missing required
# fields are errors) and validates it. The chart's dashboards are checked with it.
provision_grafana_dashboard_check() {
  local version=$GRAFANA_FOUNDATION_SDK_VERSION dest="$tools_dir/grafana-dashboard-check-$GRAFANA_FOUNDATION_SDK_VERSION/bin" dir
  if [ -x "$dest/grafana-dashboard-check" ]; then
    link grafana-dashboard-check "$dest/grafana-dashboard-check"; log "grafana-dashboard-check $version: present"; return
  fi
  log "grafana-dashboard-check $version: building"
  dir=$(wrapper_dir grafana-dashboard-check)
  cat >"$dir/main.go" <<'GO'
// Command grafana-dashboard-check validates dashboard JSON files against Grafana's dashboard schema
// as the foundation SDK generates it: strict decoding, then Validate. Exit status 1 on any error.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		raw, err := os.ReadFile(path)
		if err == nil {
			var board dashboard.Dashboard
			if err = board.UnmarshalJSONStrict(raw); err == nil {
				err = board.Validate()
			}
		}
		// Some generated functions return an empty cog.BuildErrors as a non-nil error.
		var build cog.BuildErrors
		if errors.As(err, &build) && len(build) == 0 {
			err = nil
		}
		if err != nil {
			failed = true
			fmt.Printf("%s: %v\n", path, err)
		} else {
			fmt.Printf("%s: valid\n", path)
		}
	}
	if failed {
		os.Exit(1)
	}
}
GO
  (
    cd "$dir"
    go mod init relais.dev/tools/grafana-dashboard-check >/dev/null 2>&1
    go get "github.com/grafana/grafana-foundation-sdk/go@v$version" >/dev/null
    go mod tidy >/dev/null
    mkdir -p "$dest"
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$dest/grafana-dashboard-check" .
  )
  link grafana-dashboard-check "$dest/grafana-dashboard-check"
}

main() {
  local all=(nats_server natscli redis etcd kubernetes helm kubeconform prometheus crds grafana_dashboard_check) tool
  local selected=("$@")
  [ ${#selected[@]} -gt 0 ] || selected=("${all[@]}")
  command -v go >/dev/null 2>&1 || { log "Go is needed to build the tools (https://go.dev/dl)"; exit 1; }
  for tool in "${selected[@]}"; do
    "provision_${tool//-/_}"
  done
  log "tools ready in $bin_dir"
}

# Everything above only defines functions, so bash has parsed the whole file before it runs any.
main "$@"
