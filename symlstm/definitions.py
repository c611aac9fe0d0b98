"""The activations by their textbook definitions: what the proofs compare the package's rules with.

The derivation engine differentiates an activation with the rule its class carries (`sigmoid' =
sigmoid (1 - sigmoid)`, in output form). A proof that differentiated the same class on its reference
side would share that rule and could not see it wrong. So the reference side of every proof
(`symlstm.proof`, `symlstm.proof_code`) uses, in place of each package activation, an *independent*
function whose derivative SymPy obtains here from the definition alone (`sigmoid(a) = 1 / (1 +
exp(-a))`): `d definition / da`, rewritten in terms of the output by solving `s = definition(a)` for
`a`. Its values are opaque atoms, like the package's, so the proofs stay polynomial identities.

`relu'` at 0 is a convention, not a consequence of `max(a, 0)`: the package takes relu'(0) = 0, as
PyTorch does, so the derived derivative `Heaviside(s)` is taken with Heaviside(0) = 0, and `step`,
the name of relu's derivative in the generated code, is compared as its definition `Heaviside(a, 0)`.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from .activations import relu, sigmoid, step

__all__ = ["DEFINITIONS", "independent", "independent_function", "is_odd", "output_form_derivative"]

_A = sp.Symbol("a", real=True)
_S = sp.Symbol("s", real=True)

# Each package activation's textbook definition, as a function of its argument.
DEFINITIONS: dict[type[sp.Function], sp.Expr] = {
    sigmoid: 1 / (1 + sp.exp(-_A)),
    sp.tanh: (sp.exp(_A) - sp.exp(-_A)) / (sp.exp(_A) + sp.exp(-_A)),
    relu: sp.Max(_A, 0),
}


@cache
def output_form_derivative(fn: type[sp.Function]) -> sp.Expr:
    """d definition(a) / da written in the output s = definition(a), derived by SymPy.

    Raises ValueError when no inverse gives a derivative free of `a` (the definition is then not
    usable as an output-form rule).
    """
    definition = DEFINITIONS[fn]
    derivative = sp.diff(definition, _A)
    for root in sp.solve(sp.Eq(definition, _S), _A):
        form = sp.simplify(derivative.subs(_A, root))
        if _A not in form.free_symbols:
            return form.replace(sp.Heaviside, lambda x, *_: sp.Heaviside(x, 0))
    raise ValueError(f"no output form of the derivative of {fn.__name__}'s definition {definition}")


@cache
def is_odd(fn: type[sp.Function]) -> bool:
    """Whether fn's definition is odd, definition(-a) == -definition(a) (tanh), proved by SymPy."""
    definition = DEFINITIONS[fn]
    return sp.simplify(definition.subs(_A, -_A) + definition) == 0


@cache
def is_complement(fn: type[sp.Function]) -> bool:
    """Whether definition(-a) == 1 - definition(a) (the sigmoid), proved by SymPy."""
    definition = DEFINITIONS[fn]
    return sp.simplify(definition.subs(_A, -_A) + definition - 1) == 0


@cache
def _independent_class(fn: type[sp.Function]) -> type[sp.Function]:
    """A function with fn's derivative derived from its definition. When the definition is odd it takes
    the minus sign out of its argument as SymPy's own odd functions do (tanh(-a) -> -tanh(a)), and at a
    constant it is the definition's value (tanh(0) -> 0), so that it meets expressions SymPy wrote in
    those forms."""
    form = output_form_derivative(fn)

    def fdiff(self: sp.Function, argindex: int = 1) -> sp.Expr:
        return form.xreplace({_S: self})

    definition, odd = DEFINITIONS[fn], is_odd(fn)

    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg.is_number:  # a constant: its value by the definition (tanh(0) = 0, as SymPy's tanh)
            return definition.xreplace({_A: arg})
        return -cls(-arg) if odd and arg.could_extract_minus_sign() else None

    namespace: dict[str, object] = {"nargs": 1, "fdiff": fdiff, "eval": classmethod(eval)}
    # what the zero test (symlstm.identity) may use: F(-a) = -F(a), or F(-a) = 1 - F(a)
    namespace |= {"odd_function": odd, "complement_function": is_complement(fn)}
    return type(f"{fn.__name__}_by_definition", (sp.Function,), namespace)


def _heaviside0(a: sp.Expr) -> sp.Expr:
    return sp.Heaviside(a, 0)


def independent(expr: sp.Expr) -> sp.Expr:
    """`expr` with every package activation replaced by its independent counterpart, and `step` by its
    definition Heaviside(a, 0)."""
    out = sp.sympify(expr)
    # Rebuilding a node evaluates it, and that can change its type (tanh(-a) becomes -tanh(a), a Mul),
    # which `replace` then does not revisit: repeat until no package activation is left.
    while out.has(*DEFINITIONS):
        for fn in DEFINITIONS:
            out = out.replace(fn, _independent_class(fn))
    return out.replace(step, _heaviside0)


def independent_function(fn: type[sp.Function]):
    """The function to call in place of `fn` on the reference side (and when running generated code
    on SymPy arrays): the independent class, Heaviside(a, 0) for `step`, else `fn` itself."""
    if fn is step:
        return _heaviside0
    return _independent_class(fn) if fn in DEFINITIONS else fn
