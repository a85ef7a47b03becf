"""Formulas as written: which parts of each formula were library calls.

The calls into `derive.ops` are observed while the formulas are built (a profile hook, active
only while `written` builds the graph) and each library result is replaced by its `Library`
mark (`derive.symbolic.marks`), so `logsumexp(z)` in one definition and `log(sum(exp(z)))` in
another stay as they were written.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import sympy as sp

from ..model import ops
from ..model.spec import Identity
from .graph import Graph, build
from .marks import LIBRARY, ROWWISE, Library

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


__all__ = ["Written", "written"]
