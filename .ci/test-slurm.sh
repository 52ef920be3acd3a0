#!/usr/bin/env bash
# Run the SLURM end-to-end test against a throw-away one-node cluster.
#
#   .ci/test-slurm.sh [extra pytest args]
#
# Starts SLURM with .ci/slurm.sh into a temporary STATE_DIR (always stopped again on
# exit), then runs tests/test_slurm_cluster.py with VAE_REQUIRE_SLURM=1 so that an
# unusable cluster fails the test instead of skipping it. Exits with pytest's status.
# Needs root on Debian 12 the first time (apt-get install slurm-wlm munge).
# PYTHON overrides the interpreter (default: .venv/bin/python of the repository).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}

STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vae-slurm.XXXXXX")
PYTEST_PID=
# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  # interrupted: let pytest (and the snakemake it runs) cancel their jobs first
  if [[ -n "$PYTEST_PID" ]] && kill -0 "$PYTEST_PID" 2>/dev/null; then
    kill -INT "$PYTEST_PID" 2>/dev/null || true
    wait "$PYTEST_PID" 2>/dev/null || true
  fi
  .ci/slurm.sh stop "$STATE_DIR" || echo "[test-slurm.sh] WARNING: stopping SLURM failed" >&2
  if [[ $rc -eq 0 ]]; then
    rm -rf "$STATE_DIR"
  else
    echo "[test-slurm.sh] exit $rc; SLURM logs kept in $STATE_DIR/log" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

.ci/slurm.sh start "$STATE_DIR" >/dev/null
# shellcheck disable=SC1091
. "$STATE_DIR/env.sh"

# In the background + wait, so that INT/TERM reach the traps at once (bash runs a trap
# only after a foreground command ends); with job control (set -m) so that the
# background pytest does not ignore SIGINT, which cleanup() forwards to it: pytest then
# interrupts snakemake, which cancels its SLURM jobs.
set -m
VAE_REQUIRE_SLURM=1 "$PYTHON" -m pytest -m slurm tests/test_slurm_cluster.py -x -v "$@" &
PYTEST_PID=$!
set +m
set +e
wait "$PYTEST_PID"
rc=$?
set -e
PYTEST_PID=
exit "$rc"
