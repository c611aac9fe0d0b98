#!/usr/bin/env bash
# The main job: set up (idempotent), regenerate generated/ from the derivations, verify every cell
# (symbolic proofs, finite differences, adjoint and Taylor tests, PyTorch) and build the PDFs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/symlstm generate
.venv/bin/symlstm verify
.venv/bin/symlstm latex --pdf
