#!/usr/bin/env bash
# `make test-kind`, .ci/run's kind part: first everything its tests need, built or reused from
# $MODELDR_CACHE (scripts/kind-prepare.sh: the engine, kind, the node image, the images; the
# base image tests/kind runs, on the project's engine), then the kind provider's tests on real
# containers of the project's engine (tests/kind, marker kind), then the kind drills end to
# end (scripts/kind-demo.sh: a pod kill and a manual failover; a primary outage and an
# automatic failover; a partition), then the clusters and the engine go (make kind-down),
# whatever happened. Each part prints its time. Exit: the first failure's.
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
part() { printf '\n== %s (%d s)\n' "$*" $((SECONDS - t0)); }

part "what the kind tests need (scripts/kind-prepare.sh)"
MODELDR_KIND_ENGINE=${MODELDR_KIND_ENGINE:-auto} bash scripts/kind-prepare.sh
# tests/kind always use the project's engine (their containers sit on its network).
bash scripts/kind-docker.sh start
(eval "$(bash scripts/kind-docker.sh env)"; export DOCKER_HOST; bash scripts/kind-images.sh --base >/dev/null)

part "the kind provider on real containers (tests/kind)"
"$PY" -m pytest -q -m kind tests/kind

part "the kind drills (scripts/kind-demo.sh)"
MODELDR_KIND_ENGINE=${MODELDR_KIND_ENGINE:-auto} bash scripts/kind-demo.sh
