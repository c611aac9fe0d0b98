"""Framework interoperability metadata, printed for the generated modules.

A cell's `torch` dict names its `torch.nn` module and the state-dict keys of layer 0; its `keras` dict
names its Keras layer and gives the layout of each Keras weight array as rows of blocks, each block the
cell parameters whose sum it is:

    keras = {"layer": "GRU", "config": {"reset_after": True},
             "weights": (("kernel", (("W_iz",), ("W_ir",), ("W_in",))),
                         ("bias", ((("b_iz",), ("b_ir",), ("b_in",)), (("b_hz",), ("b_hr",), ("b_hn",)))))}

A matrix array (`kernel`, `recurrent_kernel`) is one row of (I or H, H) blocks, the transposes of the
(H, I or H) cell weights (Keras multiplies row vectors, `x @ kernel`). A bias array is one row, shape
(G H,), or two rows, shape (2, G H). When a block sums several cell biases (PyTorch's b_ih + b_hh is one
Keras bias), `from_keras` puts the value in the first and zeros in the others: the same function.

`plan_interop(spec)` returns the module constants as ruff-format-clean Python literals, and the cell's
keep/write gate biases and recurrent blocks for the initializers.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...spec import CellSpec, SpecError

__all__ = ["literal", "plan_interop", "validate_keras"]

LINE_LENGTH = 110


def _flat(obj: object) -> str:
    if obj is None or isinstance(obj, bool):
        return repr(obj)
    if isinstance(obj, str):
        return '"' + obj.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(obj, (int, float)):
        return repr(obj)
    if isinstance(obj, Mapping):
        return "{" + ", ".join(f"{_flat(k)}: {_flat(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (tuple, list)):
        inner = ", ".join(_flat(v) for v in obj)
        return f"({inner},)" if len(obj) == 1 else f"({inner})"
    raise TypeError(f"cannot print {type(obj).__name__} as a literal")


def literal(obj: object, indent: int = 0, lead: int = 0) -> str:
    """A Python literal of `obj` as ruff format writes it: on one line when it fits after `lead`
    characters, else one item per line with a trailing comma (recursively)."""
    flat = _flat(obj)
    if indent + lead + len(flat) <= LINE_LENGTH or not isinstance(obj, (Mapping, tuple, list)) or not obj:
        return flat
    pad = " " * (indent + 4)
    if isinstance(obj, Mapping):
        items = [f"{_flat(k)}: " + literal(v, indent + 4, len(_flat(k)) + 2) for k, v in obj.items()]
        open_, close = "{", "}"
    else:
        items = [literal(v, indent + 4) for v in obj]
        open_, close = "(", ")"
    return open_ + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + close


def validate_keras(spec: CellSpec) -> None:
    """Check a cell's `keras` layout against its parameters; raise `SpecError` naming the problem."""
    k = spec.keras
    if not k:
        return
    names = {p.name: p for p in spec.params}
    weights = k.get("weights")
    if not isinstance(k.get("layer"), str) or not weights:
        raise SpecError(f"cell {spec.name!r}: keras metadata needs 'layer' (str) and 'weights'")
    covered: list[str] = []
    for array, rows in weights:
        if not rows or len(rows) > 2:
            raise SpecError(f"cell {spec.name!r}: keras array {array!r} needs one or two rows of blocks")
        kinds = set()
        for row in rows:
            if len(row) != len(rows[0]):
                raise SpecError(f"cell {spec.name!r}: keras array {array!r} has rows of different lengths")
            for block in row:
                for m in block:
                    if m not in names:
                        raise SpecError(f"cell {spec.name!r}: keras array {array!r} names unknown {m!r}")
                    kinds.add(names[m].shape)
                    covered.append(m)
        if len(kinds) != 1:
            raise SpecError(
                f"cell {spec.name!r}: keras array {array!r} mixes shapes {sorted(kinds)}; "
                "expected one shape, all weight matrices or all vectors"
            )
        if len(rows) > 1 and len(next(iter(kinds))) == 2:
            raise SpecError(
                f"cell {spec.name!r}: keras array {array!r} of weight matrices has {len(rows)} rows of "
                "blocks; expected one row (two rows are for bias vectors only)"
            )
    if sorted(covered) != sorted(names):
        missing = sorted(set(names) - set(covered))
        twice = sorted({m for m in covered if covered.count(m) > 1})
        raise SpecError(
            f"cell {spec.name!r}: keras layout must name every parameter once (missing {missing}, "
            f"repeated {twice})"
        )


def plan_interop(spec: CellSpec) -> dict[str, str]:
    """The interop constants of a generated module, printed."""
    validate_keras(spec)
    torch = spec.torch or {}
    keras = spec.keras or {}
    recurrent = tuple(p.name for p in spec.params if p.shape == ("H", "H"))
    return {
        "torch_module": literal(torch.get("module"), lead=15),
        "torch_names": literal(dict(torch.get("names", {})), lead=14),
        "keras_layer": literal(keras.get("layer"), lead=14),
        "keras_config": literal(dict(keras.get("config", {})), lead=15),
        "keras_weights": literal(tuple(keras.get("weights", ())), lead=16),
        "keras_layer_text": _call_text(keras.get("layer"), keras.get("config", {})),
        "recurrent": literal(recurrent, lead=12),
        "gates": literal({role: spec.gates.get(role, ()) for role in ("keep", "write")}, lead=8),
    }


def _call_text(layer: str | None, config: Mapping[str, object]) -> str:
    """`a Keras GRU(reset_after=False) layer` for the docstrings, or why there is none."""
    if layer is None:
        return "a Keras layer (Keras has none computing this cell: raises NotImplementedError)"
    return f"a Keras {layer}(" + ", ".join(f"{k}={_flat(v)}" for k, v in config.items()) + ") layer"
