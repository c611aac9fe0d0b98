#!/usr/bin/env bash
# Install everything symlstm needs on a fresh Debian machine: TeX Live (latexmk) and poppler for the
# documents, a virtualenv in .venv with the CPU build of torch and the package with its extras.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v latexmk >/dev/null || ! command -v pdftoppm >/dev/null || ! kpsewhich tikz.sty >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        texlive-latex-base texlive-latex-recommended texlive-pictures lmodern latexmk poppler-utils >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of torch first: a bare `torch` requirement would pull the CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev,torch,keras]"
