#!/usr/bin/env bash
# The test suite: set up (idempotent), then pytest. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The virtualenv's tools (ruff) for the tests that run them.
export PATH="$PWD/.venv/bin:$PATH"
# One worker per core (pytest-xdist), each taking whole test files.
.venv/bin/python -m pytest -n auto --dist loadfile "$@"
