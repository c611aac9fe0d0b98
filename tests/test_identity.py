"""The exact zero test of the proofs (`symlstm.identity`): identities it must see, and non-identities
it must never accept."""

import pytest
import sympy as sp

from symlstm.activations import sigmoid
from symlstm.definitions import independent_function
from symlstm.identity import Canonical, is_zero

a, b = sp.symbols("a b", real=True)
TANH, SIGMOID = independent_function(sp.tanh), independent_function(sigmoid)  # as the proofs write them

IDENTITIES = [
    # the same polynomial with its terms in another order, inside a call
    sp.tanh(a * b + 1) - sp.tanh(1 + b * a),
    # a power of exp is exp of a multiple (any rational), a constant term a factor of its own
    sp.exp(a) ** 2 - sp.exp(2 * a),
    sp.exp(a - b) * sp.exp(b - a) - 1,
    sp.exp(a / 2) ** 2 * sp.exp(-a) - 1,
    sp.exp(3 * a + 1) - sp.exp(1) * sp.exp(a) ** 3,
    sp.exp(sigmoid(a) * b) ** 3 - sp.exp(3 * b * sigmoid(a)),
    # b**(3/2) is b * sqrt(b)
    (a**2 + 1) ** sp.Rational(3, 2) - (a**2 + 1) * sp.sqrt(a**2 + 1),
    # a constant multiple of a denominator (atan' as derived two ways, found by the fuzzer)
    4 / ((2 * a + 1) ** 2 + 4) - 1 / ((a + sp.Rational(1, 2)) ** 2 + 1),
    1 / (3 * a + 3 * sigmoid(b)) ** 2 - 1 / (9 * (a + sigmoid(b)) ** 2),
    -1 / (2 - 2 * a) - 1 / (2 * a - 2),
    # a constant multiple under a root whose root is rational
    sp.sqrt(4 * a**2 + 4) - 2 * sp.sqrt(a**2 + 1),
    1 / sp.sqrt(9 * a**2 + 9 * b) - 1 / (3 * sp.sqrt(a**2 + b)),
    # powers whose exponent is not a number: constant terms split off, bases that are powers
    2 * 2**a - 2 ** (a + 1),
    (2**a) ** 2 - 4**a,
    8**a - 2 ** (3 * a),
    sp.Rational(1, 2) ** a - 2 ** (-a),
    sp.Rational(2, 3) ** a - 2**a / 3**a,
    (1 + a**2) ** (b - 1) - (1 + a**2) ** b / (1 + a**2),
    (1 + a**2) ** (b + sp.Rational(1, 2)) - (1 + a**2) ** b * sp.sqrt(1 + a**2),
    sp.diff((1 + a**2) ** sp.tanh(b), a) - 2 * a * sp.tanh(b) * (1 + a**2) ** (sp.tanh(b) - 1),
    # odd, even and complement functions of an argument and of its negation, in any written form
    sp.sin(a - b) + sp.sin(b - a),
    sp.atan((b - 1) * a) + sp.atan(a - a * b),
    sp.cos((b - 1) * a) - sp.cos(a - a * b),
    TANH(a - b) + TANH(b - a),
    SIGMOID((b - 1) * a) + SIGMOID(a - a * b) - 1,
    # a factor and its inverse, and denominators that factor alike (the second opinion, sp.cancel)
    (sp.exp(a) + 1) * sp.exp(a) / (sp.exp(a) + 1) - sp.exp(a),
    1 / (a**2 - 1) - 1 / ((a - 1) * (a + 1)),
    # a drawn cell's Jacobian (found by the fuzzer): softplus(n0) with n0 = p s + softplus(s)
    b * (sp.exp(a) / (sp.exp(a) + 1) + 2) * (sp.exp(a) + 1) / ((sp.exp(a) + 1) * sp.exp(2 * a) + 1)
    - b * (2 * (sp.exp(a) + 1) + sp.exp(a)) / ((sp.exp(a) + 1) * sp.exp(2 * a) + 1),
]

NON_IDENTITIES = [
    4 / ((2 * a + 1) ** 2 + 4) - 1 / ((a + sp.Rational(1, 2)) ** 2 + 2),
    1 / (2 * a + 2) - 1 / (a + 1),
    sp.sqrt(4 * a**2 + 4) - sp.sqrt(a**2 + 1),
    sp.sqrt(2 * a**2 + 2) - 2 * sp.sqrt(a**2 + 1),
    1 / (a - b) - 1 / (b - a),
    sp.tanh(a) - sp.tanh(b),
    sp.exp(a) ** 2 - sp.exp(3 * a),
    sp.exp(a + 1) - sp.exp(a),
    (sp.exp(a) + 1) * sp.exp(a) / (sp.exp(a) + 2) - sp.exp(a),
    1 / (a**2 - 1) - 1 / ((a - 1) * (a + 2)),
    sp.cos(a - b) - sp.cos(a + b),
    sp.sin(a - b) - sp.sin(b - a),
    SIGMOID(a - b) - SIGMOID(b - a),
    SIGMOID(a - b) + SIGMOID(b - a),
    sp.log(1 + a**2 - b) - sp.log(b - a**2 - 1),
    2**a - 3**a,
    2**a - 2 ** (2 * a),
    sp.Rational(1, 2) ** a - 2**a,
    (1 + a**2) ** b - (1 + a**2) ** (b + 1),
    2 ** (a + sp.Rational(1, 2)) - 2**a,
]


def test_exp_of_a_large_sum_stays_small():
    """exp of a sum of many monomials is one atom: the square of a (20-term sum)**2 inside exp, and its
    derivative, are decided in well under a second (splitting exp of a sum into a product of exps made
    every monomial as long as the sum: a drawn cell ran out of memory)."""
    xs = sp.symbols("x0:20", real=True)
    s = sum(xs) ** 2
    e = sp.exp(-(s**2))
    assert is_zero(sp.diff(e, xs[0]) + 4 * s * sum(xs) * e)
    assert not is_zero(sp.diff(e, xs[0]) + 3 * s * sum(xs) * e)


@pytest.mark.parametrize("expr", IDENTITIES, ids=str)
def test_an_identity_is_zero(expr):
    assert is_zero(expr)


@pytest.mark.parametrize("expr", NON_IDENTITIES, ids=str)
def test_a_non_identity_is_not_zero(expr):
    assert sp.simplify(expr) != 0  # the case itself is a true non-identity
    assert not is_zero(expr)


def test_a_product_too_large_is_decided_by_evaluation_and_one_inside_a_call_is_undecided(monkeypatch):
    """A product too large to multiply out is decided by evaluating the expression as it stands; one
    inside a function's argument (whose form keys the atom) cannot be, and its claim fails."""
    from symlstm import cell, derive, identity
    from symlstm.proof_code import prove_code

    monkeypatch.setattr(identity, "MAX_PAIRS", 1)
    canonical = Canonical()
    assert is_zero((a + b) * (a - b) - a**2 + b**2, canonical) and canonical.randomised
    with pytest.raises(identity.Undecided, match="more than 1 pairs"):
        is_zero(sp.tanh((a + b) * (a - b)) - sp.tanh(a**2 - b**2))
    monkeypatch.setattr(identity, "MAX_PAIRS", 0)
    results = prove_code(derive(cell("gru")))
    undecided = [r for r in results if "undecided at this size" in r.detail]
    assert undecided and not any(r.ok for r in undecided)


def test_a_form_stays_whole_after_exp_reads_it():
    """exp(a + 1) splits off its constant term; the canonical form of a + 1 it read, memoised and shared
    with every later claim, keeps it (tanh(a + 1) is not tanh(a))."""
    canonical = Canonical()
    assert not is_zero(sp.exp(a + 1) - sp.E * sp.exp(a) + 1, canonical)
    assert not is_zero(sp.tanh(a + 1) - sp.tanh(a), canonical)


def test_denominators_are_cleared_at_any_size(monkeypatch):
    """e/(e + 1) + 1/(e + 1) - 1 is zero once its denominators are cleared; times a sum of 231 terms it
    is too large for the second opinion (sp.cancel), and cleared all the same. Nonzero stays nonzero."""
    from symlstm import identity

    monkeypatch.setattr(identity, "CANCEL_TERMS", 0)  # no second opinion: the clearing alone
    e = sp.exp(a)
    large = sp.expand((a + b + 2) ** 20)
    assert is_zero((e / (e + 1) + 1 / (e + 1) - 1) * large)
    assert is_zero(1 / (1 + 1 / (e + 1)) - (e + 1) / (e + 2))  # a denominator within a denominator
    assert not is_zero((e / (e + 1) + 1 / (e + 1) - 1 + 1 / (e + 2)) * large)
    assert not is_zero(e / (e + 1) - 1 / (e + 1))


def test_a_form_too_large_to_clear_is_decided_by_evaluation(monkeypatch):
    """Too many terms to clear: the randomised test (random points modulo random 61-bit primes) proves
    the zeros, with the chance of a wrong zero bounded and recorded, and refutes every planted nonzero
    form: a term off by one part in 10**30, a sign, an exponent, a constant inside a call."""
    from symlstm import identity

    monkeypatch.setattr(identity, "CLEAR_TERMS", 2)
    e = sp.exp(a)
    large = sp.expand((a + b + 2) ** 6)
    canonical = Canonical()
    zeros = [
        e / (e + 1) + 1 / (e + 1) - 1,
        (e / (e + 1) + 1 / (e + 1) - 1) * large,
        1 / (1 + 1 / (e + 1)) - (e + 1) / (e + 2),
        TANH(a) / (TANH(a) + sp.exp(b / 3)) + sp.exp(b / 3) / (sp.exp(b / 3) + TANH(a)) - 1,
    ]
    for expr in zeros:
        assert is_zero(expr, canonical), expr
    assert len(canonical.randomised) == len(zeros)
    assert all(r.error < 1e-60 for r in canonical.randomised)
    tiny = sp.Rational(1, 10**30)
    nonzeros = [
        e / (e + 1) + (1 + tiny) / (e + 1) - 1,
        (e / (e + 1) - 1 / (e + 1) - 1) * large,
        e**2 / (e + 1) + 1 / (e + 1) - 1,
        1 / (1 + 1 / (e + 1)) - (e + 1) / (e + 2) + TANH(a + 1) - TANH(a),
        TANH(a) / (TANH(a) + sp.exp(b / 3)) + sp.exp(b / 2) / (sp.exp(b / 3) + TANH(a)) - 1,
    ]
    for expr in nonzeros:
        assert not is_zero(expr, Canonical()), expr


def test_an_expression_too_large_for_its_form_is_decided_by_evaluation_as_it_stands(monkeypatch):
    """Its form too large to compute (a product of sums multiplied out), an expression is evaluated as it
    stands at random points: zeros proved with a bound, planted nonzero ones refuted."""
    from symlstm import identity

    monkeypatch.setattr(identity, "MAX_PAIRS", 50)
    e, t = sp.exp(a), TANH(a + b)
    big = (a + b + t + 2) ** 4 * (e + b + 1) ** 3
    zeros = [
        big * (e / (e + 1) + 1 / (e + 1) - 1),
        big
        - (b + 1 + e) ** 3 * (t + a + 2 + b) ** 3 * t
        - (b + 1 + e) ** 3 * (t + a + 2 + b) ** 3 * (a + b + 2),
        big * (SIGMOID(a) - 1 + SIGMOID(-a)) + (t - TANH(b + a)) * big,
    ]
    for expr in zeros:
        canonical = Canonical()
        with pytest.raises(identity.TooLarge):
            canonical.of(expr)
        assert is_zero(expr, Canonical()), expr
    canonical = Canonical()
    assert is_zero(zeros[0], canonical) and canonical.randomised[0].error < 1e-40
    nonzeros = [
        big * (e / (e + 1) + 1 / (e + 1) - 1) + sp.Rational(1, 10**30),
        big - (b + 1 + e) ** 3 * (t + a + 2 - b) ** 4,
        big - (b + 1 + e) ** 3 * (t + a + 2 + b) ** 3 * (TANH(b - a) + a + 2 + b),
        big * (e / (e + 1) - 1 / (e + 1)),
    ]
    for expr in nonzeros:
        assert not is_zero(expr, Canonical()), expr


def test_the_randomised_test_draws_the_same_points_on_every_run(monkeypatch):
    """Its randomness is seeded: the same claims give the same bounds (reports regenerate identically)."""
    from symlstm import identity

    monkeypatch.setattr(identity, "CLEAR_TERMS", 2)
    e = sp.exp(a)
    runs = []
    for _ in range(2):
        canonical = Canonical()
        assert is_zero((e / (e + 1) + 1 / (e + 1) - 1) * (a + b) ** 3, canonical)
        runs.append(canonical.randomised)
    assert runs[0] == runs[1]


def test_what_the_zero_test_cannot_decide_is_undecided_never_zero():
    """A power or a quotient of an expression that is identically zero (0**(t + 1) is 1 at t = -1), and
    a non-commutative product, are undecided; symbols of one name but different identity stay apart."""
    from symlstm.identity import Undecided

    t = sp.Symbol("t", real=True)
    zero = (a + 1) ** 2 - a**2 - 2 * a - 1  # zero, unsimplified
    for expr in (1 / (sp.Pow(0, t + 1) + 1) - 1, 1 / (zero ** (t + 1) + 1) - 1, 1 / zero, zero ** (t - 1)):
        with pytest.raises(Undecided):
            is_zero(expr)
    A, B = sp.symbols("A B", commutative=False)
    with pytest.raises(Undecided, match="non-commutative"):
        is_zero(A * B - B * A)
    assert not is_zero(sp.Symbol("x", real=True) - sp.Dummy("x", real=True))


def test_forms_beyond_the_memo_budget_are_decided_by_evaluation_unless_a_call_holds_them(monkeypatch):
    from symlstm import identity

    monkeypatch.setattr(identity, "MAX_STORED_TERMS", 10)
    canonical = Canonical()
    assert is_zero(sp.tanh(a + 1) - sp.tanh(1 + a), canonical)
    assert is_zero((a + b + 1) ** 3 - sp.expand((a + b + 1) ** 3), canonical)  # by evaluation
    assert canonical.randomised and canonical._stored <= 10  # what would pass the budget is not kept
    with pytest.raises(identity.Undecided, match="would hold more than 10 terms"):
        is_zero(sp.tanh((a + b + 1) ** 3) - sp.tanh(sp.expand((a + b + 1) ** 3)), canonical)


def test_symbols_of_one_name_but_other_assumptions_are_different_atoms():
    """SymPy takes Symbol('x', positive=True) and Symbol('x', real=True) as two symbols: so does the
    zero test (a size symbol and a node symbol of one name must not merge)."""
    positive, real, plain = sp.Symbol("x", positive=True), sp.Symbol("x", real=True), sp.Symbol("x")
    assert not is_zero(positive - real)
    assert not is_zero(plain - real)
    assert is_zero(real - sp.Symbol("x", real=True))


def test_the_expression_bounds_count_the_denominators_of_rational_constants():
    """A sum of x / d_i over 40 primes near 2**30 clears to a numerator of about 1 200 bits: the bound on
    its coefficients must be at least that (a constant's denominator is a denominator)."""
    from symlstm import identity

    x = sp.Symbol("x", real=True)
    primes = [sp.prevprime(2**30 - 1000 * k) for k in range(40)]
    expr = sp.Add(*(x / p for p in primes), evaluate=False)
    leaves = Canonical()
    order = identity._post_order(expr)
    forms = {node: leaves.of(node) for node in order if not identity._composite(node)}
    _, height = identity._DagBounds(leaves, forms, 1).of(order)
    assert height >= sum(p.bit_length() for p in primes)
