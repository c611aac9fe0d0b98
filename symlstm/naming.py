"""One place that maps the cell's symbols to names: in code, in LaTeX, for adjoints and tangents.

Code names are the spec's own (`c_prev`, `a_i`, `W_ii`); adjoints are `d_<name>` (`d_c_prev`),
gradients arriving at a step's outputs `din_<name>`, tangents `tan_<name>`. In LaTeX, vectors carry the
time index (`c_prev` -> `c_{t-1}`, `a_i` -> `a_{i,t}`), parameters do not (`W_ii` -> `W_{ii}`), adjoints
are deltas (`\\delta c_{t-1}`).
"""

from __future__ import annotations

import re

__all__ = ["adjoint", "incoming", "latex_name", "tangent", "tex_escape"]

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}",
}  # fmt: skip
_GREEK = {
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "lambda",
    "mu",
    "rho",
    "sigma",
    "tau",
    "phi",
    "psi",
    "omega",
}


def adjoint(name: str) -> str:
    return f"d_{name}"


def incoming(name: str) -> str:
    return f"din_{name}"


def tangent(name: str) -> str:
    return f"tan_{name}"


def tex_escape(text: str) -> str:
    """Escape TeX special characters in free text (cell titles, sources)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def _base(name: str) -> tuple[str, str]:
    """Split `a_i` into ('a', 'i'); `tanh_c` stays whole (handled by the printer)."""
    head, _, sub = name.partition("_")
    head = rf"\{head}" if head in _GREEK else head
    if len(head) > 1 and not head.startswith("\\"):
        head = rf"\mathrm{{{head}}}"
    return head, re.sub(r"_", ",", sub)


def latex_name(name: str, *, time: str | None = "t", is_param: bool = False) -> str:
    """LaTeX for a code name. Vectors get the time index `time`; `<s>_prev` gets t-1."""
    if name.endswith("_prev"):
        name, time = name[: -len("_prev")], "t-1"
    head, sub = _base(name)
    parts = [p for p in (sub, None if is_param else time) if p]
    return f"{head}_{{{','.join(parts)}}}" if parts else head
