"""Where the package's files are: the source checkout it runs from, or the copy installed with it.

Nothing here ever looks in the current working directory: a `generated/` folder beside the caller's
script is the caller's, not the package's.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkout_root", "generated_dir", "installed_generated_dir"]

PACKAGE_DIR = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The source checkout holding this package (with `pyproject.toml` and `symlstm/`), else None."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "symlstm").is_dir():
        return root
    return None


def installed_generated_dir() -> Path | None:
    """`symlstm/generated/`, the copy of `generated/` a wheel installs inside the package, else None."""
    folder = PACKAGE_DIR / "generated"
    return folder if folder.is_dir() else None


def generated_dir() -> Path | None:
    """The generated modules and documents this package uses: `generated/` of the source checkout it
    runs from (the source of truth, as `symlstm generate` last wrote it), else the installed copy, else
    None."""
    root = checkout_root()
    if root is not None and (root / "generated").is_dir():
        return root / "generated"
    return installed_generated_dir()
