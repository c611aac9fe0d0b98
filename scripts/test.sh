#!/usr/bin/env bash
# The test suite: set up (idempotent), then pytest. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The virtualenv's tools (ruff) for the tests that run them.
export PATH="$PWD/.venv/bin:$PATH"
.venv/bin/python -m pytest "$@"
