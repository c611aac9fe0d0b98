"""Every cell of the notes and its variants: what each derivation says, and the generator features
they need."""

from __future__ import annotations

import sympy as sp

from symlstm import sigmoid
from symlstm.printing import NumpyCodePrinter


def test_sigmoid_of_a_sum_is_parenthesised():
    """JANET's sigmoid(s - 1): the stable form must halve the whole argument."""
    s, p, c = sp.symbols("s p c", real=True)
    printer = NumpyCodePrinter()
    assert printer.doprint(sigmoid(s - 1)) == "0.5 * np.tanh(0.5 * (s - 1)) + 0.5"
    assert printer.doprint(sigmoid(s)) == "0.5 * np.tanh(0.5 * s) + 0.5"
    np_ns = {"np": __import__("numpy")}
    value = eval(printer.doprint(sigmoid(s + p * c)), {**np_ns, "s": 0.3, "p": -2.0, "c": 0.7})
    assert abs(value - 1 / (1 + __import__("math").exp(-(0.3 - 1.4)))) < 1e-15
