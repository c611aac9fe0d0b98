"""The JAX module's statements: the reference module's equations as the bodies of `lax.scan` steps.

Each equation is the statement the reference module has (`symlstm.backends.reference`): one per node,
adjoint and tangent, named and numbered as in the cell's document, printed by the same printer (bare
function names, exact rational coefficients). What changes is the loop: a forward step function
`(states, x) -> (new states, (y, the values backward reads))`, a backward step run in reverse,
`(adjoints of the states, (dy, x, values)) -> (adjoints of the previous states, the step's adjoints)`,
and a tangent step. Parameter gradients are sums over the steps and the batch, taken after the
reverse scan from the per-step adjoints (one contraction each), not accumulated in the loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from ...engine import Derivation
from ...naming import adjoint, incoming, tangent
from ...spec import LinearNode
from ..numpy.printer import NumpyCodePrinter
from ..numpy.source import LINE_LENGTH, Zeros, size_labels, size_source, wrap, zero_adjoint
from ..reference.emitter import _forward_node, _views, backward_reads, stored_values
from ..reference.printer import ReferencePrinter, functions_used

__all__ = ["JaxCode", "jax_code"]


# Each elementwise function of the equations in jax.numpy (sigmoid and the indicator are defined in
# the module; see the template).
JAX_NAMES: dict[str, str] = {
    "tanh": "jnp.tanh", "exp": "jnp.exp", "log": "jnp.log", "sin": "jnp.sin", "cos": "jnp.cos",
    "tan": "jnp.tan", "sinh": "jnp.sinh", "cosh": "jnp.cosh", "arcsin": "jnp.arcsin",
    "arccos": "jnp.arccos", "arctan": "jnp.arctan", "arcsinh": "jnp.arcsinh", "arccosh": "jnp.arccosh",
    "arctanh": "jnp.arctanh", "sqrt": "jnp.sqrt",
}  # fmt: skip


@dataclass(frozen=True)
class JaxCode:
    """The printed parts of a cell's JAX module (each a tuple of lines at the indent of its place)."""

    functions: tuple[str, ...]  # `name = jnp.name` for the functions the equations call
    defined: tuple[str, ...]  # those the template defines itself (sigmoid, relu, step)
    constants: tuple[str, ...]  # `const_k = value`: numbers a float holds only rounded
    forward_prelude: tuple[str, ...]  # the parameters (and blocks) a function reads, before its scan
    backward_prelude: tuple[str, ...]
    jvp_prelude: tuple[str, ...]
    forward_step: tuple[str, ...]
    tape: tuple[str, ...]  # the values a forward step keeps for backward
    backward_step: tuple[str, ...]
    step_adjoints: tuple[str, ...]  # what a backward step returns for the parameter gradients and dx
    gradients: tuple[str, ...]  # dparams from the stacked per-step adjoints
    jvp_step: tuple[str, ...]
    backward_input: str  # the name the backward step gives x: the input's, or `_` when unread


def _used_only(prelude: list[str], body: list[str]) -> list[str]:
    """The assignments of `prelude` (`name = value`, in order) whose name the body or a kept later
    assignment reads."""
    kept: list[str] = []
    text = _code_of(body)
    for line in reversed(prelude):
        name, value = line.split(" = ", 1)
        if reads(text, name):
            kept.insert(0, line)
            text += "\n" + _code_of([value])
    return kept


def _code_of(lines: list[str]) -> str:
    """The code of `lines` without comments and string literals (the names it reads and writes)."""
    return "\n".join(re.sub(r'"[^"]*"', "", line) for line in lines if not line.lstrip().startswith("#"))


def reads(code: str, name: str) -> bool:
    return re.search(rf"\b{name}\b", code) is not None


def _prelude(d: Derivation, tangents: bool = False) -> list[str]:
    """The sizes (`H`, ...), each stored parameter and each block, (and their tangents), as a function
    reads them."""
    lines = [f"{label} = {size_source(d.spec, label)}" for label in size_labels(d.spec)]
    lines += [f'{g.name} = params["{g.name}"]' for g in d.spec.groups]
    if tangents:
        lines += [f'tan_{g.name} = dparams["{g.name}"]' for g in d.spec.groups]
    lines += _views(d)
    return lines + (_views(d, "tan_") if tangents else [])


def dict_assignment(target: str, items: dict[str, str], indent: int) -> list[str]:
    """`target = {"k": v, ...}` as ruff format writes it at `indent`: one line, or one item per line."""
    flat = f"{target} = {{" + ", ".join(f'"{k}": {v}' for k, v in items.items()) + "}"
    if indent + len(flat) <= LINE_LENGTH:
        return [flat]
    return [f"{target} = {{", *(f'    "{k}": {v},' for k, v in items.items()), "}"]


def _tuple(names) -> str:
    names = list(names)
    return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


def _forward_step(d: Derivation, p: ReferencePrinter, tape: list[str]) -> list[str]:
    s = d.spec
    lines = []
    for node in s.nodes:
        lines += _forward_node(d, p, node)
    news = _tuple(s.update_of[st] for st in s.states)
    return [
        *lines,
        *dict_assignment("tape_t", {v: v for v in tape}, 8),
        f"return {news}, ({s.output}, tape_t)",
    ]


def _adjoint_lines(d: Derivation, p: ReferencePrinter, vector: str) -> list[str]:
    a = d.adjoint(vector)
    number = d.equation_numbers[("adj", vector)]
    terms = [incoming(vector)] if a.incoming else []
    if a.elementwise != 0:
        terms.append(p.doprint(a.elementwise))
    terms += [f"{adjoint(node)} @ {w}" for w, node in a.linear]
    text = [sp.sstr(sp.Symbol(incoming(vector)))] if a.incoming else []
    if a.elementwise != 0:
        text.append(sp.sstr(a.elementwise))
    text += [f"{w}^T {adjoint(node)}" for w, node in a.linear]
    # a vector nothing reads has a zero adjoint; the step function knows x by the input's own name
    zeros = Zeros("jnp.zeros_like({})", "jnp.zeros((dy_t.shape[0], {}), dy_t.dtype)", d.spec.input, "dy_t")
    value = " + ".join(terms) if terms else zero_adjoint(d, vector, zeros)
    return [f"# ({number}) {adjoint(vector)} = {' + '.join(text) or '0'}", f"{adjoint(vector)} = {value}"]


def _step_adjoints(d: Derivation, p: ReferencePrinter) -> dict[str, str]:
    """What a backward step returns, name -> expression: dx, the adjoints of the linear nodes (for the
    weight and bias gradients) and each elementwise parameter's batch sum."""
    out = {adjoint(d.spec.input): adjoint(d.spec.input)}
    for g in d.param_gradients:
        if g.kind in ("weight", "bias"):
            out[adjoint(g.node)] = adjoint(g.node)
        else:
            out[f"grad_{g.param}"] = f"({p.doprint(g.expr)}).sum(axis=0)"
    return out


def _backward_step(
    d: Derivation, p: ReferencePrinter, values: set[str], returned: dict[str, str]
) -> list[str]:
    s = d.spec
    lines = ["# Gradients arriving at this step's new states and output: the loss at t and the later steps."]
    for node in d.incoming:
        parts = [adjoint(s.prev(st)) for st in s.states if s.update_of[st] == node]
        if node == s.output:
            parts.append("dy_t")
        lines.append(f"{incoming(node)} = {' + '.join(parts)}")
    for a in d.vjp:
        lines += _adjoint_lines(d, p, a.vector)
    lines += dict_assignment("step_adjoints", returned, 8)
    lines.append(f"return {_tuple(adjoint(v) for v in s.prev_names)}, step_adjoints")
    code = _code_of(lines)
    loads = [
        f'{v} = tape_t["{v}"]' for v in stored_values(d) if v in values and v != s.input and reads(code, v)
    ]
    return loads + lines


def _gradients(d: Derivation) -> list[str]:
    """Each parameter block's gradient from the stacked per-step values (T, B, ...), then the stored
    (fused) arrays: `d_W_ih = jnp.concatenate([d_W_ii, ...])`. A parameter that several nodes read (a
    bias shared by two linear nodes) adds up one term per node."""
    s = d.spec
    lines = []
    started: set[str] = set()
    for g in d.param_gradients:
        number = d.equation_numbers[("grad", g.param)]
        target = adjoint(g.param)
        if g.kind == "weight":
            seq = "xs" if g.input == s.input else f'tape["{g.input}"]'
            what = f"{adjoint(g.node)} {g.input}^T"
            term = f'jnp.einsum("tbh,tbi->hi", steps["{adjoint(g.node)}"], {seq})'
        elif g.kind == "bias":
            what = adjoint(g.node)
            term = f'steps["{adjoint(g.node)}"].sum(axis=(0, 1))'
        else:
            what = sp.sstr(g.expr)
            term = f'steps["grad_{g.param}"].sum(axis=0)'
        lines.append(f"# ({number}) {target} += sum over steps and the batch of {what}")
        lines.append(f"{target} = {target} + {term}" if target in started else f"{target} = {term}")
        started.add(target)
    for grp in s.groups:
        if grp.members != (grp.name,):
            parts = ", ".join(adjoint(m) for m in grp.members)
            lines.append(f"{adjoint(grp.name)} = jnp.concatenate([{parts}])")
    return [*lines, *dict_assignment("dparams", {g.name: adjoint(g.name) for g in s.groups}, 4)]


def _jvp_step(d: Derivation, p: ReferencePrinter) -> list[str]:
    s = d.spec
    tangents = {t.node: t.expr for t in d.jvp}
    lines = []
    for node in s.nodes:
        lines += _forward_node(d, p, node)
        if isinstance(node, LinearNode):
            terms = [f"{tangent(u)} @ {w}.T + {u} @ {tangent(w)}.T" for w, u in node.terms]
            terms += [tangent(b) for b in node.biases]
            lines.append(f"{tangent(node.name)} = {' + '.join(terms)}")
        else:
            expr = tangents[node.name]
            value = p.doprint(expr) if expr != 0 else f"jnp.zeros_like({node.name})"
            lines.append(f"{tangent(node.name)} = {value}")
    news = [s.update_of[st] for st in s.states]
    carry = f"({_tuple(news)}, {_tuple(tangent(v) for v in news)})"
    return [*lines, f"return {carry}, ({s.output}, {tangent(s.output)})"]


def jax_code(d: Derivation) -> JaxCode:
    """The parts of a cell's JAX module, printed and wrapped to the line length."""
    p = ReferencePrinter()
    s = d.spec
    values, _ = backward_reads(d)
    tape = [v for v in stored_values(d) if v in values and v != s.input]
    returned = _step_adjoints(d, p)

    def wrapped(lines: list[str], indent: int) -> tuple[str, ...]:
        return tuple(w for line in lines for w in wrap(line, indent=indent))

    forward = wrapped(_forward_step(d, p, tape), 8)
    backward = wrapped(_backward_step(d, p, values, returned), 8)
    jvp = wrapped(_jvp_step(d, p), 8)
    gradients = wrapped(_gradients(d), 4)
    exprs = [n.expr for n in s.nodes if hasattr(n, "expr")]
    exprs += [a.elementwise for a in d.vjp] + [g.expr for g in d.param_gradients if g.expr is not None]
    exprs += [t.expr for t in d.jvp if t.expr is not None]
    names = functions_used(exprs)
    printed = "\n".join(forward + backward + jvp)
    if re.search(r"(?<![\w.])np\.", printed):  # the printer wrote a NumPy call: it would not trace under jit
        raise AssertionError(f"{s.name}: the JAX module's equations call NumPy: {printed}")
    plain = {name: value for name, value in p.constants.items()}
    backward_reads_x = reads(_code_of(list(backward)), s.input)
    return JaxCode(
        functions=tuple(f"{n} = {JAX_NAMES[n]}" for n in names if n in JAX_NAMES),
        defined=tuple(n for n in names if n not in JAX_NAMES),
        constants=tuple(f"{name} = {NumpyCodePrinter().doprint(value)}" for name, value in plain.items()),
        forward_prelude=tuple(_used_only(_prelude(d), list(forward))),
        backward_prelude=tuple(_used_only(_prelude(d), list(backward + gradients))),
        jvp_prelude=tuple(_used_only(_prelude(d, tangents=True), list(jvp))),
        forward_step=forward,
        tape=tuple(tape),
        backward_step=backward,
        step_adjoints=tuple(returned),
        gradients=gradients,
        jvp_step=jvp,
        backward_input=s.input if backward_reads_x else "_",
    )
