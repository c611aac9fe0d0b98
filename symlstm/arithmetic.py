"""A cell's reference module run in another arithmetic: exact values and rounding bounds.

The reference module (`symlstm.backends.reference`) computes with NumPy's operators and module-level
functions only, so a private copy of it runs on object arrays of any numbers that have `+`, `-`, `*`,
`/` and `**`, once its elementwise functions are replaced by ones for those numbers
(`reference_copy`). Three arithmetics use this:

* SymPy expressions: the proof of the generated code (`symlstm.proof_code`);
* mpmath numbers of `DIGITS` digits (`precise_run`): the values the float inputs determine, to judge
  how far a float64 result is from them;
* floats that carry a first-order bound on their accumulated rounding error (`Bounded`, `rounding_run`:
  running error analysis, as in Higham, *Accuracy and Stability of Numerical Algorithms*, section
  3.3): how much rounding alone can move each result of the reference's order of evaluation. Where a
  cell's values cancel heavily, that is far more than `same_rtol` of the result, and two correct
  modules differ by that much (`symlstm.testing.check_same` asks for it as a second opinion).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .activations import ACTIVATIONS, step
from .backends.reference.printer import DEFINITIONS as FLOAT_DEFINITIONS
from .backends.reference.printer import SYMPY_FUNCTIONS
from .definitions import DEFINITIONS

__all__ = ["DIGITS", "Bounded", "precise_run", "reference_copy", "rounding_run"]


def reference_copy(
    source: str | types.ModuleType,
    name: str,
    function: Callable[[str], Callable[[Any], Any]],
    constant: Callable[[sp.Expr], Any],
) -> types.ModuleType:
    """A private copy of a reference module (its source, or the module) in which each elementwise
    function `f` is `np.frompyfunc(function(f))` and each rounded constant is `constant(exact value)`."""
    text = inspect.getsource(source) if isinstance(source, types.ModuleType) else source
    module = types.ModuleType(f"symlstm_copy.{name}")
    exec(compile(text, f"<copy of the reference module of {name}>", "exec"), module.__dict__)
    for fname in SYMPY_FUNCTIONS:
        if hasattr(module, fname):
            setattr(module, fname, np.frompyfunc(function(fname), 1, 1))
    by_name = {fn.__name__: fn for fn in ACTIVATIONS.values()}  # the package's functions, by name
    for cname, value in getattr(module, "CONSTANTS", {}).items():
        setattr(module, cname, constant(sp.sympify(value, locals=by_name)))
    return module


_Z = sp.Symbol("z", real=True)


@cache
def _definition(name: str) -> sp.Expr:
    """The elementwise function `name` of a reference module as an expression in `_Z`: an activation
    by its definition, step as Heaviside(z, 0), SymPy's functions as themselves."""
    fn = SYMPY_FUNCTIONS[name]
    if fn in DEFINITIONS:
        return DEFINITIONS[fn].xreplace({sp.Symbol("a", real=True): _Z})
    return sp.Heaviside(_Z, 0) if fn is step else fn(_Z)


def _run(module: types.ModuleType, to_number: Callable[[float], Any], point: Sequence[Any]) -> tuple:
    """forward, backward and jvp of a copied module at a float point (params, x, state0, dy, dstate,
    (tangent params, tangent x, tangent state0)), every input entry mapped by `to_number`: (y, states,
    (dparams, dx, dstate0), (jvp y, jvp states, tangent of y, tangents of the states))."""

    def numbers(array: np.ndarray) -> np.ndarray:
        out = np.empty(np.shape(array), dtype=object)
        for index, value in np.ndenumerate(np.asarray(array)):
            out[index] = to_number(float(value))
        return out

    params, x, state0, dy, dstate, (tp, tx, ts) = point
    p = {k: numbers(v) for k, v in params.items()}
    xs, s0 = numbers(x), tuple(numbers(s) for s in state0)
    ys, state, tape = module._forward(p, xs, s0)
    grads = module._backward(p, xs, tape, numbers(dy), tuple(numbers(s) for s in dstate))
    tangents = ({k: numbers(v) for k, v in tp.items()}, numbers(tx), tuple(numbers(s) for s in ts))
    return ys, state, grads, module._jvp(p, xs, s0, *tangents)


def _map(result: tuple, fn: Callable[[Any], float]) -> tuple:
    """`fn` of every entry of a run's result, as float64 arrays of the same structure."""

    def floats(array: np.ndarray) -> np.ndarray:
        return np.array([fn(v) for v in np.ravel(array)], dtype=np.float64).reshape(np.shape(array))

    ys, state, (dparams, dx, dstate0), (jy, jstate, jty, jtstate) = result
    return (
        floats(ys),
        tuple(floats(s) for s in state),
        ({k: floats(v) for k, v in dparams.items()}, floats(dx), tuple(floats(s) for s in dstate0)),
        (floats(jy), tuple(floats(s) for s in jstate), floats(jty), tuple(floats(s) for s in jtstate)),
    )


# -- exact values: mpmath ------------------------------------------------------------------------------
# Significant decimal digits: float64 carries about 16, so a cancellation that loses ten of them still
# leaves the exact value known to far more than a float64 can show.
DIGITS = 50
_NAN = mpmath.mpf("nan")


@cache
def _mp_function(name: str) -> Callable[[Any], Any]:
    numeric = sp.lambdify(_Z, _definition(name), modules="mpmath")

    def call(a: Any) -> Any:
        value = numeric(a)  # a value that is not real (log of a negative number) is NaN, as in NumPy
        return mpmath.mpf(value) if isinstance(value, (int, mpmath.mpf)) else _NAN

    return call


def precise_run(reference: types.ModuleType, point: Sequence[Any]) -> tuple:
    """The reference module's results at a float point (as `_run`) evaluated with `DIGITS` digits,
    each rounded to the nearest float64: what the inputs determine, up to that last rounding."""
    with mpmath.workdps(DIGITS):
        module = reference_copy(
            reference, "precise", _mp_function, lambda value: mpmath.mpf(sp.N(value, DIGITS + 5))
        )
        return _map(_run(module, mpmath.mpf, point), float)


# -- rounding bounds: running error analysis -----------------------------------------------------------
def _scalar_only(op: Callable[[Bounded, Any], Any]) -> Callable[[Bounded, Any], Any]:
    """An operation of a Bounded and a number; with an array, NumPy's own operation, entry by entry
    (a constant `const_0 + n2` reaches Bounded's `__add__` first)."""

    def call(self: Bounded, other: Any) -> Any:
        return NotImplemented if isinstance(other, np.ndarray) else op(self, other)

    return call


class Bounded:
    """A float `v` computed in floating point with unit roundoff `u`, and `e`, a first-order bound on
    |v - the exact value of the same expression|. Each operation adds its own rounding, u |result|, to
    the bounds of its operands carried through its derivative. Plain numbers are exact."""

    __slots__ = ("e", "u", "v")

    def __init__(self, v: float, e: float, u: float) -> None:
        self.v, self.e, self.u = v, e, u

    def _made(self, v: float, e: float, ulps: float = 1.0) -> Bounded:
        return Bounded(v, e + ulps * self.u * abs(v), self.u)

    @staticmethod
    def _parts(a: Any) -> tuple[float, float]:
        return (a.v, a.e) if isinstance(a, Bounded) else (float(a), 0.0)

    @_scalar_only
    def __add__(self, other: Any) -> Bounded:
        b, eb = self._parts(other)
        return self._made(self.v + b, self.e + eb)

    __radd__ = __add__

    @_scalar_only
    def __sub__(self, other: Any) -> Bounded:
        b, eb = self._parts(other)
        return self._made(self.v - b, self.e + eb)

    @_scalar_only
    def __rsub__(self, other: Any) -> Bounded:
        b, eb = self._parts(other)
        return self._made(b - self.v, self.e + eb)

    def __neg__(self) -> Bounded:
        return Bounded(-self.v, self.e, self.u)

    @_scalar_only
    def __mul__(self, other: Any) -> Bounded:
        b, eb = self._parts(other)
        return self._made(self.v * b, abs(b) * self.e + abs(self.v) * eb)

    __rmul__ = __mul__

    @_scalar_only
    def __truediv__(self, other: Any) -> Bounded:
        b, eb = self._parts(other)
        v = self.v / b
        return self._made(v, self.e / abs(b) + abs(v) * eb / abs(b))

    @_scalar_only
    def __rtruediv__(self, other: Any) -> Bounded:
        a, ea = self._parts(other)
        v = a / self.v
        return self._made(v, ea / abs(self.v) + abs(v) * self.e / abs(self.v))

    @_scalar_only
    def __pow__(self, other: Any) -> Bounded:
        b, eb = self._parts(other)
        with np.errstate(all="ignore"):
            v = float(np.power(self.v, b))
            e = float(abs(b * np.power(self.v, b - 1))) * self.e if self.e else 0.0
            e += float(abs(v * np.log(abs(self.v)))) * eb if eb else 0.0
        return self._made(v, e, ulps=2.0)  # pow is not correctly rounded: a couple of ulps

    @_scalar_only
    def __rpow__(self, other: Any) -> Bounded:
        a, _ = self._parts(other)
        with np.errstate(all="ignore"):
            v = float(np.power(a, self.v))
            e = float(abs(v * np.log(abs(a)))) * self.e
        return self._made(v, e, ulps=2.0)


# What NumPy's elementwise functions may be off by, in ulps of the result: libm and NumPy's SIMD
# loops keep to a few (the module's sigmoid adds the rounding of 0.5 tanh(0.5 a) + 0.5).
FUNCTION_ULPS = 4.0


@cache
def _float_functions() -> dict[str, Callable[[Any], Any]]:
    """Each elementwise function of a reference module on floats, as the module defines it."""
    namespace: dict[str, Any] = {"np": np}
    for source in FLOAT_DEFINITIONS.values():
        exec(source, namespace)
    return {name: namespace.get(name) or getattr(np, name) for name in SYMPY_FUNCTIONS}


@cache
def _bounded_function(name: str) -> Callable[[Any], Any]:
    floats = _float_functions()
    value = floats[name]
    # its slope by the package's own rule (tanh' = 1 - tanh(z)**2: no overflow where the definition has)
    slope = sp.lambdify(_Z, sp.diff(SYMPY_FUNCTIONS[name](_Z), _Z), modules=[floats, "numpy"])

    def call(a: Any) -> Any:
        with np.errstate(all="ignore"):
            v = float(value(np.float64(a.v)))
            if name == "step":  # exact, unless rounding may have moved its argument across zero
                return Bounded(v, 1.0 if a.e > 0 and abs(a.v) <= a.e else 0.0, a.u)
            e = abs(float(slope(np.float64(a.v)))) * a.e if a.e else 0.0
        return a._made(v, e, ulps=FUNCTION_ULPS)

    return call


def rounding_run(reference: types.ModuleType, point: Sequence[Any], dtype: Any) -> tuple:
    """For each result of the reference module at a float point (as `_run`), a first-order bound on
    what rounding in `dtype` can do to it in the reference's order of evaluation (inputs exact)."""
    u = float(np.finfo(np.dtype(dtype)).eps) / 2

    def constant(value: sp.Expr) -> Bounded:
        c = float(value)
        return Bounded(c, u * abs(c), u)  # a float holds it only rounded

    module = reference_copy(reference, "rounding", _bounded_function, constant)
    with np.errstate(all="ignore"):
        result = _run(module, lambda v: Bounded(v, 0.0, u), point)
    return _map(result, lambda b: b.e if isinstance(b, Bounded) else 0.0)
