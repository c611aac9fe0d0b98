"""Runtime of every generated NumPy-contract module: stacked and bidirectional runs of the cell.

What torch.nn.LSTM/GRU/RNN(num_layers=L, bidirectional=...) computes, built from the module's own
`forward` and `backward`: layer k > 0 reads the previous layer's output, the directions concatenated;
the reverse direction runs over each sequence backwards from its last step (its length's, with
`lengths=`, as a PackedSequence does). Parameters are nested lists, `layers[k][d]` the dict of layer k,
direction d (d = 1 the reverse one); states keep torch's layout, (L * D, B, H) with index k * D + d.
The template renders this file from the marker below into each module.
"""

import numpy as np

# Stand-ins for the constants and functions each generated module defines before this point, so that
# this file reads (and lints) on its own.
CELL = "cell"
STATES: tuple = ()
SAME_SIZE = False
STATE_SIZES: tuple = ()
OUTPUT_SIZE = "H"


def init_params(input_size, hidden_size, *, seed=0, dtype=np.float64, **sizes): ...
def forward(params, x, state0=None, *, lengths=None, check_finite=False, workspace=None): ...
def backward(params, cache, dy, dstate=None, *, check_finite=False, workspace=None): ...
def from_torch(state_dict, layer=0, reverse=None): ...
def to_torch(params, layer=0, reverse=False): ...
def _torch_names(layer): ...
def _check_params(params, what="params", like=None): ...
def _check_array(value, name, shape, dtype): ...
def _check_input(x, I, dtype): ...
def _check_lengths(lengths, T, B): ...
def _check_sizes(input_size, hidden_size, **sizes): ...
def _check_workspace(workspace): ...
def _describe(value): ...


# -- generated modules include this file from the next line on --


def init_layers(
    input_size, hidden_size, num_layers=1, *, bidirectional=False, seed=0, dtype=np.float64, **sizes
):
    """Parameters of a stack of L = num_layers layers (two directions each when bidirectional), each
    drawn as `init_params` draws them (seed + k * D + d for layer k, direction d): `layers[k][d]`.
    Layer 0 reads input_size, every other layer D times the size of y (D = 2 when bidirectional);
    `sizes` are the cell's other sizes, as init_params takes them."""
    if not isinstance(num_layers, (int, np.integer)) or isinstance(num_layers, bool) or num_layers < 1:
        raise ValueError(f"{CELL}: num_layers must be a positive integer, got {num_layers!r}")
    if not isinstance(bidirectional, bool):
        raise TypeError(f"{CELL}: bidirectional must be True or False, got {bidirectional!r}")
    D = 2 if bidirectional else 1
    width = D * _check_sizes(input_size, hidden_size, **sizes)[OUTPUT_SIZE]
    return [
        [
            init_params(input_size if k == 0 else width, hidden_size, seed=seed + k * D + d, dtype=dtype,
                        **sizes)
            for d in range(D)
        ]
        for k in range(num_layers)
    ]  # fmt: skip


def forward_layers(layers, x, state0=None, *, lengths=None, check_finite=False, workspace=None):
    """Run a stack of the cell over a sequence, as torch.nn computes num_layers and bidirectional.

    Args:
        layers: L lists of D parameter dicts (D = 1, or 2 for a bidirectional stack): `layers[k][d]`,
            layer 0 of input size I, the others of input size D times the size of y (`init_layers`,
            `from_torch_layers`).
        x: (T, B, I) inputs, time-major, same dtype as the parameters.
        state0: tuple of (L * D, B, size) initial states in the order of STATES (each at its size,
            STATE_SIZES), index k * D + d; zeros if None.
        lengths: B integers in [0, T] (as for `forward`): every layer and direction stops at each
            sequence's length, and the reverse direction starts at its last step.
        check_finite, workspace: as for `forward`, for every layer (a workspace keeps one per layer).

    Returns:
        y: (T, B, D * size of y) the last layer's outputs, the directions concatenated (forward first).
        state: tuple of (L * D, B, size) final states.
        cache: what `backward_layers` needs.
    """
    L, D, dims, dtype = _check_layers(layers)
    workspace = _check_workspace(workspace)
    x = _check_input(x, dims["I"], dtype)
    T, B = x.shape[0], x.shape[1]
    state0 = _check_layer_states(state0, "state0", L * D, B, dims, dtype)
    order = _reversal(lengths, T, B)
    caches, finals = [], []
    inputs = x
    for k in range(L):
        outputs = []
        for d in range(D):
            index = k * D + d
            start = None if state0 is None else tuple(s[index] for s in state0)
            sequence = inputs if d == 0 else _reversed(inputs, order)
            space = None if workspace is None else workspace.setdefault(f"layer {index}", {})
            y, state, cache = forward(layers[k][d], sequence, start, lengths=lengths,
                                      check_finite=check_finite, workspace=space)  # fmt: skip
            outputs.append(y if d == 0 else _reversed(y, order))
            finals.append(state)
            caches.append(cache)
        inputs = outputs[0] if D == 1 else np.concatenate(outputs, axis=2)
    state = tuple(np.stack([final[j] for final in finals]) for j in range(len(STATES)))
    cache = {"cell": CELL, "layers": caches, "shape": (L, D, T, B), "dims": dims, "order": order}
    return inputs, state, cache


def backward_layers(layers, cache, dy, dstate=None, *, check_finite=False, workspace=None):
    """Backpropagation through time over the stack of `forward_layers`.

    Args:
        layers: the parameters given to `forward_layers`.
        cache: the cache returned by `forward_layers`.
        dy: (T, B, D * size of y) gradient of the loss with respect to y, or None (no loss on y).
        dstate: tuple of (L * D, B, size) gradients arriving at the final states, or None.
        check_finite, workspace: as for `backward`, for every layer.

    Returns:
        dlayers: gradients with the structure of `layers` (`dlayers[k][d]`, dicts).
        dx: (T, B, I) gradient with respect to x.
        dstate0: tuple of (L * D, B, size) gradients with respect to the initial states.
    """
    L, D, dims, dtype = _check_layers(layers)
    workspace = _check_workspace(workspace)
    if not isinstance(cache, dict) or cache.get("cell") != CELL or "layers" not in cache:
        raise ValueError(f"{CELL}: cache must be the cache forward_layers returned, got {_describe(cache)}")
    if cache["shape"][:2] != (L, D) or cache["dims"] != dims:
        ours = ", ".join(f"{k}={v}" for k, v in {"L": L, "D": D, **dims}.items())
        theirs = ", ".join(f"{k}={v}" for k, v in {"L": cache["shape"][0], "D": cache["shape"][1],
                                                    **cache["dims"]}.items())  # fmt: skip
        raise ValueError(f"{CELL}: layers ({ours}) are not those of the cache ({theirs})")
    T, B = cache["shape"][2:4]
    H = dims[OUTPUT_SIZE]  # the size of each direction's y
    if dy is not None:
        dy = _check_array(dy, "dy", (T, B, D * H), dtype)
    dstate = _check_layer_states(dstate, "dstate", L * D, B, dims, dtype)
    order = cache["order"]
    dlayers = [[None] * D for _ in range(L)]
    dstate0 = [None] * (L * D)
    grad = dy  # of the loss with respect to the current layer's output
    for k in reversed(range(L)):
        total = None
        for d in range(D):
            index = k * D + d
            part = None if grad is None else np.ascontiguousarray(grad[:, :, d * H : (d + 1) * H])
            if d == 1 and part is not None:
                part = _reversed(part, order)
            arriving = None if dstate is None else tuple(s[index] for s in dstate)
            space = None if workspace is None else workspace.setdefault(f"layer {index}", {})
            dparams, dx, dstate0[index] = backward(layers[k][d], cache["layers"][index], part, arriving,
                                                   check_finite=check_finite, workspace=space)  # fmt: skip
            dlayers[k][d] = dparams
            dx = dx if d == 0 else _reversed(dx, order)
            total = dx if total is None else total + dx
        grad = total
    state = tuple(np.stack([s[j] for s in dstate0]) for j in range(len(STATES)))
    return dlayers, grad, state


def from_torch_layers(state_dict):
    """Every layer and direction of a torch.nn state dict (numpy arrays or tensors), as `layers[k][d]`.

    The number of layers and the directions are read off the keys; a key the cell does not use (the
    projection weight_hr of a proj_size module, a layer beyond a gap) is refused, not dropped.
    """
    if not hasattr(state_dict, "keys"):
        raise TypeError(
            f"{CELL}.from_torch_layers: state_dict must be a mapping, got {_describe(state_dict)}"
        )
    keys = set(state_dict.keys())
    count = 0
    while any(name in keys for name in _torch_names(count)):
        count += 1
    if count == 0:
        raise KeyError(f"{CELL}.from_torch_layers: state dict has no layer 0 ({list(_torch_names(0))})")
    D = 2 if any(f"{name}_reverse" in keys for name in _torch_names(0)) else 1
    layers = [[from_torch(state_dict, layer=k, reverse=bool(d) if D == 2 else None) for d in range(D)]
              for k in range(count)]  # fmt: skip
    suffixes = ("", "_reverse")[:D]
    used = {name + suffix for k in range(count) for name in _torch_names(k) for suffix in suffixes}
    unused = sorted(keys - used)
    if unused:
        raise ValueError(
            f"{CELL}.from_torch_layers: the state dict has entries this cell does not use: {unused} "
            f"(read {count} layer(s), {'bidirectional' if D == 2 else 'one direction'})"
        )
    return layers


def to_torch_layers(layers):
    """The torch.nn state dict (numpy arrays) of a stack `layers[k][d]`, as from_torch_layers reads it."""
    L, D, _, _ = _check_layers(layers)
    state_dict = {}
    for k in range(L):
        for d in range(D):
            state_dict.update(to_torch(layers[k][d], layer=k, reverse=bool(d)))
    return state_dict


def _check_layers(layers):
    """(L, D, dims, dtype) of a stack of parameter dicts `layers[k][d]` (dims: layer 0's sizes)."""
    if not isinstance(layers, (list, tuple)) or not layers:
        got = "an empty list" if isinstance(layers, (list, tuple)) else _describe(layers)
        raise TypeError(
            f"{CELL}: layers must be a non-empty list of layers, each a list of 1 or 2 parameter dicts "
            f"(one per direction), got {got}"
        )
    for k, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or len(layer) not in (1, 2):
            got = f"{len(layer)} items" if isinstance(layer, (list, tuple)) else _describe(layer)
            raise TypeError(
                f"{CELL}: layers[{k}] must be a list of 1 or 2 parameter dicts (one per direction), got {got}"
            )
    L, D = len(layers), len(layers[0])
    uneven = [k for k, layer in enumerate(layers) if len(layer) != D]
    if uneven:
        raise ValueError(
            f"{CELL}: every layer must have {D} direction(s) like layers[0]; layers[{uneven[0]}] has "
            f"{len(layers[uneven[0]])}"
        )
    dims, dtype = _check_params(layers[0][0], "layers[0][0]")
    width = D * dims[OUTPUT_SIZE]
    if SAME_SIZE and L > 1 and D == 2:
        raise ValueError(
            f"{CELL}: the cell needs input size == hidden size, which a bidirectional stack's layer 1 "
            f"(input size 2 * H = {width}) cannot have"
        )
    for k, layer in enumerate(layers):
        for d, params in enumerate(layer):
            size = dims["I"] if k == 0 else width
            _check_params(params, f"layers[{k}][{d}]", like=({**dims, "I": size}, dtype))
    return L, D, dims, dtype


def _check_layer_states(states, name, count, B, dims, dtype):
    """A tuple of (count, B, size) arrays, one per state at its size, or None."""
    if states is None:
        return None
    shapes = [(count, B, dims[label]) for label in STATE_SIZES]
    if not isinstance(states, (tuple, list)) or len(states) != len(STATES):
        got = f"{len(states)} items" if isinstance(states, (tuple, list)) else _describe(states)
        wanted = ", ".join(f"{st} {shape}" for st, shape in zip(STATES, shapes))
        raise ValueError(
            f"{CELL}: {name} must be a tuple of {len(STATES)} (L * D, B, size) arrays ({wanted}), got {got}"
        )
    return tuple(
        _check_array(s, f"{name}[{j}] ({STATES[j]})", shapes[j], dtype) for j, s in enumerate(states)
    )


def _reversal(lengths, T, B):
    """The (T, B) step index of the reverse direction (step t of sequence b reads step
    lengths[b] - 1 - t, and a step past its length stays in place), or None: every sequence is T long."""
    lengths = _check_lengths(lengths, T, B)
    if lengths is None or bool((lengths == T).all()):
        return None
    steps = np.arange(T)[:, None]
    return np.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)


def _reversed(sequence, order):
    """A (T, B, ...) sequence reversed along time, each batch entry within its length (`_reversal`)."""
    if order is None:
        return np.ascontiguousarray(sequence[::-1])
    return np.take_along_axis(sequence, order[:, :, None], axis=0)
