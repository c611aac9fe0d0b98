"""`Document`: a derivation document under construction, with claims checked as they are stated.

A document is a list of blocks of already-printed TeX (sections, prose, equations, tables, figures,
diagrams, intuition boxes, checks), laid out by `templates/document.tex.j2` in a TeX-safe Jinja2
environment (`latex_env`). `Document.claim` and `Document.check` evaluate what they state when they are
called and raise `ClaimError` when it is false, so no document says something that was not confirmed
while it was built. Each check carries a Python expression (`code`) that evaluates to True after the
document's `prelude`: the reader can run it as printed (the tests do).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2
import sympy as sp

from ...naming import tex_escape
from .bibliography import REFERENCES, bibitem
from .printer import TexPrinter

__all__ = ["ClaimError", "Document", "Row", "latex_env", "symbolic_equal", "tt"]

TEMPLATE = "document.tex.j2"


def breakable(escaped: str) -> str:
    """TeX-escaped code as typed: straight quotes, no dash ligatures, line breaks allowed after dots,
    commas, underscores and opening brackets."""
    escaped = escaped.replace("'", r"\textquotesingle{}").replace("-", "-{}")
    for mark in (".", ",", r"\_", "(", "["):
        escaped = escaped.replace(mark, mark + r"\allowbreak{}")
    return escaped


def tt(code: str) -> str:
    """Code in running text: typewriter, escaped, breakable at dots and underscores."""
    return rf"\texttt{{{breakable(tex_escape(code))}}}"


class ClaimError(AssertionError):
    """A claim stated in a document does not hold; the message names the document and the claim."""


@dataclass
class Row:
    """One displayed equation: `lhs = lines[0]` continued on further lines, tagged and labelled."""

    lhs: str
    lines: list[str]
    tag: str = ""
    label: str = ""
    rel: str = "="


@dataclass
class Document:
    """A derivation document under construction: blocks of printed strings for the template.

    Args:
        name: the file name without `.tex` (`lstm`, `t4_lstm_gradient`).
        title: the document title (TeX).
        source: where the document comes from, for the header comment (a path relative to the checkout).
    """

    name: str
    title: str
    source: str
    abstract: str = ""
    prelude: str = ""  # Python that defines the names the checks' code uses
    blocks: list[dict] = field(default_factory=list)
    claims: int = 0
    cited: list[str] = field(default_factory=list)
    _labels: set[str] = field(default_factory=set)

    # prose and structure ---------------------------------------------------------------------------
    def section(self, title: str, label: str = "") -> None:
        self.blocks.append({"kind": "section", "title": title, "label": self._label(label)})

    def subsection(self, title: str, label: str = "") -> None:
        self.blocks.append({"kind": "subsection", "title": title, "label": self._label(label)})

    def text(self, tex: str) -> None:
        """A paragraph of prose, written in TeX by the topic's author."""
        self.blocks.append({"kind": "text", "tex": _dedent(tex)})

    def intuition(self, tex: str, title: str = "Intuition") -> None:
        """A shaded box beside the formal steps: what the equations mean, in words."""
        self.blocks.append({"kind": "intuition", "title": title, "tex": _dedent(tex)})

    def code(self, text: str) -> None:
        """Python shown verbatim (in a small font); it must not contain the line ending a verbatim block."""
        if r"\end{verbatim}" in text:
            raise ValueError(f"{self.name}: a code block may not contain \\end{{verbatim}}")
        self.blocks.append({"kind": "code", "text": text})

    def display(self, tex: str) -> None:
        """An unnumbered display (TeX math, no surrounding $$)."""
        self.blocks.append({"kind": "display", "tex": tex})

    def begin_derivation(self, title: str = "Derivation, step by step") -> None:
        """Open a marked block of steps a reader may verify line by line."""
        self.blocks.append({"kind": "begin_derivation", "title": title})

    def end_derivation(self) -> None:
        self.blocks.append({"kind": "end_derivation"})

    def table(self, caption: str, header: Sequence[str], rows: Iterable[Sequence[str]], cols: str = "",
              label: str = "") -> None:  # fmt: skip
        """A numbered table (a float: caption and table stay together)."""
        rows = [list(r) for r in rows]
        self.blocks.append({
            "kind": "table", "caption": caption, "header": list(header), "rows": rows,
            "cols": cols or "l" * len(header), "label": self._label(label),
        })  # fmt: skip

    def figure(self, file: str, caption: str, label: str = "", width: str = r"0.78\linewidth") -> None:
        """Include `figures/<file>` (drawn by `symlstm latex --pdf`); a boxed note replaces it when absent."""
        self.blocks.append(
            {"kind": "figure", "file": f"figures/{file}", "file_tex": tex_escape(f"figures/{file}"),
             "caption": caption, "label": self._label(label), "width": width}
        )  # fmt: skip

    def diagram(self, tikz: str, caption: str, label: str = "") -> None:
        """A figure whose body is a TikZ picture (see `diagrams`)."""
        self.blocks.append({"kind": "diagram", "tikz": tikz, "caption": caption, "label": self._label(label)})

    def cite(self, *keys: str) -> str:
        """`\\cite{...}` of references of `bibliography.REFERENCES`, listed at the end of the document."""
        unknown = [k for k in keys if k not in REFERENCES]
        if unknown:
            raise KeyError(f"{self.name}: unknown reference(s) {', '.join(unknown)}")
        for k in keys:
            if k not in self.cited:
                self.cited.append(k)
        return rf"\cite{{{','.join(keys)}}}"

    @property
    def figures(self) -> list[str]:
        """File names (under `figures/`) of the figures this document includes."""
        return [b["file"].removeprefix("figures/") for b in self.blocks if b["kind"] == "figure"]

    @property
    def bibliography(self) -> list[tuple[str, str]]:
        return [(k, bibitem(REFERENCES[k])) for k in self.cited]

    @property
    def checks(self) -> list[str]:
        """The code of every claim and check, in order (Python expressions, True after `prelude`)."""
        return [b["code"] for b in self.blocks if b["kind"] == "claim" and b["code"]]

    def _label(self, label: str) -> str:
        if not label or label in self._labels:
            return ""
        self._labels.add(label)
        return label

    # equations --------------------------------------------------------------------------------
    def equations(self, rows: Sequence[Row]) -> None:
        """An `align` block; each row's label is kept only the first time it appears in the document."""
        lines = []
        for k, r in enumerate(rows):
            label = self._label(r.label)
            for j, line in enumerate(r.lines):
                head = f"{r.lhs} &{r.rel} " if j == 0 else r"  &\quad "
                if j < len(r.lines) - 1:
                    end = r" \notag"
                else:
                    end = rf" \tag{{{r.tag}}}" if r.tag else r" \notag"
                    end += rf"\label{{{label}}}" if label else ""
                last = k == len(rows) - 1 and j == len(r.lines) - 1
                lines.append(head + line + end + ("" if last else r" \\"))
        self.blocks.append({"kind": "align", "lines": lines})

    def claim(self, statement: str, lhs: object, rhs: object, *, printer: TexPrinter | None = None,
              lhs_tex: str = "", code: str = "") -> None:  # fmt: skip
        """State `lhs == rhs` (checked now, symbolically) and display it with a check mark.

        Matrix expressions must be structurally equal (both come from the engine or from `Diag`);
        scalars are compared by `simplify(lhs - rhs) == 0`. A false claim raises `ClaimError`.
        """
        if not symbolic_equal(lhs, rhs):
            raise ClaimError(f"{self.name}: claim {statement!r} is false: {lhs} != {rhs}")
        p = printer
        left = lhs_tex or (p._print(lhs) if p else sp.latex(lhs))
        right = p._print(rhs) if p else sp.latex(rhs)
        self._claim_block(statement, f"{left} = {right}", code)

    def check(self, statement: str, holds: bool, *, math: str = "", code: str = "") -> None:
        """State a property computed by the caller (`holds`); a false one raises `ClaimError`."""
        if holds is not True:
            raise ClaimError(f"{self.name}: claim {statement!r} does not hold")
        self._claim_block(statement, math, code)

    def _claim_block(self, statement: str, math: str, code: str) -> None:
        self.claims += 1
        self.blocks.append({"kind": "claim", "statement": statement, "math": math, "code": code,
                            "code_tex": breakable(tex_escape(code)), "number": self.claims})  # fmt: skip

    def render(self) -> str:
        return latex_env().get_template(TEMPLATE).render(doc=self, template=TEMPLATE)


def symbolic_equal(a: object, b: object) -> bool:
    """True when `a` and `b` are the same matrix expression or equal scalar expressions."""
    if isinstance(a, (sp.MatrixExpr, sp.MatrixBase)) or isinstance(b, (sp.MatrixExpr, sp.MatrixBase)):
        if a == b:
            return True
        if isinstance(a, sp.MatrixBase) and isinstance(b, sp.MatrixBase):
            return a.shape == b.shape and all(sp.simplify(x - y) == 0 for x, y in zip(a, b))
        return False
    try:
        return bool(sp.simplify(sp.sympify(a) - sp.sympify(b)) == 0)
    except (sp.SympifyError, TypeError):
        return a == b


def _dedent(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    return "\n".join(lines)


@cache
def latex_env() -> jinja2.Environment:
    """Jinja2 with TeX-safe delimiters: \\VAR{x}, \\BLOCK{for ...}, \\#{comment}; strict undefined."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        line_statement_prefix=None,
        line_comment_prefix=None,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
