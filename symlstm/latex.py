"""`symlstm latex [--pdf]`: derivation documents in LaTeX, compiled with latexmk."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "cli_main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pdf", action="store_true", help="also compile PDFs with latexmk")


def cli_main(args: argparse.Namespace) -> int:
    raise NotImplementedError("symlstm latex is not implemented yet")
