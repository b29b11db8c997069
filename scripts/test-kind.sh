#!/usr/bin/env bash
# `make test-kind`, .ci/run's kind part (issue: kind on our own machines): the kind provider's
# tests on real containers of the project's engine (tests/kind, marker kind), then both kind
# drills end to end (scripts/kind-demo.sh: a pod kill and a manual failover; a primary
# outage and an automatic failover), then the clusters and the engine go (make kind-down),
# whatever happened. Exit: the first failure's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
t0=$SECONDS
cleanup() {
  local rc=$?
  printf '\n== kind down\n'
  bash scripts/kind.sh down || true
  echo "test-kind: $((SECONDS - t0)) s in all, exit $rc"
}
trap cleanup EXIT
bash scripts/kind-docker.sh start
printf '\n== the kind provider on real containers (tests/kind)\n'
"$PY" -m pytest -q -m kind tests/kind
printf '\n== the kind drills (scripts/kind-demo.sh)\n'
MODELDR_KIND_ENGINE=${MODELDR_KIND_ENGINE:-auto} bash scripts/kind-demo.sh
