#!/usr/bin/env bash
# The test suite: set up (idempotent), then pytest. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The virtualenv's tools (ruff) for the tests that run them.
export PATH="$PWD/.venv/bin:$PATH"
# One worker per core (pytest-xdist), each taking whole test files, each with one BLAS/OpenMP thread
# (more would oversubscribe the cores; a caller's own setting wins).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
.venv/bin/python -m pytest -n auto --dist loadfile "$@"
