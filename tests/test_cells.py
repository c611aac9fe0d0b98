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


def test_long_tangent_sums_wrap_one_term_per_line_as_ruff_does():
    """FGR's ten-term tangents do not fit in parentheses on one line: split at top-level + and -."""
    from symlstm.codegen import _wrap

    terms = [f"tan_x{k} @ W_{k}.T" for k in range(8)]
    line = "        tan_a = " + " + ".join(terms) + " - (a - b) * c"
    out = _wrap(line, indent=4)
    assert out[0] == "        tan_a = (" and out[-1] == "        )"
    assert out[1:-1] == [f"            {terms[0]}", *(f"            + {t}" for t in terms[1:]),
                         "            - (a - b) * c"]  # fmt: skip
    assert _wrap("    y = a + b", indent=4) == ["    y = a + b"]
