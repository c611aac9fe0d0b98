"""The `symlstm` command line: `generate`, `verify` and `latex`."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from . import __version__
from .build.generate import GenerateError
from .spec import SpecError

__all__ = ["main"]


def _generate(args: argparse.Namespace) -> int:
    from .build.generate import default_output_dir, describe_output_dir, generate, topic_sources_available
    from .paths import installed_generated_dir

    out = Path(args.out) if args.out else default_output_dir(check=args.check)
    where = describe_output_dir(out)
    start = time.perf_counter()
    changed, diff = generate(out, args.cells or None, check=args.check)
    elapsed = time.perf_counter() - start
    if not args.cells and not topic_sources_available():
        print("topic documents (t1..t5) skipped: their sources, derivations/, are in the source checkout "
              "only", file=sys.stderr)  # fmt: skip
    if args.check:
        if changed:
            sys.stdout.write(diff)
            print(f"\n{len(changed)} file(s) in {where} differ from what the generator renders: "
                  f"{', '.join(changed)}", file=sys.stderr)  # fmt: skip
            if installed_generated_dir() is not None and out.resolve() == installed_generated_dir().resolve():
                print("The installed copy does not match this installation's generator: reinstall symlstm",
                      file=sys.stderr)  # fmt: skip
            else:
                print(f"Update them with: symlstm generate{f' --out {args.out}' if args.out else ''}",
                      file=sys.stderr)  # fmt: skip
            return 1
        print(f"{where} is up to date (checked in {elapsed:.1f} s)")
        return 0
    if changed:
        print(f"{len(changed)} file(s) written to {where} in {elapsed:.1f} s: {', '.join(changed)}")
    else:
        print(f"{where} is up to date, nothing written ({elapsed:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symlstm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"symlstm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="regenerate generated/ from the derivations")
    gen.add_argument("cells", nargs="*", help="cells to generate (default: all)")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff if out of date")
    gen.add_argument("--out", help="output directory (default: generated/ of the source checkout; "
                     "required outside one, where --check compares the installed copy)")  # fmt: skip
    gen.set_defaults(func=_generate)
    # Subcommands whose arguments live beside their implementation: module.add_arguments(parser)
    # declares them and module.cli_main(args) -> exit status runs them.
    for name, module, text in (
        ("verify", "verify", "run the verification ladder and print one table"),
        ("latex", "build.pdf", "render the derivation documents and build PDFs"),
        ("fuzz", "fuzz", "draw random cells and check that each comes out right"),
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
    except KeyboardInterrupt:
        print(f"symlstm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
