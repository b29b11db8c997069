#!/usr/bin/env bash
# kind clusters hub, primary and standby for users with Docker: `make kind-up` / `make kind-down`.
# The same contexts as the local sandbox (hub, primary, standby) in .kind/kubeconfig.
# `scripts/kind.sh path` prints the kind binary (installed with `go install` on first use).
# Not exercised on this project's CI machines (no Docker engine there); see
# .github/workflows/kind-drill.yaml (and scripts/kind-demo.sh) for what runs it where Docker
# exists.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND_VERSION=v0.32.0
CACHE=${MODELDR_CACHE:-$HOME/.cache/modeldr}
KIND=$CACHE/kind-$KIND_VERSION/bin/kind
OUT=.kind; mkdir -p "$OUT"

if [[ ! -x $KIND ]]; then
  GOBIN=$CACHE/kind-$KIND_VERSION/bin go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
if [[ ${1:-} == path ]]; then echo "$KIND"; exit 0; fi
command -v docker >/dev/null && docker info >/dev/null 2>&1 || {
  echo "kind needs a running Docker engine; on machines without one use the local sandbox (make sandbox-up)" >&2
  exit 1; }
# kubectl: $KUBECTL, else one on PATH, else the project's (scripts/tools.sh builds it once).
KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
if [[ -z $KUBECTL ]]; then
  eval "$(bash scripts/tools.sh --print-env)"
  [[ -x $MODELDR_KUBECTL ]] || bash scripts/tools.sh
  KUBECTL=$MODELDR_KUBECTL
fi

up() {
  for name in hub primary standby; do
    if ! "$KIND" get clusters | grep -qx "modeldr-$name"; then
      "$KIND" create cluster --config "kind/$name.yaml" --kubeconfig "$OUT/$name.kubeconfig" --wait 120s
    else
      "$KIND" export kubeconfig --name "modeldr-$name" --kubeconfig "$OUT/$name.kubeconfig"
    fi
    # Rename the context to the sandbox's names so every tool works the same on both.
    $KUBECTL --kubeconfig "$OUT/$name.kubeconfig" config rename-context "kind-modeldr-$name" "$name" 2>/dev/null || true
  done
  KUBECONFIG=$OUT/hub.kubeconfig:$OUT/primary.kubeconfig:$OUT/standby.kubeconfig \
    $KUBECTL config view --flatten >"$OUT/kubeconfig"
  for name in primary standby; do
    for node in $($KUBECTL --kubeconfig "$OUT/kubeconfig" --context "$name" get nodes \
        -l nvidia.com/gpu.present=true -o name); do
      $KUBECTL --kubeconfig "$OUT/kubeconfig" --context "$name" taint --overwrite "$node" \
        nvidia.com/gpu=present:NoSchedule
      $KUBECTL --kubeconfig "$OUT/kubeconfig" --context "$name" patch "$node" --subresource=status \
        --type=merge -p '{"status":{"capacity":{"nvidia.com/gpu":"8"}}}'
    done
  done
  echo "kind clusters ready; export KUBECONFIG=$PWD/$OUT/kubeconfig (contexts hub, primary, standby)"
}

down() {
  for name in hub primary standby; do "$KIND" delete cluster --name "modeldr-$name" || true; done
  rm -rf "$OUT"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down|path" >&2; exit 2 ;;
esac
