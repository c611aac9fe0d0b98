"""Runtime of every generated NumPy module: the caller's workspace and the cache's fingerprint.

The template renders this file from the marker below into each module; the constants it reads are the
module's own.
"""

import numpy as np

# Stand-ins for the constants and functions each generated module defines before this point, so that
# this file reads (and lints) on its own.
CELL = "cell"
STATES: tuple = ()
BLOCKS: dict = {}
SAME_SIZE = False
_DTYPES = (np.float32, np.float64)


def _describe(value): ...


# -- generated modules include this file from the next line on --


def _check_workspace(workspace):
    if workspace is not None and not isinstance(workspace, dict):
        raise TypeError(
            f"{CELL}: workspace must be a dict kept across calls, or None; got {_describe(workspace)}"
        )
    return workspace


def _array(workspace, key, shape, dtype):
    """np.empty(shape, dtype), or the array kept under `key` in the workspace, reused when it fits."""
    if workspace is None:
        return np.empty(shape, dtype=dtype)
    array = workspace.get(key)
    if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
        array = workspace[key] = np.empty(shape, dtype=dtype)
    return array


def _claim(workspace):
    """Mark the workspace's forward arrays as those of a new cache: (workspace, generation) or None."""
    if workspace is None:
        return None
    workspace["forward.generation"] = workspace.get("forward.generation", 0) + 1
    return (workspace, workspace["forward.generation"])


def _fingerprint(params, x, y=None):
    """Identity, shape and the XOR of the bit patterns of each array backward reads that the caller
    holds (the parameters, x, and y where it is a view of the cache): another array or an in-place
    change shows (a change to any one element flips a bit of the XOR)."""
    arrays = [params[name] for name in BLOCKS] + [x] + ([] if y is None else [y])
    return tuple((id(a), a.shape, int(np.bitwise_xor.reduce(_bits(a)))) for a in arrays)


def _bits(array):
    """The elements of a float32 or float64 array as unsigned integers of the same width, flat."""
    flat = np.ascontiguousarray(array).reshape(-1)
    return flat.view(np.uint32 if flat.itemsize == 4 else np.uint64)


def _check_cache(cache, params, x_name="x"):
    keys = ("cell", "params", "fingerprint", x_name)
    if not isinstance(cache, dict) or any(k not in cache for k in keys):
        got = f"a dict with keys {list(cache)}" if isinstance(cache, dict) else _describe(cache)
        raise ValueError(f"{CELL}: backward needs the cache returned by {CELL}.forward, got {got}")
    if cache["cell"] != CELL:
        raise ValueError(f"{CELL}: backward got the cache of cell {cache['cell']!r}, not of {CELL}.forward")
    if not isinstance(cache["params"], dict):
        raise ValueError(f"{CELL}: backward needs the cache returned by {CELL}.forward, got a damaged one")
    claim = cache.get("workspace")
    if claim is not None and claim[0].get("forward.generation") != claim[1]:
        raise ValueError(
            f"{CELL}: the arrays of this cache were reused by a later forward with the same workspace; "
            "run forward again, or give each forward whose cache you keep a workspace of its own"
        )
    other = [name for name in BLOCKS if cache["params"].get(name) is not params[name]]
    if other:
        raise ValueError(
            f"{CELL}: backward got other parameter arrays ({other}) than the forward pass that made the "
            "cache; call backward with the same params dict as forward"
        )
    now = _fingerprint(params, cache[x_name], cache.get("y"))
    if now != cache["fingerprint"]:
        changed = [
            name for name, old, new in zip([*BLOCKS, "x", "y"], cache["fingerprint"], now) if old != new
        ]
        also = (
            " (y is read-only because backward reads it: copy it to write into it)" if "y" in changed else ""
        )
        raise ValueError(
            f"{CELL}: {changed} changed in place between forward and backward; the cache no longer matches "
            f"them (run forward again, or update the parameters after backward){also}"
        )
