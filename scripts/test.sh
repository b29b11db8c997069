#!/usr/bin/env bash
# The README's test command runs this (via `make test`): unit tests, model-server tests,
# then integration tests on the sandbox, which it brings up and always tears down.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
eval "$(bash scripts/tools.sh --print-env)"

started_here=0
if ! $PY -m sandbox status 2>/dev/null | grep -q '"runtime": true'; then started_here=1; fi
teardown() {
  if [[ $started_here == 1 || "${CI:-}" == "true" ]]; then
    echo "== tearing the sandbox down"
    $PY -m sandbox down || true
    # sandbox-down must leave nothing behind: no control plane or daemon running out of
    # .sandbox/, no pod process (marked in its environment).
    left=$($PY -c 'from sandbox.api import leftover_pids; from sandbox.config import sandbox_paths
print(" ".join(map(str, leftover_pids(sandbox_paths().root))))')
    if [[ -n "$left" ]]; then
      echo "FAILED: processes outlived sandbox-down:" >&2; ps -o pid,args -p ${left// /,} >&2
      exit 1
    fi
  fi
}
trap teardown EXIT

echo "== bringing the sandbox up (integration tests need it; they never skip)"
t0=$SECONDS
if ! $PY -m sandbox up; then
  echo "FAILED: the sandbox could not come up; see .sandbox/logs and .sandbox/kwok/clusters/*/logs" >&2
  exit 1
fi
echo "== sandbox up in $((SECONDS - t0)) s"

# One pytest run so the closing summary counts every test, serial by default. With
# MODELDR_TEST_WORKERS=N (N >= 2), pytest-xdist runs it on N workers: the sandbox's tests as
# one unit of work on one worker, in order, the unit and model-server tests beside them
# (tests/conftest.py's scheduler). Not the default: on these 2-core machines the drills on
# the sandbox failed twice in cold runs with the other worker busy beside them (a steady
# state that saw 'no ready endpoints', a failback with errors), and the whole run was only
# 45-65 s shorter. The slowest tests are listed at the end: the CI budget is watched from them.
workers=${MODELDR_TEST_WORKERS:-0}
t0=$SECONDS
$PY -m pytest -n "$workers" --durations=25 "$@"
rc=$?
echo "== pytest: $((SECONDS - t0)) s on $workers workers, exit $rc"
exit $rc
