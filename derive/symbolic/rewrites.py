"""Formulas as written, and a table of stable rewrites that the proof ladder proves.

The SymPy expression of `softplus(x)` and of `log(1 + exp(x))` is the same (derive.ops writes
every function in elementary terms, so derivatives are derived). For numerical stability they
differ: the library function is evaluated stably, the written-out form overflows. So which
parts of a formula are library calls is recorded while the formula is built: the calls into
`derive.ops` are observed (a profile hook, active only while `written` builds the graph) and
each library result is replaced by a `Library` mark, an unevaluated SymPy function whose
`body()` is exactly what derive.ops returned. `unmark` gives the elementary form back.

`RULES` is the table of rewrites people use (log(1 + exp x) -> softplus x, 1 - sigmoid(x) ->
sigmoid(-x), ...). Each rule is proved once, on fresh symbols, by the same ladder that proves
claims (`derive.symbolic.proof.prove_zero`); replacing a subexpression by an equal one gives an
equal formula, so a rewrite made of proved rules (and of algebra that the ladder's rational
normal form shows) is proved. Nothing here is numeric: derive.numeric.stability measures.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, ClassVar, Iterator, Mapping

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from ..model import ops
from ..model.spec import Identity
from .graph import Graph, build
from .proof import prove_zero, rational_zero

# --- library marks ----------------------------------------------------------------------------

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


# --- which calls were library calls: observed while the formulas are built ------------------------

@dataclass(frozen=True)
class _Call:
    name: str
    args: dict[str, Any]
    result: Any


def _watched() -> tuple[dict[Any, str], dict[int, str], set[Any]]:
    """Code objects of derive.ops' public functions -> names; the lifted (elementwise) code
    objects, whose name is found from the scalar function they close over."""
    by_code: dict[Any, str] = {}
    by_fn: dict[int, str] = {}
    lifted: set[Any] = set()
    for name, fn in vars(ops).items():
        if name.startswith("_") or not callable(fn) or not hasattr(fn, "__code__"):
            continue
        public = name.rstrip("_")
        code = fn.__code__
        cells = dict(zip(code.co_freevars, fn.__closure__ or ()))
        if code.co_name == "lifted" and "f" in cells:
            lifted.add(code)
            by_fn[id(cells["f"].cell_contents)] = public
        elif public in LIBRARY:
            by_code[code] = public
    return by_code, by_fn, lifted


def _code(formula: Any) -> Any:
    """The code object that runs when `formula(ns)` is called (a function, or a callable object)."""
    code = getattr(formula, "__code__", None)
    return code if code is not None else getattr(type(formula).__call__, "__code__", None)


@contextmanager
def _observing(formulas: list[Any]) -> Iterator[list[list[_Call]]]:
    """Record the calls of derive.ops' library functions (name, arguments, result) made while
    the block runs, in this thread: one list per top-level call of one of `formulas`, in the
    order they are called. Only code objects of derive.ops and of the formulas are looked at."""
    by_code, by_fn, lifted = _watched()
    entry = {c for c in map(_code, formulas) if c is not None}
    segments: list[list[_Call]] = []
    depth = [0]
    open_: dict[int, tuple[str, dict[str, Any]]] = {}

    def hook(frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code
        if code in entry:
            if event == "call":
                depth[0] += 1
                if depth[0] == 1:
                    segments.append([])
            elif event == "return":
                depth[0] -= 1
            return
        if event == "call":
            if code in by_code:
                open_[id(frame)] = (by_code[code], dict(frame.f_locals))
            elif code in lifted:
                name = by_fn.get(id(frame.f_locals.get("f")))
                if name in LIBRARY:
                    open_[id(frame)] = (name, dict(frame.f_locals))
        elif event == "return" and id(frame) in open_ and (code in by_code or code in lifted):
            name, args = open_.pop(id(frame))
            if arg is not None and segments and depth[0] > 0:
                segments[-1].append(_Call(name, args, arg))

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield segments
    finally:
        try:
            sys.setprofile(previous)
        except TypeError:  # a C-level profiler (cProfile) was active: it restarts itself
            sys.setprofile(None)
            getattr(previous, "enable", lambda: None)()


def _rational(e: Any) -> sp.Expr:
    """As derive.symbolic.graph stores formulas: sympified, decimals as the rationals written."""
    e = sp.sympify(e)
    return e.xreplace({f: sp.Rational(str(f)) for f in e.atoms(sp.Float)})


def _marks(calls: list[_Call]) -> dict[sp.Expr, sp.Expr]:
    """Each library result (an elementary expression) -> its mark, where mark.body() is that
    very expression (anything else is left unmarked: a mark is always an exact equality)."""
    found: dict[sp.Expr, sp.Expr] = {}

    def keep(result: Any, mark: Library) -> None:
        result = _rational(result)
        if result.free_symbols and not isinstance(result, sp.Symbol) and mark.body() == result:
            found.setdefault(result, mark)

    for call in calls:
        cls = LIBRARY[call.name]
        if call.name in ROWWISE:
            a, axis = call.args.get("a"), call.args.get("axis", -1)
            if not isinstance(a, np.ndarray) or a.ndim == 0 or not isinstance(call.result, np.ndarray | sp.Basic):
                continue
            rows = np.moveaxis(a, axis, -1)
            res = np.asarray(call.result, dtype=object)
            res = np.moveaxis(res, axis, -1) if call.name != "logsumexp" else res
            for idx in np.ndindex(*rows.shape[:-1]):
                row = tuple(_rational(v) for v in rows[idx])
                if call.name == "logsumexp":
                    keep(res[idx] if res.ndim else res.item(), cls(*row))
                else:
                    for i, v in enumerate(row):
                        keep(res[idx + (i,)], cls(v, *row))
            continue
        inputs = [v for k, v in call.args.items() if k in ("a", "x", "args", "input")]
        if "args" in call.args:
            inputs = list(call.args["args"])
        if call.args.get("beta", 1) != 1 or not inputs:
            continue
        try:
            arrays = np.broadcast_arrays(*(np.asarray(v, dtype=object) for v in inputs))
        except ValueError:
            continue
        res = np.asarray(call.result, dtype=object)
        if res.shape != arrays[0].shape:
            continue
        for idx in np.ndindex(*res.shape):
            keep(res[idx], cls(*(_rational(arr[idx]) for arr in arrays)))
    return found


class _Marker:
    """Rewrites an elementary expression with library marks where the library was called."""

    def __init__(self, found: Mapping[sp.Expr, sp.Expr]) -> None:
        self.found = dict(found)
        self.parts = [(body, mark) for body, mark in self.found.items() if isinstance(body, (sp.Add, sp.Mul))]
        self.memo: dict[sp.Expr, sp.Expr] = {}

    def __call__(self, e: sp.Expr) -> sp.Expr:
        if e in self.memo:
            return self.memo[e]
        if e in self.found:
            mark = self.found[e]
            out = mark.func(*(self(a) for a in mark.args))
        elif not e.args or isinstance(e, Library):
            out = e
        else:
            grouped = self._group(e) if isinstance(e, (sp.Add, sp.Mul)) else None
            if grouped is not None:
                out = self(grouped)
            else:
                out = e.func(*(self(a) for a in e.args))
        self.memo[e] = out
        return out

    def _group(self, e: sp.Expr) -> sp.Expr | None:
        """A sum or product holding a library result's terms (or factors) among others, or a
        multiple of them (a mean divides a log_softmax): those terms grouped into the mark."""
        terms = list(e.args)
        for body, mark in self.parts:
            if type(body) is not type(e) or len(body.args) >= len(terms):
                continue
            first = body.args[0]
            scales = [sp.S.One] if isinstance(e, sp.Mul) else {t / first for t in terms}
            for c in scales:
                if not c.is_Rational or c == 0:
                    continue
                wanted = [c * b if isinstance(e, sp.Add) else b for b in body.args]
                if all(w in terms for w in wanted):
                    rest = [t for t in terms if t not in wanted]
                    return e.func(c * mark if isinstance(e, sp.Add) else mark, *rest)
        return None


@dataclass(frozen=True)
class Written:
    """An identity at explicit sizes, with every formula as written (library calls marked)."""

    graph: Graph
    definitions: dict[str, np.ndarray]
    """Each definition's entries, marked, in its parents' symbols."""
    claims: dict[int, np.ndarray]
    """Each claim's entries, marked, in the graph's symbols."""

    @property
    def expanded(self) -> dict[sp.Symbol, sp.Expr]:
        """Each intermediate symbol written (marked) in the variables alone."""
        full: dict[sp.Symbol, sp.Expr] = {}
        for node in self.graph.definitions:
            for sym, e in zip(node.flat, self.definitions[node.name].flat):
                full[sym] = e.xreplace(full)
        return full


def written(identity: Identity, sizes: Mapping[str, int]) -> Written:
    """`identity` built at `sizes` (derive.symbolic.graph.build) while observing its calls of
    library functions; each formula marked where it called one (each formula on its own, so
    `logsumexp(z)` in one definition leaves `log(sum(exp(z)))` in another as written)."""
    formulas = [d.formula for d in identity.definitions] + [c.formula for c in identity.claims]
    with _observing(formulas) as segments:
        graph = build(identity, dict(sizes))
    if len(segments) != len(formulas):  # not one call per formula: mark nothing (as written)
        segments = [[] for _ in formulas]
    markers = [_Marker(_marks(calls)) for calls in segments]
    defs = {n.name: _map(markers[k], n.expr) for k, n in enumerate(graph.definitions)}
    offset = len(graph.definitions)
    claims = {c.index: _map(markers[offset + c.index], c.expr) for c in graph.claims}
    return Written(graph, defs, claims)


def _map(f: Callable[[sp.Expr], sp.Expr], arr: np.ndarray) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = f(sp.sympify(v))
    return out


# --- the rewrite table -------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """A rewrite people use: `before` -> `after`, both written on argument symbols.

    `match(e)` returns the arguments when e is an instance of `lhs` (plus `rest`, the other
    terms or factors of a sum or product that holds it), else None. `needs` names the formula
    functions the rewritten form uses: a rule whose functions a formula cannot call is off."""

    name: str
    before: str
    after: str
    lhs: Callable[..., sp.Expr]
    rhs: Callable[..., sp.Expr]
    match: Callable[[sp.Expr], "Matched | None"]
    needs: tuple[str, ...] = ()
    stability: bool = True
    """False for algebra that simplifies but does not itself stabilise (softplus(-u) -> ...)."""


@dataclass(frozen=True)
class Matched:
    args: tuple[sp.Expr, ...]
    rest: tuple[sp.Expr, ...] = ()


def _terms(e: sp.Expr) -> list[sp.Expr]:
    return list(e.args) if isinstance(e, sp.Add) else [e]


def _is_exp(e: sp.Expr) -> bool:
    return isinstance(e, sp.exp)


def _exp_sum(e: sp.Expr) -> tuple[sp.Expr, ...] | None:
    """The exponents b when e = sum_k exp(b_k) (two terms at least; exp(0) = 1 counts)."""
    if not isinstance(e, sp.Add) or not any(_is_exp(t) for t in e.args):
        return None
    out = []
    for t in e.args:
        if _is_exp(t):
            out.append(t.args[0])
        elif t == 1:
            out.append(sp.S.Zero)
        else:
            return None
    return tuple(out)


def _split(e: sp.Expr, wanted: list[sp.Expr]) -> tuple[sp.Expr, ...] | None:
    """The other terms of the sum e when every term in `wanted` is among its terms."""
    terms = _terms(e)
    if not all(w in terms for w in wanted):
        return None
    rest = list(terms)
    for w in wanted:
        rest.remove(w)
    return tuple(rest)


def _m_softplus(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and len(e.args[0].args) == 2:
        a, b = e.args[0].args
        for one, ex in ((a, b), (b, a)):
            if one == 1 and _is_exp(ex):
                return Matched((ex.args[0],))
    return None


def _m_one_minus(cls: type[Library]) -> Callable[[sp.Expr], Matched | None]:
    def match(e: sp.Expr) -> Matched | None:
        if not isinstance(e, sp.Add):
            return None
        for t in e.args:
            if isinstance(-t, cls):
                rest = _split(e, [sp.S.One, t])
                if rest is not None:
                    return Matched((-t).args, rest)
        return None
    return match


def _m_log_of(cls: type[Library]) -> Callable[[sp.Expr], Matched | None]:
    def match(e: sp.Expr) -> Matched | None:
        if isinstance(e, sp.log) and isinstance(e.args[0], cls):
            return Matched(e.args[0].args)
        return None
    return match


def _m_log_one_minus_sigmoid(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add):
        m = _m_one_minus(sigmoid)(e.args[0])
        if m is not None and not m.rest:
            return m
    return None


def _fraction_of_exps(e: sp.Expr, power: int = 1) -> tuple[tuple[sp.Expr, ...], tuple[sp.Expr, ...], tuple[sp.Expr, ...]] | None:
    """(a,), (b_1..b_n), other factors when e = exp(a)^c / (sum_k exp(b_k))^c * others, a
    among b (c = `power`; SymPy writes exp(a)^2 as exp(2 a))."""
    if not isinstance(e, sp.Mul):
        return None
    factors = list(e.args)
    for den in factors:
        if isinstance(den, sp.Pow) and den.exp == -power:
            b = _exp_sum(den.base)
            if b is None:
                continue
            for num in factors:
                if _is_exp(num) and num.args[0] / power in b:
                    rest = [f for f in factors if f is not num and f is not den]
                    return (num.args[0] / power,), b, tuple(rest)
    return None


def _m_softmax_power(e: sp.Expr) -> Matched | None:
    for c in (2, 3):
        found = _fraction_of_exps(e, c)
        if found is not None and len(found[1]) >= 2:
            (a,), b, rest = found
            return Matched((sp.Integer(c), a, *b), rest)
    return None


def _m_softmax(e: sp.Expr) -> Matched | None:
    found = _fraction_of_exps(e)
    if found is None:
        return None
    (a,), b, rest = found
    if len(b) < 2:
        return None
    return Matched((a, *b), rest)


def _softmax_rhs(a: sp.Expr, *b: sp.Expr) -> sp.Expr:
    if len(b) == 2:  # a two-way softmax is a sigmoid of the difference
        other = b[1] if b[0] == a else b[0]
        return sigmoid(a - other)
    return softmax(a, *b)


def _softmax_lhs(a: sp.Expr, *b: sp.Expr) -> sp.Expr:
    return sp.exp(a) / sp.Add(*(sp.exp(x) for x in b))


def _m_logsumexp(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.log):
        b = _exp_sum(e.args[0])
        if b is not None and len(b) >= 2 and sp.S.Zero not in b:
            return Matched(b)
    return None


def _logsumexp_rhs(*b: sp.Expr) -> sp.Expr:
    return logaddexp(*b) if len(b) == 2 else logsumexp(*b)


def _m_log_softmax(e: sp.Expr) -> Matched | None:
    if not isinstance(e, sp.log):
        return None
    inner = e.args[0]
    if isinstance(inner, softmax):
        return Matched(inner.args)
    found = _fraction_of_exps(inner)
    if found is not None and not found[2] and len(found[1]) >= 3:
        return Matched((found[0][0], *found[1]))
    return None


def _m_logistic(e: sp.Expr) -> Matched | None:
    """exp(u) / (1 + exp(u)) and 1 / (1 + exp(-u)): a sigmoid written out."""
    if isinstance(e, sp.Pow) and e.exp == -1:
        b = _exp_sum(e.base)
        if b is not None and len(b) == 2 and sp.S.Zero in b:
            return Matched((-(b[0] + b[1]),))
    found = _fraction_of_exps(e)
    if found is not None and len(found[1]) == 2 and sp.S.Zero in found[1] and found[0][0] != 0:
        return Matched(found[0], found[2])
    return None


def _m_log1p(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.Add):
        rest = _split(e.args[0], [sp.S.One])
        if rest:
            u = sp.Add(*rest)
            if not _is_exp(u):
                return Matched((u,))
    return None


def _m_expm1(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.Add):
        for t in e.args:
            if _is_exp(t):
                rest = _split(e, [t, sp.S.NegativeOne])
                if rest is not None:
                    return Matched(t.args, rest)
    return None


def _m_hypot(power: sp.Expr) -> Callable[[sp.Expr], Matched | None]:
    def match(e: sp.Expr) -> Matched | None:
        if isinstance(e, sp.Pow) and e.exp == power and isinstance(e.base, sp.Add) and len(e.base.args) == 2:
            a, b = e.base.args
            if all(isinstance(t, sp.Pow) and t.exp == 2 for t in (a, b)):
                return Matched((a.base, b.base))
        return None
    return match


def _m_squares(e: sp.Expr) -> Matched | None:
    if not isinstance(e, sp.Add):
        return None
    squares = [t for t in e.args if isinstance(t, sp.Pow) and t.exp == 2]
    negated = [t for t in e.args if isinstance(-t, sp.Pow) and (-t).exp == 2]
    for a in squares:
        for nb in negated:
            rest = _split(e, [a, nb])
            if rest is not None:
                return Matched((a.base, (-nb).base), rest)
    return None


def _m_one_minus_tanh2(e: sp.Expr) -> Matched | None:
    if isinstance(e, sp.Add):
        for t in e.args:
            sq = -t
            if isinstance(sq, sp.Pow) and sq.exp == 2 and isinstance(sq.base, sp.tanh):
                rest = _split(e, [sp.S.One, t])
                if rest is not None:
                    return Matched(sq.base.args, rest)
    return None


def _m_softplus_negative(e: sp.Expr) -> Matched | None:
    if isinstance(e, softplus) and e.args[0].could_extract_minus_sign():
        return Matched((-e.args[0],))
    return None


RULES: tuple[Rule, ...] = (
    Rule("softplus", "log(1 + exp(x))", "softplus(x)",
         lambda u: sp.log(1 + sp.exp(u)), lambda u: softplus(u), _m_softplus, ("softplus",)),
    Rule("log_sigmoid", "log(sigmoid(x))", "-softplus(-x)",
         lambda u: sp.log(sigmoid(u)), lambda u: -softplus(-u), _m_log_of(sigmoid), ("softplus",)),
    Rule("log_one_minus_sigmoid", "log(1 - sigmoid(x))", "-softplus(x)",
         lambda u: sp.log(1 - sigmoid(u)), lambda u: -softplus(u), _m_log_one_minus_sigmoid, ("softplus",)),
    Rule("one_minus_sigmoid", "1 - sigmoid(x)", "sigmoid(-x)",
         lambda u: 1 - sigmoid(u), lambda u: sigmoid(-u), _m_one_minus(sigmoid), ("sigmoid",)),
    Rule("log_softmax", "log(softmax(z))", "log_softmax(z)",
         lambda a, *b: sp.log(softmax(a, *b)), lambda a, *b: log_softmax(a, *b), _m_log_softmax,
         ("log_softmax",)),
    Rule("softmax", "exp(z) / sum(exp(z))", "softmax(z) (shifted by max z)",
         _softmax_lhs, _softmax_rhs, _m_softmax, ("softmax", "sigmoid")),
    Rule("softmax_power", "exp(z)**c / sum(exp(z))**c", "softmax(z)**c",
         lambda c, a, *b: _softmax_lhs(a, *b) ** c, lambda c, a, *b: _softmax_rhs(a, *b) ** c,
         _m_softmax_power, ("softmax", "sigmoid")),
    Rule("logsumexp", "log(sum(exp(z)))", "logsumexp(z) (shifted by max z)",
         lambda *b: sp.log(sp.Add(*(sp.exp(x) for x in b))), _logsumexp_rhs, _m_logsumexp,
         ("logsumexp", "logaddexp")),
    Rule("sigmoid", "exp(x) / (1 + exp(x))", "sigmoid(x)",
         lambda u: sp.exp(u) / (1 + sp.exp(u)), lambda u: sigmoid(u), _m_logistic, ("sigmoid",)),
    Rule("hypot", "sqrt(x**2 + y**2)", "hypot(x, y)",
         lambda a, b: sp.sqrt(a**2 + b**2), lambda a, b: hypot(a, b), _m_hypot(sp.S.Half), ("hypot",)),
    Rule("inverse_hypot", "1/sqrt(x**2 + y**2)", "1/hypot(x, y)",
         lambda a, b: 1 / sp.sqrt(a**2 + b**2), lambda a, b: 1 / hypot(a, b), _m_hypot(-sp.S.Half), ("hypot",)),
    Rule("log1p", "log(1 + x)", "log1p(x)",
         lambda u: sp.log(1 + u), lambda u: log1p(u), _m_log1p, ("log1p",)),
    Rule("expm1", "exp(x) - 1", "expm1(x)",
         lambda u: sp.exp(u) - 1, lambda u: expm1(u), _m_expm1, ("expm1",)),
    Rule("one_minus_tanh_squared", "1 - tanh(x)**2", "1/cosh(x)**2",
         lambda u: 1 - sp.tanh(u) ** 2, lambda u: 1 / sp.cosh(u) ** 2, _m_one_minus_tanh2, ("cosh",)),
    Rule("difference_of_squares", "a**2 - b**2", "(a - b)*(a + b)",
         lambda a, b: a**2 - b**2, lambda a, b: (a - b) * (a + b), _m_squares),
    Rule("softplus_reflection", "softplus(-x)", "softplus(x) - x",
         lambda u: softplus(-u), lambda u: softplus(u) - u, _m_softplus_negative, ("softplus",),
         stability=False),
)
"""The rewrite table, most specific first (log(1 - sigmoid) before 1 - sigmoid)."""


def available(rule: Rule) -> bool:
    """Whether a formula can be written with the rule's result (its functions exist)."""
    from ..language.functions import FUNCTIONS

    return any(n in FUNCTIONS for n in rule.needs) if rule.needs else True


def _symbols(n: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"u{i}", real=True) for i in range(n))


_RULE_GRAPH = Graph("rewrite rule", {}, {}, "", ())


@lru_cache(maxsize=None)
def rule_proof(name: str, arity: int, power: int = 1) -> tuple[bool, tuple[str, ...]]:
    """The rule `name` with `arity` arguments proved on fresh real symbols by the proof ladder:
    (proved, the rungs that closed it). Cached: each rule is proved once per process."""
    rule = next(r for r in RULES if r.name == name)
    syms = _symbols(arity)
    if name == "softmax" or name == "log_softmax":  # the entry is one of the row's arguments
        lhs, rhs = rule.lhs(syms[1], *syms[1:]), rule.rhs(syms[1], *syms[1:])
    elif name == "softmax_power":  # (c, entry, *row): proved for c = 2 and c = 3 separately
        c = sp.Integer(power)
        lhs, rhs = rule.lhs(c, syms[2], *syms[2:]), rule.rhs(c, syms[2], *syms[2:])
    else:
        lhs, rhs = rule.lhs(*syms), rule.rhs(*syms)
    proof = prove_zero(unmark(lhs - rhs), _RULE_GRAPH)
    return proof.proved, proof.methods


def warm() -> None:
    """Prove every rule at the arities formulas usually need, once per process: a worker forked
    afterwards (a bounded stage, a pool task) finds them proved instead of proving them again."""
    for rule in RULES:
        if rule.name in ("softmax", "log_softmax", "softmax_power"):
            arities = [(n + 1 + (rule.name == "softmax_power"), c) for n in range(2, 6)
                       for c in ((2, 3) if rule.name == "softmax_power" else (1,))]
        elif rule.name == "logsumexp":
            arities = [(n, 1) for n in range(2, 6)]
        else:
            arities = [(_symbols_needed(rule), 1)]
        for arity, power in arities:
            rule_proof(rule.name, arity, power)


def _symbols_needed(rule: Rule) -> int:
    return rule.lhs.__code__.co_argcount or 1


@dataclass(frozen=True)
class Applied:
    """One use of a rule inside a formula: the subexpression `node` became `replacement`."""

    rule: str
    args: tuple[sp.Expr, ...]
    node: sp.Expr
    replacement: sp.Expr
    rest: tuple[sp.Expr, ...] = ()


def apply_at(rule: Rule, e: sp.Expr) -> Applied | None:
    """`rule` applied at the top of e, or None when it does not match there."""
    m = rule.match(e)
    if m is None:
        return None
    after = rule.rhs(*m.args)
    if m.rest:
        after = sp.Add(after, *m.rest) if isinstance(e, sp.Add) else sp.Mul(after, *m.rest)
    return Applied(rule.name, m.args, e, after, m.rest)


def rewrite_everywhere(e: sp.Expr, rules: tuple[Rule, ...], *, limit: int = 4) -> tuple[sp.Expr, list[Applied]]:
    """Every rule applied wherever it matches, innermost first, until nothing changes; the
    steps in the order they were taken (replaying them on e gives the result)."""
    used: list[Applied] = []
    memo: dict[sp.Expr, sp.Expr] = {}

    def walk(x: sp.Expr) -> sp.Expr:
        if x in memo:
            return memo[x]
        y = x.func(*(walk(a) for a in x.args)) if x.args else x
        for _ in range(limit):
            hit = next((h for r in rules if (h := apply_at(r, y)) is not None), None)
            if hit is None:
                break
            used.append(hit)
            y = hit.replacement
            y = y.func(*(walk(a) for a in y.args)) if y.args else y
        memo[x] = y
        return y

    return walk(e), used


def rewrite_at(e: sp.Expr, target: sp.Expr, rule: Rule) -> tuple[sp.Expr, Applied] | None:
    """e with its subexpression `target` rewritten by `rule` (every occurrence)."""
    hit = apply_at(rule, target)
    if hit is None:
        return None
    return e.xreplace({target: hit.replacement}), hit


def ancestors(e: sp.Expr, target: sp.Expr) -> list[sp.Expr]:
    """The subexpressions of e that contain `target`, innermost (target itself) first."""
    out: list[sp.Expr] = []

    def walk(x: sp.Expr) -> bool:
        if x == target:
            out.append(x)
            return True
        found = False
        for a in x.args:
            found = walk(a) or found
        if found and x not in out:
            out.append(x)
        return found

    walk(e)
    return out


@dataclass(frozen=True)
class Equality:
    """Whether a rewritten formula was proved equal to the original, and how."""

    proved: bool
    methods: tuple[str, ...] = ()
    detail: str = ""


def _schema_arity(step: Applied) -> int:
    return len(step.args)


def prove_rewrite(original: sp.Expr, rewritten: sp.Expr, steps: list[Applied]) -> Equality:
    """original == rewritten. Each step replaced a subexpression that is an instance of a rule's
    left side by the same instance of its right side; each rule is proved on fresh symbols by
    the proof ladder, so each step keeps the formula equal. Replaying the steps must give
    `rewritten`, up to algebra that the ladder's rational normal form shows with library calls
    as opaque atoms. Failing that, the ladder on the elementary forms decides."""
    methods: list[str] = []
    replay = original
    for step in steps:
        rule = next(r for r in RULES if r.name == step.rule)
        power = int(step.args[0]) if step.rule == "softmax_power" else 1
        ok, how = rule_proof(step.rule, _schema_arity(step), power)
        lhs = rule.lhs(*step.args)
        instance = (sp.Add(lhs, *step.rest) if isinstance(step.node, sp.Add) else sp.Mul(lhs, *step.rest)
                    ) if step.rest else lhs
        if not ok or instance != step.node:
            break
        methods.append(f"rule {step.rule}: {', '.join(how)}")
        replay = replay.xreplace({step.node: step.replacement})
    else:
        if replay == rewritten:
            return Equality(True, tuple(dict.fromkeys(methods)))
        if rational_zero(replay - rewritten):
            return Equality(True, tuple(dict.fromkeys(methods + ["rational normal form (library calls opaque)"])))
    proof = prove_zero(unmark(original - rewritten), _RULE_GRAPH, simplify_ok=False)
    if proof.proved:
        return Equality(True, proof.methods)
    return Equality(False, detail="the rewritten formula was not shown equal to the original")


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


__all__ = ["Library", "LIBRARY", "RULES", "Rule", "Matched", "Applied", "Equality", "Written",
           "written", "unmark", "available", "rule_proof", "apply_at", "rewrite_at",
           "rewrite_everywhere", "ancestors", "prove_rewrite", "formula_text", "FormulaPrinter"]
