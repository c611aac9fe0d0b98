"""Numerical gradient checks without autodiff, for any module with the generated contract.

A *module* is anything with `forward(params, x, state0) -> (y, state, cache)` and
`backward(params, cache, dy, dstate) -> (dparams, dx, dstate0)` (the generated modules, or your own).
Every check differentiates the scalar loss

    L = <w_y, y> + sum_k <w_k, state_k>

with fixed, seeded random weights, so its gradient is `backward(params, cache, w_y, (w_k...))`.

`check_full_fd` compares every entry of every parameter block, of x and of each initial state with a
central finite difference computed in float64 (on the same, possibly float32-rounded, inputs), and
reports the worst entry of each block. Step sizes and tolerances come from `TOLERANCES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "TOLERANCES",
    "BlockResult",
    "CheckReport",
    "Problem",
    "Tolerance",
    "check_full_fd",
    "make_problem",
]


@dataclass(frozen=True)
class Tolerance:
    """Per-dtype settings: the finite-difference step and the largest accepted relative error."""

    fd_step: float  # central-difference step, always taken in float64
    rtol: float  # accepted max |analytic - numeric| / max|numeric| over a block


# float64: central differences with h = 1e-6 have truncation error ~h^2 and rounding ~eps/h ~1e-10.
# float32: the analytic gradient itself carries float32 rounding (~1e-7 per operation, accumulated
# over the sequence), compared with a float64 reference of the same float32 inputs.
TOLERANCES: dict[type, Tolerance] = {
    np.float64: Tolerance(fd_step=1e-6, rtol=1e-7),
    np.float32: Tolerance(fd_step=1e-6, rtol=1e-4),
}


@dataclass
class Problem:
    """A seeded test problem: parameters, inputs, initial state and the loss weights."""

    module: Any
    params: dict[str, np.ndarray]
    x: np.ndarray
    state0: tuple[np.ndarray, ...]
    w_y: np.ndarray
    w_state: tuple[np.ndarray, ...] | None
    name: str = "cell"

    @property
    def dtype(self) -> np.dtype:
        return self.x.dtype

    def loss(self, params=None, x=None, state0=None) -> float:
        """L in float64 (the inputs are cast to float64 first)."""
        p = {k: v.astype(np.float64) for k, v in (params or self.params).items()}
        xx = (self.x if x is None else x).astype(np.float64)
        s0 = tuple(s.astype(np.float64) for s in (self.state0 if state0 is None else state0))
        y, state, _ = self.module.forward(p, xx, s0)
        total = float(np.sum(self.w_y.astype(np.float64) * y))
        if self.w_state is not None:
            total += sum(float(np.sum(w.astype(np.float64) * s)) for w, s in zip(self.w_state, state))
        return total

    def gradients(self) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[np.ndarray, ...]]:
        """The analytic gradient of L from the module's backward, in the problem's dtype."""
        _, _, cache = self.module.forward(self.params, self.x, self.state0)
        return self.module.backward(self.params, cache, self.w_y, self.w_state)


def make_problem(
    module: ModuleType | Any,
    input_size: int = 3,
    hidden_size: int = 4,
    steps: int = 5,
    batch: int = 2,
    *,
    dtype: Any = np.float64,
    seed: int = 0,
    with_dstate: bool = True,
    name: str | None = None,
) -> Problem:
    """A seeded problem for `module` (parameters from its `init_params`, inputs standard normal)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    params = module.init_params(input_size, hidden_size, seed=seed, dtype=dtype)
    n_states = len(module.STATES)
    x = rng.standard_normal((steps, batch, input_size)).astype(dtype)
    state0 = tuple(rng.standard_normal((batch, hidden_size)).astype(dtype) for _ in range(n_states))
    w_y = rng.standard_normal((steps, batch, hidden_size)).astype(dtype)
    w_state = (
        tuple(rng.standard_normal((batch, hidden_size)).astype(dtype) for _ in range(n_states))
        if with_dstate
        else None
    )
    return Problem(module, params, x, state0, w_y, w_state, name or getattr(module, "CELL", "cell"))


@dataclass
class BlockResult:
    """The worst entry of one block (a parameter, x or an initial state)."""

    block: str
    rel_error: float
    index: tuple[int, ...]
    analytic: float
    numeric: float
    ok: bool


@dataclass
class CheckReport:
    """The outcome of one check on one cell; `str()` gives a readable report naming the worst entries."""

    check: str
    cell: str
    dtype: str
    blocks: list[BlockResult] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.blocks)

    @property
    def worst(self) -> BlockResult | None:
        return max(self.blocks, key=lambda b: b.rel_error, default=None)

    def __str__(self) -> str:
        status = "passed" if self.ok else "FAILED"
        lines = [f"{self.check} on {self.cell} ({self.dtype}): {status}"]
        for b in self.blocks:
            mark = "ok " if b.ok else "BAD"
            lines.append(
                f"  {mark} {b.block:<12} rel error {b.rel_error:.2e} at {b.index}: "
                f"analytic {b.analytic:+.10e}  numeric {b.numeric:+.10e}"
            )
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def _central_difference(f: Callable[[], float], array: np.ndarray, index: tuple[int, ...], h: float) -> float:
    old = array[index]
    array[index] = old + h
    plus = f()
    array[index] = old - h
    minus = f()
    array[index] = old
    return (plus - minus) / (2 * h)


def _compare(block: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float) -> BlockResult:
    diff = np.abs(analytic.astype(np.float64) - numeric)
    scale = max(float(np.max(np.abs(numeric), initial=0.0)), 1e-30)
    if diff.size == 0:
        return BlockResult(block, 0.0, (), 0.0, 0.0, True)
    index = np.unravel_index(int(np.argmax(diff)), diff.shape)
    rel = float(diff[index]) / scale
    return BlockResult(
        block, rel, tuple(int(k) for k in index), float(analytic[index]), float(numeric[index]), rel <= rtol
    )


def check_full_fd(problem: Problem, tolerance: Tolerance | None = None) -> CheckReport:
    """Every entry of every parameter block, of x and of each initial state against central FD.

    The finite differences are taken in float64 on float64 copies of the problem's inputs, so for a
    float32 problem they are a float64 reference of the same function.
    """
    tol = tolerance or TOLERANCES[problem.dtype.type]
    dparams, dx, dstate0 = problem.gradients()
    p64 = {k: v.astype(np.float64) for k, v in problem.params.items()}
    x64 = problem.x.astype(np.float64)
    s64 = tuple(s.astype(np.float64) for s in problem.state0)

    def f() -> float:
        return problem.loss(p64, x64, s64)

    report = CheckReport("full finite-difference Jacobian", problem.name, str(problem.dtype))
    blocks: list[tuple[str, np.ndarray, np.ndarray]] = [(k, p64[k], dparams[k]) for k in p64]
    blocks.append(("x", x64, dx))
    states = getattr(problem.module, "STATES", tuple(f"state{k}" for k in range(len(s64))))
    blocks += [(f"{name}0", s, ds) for name, s, ds in zip(states, s64, dstate0)]
    for name, array, analytic in blocks:
        numeric = np.zeros(array.shape)
        for index in np.ndindex(array.shape):
            numeric[index] = _central_difference(f, array, index, tol.fd_step)
        report.blocks.append(_compare(name, np.asarray(analytic), numeric, tol.rtol))
    return report
