#!/usr/bin/env bash
# The static checks, one command for `make lint` and scripts/run-tests.sh (so `make test` and
# CI): ruff's lint rules and formatting, the import boundaries (import-linter, contracts in
# pyproject.toml's [tool.importlinter]) and the types (mypy --strict, [tool.mypy]).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/lint-imports"
"$VENV/bin/mypy"
