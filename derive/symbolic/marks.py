"""Library calls kept whole in a formula, and formulas printed in derive's formula language.

The SymPy expression of `softplus(x)` and of `log(1 + exp(x))` is the same (derive.ops writes
every function in elementary terms, so derivatives are derived). For numerical stability they
differ: the library function is evaluated stably, the written-out form overflows. So a library
result is kept as a `Library` mark, an unevaluated SymPy function whose `body()` is exactly what
derive.ops returns; `unmark` gives the elementary form back. `formula_text` prints a formula
(marks by name, rows as their vector) as derive formula text.
"""

from __future__ import annotations

import re
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from ..model import ops

ROWWISE = ("softmax", "log_softmax", "logsumexp")
"""Library functions of a whole row: marks carry (entry, *row) or (*row)."""


class Library(sp.Function):
    """A library call kept whole (`softplus(z)`), evaluated as the library evaluates it.

    Subclasses name the function; `body()` is its elementary SymPy form, computed by derive.ops
    itself, so a mark and what it stands for are always the same expression."""

    op: ClassVar[str] = ""

    @classmethod
    def eval(cls, *args: sp.Expr) -> None:  # never evaluated automatically
        return None

    def _eval_is_extended_real(self) -> bool | None:
        return True if all(a.is_extended_real for a in self.args) else None

    @property
    def row(self) -> tuple[sp.Expr, ...]:
        """The row a row-wise function reads (all its arguments, or all but the entry)."""
        return self.args if self.op == "logsumexp" else self.args[1:]

    def body(self) -> sp.Expr:
        return _body(self.op, self.args)

    def _sympystr(self, printer: Any) -> str:
        if isinstance(printer, FormulaPrinter):
            return printer.library(self)
        return f"{self.op}({', '.join(printer._print(a) for a in self.args)})"


def _body(name: str, args: tuple[sp.Expr, ...]) -> sp.Expr:
    fn = getattr(ops, name, None)
    if name == "logsumexp":
        return sp.sympify(ops.logsumexp(np.array(args, dtype=object)))
    if name in ("softmax", "log_softmax"):
        row = np.array(args[1:], dtype=object)
        return sp.sympify(getattr(ops, name)(row)[list(args[1:]).index(args[0])])
    if fn is None:
        return _FALLBACK[name](*args)
    return sp.sympify(fn(*args))


_FALLBACK: dict[str, Callable[..., sp.Expr]] = {
    "sigmoid": lambda u: 1 / (1 + sp.exp(-u)),
    "softplus": lambda u: sp.log(1 + sp.exp(u)),
    "log_sigmoid": lambda u: -sp.log(1 + sp.exp(-u)),
    "log1p": lambda u: sp.log(1 + u),
    "expm1": lambda u: sp.exp(u) - 1,
    "hypot": lambda a, b: sp.sqrt(a**2 + b**2),
    "logaddexp": lambda a, b: sp.log(sp.exp(a) + sp.exp(b)),
    "silu": lambda u: u / (1 + sp.exp(-u)),
}
"""Bodies for functions this version of derive.ops does not have (the marks still evaluate)."""

ELEMENTWISE = ("sigmoid", "softplus", "log_sigmoid", "log1p", "expm1", "hypot", "logaddexp", "silu")
LIBRARY: dict[str, type[Library]] = {
    name: type(name, (Library,), {"op": name}) for name in ELEMENTWISE + ROWWISE
}
"""The library functions that a framework evaluates more stably than their elementary form."""

sigmoid, softplus, log_sigmoid = LIBRARY["sigmoid"], LIBRARY["softplus"], LIBRARY["log_sigmoid"]
log1p, expm1, hypot, logaddexp = LIBRARY["log1p"], LIBRARY["expm1"], LIBRARY["hypot"], LIBRARY["logaddexp"]
softmax, log_softmax, logsumexp = LIBRARY["softmax"], LIBRARY["log_softmax"], LIBRARY["logsumexp"]


def unmark(e: Any) -> Any:
    """The elementary form: every library mark replaced by its body (innermost first)."""
    if isinstance(e, np.ndarray):
        out = np.empty(e.shape, dtype=object)
        for idx, v in np.ndenumerate(e):
            out[idx] = unmark(v)
        return out
    e = sp.sympify(e)
    if not e.has(Library):
        return e
    return e.replace(lambda x: isinstance(x, Library), lambda x: x.body())


# --- printing formulas in derive's formula language ---------------------------------------------

_INDEXED = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\[([0-9, ]+)\]$")


class FormulaPrinter(StrPrinter):
    """SymPy expressions as derive formulas: library marks by name, rows as their vector."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]] | None = None) -> None:
        super().__init__({"order": "none"})
        self.shapes = dict(shapes or {})

    def _row(self, row: tuple[sp.Expr, ...]) -> tuple[str, tuple[int, ...]] | None:
        """(variable, leading index) when `row` is a whole last-axis row of one variable."""
        parsed = [_INDEXED.match(str(v)) if isinstance(v, sp.Symbol) else None for v in row]
        if not all(parsed):
            return None
        names = {p.group(1) for p in parsed}  # type: ignore[union-attr]
        idx = [tuple(int(i) for i in p.group(2).split(",")) for p in parsed]  # type: ignore[union-attr]
        if len(names) != 1:
            return None
        name = names.pop()
        shape = self.shapes.get(name)
        lead = idx[0][:-1]
        if shape is None or shape[-1] != len(row) or any(i != lead + (k,) for k, i in enumerate(idx)):
            return None
        return name, lead

    def library(self, e: Library) -> str:
        if e.op in ROWWISE:
            found = self._row(e.row)
            vec = (f"{found[0]}" if not found[1] else f"{found[0]}[{', '.join(map(str, found[1]))}]") if found else \
                "[" + ", ".join(self._print(a) for a in e.row) + "]"
            if e.op == "logsumexp":
                return f"logsumexp({vec})"
            pos = list(e.row).index(e.args[0])
            lead = found[1] if found else ()
            return f"{e.op}({found[0] if found else vec})[{', '.join(map(str, (*lead, pos)))}]"
        return f"{e.op}({', '.join(self._print(a) for a in e.args)})"

    def _print_Add(self, e: sp.Add, order: Any = None) -> str:
        """Positive terms first: softplus(z) - y*z, not -y*z + softplus(z)."""
        terms = sorted(e.args, key=lambda t: (t.could_extract_minus_sign(), sp.default_sort_key(t)))
        out = self._print(terms[0])
        for t in terms[1:]:
            out += f" - {self.parenthesize(-t, 40)}" if t.could_extract_minus_sign() else f" + {self._print(t)}"
        return out

    def _print_Symbol(self, e: sp.Symbol) -> str:
        return e.name.replace(",", ", ") if "[" in e.name else e.name


def formula_text(entries: Any, shapes: Mapping[str, tuple[int, ...]] | None = None, *,
                 limit: int = 240) -> str:
    """A formula (a SymPy expression or an array of entries) as derive formula text; an array
    whose entries read the same with their own index dropped is written once (softmax(z))."""
    printer = FormulaPrinter(shapes)
    arr = np.asarray(entries, dtype=object)
    if arr.ndim == 0:
        return _cut(printer.doprint(arr.item()), limit)
    texts = {}
    for idx, e in np.ndenumerate(arr):
        text = printer.doprint(e)
        own = "[" + ", ".join(map(str, idx)) + "]"
        texts[idx] = text.replace(own, "")
    if len(set(texts.values())) == 1 and "[" not in next(iter(texts.values())).replace("[]", ""):
        return _cut(next(iter(texts.values())), limit)
    first = max(texts, key=lambda idx: sp.count_ops(arr[idx]))  # the entry with the most to show
    return _cut(f"[{', '.join(map(str, first))}]: {printer.doprint(arr[first])}", limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["Library", "LIBRARY", "ROWWISE", "ELEMENTWISE", "unmark", "FormulaPrinter", "formula_text",
           "sigmoid", "softplus", "log_sigmoid", "log1p", "expm1", "hypot", "logaddexp", "softmax", "log_softmax",
           "logsumexp"]
