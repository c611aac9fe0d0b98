"""Python source helpers shared by the generated NumPy-family modules: slices, tuples, wrapping.

Everything here returns text in the form ruff format writes it, so generated modules are format-clean as
written (no formatter runs on them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sympy as sp

from ...spec import ElementwiseNode, FuseGroup, LinearNode

__all__ = [
    "LINE_LENGTH",
    "Zeros",
    "block_span",
    "call_with_dict",
    "docstring_text",
    "equation_text",
    "group_shape",
    "member_view",
    "row_size",
    "size_labels",
    "size_lines",
    "size_place",
    "size_source",
    "tuple_source",
    "wrap",
    "zero_adjoint",
    "zero_adjoints",
]


def block_span(k0: int, k1: int, blocks: int, size: str = "H") -> str:
    """A slice over blocks [k0, k1) of `blocks` blocks of `size` rows, e.g. `H:2 * H`, or '' for all."""
    if k0 == 0 and k1 == blocks:
        return ""

    def at(k: int) -> str:
        return "" if k == 0 else size if k == 1 else f"{k} * {size}"

    lo, hi = at(k0), "" if k1 == blocks else at(k1)
    if " " in lo + hi:  # a complex bound: spaces around the colon, as ruff format writes it
        return f"{lo + ' ' if lo else ''}:{' ' + hi if hi else ''}"
    return f"{lo}:{hi}"


def docstring_text(text: str) -> str:
    """Free text of a spec (title, doc, source) made safe inside the module's triple-quoted docstring:
    backslashes and quotes are escaped, so no spec text can end the docstring and inject code."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def tuple_source(items, quote: bool = True) -> str:
    """Python source of a tuple: ("a", "b"), ("a",), or unquoted (h0, c0)."""
    inner = ", ".join(f'"{item}"' if quote else str(item) for item in items)
    return f"({inner},)" if len(items) == 1 else f"({inner})"


def equation_text(n: LinearNode | ElementwiseNode) -> str:
    if isinstance(n, LinearNode):
        return f"{n.name} = " + " + ".join([f"{w} @ {u}" for w, u in n.terms] + list(n.biases))
    return f"{n.name} = {sp.sstr(n.expr)}"


LINE_LENGTH = 110  # as [tool.ruff] line-length: generated code is ruff-format clean by construction


def wrap(line: str, indent: int) -> list[str]:
    """Split an over-long `name = expr` the way ruff format does: the expression in parentheses."""
    lead = len(line) - len(line.lstrip())
    if indent + len(line) <= LINE_LENGTH or " = " not in line or line.lstrip().startswith("#"):
        return [line]
    target, expr = line.split(" = ", 1)
    pad = " " * lead
    if indent + lead + 4 + len(expr) <= LINE_LENGTH:
        return [f"{target} = (", f"{pad}    {expr}", f"{pad})"]
    # Still too long inside the parentheses: one term per line, as ruff format splits a sum.
    return [f"{target} = (", *(f"{pad}    {term}" for term in _sum_terms(expr)), f"{pad})"]


def _sum_terms(expr: str) -> list[str]:
    """Split code at its top-level binary + and -: 'a + b*(c - d) - e' -> ['a', '+ b*(c - d)', '- e']."""
    terms, depth, start = [], 0, 0
    for k, ch in enumerate(expr):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and k > 0 and expr[k - 1 : k + 2] in (" + ", " - "):
            terms.append(expr[start : k - 1])
            start = k
    terms.append(expr[start:])
    return terms


def group_shape(spec, g: FuseGroup) -> str:
    """Source of a stored array's shape: `(4 * H, I)`, `(H,)`, `(P, H)`."""
    p = spec.param(g.members[0])
    size = p.shape[0]
    rows = size if len(g.members) == 1 else f"{len(g.members)} * {size}"
    return f"({rows}, {p.shape[1]})" if p.is_matrix else f"({rows},)"


def row_size(spec, g: FuseGroup) -> str:
    """The size label of a stored array's blocks of rows ('H', or a declared size)."""
    return spec.param(g.members[0]).shape[0]


def member_view(array: str, g: FuseGroup, member: str, size: str = "H") -> str:
    """Source of the view of one member's block (of `size` rows) in a stored array: `W_ih[H : 2 * H]`."""
    k = g.members.index(member)
    span = block_span(k, k + 1, len(g.members), size)
    return f"{array}[{span}]" if span else array


def size_lines(spec, output: bool, also: Iterable[str] = ()) -> list[str]:
    """`H = params["W_hh"].shape[1]`, ...: the sizes a function of the reference-style modules reads
    (not I), each off the stored parameters: the rows of the fused arrays' blocks (their views), with
    `output` the size of y, and the labels `also`."""
    needed = {row_size(spec, g) for g in spec.groups if len(g.members) > 1} | set(also)
    needed |= {spec.size(spec.output)} if output else set()
    return [f"{label} = {size_source(spec, label)}" for label, _ in spec.sizes if label in needed - {"I"}]


@dataclass(frozen=True)
class Zeros:
    """How a target writes a zero array of a step: like another array, or of a size (`{}` the size's
    label), and its names for the step's x and dy."""

    like: str  # "np.zeros_like({})"
    sized: str  # "np.zeros((xs.shape[1], {}), dtype=xs.dtype)"
    x: str  # "xs[t]"
    dy: str  # "dy[t]"


def zero_adjoint(d, vector: str, zeros: Zeros) -> str:
    """The adjoint of a vector nothing reads, zero: like x for the input, like dy for a vector of y's
    size, else of its own size (`zero_adjoints`)."""
    sized = zero_adjoints(d)
    if vector in sized:
        return zeros.sized.format(sized[vector])
    return zeros.like.format(zeros.x if vector == d.spec.input else zeros.dy)


def zero_adjoints(d) -> dict[str, str]:
    """The vectors nothing reads (a zero adjoint) whose size is not y's, by name: their size label. A
    zero adjoint of y's size is written like the step's dy; these need their own size."""
    s = d.spec
    out = {}
    for a in d.vjp:
        if a.vector == s.input or a.incoming or a.elementwise != 0 or a.linear:
            continue
        if s.size(a.vector) != s.size(s.output):
            out[a.vector] = s.size(a.vector)
    return out


def size_labels(spec) -> list[str]:
    """The sizes besides I that some parameter's shape has, in the cell's order (H, P, ...)."""
    in_params = {label for p in spec.params for label in p.shape}
    return [label for label, _ in spec.sizes if label != "I" and label in in_params]


def size_place(spec, label: str) -> tuple[str, int, int]:
    """Where size `label` is read off the stored parameters: (array, axis, blocks along that axis)."""
    for g in spec.groups:
        shape = spec.param(g.members[0]).shape
        for axis, name in enumerate(shape):
            if name == label:
                return g.name, axis, len(g.members) if axis == 0 else 1
    raise ValueError(f"no parameter of cell {spec.name!r} has size {label!r}")


def size_source(spec, label: str) -> str:
    """Source reading size `label` off the stored parameters `params`: `params["W_hh"].shape[1]`,
    `params["b_ih"].shape[0] // 4`."""
    name, axis, blocks = size_place(spec, label)
    return f'params["{name}"].shape[{axis}]' + (f" // {blocks}" if blocks > 1 else "")


def call_with_dict(call: str, items: dict[str, str], indent: int) -> list[str]:
    """`call({"k": v, ...})` as ruff format writes it at `indent`: on one line, the dict on a line of
    its own, or one item per line."""
    flat = "{" + ", ".join(f'"{k}": {v}' for k, v in items.items()) + "}"
    if indent + len(call) + len(flat) + 2 <= LINE_LENGTH:
        return [f"{call}({flat})"]
    if indent + 4 + len(flat) <= LINE_LENGTH:
        return [f"{call}(", f"    {flat}", ")"]
    return [f"{call}(", "    {", *(f'        "{k}": {v},' for k, v in items.items()), "    }", ")"]
