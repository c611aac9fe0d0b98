"""What every generated NumPy-family module says about its cell before any code: the docstring's
text, the equations, the stored parameters and the interop texts (`templates/constants.py.j2`)."""

from __future__ import annotations

from dataclasses import dataclass

from ...engine import Derivation
from .source import docstring_text, equation_text, group_shape, size_labels, size_place, tuple_source

__all__ = ["ModuleHead", "SizeTexts", "module_head", "size_texts"]


@dataclass(frozen=True)
class SizeTexts:
    """The cell's sizes as the module's source writes them (`templates/constants.py.j2`)."""

    table: str  # SIZES: {"I": "input_size", "H": "hidden_size", "P": "proj_size"}
    state_sizes: str  # STATE_SIZES: ("P", "H")
    output: str  # OUTPUT_SIZE: "P"
    keywords: str  # the declared sizes as keyword-only parameters: "proj_size=None, " (after "*, ")
    passed: str  # the same passed on by keyword: ", proj_size=proj_size"
    locals: tuple[str, ...]  # "P = proj_size" in param_shapes
    extra: bool  # whether the cell declares sizes besides I and H
    sources: str  # SIZE_SOURCES: where each size but I is read, {"H": ("W_hh", 1, 1)}: (array, axis, blocks)


def size_texts(spec) -> SizeTexts:
    extra = spec.extra_sizes
    return SizeTexts(
        table="{" + ", ".join(f'"{label}": "{keyword}"' for label, keyword in spec.sizes) + "}",
        state_sizes=tuple_source(spec.state_sizes),
        output=f'"{spec.size(spec.output)}"',
        keywords="".join(f"{keyword}=None, " for _, keyword in extra),  # None: _check_sizes says so
        passed="".join(f", {keyword}={keyword}" for _, keyword in extra),
        locals=tuple(f"{label} = {keyword}" for label, keyword in extra),
        extra=bool(extra),
        sources="{"
        + ", ".join(f'"{label}": {_place_source(spec, label)}' for label in size_labels(spec))
        + "}",
    )


def _place_source(spec, label: str) -> str:
    name, axis, blocks = size_place(spec, label)
    return f'("{name}", {axis}, {blocks})'


@dataclass(frozen=True)
class ModuleHead:
    spec_name: str
    title: str
    doc: str
    source: str
    states: tuple[str, ...]
    states_tuple: str
    output: str
    equations: tuple[str, ...]  # "(n) node = expression", numbered as in the cell's document
    groups: tuple[dict, ...]  # stored parameters: name, members, shape source
    torch: dict  # texts for the torch.nn conversion's docstrings
    same_size: bool
    sizes: SizeTexts


def module_head(d: Derivation) -> ModuleHead:
    s = d.spec
    groups = []
    for g in s.groups:
        shape = group_shape(s, g)
        groups.append({"name": g.name, "members": list(g.members), "shape_code": shape,
                       "shape_text": shape, "members_tuple": tuple_source(g.members)})  # fmt: skip
    torch = s.torch or {}
    return ModuleHead(
        spec_name=s.name,
        title=docstring_text(s.title),
        doc=docstring_text(s.doc),
        source=docstring_text(s.source),
        states=tuple(s.states),
        states_tuple=tuple_source(s.states),
        output=s.output,
        equations=tuple(f"({d.equation_numbers[('fwd', n.name)]}) {equation_text(n)}" for n in s.nodes),
        groups=tuple(groups),
        torch={
            "module_text": f"torch.nn.{torch['module']}" if torch.get("module") else "torch.nn",
            "missing": ""
            if torch.get("module")
            else " torch.nn has no module computing this cell: raises NotImplementedError.",
            "names": list(torch.get("names", {}).items()),
        },
        same_size=s.same_size,
        sizes=size_texts(s),
    )
