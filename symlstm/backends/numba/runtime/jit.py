"""Runtime of every generated numba module: numba itself, found when the module is imported.

The module imports without numba (every target renders and imports on any machine); its kernels then
raise ImportError naming the extra that installs numba when they are called. The compiled kernels are
cached on disk beside the module's file (numba's cache, as `cache=True` keeps it), so a process pays
the JIT once per machine; a module executed from a string has no file, and compiles in every process.

A kernel loaded from numba's cache imports, by name, the module that compiled it (numba rebuilds the
kernel's globals from it). So the cache keeps the kernels of each module name apart, and serves a
module only under a name `sys.modules` finds it by: the same file imported as `gru` by one program and
through `symlstm.load` by another gets each its own entry, and a module executed from a file under a
name it is not registered by compiles in every process, as one from a string does.
"""

import os
import sys

import numpy as np

CELL = "cell"  # stand-in for the constant each generated module defines before this point

# -- generated modules include this file from the next line on --
try:
    import numba
    from numba.extending import get_cython_function_address as _cython_function_address

    _cython_function_address("scipy.linalg.cython_blas", "dgemm")  # the BLAS where numpy's is not found
except ImportError as _error:
    numba = None
    _MISSING = str(_error)

# numba caches compiled kernels beside a module's file; a module run from a string has none.
_CACHE = os.path.isfile(__file__)

try:
    from numba.core.caching import FunctionCache as _FunctionCache
except ImportError:  # no numba, or a numba that moved it: the kernels compile in every process
    _FunctionCache = None

if _FunctionCache is not None:

    class _ModuleNameCache(_FunctionCache):
        """numba's on-disk cache of one function, keyed by its module's name as well, and used only
        while that name finds the module in `sys.modules` (see the docstring above)."""

        def _module_name(self):
            return self._py_func.__globals__.get("__name__")

        def _findable(self):
            module = sys.modules.get(self._module_name())
            return module is not None and getattr(module, "__dict__", None) is self._py_func.__globals__

        def _index_key(self, sig, codegen):
            return (*super()._index_key(sig, codegen), self._module_name())

        def load_overload(self, sig, target_context):
            if not self._findable():
                return None
            try:
                return super().load_overload(sig, target_context)
            except ImportError:  # an entry recorded under another name (two processes saving at once)
                return None

        def save_overload(self, sig, data):
            if self._findable():
                super().save_overload(sig, data)


def _compiled(function):
    """`function` compiled by numba when first called, with IEEE division (inf and NaN, no exception)
    as NumPy, and cached on disk by module name when the module is a file."""
    dispatcher = numba.njit(error_model="numpy")(function)
    if _CACHE and _FunctionCache is not None:
        dispatcher._cache = _ModuleNameCache(function)  # what numba's cache=True sets, keyed by name
    return dispatcher


def _missing(function):
    """A stand-in for a kernel when numba is not installed: calling it says what to install."""

    def kernel(*args):
        raise ImportError(
            f"{CELL}: the numba backend needs numba and scipy ({_MISSING}); "
            "install them with: pip install 'symlstm[numba]'"
        )

    kernel.__name__ = function.__name__
    return kernel


def _jit(function):
    """A kernel: `function` compiled by numba when first called (see `_compiled`)."""
    if numba is None:
        return _missing(function)
    return _compiled(function)


def _jit_helper(function):
    """A function the kernels call, compiled with them (left as it is without numba: never called)."""
    if numba is None:
        return function
    return _compiled(function)


def _steps_past(mask, T, B):
    """The kernels' (T, B) flags of the steps past each sequence's length, from `_past`'s (T, B, 1)
    mask or None (no step is past)."""
    if mask is None:
        return np.zeros((T, B), dtype=np.bool_)
    return np.ascontiguousarray(mask[:, :, 0])


def _kernel_array(array):
    """`array` as the kernels take it: C-contiguous and writeable (else a copy), so that every call has
    the argument types of the first and nothing is compiled twice."""
    if array.flags.c_contiguous and array.flags.writeable:
        return array
    return np.array(array, order="C")
