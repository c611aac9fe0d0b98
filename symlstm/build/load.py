"""`load(cell)`: the generated NumPy module of a cell, as a Python module object.

A built-in cell is imported from the package's own generated files (`symlstm.paths.generated_dir()`:
`generated/numpy/<name>.py` of the source checkout, or the copy installed inside the package); when
there is none, and for a user-defined `CellSpec`, the module is rendered from the derivation in memory.
The current working directory is never searched. Either way the module's only import is numpy.

A backend whose modules must run from a file (numba keeps the compiled kernels beside it) gets a rendered
module written to a file named by the hash of its source in the cache folder (`$SYMLSTM_CACHE_DIR`, else
`$XDG_CACHE_HOME/symlstm` or `~/.cache/symlstm`), and imported from there; where that folder cannot be
written, the module runs from memory and compiles in every process.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import linecache
import os
import sys
import tempfile
import types
from pathlib import Path

from ..backends import code_backend
from ..cells import cell as builtin_cell
from ..engine import derive
from ..paths import generated_dir
from ..spec import CellSpec

__all__ = ["cache_dir", "load", "module_from_source", "module_path"]

_MODULES: dict[tuple[str, str], types.ModuleType] = {}


def module_from_source(name: str, source: str, filename: str | None = None) -> types.ModuleType:
    """Execute generated source as a fresh module named `symlstm_generated.<name>`."""
    key = (name, hashlib.sha256(source.encode()).hexdigest())
    if key in _MODULES:
        return _MODULES[key]
    module = types.ModuleType(f"symlstm_generated.{name}")
    module.__file__ = filename or f"<symlstm generated {name}>"
    # the source where tracebacks and `inspect.getsource` look for it (`symlstm.arithmetic` copies it)
    linecache.cache[module.__file__] = (len(source), None, source.splitlines(keepends=True), module.__file__)
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    _MODULES[key] = module
    return module


def module_path(name: str, backend: str = "numpy") -> Path | None:
    """The package's generated file of built-in cell `name`, or None when the package has none."""
    folder = generated_dir()
    path = folder / backend / f"{name}.py" if folder is not None else None
    return path if path is not None and path.is_file() else None


def import_module_file(name: str, path: Path) -> types.ModuleType:
    mod_name = f"symlstm_generated.{name}"
    loaded = sys.modules.get(mod_name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    sys.modules[mod_name] = module
    return module


def cache_dir() -> Path:
    """The folder of rendered modules that run from a file: `$SYMLSTM_CACHE_DIR`, else
    `$XDG_CACHE_HOME/symlstm`, else `~/.cache/symlstm`."""
    if os.environ.get("SYMLSTM_CACHE_DIR"):
        return Path(os.environ["SYMLSTM_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "symlstm"


def cached_module_file(backend: str, name: str, source: str) -> Path | None:
    """`<cache_dir>/<backend>/<name>_<hash of source>.py`, written once (atomically); None when the
    folder cannot be written."""
    folder = cache_dir() / backend
    path = folder / f"{name}_{hashlib.sha256(source.encode()).hexdigest()[:20]}.py"
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == source:
            return path  # written before (by this process or another): numba's cache beside it is kept
        folder.mkdir(parents=True, exist_ok=True)
        # A temporary file renamed into place: a reader sees the whole file or none.
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=".tmp")
    except OSError:
        return None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(source)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return None
    return path


def load(spec: str | CellSpec, *, backend: str = "numpy", fresh: bool = False) -> types.ModuleType:
    """The generated module of a built-in cell name or of a `CellSpec`.

    `backend`: a name of `symlstm.backends.CODE_BACKENDS`: "numpy" (the optimised module, default),
    "reference" (one statement per equation), ... `fresh=True` renders from the derivation even when a
    generated file exists.
    """
    target = code_backend(backend)  # an unknown name raises ValueError listing the known ones
    if isinstance(spec, str):
        name = spec
        spec = builtin_cell(name)  # unknown names raise a SpecError listing the known cells
        path = module_path(name, backend)
        if path is not None and not fresh:
            return import_module_file(f"{backend}.{name}", path)
    if not isinstance(spec, CellSpec):
        raise TypeError(f"load() expects a cell name or a CellSpec, got {type(spec).__name__}")
    source = target.render(derive(spec))
    if target.from_file:
        path = cached_module_file(backend, spec.name, source)
        if path is not None:
            return import_module_file(f"{backend}.{path.stem}", path)
    return module_from_source(f"{backend}.{spec.name}", source)
