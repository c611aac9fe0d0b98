"""A generated JAX module with the NumPy modules' contract, for the checks that compare backends.

`symlstm.testing` and the fuzzer call `forward(params, x, state0) -> (y, state, cache)` and
`backward(params, cache, dy, dstate) -> (dparams, dx, dstate0)` on NumPy arrays. `NumpyContract(module)`
runs the JAX module's `forward`, `backward` and `jvp`, each compiled once per shape (`jax.jit`), and
returns NumPy arrays. It turns on JAX's 64-bit mode (`jax_enable_x64`), without which float64 inputs
would silently be computed in float32.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["NumpyContract"]


def _numpy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: np.asarray(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return tuple(np.asarray(v) for v in tree)
    return np.asarray(tree)


class NumpyContract:
    """`module` (a generated JAX module) called as a NumPy module is; `workspace` and `check_finite`
    are accepted and not used."""

    def __init__(self, module: ModuleType):
        import jax

        jax.config.update("jax_enable_x64", True)
        self.module = module
        names = ("CELL", "STATES", "BLOCKS", "SAME_SIZE", "SIZES", "STATE_SIZES", "OUTPUT_SIZE")
        for name in (*names, "init_params", "param_shapes"):
            setattr(self, name, getattr(module, name))
        self._forward = jax.jit(module.forward)
        self._backward = jax.jit(module.backward)
        self._jvp = jax.jit(module.jvp)

    def forward(self, params, x, state0=None, *, lengths=None, check_finite=False, workspace=None):
        y, state = self._forward(params, x, state0, lengths)
        return np.asarray(y), _numpy(state), {"x": x, "state0": state0, "lengths": lengths}

    def backward(self, params, cache, dy, dstate=None, *, check_finite=False, workspace=None):
        x, state0, lengths = cache["x"], cache["state0"], cache["lengths"]
        if dy is None:  # no loss on y
            dy = np.zeros(self._forward(params, x, state0, lengths)[0].shape, dtype=x.dtype)
        dparams, dx, dstate0 = self._backward(params, x, state0, dy, dstate, lengths)
        return _numpy(dparams), np.asarray(dx), _numpy(dstate0)

    def jvp(
        self, params, x, state0=None, dparams=None, dx=None, dstate0=None, *, lengths=None, check_finite=False
    ):
        y, state, ty, tstate = self._jvp(params, x, state0, dparams, dx, dstate0, lengths)
        return np.asarray(y), _numpy(state), np.asarray(ty), _numpy(tstate)
