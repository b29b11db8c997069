#!/usr/bin/env bash
# `make kind-demo`: the example drill on kind clusters, for users with Docker, and what the
# kind-drill workflow (.github/workflows/kind-drill.yaml) runs. As close to `make demo` as
# kind allows: the same chart, the same tiny model, the same CLI; real containers.
#
#   1. kind clusters hub, primary, standby (scripts/kind.sh up: kind/*.yaml, GPU workers)
#   2. the operator image (Dockerfile) and the CPU serving image (serving/Dockerfile.cpu),
#      built and `kind load`ed (the operator into the hub, the server into the members)
#   3. routes between the clusters' pod ranges (kind/*.yaml give each its own), so the hub's
#      drill probe reaches member pods as a client on a flat network would
#   4. the chart in the hub, the member kubeconfigs as hub Secrets (--internal addresses)
#   5. examples/kind: the ModelDeployment, the golden set, then the drill:
#      modeldr drill run --wait --junit --report (exit code = the verdict's, DRILLS.md)
#
# Results: $MODELDR_KIND_RESULTS (default .kind/results): junit.xml, report.html.
# Not exercised on this project's CI machines (no Docker engine there).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.kind
RESULTS=${MODELDR_KIND_RESULTS:-$OUT/results}
NS=modeldr-demo
SYSTEM_NS=modeldr-system
OPERATOR_IMAGE=ghcr.io/modeldr/modeldr:dev
SERVE_IMAGE=ghcr.io/modeldr/modeldr-serve:cpu-dev
PLAN=examples/kind/drillplan.yaml
DRILL_TIMEOUT=${MODELDR_KIND_DRILL_TIMEOUT:-15m}
KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
HELM=${HELM:-$(command -v helm || true)}
export KUBECONFIG=$PWD/$OUT/kubeconfig

step() { printf '\n== %s\n' "$*"; }
k() { "$KUBECTL" "$@"; }

# A user's Docker as it is; else the project's own engine (scripts/kind-docker.sh, what
# scripts/kind.sh uses where no engine answers) when it runs, or MODELDR_KIND_ENGINE=own.
if [[ ${MODELDR_KIND_ENGINE:-auto} == own ]] \
  || ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
  [[ ${MODELDR_KIND_ENGINE:-auto} == own ]] && bash scripts/kind-docker.sh start
  eval "$(bash scripts/kind-docker.sh env)"
  export DOCKER_HOST KIND_EXPERIMENTAL_DOCKER_NETWORK
fi
command -v docker >/dev/null && docker info >/dev/null 2>&1 || {
  echo "kind-demo needs a running Docker engine (or the project's: scripts/kind-docker.sh start); without one: make demo (the local sandbox)" >&2
  exit 3; }
if [[ -z $KUBECTL || -z $HELM ]]; then
  # No kubectl or helm on PATH: the project's own (scripts/tools.sh builds them once).
  eval "$(bash scripts/tools.sh --print-env)"
  [[ -x ${MODELDR_KUBECTL:-} && -x ${MODELDR_HELM:-} ]] || bash scripts/tools.sh
  KUBECTL=${KUBECTL:-$MODELDR_KUBECTL}; HELM=${HELM:-$MODELDR_HELM}
fi
if [[ ! -x .venv/bin/modeldr ]]; then
  step "the modeldr CLI (.venv, without the serving extra)"
  python3 -m venv .venv
  .venv/bin/pip install -q -c constraints.txt -e .
fi

step "the tiny model for the kind nodes' hostPath (/tmp/modeldr/models/tiny-bert)"
.venv/bin/python -c 'from sandbox.operator_up import ensure_tiny_model; print(ensure_tiny_model())'

step "kind clusters"
KUBECTL=$KUBECTL bash scripts/kind.sh up

step "images"
# A user's Docker: `docker build` of Dockerfile and serving/Dockerfile.cpu; the project's engine: built offline
# (scripts/kind-images.sh; only the operator image so far).
bash scripts/kind-images.sh
docker image inspect "$SERVE_IMAGE" >/dev/null 2>&1 || {
  echo "no $SERVE_IMAGE in this engine (the offline build makes only the operator image; README: kind on these machines)" >&2
  exit 3; }
KIND=$(bash scripts/kind.sh path)
"$KIND" load docker-image "$OPERATOR_IMAGE" --name modeldr-hub
for member in primary standby; do
  "$KIND" load docker-image "$SERVE_IMAGE" --name "modeldr-$member"
done

step "routes between the clusters' pod ranges"
# Every node of each cluster routes every other cluster's node pod ranges via that node.
declare -A CIDR_VIA=()
for cluster in hub primary standby; do
  while read -r cidr ip; do CIDR_VIA[$cluster/$cidr]=$ip; done < <(k --context "$cluster" get nodes \
    -o jsonpath='{range .items[*]}{.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
done
for cluster in hub primary standby; do
  for node in $("$KIND" get nodes --name "modeldr-$cluster"); do
    for key in "${!CIDR_VIA[@]}"; do
      [[ ${key%%/*} == "$cluster" ]] && continue
      docker exec "$node" ip route replace "${key#*/}" via "${CIDR_VIA[$key]}"
    done
  done
done

step "the chart in the hub, member clusters registered"
"$HELM" upgrade --install modeldr charts/modeldr --kube-context hub -n "$SYSTEM_NS" \
  --create-namespace --set replicaCount=1 --set image.tag=dev --set image.pullPolicy=Never \
  --wait --timeout 5m
for member in primary standby; do
  "$KIND" get kubeconfig --internal --name "modeldr-$member" >"$OUT/$member.internal.kubeconfig"
  k --context hub -n "$SYSTEM_NS" create secret generic "modeldr-member-$member" \
    --from-file=kubeconfig="$OUT/$member.internal.kubeconfig" --dry-run=client -o yaml \
    | k --context hub label --local -f - "modeldr.io/member-cluster=$member" -o yaml \
    | k --context hub apply -f -
done

step "the ModelDeployment and its golden set"
k --context hub create namespace "$NS" --dry-run=client -o yaml | k --context hub apply -f -
k --context hub -n "$NS" apply -f examples/sandbox/golden-set.yaml -f examples/kind/modeldeployment.yaml
k --context hub -n "$NS" wait md/tiny-bert --for=jsonpath='{.status.phase}'=Ready --timeout=10m

step "the drill"
mkdir -p "$RESULTS"
rc=0
.venv/bin/modeldr drill run "$PLAN" --context hub -n "$NS" --wait --timeout "$DRILL_TIMEOUT" \
  --junit "$RESULTS/junit.xml" --report "$RESULTS/report.html" || rc=$?
echo "JUnit: $RESULTS/junit.xml"
echo "HTML report: $RESULTS/report.html"
echo "exit $rc (0 Passed, 1 Failed or Aborted, 2 Inconclusive or Error, 3 usage or connection)"
exit "$rc"
