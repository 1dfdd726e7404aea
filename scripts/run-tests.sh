#!/usr/bin/env bash
# Runs every check (scripts/lint.sh, as `make lint`) and test. Exit 5 from pytest (no tests
# collected) counts as failure, since a suite that runs nothing proves nothing.
set -euo pipefail
VENV=${VENV:-.venv}
VENV="$VENV" "$(dirname "$0")/lint.sh"
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "run-tests: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
