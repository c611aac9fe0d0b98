"""The torch module's statements: the reference module's equations, on tensors, over whole sequences.

Forward: each node of the step is one statement, as in the reference module; each value the backward
equations read (`symlstm.backends.reference.emitter.backward_reads`) is written into a (T, B, .)
sequence, and nothing else is kept. Backward: each adjoint of `Derivation.vjp` one statement, each
parameter gradient one accumulation, reading those sequences. Steps past a sequence's length
(`past[t]`, a (B, 1) mask) leave the states as they were and pass the gradients arriving at them
through unchanged. The template wraps both in a `torch.autograd.Function` (one call per sequence, no
autograd tape over the steps) and an `nn.Module` with torch.nn.LSTM's conventions.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ...engine import Derivation
from ...naming import adjoint, incoming
from ...spec import CellSpec, ElementwiseNode, LinearNode
from ..numpy.printer import NumpyCodePrinter
from ..numpy.source import (
    Zeros,
    equation_text,
    member_view,
    row_size,
    size_lines,
    tuple_source,
    wrap,
    zero_adjoint,
    zero_adjoints,
)
from ..reference.emitter import backward_reads
from .printer import TorchPrinter, check_printed, functions_source

__all__ = ["TorchCode", "state_dict_names", "torch_code"]

# A zero adjoint at a step (a vector nothing reads).
ZEROS = Zeros("torch.zeros_like({})", "xs.new_zeros((xs.shape[1], {}))", "xs[t]", "dy[t]")


@dataclass(frozen=True)
class TorchCode:
    """The printed bodies of the torch module's `_forward` and `_backward`, and its parameter names."""

    functions_source: str  # the elementwise functions bound to torch's, and the named constants
    forward: tuple[str, ...]
    backward: tuple[str, ...]
    saved: tuple[str, ...]  # the step values forward keeps for backward, in order
    names: dict[str, str]  # stored parameter -> its layer-0 state_dict name
    biases: tuple[str, ...]  # stored parameters that are biases only (absent under bias=False)
    input: str  # the name of the input vector

    @property
    def saved_tuple(self) -> str:
        return tuple_source(self.saved)

    @property
    def biases_tuple(self) -> str:
        return tuple_source(self.biases) if self.biases else "()"


def _unpack(names) -> str:
    names = list(names)
    return f"({names[0]},)" if len(names) == 1 else ", ".join(names)


def _views(s: CellSpec, prefix: str = "", only: set[str] | None = None) -> list[str]:
    """Each parameter block as a view of its stored (fused) tensor: `W_ii = W_ih[:H]`."""
    return [
        f"{prefix}{m} = {member_view(prefix + g.name, g, m, row_size(s, g))}"
        for g in s.groups
        for m in g.members
        if m != g.name and (only is None or m in only)
    ]


def bias_groups(s: CellSpec) -> tuple[str, ...]:
    """The stored parameters all of whose blocks are biases of linear nodes."""
    biases = {b for n in s.nodes if isinstance(n, LinearNode) for b in n.biases}
    return tuple(g.name for g in s.groups if set(g.members) <= biases)


def state_dict_names(s: CellSpec) -> dict[str, str]:
    """Each stored parameter's layer-0 name in the module's state_dict: torch.nn's own where the cell
    has a torch.nn counterpart (`weight_ih_l0`), else the same pattern from the stored name: `W_<x>` ->
    `weight_<x>`, a bias `b_<x>` (or `b`) -> `bias_<x>` (`bias`), another vector or matrix `v` ->
    `weight_<v>` in lower case."""
    if s.torch and s.torch.get("names"):
        return {ours: theirs for theirs, ours in s.torch["names"].items()}
    biases = set(bias_groups(s))
    out: dict[str, str] = {}
    for g in s.groups:
        if g.name in biases:
            stem = "bias" + ("" if g.name == "b" else "_" + g.name.removeprefix("b_").lower())
        else:
            stem = "weight_" + g.name.removeprefix("W_").lower()
        out[g.name] = f"{stem}_l0"
    if len(set(out.values())) < len(out):  # two stored names map to one: keep the stored names
        out = {g.name: f"{g.name}_l0" for g in s.groups}
    return out


def _forward(d: Derivation, p: TorchPrinter, saved: list[str]) -> list[str]:
    s = d.spec
    lines = [*(f'{g.name} = params["{g.name}"]' for g in s.groups), *_views(s)]
    lines.append(f"{_unpack(s.prev_names)} = state0")
    lines.append(f"ys = xs.new_empty((T, B, {s.size(s.output)}))")
    lines += [f"seq_{v} = xs.new_empty((T, B, {d.size_label(v)}))" for v in saved if v != s.input]
    lines.append("for t in range(T):")
    body = [f"{s.input} = xs[t]"]
    for node in s.nodes:
        number = d.equation_numbers[("fwd", node.name)]
        body.append(f"# ({number}) {equation_text(node)}")
        if isinstance(node, LinearNode):
            body.append(
                f"{node.name} = " + " + ".join([f"{u} @ {w}.T" for w, u in node.terms] + list(node.biases))
            )
            continue
        for m in d.intermediates_of(node.name):
            call = m.call.func(*(d.computational(a) for a in m.call.args))
            body.append(f"{m.name} = {check_printed(p.doprint(call), call)}")
        expr = d.computational(node.expr)
        body.append(f"{node.name} = {check_printed(p.doprint(expr), expr)}")
    body.append(f"ys[t] = {s.output}")
    body += [f"seq_{v}[t] = {v}" for v in saved if v != s.input]
    news = [s.update_of[st] for st in s.states]
    body.append("if past is None:")
    body.append(f"    {', '.join(s.prev_names)} = {', '.join(news)}")
    body.append("else:  # past a sequence's length its states stay as they were")
    body += [f"    {prev} = torch.where(past[t], {prev}, {new})" for prev, new in zip(s.prev_names, news)]
    lines += ["    " + line for line in body]
    lines.append("if past is not None:  # y is 0 past a sequence's length")
    lines.append("    ys.masked_fill_(past, 0)")
    lines.append("saved = {")
    lines += [f'    "{v}": {"xs" if v == s.input else "seq_" + v},' for v in saved]
    lines.append("}")
    lines.append(f"return ys, {tuple_source(s.prev_names, quote=False)}, saved")
    saved_sizes = {d.size_label(v) for v in saved if v != s.input}
    return size_lines(s, output=True, also=saved_sizes) + lines


def _adjoint(d: Derivation, p: TorchPrinter, vector: str) -> list[str]:
    a = d.adjoint(vector)
    number = d.equation_numbers[("adj", vector)]
    terms = [incoming(vector)] if a.incoming else []
    text = [sp.sstr(sp.Symbol(incoming(vector)))] if a.incoming else []
    if a.elementwise != 0:
        terms.append(check_printed(p.doprint(a.elementwise), a.elementwise))
        text.append(sp.sstr(a.elementwise))
    terms += [f"{adjoint(node)} @ {w}" for w, node in a.linear]
    text += [f"{w}^T {adjoint(node)}" for w, node in a.linear]
    target = "dx[t]" if vector == d.spec.input else adjoint(vector)
    value = " + ".join(terms) if terms else zero_adjoint(d, vector, ZEROS)
    return [f"# ({number}) {adjoint(vector)} = {' + '.join(text) or '0'}", f"{target} = {value}"]


def _gradients(d: Derivation, p: TorchPrinter) -> list[str]:
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
            lines.append(f"{adjoint(g.param)} += {adjoint(g.node)}.sum(0)")
        else:
            lines.append(f"# ({number}) {adjoint(g.param)} += sum over the batch of {sp.sstr(g.expr)}")
            lines.append(f"{adjoint(g.param)} += ({check_printed(p.doprint(g.expr), g.expr)}).sum(0)")
    return lines


def _backward(d: Derivation, p: TorchPrinter, saved: list[str]) -> list[str]:
    s = d.spec
    _, used = backward_reads(d)
    views = _views(s, only=used)
    lines = ["T = xs.shape[0]", *size_lines(s, output=False, also=zero_adjoints(d).values())]
    lines += [f'{g.name} = params["{g.name}"]' for g in s.groups if used & {g.name, *g.members}]
    lines += views
    lines += [f'{adjoint(g.name)} = torch.zeros_like(params["{g.name}"])' for g in s.groups]
    lines += _views(s, "d_")
    lines.append("dx = torch.zeros_like(xs)")
    prev_adjoints = [adjoint(v) for v in s.prev_names]
    lines.append(f"{_unpack(prev_adjoints)} = dstate  # the gradients arriving at the final states")
    lines.append("for t in range(T - 1, -1, -1):")
    body = [f'{v} = saved["{v}"][t]' for v in saved]
    body.append("if past is not None:  # past a sequence's length: the gradients skip the step")
    body.append(f"    carry = {tuple_source(prev_adjoints, quote=False)}")
    body += [f"    {v} = {v}.masked_fill(past[t], 0)" for v in prev_adjoints]
    body.append(
        "# Gradients arriving at this step's new states and output: the loss at t and the later steps."
    )
    for node in d.incoming:
        parts = [adjoint(s.prev(st)) for st in s.states if s.update_of[st] == node]
        if node == s.output:
            parts.append("dy[t]")
        body.append(f"{incoming(node)} = {' + '.join(parts)}")
    for a in d.vjp:
        body += _adjoint(d, p, a.vector)
    body += _gradients(d, p)
    body.append("if past is not None:")
    body += [f"    {v} = torch.where(past[t], carry[{k}], {v})" for k, v in enumerate(prev_adjoints)]
    lines += ["    " + line for line in body]
    lines.append("dparams = {" + ", ".join(f'"{g.name}": {adjoint(g.name)}' for g in s.groups) + "}")
    lines.append(f"return dparams, dx, {tuple_source(prev_adjoints, quote=False)}")
    return lines


def torch_code(d: Derivation) -> TorchCode:
    """The function bodies and parameter names of a cell's torch module, printed and wrapped."""
    p = TorchPrinter()
    s = d.spec
    exprs = [n.expr for n in s.nodes if isinstance(n, ElementwiseNode)]
    exprs += [a.elementwise for a in d.vjp] + [g.expr for g in d.param_gradients if g.expr is not None]
    values, _ = backward_reads(d)
    order = [*s.leaves, *(n.name for n in s.nodes), *(m.name for m in d.intermediates)]
    saved = [v for v in order if v in values]

    def wrapped(lines: list[str]) -> tuple[str, ...]:
        return tuple(w for line in lines for w in wrap(line, indent=4))

    forward, backward = wrapped(_forward(d, p, saved)), wrapped(_backward(d, p, saved))
    _, functions = functions_source(exprs)
    return TorchCode(
        functions_source=functions + _constants(p),
        forward=forward,
        backward=backward,
        saved=tuple(saved),
        names=state_dict_names(s),
        biases=bias_groups(s),
        input=s.input,
    )


def _constants(p: TorchPrinter) -> str:
    """The constants the equations use, as floats (the reference module keeps their exact values)."""
    if not p.constants:
        return ""
    plain = NumpyCodePrinter()
    lines = ["", "", "# Constants of the equations (their exact values: CONSTANTS of the reference module)."]
    return "\n".join(lines + [f"{name} = {plain.doprint(value)}" for name, value in p.constants.items()])
