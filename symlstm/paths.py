"""Where the source checkout is, when the package runs from one."""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkout_root"]


def checkout_root() -> Path | None:
    """The source checkout holding this package (with `pyproject.toml` and `symlstm/`), else None."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "symlstm").is_dir():
        return root
    return None
