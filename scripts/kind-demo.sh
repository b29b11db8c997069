#!/usr/bin/env bash
# `make kind-demo`: the example drills on kind clusters, what the kind-drill workflow
# (.github/workflows/kind-drill.yaml) runs and what .ci/run runs on this project's machines.
# As close to `make demo` as kind allows: the same chart, the same tiny model, the same CLI;
# real kubelets, containers, Services and kube-proxy.
#
#   1. kind clusters hub, primary, standby (scripts/kind.sh up: kind/*.yaml, GPU workers)
#   2. the operator image and the CPU serving image (scripts/kind-images.sh: a user's Docker
#      builds Dockerfile and serving/Dockerfile.cpu; the project's engine builds them offline),
#      `kind load`ed: the operator into the hub, the server into the members' GPU workers
#   3. the kind infrastructure provider on the host (scripts/kind.sh infra start): node and
#      cluster faults stop or pause node containers
#   4. the chart in the hub, the agent chart in each member (on its GPU workers); the member
#      kubeconfigs (each member's control-plane address on the kind network) and the
#      provider's URL as hub Secrets
#   5. examples/kind: the ModelDeployment (clients enter on the members' NodePorts: pod
#      addresses of one kind cluster are not routable from another), the golden set, then each
#      drill: modeldr drill run --wait --junit --report (exit code = the verdict's, DRILLS.md)
#
# MODELDR_KIND_PLANS: the plans, in order (default: examples/kind/drillplan.yaml, a pod kill
# and a manual failover and failback, then examples/kind/drillplan-outage.yaml, the primary's
# nodes paused and an automatic failover, then examples/kind/drillplan-partition.yaml, the
# primary's pods cut off by the node agents, seen only by the client probe). Results:
# $MODELDR_KIND_RESULTS (default .kind/results): <plan>.junit.xml, <plan>.html per plan.
# Exit: the first non-zero verdict.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.kind
RESULTS=${MODELDR_KIND_RESULTS:-$OUT/results}
NS=modeldr-demo
SYSTEM_NS=modeldr-system
OPERATOR_IMAGE=ghcr.io/modeldr/modeldr:dev
SERVE_IMAGE=ghcr.io/modeldr/modeldr-serve:cpu-dev
PLANS=${MODELDR_KIND_PLANS:-examples/kind/drillplan.yaml examples/kind/drillplan-outage.yaml examples/kind/drillplan-partition.yaml}
DRILL_TIMEOUT=${MODELDR_KIND_DRILL_TIMEOUT:-15m}
KUBECTL=${KUBECTL:-$(command -v kubectl || true)}
HELM=${HELM:-$(command -v helm || true)}
export KUBECONFIG=$PWD/$OUT/kubeconfig

T_START=$SECONDS
step() { printf '\n== %s (%d s)\n' "$*" $((SECONDS - T_START)); }
k() { "$KUBECTL" "$@"; }

# A user's Docker as it is; else (or with MODELDR_KIND_ENGINE=own) the project's own engine,
# started here (scripts/kind-docker.sh, what scripts/kind.sh uses where no engine answers).
if [[ ${MODELDR_KIND_ENGINE:-auto} == own ]] \
  || ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
  [[ ${MODELDR_KIND_ENGINE:-auto} == user ]] || bash scripts/kind-docker.sh start
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
bash scripts/kind-images.sh
KIND=$(bash scripts/kind.sh path)
t0=$SECONDS
"$KIND" load docker-image "$OPERATOR_IMAGE" --name modeldr-hub
for member in primary standby; do
  # The model's pods run on the GPU workers only (their taint, the pods' toleration).
  workers=$(k --context "$member" get nodes -l nvidia.com/gpu.present=true \
    -o jsonpath='{range .items[*]}{.metadata.name},{end}')
  # The node agents (charts/modeldr-agent) run there too, from the operator image.
  "$KIND" load docker-image "$SERVE_IMAGE" "$OPERATOR_IMAGE" --name "modeldr-$member" \
    --nodes "${workers%,}"
done
echo "images loaded in $((SECONDS - t0)) s"

step "the kind infrastructure provider"
bash scripts/kind.sh infra start
INFRA_URL=$(bash scripts/kind.sh infra url)
# Its bearer token, made at its start: into the member Secrets from the file (never on a
# command line, where `ps` would show it).
INFRA_TOKEN_FILE=.kind/infra.token

# A release that a killed run left "pending-install" or "pending-upgrade" refuses every
# upgrade ("another operation (install/upgrade/rollback) is in progress"): roll it back to its
# last deployed revision, or uninstall it when it never had one (helm#8987's recovery).
unstick_release() {  # release context
  local release=$1 ctx=$2 status
  status=$("$HELM" status "$release" --kube-context "$ctx" -n "$SYSTEM_NS" 2>/dev/null \
    | awk '/^STATUS:/ {print $2}') || true
  case $status in
    pending-install) echo "release $release in $ctx was left $status: uninstalling it"
      "$HELM" uninstall "$release" --kube-context "$ctx" -n "$SYSTEM_NS" ;;
    pending-*) echo "release $release in $ctx was left $status: rolling it back"
      "$HELM" rollback "$release" --kube-context "$ctx" -n "$SYSTEM_NS" ;;
  esac
}

step "the chart in the hub, member clusters registered"
unstick_release modeldr hub
for member in primary standby; do unstick_release modeldr-agent "$member"; done
"$HELM" upgrade --install modeldr charts/modeldr --kube-context hub -n "$SYSTEM_NS" \
  --create-namespace --set replicaCount=1 --set image.tag=dev --set image.pullPolicy=Never \
  --wait --timeout 5m
for member in primary standby; do
  # The node agents where the model runs (the GPU workers): network faults (docs/agent.md).
  "$HELM" upgrade --install modeldr-agent charts/modeldr-agent --kube-context "$member" \
    -n "$SYSTEM_NS" --create-namespace --set clusterName="$member" --set image.tag=dev \
    --set image.pullPolicy=Never --set-string 'nodeSelector.nvidia\.com/gpu\.present=true' \
    --wait --timeout 3m
done
for member in primary standby; do
  # The hub's pods reach a member's apiserver at its control-plane container's address on
  # the kind network (kind's --internal name resolves only in Docker's DNS, not in CoreDNS).
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \
    "modeldr-$member-control-plane")
  # The operator's least-privilege identity there (the agent chart's memberIdentity), never
  # an admin kubeconfig: a TokenRequest token, the member's CA, that address.
  .venv/bin/modeldr member-kubeconfig --context "$member" --namespace "$SYSTEM_NS" \
    --server "https://$ip:6443" >"$OUT/$member.internal.kubeconfig"
  k --context hub -n "$SYSTEM_NS" create secret generic "modeldr-member-$member" \
    --from-file=kubeconfig="$OUT/$member.internal.kubeconfig" \
    --from-literal=infrastructure-webhook-url="$INFRA_URL" \
    --from-file=infrastructure-webhook-token="$INFRA_TOKEN_FILE" --dry-run=client -o yaml \
    | k --context hub label --local -f - "modeldr.io/member-cluster=$member" \
      modeldr.io/allow-cluster-faults=true -o yaml \
    | k --context hub apply -f -
done

step "the tenant policy, the ModelDeployment and its golden set"
k --context hub apply -f examples/kind/tenantpolicy.yaml
# The chart's admission policy reads the grants the operator's leader compiles from the
# policies (a second at most); the ModelDeployment is refused at apply until they are there.
for _ in $(seq 60); do
  [[ -n $(k --context hub -n "$SYSTEM_NS" get configmap modeldr-tenancy \
    -o "jsonpath={.data.$NS}" 2>/dev/null) ]] && break
  sleep 1
done
k --context hub create namespace "$NS" --dry-run=client -o yaml | k --context hub apply -f -
k --context hub -n "$NS" apply -f examples/sandbox/golden-set.yaml -f examples/kind/modeldeployment.yaml
k --context hub -n "$NS" wait md/tiny-bert --for=jsonpath='{.status.phase}'=Ready --timeout=10m

mkdir -p "$RESULTS"
rc=0
for plan in $PLANS; do
  name=$(basename "$plan" .yaml)
  step "the drill $plan"
  plan_rc=0
  .venv/bin/modeldr drill run "$plan" --context hub -n "$NS" --wait --timeout "$DRILL_TIMEOUT" \
    --junit "$RESULTS/$name.junit.xml" --report "$RESULTS/$name.html" || plan_rc=$?
  echo "JUnit: $RESULTS/$name.junit.xml; HTML report: $RESULTS/$name.html; exit $plan_rc"
  [[ $rc != 0 || $plan_rc == 0 ]] || rc=$plan_rc
  # The next drill starts from a healthy, primary-served model.
  k --context hub -n "$NS" wait md/tiny-bert --for=jsonpath='{.status.phase}'=Ready --timeout=5m \
    || true
done
echo "kind-demo: $((SECONDS - T_START)) s in all"
echo "exit $rc (0 Passed, 1 Failed or Aborted, 2 Inconclusive or Error, 3 usage or connection)"
exit "$rc"
