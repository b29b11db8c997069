#!/usr/bin/env bash
# Installs the sandbox's pinned tools into a cache outside the repository,
# keyed by version, so only a fresh machine pays the build:
#   $MODELDR_CACHE/<tool>-<version>/bin/...
# Idempotent: each tool has a stamp file; a second run only checks stamps.
# Prints progress to stderr. With --print-env, prints `export` lines for the
# tool paths instead (used by the Makefile and the Python sandbox API).
set -euo pipefail

K8S_VERSION=v1.36.3          # kube-apiserver, -controller-manager, -scheduler, kubectl
ETCD_VERSION=v3.6.16         # an etcd this apiserver supports (k8s 1.36 pins etcd 3.6)
KWOK_VERSION=v0.8.0          # kwok + kwokctl (stand in for kubelets)
HELM_VERSION=v3.22.0
PROMETHEUS_VERSION=v0.316.0 # Prometheus 3.16 server (Go module version; Debian's build lacks kubernetes_sd)
GATEWAY_API_VERSION=v1.6.3  # Gateway API standard-channel CRDs (tests of the gatewayapi traffic provider)
# SeaweedFS `weed` (the sandbox's S3 object stores). The Go proxy serves this one pseudo-version
# of github.com/seaweedfs/seaweedfs (no tagged release of the module path is listed).
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6

CACHE=${MODELDR_CACHE:-$HOME/.cache/modeldr}
# Go's build cache lives there too, so one variable moves every cache the scripts write
# (MODELDR_CACHE=$(mktemp -d) is a cold machine; Go's module download cache stays shared).
export GOCACHE=$CACHE/go-build
# "-loopback2": the sandbox patch below is part of the cache key.
K8S_DIR=$CACHE/kubernetes-$K8S_VERSION-loopback2
ETCD_DIR=$CACHE/etcd-$ETCD_VERSION
KWOK_DIR=$CACHE/kwok-$KWOK_VERSION
HELM_DIR=$CACHE/helm-$HELM_VERSION
PROM_DIR=$CACHE/prometheus-$PROMETHEUS_VERSION
GATEWAY_API_DIR=$CACHE/gateway-api-$GATEWAY_API_VERSION
SEAWEEDFS_DIR=$CACHE/seaweedfs-$SEAWEEDFS_VERSION
# The sandbox's custom metrics adapter (sandbox/metrics-adapter, our source): keyed by the
# hash of its files, so an edit rebuilds it.
ADAPTER_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../sandbox/metrics-adapter" && pwd)
ADAPTER_HASH=$(cat "$ADAPTER_SRC"/go.mod "$ADAPTER_SRC"/go.sum "$ADAPTER_SRC"/*.go | sha256sum | cut -c1-12)
ADAPTER_DIR=$CACHE/metrics-adapter-$ADAPTER_HASH

print_env() {
  cat <<ENV
export MODELDR_K8S_VERSION=$K8S_VERSION
export MODELDR_TOOLS_PATH=$K8S_DIR/bin:$ETCD_DIR/bin:$KWOK_DIR/bin:$HELM_DIR/bin:$PROM_DIR/bin
export MODELDR_KUBE_APISERVER=$K8S_DIR/bin/kube-apiserver
export MODELDR_KUBE_CONTROLLER_MANAGER=$K8S_DIR/bin/kube-controller-manager
export MODELDR_KUBE_SCHEDULER=$K8S_DIR/bin/kube-scheduler
export MODELDR_KUBECTL=$K8S_DIR/bin/kubectl
export MODELDR_ETCD=$ETCD_DIR/bin/etcd
export MODELDR_KWOK=$KWOK_DIR/bin/kwok
export MODELDR_KWOKCTL=$KWOK_DIR/bin/kwokctl
export MODELDR_HELM=$HELM_DIR/bin/helm
export MODELDR_PROMETHEUS=$PROM_DIR/bin/prometheus
export MODELDR_GATEWAY_API_CRDS=$GATEWAY_API_DIR/crd
export MODELDR_METRICS_ADAPTER=$ADAPTER_DIR/bin/modeldr-metrics-adapter
export MODELDR_WEED=$SEAWEEDFS_DIR/bin/weed
ENV
}

if [[ "${1:-}" == "--print-env" ]]; then print_env; exit 0; fi

log() { printf '[tools %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
done_already() { [[ -f "$1/.complete" ]]; }

export CGO_ENABLED=0 GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "tools.sh: Go is required to build the sandbox binaries" >&2; exit 1; }

# A throwaway Go module in $1 that requires $2@$3 (plus extra go.mod lines in $4).
new_module() {
  local dir=$1 mod=$2 ver=$3 extra=${4:-}
  rm -rf "$dir/src"; mkdir -p "$dir/src"
  printf 'module modeldr.local/toolbuild\n\ngo 1.25\n\nrequire %s %s\n%s\n' "$mod" "$ver" "$extra" >"$dir/src/go.mod"
}

build_kubernetes() {
  done_already "$K8S_DIR" && return
  local t0=$SECONDS staging=${K8S_VERSION/v1./v0.}
  log "building Kubernetes $K8S_VERSION binaries (cold: about 4 minutes on 2 cores)"
  mkdir -p "$K8S_DIR"
  # k8s.io/kubernetes replaces its staging modules with ./staging paths; a
  # dependent module must replace each of them with its published v0.x.y.
  local gomod
  gomod=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local replaces
  replaces=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging"'#p' "$gomod")
  # The sandbox's pod network is 127.0.0.0/8 (the network rule), but the apiserver refuses
  # loopback addresses in Endpoints/EndpointSlices. The build uses a copy of the
  # k8s.io/kubernetes module (in this cache, never committed) with one patch that accepts
  # them; nothing else changes.
  local kdir validation
  kdir=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$K8S_DIR/kubernetes"; cp -r "$kdir" "$K8S_DIR/kubernetes"; chmod -R u+w "$K8S_DIR/kubernetes"
  validation=$K8S_DIR/kubernetes/pkg/apis/core/validation/validation.go
  sed -i 's/^\tif ip.IsLoopback() {$/\tif ip.IsLoopback() \&\& !sandboxAcceptsLoopbackEndpoints {/' "$validation"
  grep -q sandboxAcceptsLoopbackEndpoints "$validation" || {
    echo "tools.sh: the loopback patch no longer applies to Kubernetes $K8S_VERSION" >&2; exit 1; }
  printf '\n// modeldr sandbox: pod IPs live in 127.0.0.0/8.\nconst sandboxAcceptsLoopbackEndpoints = true\n' >>"$validation"
  replaces+=$'\n\tk8s.io/kubernetes => ../kubernetes'
  new_module "$K8S_DIR" k8s.io/kubernetes "$K8S_VERSION" "replace (
$replaces
)"
  local major=${K8S_VERSION#v}; major=${major%%.*}
  local minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$K8S_DIR/src" && go build -trimpath -ldflags "$ld" -o "$K8S_DIR/bin/" \
     k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
     k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  touch "$K8S_DIR/.complete"
  log "Kubernetes binaries built in $((SECONDS - t0)) s"
}

build_go_main() {  # dir module version package binary-name [ldflags] [build tags]
  local dir=$1 mod=$2 ver=$3 pkg=$4 name=$5 ld=${6:-} tags=${7:-}
  new_module "$dir" "$mod" "$ver"
  (cd "$dir/src" && go build -tags "$tags" -trimpath -ldflags "-s -w $ld" -o "$dir/bin/$name" "$pkg")
}

build_etcd() {
  done_already "$ETCD_DIR" && return
  local t0=$SECONDS; log "building etcd $ETCD_VERSION"
  build_go_main "$ETCD_DIR" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 etcd
  touch "$ETCD_DIR/.complete"; log "etcd built in $((SECONDS - t0)) s"
}

build_kwok() {
  done_already "$KWOK_DIR" && return
  local t0=$SECONDS; log "building kwok and kwokctl $KWOK_VERSION"
  local ld="-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
  build_go_main "$KWOK_DIR" sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok "$ld"
  (cd "$KWOK_DIR/src" && go build -trimpath -ldflags "-s -w $ld" -o "$KWOK_DIR/bin/kwokctl" sigs.k8s.io/kwok/cmd/kwokctl)
  touch "$KWOK_DIR/.complete"; log "kwok built in $((SECONDS - t0)) s"
}

build_metrics_adapter() {
  done_already "$ADAPTER_DIR" && return
  local t0=$SECONDS; log "building the sandbox's custom metrics adapter (sandbox/metrics-adapter)"
  rm -rf "$ADAPTER_DIR"; mkdir -p "$ADAPTER_DIR/src"
  cp "$ADAPTER_SRC"/go.mod "$ADAPTER_SRC"/go.sum "$ADAPTER_SRC"/*.go "$ADAPTER_DIR/src/"
  # Its Kubernetes modules are the versions the Kubernetes build compiled: Go's build cache
  # serves most of it.
  (cd "$ADAPTER_DIR/src" && go build -trimpath -ldflags "-s -w" -o "$ADAPTER_DIR/bin/modeldr-metrics-adapter" .)
  touch "$ADAPTER_DIR/.complete"; log "metrics adapter built in $((SECONDS - t0)) s"
}

build_seaweedfs() {
  done_already "$SEAWEEDFS_DIR" && return
  local t0=$SECONDS; log "building SeaweedFS weed $SEAWEEDFS_VERSION (the sandbox's S3 stores; cold: about 5 minutes on 2 cores)"
  build_go_main "$SEAWEEDFS_DIR" github.com/seaweedfs/seaweedfs "$SEAWEEDFS_VERSION" \
    github.com/seaweedfs/seaweedfs/weed weed
  touch "$SEAWEEDFS_DIR/.complete"; log "weed built in $((SECONDS - t0)) s"
}

build_helm() {
  done_already "$HELM_DIR" && return
  local t0=$SECONDS; log "building helm $HELM_VERSION"
  build_go_main "$HELM_DIR" helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  touch "$HELM_DIR/.complete"; log "helm built in $((SECONDS - t0)) s"
}

build_prometheus() {
  done_already "$PROM_DIR" && return
  local t0=$SECONDS; log "building prometheus $PROMETHEUS_VERSION (web UI assets are not embedded; the API is all we use)"
  # Go module v0.3MM.P is Prometheus 3.MM.P.
  local minor=${PROMETHEUS_VERSION#v0.}; minor=$(( ${minor%%.*} - 300 ))
  local release="3.$minor.${PROMETHEUS_VERSION##*.}"
  build_go_main "$PROM_DIR" github.com/prometheus/prometheus "$PROMETHEUS_VERSION" \
    github.com/prometheus/prometheus/cmd/prometheus prometheus \
    "-X github.com/prometheus/common/version.Version=$release" \
    remove_all_sd,enable_kubernetes_sd  # only the SD we use; some others' modules are not on the proxy
  touch "$PROM_DIR/.complete"; log "prometheus built in $((SECONDS - t0)) s"
}

fetch_gateway_api_crds() {
  done_already "$GATEWAY_API_DIR" && return
  log "fetching Gateway API $GATEWAY_API_VERSION standard-channel CRDs"
  # The Go module zip carries config/crd/standard/*.yaml; keep only the CRDs (not the
  # ValidatingAdmissionPolicy that ships beside them).
  local dir
  dir=$(cd /tmp && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -d "$dir/config/crd/standard" ]] || {
    echo "tools.sh: no config/crd/standard in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" >&2; exit 1; }
  rm -rf "$GATEWAY_API_DIR/crd"; mkdir -p "$GATEWAY_API_DIR/crd"
  local f
  for f in "$dir"/config/crd/standard/*.yaml; do
    if grep -q '^kind: CustomResourceDefinition$' "$f"; then cp "$f" "$GATEWAY_API_DIR/crd/"; fi
  done
  chmod -R u+w "$GATEWAY_API_DIR/crd"
  touch "$GATEWAY_API_DIR/.complete"
}

install_firewall() {
  # nftables is what the network faults use; iptables is the fallback.
  if command -v nft >/dev/null && command -v iptables >/dev/null; then return; fi
  log "installing nftables and iptables (Debian)"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
  $sudo apt-get install -y -q nftables iptables >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q nftables iptables >/dev/null; }
}

install_chromium() {
  # Headless Chromium opens the drill reports in the tests (tests/chromium.py) and renders
  # the README's chart picture (scripts/report_picture.py).
  if command -v chromium >/dev/null; then return; fi
  log "installing chromium (Debian)"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
  $sudo apt-get install -y -q chromium >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; }
}

install_haproxy() {
  # The sandbox's load balancer for the haproxy traffic provider (sandbox/haproxy.py).
  if command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]]; then return; fi
  log "installing haproxy (Debian)"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
  $sudo apt-get install -y -q --no-install-recommends haproxy >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends haproxy >/dev/null; }
  # Debian's package starts a haproxy service where systemd runs: the sandbox runs its own.
  if command -v systemctl >/dev/null && systemctl is-active -q haproxy 2>/dev/null; then
    $sudo systemctl disable --now haproxy >/dev/null 2>&1 || true
  fi
}

t_all=$SECONDS
build_prometheus
install_firewall
install_chromium
install_haproxy
build_etcd
build_kwok
build_helm
build_kubernetes
build_metrics_adapter
build_seaweedfs
fetch_gateway_api_crds
log "tools ready in $((SECONDS - t_all)) s (cache: $CACHE)"
