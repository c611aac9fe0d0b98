"""Runtime of every generated NumPy module: input validation and the finite-value checks.

Every error names the argument, what was expected and what was given. The template renders this file
from the marker below into each module; the constants it reads are the module's own.
"""

import numpy as np

# Stand-ins for the constants and functions each generated module defines before this point, so that
# this file reads (and lints) on its own.
CELL = "cell"
STATES: tuple = ()
BLOCKS: dict = {}
SAME_SIZE = False
SIZES: dict = {"I": "input_size", "H": "hidden_size"}
STATE_SIZES: tuple = ()
OUTPUT_SIZE = "H"
_DTYPES = (np.float32, np.float64)
_SHAPE_TEXT: dict = {}


def param_shapes(input_size, hidden_size, **sizes): ...


# -- generated modules include this file from the next line on --


# -- input validation: every error names the argument, what was expected and what was given --------


def _check_sizes(input_size, hidden_size, **sizes):
    """The sizes as a dict by label ({"I": .., "H": .., "P": ..}), each checked to be a positive integer;
    `sizes` must be exactly the cell's other sizes, by keyword (proj_size=...)."""
    extra = [keyword for label, keyword in SIZES.items() if label not in ("I", "H")]
    if sorted(sizes) != sorted(extra):
        missing, unknown = sorted(set(extra) - set(sizes)), sorted(set(sizes) - set(extra))
        raise TypeError(
            f"{CELL}: the sizes are input_size, hidden_size{''.join(', ' + k for k in extra)}; "
            + (f"missing {missing}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown {unknown}" if unknown else "")
        )
    given = {"input_size": input_size, "hidden_size": hidden_size, **sizes}
    for name, value in given.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{CELL}: {name} must be a positive integer, got {value!r}")
    if SAME_SIZE and input_size != hidden_size:
        raise ValueError(f"{CELL}: needs input_size == hidden_size, got {input_size} and {hidden_size}")
    return {label: int(given[keyword]) for label, keyword in SIZES.items()}


def _shapes_at(dims):
    """param_shapes at the sizes `dims` (a dict by label)."""
    extra = {keyword: dims[label] for label, keyword in SIZES.items() if label not in ("I", "H")}
    return param_shapes(dims["I"], dims["H"], **extra)


def _check_dtype(dtype, what):
    if dtype not in _DTYPES:
        raise TypeError(f"{CELL}: {what} must be float32 or float64, got {dtype}")
    return dtype


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _not_an_array(value):
    """What `value` is, where a numpy array was expected, and how to make one of it."""
    kind = type(value)
    if kind.__module__.split(".")[0] == "torch":  # torch is never imported: its types are named
        return f"a torch {kind.__name__} (convert it with .detach().cpu().numpy())"
    if isinstance(value, (list, tuple, int, float)):
        return f"a {kind.__name__} (make it an array with np.asarray)"
    return _describe(value)


def _axis_sizes():
    """{parameter: ((label, blocks) of each axis)}: every axis of a stored parameter is a number of blocks
    of one size, which probing param_shapes with that size at 2 and the others at 1 tells (computed
    once per module: the answer is the cell's)."""
    if not _AXIS_SIZES:
        one = _shapes_at(dict.fromkeys(SIZES, 1))
        wide = {label: _shapes_at({k: 2 if k == label else 1 for k in SIZES}) for label in SIZES}
        for name, shape in one.items():
            axes = []
            for axis in range(len(shape)):
                grown = [(label, wide[label][name][axis] - shape[axis]) for label in SIZES]
                axes.append(next((label, blocks) for label, blocks in grown if blocks))
            _AXIS_SIZES[name] = tuple(axes)
    return _AXIS_SIZES


_AXIS_SIZES: dict = {}


def _infer_sizes(params, what):
    """(dims, votes): each size (by label) as most parameter shapes give it, and which gave which."""
    axes = _axis_sizes()
    votes = {label: {} for label in SIZES}
    for name in BLOCKS:
        value = params[name]
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"{CELL}: {what}[{name!r}] must be a numpy array of shape {_SHAPE_TEXT[name]}, "
                f"got {_not_an_array(value)}"
            )
        if value.ndim != len(axes[name]):
            raise ValueError(
                f"{CELL}: {what}[{name!r}] must be a {len(axes[name])}-D array of shape "
                f"{_SHAPE_TEXT[name]}, got {_describe(value)}"
            )
        for n, (label, blocks) in zip(value.shape, axes[name]):
            if n % blocks == 0:
                votes[label].setdefault(n // blocks, []).append(name)
    if not votes["H"]:
        raise ValueError(f"{CELL}: cannot read the hidden size off {what}: {_shapes(params)}")
    dims = {label: max(v, key=lambda k, v=v: len(v[k])) for label, v in votes.items() if v}
    dims.setdefault("I", dims["H"])  # x only read elementwise: I == H
    return dims, votes


def _sizes_text(dims, votes=None):
    """Where each size came from, for an error message: "input size 3 from the shapes of ['W_ih'], ..."."""
    if votes is None:
        return (
            ", ".join(f"{SIZES[label].replace('_', ' ')} {n}" for label, n in dims.items()) + " as in params"
        )
    texts = [f"{SIZES[label].replace('_', ' ')} {dims[label]} from the shapes of "
             f"{sorted(set(votes[label][dims[label]]))}" for label in SIZES if votes[label]]  # fmt: skip
    return ", ".join(texts)


def _shapes(params):
    return {name: getattr(value, "shape", type(value).__name__) for name, value in params.items()}


def _check_params(params, what="params", like=None):
    """(dims, dtype) of a parameter dict, dims its sizes by label ({"I": 3, "H": 4}); `like=(dims,
    dtype)` checks it against known sizes instead."""
    if not isinstance(params, dict):
        raise TypeError(f"{CELL}: {what} must be a dict of arrays {list(BLOCKS)}, got {_describe(params)}")
    missing = [name for name in BLOCKS if name not in params]
    extra = [name for name in params if name not in BLOCKS]
    if missing or extra:
        raise ValueError(
            f"{CELL}: {what} must have the keys {list(BLOCKS)}, got {list(params)} "
            f"(missing {missing}, unexpected {extra})"
        )
    if like is None:
        dims, votes = _infer_sizes(params, what)
        first = next(iter(BLOCKS))
        dtype = _check_dtype(params[first].dtype, f"{what}[{first!r}] dtype")
        if min(dims.values()) < 1:
            raise ValueError(f"{CELL}: {what} describe an empty cell ({_sizes_text(dims, votes)})")
        if SAME_SIZE and dims["I"] != dims["H"]:
            raise ValueError(f"{CELL}: needs input size == hidden size, got {_sizes_text(dims, votes)}")
    else:
        (dims, dtype), votes = like, None
    for name, shape in _shapes_at(dims).items():
        value = params[name]
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"{CELL}: {what}[{name!r}] must be a numpy array {shape}, got {_not_an_array(value)}"
            )
        if value.shape != shape:
            where = _sizes_text(dims, votes)
            raise ValueError(f"{CELL}: {what}[{name!r}] must have shape {shape} ({where}), got {value.shape}")
        if value.dtype != dtype:
            raise TypeError(
                f"{CELL}: {what}[{name!r}] must have dtype {dtype} like {what}[{next(iter(BLOCKS))!r}], "
                f"got {value.dtype}"
            )
    return dims, dtype


def _check_array(value, name, shape, dtype):
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{CELL}: {name} must be a numpy array of shape {shape}, got {_not_an_array(value)}")
    if value.shape != shape:
        raise ValueError(f"{CELL}: {name} must have shape {shape}, got {value.shape}")
    if value.dtype != dtype:
        raise TypeError(f"{CELL}: {name} must have dtype {dtype} like the parameters, got {value.dtype}")
    return value


def _check_dy(dy, T, B, dims, dtype):
    """The gradient of the loss with respect to y, (T, B, size of y); zeros for None (no loss on y)."""
    shape = (T, B, dims[OUTPUT_SIZE])
    return np.zeros(shape, dtype=dtype) if dy is None else _check_array(dy, "dy", shape, dtype)


def _check_input(x, I, dtype):
    """x as a C-contiguous (T, B, I) array (a copy only when it is not one already)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{CELL}: x must be a numpy array of shape (T, B, {I}), got {_not_an_array(x)}")
    if x.ndim != 3 or x.shape[2] != I:
        raise ValueError(f"{CELL}: x must have shape (T, B, {I}) (time-major), got {x.shape}")
    _check_array(x, "x", x.shape, dtype)
    return np.ascontiguousarray(x)


def _check_state(state, name, B, dims, dtype, default=0):
    """A tuple of (B, size) arrays, one per state at its size (STATE_SIZES), zeros for None (or None
    with `default=None`)."""
    shapes = [(B, dims[label]) for label in STATE_SIZES]
    if state is None:
        if default is None:
            return None
        return tuple(np.zeros(shape, dtype=dtype) for shape in shapes)
    if not isinstance(state, (tuple, list)) or len(state) != len(STATES):
        if set(STATE_SIZES) == {"H"}:
            wanted = f"(B, H) = ({B}, {dims['H']}) arrays {STATES}"
        else:
            wanted = "arrays (" + ", ".join(f"{st} {shape}" for st, shape in zip(STATES, shapes)) + ")"
        raise ValueError(
            f"{CELL}: {name} must be a tuple of {len(STATES)} {wanted}, "
            f"got {_describe(state) if not isinstance(state, (tuple, list)) else f'{len(state)} items'}"
        )
    return tuple(_check_array(s, f"{name}[{k}] ({STATES[k]})", shapes[k], dtype) for k, s in enumerate(state))


def _check_lengths(lengths, T, B):
    """`lengths` (B integers in [0, T], one per sequence of the batch) as an int64 array, or None."""
    if lengths is None:
        return None
    if isinstance(lengths, (str, bytes, dict)) or not hasattr(lengths, "__len__"):
        raise TypeError(
            f"{CELL}: lengths must be B = {B} integers (one per sequence), got {_describe(lengths)}"
        )
    array = np.asarray(lengths)
    if array.shape != (B,):
        raise ValueError(
            f"{CELL}: lengths must be B = {B} integers (one per sequence), got shape {array.shape}"
        )
    if array.dtype.kind not in "iu":
        raise TypeError(f"{CELL}: lengths must be integers, got dtype {array.dtype}")
    if B and (array.min() < 0 or array.max() > T):
        raise ValueError(
            f"{CELL}: lengths must lie in [0, T] = [0, {T}], got values from {array.min()} to {array.max()}"
        )
    return array.astype(np.int64)


def _past(lengths, T, B):
    """The (T, B, 1) mask of the steps past each sequence's length, or None where every step counts."""
    lengths = _check_lengths(lengths, T, B)
    if lengths is None or bool((lengths == T).all()):
        return None
    return (np.arange(T)[:, None] >= lengths[None, :])[:, :, None]


def _named(arrays, what):
    """[(label, array)] for a params dict or a state tuple (None gives [])."""
    if arrays is None:
        return []
    if isinstance(arrays, dict):
        return [(f"{what}[{name!r}]", arrays[name]) for name in BLOCKS]
    return [(f"{what}[{k}] ({STATES[k]})", a) for k, a in enumerate(arrays)]


def _first_bad(array, last=False):
    """Index of the first (or last) non-finite entry in C order, or None."""
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size == 0:
        return None
    return tuple(int(k) for k in np.unravel_index(bad[-1] if last else bad[0], array.shape))


def _check_finite(function, kind, sequences, whole, states, backward=False):
    """Raise FloatingPointError naming the first non-finite value, by time step.

    `sequences` are (T, ...) arrays; `whole` (parameters) act at every step; `states` act at the first
    step processed (t = 0, or t = T - 1 when `backward`). Steps count in processing order.
    """
    found = []  # (processing order, step, label, index, value)
    for label, array in sequences:
        index = _first_bad(array, last=backward)
        if index is not None:
            T = array.shape[0]
            found.append((T - 1 - index[0] if backward else index[0], index[0], label, index, array[index]))
    for label, array in list(whole) + list(states):
        index = _first_bad(array)
        if index is not None:
            step = max(sequences[0][1].shape[0] - 1, 0) if backward else 0
            found.append((0, step, label, index, array[index]))
    if found:
        _, step, label, index, value = min(found, key=lambda f: f[0])
        where = ", ".join(str(k) for k in index)
        others = sorted({f[2] for f in found} - {label})
        also = f"; also non-finite: {', '.join(others)}" if others else ""
        direction = " (backward runs from the last step down)" if backward else ""
        raise FloatingPointError(
            f"{CELL}.{function}(check_finite=True): non-finite {kind} first at step t={step}{direction}: "
            f"{label}[{where}] = {value}{also}"
        )
