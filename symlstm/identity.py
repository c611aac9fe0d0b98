"""Exact zero test for the large expressions of the proofs: canonical sparse polynomials.

`sympy.expand` re-expands every argument of every function call at every occurrence; the expressions
of an unrolled cell's gradient share most of their subtrees, so that costs minutes. `Canonical` writes an
expression, once per distinct subtree (SymPy's expressions are hashed and shared), as a polynomial with
rational coefficients in *atoms*:

* symbols, and calls `F(args)` keyed by the class and the canonical forms of their arguments (so
  `tanh(a*b + c)` and `tanh(c + b*a)` are one atom);
* for a non-monomial b, `1/b` as (1/c) times the atom 1/(b/c), c the coefficient of b's leading
  monomial, so that 4/(4 a**2 + 4 a + 5) and 1/(a**2 + a + 5/4) are one atom: b**-2 is that atom squared;
* for a rational power b**(p/q), b**k * r**j with the atom r = b**(1/q), p = k q + j, 0 <= j < q, so
  that b**(3/2) is b * sqrt(b) (r normalised as 1/b is, where c**(1/q) is rational);
* for a power b**e whose exponent is not a rational number, b**k (k the constant term of e) times the
  atom b**q to the power c, c q the rest of e (as for exp, below): 2**(t + 1) is 2 * 2**t;
* for exp, exp(c q) as the atom exp(q) to the power c, q the primitive polynomial of the argument
  (coprime integer coefficients, the leading one positive) and c a rational, so that exp(a)**2 is
  exp(2 a) and exp(-a) is 1/exp(a): exponents of exp atoms are rationals (exp(q)**c = exp(c q) for any
  c). The argument stays one atom: exp of a large sum is not split into a product of exps, which would
  make every monomial as long as the sum (exp(a + b) and exp(a) exp(b) are then different atoms).

Two expressions with the same canonical polynomial are equal, so `is_zero` never accepts a nonzero
expression. A nonzero form is then cleared of its denominators (multiplied by each b of its atoms 1/b,
with (1/b) * b as 1): a zero numerator is a proof, of any size. A small nonzero form gets a second,
exact opinion from `sp.cancel` over its atoms (a
factor cancelling its inverse, b/b == 1, and denominators that factor alike: 1/(a**2 - 1) against
1/((a - 1) (a + 1))). It can still miss an identity that needs more algebra (an identity between
transcendental atoms, exp(a + b) against exp(a) exp(b)): a proof can then fail when the claim holds, and
this exact part is never wrong when it passes.

A form with too many terms to clear (`CLEAR_TERMS`) is decided by evaluation instead (`Canonical.
evaluated`): its atoms, taken as independent variables (each call, root and exp atom a variable y, each
inverse atom 1/b the value of 1/b), are given random values modulo a random prime of `MODULUS_BITS`
bits, `TRIALS` times. A nonzero value refutes the claim; zero every time proves it except with a
probability that the Schwartz-Zippel lemma bounds by the degree of the cleared numerator over the
prime, plus the chance that the prime divides all of the numerator's coefficients: the bound is
computed and reported (`Randomised`), typically below 1e-60. The points come from a fixed seed, so that
proofs repeat exactly: the bound is the chance over that seed's draw for a claim that does not depend on
it (one built from the published seed can pass; the claims of a derivation are not built so). An
expression whose canonical form is itself too large to compute (`TooLarge`) is evaluated the same way
as it stands (`Canonical.evaluated_expression`): its sums, products and integer powers from their arguments'
values, every other subexpression (a call, an exp, a root) by its own canonical form, with bounds that
follow the expression. Only a claim whose atoms themselves are too large stays undecided.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

__all__ = ["Canonical", "Randomised", "TooLarge", "Undecided", "is_zero"]

Monomial = tuple[tuple[int, int | Fraction], ...]  # sorted (atom index, exponent: rational for exp atoms)
Polynomial = dict[Monomial, Fraction]


def _mul_monomials(a: Monomial, b: Monomial) -> Monomial:
    if not a:
        return b
    if not b:
        return a
    merged: dict[int, int | Fraction] = dict(a)
    for k, e in b:
        merged[k] = merged.get(k, 0) + e
    return tuple(sorted((k, e) for k, e in merged.items() if e))  # x * x**-1 is 1


def _accumulate(out: Polynomial, b: Polynomial, sign: int = 1) -> None:
    """out += sign * b, in place (a term that cancels is dropped)."""
    for m, c in b.items():
        v = out.get(m, 0) + sign * c
        if v:
            out[m] = v
        else:
            out.pop(m, None)


def _add(a: Polynomial, b: Polynomial, sign: int = 1) -> Polynomial:
    out = dict(a)
    _accumulate(out, b, sign)
    return out


# The most pairs of terms one product of polynomials may multiply out (about a second and a few hundred
# MB at most); a larger one is `TooLarge`, and its claim is decided by evaluation as it stands.
MAX_PAIRS = 2_000_000
# The most terms the memoised forms of one `Canonical` (one cell's claims) may hold in all (about 1 KB a
# term: 2 GB); a form that would pass it is not kept and is `TooLarge`, as above.
MAX_STORED_TERMS = 2_000_000


# Clearing a form of denominators (`Canonical.cleared`): the most terms it starts from, and the most
# pairs of terms it multiplies out in all (some seconds).
CLEAR_TERMS = 20_000
CLEAR_PAIRS = 1_000_000


class Undecided(ArithmeticError):
    """The zero test cannot decide the expression at this size: neither proved nor refuted."""


class TooLarge(Undecided):
    """The expression's canonical form is too large to compute."""


# The randomised zero test (`Canonical.evaluated`): the size of its primes, and how many evaluations,
# each at its own random point modulo its own random prime, must all give zero.
MODULUS_BITS = 61
TRIALS = 4
TARGET_ERROR = 1e-40  # more trials where the degree bound is so high that four leave more
_RANDOM_SEED = 20261206  # fixed: the same claims draw the same points on every run (module docstring)


@dataclass(frozen=True)
class Randomised:
    """A zero decided by evaluation: the probability that a nonzero form would have passed is below
    `error` (the degree bound `degree` and the coefficient size bound `height_bits` give it)."""

    degree: int
    height_bits: int
    trials: int
    error: float


def _mul(a: Polynomial, b: Polynomial) -> Polynomial:
    if len(a) * len(b) > MAX_PAIRS:
        raise TooLarge(
            f"a product of polynomials of {len(a)} and {len(b)} terms (more than {MAX_PAIRS} pairs)"
        )
    if len(a) > len(b):
        a, b = b, a
    out: Polynomial = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = _mul_monomials(ma, mb)
            v = out.get(m, 0) + ca * cb
            if v:
                out[m] = v
            else:
                out.pop(m, None)
    return out


def _pow(a: Polynomial, n: int) -> Polynomial:
    result: Polynomial = {(): Fraction(1)}
    base = a
    while n:
        if n & 1:
            result = _mul(result, base)
        n >>= 1
        if n:
            base = _mul(base, base)
    return result


def _content(p: Polynomial) -> tuple[Fraction, Polynomial]:
    """(c, q) with p = c q, q of coprime integer coefficients and a positive leading one."""
    numerators = [c.numerator for c in p.values()]
    denominators = [c.denominator for c in p.values()]
    content = Fraction(math.gcd(*numerators), math.lcm(*denominators))
    if p[max(p)] < 0:
        content = -content
    return content, {m: c / content for m, c in p.items()}


class Canonical:
    """Canonical polynomials of SymPy expressions, memoised per subtree; atoms shared across calls."""

    def __init__(self) -> None:
        self._memo: dict[sp.Basic, Polynomial] = {}
        self._stored = 0  # terms held by the memo, against MAX_STORED_TERMS
        self._atoms: dict[object, int] = {}
        self._inverses: dict[int, Polynomial] = {}  # atom index of 1/b -> b
        self.randomised: list[Randomised] = []  # the zeros decided by evaluation, in order
        self._random = random.Random(_RANDOM_SEED)

    def _atom(self, key: object, exponent: int | Fraction = 1) -> Polynomial:
        index = self._atoms.setdefault(key, len(self._atoms))
        return {((index, exponent),): Fraction(1)}

    def _exponential(self, key: tuple, exponent: Polynomial) -> Polynomial:
        """The atom (*key, q) to the power c, for an exponent c q (c rational, q primitive): one atom for
        every rational multiple of one exponent (exp(a)**2 is exp(2 a), 2**t 2**t is 2**(2 t))."""
        c, q = _content(exponent)
        return self._atom((*key, self._key(q)), c)

    @staticmethod
    def _key(p: Polynomial) -> frozenset:
        return frozenset(p.items())

    def of(self, expr: sp.Basic) -> Polynomial:
        """The canonical polynomial of `expr`."""
        hit = self._memo.get(expr)
        if hit is not None:
            return hit
        out = self._convert(expr)
        if self._stored + len(out) > MAX_STORED_TERMS:  # not kept: the memo stays within its budget
            raise TooLarge(f"the forms of this cell's claims would hold more than {MAX_STORED_TERMS} terms")
        self._memo[expr] = out
        self._stored += len(out)
        return out

    @staticmethod
    def _normalised(base: Polynomial) -> tuple[Fraction, Polynomial]:
        """(c, base / c) with c the coefficient of base's leading monomial: base / c is the same
        polynomial for every constant multiple of base."""
        lead = base[max(base)]
        return lead, {m: c / lead for m, c in base.items()}

    def _integer_power(self, base: Polynomial, n: int) -> Polynomial:
        if not base and n < 0:
            raise Undecided("a division by an expression that is identically zero")
        if n >= 0:
            return _pow(base, n)
        if len(base) == 1:  # a monomial: negative exponents are exact
            ((m, c),) = base.items()
            return {tuple((k, x * n) for k, x in m): Fraction(1) / c ** (-n)}
        lead, unit = self._normalised(base)
        atom = self._atom(("inverse", self._key(unit)))
        self._inverses[next(iter(atom))[0][0]] = unit
        inverse = _pow(atom, -n)
        return {m: c / lead ** (-n) for m, c in inverse.items()}

    def rational(self, p: Polynomial) -> sp.Expr:
        """`p` as a SymPy rational function: each inverse atom 1/b written as 1/b, every other atom
        (calls, roots, exps) a symbol of its own."""
        terms = []
        for monomial, c in p.items():
            factors = [sp.Rational(c.numerator, c.denominator)]
            for k, e in monomial:
                atom = 1 / self.rational(self._inverses[k]) if k in self._inverses else sp.Symbol(f"atom{k}")
                exponent = sp.Rational(e.numerator, e.denominator) if isinstance(e, Fraction) else e
                factors.append(atom**exponent)
            terms.append(sp.Mul(*factors))
        return sp.Add(*terms)

    def cleared(self, p: Polynomial, rounds: int = 4) -> Polynomial:
        """`p` times the denominator b of each of its inverse atoms 1/b, to the highest power `p` holds
        it, with (1/b) * b written as 1: a polynomial N with p = N / D, zero exactly where `p` is (so
        that e/(e + 1) + 1/(e + 1) - 1 clears to 0). Repeated while the denominators bring inverse
        atoms of their own, at most `rounds` times."""
        if len(p) > CLEAR_TERMS and any(k in self._inverses for m in p for k, _ in m):
            raise Undecided(f"a form of {len(p)} terms with denominators (more than {CLEAR_TERMS})")
        pairs = 0  # terms multiplied so far, against the clearing's budget
        for _ in range(rounds):
            inverses = {k for monomial in p for k, _ in monomial if k in self._inverses}
            if not inverses:
                break
            order = sorted(inverses)
            # the terms by the powers of the inverse atoms they hold: each group is multiplied once
            groups: dict[tuple[int, ...], Polynomial] = {}
            for monomial, c in p.items():
                powers = dict(monomial)
                rest = tuple((k, e) for k, e in monomial if k not in inverses)
                exponents = tuple(powers.get(k, 0) for k in order)
                if any(Fraction(e).denominator != 1 for e in exponents):  # never made so: not cleared
                    raise Undecided("a fractional power of an inverse atom")
                group = groups.setdefault(tuple(int(e) for e in exponents), {})
                group[rest] = c
            highest = [max(key[j] for key in groups) for j in range(len(order))]
            powers_of: dict[tuple[int, int], Polynomial] = {}
            out: Polynomial = {}
            for key, group in groups.items():
                for j, k in enumerate(order):
                    n = highest[j] - key[j]
                    if (k, n) not in powers_of:
                        powers_of[k, n] = _pow(self._inverses[k], n)
                    pairs += len(group) * len(powers_of[k, n])
                    if pairs > CLEAR_PAIRS:
                        raise Undecided(f"clearing denominators multiplies out more than {CLEAR_PAIRS} pairs")
                    group = _mul(group, powers_of[k, n])
                _accumulate(out, group)
            p = out
        return p

    def evaluated(self, p: Polynomial) -> Randomised | None:
        """The randomised zero test of `p` (module docstring): None if `p` is nonzero at one of the
        points (a proof that it is not zero), else the bound on the chance that a nonzero `p` passed."""
        reached, stack = set(), [p]  # the atoms of p and, through the inverse atoms, of their b
        while stack:
            for monomial in stack.pop():
                for k, _ in monomial:
                    if k not in reached:
                        reached.add(k)
                        if k in self._inverses:
                            stack.append(self._inverses[k])
        scale = self._scale([p, *(self._inverses[k] for k in reached if k in self._inverses)])
        degree, height = self._bounds(p, scale, {}, {})
        variables = sorted(k for k in reached if k not in self._inverses)
        return self._trials(
            lambda prime, values: _value(p, values, self._inverses, scale, prime, {}),
            variables,
            degree,
            height,
        )

    def _scale(self, forms: list[Polynomial]) -> int:
        """L: every atom that is not an inverse is y**L for a variable y, so that its rational exponents
        in `forms` become integers."""
        if any(Fraction(e).denominator != 1 for q in forms for m in q for k, e in m if k in self._inverses):
            raise Undecided("a fractional power of an inverse atom")
        return math.lcm(*(Fraction(e).denominator for q in forms for m in q for k, e in m))

    def _trials(
        self,
        evaluate: Callable[[int, dict[int, int]], int | None],
        variables: list[int],
        degree: int,
        height: int,
    ) -> Randomised | None:
        """`evaluate(prime, values)` (None where a denominator vanishes) at random points, each modulo
        its own random prime, until the chance that a nonzero form gives zero every time is below
        `TARGET_ERROR` (at least `TRIALS` times): None at the first nonzero value."""
        prime_count = 2 ** (MODULUS_BITS - 1) / (MODULUS_BITS * math.log(2))  # primes of that size, at least
        by_prime = (height / (MODULUS_BITS - 1) + 1) / prime_count  # a prime dividing every coefficient
        by_point = degree / 2 ** (MODULUS_BITS - 1)  # a point on the numerator's zeros (Schwartz-Zippel)
        if by_prime + by_point >= 0.5:
            raise Undecided(f"a degree bound ({degree}) too high for the randomised test")
        trials = max(TRIALS, math.ceil(math.log(TARGET_ERROR) / math.log(by_prime + by_point)))
        error = 1.0
        for _ in range(trials):
            prime = self._prime()
            draws = 0
            while True:  # a point where a denominator vanishes is drawn again, a few times
                draws += 1
                value = evaluate(prime, {k: self._random.randrange(1, prime) for k in variables})
                if value is not None:
                    break
                if draws == 8:
                    raise Undecided("a denominator that vanishes at every point drawn")
            if value:
                return None
            error *= min(1.0, by_prime + draws * by_point)  # any of the points drawn may have been on them
        found = Randomised(degree, height, trials, error)
        self.randomised.append(found)
        return found

    def evaluated_expression(self, expr: sp.Basic) -> Randomised | None:
        """The randomised zero test of an expression whose canonical form is too large to compute: its
        sums, products and integer powers evaluated as they stand, every other subexpression (a call,
        an exp, a root or a symbolic power, a symbol, a number) by its canonical form, which is small.
        The bounds on the degree and the coefficients follow the expression (`_DagBounds`)."""
        leaves = Canonical()
        order = _post_order(expr)
        forms = {node: leaves.of(node) for node in order if not _composite(node)}
        scale = leaves._scale([*forms.values(), *leaves._inverses.values()])
        degree, height = _DagBounds(leaves, forms, scale).of(order)
        variables = sorted(k for k in leaves._atoms.values() if k not in leaves._inverses)

        def evaluate(prime: int, values: dict[int, int]) -> int | None:
            inverses: dict = {}
            at: dict[sp.Basic, int | None] = {}
            for node in order:
                if node in forms:
                    at[node] = _value(forms[node], values, leaves._inverses, scale, prime, inverses)
                elif node.is_Pow:
                    base, n = at[node.base], int(node.exp)
                    at[node] = None if base is None or (n < 0 and base == 0) else pow(base, n, prime)
                else:
                    parts = [at[a] for a in node.args]
                    if any(v is None for v in parts):
                        return None
                    at[node] = sum(parts) % prime if node.is_Add else math.prod(parts) % prime
                if at[node] is None:
                    return None
            return at[expr]

        return self._trials(evaluate, variables, degree, height)

    def _prime(self) -> int:
        while True:
            n = self._random.getrandbits(MODULUS_BITS) | (1 << (MODULUS_BITS - 1)) | 1
            if sp.isprime(n):
                return n

    def _bounds(self, p: Polynomial, scale: int, degrees: dict, heights: dict) -> tuple[int, int]:
        """(D, H): p = N / M with N, M polynomials in the variables y of integer coefficients, N of total
        degree at most D and coefficients below 2**H in absolute value (bounds, not exact values)."""
        # each atom's largest positive and largest negative power (in y, for a variable): the common
        # denominator holds it to the second, each term's complement to at most their sum
        most: dict[int, tuple[int, int]] = {}
        for monomial in p:
            for k, e in monomial:
                n = int(e) if k in self._inverses else int(e * scale)
                up, down = most.get(k, (0, 0))
                most[k] = (max(up, n), max(down, -n))
        degree, height = 0, 0
        for k, (up, down) in most.items():
            if k in self._inverses:
                key = id(self._inverses[k])
                if key not in degrees:
                    degrees[key], heights[key] = self._bounds(self._inverses[k], scale, degrees, heights)
                # 1/b = M_b / N_b, both of degree at most D_b and coefficients below 2**H_b
                degree += (up + down) * degrees[key]
                height += (up + down) * heights[key]
            else:
                degree += up + down
        denominators = math.lcm(*(c.denominator for c in p.values()))
        total = sum(abs(c.numerator) * (denominators // c.denominator) for c in p.values())
        return degree, height + total.bit_length() + denominators.bit_length() + len(most).bit_length()

    def _rational_power(self, base: Polynomial, exponent: Fraction) -> Polynomial:
        """base**(p/q) = base**k * root**r with root = base**(1/q) an atom, p = k q + r, 0 <= r < q."""
        if exponent.denominator == 1:
            return self._integer_power(base, exponent.numerator)
        q = exponent.denominator
        k, r = divmod(exponent.numerator, q)
        scale, radicand = Fraction(1), base
        if len(base) > 1:
            lead, unit = self._normalised(base)
            root_of_lead = sp.Rational(lead.numerator, lead.denominator) ** sp.Rational(1, q)
            if lead > 0 and root_of_lead.is_Rational:  # c**(1/q) exact: (c u)**(1/q) = c**(1/q) u**(1/q)
                scale, radicand = Fraction(int(root_of_lead.p), int(root_of_lead.q)), unit
        root = self._atom(("root", q, self._key(radicand)))
        scaled_root = {m: c * scale for m, c in root.items()}
        return _mul(self._integer_power(base, k), _pow(scaled_root, r))

    def _power(self, base: sp.Expr, exponent: sp.Expr) -> Polynomial:
        """base**exponent, the exponent not a rational number: base**k (k the exponent's constant term,
        as `_rational_power` writes it) times the atom base**q to the power c, c q the rest (c rational,
        q primitive, as for exp), so that 2**(t + 1) is 2 * 2**t and (1 + a**2)**(s - 1) is
        (1 + a**2)**s / (1 + a**2). An integer base is first written as a power of one that is not a
        perfect power (4**t is 2**(2 t)), a rational one as a quotient ((1/2)**t is 1/2**t)."""
        if base.is_Rational and base > 0 and not base.is_Integer:  # (p/q)**t is p**t q**-t
            over = self._power(sp.Integer(base.q), -exponent)
            return over if base.p == 1 else _mul(self._power(sp.Integer(base.p), exponent), over)
        if base.is_Integer and base > 1 and (perfect := sp.perfect_power(int(base))):
            base, exponent = sp.Integer(perfect[0]), exponent * perfect[1]
        base_form = self.of(base)
        if not base_form:  # 0**t: 0, 1 or infinite by the sign of t
            raise Undecided("a power of an expression that is identically zero")
        rest = dict(self.of(exponent))  # a copy: the memo's own form stays whole
        constant = rest.pop((), Fraction(0))
        out = self._rational_power(base_form, constant) if constant else {(): Fraction(1)}
        if rest:
            out = _mul(out, self._exponential(("power", self._key(base_form)), rest))
        return out

    def _call(self, e: sp.Function) -> Polynomial:
        """F(a) as an atom keyed by F and a's form; for F odd, even or a complement (F(-a) = 1 - F(a),
        a sigmoid), a's sign is made that of a positive leading coefficient first, so that sin(a - b)
        is -sin(b - a) and cos((p - 1) n) is cos(n - p n)."""
        fn, argument = type(e), self.of(e.args[0])
        parity = _parity(fn)
        if parity and argument and argument[max(argument)] < 0:
            negated = {m: -c for m, c in argument.items()}
            atom = self._atom((fn.__name__, fn, (self._key(negated),)))
            if parity == "odd":
                return {m: -c for m, c in atom.items()}
            return atom if parity == "even" else _add({(): Fraction(1)}, atom, -1)
        return self._atom((fn.__name__, fn, (self._key(argument),)))

    def _convert(self, e: sp.Basic) -> Polynomial:
        if e.is_Rational:
            return {(): Fraction(int(e.p), int(e.q))} if e != 0 else {}
        if e.is_Float:
            value = Fraction(sp.Rational(e).p, sp.Rational(e).q)
            return {(): value} if value else {}
        if e.is_Symbol:
            # two symbols are one atom only where SymPy takes them as one: name, assumptions, Dummy index
            assumptions = tuple(sorted(e.assumptions0.items()))
            return self._atom(("symbol", e.name, getattr(e, "dummy_index", None), assumptions))
        if e.is_Add:
            out: Polynomial = {}
            for arg in e.args:
                out = _add(out, self.of(arg))
            return out
        if not e.is_commutative:
            raise Undecided(f"a non-commutative expression ({e})")
        if e.is_Mul:
            out = {(): Fraction(1)}
            for arg in e.args:
                out = _mul(out, self.of(arg))
                if not out:
                    return out
            return out
        if e.is_Pow and e.exp.is_Integer:
            return self._integer_power(self.of(e.base), int(e.exp))
        if e.is_Pow and e.exp.is_Rational:
            return self._rational_power(self.of(e.base), Fraction(int(e.exp.p), int(e.exp.q)))
        if isinstance(e, sp.exp):  # exp(c q) = exp(q)**c: exp(a)**2 == exp(2 a), exp(-a) == 1/exp(a)
            argument = dict(self.of(e.args[0]))  # a copy: the memo's own form stays whole
            constant = argument.pop((), Fraction(0))
            out: Polynomial = {(): Fraction(1)}
            if constant:  # exp(k + q) = E**k exp(q), E the atom SymPy's own E is
                out = self._atom(("number", sp.srepr(sp.E)), constant)
            if argument:
                out = _mul(out, self._exponential(("exp",), argument))
            return out
        if e.is_number and not e.free_symbols:  # pi, E, sqrt(2), ...: exact atoms
            return self._atom(("number", sp.srepr(e)))
        if e.is_Pow:  # an exponent that is not a rational number
            return self._power(e.base, e.exp)
        if isinstance(e, sp.Function) and len(e.args) == 1:
            return self._call(e)
        if isinstance(e, sp.Function) or e.args:
            key = (type(e).__name__, type(e), tuple(self._key(self.of(a)) for a in e.args))
            return self._atom(key)
        return self._atom(("other", sp.srepr(e)))


_ODD = (sp.sin, sp.tan, sp.atan, sp.asin, sp.sinh, sp.asinh, sp.atanh, sp.tanh)
_EVEN = (sp.cos, sp.cosh)


def _parity(fn: type) -> str:
    """ "odd" (F(-a) = -F(a)), "even" (F(-a) = F(a)), "complement" (F(-a) = 1 - F(a)) or "". A function
    class of the package's own says so by its attributes `odd_function` and `complement_function`."""
    if fn in _ODD or getattr(fn, "odd_function", False) is True:
        return "odd"
    if fn in _EVEN:
        return "even"
    return "complement" if getattr(fn, "complement_function", False) is True else ""


def _value(
    p: Polynomial, values: dict[int, int], inverses: dict[int, Polynomial], scale: int, prime: int, memo: dict
) -> int | None:
    """p modulo `prime` at the point `values` (each variable atom y**scale, y given), or None where a
    denominator (of a coefficient or an inverse atom) vanishes there."""
    total = 0
    for monomial, c in p.items():
        if c.denominator % prime == 0:
            return None
        term = c.numerator * pow(c.denominator, -1, prime) % prime
        for k, e in monomial:
            if k in inverses:
                if k not in memo:
                    b = _value(inverses[k], values, inverses, scale, prime, memo)
                    memo[k] = None if not b else pow(b, -1, prime)
                if memo[k] is None:
                    return None
                term = term * pow(memo[k], int(e), prime) % prime
            else:
                term = term * pow(values[k], int(e * scale), prime) % prime
        total += term
    return total % prime


def _composite(node: sp.Basic) -> bool:
    """A sum, a product or an integer power: evaluated from its arguments' values."""
    if not node.is_commutative:
        raise Undecided(f"a non-commutative expression ({node})")
    return bool(node.is_Add or node.is_Mul or (node.is_Pow and node.exp.is_Integer))


def _post_order(expr: sp.Basic) -> list[sp.Basic]:
    """Every distinct subexpression of `expr` once, each after its arguments (an integer power's
    exponent is not one); leaves are not entered."""
    order: list[sp.Basic] = []
    seen: set[sp.Basic] = set()
    stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        if not _composite(node):
            order.append(node)
            continue
        stack.append((node, True))
        arguments = (node.base,) if node.is_Pow else node.args
        stack.extend((a, False) for a in arguments if a not in seen)
    return order


class _DagBounds:
    """Bounds for the randomised test of an expression as it stands: each subexpression is N / M, N of
    total degree at most n and coefficients below 2**h; M the product of factors f (a leaf's own
    denominator, or the numerator of a base raised to a negative power) to powers p_f, each of degree
    at most deg_f and coefficients below 2**h_f. A sum takes each factor to its highest power among
    its terms (their least common multiple), a product adds the powers."""

    def __init__(self, leaves: Canonical, forms: dict[sp.Basic, Polynomial], scale: int) -> None:
        self.leaves, self.forms, self.scale = leaves, forms, scale
        self.factor: dict[tuple[str, sp.Basic], tuple[int, int]] = {}  # f -> (deg_f, h_f)

    def _size(self, den: dict) -> tuple[int, int]:
        return (
            sum(p * self.factor[f][0] for f, p in den.items()),
            sum(p * self.factor[f][1] for f, p in den.items()),
        )

    def of(self, order: list[sp.Basic]) -> tuple[int, int]:
        bounds: dict[sp.Basic, tuple[int, int, dict]] = {}
        degrees: dict = {}
        heights: dict = {}
        for node in order:
            if node in self.forms:
                form = self.forms[node]
                d, h = self.leaves._bounds(form, self.scale, degrees, heights)
                # no denominator at all: no inverse atom, no negative power, integer coefficients
                plain = all(e > 0 and k not in self.leaves._inverses for m in form for k, e in m)
                plain = plain and all(c.denominator == 1 for c in form.values())
                if plain:
                    bounds[node] = (d, h, {})
                else:
                    self.factor["leaf", node] = (d, h)
                    bounds[node] = (d, h, {("leaf", node): 1})
            elif node.is_Pow:
                n, h, den = bounds[node.base]
                k = int(node.exp)
                if k >= 0:
                    bounds[node] = (k * n, k * h, {f: k * p for f, p in den.items()})
                else:
                    dd, dh = self._size(den)
                    self.factor["inverse", node.base] = (n, h)
                    bounds[node] = (-k * dd, -k * dh, {("inverse", node.base): -k})
            elif node.is_Mul:
                den: dict = {}
                for a in node.args:
                    for f, p in bounds[a][2].items():
                        den[f] = den.get(f, 0) + p
                bounds[node] = (
                    sum(bounds[a][0] for a in node.args),
                    sum(bounds[a][1] for a in node.args),
                    den,
                )
            else:  # a sum over the least common multiple of its terms' denominators
                den = {}
                for a in node.args:
                    for f, p in bounds[a][2].items():
                        den[f] = max(den.get(f, 0), p)
                total_d, total_h = self._size(den)
                n = h = 0
                for a in node.args:
                    ad, ah = self._size(bounds[a][2])
                    n = max(n, bounds[a][0] + total_d - ad)
                    h = max(h, bounds[a][1] + total_h - ah)
                bounds[node] = (n, h + len(node.args).bit_length(), den)
        n, h, _ = bounds[order[-1]]
        return n, h


# The most terms a canonical polynomial may have for the second opinion (`sp.cancel`, whose cost grows
# fast with the size): beyond it a nonzero canonical form is taken as it is.
CANCEL_TERMS = 200


def is_zero(expr: sp.Basic, canonical: Canonical | None = None) -> bool:
    """Whether `expr` is identically zero (see the module docstring for what it can prove); raises
    `Undecided` where its canonical form would be too large to compute.

    A nonzero canonical polynomial is cleared of its denominators (`Canonical.cleared`): a zero
    numerator is a proof. One of a few terms gets a second opinion: written as a rational function of
    its atoms (each a symbol, 1/b kept as the quotient it is), `sp.cancel` divides out common factors of
    numerators and denominators (b * (1/b) == 1, which the canonical form leaves as it is). Both are
    exact: a zero from either is a proof.
    """
    canonical = canonical or Canonical()
    expr = sp.sympify(expr)
    try:
        p = canonical.of(expr)
    except TooLarge:  # too large a form: the randomised test on the expression as it stands
        return canonical.evaluated_expression(expr) is not None
    if not p:
        return True
    try:
        if not canonical.cleared(p):
            return True
    except Undecided:  # too many terms to clear: decided by evaluation (recorded in `randomised`)
        return canonical.evaluated(p) is not None
    return len(p) <= CANCEL_TERMS and sp.cancel(canonical.rational(p)) == 0
