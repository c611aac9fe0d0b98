"""The reference module's statements: one per equation of the derivation, named and numbered as there.

Forward: each node of the step is one statement (`a_i = x @ W_ii.T + h_prev @ W_hi.T + b_ii + b_hi`,
`c = c_prev * f + g * i`), an intermediate (`tanh_c = tanh(c)`) one more, in the derivation's order.
Backward: each adjoint of `Derivation.vjp` is one statement, `d_v = din_v + elementwise + d_a @ W`
(W^T d_a for a batch of row vectors), and each parameter gradient one accumulation. Tangent: each node
of `Derivation.jvp` one statement. Nothing is fused, folded or cached beyond the step's values, so the
code reads like the document; `symlstm.proof` runs it on SymPy arrays to prove the generated code itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...engine import Derivation
from ...naming import adjoint, incoming, tangent
from ...spec import ElementwiseNode, LinearNode
from ..numpy.interop import literal
from ..numpy.printer import NumpyCodePrinter
from ..numpy.source import (
    Zeros,
    call_with_dict,
    equation_text,
    member_view,
    row_size,
    size_lines,
    tuple_source,
    wrap,
    zero_adjoint,
    zero_adjoints,
)
from .printer import DEFINITIONS, ReferencePrinter, functions_used

__all__ = ["ReferenceCode", "jvp_lines", "reference_code"]

# A zero adjoint at a step (a vector nothing reads).
ZEROS = Zeros("np.zeros_like({})", "np.zeros((xs.shape[1], {}), dtype=xs.dtype)", "xs[t]", "dy[t]")


@dataclass(frozen=True)
class ReferenceCode:
    """The printed bodies of the reference module's `_forward`, `_backward` and `_jvp`."""

    functions: tuple[str, ...]  # module-level elementwise functions the code calls
    functions_source: str  # their definitions, and the constants' (see `ReferencePrinter`)
    forward: tuple[str, ...]
    backward: tuple[str, ...]
    jvp: tuple[str, ...]


def _names(names) -> str:
    """`a, b` (or `a` alone): names as the side of an assignment."""
    return ", ".join(names)


def _unpack(names) -> str:
    """The target that unpacks a tuple into `names`: `a, b`, or `(a,)` for one."""
    names = list(names)
    return f"({names[0]},)" if len(names) == 1 else ", ".join(names)


def _views(d: Derivation, prefix: str = "") -> list[str]:
    """Each parameter block as a view of its stored (fused) array: `W_ii = W_ih[:H]`."""
    out = []
    for g in d.spec.groups:
        for m in g.members:
            if m != g.name:
                out.append(f"{prefix}{m} = {member_view(prefix + g.name, g, m, row_size(d.spec, g))}")
    return out


def _linear_value(node: LinearNode) -> str:
    return " + ".join([f"{u} @ {w}.T" for w, u in node.terms] + list(node.biases))


def _forward_node(d: Derivation, p: ReferencePrinter, node: LinearNode | ElementwiseNode) -> list[str]:
    number = d.equation_numbers[("fwd", node.name)]
    lines = [f"# ({number}) {equation_text(node)}"]
    if isinstance(node, LinearNode):
        return [*lines, f"{node.name} = {_linear_value(node)}"]
    for m in d.intermediates_of(node.name):
        lines.append(f"{m.name} = {p.doprint(m.call.func(*(d.computational(a) for a in m.call.args)))}")
    return [*lines, f"{node.name} = {p.doprint(d.computational(node.expr))}"]


def stored_values(d: Derivation) -> list[str]:
    """The vectors a step keeps for backward: the leaves, every node and every intermediate."""
    return [*d.spec.leaves, *(n.name for n in d.spec.nodes), *(m.name for m in d.intermediates)]


def _forward(d: Derivation, p: ReferencePrinter) -> list[str]:
    s = d.spec
    lines = [*(f'{g.name} = params["{g.name}"]' for g in s.groups), *_views(d)]
    lines.append(f"{_unpack(s.prev_names)} = state0")
    lines.append(f"ys = np.empty((T, B, {s.size(s.output)}), dtype=dtype)")
    lines.append("tape = []  # each step's values, for backward")
    lines.append("for t in range(T):")
    body = [f"{s.input} = xs[t]"]
    for node in s.nodes:
        body += _forward_node(d, p, node)
    body.append(f"ys[t] = {s.output}")
    body += call_with_dict("tape.append", {v: v for v in stored_values(d)}, indent=8)
    body.append(f"{_names(s.prev_names)} = {_names(s.update_of[st] for st in s.states)}")
    lines += ["    " + line for line in body]
    lines.append(f"return ys, {tuple_source(s.prev_names, quote=False)}, tape")
    return size_lines(d.spec, output=True) + lines


def _adjoint_statement(d: Derivation, p: ReferencePrinter, vector: str) -> list[str]:
    a = d.adjoint(vector)
    number = d.equation_numbers[("adj", vector)]
    terms = []
    if a.incoming:
        terms.append(incoming(vector))
    if a.elementwise != 0:
        terms.append(p.doprint(a.elementwise))
    terms += [f"{adjoint(node)} @ {w}" for w, node in a.linear]
    text = [sp.sstr(sp.Symbol(incoming(vector)))] if a.incoming else []
    if a.elementwise != 0:
        text.append(sp.sstr(a.elementwise))
    text += [f"{w}^T {adjoint(node)}" for w, node in a.linear]
    target = "dx[t]" if vector == d.spec.input else adjoint(vector)
    comment = f"# ({number}) {adjoint(vector)} = {' + '.join(text) or '0'}"
    value = " + ".join(terms) if terms else zero_adjoint(d, vector, ZEROS)
    return [comment, f"{target} = {value}"]


def _gradient_statements(d: Derivation, p: ReferencePrinter) -> list[str]:
    lines = []
    for g in d.param_gradients:
        number = d.equation_numbers[("grad", g.param)]
        if g.kind == "weight":
            lines.append(
                f"# ({number}) {adjoint(g.param)} += sum over the batch of {adjoint(g.node)} {g.input}^T"
            )
            lines.append(f"{adjoint(g.param)} += {adjoint(g.node)}.T @ {g.input}")
        elif g.kind == "bias":
            lines.append(f"# ({number}) {adjoint(g.param)} += sum over the batch of {adjoint(g.node)}")
            lines.append(f"{adjoint(g.param)} += {adjoint(g.node)}.sum(axis=0)")
        else:
            lines.append(f"# ({number}) {adjoint(g.param)} += sum over the batch of {sp.sstr(g.expr)}")
            lines.append(f"{adjoint(g.param)} += ({p.doprint(g.expr)}).sum(axis=0)")
    return lines


def backward_reads(d: Derivation) -> tuple[set[str], set[str]]:
    """(forward values, parameters) the backward equations read: the symbols of the adjoint and
    gradient expressions, the inputs of the weight gradients and the weights of the W^T d_a terms."""
    names: set[str] = set()
    for a in d.vjp:
        names |= {x.name for x in a.elementwise.free_symbols}
    for g in d.param_gradients:
        if g.expr is not None:
            names |= {x.name for x in g.expr.free_symbols}
        if g.input is not None:
            names.add(g.input)
    params = {p.name for p in d.spec.params}
    used_params = (names & params) | {w for a in d.vjp for w, _ in a.linear}
    values = {v for v in names if v in set(stored_values(d))}
    return values, used_params


def _backward(d: Derivation, p: ReferencePrinter) -> list[str]:
    s = d.spec
    values, used = backward_reads(d)
    lines = [f'{g.name} = params["{g.name}"]' for g in s.groups if used & {g.name, *g.members}]
    views = [line for line in _views(d) if line.split(" = ")[0] in used]
    lines = [
        "T = xs.shape[0]",
        *size_lines(d.spec, output=False, also=zero_adjoints(d).values()),
        *lines,
        *views,
    ]
    lines += [f'{adjoint(g.name)} = np.zeros_like(params["{g.name}"])' for g in s.groups]
    lines += _views(d, "d_")
    lines.append("dx = np.zeros_like(xs)")
    prev_adjoints = [adjoint(v) for v in s.prev_names]
    lines.append(f"{_unpack(prev_adjoints)} = dstate  # the gradients arriving at the final states")
    lines.append("for t in range(T - 1, -1, -1):")
    body = [f'{v} = tape[t]["{v}"]' for v in stored_values(d) if v in values]
    body.append(
        "# Gradients arriving at this step's new states and output: the loss at t and the later steps."
    )
    for node in d.incoming:
        parts = [adjoint(s.prev(st)) for st in s.states if s.update_of[st] == node]
        if node == s.output:
            parts.append("dy[t]")
        body.append(f"{incoming(node)} = {' + '.join(parts)}")
    for a in d.vjp:
        body += _adjoint_statement(d, p, a.vector)
    body += _gradient_statements(d, p)
    lines += ["    " + line for line in body]
    lines.append("dparams = {" + ", ".join(f'"{g.name}": {adjoint(g.name)}' for g in s.groups) + "}")
    lines.append(f"return dparams, dx, {tuple_source(prev_adjoints, quote=False)}")
    return lines


def jvp_lines(d: Derivation, p: ReferencePrinter) -> list[str]:
    """The tangent program, one statement per node and unfused: `tan_c = c_prev * tan_f + ...`."""
    s = d.spec
    lines = [*(f'{g.name} = params["{g.name}"]' for g in s.groups), *_views(d)]
    lines += [f'tan_{g.name} = dparams["{g.name}"]' for g in s.groups]
    lines += _views(d, "tan_")
    lines.append(f"{_unpack(s.prev_names)} = state0")
    lines.append(f"{_unpack(tangent(v) for v in s.prev_names)} = tan_state0")
    lines.append(f"ys = np.empty((T, B, {s.size(s.output)}), dtype=dtype)")
    lines.append(f"tan_ys = np.empty((T, B, {s.size(s.output)}), dtype=dtype)")
    lines.append("for t in range(T):")
    body = [f"{s.input}, {tangent(s.input)} = xs[t], tan_xs[t]"]
    tangents = {t.node: t.expr for t in d.jvp}
    for node in s.nodes:
        body += _forward_node(d, p, node)
        if isinstance(node, LinearNode):
            terms = [f"{tangent(u)} @ {w}.T + {u} @ {tangent(w)}.T" for w, u in node.terms]
            terms += [tangent(b) for b in node.biases]
            body.append(f"{tangent(node.name)} = {' + '.join(terms)}")
        else:
            expr = tangents[node.name]
            value = p.doprint(expr) if expr != 0 else f"np.zeros_like({node.name})"
            body.append(f"{tangent(node.name)} = {value}")
    body.append(f"ys[t], tan_ys[t] = {s.output}, {tangent(s.output)}")
    news = [s.update_of[st] for st in s.states]
    body.append(f"{_names(s.prev_names)} = {_names(news)}")
    body.append(f"{_names(tangent(v) for v in s.prev_names)} = {_names(tangent(v) for v in news)}")
    lines += ["    " + line for line in body]
    lines.append(f"state = {tuple_source(s.prev_names, quote=False)}")
    lines.append(f"tan_state = {tuple_source([tangent(v) for v in s.prev_names], quote=False)}")
    lines.append("return ys, state, tan_ys, tan_state")
    return size_lines(d.spec, output=True) + lines


def _functions_source(names: list[str]) -> str:
    """Module-level definitions of the elementwise functions: numpy's ufunc, or a small function."""
    lines = [
        "# The elementwise functions of the equations. symlstm.proof replaces them with SymPy's to run",
        "# this module on arrays of SymPy expressions.",
    ]
    lines += [f"{name} = np.{name}" for name in names if name not in DEFINITIONS]
    text = "\n".join(lines)
    for name in names:
        if name in DEFINITIONS:
            text += "\n\n\n" + DEFINITIONS[name]
    return text


def reference_code(d: Derivation) -> ReferenceCode:
    """The three function bodies of a cell's reference module, printed and wrapped to the line length."""
    p = ReferencePrinter()
    s = d.spec
    exprs = [n.expr for n in s.nodes if isinstance(n, ElementwiseNode)]
    exprs += [a.elementwise for a in d.vjp] + [g.expr for g in d.param_gradients if g.expr is not None]
    exprs += [t.expr for t in d.jvp if t.expr is not None]

    def wrapped(lines: list[str]) -> tuple[str, ...]:
        return tuple(w for line in lines for w in wrap(line, indent=4))

    functions = functions_used(exprs)
    forward, backward, jvp = wrapped(_forward(d, p)), wrapped(_backward(d, p)), wrapped(jvp_lines(d, p))
    return ReferenceCode(
        functions=tuple(functions),
        functions_source=_functions_source(functions) + _constants_source(p),
        forward=forward,
        backward=backward,
        jvp=jvp,
    )


def _constants_source(p: ReferencePrinter) -> str:
    """The constants the equations use that a float holds only rounded, and their exact values."""
    if not p.constants:
        return ""
    plain = NumpyCodePrinter()
    lines = ["", "", "# Constants of the equations that a float holds only rounded; CONSTANTS gives their"]
    lines.append("# exact values (symlstm.proof uses them when it runs this module on SymPy arrays).")
    lines += [f"{name} = {plain.doprint(value)}" for name, value in p.constants.items()]
    exact = {name: sp.sstr(value) for name, value in p.constants.items()}
    lines.append(f"CONSTANTS = {literal(exact, lead=len('CONSTANTS = '))}")
    return "\n".join(lines)
