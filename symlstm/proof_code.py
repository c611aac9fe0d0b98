"""Proof of the generated code itself: the reference module run on arrays of SymPy expressions.

`prove_code(derivation)` renders (or takes) the cell's reference module (`symlstm.backends.reference`),
executes a private copy of it in which each elementwise function is the independent SymPy function of
`symlstm.definitions` (numpy's object arrays carry the expressions through `@`, `+`, `*`), and runs its
`_forward`, `_backward` and `_jvp` on symbols: one per entry of every parameter, input, initial state,
incoming gradient and tangent, over T steps and B batch rows (T = 2, B = 2 by default, so the loop, the
carry between steps and the sums over the batch are all exercised). The claims, each decided by
`expand(a - b) == 0`:

* forward: y and the final states equal the cell unrolled from its specification (`CellSpec` nodes,
  not the module);
* backward: every gradient (each parameter, x, each initial state) equals the derivative, by SymPy's
  `diff`, of L = <dy, y> + sum_k <dstate_k, state_k> for the unrolled cell;
* jvp: the tangents of y and of the final states equal SymPy's derivative of the unrolled outputs
  along the symbolic direction.

This is a proof for those sizes, of the code users import (the committed file of a registered cell, or
the module `symlstm.load` renders for a user cell), not a sample; a wrong line in the module fails it.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .arithmetic import reference_copy
from .backends.reference import render_reference
from .backends.reference.printer import SYMPY_FUNCTIONS
from .definitions import independent, independent_function
from .engine import Derivation
from .identity import Canonical
from .proof import ProofResult, decide
from .spec import LinearNode

__all__ = ["CodeProof", "prove_code", "symbolic_module"]


def symbolic_module(source: str, name: str = "cell") -> types.ModuleType:
    """A private copy of a reference module whose elementwise functions act on SymPy object arrays."""
    return reference_copy(
        source, name, lambda fname: independent_function(SYMPY_FUNCTIONS[fname]), independent
    )


def _symbols(name: str, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(shape):
        out[index] = sp.Symbol(f"{name}[{','.join(map(str, index))}]", real=True)
    return out


@dataclass
class CodeProof:
    """The symbolic inputs of one proof and the cell unrolled from its specification."""

    d: Derivation
    steps: int
    batch: int
    hidden: int
    inputs: int

    def __post_init__(self) -> None:
        s, T, B, I = self.d.spec, self.steps, self.batch, self.inputs
        # a declared size is H - 1, - 2, ... (at least 1): unlike H where H > 1
        self.dims = {"H": self.hidden, "I": I}
        self.dims |= {label: max(1, self.hidden - 1 - k) for k, (label, _) in enumerate(s.extra_sizes)}
        dims = self.dims
        self.params = {}
        for g in s.groups:
            first = s.param(g.members[0])
            rows = len(g.members) * dims[first.shape[0]]
            shape = (rows, dims[first.shape[1]]) if first.is_matrix else (rows,)
            self.params[g.name] = _symbols(g.name, shape)
        states = [(st, (B, dims[s.size(s.prev(st))])) for st in s.states]
        self.xs = _symbols("x", (T, B, I))
        self.state0 = tuple(_symbols(f"{st}0", shape) for st, shape in states)
        self.dy = _symbols("dy", (T, B, dims[s.size(s.output)]))
        self.dstate = tuple(_symbols(f"d{st}_T", shape) for st, shape in states)
        self.direction = (
            {k: _symbols(f"tan_{k}", v.shape) for k, v in self.params.items()},
            _symbols("tan_x", (T, B, I)),
            tuple(_symbols(f"tan_{st}0", shape) for st, shape in states),
        )

    def member(self, params: dict[str, np.ndarray], name: str) -> np.ndarray:
        """The block of parameter `name` inside its stored array."""
        g = self.d.spec.group_of(name)
        n = self.dims[self.d.spec.param(name).shape[0]]
        k = g.members.index(name)
        return params[g.name][k * n : (k + 1) * n]

    def unrolled(self, params, xs, state0) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """y and the final states of the cell, computed from its specification node by node."""
        s, d = self.d.spec, self.d
        T, B = self.steps, self.batch
        exprs = {n.name: independent(n.expr) for n in s.nodes if not isinstance(n, LinearNode)}
        state = dict(zip(s.prev_names, state0))
        ys = np.empty((T, B, self.dims[s.size(s.output)]), dtype=object)
        for t in range(T):
            values = {s.input: xs[t], **state}
            for node in s.nodes:
                if isinstance(node, LinearNode):
                    total = sum(values[u] @ self.member(params, w).T for w, u in node.terms)
                    for b in node.biases:
                        total = total + self.member(params, b)
                    values[node.name] = total
                    continue
                size = self.dims[s.size(node.name)]
                out = np.empty((B, size), dtype=object)
                for b in range(B):
                    for j in range(size):
                        sub = {d.sym[v]: values[v][b, j] for v in d.args_of(node)}
                        sub.update({d.sym[p]: self.member(params, p)[j] for p in d.params_of(node)})
                        out[b, j] = exprs[node.name].xreplace(sub)
                values[node.name] = out
            ys[t] = values[s.output]
            state = {s.prev(st): values[s.update_of[st]] for st in s.states}
        return ys, tuple(state[s.prev(st)] for st in s.states)


def _flat(point) -> list[tuple[str, np.ndarray]]:
    params, xs, state0 = point
    return [*params.items(), ("x", xs), *((f"state0[{k}]", s) for k, s in enumerate(state0))]


# (T, B, H, I) of the default proofs: one step over two batch rows (the sums over the batch, every
# weight block at H = I = 2, transposes included), and two steps of one row (the loop, the carry of the
# states and of their gradients between steps, the sums over time).
SIZES: tuple[tuple[int, int, int, int], ...] = ((1, 2, 2, 2), (2, 1, 1, 1))


def prove_code(
    d: Derivation, source: str | None = None, *, sizes: tuple[tuple[int, int, int, int], ...] = SIZES
) -> list[ProofResult]:
    """The claims above for the reference module `source` (default: rendered from `d`), at each size
    (T, B, H, I) of `sizes` (I becomes H for a cell that needs them equal)."""
    source = render_reference(d) if source is None else source
    module = symbolic_module(source, d.spec.name)
    results = []
    for steps, batch, hidden, inputs in sizes:
        inputs = hidden if d.spec.same_size else inputs
        results += _prove_at(d, module, CodeProof(d, steps, batch, hidden, inputs))
    return results


def _prove_at(d: Derivation, module: types.ModuleType, cp: CodeProof) -> list[ProofResult]:
    spec = d.spec
    canon = Canonical()
    size = f"T={cp.steps} B={cp.batch} " + " ".join(f"{label}={n}" for label, n in cp.dims.items())
    where = f"SymPy's Jacobian of the cell unrolled from its specification, {size}"
    results = []

    def claim(text: str, difference) -> None:
        ok, note = decide(np.ravel(np.asarray(difference, dtype=object)), canon)
        results.append(ProofResult(f"code {text} ({size})", ok, note or where))

    ys, state, tape = module._forward(cp.params, cp.xs, cp.state0)
    want_y, want_state = cp.unrolled(cp.params, cp.xs, cp.state0)
    claim("forward y", ys - want_y)
    for st, got, want in zip(spec.states, state, want_state):
        claim(f"forward {st}_T", got - want)

    # The Jacobian of every output entry with respect to every input entry, by SymPy's diff.
    outputs = [*want_y.ravel(), *(v for s in want_state for v in s.ravel())]
    weights = [*cp.dy.ravel(), *(v for s in cp.dstate for v in s.ravel())]
    inputs = _flat((cp.params, cp.xs, cp.state0))
    tangents = dict(_flat(cp.direction))
    jacobian = {
        name: [[sp.diff(out, e) for e in symbols.ravel()] for out in outputs] for name, symbols in inputs
    }

    dparams, dx, dstate0 = module._backward(cp.params, cp.xs, tape, cp.dy, cp.dstate)
    got = {**dparams, "x": dx, **{f"state0[{k}]": v for k, v in enumerate(dstate0)}}
    for name, symbols in inputs:
        rows = jacobian[name]
        want = np.array([sp.Add(*(w * row[j] for w, row in zip(weights, rows))) for j in range(symbols.size)],
                        dtype=object).reshape(symbols.shape)  # fmt: skip
        label = name if not name.startswith("state0") else f"{spec.states[int(name[7])]}0"
        claim(f"backward d{label}", np.asarray(got[name], dtype=object) - want)

    _, _, tan_y, tan_state = module._jvp(cp.params, cp.xs, cp.state0, *cp.direction)
    along = np.array(
        [sp.Add(*(jacobian[name][k][j] * tangents[name].ravel()[j] for name, symbols in inputs
                  for j in range(symbols.size))) for k in range(len(outputs))], dtype=object,
    )  # fmt: skip
    n_y = want_y.size
    claim("jvp dy", tan_y.ravel() - along[:n_y])
    offset = n_y
    for st, got_t in zip(spec.states, tan_state):
        claim(f"jvp d{st}_T", got_t.ravel() - along[offset : offset + got_t.size])
        offset += got_t.size
    return results
