"""Runtime of every generated NumPy module: conversion from and to torch.nn and Keras, initialisers.

The template renders this file from the marker below into each module (`{{ }}` in docstrings are filled
in per cell). The constants it reads (TORCH_MODULE, TORCH_NAMES, KERAS_WEIGHTS, RECURRENT, GATES, ...)
are the module's own.
"""

import numpy as np

# Stand-ins for the constants and functions each generated module defines before this point, so that
# this file reads (and lints) on its own.
CELL = "cell"
STATES: tuple = ()
BLOCKS: dict = {}
SAME_SIZE = False
_DTYPES = (np.float32, np.float64)
TORCH_MODULE = None
TORCH_NAMES: dict = {}
KERAS_LAYER = None
KERAS_WEIGHTS: tuple = ()
RECURRENT: tuple = ()
GATES: dict = {}


def param_shapes(input_size, hidden_size, **sizes): ...
def init_params(input_size, hidden_size, *, seed=0, dtype=np.float64, **sizes): ...
def _check_params(params, what="params", like=None): ...
def _check_array(value, name, shape, dtype): ...
def _check_dtype(dtype, what): ...
def _check_sizes(input_size, hidden_size, **sizes): ...


# -- generated modules include this file from the next line on --


def from_torch(state_dict, layer=0, reverse=None):
    """Parameters from layer `layer` of a {{ m.torch.module_text }} state dict (numpy arrays or CPU tensors).

    A stacked module (num_layers=L) is L of these cells, layer k reading the output y of layer k - 1:
    convert each layer with `layer=k` and run `forward` layer after layer. A bidirectional module has
    two cells per layer: `reverse=False` converts the forward direction, `reverse=True` the backward
    one (its `_reverse` entries; run it over the reversed sequence); without `reverse` such a state
    dict is refused rather than converted in part.{{ m.torch.missing }}
    """
    names = _torch_names(layer)
    reversed_keys = [f"{theirs}_reverse" for theirs in names if f"{theirs}_reverse" in state_dict]
    if reverse is None and reversed_keys:
        raise ValueError(
            f"{CELL}.from_torch: the state dict is bidirectional (it has {reversed_keys[0]}): pass "
            "reverse=False for the forward direction or reverse=True for the backward one"
        )
    if reverse:
        names = {f"{theirs}_reverse": ours for theirs, ours in names.items()}
    missing = [name for name in names if name not in state_dict]
    if missing:
        raise KeyError(f"{CELL}.from_torch: state dict lacks {missing}; expected keys {list(names)}")
    return {ours: _copy_of(state_dict[theirs], theirs) for theirs, ours in names.items()}


def _copy_of(value, key):
    """A new numpy array with the values of a state-dict entry: an array, or a torch tensor (on any
    device, requiring grad or not) read through its own .numpy(), not NumPy's __array__ protocol."""
    if type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach"):
        try:
            value = value.detach().cpu().numpy()
        except TypeError as err:  # a dtype numpy lacks (bfloat16)
            raise TypeError(
                f"{CELL}.from_torch: state_dict[{key!r}] has no numpy dtype ({err}); convert the module "
                "with .float() or .double() first"
            ) from None
    return np.array(value, copy=True)


def to_torch(params, layer=0, reverse=False):
    """The entries of layer `layer` of a {{ m.torch.module_text }} state dict (numpy arrays) from these
    parameters; with `reverse=True` the backward direction's entries of a bidirectional module."""
    names = _torch_names(layer)
    if reverse:
        names = {f"{theirs}_reverse": ours for theirs, ours in names.items()}
    _check_params(params)
    return {theirs: np.array(params[ours], copy=True) for theirs, ours in names.items()}


def _torch_names(layer):
    if TORCH_MODULE is None:
        raise NotImplementedError(f"{CELL}: torch.nn has no counterpart of this cell (it has RNN, LSTM, GRU)")
    if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or layer < 0:
        raise ValueError(f"{CELL}: layer must be a non-negative integer, got {layer!r}")
    return {theirs.removesuffix("_l0") + f"_l{layer}": ours for theirs, ours in TORCH_NAMES.items()}


def from_keras(weights):
    """Parameters from the weights of {{ io.keras_layer_text }}.

    Args:
        weights: `layer.get_weights()`, the list [kernel (I, G*H), recurrent_kernel (H, G*H), bias] in
            Keras's gate order, or a dict by those names; one float dtype. A Keras bias that stands for
            a sum of two parameters here (b_ih + b_hh) goes to the first, the second is zero.
    """
    _keras_check()
    if isinstance(weights, dict):
        missing = [name for name, _ in KERAS_WEIGHTS if name not in weights]
        if missing:
            expected = [n for n, _ in KERAS_WEIGHTS]
            raise KeyError(f"{CELL}.from_keras: weights lack {missing}; expected {expected}")
        arrays = [np.asarray(weights[name]) for name, _ in KERAS_WEIGHTS]
    else:
        arrays = [np.asarray(w) for w in weights]
        if len(arrays) != len(KERAS_WEIGHTS):
            raise ValueError(
                f"{CELL}.from_keras: expected {len(KERAS_WEIGHTS)} arrays "
                f"{[n for n, _ in KERAS_WEIGHTS]}, got {len(arrays)}"
            )
    kernel, blocks = arrays[0], len(KERAS_WEIGHTS[0][1][0])
    if kernel.ndim != 2 or kernel.shape[1] % blocks or kernel.shape[1] == 0:
        raise ValueError(f"{CELL}.from_keras: kernel must have shape (I, {blocks} * H), got {kernel.shape}")
    I, H = kernel.shape[0], kernel.shape[1] // blocks
    dtype = _check_dtype(kernel.dtype, "kernel")
    params = {name: np.zeros(shape, dtype=dtype) for name, shape in param_shapes(I, H).items()}
    for (name, rows), array in zip(KERAS_WEIGHTS, arrays):
        first = _member(params, rows[0][0][0])
        width = len(rows[0]) * H
        if first.ndim == 2:
            shape = (first.shape[1], width)
        else:
            shape = (width,) if len(rows) == 1 else (len(rows), width)
        _check_array(array, f"keras {name}", shape, dtype)
        for r, row in enumerate(rows):
            for k, members in enumerate(row):
                cols = (array if len(rows) == 1 else array[r])[..., k * H : (k + 1) * H]
                _member(params, members[0])[...] = cols.T if first.ndim == 2 else cols
    return params


def to_keras(params):
    """The weights of {{ io.keras_layer_text }}, [kernel, recurrent_kernel, bias] as `layer.set_weights`
    takes them."""
    _keras_check()
    _check_params(params)
    out = []
    for _name, rows in KERAS_WEIGHTS:
        built = []
        for row in rows:
            blocks = [sum(_member(params, m) for m in members) for members in row]
            built.append(np.concatenate([b.T if b.ndim == 2 else b for b in blocks], axis=-1))
        out.append(built[0] if len(built) == 1 else np.stack(built))
    return out


def _keras_check():
    if KERAS_LAYER is None:
        raise NotImplementedError(f"{CELL}: Keras has no layer computing this cell")


def _member(params, name):
    """The view of the parameter block `name` inside its stored (fused) array."""
    for group, members in BLOCKS.items():
        if name in members:
            array = params[group]
            H = array.shape[0] // len(members)
            k = members.index(name)
            return array[k * H : (k + 1) * H]
    raise KeyError(name)


def initialize(
    input_size,
    hidden_size,
    *,
    scheme="pytorch",
    forget_bias=None,
    chrono=None,
    seed=0,
    dtype=np.float64,
    **sizes,
):
    """Parameters under a named initialisation convention.

    Args:
        input_size, hidden_size: I and H (and the cell's other sizes by keyword, as init_params takes
            them).
        scheme: "pytorch", PyTorch's default, identical to `init_params`: every parameter uniform in
            (-1/sqrt(H), 1/sqrt(H)); or "orthogonal", Keras's defaults: each fused input-weight array
            glorot uniform (limit sqrt(6 / (rows + cols))), every H x H recurrent block orthogonal (QR of a
            Gaussian, signs fixed; Keras makes the whole (H, G*H) recurrent kernel row-orthonormal
            instead), biases and peepholes zero.
        forget_bias: then set the effective bias of the keep gate (GATES["keep"]: an LSTM's forget gate)
            to this value: its first bias is the value and the others zero (1.0: Jozefowicz et al. 2015,
            Keras unit_forget_bias).
        chrono: T_max > 2: chrono initialisation (Tallec & Ollivier 2018): the keep gate's bias is
            log(U[1, T_max - 1]) per coordinate and the write gate's (GATES["write"]) its negative.
        seed: seed of the draws; dtype: float32 or float64.
    """
    if scheme == "pytorch":
        params = init_params(input_size, hidden_size, seed=seed, **sizes)
    elif scheme == "orthogonal":
        _check_sizes(input_size, hidden_size, **sizes)
        rng = np.random.default_rng(seed)
        params = {}
        for name, shape in param_shapes(input_size, hidden_size, **sizes).items():
            if len(shape) == 1:
                params[name] = np.zeros(shape)
            elif BLOCKS[name][0] in RECURRENT:
                params[name] = np.concatenate([_orthogonal(rng, hidden_size) for _ in BLOCKS[name]])
            else:
                limit = np.sqrt(6.0 / (shape[0] + shape[1]))
                params[name] = rng.uniform(-limit, limit, size=shape)
    else:
        raise ValueError(f"{CELL}: scheme must be 'pytorch' or 'orthogonal', got {scheme!r}")
    dtype = _check_dtype(np.dtype(dtype), "dtype")
    if forget_bias is not None and chrono is not None:
        raise ValueError(f"{CELL}: give forget_bias or chrono, not both")
    if forget_bias is not None:
        if not GATES["keep"]:
            raise ValueError(f"{CELL}: forget_bias needs a gate that keeps the old state; this cell has none")
        _set_bias(params, GATES["keep"], float(forget_bias))
    if chrono is not None:
        number = isinstance(chrono, (int, float, np.integer, np.floating)) and not isinstance(chrono, bool)
        if not number or not chrono > 2:
            raise ValueError(f"{CELL}: chrono must be the largest time scale T_max > 2, got {chrono!r}")
        if not GATES["keep"] and not GATES["write"]:
            raise ValueError(f"{CELL}: chrono needs a keep or write gate; this cell has neither")
        rng = np.random.default_rng([seed, 1])
        gate = (GATES["keep"] or GATES["write"])[0]
        bias = np.log(rng.uniform(1.0, float(chrono) - 1.0, size=_member(params, gate).shape))
        if GATES["keep"]:
            _set_bias(params, GATES["keep"], bias)
        if GATES["write"]:
            _set_bias(params, GATES["write"], -bias)
    return {name: value.astype(dtype) for name, value in params.items()}


def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def _set_bias(params, members, value):
    """Make the sum of the bias blocks `members` equal `value`: the first takes it, the others are 0."""
    for k, name in enumerate(members):
        _member(params, name)[...] = value if k == 0 else 0.0
