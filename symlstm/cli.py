"""The `symlstm` command line: `generate`, `verify` and `latex`."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from .build.generate import GenerateError
from .spec import SpecError

__all__ = ["main"]


def _generate(args: argparse.Namespace) -> int:
    from .build.generate import default_output_dir, generate

    out = Path(args.out) if args.out else default_output_dir()
    start = time.perf_counter()
    changed, diff = generate(out, args.cells or None, check=args.check)
    elapsed = time.perf_counter() - start
    if args.check:
        if changed:
            sys.stdout.write(diff)
            print(f"\n{len(changed)} generated file(s) out of date: {', '.join(changed)}", file=sys.stderr)
            print("Update them with: symlstm generate", file=sys.stderr)
            return 1
        print(f"generated/ is up to date ({elapsed:.1f} s)")
        return 0
    print(
        f"{len(changed)} file(s) written to {out} in {elapsed:.1f} s"
        + (f": {', '.join(changed)}" if changed else "")
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symlstm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="regenerate generated/ from the derivations")
    gen.add_argument("cells", nargs="*", help="cells to generate (default: all)")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff if out of date")
    gen.add_argument("--out", help="output directory (default: generated/ of the checkout)")
    gen.set_defaults(func=_generate)
    # Subcommands whose arguments live beside their implementation: module.add_arguments(parser)
    # declares them and module.cli_main(args) -> exit status runs them.
    for name, module, text in (
        ("verify", "verify", "run the verification ladder and print one table"),
        ("latex", "build.pdf", "render the derivation documents and build PDFs"),
    ):
        cmd = sub.add_parser(name, help=text)
        impl = importlib.import_module(f"symlstm.{module}")
        impl.add_arguments(cmd)
        cmd.set_defaults(func=impl.cli_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, GenerateError, OSError) as err:
        print(f"symlstm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
