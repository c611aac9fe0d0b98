"""Numerical checks a document runs on the equations it prints, while it is built (no generated code).

`finite_differences(d)` evaluates one step of the cell at a random point (hidden size 3, input size 2,
float64) straight from the printed equations: the forward equations of the spec, the backward program
`Derivation.vjp`, the parameter gradients `Derivation.param_gradients`, the step Jacobian blocks (in
the factored form the document prints, see `factored`) and the BPTT recurrence. Every gradient is
compared with central differences of the loss L = sum over the step's outputs v of <w_v, v>, every
Jacobian block column by column with central differences of the forward equations. It takes a few
hundredths of a second per cell; the exact symbolic proofs (`symlstm.proof.prove_all`) take seconds to
minutes per cell and are run by `symlstm verify` and the test suite instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ...engine import Derivation
from ...naming import adjoint
from ...spec import LinearNode
from .factored import Sum, factored

__all__ = ["TOLERANCE", "FDCheck", "FDReport", "finite_differences", "step_values", "torch_parameter_count"]

TOLERANCE = 1e-6  # worst relative error allowed (float64, central differences with step 1e-6)
STEP = 1e-6
HIDDEN, INPUT = 3, 2

_NUMPY = [{"sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)), "relu": lambda a: np.maximum(a, 0.0),
           "step": lambda a: (a > 0).astype(float)}, "numpy"]  # fmt: skip


@dataclass(frozen=True)
class FDCheck:
    """One group of printed equations against central differences: the worst relative error."""

    what: str
    worst: float

    @property
    def ok(self) -> bool:
        return self.worst < TOLERANCE


@dataclass(frozen=True)
class FDReport:
    cell: str
    checks: tuple[FDCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def worst(self) -> float:
        return max(c.worst for c in self.checks)


def _lambdify(symbols: list[sp.Symbol], expr: sp.Expr, size: int) -> Callable[..., np.ndarray]:
    fn = sp.lambdify(symbols, expr, modules=_NUMPY)
    return lambda values: np.broadcast_to(fn(*(values[s.name] for s in symbols)), (size,)).astype(float)


class _Step:
    """One step of a cell evaluated numerically from its equations, at hidden size `hidden`."""

    def __init__(self, d: Derivation, hidden: int = HIDDEN, inputs: int = INPUT):
        self.d, self.s = d, d.spec
        self.n = {"H": hidden, "I": hidden if self.s.same_size else inputs}
        for k, (label, _) in enumerate(self.s.extra_sizes):  # every declared size differs from H
            self.n[label] = hidden + 1 + k
        self.fwd: dict[str, Callable] = {}
        for node in self.s.nodes:
            if not isinstance(node, LinearNode):
                self.fwd[node.name] = self._fn(node.expr, self.size(node.name))
        self.inter = {m.name: self._fn(m.call, self.size(m.name)) for m in d.intermediates}

    def size(self, name: str) -> int:
        """The length of a vector, node or intermediate."""
        return self.n[self.d.size_label(name)]

    def _fn(self, expr: sp.Expr, size: int) -> Callable:
        return _lambdify(sorted(expr.free_symbols, key=lambda x: x.name), expr, size)

    def point(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        values = {}
        for leaf in self.s.leaves:
            values[leaf] = rng.standard_normal(self.n[self.s.size(leaf)])
        for p in self.s.params:
            values[p.name] = 0.6 * rng.standard_normal(tuple(self.n[k] for k in p.shape))
        return values

    def forward(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        v = dict(values)
        for node in self.s.nodes:
            if isinstance(node, LinearNode):
                total = sum(v[w] @ v[u] for w, u in node.terms) + sum(v[b] for b in node.biases)
                v[node.name] = np.asarray(total, dtype=float)
            else:
                v[node.name] = self.fwd[node.name](v)
                for m in self.d.intermediates_of(node.name):
                    v[m.name] = self.inter[m.name](v)
        for m in self.d.intermediates:  # an intermediate of a later node may read this one's value
            v[m.name] = self.inter[m.name](v)
        return v

    def loss(self, values: dict[str, np.ndarray], w: dict[str, np.ndarray]) -> float:
        v = self.forward(values)
        return float(sum(w[k] @ v[k] for k in w))

    def backward(self, v: dict[str, np.ndarray], w: dict[str, np.ndarray]) -> tuple[dict, dict]:
        """(adjoints of every vector, parameter gradients) from the printed backward program."""
        adj: dict[str, np.ndarray] = {}
        for a in self.d.vjp:
            total = np.array(w[a.vector]) if a.incoming else np.zeros(self.size(a.vector))
            if a.elementwise != 0:
                scope = {**v, **{adjoint(k): x for k, x in adj.items()}}
                total = total + self._fn(a.elementwise, self.size(a.vector))(scope)
            for weight, node in a.linear:
                total = total + v[weight].T @ adj[node]
            adj[a.vector] = total
        grads: dict[str, np.ndarray] = {}
        scope = {**v, **{adjoint(k): x for k, x in adj.items()}}
        for g in self.d.param_gradients:
            if g.kind == "weight":
                val = np.outer(adj[g.node], v[g.input])
            elif g.kind == "bias":
                val = adj[g.node]
            else:
                val = self._fn(g.expr, self.n[self.s.param(g.param).shape[0]])(scope)
            grads[g.param] = grads.get(g.param, 0) + val
        return adj, grads

    def jacobian(self, s: Sum, v: dict[str, np.ndarray], n_of: int, n_wrt: int) -> np.ndarray:
        """A factored Jacobian block (n_of x n_wrt) evaluated as a matrix."""
        total = np.zeros((n_of, n_wrt))
        for q in s:
            diag = self._fn(q.coeff, n_of)(v) if q.coeff != 1 else np.ones(n_of)
            if q.ref is not None:
                tail = self.jacobian(factored(self.d, *q.ref), v, n_of, n_wrt)
            elif q.weight is not None:
                W = v[q.weight]
                tail = W @ (self.jacobian(q.rest, v, W.shape[1], n_wrt) if q.rest else np.eye(n_wrt))
            else:
                tail = self.jacobian(q.rest, v, n_of, n_wrt) if q.rest else np.eye(n_of, n_wrt)
            total += diag[:, None] * tail
        return total


def _rel(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(numeric))), float(np.max(np.abs(analytic))), 1e-8)
    return float(np.max(np.abs(analytic - numeric))) / scale


def _central(f: Callable[[dict], np.ndarray | float], values: dict, key: str) -> np.ndarray:
    """d f / d values[key], entry by entry, by central differences (f scalar or vector valued)."""
    base = values[key]
    out = []
    for idx in np.ndindex(base.shape):
        plus, minus = base.copy(), base.copy()
        plus[idx] += STEP
        minus[idx] -= STEP
        out.append(
            (np.asarray(f({**values, key: plus})) - np.asarray(f({**values, key: minus}))) / (2 * STEP)
        )
    return np.array(out).reshape(*base.shape, *np.shape(out[0]))


_REPORTS: dict[tuple[str, int], FDReport] = {}


def _report(d: Derivation, seed: int) -> FDReport:
    st = _Step(d)
    s = d.spec
    rng = np.random.default_rng(seed)
    values = st.point(rng)
    w = {name: rng.standard_normal(st.size(name)) for name in d.incoming}
    v = st.forward(values)
    adj, grads = st.backward(v, w)
    loss = lambda vals: st.loss(vals, w)  # noqa: E731
    leaves = max(_rel(adj[leaf], _central(loss, values, leaf)) for leaf in s.leaves)
    params = max(_rel(grads[p.name], _central(loss, values, p.name)) for p in s.params)
    blocks = [(s.update_of[a], s.prev(b)) for a in s.states for b in s.states]
    jac = 0.0
    for of, wrt in blocks:
        printed = st.jacobian(factored(d, of, wrt, blocks), v, st.size(of), st.size(wrt))
        numeric = _central(lambda vals, of=of: st.forward(vals)[of], values, wrt).T
        jac = max(jac, _rel(printed, numeric))
    bptt = 0.0
    for st_name in s.states:  # delta s_{t-1} = sum over s' of J(s'_t, s_{t-1})^T din s'_t
        prev = s.prev(st_name)
        total = np.zeros(st.size(prev))
        for new in s.states:
            node = s.update_of[new]
            J = st.jacobian(factored(d, node, prev, blocks), v, st.size(node), st.size(prev))
            total += J.T @ w[node]
        bptt = max(bptt, _rel(total, _central(loss, values, prev)))
    local = 0.0
    for node in s.nodes:  # d node / d arg, every elementwise node and every vector or parameter it reads
        if isinstance(node, LinearNode):
            continue
        for arg in [*d.args_of(node), *d.params_of(node)]:
            printed = st._fn(d.partial(node, arg), st.size(node.name))(v)
            numeric = _central(
                lambda vals, node=node, arg=arg: st.fwd[node.name]({**v, arg: vals[arg]}), v, arg
            )
            local = max(local, _rel(printed, np.diagonal(numeric)))  # elementwise: a diagonal Jacobian
    return FDReport(s.name, (
        FDCheck("backward program (gradients of x and the previous states)", leaves),
        FDCheck("parameter gradients", params),
        FDCheck("step Jacobian blocks", jac),
        FDCheck("BPTT recurrence", bptt),
        FDCheck("local derivatives", local),
    ))  # fmt: skip


def finite_differences(d: Derivation, seed: int = 0) -> FDReport:
    """The printed equations of `d` against central differences at one random point (see module doc).

    Reports are kept per cell specification and seed: documents that print the same cell share one.
    """
    key = (repr(d.spec), seed)
    if key not in _REPORTS:
        _REPORTS[key] = _report(d, seed)
    return _REPORTS[key]


def step_values(
    d: Derivation, values: dict[str, np.ndarray], din: dict[str, np.ndarray]
) -> tuple[dict, dict, dict]:
    """One step evaluated from the printed equations at the given point.

    Args:
        d: the derivation.
        values: every leaf (input (I,), previous states (H,)) and parameter of the cell.
        din: (H,) the gradient arriving at each of the step's outputs (`Derivation.incoming`).

    Returns:
        (forward values of every vector, adjoint of every vector, gradient of every parameter).
    """
    st = _Step(d, hidden=len(values[d.spec.prev_names[0]]), inputs=len(values[d.spec.input]))
    v = st.forward(values)
    adj, grads = st.backward(v, din)
    return v, adj, grads


def torch_parameter_count(module: str, input_size: int, hidden_size: int) -> int | None:
    """sum(p.numel()) of `torch.nn.<module>(input_size, hidden_size)`; None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    layer = getattr(torch.nn, module)(input_size, hidden_size)
    return int(sum(p.numel() for p in layer.parameters()))
