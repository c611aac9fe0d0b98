"""Jacobian blocks in factored form: the chain rule along the cell's graph, common diagonal factors out.

`Derivation.jacobian_terms` gives a Jacobian as a sum of fully multiplied-out products
(`diag(o (1 - o) tanh c) W_ho + diag(i (1 - i) g o (1 - tanh^2 c)) W_hi + ...`). For a reader the
chain-rule form is clearer: `diag(o (1 - o) tanh c) W_ho + diag(o (1 - tanh^2 c)) dc_t/dh_{t-1}`, each
diagonal factor written once, in front of the sum it multiplies. `factored(d, of, wrt, refs)` builds
that form from the graph (node by node, with `Derivation.partial` for the slopes), and writes a
sub-sum that is itself one of the blocks in `refs` as a reference to it. `expand` multiplies it out
again and `same_terms` compares the result with the engine's terms, so a document prints the factored
form only after checking that it is the engine's Jacobian (`CellTex.jacobian_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from ...engine import Derivation, Diag, Term
from ...spec import LinearNode
from .printer import TexPrinter, visible_width, wrap_diag

__all__ = ["Product", "expand", "factored", "factored_lines", "same_terms"]


@dataclass(frozen=True)
class Product:
    """diag(coeff) times: a weight matrix times `rest`, or the bracketed sum `rest`, or a named block.

    `weight` None and `rest` None and `ref` None: the product is diag(coeff) alone (identity tail).
    """

    coeff: sp.Expr
    weight: str | None = None
    rest: tuple[Product, ...] | None = None
    ref: tuple[str, str] | None = None  # (of, wrt): a block of the step Jacobian shown elsewhere


Sum = tuple[Product, ...]


def _powers(expr: sp.Expr) -> dict[sp.Expr, int]:
    """{base: exponent} of the non-numeric factors of `expr`."""
    out: dict[sp.Expr, int] = {}
    for f in sp.Mul.make_args(expr):  # as built from the slopes: 1 - n**2 stays one factor
        base, exp = f.as_base_exp()
        if not base.is_number and exp.is_Integer and exp > 0:
            out[base] = out.get(base, 0) + int(exp)
    return out


def _common_powers(coeffs: Sequence[sp.Expr]) -> dict[sp.Expr, int]:
    """The factors every coefficient has, with the smallest exponent."""
    common = _powers(coeffs[0])
    for c in coeffs[1:]:
        powers = _powers(c)
        common = {b: min(e, powers[b]) for b, e in common.items() if b in powers}
    return common


def _divide(expr: sp.Expr, powers: dict[sp.Expr, int]) -> sp.Expr:
    """`expr` with the given factors taken out, its other factors left as they are."""
    left = dict(powers)
    out = []
    for f in sp.Mul.make_args(expr):
        base, exp = f.as_base_exp()
        take = min(left.get(base, 0), int(exp)) if exp.is_Integer and exp > 0 else 0
        left[base] = left.get(base, 0) - take
        out.append(base ** (exp - take))
    return sp.Mul(*out)


def _bracket(coeff: sp.Expr, inner: Sum) -> Product:
    """diag(coeff) [inner], with the diagonal factors common to all of `inner` moved in front."""
    common = _common_powers([q.coeff for q in inner])
    if common:
        inner = tuple(Product(_divide(q.coeff, common), q.weight, q.rest, q.ref) for q in inner)
    return Product(coeff * sp.Mul(*[b**e for b, e in common.items()]), None, inner)


def _scaled(coeff: sp.Expr, inner: Sum) -> Sum:
    """diag(coeff) times `inner`: merged into the one product of `inner`, else a bracket."""
    if len(inner) == 1:
        q = inner[0]
        return (Product(coeff * q.coeff, q.weight, q.rest, q.ref),)
    return (_bracket(coeff, inner),)


def _collect(products: list[Product]) -> Sum:
    """Add the coefficients of products with the same tail; drop zero products."""
    acc: dict[tuple, sp.Expr] = {}
    for q in products:
        key = (q.weight, q.rest, q.ref)
        acc[key] = acc.get(key, sp.S.Zero) + q.coeff
    out = []
    for (weight, rest, ref), coeff in acc.items():
        coeff = sp.factor_terms(coeff)
        if coeff != 0:
            out.append(Product(coeff, weight, rest, ref))
    return tuple(out)


def _worth_naming(terms: Sequence[Term]) -> bool:
    """A block is referred to by name unless it is one diagonal factor with a plain product inside."""
    if len(terms) != 1:
        return bool(terms)
    t = terms[0]
    return not (len(t) == 1 and t[0][0] == "diag" and not isinstance(t[0][1], sp.Add))


def factored(d: Derivation, of: str, wrt: str, refs: Sequence[tuple[str, str]] = ()) -> Sum:
    """d of / d wrt in chain-rule form; a sub-Jacobian d v / d wrt with (v, wrt) in `refs` is referenced."""
    memo: dict[str, Sum] = {}

    def walk(v: str, top: bool) -> Sum:
        if not top and (v, wrt) in refs and _worth_naming(d.jacobian_terms(v, wrt)):
            return (Product(sp.S.One, ref=(v, wrt)),)
        if v in memo:
            return memo[v]
        if v == wrt:
            out: Sum = (Product(sp.S.One),)
        elif v in d.spec.leaves:
            out = ()
        else:
            node = d.spec.node(v)
            products: list[Product] = []
            if isinstance(node, LinearNode):
                for weight, u in node.terms:
                    inner = walk(u, False)
                    if inner:
                        identity = inner == (Product(sp.S.One),)
                        products.append(Product(sp.S.One, weight, None if identity else inner))
            else:
                for arg in d.args_of(node):
                    inner = walk(arg, False)
                    if inner:
                        products += _scaled(d.partial(node, arg), inner)
            out = _collect(products)
        memo[v] = out
        return out

    return walk(of, True)


# -- checking against the engine -------------------------------------------------------------------------


def _merge(term: list[tuple[str, object]]) -> Term:
    """Multiply neighbouring diagonal factors; drop diagonal factors equal to one."""
    out: list[tuple[str, object]] = []
    for kind, v in term:
        if kind == "diag" and out and out[-1][0] == "diag":
            out[-1] = ("diag", out[-1][1] * v)
        else:
            out.append((kind, v))
    return tuple(f for f in out if not (f[0] == "diag" and f[1] == 1))


def expand(d: Derivation, s: Sum) -> list[Term]:
    """The factored sum multiplied out into products of factors, as `Derivation.jacobian_terms` gives them."""
    terms: list[Term] = []
    for q in s:
        if q.ref is not None:
            tails = d.jacobian_terms(*q.ref)
        elif q.weight is not None:
            tails = [(("mat", q.weight), *t) for t in (expand(d, q.rest) if q.rest else [()])]
        else:
            tails = expand(d, q.rest) if q.rest else [()]
        terms += [_merge([("diag", q.coeff), *t]) for t in tails]
    return terms


def _canonical(terms: Sequence[Term]) -> dict[tuple, sp.Expr]:
    """{factors after the leading diagonal one: sum of the leading coefficients}."""
    out: dict[tuple, sp.Expr] = {}
    for t in terms:
        lead, rest = (t[0][1], t[1:]) if t and t[0][0] == "diag" else (sp.S.One, t)
        key = tuple((k, sp.factor(v) if k == "diag" else v) for k, v in rest)
        out[key] = out.get(key, sp.S.Zero) + lead
    return out


def same_terms(a: Sequence[Term], b: Sequence[Term]) -> bool:
    """True when two sums of products are the same matrix expression (coefficients equal symbolically)."""
    ca, cb = _canonical(a), _canonical(b)
    keys = set(ca) | set(cb)
    return all(sp.simplify(ca.get(k, 0) - cb.get(k, 0)) == 0 for k in keys)


# -- printing ----------------------------------------------------------------------------------------


def _pieces(p: TexPrinter, s: Sum, ref_symbol, width: int) -> list[str]:
    """Unbreakable pieces of the printed sum; a new line may start before any piece but the first.

    A diagonal factor too wide for a line is broken between its factors or summands (`wrap_diag`).
    """
    out: list[str] = []
    for k, q in enumerate(s):
        head = "" if k == 0 else "+ "
        diag = "" if q.coeff == 1 else p._print(Diag(q.coeff))
        if visible_width(diag) > width - 12:
            wrapped = wrap_diag(p, q.coeff, "", width - 12)
            if len(wrapped) > 1:
                out += [head + wrapped[0], *wrapped[1:-1]]
                head = ""
            diag = wrapped[-1]
        if q.ref is not None:
            out.append(f"{head}{diag} {ref_symbol(*q.ref)}".strip())
        elif q.weight is not None and q.rest is None:
            out.append(f"{head}{diag} {p.name(q.weight)}".strip())
        elif q.rest is None:
            out.append(head + (diag or "I"))
        else:
            inner = _pieces(p, q.rest, ref_symbol, width)
            open_ = f"{head}{diag} {p.name(q.weight) if q.weight else ''}".strip()
            if len(q.rest) == 1:
                out.append(f"{open_} {inner[0]}".strip())
                out += inner[1:]
            else:
                inner[0] = rf"{open_} \Bigl[ {inner[0]}".strip() if open_ else rf"\Bigl[ {inner[0]}"
                inner[-1] += r" \Bigr]"
                out += inner
    return out


def factored_lines(p: TexPrinter, s: Sum, ref_symbol, width: int) -> list[str]:
    """The factored sum as display lines of at most `width` glyphs (broken between summands)."""
    if not s:
        return ["0"]
    lines: list[str] = []
    cur = ""
    for piece in _pieces(p, s, ref_symbol, width):
        if cur and visible_width(f"{cur} {piece}") > width:
            lines.append(cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    lines.append(cur)
    return lines
