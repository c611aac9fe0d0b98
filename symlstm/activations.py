"""Activation functions as SymPy functions whose derivatives are written in their own outputs.

`sigmoid(a).diff(a)` is `sigmoid(a)*(1 - sigmoid(a))` and `tanh(a).diff(a)` is `1 - tanh(a)**2`, so a
backward expression refers to the forward value (the gate `i`, or the cached `tanh(c)`) instead of
recomputing a transcendental. `relu` differentiates to `step(relu(a))`, the 0/1 indicator of a positive
output (PyTorch's convention relu'(0) = 0). Each class also carries its textbook definition, so that the
derivative rule itself is proved symbolically (see `derivative_rule_holds`).
"""

from __future__ import annotations

import sympy as sp

__all__ = ["ACTIVATIONS", "ELEMENTWISE_FUNCTIONS", "derivative_rule_holds", "relu", "sigmoid", "step", "tanh"]

tanh = sp.tanh  # SymPy's own tanh already differentiates to 1 - tanh(x)**2.


class sigmoid(sp.Function):
    """The logistic function 1 / (1 + exp(-a)); its derivative is sigmoid(a) * (1 - sigmoid(a))."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return self * (1 - self)

    @staticmethod
    def definition(a: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-a))

    def _latex(self, printer) -> str:
        return rf"\sigma\left({printer._print(self.args[0])}\right)"


class step(sp.Function):
    """The indicator 1 if the argument is positive, else 0: the derivative of relu, at relu's output."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero  # almost everywhere

    @staticmethod
    def definition(a: sp.Expr) -> sp.Expr:
        return sp.Piecewise((1, a > 0), (0, True))

    def _latex(self, printer) -> str:
        return rf"\mathbb{{1}}\left[{printer._print(self.args[0])} > 0\right]"


class relu(sp.Function):
    """max(a, 0); its derivative is step(relu(a)), with relu'(0) = 0 as in PyTorch."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return step(self)

    @staticmethod
    def definition(a: sp.Expr) -> sp.Expr:
        return sp.Max(a, 0)

    def _latex(self, printer) -> str:
        return rf"\operatorname{{relu}}\left({printer._print(self.args[0])}\right)"


ACTIVATIONS: dict[str, type[sp.Function]] = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu}

# Every function an elementwise expression may use: the package activations and SymPy's elementary
# functions of one argument. Each backend computes each of them (numpy ufuncs, math functions, ...);
# `Cell.elementwise` rejects anything else.
ELEMENTWISE_FUNCTIONS: frozenset[type[sp.Function]] = frozenset(
    {sigmoid, relu, step, sp.tanh, sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.asin,
     sp.acos, sp.atan, sp.asinh, sp.acosh, sp.atanh}
)  # fmt: skip


def derivative_rule_holds(fn: type[sp.Function]) -> bool:
    """Prove that `fn`'s output-form derivative equals the derivative of its textbook definition.

    For relu the claim is checked on each side of the kink (a > 0 and a < 0), where it is differentiable.
    """
    a = sp.Symbol("a", real=True)
    if fn is tanh:
        return sp.simplify(sp.diff(fn(a), a).rewrite(sp.exp) - sp.diff(sp.tanh(a).rewrite(sp.exp), a)) == 0
    if fn is relu:
        pos, neg = sp.Symbol("p", positive=True), sp.Symbol("n", negative=True)
        rule = relu(a).diff(a)  # step(relu(a))
        at = {pos: 1, neg: 0}
        return all(
            sp.simplify(rule.subs(a, v).replace(relu, fn.definition).replace(step, step.definition) - want)
            == 0
            and sp.diff(fn.definition(a), a).subs(a, v) == want
            for v, want in at.items()
        )
    rule = fn(a).diff(a).replace(fn, fn.definition)
    return sp.simplify(rule - sp.diff(fn.definition(a), a)) == 0
