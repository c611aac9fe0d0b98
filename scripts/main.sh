#!/usr/bin/env bash
# The main job: set up (idempotent), regenerate generated/ from the derivations and verify everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/symlstm generate
.venv/bin/symlstm generate --check
