"""Random cells from the whole `Cell` API, and a spec printed as the declaration that builds it.

`random_cells()` is a hypothesis strategy (hypothesis is only needed when it is called) that draws
valid `CellSpec`s: one to three states; linear nodes reading the input, previous states or elementwise
nodes, with biases of their own or shared with another node; elementwise nodes mixing vectors, parameter
vectors (peepholes), rational constants, the package activations and SymPy's functions (atan, sin,
softplus log(1 + exp(a)), ...) and powers whose exponent reads a vector; nodes in any order; states
updated by any bounded elementwise node (so no drawn cell overflows over a sequence); an output that
need not be the first state; the input used elementwise (then the cell needs I == H); fused weight and
bias groups; a second hidden size P (as an LSTM's projection) for some states and nodes.
`cell_source(spec)` prints a spec as the `Cell` declaration that builds it, to paste into a test.
`symlstm.fuzz` checks drawn cells.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .activations import relu, sigmoid, tanh
from .spec import Cell, CellSpec, ElementwiseNode, LinearNode, SpecError

__all__ = ["cell_source", "random_cells"]

# Functions an elementwise node may apply, with a weight for how often the strategy draws each.
_UNARY: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = (
    ("sigmoid", sigmoid),
    ("tanh", tanh),
    ("relu", relu),
    ("atan", sp.atan),
    ("sin", sp.sin),
    ("softplus", lambda a: sp.log(1 + sp.exp(a))),
    ("square", lambda a: a**2),
    ("gaussian", lambda a: sp.exp(-(a**2))),
    ("rational", lambda a: a / (1 + a**2)),
)


# The operations of a drawn expression, with a weight for how often each is drawn ("pow": a power whose
# exponent reads a vector).
_OPS = ("unary",) * 4 + ("add", "mul", "sub", "leaf") * 2 + ("pow",)

# What Cell.build says of a drawn cell whose sizes do not fit (it is then not drawn).
_SIZE_REFUSALS = ("no parameter has size", "no vector has the hidden size", "but no vector has them")

# The names of drawn parameter vectors by their size: p0, p1 (H), q0 (P).
_PREFIX = {"H": "p", "P": "q"}

# Top-level functions whose value stays in [-1, 1] (or [0, 1]): a state updated by one cannot overflow.
_BOUNDED = (sigmoid, sp.tanh, sp.sin)


def random_cells(max_states: int = 3, max_nodes: int = 7):
    """A hypothesis strategy of valid, built `CellSpec`s (see the module docstring)."""
    from hypothesis import reject
    from hypothesis import strategies as st

    @st.composite
    def cells(draw) -> CellSpec:
        n_states = draw(st.integers(1, max_states))
        x_elementwise = draw(st.booleans()) if draw(st.integers(0, 3)) == 0 else False
        cell = Cell("fuzz", title="A drawn cell", same_size=x_elementwise)
        sizes = ["H", cell.size("P", "p_size")] if draw(st.integers(0, 3)) == 0 else ["H"]
        size_of: dict[str, str] = {"x": "H"}  # the input counts as H where a node reads it elementwise
        vectors = [cell.input("x")]
        states = [f"s{k}" for k in range(n_states)]
        for s_name in states:
            size = draw(st.sampled_from(sizes))
            vectors.append(cell.state(s_name, size=size))
            size_of[f"{s_name}_prev"] = size
        params: dict[str, list[sp.Symbol]] = {size: [] for size in sizes}
        biases: list[str] = []
        elementwise: list[sp.Symbol] = []
        bounded: list[sp.Symbol] = []
        weight_inputs: dict[str, str] = {}
        n_nodes = draw(st.integers(1, max_nodes))
        kinds = [draw(st.sampled_from(["linear", "elementwise", "elementwise"])) for _ in range(n_nodes)]
        if "linear" not in kinds:  # at least one linear node: a cell without parameters is refused
            kinds.insert(draw(st.integers(0, len(kinds) - 1)), "linear")
        for k, kind in enumerate(kinds):
            name = f"n{k}"
            readable = [v for v in vectors if v.name not in _linear_names(cell)]
            if kind == "linear":
                size = draw(st.sampled_from(sizes))
                n_terms = draw(st.integers(1, 3))
                terms = {}
                first_linear = not weight_inputs
                for j in range(n_terms):
                    # the first linear node reads the input: a cell that never reads it is refused
                    u = vectors[0] if first_linear and j == 0 else draw(st.sampled_from(readable))
                    w = f"W{k}_{j}"
                    terms[w] = u
                    weight_inputs[w] = u.name
                own = [f"b{k}_{j}" for j in range(draw(st.integers(0, 2)))]
                alike = [b for b in biases if cell._params[b].shape == (size,)]
                shared = [draw(st.sampled_from(alike))] if alike and draw(st.integers(0, 3)) == 0 else []
                node_biases = list(dict.fromkeys(own + shared))
                biases += own
                vectors.append(cell.linear(name, terms, biases=node_biases, size=size))
                size_of[name] = size
                continue
            readable_sizes = [z for z in sizes if _elementwise_readable(vectors, size_of, z, x_elementwise)]
            size = draw(st.sampled_from(readable_sizes))
            usable = _of_size(vectors, size_of, size)
            expr = draw(_expressions(usable, x_elementwise, params[size], cell, _PREFIX[size]))
            sym = cell.elementwise(name, expr)
            vectors.append(sym)
            size_of[name] = size
            elementwise.append(sym)
            if isinstance(expr, _BOUNDED):
                bounded.append(sym)
        # States are updated by bounded nodes (an existing one, or a new tanh of an expression), so that
        # no drawn cell overflows over a sequence.
        updates = {}
        for s in states:
            size = size_of[f"{s}_prev"]
            fitting = [b for b in bounded if size_of[b.name] == size]
            if fitting and draw(st.booleans()):
                updates[s] = draw(st.sampled_from(fitting))
                continue
            usable = _of_size(vectors, size_of, size)
            expr = tanh(draw(_expressions(usable, x_elementwise, params[size], cell, _PREFIX[size])))
            sym = cell.elementwise(f"u_{s}", expr)
            vectors.append(sym)
            size_of[sym.name] = size
            elementwise.append(sym)
            bounded.append(sym)
            updates[s] = sym
        cell.update(**updates)
        if draw(st.booleans()):
            cell.output(draw(st.sampled_from(elementwise)))
        vector_params = [q.name for qs in params.values() for q in qs]
        _draw_groups(draw, cell, weight_inputs, biases + vector_params)
        if any(q.free_symbols.isdisjoint(_used(cell)) for qs in params.values() for q in qs):
            reject()  # a parameter cancelled out of its expression
        try:
            return cell.build()
        except SpecError as err:  # a size no parameter has, or no vector of size H: not a valid draw
            if not any(why in str(err) for why in _SIZE_REFUSALS):
                raise
            reject()

    return cells()


def _of_size(vectors: list[sp.Symbol], size_of: dict[str, str], size: str) -> list[sp.Symbol]:
    """The vectors of one size (an elementwise node reads vectors of one size)."""
    return [v for v in vectors if size_of[v.name] == size]


def _elementwise_readable(vectors, size_of, size: str, x_elementwise: bool) -> bool:
    """Whether an elementwise node of size `size` has a vector to read (the input only in a same-size
    cell)."""
    return any(v.name != "x" or x_elementwise for v in _of_size(vectors, size_of, size))


def _used(cell: Cell) -> set[sp.Symbol]:
    return {s for n in cell._nodes if isinstance(n, ElementwiseNode) for s in n.expr.free_symbols}


def _linear_names(cell: Cell) -> set[str]:
    return {n.name for n in cell._nodes if isinstance(n, LinearNode)}


def _expressions(
    vectors: list[sp.Symbol], x_elementwise: bool, params: list[sp.Symbol], cell: Cell, prefix: str = "p"
):
    """A strategy of elementwise expressions over the vectors declared so far (and new parameters, named
    `prefix` and a number)."""
    from hypothesis import strategies as st

    @st.composite
    def expressions(draw) -> sp.Expr:
        usable = [v for v in vectors if v.name != "x" or x_elementwise]

        def leaf() -> sp.Expr:
            choice = draw(st.integers(0, 9))
            if choice == 0:
                if not params or draw(st.booleans()):
                    params.append(cell.param(f"{prefix}{len(params)}"))
                return draw(st.sampled_from(params)) * draw(st.sampled_from(usable))
            if choice == 1:
                return sp.Rational(draw(st.integers(-3, 3)), draw(st.integers(1, 3))) + draw(
                    st.sampled_from(usable)
                )
            return draw(st.sampled_from(usable))

        def build(depth: int) -> sp.Expr:
            if depth == 0:
                return leaf()
            op = draw(st.sampled_from(_OPS))
            if op == "leaf":
                return leaf()
            if op == "unary":
                _, fn = draw(st.sampled_from(_UNARY))
                return fn(build(depth - 1))
            if op == "pow":  # an exponent that reads a vector, on a positive base
                if draw(st.booleans()):
                    return 2 ** tanh(build(depth - 1))
                return (1 + build(depth - 1) ** 2) ** sigmoid(build(depth - 1))
            a, b = build(depth - 1), build(depth - 1)
            return a + b if op == "add" else a * b if op == "mul" else a - b

        expr = build(draw(st.integers(0, 3)))
        if not any(s in expr.free_symbols for s in usable):  # a parameter-only value: read a vector too
            expr = expr + draw(st.sampled_from(usable))
        return expr

    return expressions()


def _draw_groups(draw, cell: Cell, weight_inputs: dict[str, str], vectors: list[str]) -> None:
    """Fuse some weights that multiply the same vector, and some vectors (biases and parameter vectors,
    mixed)."""
    from hypothesis import strategies as st

    by_input: dict[tuple, list[str]] = {}  # weights of one shape that multiply one vector
    for w, u in weight_inputs.items():
        by_input.setdefault((u, cell._params[w].shape), []).append(w)
    k = 0
    for members in by_input.values():
        if len(members) > 1 and draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(members), min_size=2, max_size=len(members), unique=True))
            cell.fuse(f"Wf{k}", chosen)
            k += 1
    by_shape: dict[tuple, list[str]] = {}
    for v in vectors:
        by_shape.setdefault(cell._params[v].shape, []).append(v)
    alike = max(by_shape.values(), key=len, default=[])
    if len(alike) > 1 and draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(alike), min_size=2, max_size=len(alike), unique=True))
        cell.fuse("bf", chosen)


# -- a spec as the declaration that builds it --------------------------------------------------------


class _DeclarationPrinter(sp.printing.str.StrPrinter):
    """SymPy's functions as `sp.<name>(...)`; the package activations by their own names."""

    def _print_Function(self, expr: sp.Function) -> str:
        name = type(expr).__name__
        prefix = "" if name in ("sigmoid", "relu", "tanh") else "sp."
        return f"{prefix}{name}({', '.join(self._print(a) for a in expr.args)})"

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"sp.Rational({expr.p}, {expr.q})"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == sp.S.Half:
            return f"sp.sqrt({self._print(expr.base)})"
        if expr.exp == -sp.S.Half:
            return f"1/sp.sqrt({self._print(expr.base)})"
        return super()._print_Pow(expr, rational)


def cell_source(spec: CellSpec) -> str:
    """Python that builds `spec` with the `Cell` API (paste it into a test to reproduce a cell)."""
    p = _DeclarationPrinter()
    lines = [
        "import sympy as sp",
        "from symlstm import Cell, relu, sigmoid, tanh",
        "",
        f"cell = Cell({spec.name!r}"
        + "".join(
            f", {k}={v!r}"
            for k, v in (("title", spec.title), ("doc", spec.doc), ("source", spec.source))
            if v and not (k == "title" and v == spec.name)
        )
        + (", same_size=True" if spec.same_size else "")
        + ")",
        *(f"cell.size({label!r}, {keyword!r})" for label, keyword in spec.extra_sizes),
        f"{spec.input} = cell.input({spec.input!r})",
    ]

    def size(vector: str) -> str:
        label = spec.size(vector)
        return "" if label == "H" else f", size={label!r}"

    lines += [f"{spec.prev(s)} = cell.state({s!r}{size(spec.prev(s))})" for s in spec.states]
    declared: set[str] = set()
    for node in spec.nodes:
        if isinstance(node, LinearNode):
            terms = ", ".join(f"{w!r}: {u}" for w, u in node.terms)
            lines.append(
                f"{node.name} = cell.linear({node.name!r}, {{{terms}}}, biases={list(node.biases)!r}"
                f"{size(node.name)})"
            )
            continue
        for s in sorted(node.expr.free_symbols, key=lambda s: s.name):
            if s.name in {q.name for q in spec.params} and s.name not in declared:
                lines.append(f"{s.name} = cell.param({s.name!r})")
                declared.add(s.name)
        lines.append(f"{node.name} = cell.elementwise({node.name!r}, {p.doprint(node.expr)})")
    lines.append("cell.update(" + ", ".join(f"{s}={n}" for s, n in spec.updates) + ")")
    if spec.output != spec.update_of[spec.states[0]]:
        lines.append(f"cell.output({spec.output})")
    for g in spec.groups:
        if len(g.members) > 1 or g.name != g.members[0]:
            lines.append(f"cell.fuse({g.name!r}, {list(g.members)!r})")
    lines.append("spec = cell.build()")
    return "\n".join(lines)
