"""`symlstm verify [CELL...]`: the verification ladder for chosen cells, as one table."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "cli_main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cells", nargs="*", help="cells to verify (default: all)")


def cli_main(args: argparse.Namespace) -> int:
    raise NotImplementedError("symlstm verify is not implemented yet")
