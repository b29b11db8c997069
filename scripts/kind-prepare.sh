#!/usr/bin/env bash
# Everything the kind part of CI needs before its first test, built once or reused from
# $MODELDR_CACHE, in the order it is needed (issue: CI green from nothing):
#   1. the Docker engine: a user's, or the project's own (scripts/kind-docker.sh start)
#   2. the kind binary (scripts/kind.sh path: `go install`, cached)
#   3. the kind node image, built offline on the project's engine (scripts/kind-node-image.sh)
#   4. the offline base image that tests/kind's containers run, and the operator/agent and CPU
#      serving images (scripts/kind-images.sh; unchanged sources are not rebuilt)
# Each step prints its time; a step that fails stops the script with its exit code.
# .ci/run starts it in the background while lint and the sandbox tests run (the builds run at
# the lowest CPU priority); scripts/test-kind.sh runs it again, which then takes seconds.
# MODELDR_KIND_ENGINE=own|user as for scripts/kind.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

T_ALL=$SECONDS
say() { printf '[kind-prepare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
timed() {  # what command...: runs it, prints how long it took
  local what=$1 t0=$SECONDS; shift
  say "$what ..."
  "$@"
  say "$what: ready in $((SECONDS - t0)) s"
}

ENGINE=$(bash scripts/kind-docker.sh which)
if [[ $ENGINE == own ]]; then
  timed "the project's Docker engine" bash scripts/kind-docker.sh start
  eval "$(bash scripts/kind-docker.sh env)"
  export DOCKER_HOST KIND_EXPERIMENTAL_DOCKER_NETWORK
fi
timed "the kind binary" bash scripts/kind.sh path >/dev/null
if [[ $ENGINE == own ]]; then
  timed "the kind node image" bash scripts/kind-node-image.sh >/dev/null
fi
timed "the base, operator/agent and serving images" bash scripts/kind-images.sh >/dev/null
say "everything the kind tests need is ready ($((SECONDS - T_ALL)) s, engine: $ENGINE)"
