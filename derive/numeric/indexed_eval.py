"""Evaluate indexed SymPy expressions (the symbolic-n forms) at any size, vectorised.

An expression such as exp(z[i]) / Sum(exp(z[j]), (j, 0, n - 1)) is evaluated with one array
axis per index (after the leading sample axis): an entry that does not depend on an index
has length 1 along its axis and broadcasts, a Sum is a sum along its index's axis, and
KroneckerDelta(i, j) compares two aranges. So the forward definition and the derivative that
`derive.symbolic_n` derived once for a symbolic n run at n = 1024 in a handful of array
operations, with no explicit-size expression ever built. Works with numpy and torch arrays
(through the backends' operation tables); nothing is turned into source code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from .backends.program import FUNCTIONS
from ..errors import UnsupportedError
from ..symbolic.indexed_graph import IndexedGraph


@dataclass(frozen=True)
class Kit:
    """The array library: a backend's op table plus what broadcasting evaluation needs."""

    ops: dict[str, Any]
    torch: bool

    def arange(self, n: int, like: Any) -> Any:
        if self.torch:
            import torch

            return torch.arange(n, device=like.device if hasattr(like, "device") else None)
        return np.arange(n)

    def sum(self, a: Any, axis: int) -> Any:
        return a.sum(axis, keepdim=True) if self.torch else a.sum(axis, keepdims=True)

    def place(self, a: Any, perm: list[int], shape: tuple[int, ...]) -> Any:
        a = a.permute(*perm) if self.torch else a.transpose(perm)
        return a.reshape(shape)

    def as_float(self, a: Any) -> Any:
        if self.torch:
            import torch

            return a.to(torch.float64)
        return np.asarray(a, dtype=np.float64)


def kit(backend_name: str) -> Kit:
    from . import backends

    return Kit(backends.get(backend_name).ops, backend_name == "torch")


class Evaluator:
    """Evaluates expressions of one indexed graph at explicit sizes."""

    def __init__(self, graph: IndexedGraph, sizes: dict[str, int]) -> None:
        self.graph = graph
        self.sizes = {sym: int(sizes[str(sym)]) for sym in graph.sizes.values()}
        self.nodes = graph.nodes

    def _range(self, hi: sp.Expr) -> int:
        value = sp.sympify(hi).xreplace(self.sizes)
        if not value.is_Integer:
            raise UnsupportedError(f"sum bound {hi} is not a size")
        return int(value) + 1

    def _axes(self, expr: sp.Expr, out: tuple[sp.Symbol, ...]) -> tuple[dict[sp.Symbol, int], dict[sp.Symbol, int]]:
        """One axis per free index (in `out` order) and per summation index, with its length."""
        ranges: dict[sp.Symbol, int] = {i: int(sp.sympify(self.graph.ranges[i]).xreplace(self.sizes))
                                        for i in out}
        axes: dict[sp.Symbol, int] = {i: a + 1 for a, i in enumerate(out)}
        for s in sp.sympify(expr).atoms(sp.Sum):
            for lim in s.limits:
                var, lo, hi = lim
                if lo != 0:
                    raise UnsupportedError(f"sum from {lo}: only sums from 0 are evaluated")
                if var not in axes:
                    axes[var] = len(axes) + 1
                    ranges[var] = self._range(hi)
        return axes, ranges

    def volume(self, expr: sp.Expr, out: tuple[sp.Symbol, ...]) -> int:
        """Entries per sample of the largest array evaluating `expr` may build."""
        return int(np.prod(list(self._axes(expr, out)[1].values()), dtype=np.int64))

    def evaluate(self, expr: sp.Expr, values: dict[str, Any], out: tuple[sp.Symbol, ...],
                 count: int, k: Kit) -> Any:
        """expr over the free indices `out`: an array of shape (count, *sizes of out)."""
        axes, ranges = self._axes(expr, out)
        ndim = len(axes) + 1
        like = next(iter(values.values()))
        result = self._ev(sp.sympify(expr), values, axes, ranges, ndim, k, like)
        full = (count, *[ranges[i] for i in out], *([1] * (ndim - 1 - len(out))))
        if isinstance(result, float):
            result = (like.new_full(full, result) if k.torch else np.full(full, result, dtype=like.dtype))
        elif tuple(result.shape) != full:  # constant along some free index: broadcast
            result = result.expand(full) if k.torch else np.broadcast_to(result, full)
        return result.reshape((count, *[ranges[i] for i in out]))

    def _ev(self, e: sp.Basic, values: dict[str, Any], axes: dict[sp.Symbol, int],
            ranges: dict[sp.Symbol, int], ndim: int, k: Kit, like: Any) -> Any:
        def ev(x: sp.Basic) -> Any:
            return self._ev(x, values, axes, ranges, ndim, k, like)

        def along(axis: int, vec: Any) -> Any:
            shape = [1] * ndim
            shape[axis] = vec.shape[0]
            return vec.reshape(shape)

        if e.is_Number or e in (sp.pi, sp.E):
            return float(e)
        if isinstance(e, sp.Symbol):
            if e in self.sizes:
                return float(self.sizes[e])
            if e in axes:
                return k.as_float(along(axes[e], k.arange(ranges[e], like)))
            name = str(e)
            if name in values:  # a scalar node
                return values[name].reshape((values[name].shape[0], *([1] * (ndim - 1))))
            raise UnsupportedError(f"symbol {e} has no value")
        if isinstance(e, sp.Indexed):
            arr = values[str(e.base.label)]
            idx = list(e.indices)
            if not all(i in axes for i in idx) or len(set(idx)) != len(idx):
                raise UnsupportedError(f"{e}: only distinct plain indices are evaluated")
            pos = [axes[i] for i in idx]
            order = sorted(range(len(idx)), key=lambda a: pos[a])
            shape = [arr.shape[0]] + [1] * (ndim - 1)
            for a in order:
                shape[pos[a]] = arr.shape[1 + a]
            return k.place(arr, [0, *(1 + a for a in order)], tuple(shape))
        if isinstance(e, sp.Sum):
            body = ev(e.function)
            for var, _, _ in e.limits:
                if isinstance(body, float) or body.shape[axes[var]] == 1:  # constant in var
                    body = body * float(ranges[var])
                else:
                    body = k.sum(body, axes[var])
            return body
        if isinstance(e, sp.KroneckerDelta):
            a, b = e.args
            return k.as_float(ev(a) == ev(b))
        if isinstance(e, sp.Add):
            return k.ops["add"](*(ev(a) for a in e.args))
        if isinstance(e, sp.Mul):
            return k.ops["mul"](*(ev(a) for a in e.args))
        if isinstance(e, sp.Pow):
            base, ex = e.args
            if ex == sp.Rational(1, 2):
                return k.ops["sqrt"](ev(base))
            return k.ops["pow"](ev(base), float(ex) if ex.is_Number else ev(ex))
        if isinstance(e, (sp.Max, sp.Min)):
            return k.ops["max" if isinstance(e, sp.Max) else "min"](*(ev(a) for a in e.args))
        name = FUNCTIONS.get(type(e))
        if name is not None:  # atan2(y, x), polygamma(n, x): every argument, in order
            args = e.args[:1] if isinstance(e, sp.Heaviside) else e.args
            return k.ops[name](*(ev(a) for a in args))
        raise UnsupportedError(f"cannot evaluate {type(e).__name__} in an indexed expression")

    def forward(self, inputs: dict[str, Any], count: int, k: Kit) -> dict[str, Any]:
        """Every node's value from the variables' values (count, *shape), in order."""
        values = dict(inputs)
        for name, node in self.nodes.items():
            if node.formula is None:
                continue
            if node.index:
                expr = node.formula.entry(*node.index)
                values[name] = self.evaluate(expr, values, tuple(node.index), count, k)
            else:
                values[name] = self.evaluate(sp.sympify(node.formula), values, (), count, k)
        return values
