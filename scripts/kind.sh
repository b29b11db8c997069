#!/usr/bin/env bash
# kind clusters hub, primary and standby for users with Docker: `make kind-up` / `make kind-down`.
# The same contexts as the local sandbox (hub, primary, standby) in .kind/kubeconfig.
# `scripts/kind.sh path` prints the kind binary (installed with `go install` on first use).
# Where Docker exists (.github/workflows/kind-drill.yaml, scripts/kind-demo.sh): upstream kind
# node images. Where none answers (these machines): the project's own engine and node image
# built offline (see "the engine" below); `down` stops that engine too.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND_VERSION=v0.32.0
CACHE=${MODELDR_CACHE:-$HOME/.cache/modeldr}
# Go's build cache lives there too, so one variable moves every cache the scripts write
# (MODELDR_CACHE=$(mktemp -d) is a cold machine; Go's module download cache stays shared).
export GOCACHE=$CACHE/go-build
KIND=$CACHE/kind-$KIND_VERSION/bin/kind
OUT=.kind; mkdir -p "$OUT"

if [[ ! -x $KIND ]]; then
  GOBIN=$CACHE/kind-$KIND_VERSION/bin nice -n 19 go install -p 1 "sigs.k8s.io/kind@$KIND_VERSION"
fi
if [[ ${1:-} == path ]]; then echo "$KIND"; exit 0; fi
# The engine: a user's Docker (upstream kind node images, kind/*.yaml as they are), or, where
# none answers (these CI machines: no registry, no Docker), the project's own engine
# (scripts/kind-docker.sh) and the node image built offline (scripts/kind-node-image.sh),
# with kind/*.yaml rendered for it (kindtools/offline.py). MODELDR_KIND_ENGINE=own|user
# overrides the choice.
ENGINE=$(bash scripts/kind-docker.sh which)
PY=${PYTHON:-.venv/bin/python}
if [[ $ENGINE == own ]]; then
  if [[ ${1:-} == up ]]; then bash scripts/kind-docker.sh start; fi
  eval "$(bash scripts/kind-docker.sh env)"
  export DOCKER_HOST KIND_EXPERIMENTAL_DOCKER_NETWORK
fi
if ! docker info >/dev/null 2>&1; then
  if [[ ${1:-} == down ]]; then
    "${PYTHON:-.venv/bin/python}" -m kindtools.infra stop >/dev/null 2>&1 || true  # the provider
    rm -rf "$OUT"; echo "no Docker engine running: nothing to delete"; exit 0
  fi
  echo "kind needs a running Docker engine (scripts/kind-docker.sh start); or use the local sandbox (make sandbox-up)" >&2
  exit 1
fi
# kubectl: $KUBECTL, else one on PATH, else the project's (scripts/tools.sh builds it once).
KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
if [[ -z $KUBECTL ]]; then
  eval "$(bash scripts/tools.sh --print-env)"
  [[ -x $MODELDR_KUBECTL ]] || bash scripts/tools.sh
  KUBECTL=$MODELDR_KUBECTL
fi

# The offline path: its node image, the cluster config rendered for it, the CNI set up after
# creation (no kindnet there), then the nodes waited for.
offline_config() {  # name -> path of the rendered config
  local image etcd_tag
  image=$(bash scripts/kind-node-image.sh --name)
  etcd_tag=$(bash scripts/kind-node-image.sh --etcd-tag)
  "$PY" -m kindtools.offline config "kind/$1.yaml" "$image" "$etcd_tag" >"$OUT/$1.kind.yaml"
  echo "$OUT/$1.kind.yaml"
}
kind_subnet() {  # the IPv4 subnet of the kind nodes' Docker network
  docker network inspect "${KIND_EXPERIMENTAL_DOCKER_NETWORK:-kind}" \
    -f '{{range .IPAM.Config}}{{if not (eq (len .Subnet) 0)}}{{.Subnet}} {{end}}{{end}}' \
    | tr ' ' '\n' | grep -v : | head -1
}
offline_network() {  # name: CNI config and routes on every node, then all nodes Ready
  local kc=$OUT/$1.kubeconfig i rc
  for i in $(seq 60); do
    rc=0; $KUBECTL --kubeconfig "$kc" get nodes -o json \
      | "$PY" -m kindtools.offline cni "$(kind_subnet)" || rc=$?
    [[ $rc == 75 ]] || break
    sleep 2
  done
  [[ $rc == 0 ]] || { echo "CNI setup of modeldr-$1 failed" >&2; return 1; }
  $KUBECTL --kubeconfig "$kc" wait nodes --all --for=condition=Ready --timeout=180s
}

up() {
  local t0
  if [[ $ENGINE == own ]]; then
    if [[ -z $("$KIND" get clusters 2>/dev/null) ]]; then bash scripts/kind-docker.sh disk; fi
    t0=$SECONDS; bash scripts/kind-node-image.sh >/dev/null
    echo "node image ready in $((SECONDS - t0)) s"
  fi
  for name in hub primary standby; do
    if ! "$KIND" get clusters | grep -x "modeldr-$name" >/dev/null; then  # no -q: pipefail + SIGPIPE
      t0=$SECONDS
      if [[ $ENGINE == own ]]; then
        "$KIND" create cluster --config "$(offline_config "$name")" --kubeconfig "$OUT/$name.kubeconfig"
        offline_network "$name"
      else
        "$KIND" create cluster --config "kind/$name.yaml" --kubeconfig "$OUT/$name.kubeconfig" --wait 120s
      fi
      echo "modeldr-$name up in $((SECONDS - t0)) s"
    else
      rm -f "$OUT/$name.kubeconfig"  # else the renamed context and kind's both end up in it
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
      $KUBECTL --kubeconfig "$OUT/kubeconfig" --context "$name" taint --overwrite nodes "${node#node/}" \
        nvidia.com/gpu=present:NoSchedule
      $KUBECTL --kubeconfig "$OUT/kubeconfig" --context "$name" patch "$node" --subresource=status \
        --type=merge -p '{"status":{"capacity":{"nvidia.com/gpu":"8"}}}'
    done
  done
  echo "kind clusters ready; export KUBECONFIG=$PWD/$OUT/kubeconfig (contexts hub, primary, standby)"
}

down() {
  infra undo-all || true  # no node left paused or killed by a drill (the provider stops first)
  for name in hub primary standby; do "$KIND" delete cluster --name "modeldr-$name" || true; done
  rm -rf "$OUT"
  # The project's own engine goes with the clusters: nothing is left running.
  if [[ $ENGINE == own ]]; then bash scripts/kind-docker.sh stop; fi
}

# --- the kind infrastructure provider (kindtools/infra.py; docs/infrastructure-webhook.md,
# "The kind provider"): NodeFailure = docker kill of the node's container, ClusterOutage =
# docker pause of the member's nodes. `infra start|stop|url|token|status|undo-all`; it listens on the
# kind network's gateway (where the hub's pods reach it) and 127.0.0.1, port $MODELDR_INFRA_PORT
# (19210); pidfile, log, state and bearer token: .kind/infra.pid, .kind/infra.log,
# .kind/infra-state.json, .kind/infra.token.
infra() {
  "$PY" -m kindtools.infra --port "${MODELDR_INFRA_PORT:-19210}" "$@"
}
# --- end of the kind infrastructure provider

case "${1:-}" in
  up) up ;;
  infra) shift; infra "${1:-url}" ;;
  # After a node container was stopped and started again (its routes are gone, its address
  # may have changed): the CNI config and routes of every node again (offline path only).
  network) if [[ $ENGINE == own ]]; then for n in hub primary standby; do offline_network "$n"; done; fi ;;
  down) down ;;
  *) echo "usage: $0 up|down|network|path|infra start|stop|url|status|undo-all" >&2; exit 2 ;;
esac
