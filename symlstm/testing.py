"""Numerical gradient checks without autodiff, for any module with the generated contract.

The contract. A *module* is any object (a generated module, or a namespace/class of your own) with

* `forward(params, x, state0) -> (y, state, cache)`: `params` a dict of arrays, `x` (T, B, I) time-major,
  `state0` a tuple of (B, H) arrays, `y` (T, B, H), `state` the tuple of final (B, H) states;
* `backward(params, cache, dy, dstate) -> (dparams, dx, dstate0)`: the gradient of a loss with respect to
  `params` (same keys and shapes), `x` and `state0`, given `dy = dL/dy` and `dstate = dL/dstate` (or None);
* optionally `jvp(params, x, state0, dparams, dx, dstate0) -> (y, state, dy, dstate)` (forward mode, for
  the dot-product test), `init_params(input_size, hidden_size, *, seed, dtype)` and `STATES` (names of
  the states; otherwise pass `params=` and `states=` to `make_problem`), and `BLOCKS` (key -> names of the
  per-gate blocks stacked along axis 0 of that array, so reports can say `W_hf` instead of `W_hh`).
  A cell with sizes besides I and H (an LSTM with a projection) says so in `SIZES` (label -> keyword
  of init_params), `STATE_SIZES` and `OUTPUT_SIZE`: its states and y have those sizes, and the checks
  run at the declared sizes `check_sizes_of` gives.

`forward` must accept float64 inputs: every finite difference is evaluated in float64 on float64 copies of
the (possibly float32-rounded) inputs, so a float32 gradient is compared with a float64 reference of the
same function. Each check differentiates the scalar loss

    L = <w_y, y> + sum_k <w_k, state_k>

with fixed, seeded random weights, so its gradient is `backward(params, cache, w_y, (w_k...))`. The ladder:

1. `check_full_fd`: every entry of every block against a central difference (tiny sizes);
2. `check_direction`: per block, the derivative along a random unit direction by a 4-point stencil
   (4 forward calls per block) against `<grad, d>` (realistic sizes);
3. `check_adjoint`: per block, the dot-product test `<J u, w> == <u, J^T w>` between `jvp` and `backward`
   (no step size at all), plus `jvp`'s own forward values against `forward`;
4. `check_taylor`: per block, the Taylor remainder `|L(p + e d) - L(p) - e <grad, d>|` must fall at
   order 2 as `e` halves (order 1 means a wrong gradient); the observed orders are reported;
5. `check_torch`: outputs and every gradient against `torch.nn.RNN/LSTM/GRU` (skipped without torch).

Steps and tolerances come from `TOLERANCES` (per dtype), every draw from a seed. When an FD check fails
the Taylor test is run along the failing direction to tell a wrong gradient from a step size that is
too small or too large for the dtype; the verdict is in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "REALISTIC",
    "TOLERANCES",
    "Block",
    "BlockResult",
    "CheckReport",
    "Config",
    "Problem",
    "TaylorResult",
    "Tolerance",
    "blocks_of",
    "check_adjoint",
    "check_direction",
    "check_full_fd",
    "check_same",
    "check_same_at",
    "check_sizes_of",
    "check_taylor",
    "check_torch",
    "configurations",
    "dims_of",
    "make_problem",
    "merge_reports",
    "output_size",
    "random_cells",
    "rounding_floor",
    "state_shapes",
    "taylor_test",
    "tolerance_for",
]

Point = tuple[dict[str, np.ndarray], np.ndarray, tuple[np.ndarray, ...]]  # (params, x, state0)


@dataclass(frozen=True)
class Tolerance:
    """Per-dtype settings: finite-difference steps, accepted errors and the Taylor test's schedule.

    All finite differences are evaluated in float64; the dtype decides how accurate the analytic
    gradient (computed in that dtype) can be, hence the accepted errors.
    """

    fd_step: float  # central-difference step per entry (full FD check)
    rtol: float  # accepted max |analytic - numeric| / max|numeric| over a block (full FD check)
    dir_step: float = 1e-3  # 4-point stencil step along a unit direction (directional check)
    dir_rtol: float = 1e-8  # accepted |analytic - numeric| / |numeric| along a direction
    adjoint_rtol: float = 1e-12  # accepted |<Ju, w> - <u, J^T w>| / max of the two
    same_rtol: float = 1e-11  # accepted max |a - b| / max|b| per array between two implementations
    torch_rtol: float = 1e-10  # accepted max |ours - torch| / max|torch| per array
    taylor_eps0: float = 1e-1  # first step of the Taylor test along a unit direction
    taylor_halvings: int = 14  # number of halvings of the step
    taylor_min_order: float = 1.8  # observed order accepted as "second order"
    taylor_rtol: float = 1e-9  # a first-order error this small (relative to |grad|) is the dtype's rounding


# float64: per-entry central differences with h = 1e-6 have truncation error ~h^2 and rounding
# ~eps/h ~1e-10; the 4-point stencil with h = 1e-3 has truncation ~h^4 ~1e-12 and rounding ~eps/h.
# float32: the analytic gradient itself carries float32 rounding (~1e-7 per operation, accumulated over
# the sequence) and is compared with a float64 reference of the same float32 inputs; the Taylor test
# stops at larger steps, where that rounding (a first-order error of ~1e-7 relative) stays invisible.
TOLERANCES: dict[type, Tolerance] = {
    np.float64: Tolerance(fd_step=1e-6, rtol=1e-7),
    np.float32: Tolerance(
        fd_step=1e-6,
        rtol=1e-4,
        dir_rtol=1e-4,
        adjoint_rtol=1e-4,
        same_rtol=1e-4,
        torch_rtol=1e-5,
        taylor_halvings=8,
        taylor_rtol=1e-5,
    ),
}

_EPS64 = float(np.finfo(np.float64).eps)

# `check_torch`'s reason for skipping a cell that torch.nn lacks (reported as n/a, not as a skip).
NO_TORCH_COUNTERPART = "PyTorch has no such cell"


def rounding_floor(dtype: Any, steps: int, weight: float) -> float:
    """What rounding alone leaves in a gradient that is exactly zero (a difference of equal terms): a
    few ulps of the dtype times the sizes of the terms, about `weight` (the largest incoming gradient)
    per step, over `steps` steps. Checks accept an absolute gap this small, whatever the result's
    magnitude, so a gradient that cancels to zero is not a failure; it is orders of magnitude below
    any error a wrong gradient makes."""
    return 16 * float(np.finfo(np.dtype(dtype)).eps) * max(steps, 1) * max(weight, 1.0)


def tolerance_for(problem: Problem) -> Tolerance:
    """`TOLERANCES[dtype]`; for a piecewise-smooth problem, steps small enough to rarely cross a kink."""
    tol = TOLERANCES[problem.dtype.type]
    return tol if problem.smooth else replace(tol, dir_step=1e-6, taylor_eps0=1e-5)


# -- the problem: a seeded loss and its analytic gradient ----------------------------------------------
def _float64(params: Mapping[str, np.ndarray], x: np.ndarray, state0: Sequence[np.ndarray]) -> Point:
    """Float64 copies of a point (params, x, state0)."""
    return (
        {k: v.astype(np.float64) for k, v in params.items()},
        x.astype(np.float64),
        tuple(s.astype(np.float64) for s in state0),
    )


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
    states: tuple[str, ...] = ()
    smooth: bool = True  # False for piecewise-smooth cells (relu): smaller steps, see `tolerance_for`

    def __post_init__(self) -> None:
        if not self.states:
            names = getattr(self.module, "STATES", None)
            if names is not None and len(names) == len(self.state0):
                self.states = tuple(names)
            else:
                self.states = tuple(f"state{k}" for k in range(len(self.state0)))

    @property
    def dtype(self) -> np.dtype:
        return self.x.dtype

    def point64(self) -> Point:
        """Float64 copies of (params, x, state0)."""
        return _float64(self.params, self.x, self.state0)

    def evaluate(self, params=None, x=None, state0=None) -> tuple[float, float]:
        """(L, sum of |terms| of L) in float64; the second sizes the rounding error of L."""
        point = _float64(
            params or self.params, self.x if x is None else x, self.state0 if state0 is None else state0
        )
        y, state, _ = self.module.forward(*point)
        terms = [self.w_y.astype(np.float64) * y]
        if self.w_state is not None:
            terms += [w.astype(np.float64) * s for w, s in zip(self.w_state, state)]
        return float(sum(np.sum(t) for t in terms)), float(sum(np.sum(np.abs(t)) for t in terms))

    def loss(self, params=None, x=None, state0=None) -> float:
        """L in float64 (the inputs are cast to float64 first)."""
        return self.evaluate(params, x, state0)[0]

    def loss_along(self, direction: Point, e: float, base: Point | None = None) -> tuple[float, float]:
        """(L, sum |terms|) at base + e * direction, in float64."""
        p, x, s = base or self.point64()
        dp, dx, ds = direction
        return self.evaluate(
            {k: p[k] + e * dp[k] for k in p}, x + e * dx, tuple(a + e * b for a, b in zip(s, ds))
        )

    def gradients(self) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[np.ndarray, ...]]:
        """The analytic gradient of L from the module's backward, in the problem's dtype."""
        _, _, cache = self.module.forward(self.params, self.x, self.state0)
        return self.module.backward(self.params, cache, self.w_y, self.w_state)


def check_sizes_of(module: Any, hidden_size: int) -> dict[str, int]:
    """The values of a module's declared sizes (besides I and H, `SIZES`) the checks run at, by keyword:
    H // 2 and up (at least 1): unlike H, and below it as torch.nn.LSTM's proj_size must be."""
    declared = [kw for label, kw in getattr(module, "SIZES", {}).items() if label not in ("I", "H")]
    return {kw: max(1, hidden_size // 2 + k) for k, kw in enumerate(declared)}


def dims_of(module: Any, input_size: int, hidden_size: int, sizes: Mapping[str, int]) -> dict[str, int]:
    """Every size of a module by label ({"I": 3, "H": 4, "P": 2}) from I, H and its declared sizes."""
    labels = getattr(module, "SIZES", {"I": "input_size", "H": "hidden_size"})
    given = {"input_size": input_size, "hidden_size": hidden_size, **sizes}
    return {label: given[kw] for label, kw in labels.items()}


def state_shapes(module: Any, batch: int, dims: Mapping[str, int], count: int) -> list[tuple[int, int]]:
    """(B, size) of each of a module's `count` states (`STATE_SIZES`; H where it has none)."""
    labels = getattr(module, "STATE_SIZES", ("H",) * count)
    return [(batch, dims[label]) for label in labels]


def output_size(module: Any, dims: Mapping[str, int]) -> int:
    """The size of y (`OUTPUT_SIZE`; H where the module has none)."""
    return dims[getattr(module, "OUTPUT_SIZE", "H")]


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
    params: Mapping[str, np.ndarray] | None = None,
    states: Sequence[str] | None = None,
    smooth: bool | None = None,
    sizes: Mapping[str, int] | None = None,
) -> Problem:
    """A seeded problem for `module`: inputs, initial states and loss weights standard normal.

    Args:
        module: anything with the contract of the module docstring.
        input_size, hidden_size, steps, batch: I, H, T, B.
        dtype: float32 or float64 (parameters are cast to it).
        seed: seeds every draw (and `init_params`).
        with_dstate: whether the loss also weighs the final states (a gradient arrives at them).
        name: the cell name in reports (default `module.CELL`).
        params: parameters to use instead of `module.init_params(I, H, seed=seed, dtype=dtype)`.
        states: state names when the module has no `STATES` (their number is what matters).
        smooth: False for a piecewise-smooth cell (relu), whose FD and Taylor steps must stay small
            enough not to cross kinks (default `module.SMOOTH`, else True).
        sizes: the cell's declared sizes by keyword ({"proj_size": 2}; default `check_sizes_of`).
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    sizes = check_sizes_of(module, hidden_size) if sizes is None else dict(sizes)
    if params is None:
        if not hasattr(module, "init_params"):
            raise TypeError("make_problem: the module has no init_params; pass params= (a dict of arrays)")
        params = module.init_params(input_size, hidden_size, seed=seed, dtype=dtype, **sizes)
    params = {k: np.asarray(v).astype(dtype) for k, v in params.items()}
    names = tuple(states) if states is not None else getattr(module, "STATES", None)
    if names is None:
        raise TypeError("make_problem: the module has no STATES; pass states=('h',) or similar")
    dims = dims_of(module, input_size, hidden_size, sizes)
    shapes = state_shapes(module, batch, dims, len(names))
    x = rng.standard_normal((steps, batch, input_size)).astype(dtype)
    state0 = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    w_y = rng.standard_normal((steps, batch, output_size(module, dims))).astype(dtype)
    w_state = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes) if with_dstate else None
    cell = name or getattr(module, "CELL", "cell")
    smooth = bool(getattr(module, "SMOOTH", True)) if smooth is None else smooth
    return Problem(module, params, x, state0, w_y, w_state, cell, tuple(names), smooth)


# -- blocks: what a report names ----------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """A named part of the inputs: rows `rows` of parameter `key`, the input x, or initial state `key`."""

    name: str  # "W_hf", "W_hh", "x", "h0"
    kind: str  # "param", "x" or "state"
    key: str | int | None = None  # params key, or the state's index
    rows: tuple[int, int] | None = None  # [start, stop) along axis 0 of the parameter array

    def view(self, point: Point) -> np.ndarray:
        params, x, state0 = point
        if self.kind == "param":
            array = params[self.key]
            return array if self.rows is None else array[self.rows[0] : self.rows[1]]
        return x if self.kind == "x" else state0[self.key]


def blocks_of(problem: Problem, members: bool = True) -> list[Block]:
    """Every parameter (split into its per-gate blocks when `members` and the module has `BLOCKS`),
    then x, then each initial state."""
    out: list[Block] = []
    groups = getattr(problem.module, "BLOCKS", {}) if members else {}
    for key, value in problem.params.items():
        names = groups.get(key, ())
        if len(names) > 1 and value.ndim >= 1 and value.shape[0] % len(names) == 0:
            n = value.shape[0] // len(names)
            out += [Block(m, "param", key, (k * n, (k + 1) * n)) for k, m in enumerate(names)]
        else:
            out.append(Block(key, "param", key))
    out.append(Block("x", "x"))
    out += [Block(f"{s}0", "state", k) for k, s in enumerate(problem.states)]
    return out


def _zeros(problem: Problem, dtype: Any = np.float64) -> Point:
    return (
        {k: np.zeros(v.shape, dtype) for k, v in problem.params.items()},
        np.zeros(problem.x.shape, dtype),
        tuple(np.zeros(s.shape, dtype) for s in problem.state0),
    )


def _random_direction(
    problem: Problem, block: Block, rng: np.random.Generator, dtype: Any = np.float64
) -> Point:
    """A direction supported on `block`, standard normal there, scaled to unit norm."""
    d = _zeros(problem, dtype)
    view = block.view(d)
    v = rng.standard_normal(view.shape)
    view[...] = v / max(float(np.linalg.norm(v)), 1e-300)
    return d


def _dot(a: Point, b: Point) -> float:
    total = sum(float(np.sum(a[0][k].astype(np.float64) * b[0][k])) for k in a[0])
    total += float(np.sum(a[1].astype(np.float64) * b[1]))
    return total + sum(float(np.sum(u.astype(np.float64) * v)) for u, v in zip(a[2], b[2]))


def _locate(problem: Problem, key: str | None, index: tuple[int, ...]) -> str:
    """`W_hh` row 5 with 4 blocks of 3 rows -> `W_hf[2, c]`."""
    names = getattr(problem.module, "BLOCKS", {}).get(key, ()) if key is not None else ()
    shape = problem.params[key].shape if key in problem.params else ()
    if len(names) > 1 and shape and index and shape[0] % len(names) == 0:
        n = shape[0] // len(names)
        inner = (index[0] % n, *index[1:])
        return f"{names[index[0] // n]}[{', '.join(map(str, inner))}]"
    return ""


# -- reports -------------------------------------------------------------------------------------------
@dataclass
class BlockResult:
    """The worst entry of one block (a parameter, x or an initial state) in one check."""

    block: str
    rel_error: float
    index: tuple[int, ...]
    analytic: float
    numeric: float
    ok: bool
    where: str = ""  # the per-gate block and index inside it, e.g. "W_hf[2, 1]"
    orders: tuple[float, ...] = ()  # observed Taylor orders, when the Taylor test ran
    # on failure: wrong gradient, or step size, and why; on a pass judged otherwise than usual: how
    diagnosis: str = ""
    config: str = ""  # the configuration it was checked at, when a report covers several


@dataclass
class CheckReport:
    """The outcome of one check on one cell; `str()` gives a readable report naming the worst entries."""

    check: str
    cell: str
    dtype: str
    blocks: list[BlockResult] = field(default_factory=list)
    note: str = ""
    labels: tuple[str, str] = ("analytic", "numeric")
    skipped: str = ""  # why the check did not run (e.g. torch not installed); a skipped check is ok
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.blocks)

    @property
    def worst(self) -> BlockResult | None:
        return max(self.blocks, key=lambda b: b.rel_error, default=None)

    @property
    def failures(self) -> list[BlockResult]:
        return [b for b in self.blocks if not b.ok]

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.check} on {self.cell} ({self.dtype}): skipped: {self.skipped}"
        status = "passed" if self.ok else "FAILED"
        lines = [f"{self.check} on {self.cell} ({self.dtype}): {status}"]
        groups: dict[str, list[BlockResult]] = {}
        for b in self.blocks:
            groups.setdefault(b.config, []).append(b)
        for config, blocks in groups.items():
            if config and all(b.ok for b in blocks):  # a configuration that passed: one line
                worst = max(blocks, key=lambda b: b.rel_error)
                lines.append(f"  ok  [{config}] {len(blocks)} compared, worst {worst.block} "
                             f"rel error {worst.rel_error:.2e}")  # fmt: skip
                continue
            if config:
                lines.append(f"  [{config}]")
            lines += [self._line(b) for b in blocks if not config or not b.ok]
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)

    def _line(self, b: BlockResult) -> str:
        a, n = self.labels
        mark = "ok " if b.ok else "BAD"
        at = f" at {b.index}" if b.index else ""
        where = f" ({b.where})" if b.where else ""
        text = f"  {mark} {b.block:<10} rel error {b.rel_error:.2e}{at}{where}: "
        text += f"{a} {b.analytic:+.10e}  {n} {b.numeric:+.10e}"
        if b.orders:
            text += f"\n      Taylor orders {' '.join(_fmt_order(o) for o in b.orders)}"
        if b.diagnosis:
            text += f"\n      -> {b.diagnosis}"
        return text


def merge_reports(check: str, cell: str, reports: Sequence[tuple[str, CheckReport]]) -> CheckReport:
    """One report of `check` from reports at several configurations ((label, report) pairs): every
    block, labelled with its configuration; skipped when all are."""
    dtypes = " and ".join(dict.fromkeys(r.dtype for _, r in reports))
    out = CheckReport(
        check, cell, dtypes, labels=reports[0][1].labels if reports else ("analytic", "numeric")
    )
    for label, report in reports:
        if report.skipped:
            continue
        out.blocks += [replace(b, config=label) for b in report.blocks]
        out.seconds += report.seconds
    if reports and all(r.skipped for _, r in reports):
        out.skipped = reports[0][1].skipped
    out.note = f"{len(reports)} configuration(s)"
    return out


def _fmt_order(o: float) -> str:
    return "  - " if math.isnan(o) else f"{o:.2f}"


# -- rung 4: the Taylor remainder test -----------------------------------------------------------------
@dataclass
class TaylorResult:
    """Remainders r(e) = L(p + e d) - L(p) - e <grad, d> for halving e, and what they say.

    `verdict` is "second order" (the gradient is right along d), "within tolerance" (a first-order
    error no larger than the dtype's rounding, `Tolerance.taylor_rtol`), "first order" (it is wrong),
    "flat" (every remainder at rounding level: right to rounding) or "inconclusive".
    """

    steps: tuple[float, ...]
    remainders: tuple[float, ...]  # |r(e)|
    orders: tuple[float, ...]  # log2(|r_k| / |r_{k+1}|); nan where a remainder is at rounding level
    order: float  # median of the last three usable orders (nan when none)
    verdict: str
    error: float  # estimate of <grad, d> minus the true derivative (Richardson on the signed remainders)
    error_bound: float  # |<grad, d> - true derivative| <= about this
    floor: float  # rounding level of the remainders

    @property
    def ok(self) -> bool:
        return self.verdict in ("second order", "within tolerance", "flat")


def taylor_test(
    problem: Problem,
    direction: Point,
    derivative: float,
    tolerance: Tolerance | None = None,
    atol: float | None = None,
) -> TaylorResult:
    """The Taylor remainder test of `derivative` (an analytic <grad, direction>) along `direction`.

    With delta = derivative - (true derivative), r(e) = -delta e + C e^2 + O(e^3): order 2 when delta
    is 0, order 1 once e < |delta / C|. Remainders below the rounding level of L are not used. An
    estimated |delta| below `atol` (default `taylor_rtol * |derivative|`) is accepted as rounding.
    """
    tol = tolerance or tolerance_for(problem)
    base = problem.point64()
    l0, s0 = problem.evaluate(*base)
    steps = tuple(tol.taylor_eps0 * 0.5**k for k in range(tol.taylor_halvings + 1))
    signed, scales = [], []
    for e in steps:
        value, scale = problem.loss_along(direction, e, base)
        signed.append(value - l0 - e * derivative)
        scales.append(max(scale, s0))
    rems = [abs(r) for r in signed]
    floor = 16 * _EPS64 * max(max(scales), 1e-300)  # differences of nearby L share most rounding
    orders = [
        math.log2(rems[k] / rems[k + 1]) if rems[k] > floor and rems[k + 1] > floor else math.nan
        for k in range(len(steps) - 1)
    ]
    usable = [o for o in orders if not math.isnan(o)]
    order = float(np.median(usable[-3:])) if usable else math.nan
    # Richardson: (r(e) - 4 r(e/2)) / e = delta + O(e^2); pick the pair whose estimate is steadiest.
    est = [(signed[k] - 4 * signed[k + 1]) / steps[k] for k in range(len(steps) - 1)]
    unc = [5 * floor / steps[k] + (abs(est[k] - est[k - 1]) if k else math.inf) for k in range(len(est))]
    best = int(np.argmin(unc)) if len(est) > 1 else 0
    error, bound = est[best], abs(est[best]) + unc[best]
    atol = tol.taylor_rtol * abs(derivative) if atol is None else atol
    if not usable:
        verdict = "flat" if rems[0] <= floor else "inconclusive"
    elif order >= tol.taylor_min_order:
        verdict = "second order"
    elif abs(error) <= atol:
        verdict = "within tolerance"
    elif order <= 1.5:
        verdict = "first order"
    else:
        verdict = "inconclusive"
    return TaylorResult(steps, tuple(rems), tuple(orders), order, verdict, error, bound, floor)


def _taylor_block(block: str, derivative: float, t: TaylorResult) -> BlockResult:
    rel = abs(t.error) / max(abs(derivative), 1e-300)
    return BlockResult(block, rel, (), derivative, t.order, t.ok, "", t.orders,
                       "" if t.ok else _taylor_diagnosis(t))  # fmt: skip


def _taylor_diagnosis(t: TaylorResult) -> str:
    if t.verdict == "first order":
        return (f"wrong gradient: the remainder falls at order {t.order:.2f}, not 2, so <grad, d> is off "
                f"by about {t.error:+.2e}")  # fmt: skip
    return f"inconclusive: observed order {t.order:.2f} (neither 1 nor 2)"


def check_taylor(
    problem: Problem, tolerance: Tolerance | None = None, *, seed: int = 0, members: bool = True
) -> CheckReport:
    """The Taylor remainder test along a random unit direction in each block.

    A right gradient gives remainders falling at order 2 as the step halves, a wrong one at order 1;
    a first-order error below `taylor_rtol * |grad restricted to the block|` passes as rounding.
    Reported per block: the observed orders, the decisive order (median of the last three usable ones)
    and, as `rel_error`, the estimated error of <grad, d> relative to |<grad, d>|.
    """
    tol = tolerance or tolerance_for(problem)
    rng = np.random.default_rng(seed)
    grad = problem.gradients()
    report = CheckReport("Taylor remainder", problem.name, str(problem.dtype), labels=("<grad,d>", "order"))
    for block in blocks_of(problem, members):
        d = _random_direction(problem, block, rng)
        derivative = _dot(grad, d)
        atol = tol.taylor_rtol * float(np.linalg.norm(block.view(grad)))
        t = taylor_test(problem, d, derivative, tol, atol)
        report.blocks.append(_taylor_block(block.name, derivative, t))
    return report


def _diagnose(
    problem: Problem,
    direction: Point,
    analytic: float,
    numeric: float,
    h: float,
    tol: Tolerance,
    l_scale: float,
) -> str:
    """Why an FD comparison failed: the Taylor test along the same direction decides."""
    t = taylor_test(problem, direction, analytic, tol)
    orders = " ".join(_fmt_order(o) for o in t.orders[-4:])
    gap = abs(analytic - numeric)
    if t.ok and t.error_bound < 0.1 * gap:
        rounding = _EPS64 * l_scale / h
        which = "too small (rounding)" if rounding > 0.1 * gap else "too large (truncation)"
        return (f"step size: the Taylor test confirms the analytic value (order {t.order:.2f}; last orders "
                f"{orders}; error <= {t.error_bound:.1e}), so the FD step h={h:g} is {which} for "
                f"{problem.dtype}: rounding ~eps*|L|/h = {rounding:.1e}")  # fmt: skip
    if t.verdict == "first order":
        return (f"wrong gradient: the Taylor remainder falls at order {t.order:.2f} (last orders {orders}), "
                "not 2")  # fmt: skip
    return (f"wrong gradient (Taylor verdict {t.verdict}, order {t.order:.2f}, error bound "
            f"{t.error_bound:.1e} not below the FD gap {gap:.1e})")  # fmt: skip


# -- rung 1: full finite-difference Jacobian -----------------------------------------------------------
def _weight(problem: Problem) -> float:
    """The largest loss weight: the largest gradient arriving at an output."""
    weights = [problem.w_y, *(problem.w_state or ())]
    return max(float(np.max(np.abs(w), initial=0.0)) for w in weights)


def _central_difference(f: Callable[[], float], array: np.ndarray, index: tuple[int, ...], h: float) -> float:
    old = array[index]
    array[index] = old + h
    plus = f()
    array[index] = old - h
    minus = f()
    array[index] = old
    return (plus - minus) / (2 * h)


def _five_point_difference(
    f: Callable[[], float], array: np.ndarray, index: tuple[int, ...], h: float
) -> float:
    """The fourth-order central stencil (8 (f(+h) - f(-h)) - (f(+2h) - f(-2h))) / 12 h."""
    old = array[index]
    values = []
    for e in (h, -h, 2 * h, -2 * h):
        array[index] = old + e
        values.append(f())
    array[index] = old
    return (8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * h)


# The full FD check's second opinion on a block that fails at `fd_step`: the fourth-order stencil at
# that step, and at a step this many times larger (rounding that many times smaller).
FINE_STEP_FACTOR = 1000.0
# Where no step resolves the problem's gradients to `rtol` (every gradient tiny against |L|: a
# saturated cell), a block is judged by the fourth-order stencil at COARSE_STEP (about its best step in
# float64: truncation ~h^4, rounding ~eps/h) to that stencil's own rounding bound, provided the bound
# is at most COARSE_RESOLUTION of the block's largest gradient (two digits resolved); otherwise the
# block is not resolved at all and fails.
COARSE_STEP = 1e-3
COARSE_RESOLUTION = 1e-2


def _compare(
    block: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float = 0.0
) -> BlockResult:
    """The worst entry of a block; ok when every |analytic - numeric| <= rtol * max|numeric| + atol (atol:
    what rounding alone can make of the numeric side)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    diff = np.abs(analytic - numeric)
    scale = max(float(np.max(np.abs(numeric), initial=0.0)), 1e-30)
    if diff.size == 0:
        return BlockResult(block, 0.0, (), 0.0, 0.0, True)
    if not np.all(np.isfinite(analytic)):
        index = np.unravel_index(int(np.argmax(~np.isfinite(analytic))), diff.shape)
        rel = math.inf
    else:
        index = np.unravel_index(int(np.argmax(diff)), diff.shape)
        rel = float(diff[index]) / scale
    ok = bool(np.all(diff <= rtol * scale + atol)) and math.isfinite(rel)
    return BlockResult(
        block, rel, tuple(int(k) for k in index), float(analytic[index]), float(numeric[index]), ok
    )


def _second_opinion(
    problem: Problem,
    block: Block,
    grad: Point,
    point: Point,
    first: BlockResult,
    f: Callable[[], float],
    tol: Tolerance,
    l_scale: float,
    largest: float,
) -> BlockResult:
    """A block that failed at `fd_step`, judged again by references more accurate than the central
    difference: the fourth-order stencil at the same step (truncation O(h^4): a strongly curved cell),
    and at a step `FINE_STEP_FACTOR` times larger (rounding that many times smaller: gradients small
    against |L|). `f` evaluates the loss at `point`, which is perturbed in place. The block passes if
    one of them agrees under the same tolerance; a wrong gradient fails both.

    A problem whose gradients no step resolves to `rtol` (every gradient tiny against |L|: a saturated
    cell) is judged at `COARSE_STEP` to that stencil's own rounding bound, if the bound resolves the
    block (`COARSE_RESOLUTION`); the result says so. A step chosen too small is not absorbed this way:
    it is the problem, not the step, that decides."""
    analytic = np.asarray(block.view(grad))
    floor = rounding_floor(problem.dtype, problem.x.shape[0], _weight(problem))

    def stencil(h: float) -> np.ndarray:
        array = block.view(point)
        fine = np.zeros(array.shape)
        for index in np.ndindex(array.shape):
            fine[index] = _five_point_difference(f, array, index, h)
        return fine

    for h in (tol.fd_step, tol.fd_step * FINE_STEP_FACTOR):
        fine_rounding = 3 * _EPS64 * l_scale / h  # what rounding in L can do to the stencil
        if fine_rounding > tol.rtol * largest:
            continue  # this step cannot resolve the gradients either
        second = _compare(block.name, analytic, stencil(h), tol.rtol, fine_rounding + floor)
        if second.ok:
            return second
    coarse_rounding = 3 * _EPS64 * l_scale / COARSE_STEP
    if coarse_rounding <= tol.rtol * largest:
        return first  # a step resolves this problem: the failure stands
    fine = stencil(COARSE_STEP)
    if coarse_rounding > COARSE_RESOLUTION * float(np.max(np.abs(fine), initial=0.0)):
        return first  # the block is below what finite differences can measure
    second = _compare(block.name, analytic, fine, tol.rtol, coarse_rounding + floor)
    if not second.ok:
        return first
    second.diagnosis = (
        f"every gradient below the finite differences' full resolution: judged by the 4-point "
        f"stencil at h = {COARSE_STEP:g} to its rounding bound {coarse_rounding:.1e}"
    )
    return second


def check_full_fd(
    problem: Problem, tolerance: Tolerance | None = None, *, diagnose: bool = True
) -> CheckReport:
    """Every entry of every parameter block, of x and of each initial state against central FD.

    The finite differences are taken in float64 on float64 copies of the problem's inputs, so for a
    float32 problem they are a float64 reference of the same function. The worst entry of each block is
    reported (with its per-gate block when the module has `BLOCKS`); a failing block is diagnosed by the
    Taylor test along that entry.
    """
    tol = tolerance or tolerance_for(problem)
    grad = problem.gradients()
    point = problem.point64()
    l_scale = problem.evaluate(*point)[1]

    def f() -> float:
        return problem.loss(*point)

    report = CheckReport("full finite-difference Jacobian", problem.name, str(problem.dtype))
    blocks = blocks_of(problem, members=False)
    numerics = []
    for block in blocks:
        array = block.view(point)  # perturbed in place, entry by entry
        numeric = np.zeros(array.shape)
        for index in np.ndindex(array.shape):
            numeric[index] = _central_difference(f, array, index, tol.fd_step)
        numerics.append(numeric)
    # A central difference of L carries about eps * |L| / h of rounding (|L| as the sum of its terms): an
    # entry may differ by that much, provided the step keeps it below the tolerance on the largest
    # gradient (a step too small for the dtype is reported and diagnosed, not absorbed).
    rounding = 2 * _EPS64 * l_scale / tol.fd_step
    largest = max((float(np.max(np.abs(n), initial=0.0)) for n in numerics), default=0.0)
    allowance = rounding if rounding <= tol.rtol * largest else 0.0
    allowance += rounding_floor(problem.dtype, problem.x.shape[0], _weight(problem))
    for block, numeric in zip(blocks, numerics):
        result = _compare(block.name, np.asarray(block.view(grad)), numeric, tol.rtol, allowance)
        if not result.ok:
            result = _second_opinion(problem, block, grad, point, result, f, tol, l_scale, largest)
        result.where = _locate(problem, block.key if block.kind == "param" else None, result.index)
        if not result.ok and diagnose and math.isfinite(result.rel_error):
            d = _zeros(problem)
            block.view(d)[result.index] = 1.0
            result.diagnosis = _diagnose(
                problem, d, result.analytic, result.numeric, tol.fd_step, tol, l_scale
            )
        report.blocks.append(result)
    return report


# -- rung 2: random-direction finite differences -------------------------------------------------------
def check_direction(
    problem: Problem, tolerance: Tolerance | None = None, *, seed: int = 0, members: bool = True
) -> CheckReport:
    """Per block, the derivative along a random unit direction d: 4-point FD stencil vs `<grad, d>`.

    Four float64 forward calls per block instead of two per entry, so it runs at realistic sizes. A
    failing block is diagnosed by the Taylor test along the same direction.
    """
    tol = tolerance or tolerance_for(problem)
    rng = np.random.default_rng(seed)
    grad = problem.gradients()
    base = problem.point64()
    l_scale = problem.evaluate(*base)[1]
    h = tol.dir_step
    report = CheckReport("random-direction FD", problem.name, str(problem.dtype), labels=("<grad,d>", "FD"))
    for block in blocks_of(problem, members):
        d = _random_direction(problem, block, rng)
        analytic = _dot(grad, d)
        lp1, lm1, lp2, lm2 = (problem.loss_along(d, e, base)[0] for e in (h, -h, 2 * h, -2 * h))
        numeric = (8 * (lp1 - lm1) - (lp2 - lm2)) / (12 * h)
        rounding = 4 * _EPS64 * l_scale / h  # what rounding in L can do to the stencil
        gap = abs(analytic - numeric)
        scale = max(abs(numeric), abs(analytic), 1e-300)
        rel = gap / scale if math.isfinite(analytic) else math.inf
        result = BlockResult(block.name, rel, (), analytic, numeric, gap <= tol.dir_rtol * scale + rounding)
        if not result.ok and math.isfinite(rel):
            result.diagnosis = _diagnose(problem, d, analytic, numeric, h, tol, l_scale)
        report.blocks.append(result)
    return report


# -- rung 3: the dot-product (adjoint) test ------------------------------------------------------------
def check_adjoint(
    problem: Problem, tolerance: Tolerance | None = None, *, seed: int = 0, members: bool = True
) -> CheckReport:
    """Per block, `<J u, w> == <u, J^T w>`: `jvp` along a random u in the block against `backward`.

    w = (w_y, w_state) are the loss weights, so `J^T w` is the gradient. No step size is involved: the
    two sides differ only by rounding. The first row compares `jvp`'s own y and final states with
    `forward`'s (an independent, unfused forward). Skipped when the module has no `jvp`.
    """
    tol = tolerance or tolerance_for(problem)
    report = CheckReport("dot-product (adjoint) test", problem.name, str(problem.dtype),
                         labels=("<u,J^T w>", "<J u,w>"))  # fmt: skip
    jvp = getattr(problem.module, "jvp", None)
    if jvp is None:
        report.skipped = "the module has no jvp(params, x, state0, dparams, dx, dstate0)"
        return report
    rng = np.random.default_rng(seed)
    grad = problem.gradients()
    y, state, _ = problem.module.forward(problem.params, problem.x, problem.state0)
    y2, state2, _, _ = jvp(problem.params, problem.x, problem.state0, None, None, None)
    worst = _compare("forward", np.concatenate([np.ravel(y2), *map(np.ravel, state2)]),
                     np.concatenate([np.ravel(y), *map(np.ravel, state)]).astype(np.float64),
                     tol.adjoint_rtol)  # fmt: skip
    worst.where = "jvp's y and final states vs forward's"
    report.blocks.append(worst)
    w_state = problem.w_state or tuple(np.zeros_like(s) for s in problem.state0)
    floor = rounding_floor(problem.dtype, problem.x.shape[0], _weight(problem))
    for block in blocks_of(problem, members):
        u = _random_direction(problem, block, rng, problem.dtype)
        _, _, ty, tstate = jvp(problem.params, problem.x, problem.state0, *u)
        lhs = float(np.sum(ty.astype(np.float64) * problem.w_y))
        lhs += sum(float(np.sum(a.astype(np.float64) * b)) for a, b in zip(tstate, w_state))
        rhs = _dot(u, grad)
        gap = abs(lhs - rhs)
        scale = max(abs(lhs), abs(rhs), 1e-300)
        rel = gap / scale if math.isfinite(rhs) and math.isfinite(lhs) else math.inf
        ok = math.isfinite(rel) and gap <= tol.adjoint_rtol * scale + floor
        report.blocks.append(BlockResult(block.name, rel, (), rhs, lhs, ok))
    return report


# -- rung 5: PyTorch ------------------------------------------------------------------------------------
def check_torch(
    module: Any,
    torch_spec: Mapping[str, Any] | None = None,
    input_size: int = 3,
    hidden_size: int = 5,
    steps: int = 6,
    batch: int = 3,
    *,
    dtype: Any = np.float64,
    seed: int = 0,
    tolerance: Tolerance | None = None,
    name: str | None = None,
    with_dstate: bool = True,
) -> CheckReport:
    """Outputs and every gradient against `torch.nn.<torch_spec['module']>` with the same weights.

    `torch_spec` is a cell's `spec.torch` ({'module': 'LSTM', 'kwargs': {...}}); the module must have
    `from_torch(state_dict)` and `TORCH_NAMES` (torch name -> our name). Skipped (with the reason in the
    report) when torch is not importable or the cell has no PyTorch counterpart. `with_dstate=False`:
    the loss does not weigh the final states, and backward gets dstate=None.
    """
    dtype = np.dtype(dtype)
    tol = tolerance or TOLERANCES[dtype.type]
    report = CheckReport("PyTorch reference", name or getattr(module, "CELL", "cell"), str(dtype),
                         labels=("ours", "torch"))  # fmt: skip
    if not torch_spec:
        report.skipped = NO_TORCH_COUNTERPART
        return report
    try:
        import torch
    except ImportError:
        report.skipped = "torch is not installed"
        return report
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    I, H = input_size, hidden_size
    sizes = check_sizes_of(module, hidden_size)
    theirs = {torch_spec.get("sizes", {}).get(k, k): v for k, v in sizes.items()}  # proj_size=...
    torch.manual_seed(seed)
    net = getattr(torch.nn, torch_spec["module"])(
        I, H, dtype=tdtype, **torch_spec.get("kwargs", {}), **theirs
    )
    params = module.from_torch({k: v.detach().numpy() for k, v in net.state_dict().items()})
    n_states = len(module.STATES)
    rng = np.random.default_rng(seed)
    dims = dims_of(module, I, H, sizes)
    shapes = state_shapes(module, batch, dims, n_states)
    x = rng.standard_normal((steps, batch, I)).astype(dtype)
    state0 = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    w_y = rng.standard_normal((steps, batch, output_size(module, dims))).astype(dtype)
    w_s = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    if not with_dstate:
        w_s = tuple(np.zeros_like(w) for w in w_s)
    y, state, cache = module.forward(params, x, state0)
    dparams, dx, dstate0 = module.backward(params, cache, w_y, w_s if with_dstate else None)

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s[None], requires_grad=True) for s in state0]
    yt, final = net(xt, st[0] if n_states == 1 else tuple(st))
    final = (final,) if n_states == 1 else final
    loss = (yt * torch.tensor(w_y)).sum() + sum((f[0] * torch.tensor(w)).sum() for f, w in zip(final, w_s))
    loss.backward()

    def add(what: str, ours: np.ndarray, theirs: np.ndarray) -> None:
        report.blocks.append(_compare(what, np.asarray(ours), np.asarray(theirs, np.float64), tol.torch_rtol))

    add("y", y, yt.detach().numpy())
    for name_k, ours, theirs in zip(module.STATES, state, final):
        add(name_k, ours, theirs.detach().numpy()[0])
    grads = dict(net.named_parameters())
    for theirs, ours in module.TORCH_NAMES.items():
        add(f"d{ours}", dparams[ours], grads[theirs].grad.numpy())
    add("dx", dx, xt.grad.numpy())
    for name_k, ours, theirs in zip(module.STATES, dstate0, st):
        add(f"d{name_k}0", ours, theirs.grad.numpy()[0])
    return report


# -- two implementations of one cell --------------------------------------------------------------------
def _labelled(
    states: Sequence[str], y: Any, state: Sequence[Any], grads: tuple, jvp: tuple | None
) -> list[tuple[str, Any]]:
    """The results of forward, backward (and jvp) of a module, each with the name reports give it."""
    dparams, dx, dstate0 = grads
    out = [("y", y), *((f"{s}_T", a) for s, a in zip(states, state))]
    out += [(f"d{k}", v) for k, v in dparams.items()] + [("dx", dx)]
    out += [(f"d{s}0", a) for s, a in zip(states, dstate0)]
    if jvp is not None:
        jy, jstate, jty, jtstate = jvp
        out += [("jvp y", jy), ("jvp dy", jty)]
        out += [(f"jvp {s}_T", a) for s, a in zip(states, jstate)]
        out += [(f"jvp d{s}_T", a) for s, a in zip(states, jtstate)]
    return out


def _is_reference_module(module: Any) -> bool:
    """Whether `module` is a reference module (`symlstm.backends.reference`), which `symlstm.arithmetic`
    can run in other arithmetics."""
    return all(callable(getattr(module, f, None)) for f in ("_forward", "_backward", "_jvp"))


def _within_rounding(
    first: BlockResult, ours: np.ndarray, theirs: np.ndarray, bound: np.ndarray, rtol: float, floor: float
) -> BlockResult:
    """A block the two modules disagree on beyond `rtol`, judged again entry by entry against what
    rounding can do there: twice the reference's first-order rounding bound (`symlstm.arithmetic`),
    one for each module. Where the cell's values cancel, that bound is far above `rtol` of the block's
    largest value; elsewhere it is tiny, and a wrong module still fails."""
    diff = np.abs(ours - theirs)
    scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-30)
    if not bool(np.all(diff <= rtol * scale + floor + 2 * bound)):
        return first
    worst = first.index
    return replace(
        first,
        ok=True,
        diagnosis=f"within rounding: the reference's own rounding bound at the worst entry is "
        f"{float(bound[worst]):.1e} (running error analysis, symlstm.arithmetic)",
    )


def check_same(
    module: Any,
    reference: Any,
    input_size: int = 3,
    hidden_size: int = 4,
    steps: int = 5,
    batch: int = 2,
    *,
    dtype: Any = np.float64,
    seed: int = 0,
    with_state0: bool = True,
    with_dstate: bool = True,
    workspace: bool = False,
    tolerance: Tolerance | None = None,
    name: str | None = None,
) -> CheckReport:
    """`module` against `reference` (two implementations of one cell): y, the final states, every
    gradient (dparams, dx, dstate0) and the tangents of `jvp`, array by array, to rounding.

    `with_state0=False` passes state0=None and `with_dstate=False` dstate=None, as a caller may;
    `workspace=True` runs `module` twice with one workspace dict (other inputs first), so the second,
    compared, call reuses every array of the first.

    An array the two disagree on beyond `same_rtol`, but by at most sqrt(eps) of the largest value of
    any result, is judged again entry by entry against what rounding can do there when `reference` is
    a reference module: twice its first-order rounding bound (`symlstm.arithmetic.rounding_run`),
    which is large only where the cell's values cancel; the block then says so.
    """
    dtype = np.dtype(dtype)
    tol = tolerance or TOLERANCES[dtype.type]
    cell = name or getattr(module, "CELL", "cell")
    report = CheckReport("optimised == reference", cell, str(dtype), labels=("module", "reference"))
    rng = np.random.default_rng(seed)
    I, H, T, B = input_size, hidden_size, steps, batch
    n = len(reference.STATES)
    sizes = check_sizes_of(reference, H)
    params = reference.init_params(I, H, seed=seed, dtype=dtype, **sizes)
    dims = dims_of(reference, I, H, sizes)
    shapes = state_shapes(reference, B, dims, n)

    def draw(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    def states() -> tuple[np.ndarray, ...]:
        return tuple(draw(*shape) for shape in shapes)

    x, state0 = draw(T, B, I), states() if with_state0 else None
    dy, dstate = draw(T, B, output_size(reference, dims)), states() if with_dstate else None
    direction = ({k: draw(*v.shape) for k, v in params.items()}, draw(T, B, I), states())
    ws: dict | None = None
    if workspace:
        ws = {}
        other = (draw(T, B, I), states() if with_state0 else None)
        _, _, cache = module.forward(params, *other, workspace=ws)
        module.backward(params, cache, dy, dstate, workspace=ws)
    kwargs = {} if ws is None else {"workspace": ws}
    y, state, cache = module.forward(params, x, state0, **kwargs)
    y, state = np.array(y), tuple(np.array(s) for s in state)  # copies: a workspace array is reused below
    grads = module.backward(params, cache, dy, dstate, **kwargs)
    ry, rstate, rcache = reference.forward(params, x, state0)
    rgrads = reference.backward(params, rcache, dy, dstate)
    with_jvp = hasattr(module, "jvp")
    jvps = [m.jvp(params, x, state0, *direction) if with_jvp else None for m in (module, reference)]
    names = reference.STATES
    ours = dict(_labelled(names, y, state, grads, jvps[0]))
    theirs = _labelled(names, ry, rstate, rgrads, jvps[1])
    incoming = max(float(np.max(np.abs(a), initial=0.0)) for a in [dy, *(dstate or ())])
    floor = rounding_floor(dtype, T, incoming)
    compared: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for what, theirs_array in theirs:
        a, b = np.asarray(ours[what]), np.asarray(theirs_array)
        # every result, of both modules, in the dtype asked for (a float64 constant must not promote)
        wrong_dtype = a.dtype != dtype or b.dtype != dtype
        if a.shape != b.shape or wrong_dtype:
            why = f"shape {a.shape} and dtype {a.dtype} (reference: {b.dtype}); "
            why += f"expected {b.shape} {dtype}"
            report.blocks.append(BlockResult(what, math.inf, (), math.nan, math.nan, False, diagnosis=why))
            continue
        b = b.astype(np.float64)
        # The same NaN or infinity on both sides (the cell's own formula overflowing, as exp(a**4) does
        # for large a) is the same IEEE result of the same equations: equal. Anywhere else it fails.
        alike = ~np.isfinite(b) & ((np.isnan(a) & np.isnan(b)) | (a == b))
        if alike.any():
            a, b = np.where(alike, 0.0, a), np.where(alike, 0.0, b)
        compared[what] = (a, b)
        report.blocks.append(_compare(what, a, b, tol.same_rtol, floor))
    # A disagreement in the leading half of the digits of the results' scale is not taken for rounding:
    # only smaller ones get the second opinion (it runs the reference in Python scalars, seconds at
    # realistic sizes). The scale is the largest value of any result, so that a block small in itself
    # (a saturated tanh's tangent, 1 - t**2 near 1e-10, its digits lost to cancellation) is judged.
    gate = math.sqrt(float(np.finfo(dtype).eps)) * max(
        (float(np.max(np.abs(b), initial=0.0)) for _, b in compared.values()), default=0.0
    )
    second = [
        r.block
        for r in report.blocks
        if not r.ok and r.block in compared and float(np.max(np.abs(np.subtract(*compared[r.block])))) <= gate
    ]
    if second and _is_reference_module(reference):
        from .arithmetic import rounding_run

        zeros = tuple(np.zeros(shape, dtype) for shape in shapes)
        point = (params, x, state0 or zeros, dy, dstate or zeros, direction)
        y_b, state_b, grads_b, jvp_b = rounding_run(reference, point, dtype)
        bounds = dict(_labelled(names, y_b, state_b, grads_b, jvp_b if with_jvp else None))
        report.blocks = [
            _within_rounding(r, *compared[r.block], bounds[r.block], tol.same_rtol, floor)
            if r.block in second
            else r
            for r in report.blocks
        ]
    config = "".join(f"{label}={k} " for label, k in dims.items()) + f"T={T} B={B}, "
    config += f"state0 {'given' if with_state0 else 'None'}, "
    config += f"dstate {'given' if with_dstate else 'None'}" + (", reused workspace" if workspace else "")
    report.note = config
    return report


_FLOAT64 = np.dtype(np.float64)


# -- configurations: both sides of every threshold of the generated code -------------------------------
@dataclass(frozen=True)
class Config:
    """One way of calling a module: sizes (I, H, T, B), dtype and the call's options (`check_same`)."""

    label: str
    input_size: int
    hidden_size: int
    steps: int
    batch: int
    dtype: np.dtype = _FLOAT64
    with_state0: bool = True
    with_dstate: bool = True
    workspace: bool = False

    @property
    def text(self) -> str:
        """The label with the dtype, as reports show it."""
        return f"{self.label}, {self.dtype}"


# The largest hidden size a threshold's sizes are given (the rest goes to the batch), and the sizes
# of the realistic configuration (I, H, T, B) compared with an independent reference.
_HIDDEN_CAP = 64
REALISTIC = (32, 64, 100, 32)


def _smallest_factor(n: int) -> int:
    return next((k for k in range(2, math.isqrt(n) + 1) if n % k == 0), n)


def _threshold_sizes(threshold: Any, exhaustive: bool) -> list[tuple[str, int, int, int, bool]]:
    """(label, T, B, H, with a reused workspace) on both sides of `threshold` (a `symlstm.plan.Threshold`)
    and at its boundary: T * (per step) = limit - 1, limit, limit + 1 (the chunk one short of full,
    full, one step over; the last again with a reused workspace), and one step alone holding limit and
    limit + 1 numbers (chunks of one step), and at T = 3 chunks of two steps and one. Not `exhaustive`:
    the last two."""
    n, dims = threshold.limit, threshold.per_step
    unit = " * ".join(dims)

    def split(per_step: int) -> tuple[int, int]:  # (B, H) whose product over `dims` is per_step
        if dims == ("B",):
            return per_step, 4
        hidden = max(k for k in range(1, _HIDDEN_CAP + 1) if per_step % k == 0)
        return per_step // hidden, hidden

    crossing = [
        (f"{threshold.name}: T = 3, {unit} = {n // 2}", 3, *split(n // 2), False),
        (f"{threshold.name}: {unit} = {n + 1}, one step per chunk", 2, *split(n + 1), False),
    ]
    if not exhaustive:
        return crossing
    out = []
    for total in (n - 1, n, n + 1):
        steps = _smallest_factor(total)  # the fewest steps that make the total exactly
        out.append((f"{threshold.name}: T * {unit} = {total}", steps, *split(total // steps), False))
    out.append((f"{out[-1][0]}, reused workspace", *out[-1][1:4], True))
    out.append((f"{threshold.name}: {unit} = {n}, one step per chunk", 2, *split(n), False))
    return out + crossing


def configurations(
    plan: Any,
    *,
    dtypes: Sequence[Any] = (np.float64, np.float32),
    exhaustive: bool = True,
    realistic: bool = True,
) -> list[Config]:
    """The configurations at which to compare a cell's modules, derived from its plan
    (`symlstm.plan.plan_cell`): T = 1, state0 and dstate each given and None, a reused workspace,
    sizes on both sides of every threshold of the plan and at its boundary (`symlstm.plan.thresholds`;
    a reused workspace there too), each in every dtype of `dtypes`, and a realistic size (`REALISTIC`)
    in float64 (in float32 the rounding of some cells, e.g. additive, grows past float32's tolerance
    over 100 steps: a comparison there measures the cell's conditioning, not the code).
    `exhaustive=False` keeps T = 1, both states None, a reused workspace and two sizes that cross each
    threshold, each in one dtype, in turn (the fuzzer's budget); `realistic=False` leaves out the
    realistic size."""
    from .plan import thresholds

    same_size = plan.spec.same_size

    def config(label: str, steps: int, batch: int, hidden: int = 4, inputs: int = 3, **options) -> Config:
        return Config(label, hidden if same_size else inputs, hidden, steps, batch, **options)

    base = [config("T=1", 1, 2)]
    if exhaustive:
        base += [
            config("T=5 B=3", 5, 3),
            config("state0 None", 4, 2, with_state0=False),
            config("dstate None", 4, 2, with_dstate=False),
        ]
    base += [
        config("state0 and dstate None", 4, 2, with_state0=False, with_dstate=False),
        config("reused workspace", 4, 2, workspace=True),
    ]
    for threshold in thresholds(plan):
        base += [
            config(label, t, b, h, workspace=w)
            for label, t, b, h, w in _threshold_sizes(threshold, exhaustive)
        ]
    dtypes = [np.dtype(d) for d in dtypes]
    if exhaustive:
        out = [replace(c, dtype=d) for d in dtypes for c in base]
    else:  # one dtype per configuration, in turn
        out = [replace(c, dtype=dtypes[k % len(dtypes)]) for k, c in enumerate(base)]
    if realistic:  # in float64: over 100 steps float32 rounding grows past its tolerance in some cells
        i, h, t, b = REALISTIC
        out.append(config(f"realistic I={i} H={h} T={t} B={b}", t, b, h, i))
    return out


def check_same_at(
    module: Any, reference: Any, configs: Sequence[Config], *, seed: int = 0, name: str | None = None
) -> CheckReport:
    """`check_same` at each configuration, as one report whose blocks say their configuration; a
    configuration at which either module raises is a failed block naming the exception."""
    cell = name or getattr(module, "CELL", "cell")
    reports = []
    for c in configs:
        try:
            options = {"with_state0": c.with_state0, "with_dstate": c.with_dstate, "workspace": c.workspace}
            report = check_same(module, reference, c.input_size, c.hidden_size, c.steps, c.batch,
                                dtype=c.dtype, seed=seed, name=name, **options)  # fmt: skip
        except Exception as err:  # reported at its configuration; the others still run
            report = CheckReport("optimised == reference", cell, str(c.dtype))
            why = f"raised {type(err).__name__}: {err}"
            report.blocks.append(
                BlockResult("(crash)", math.inf, (), math.nan, math.nan, False, diagnosis=why)
            )
        reports.append((c.text, report))
    return merge_reports("optimised == reference", cell, reports)


# -- random cells ---------------------------------------------------------------------------------------
def random_cells(max_states: int = 3, max_nodes: int = 7):
    """A hypothesis strategy of valid `CellSpec`s drawn from the whole `Cell` API, to fuzz your own
    tools with (`symlstm.fuzz`; needs hypothesis). `symlstm.fuzz.check_cell(spec)` runs what the package
    promises for each."""
    from .random_cells import random_cells as strategy

    return strategy(max_states, max_nodes)
