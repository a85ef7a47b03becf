"""Reductions and scans for formulas: var, std, prod, cumsum, cumprod, logcumsumexp, norm.

Written with sums and products of the entries (and sqrt, log, exp, abs), so derivatives are
derived. var and std follow numpy: ddof=0 by default (divide by N); torch's default is the
unbiased N - 1 (write ddof=1 for it). norm is the vector norm of all entries (or along an axis),
as torch.linalg.vector_norm: ord 2 (default), 1, inf, -inf, or any p > 0.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import sympy as sp

from ..errors import SpecError, UnsupportedError
from .indexed import SymArray
from .ops_core import _unwrap, count, mean, sum_
from .ops_math import extreme_of


def _explicit(a: Any, what: str) -> np.ndarray:
    if isinstance(a, SymArray):
        raise UnsupportedError(f"{what} of an array of symbolic size {a.shape} is not supported; "
                               "it is checked at explicit sizes only")
    return np.asarray(a, dtype=object)


def _along(a: np.ndarray, axis: int | None, fold: Callable[[list[sp.Expr]], sp.Expr]) -> Any:
    """fold applied to the entries along `axis` (all entries for None)."""
    if axis is None:
        return fold([sp.sympify(v) for v in a.flat])
    moved = np.moveaxis(a, axis, -1)
    out = np.empty(moved.shape[:-1], dtype=object)
    for idx in np.ndindex(*moved.shape[:-1]):
        out[idx] = fold([sp.sympify(v) for v in moved[idx]])
    return _unwrap(out)


def var(a: Any, axis: int | None = None, ddof: int = 0) -> Any:
    """The variance, sum((a - mean)^2) / (N - ddof), N the entries along `axis` (all for None)."""
    n = count(a, axis)
    if not isinstance(n, sp.Basic) or n.is_Integer:
        if int(n) - ddof <= 0:
            raise SpecError(f"var with ddof={ddof} of {int(n)} entries divides by {int(n) - ddof}; "
                            "use a smaller ddof")
    if not isinstance(a, SymArray):
        a = np.asarray(a, dtype=object)
    centred = a - mean(a, axis=axis, keepdims=True)
    return sum_(centred ** 2, axis=axis) / (n - ddof)


def std(a: Any, axis: int | None = None, ddof: int = 0) -> Any:
    """sqrt(var(a, axis, ddof))."""
    v = var(a, axis=axis, ddof=ddof)
    if isinstance(v, SymArray):
        return v.map(sp.sqrt)
    if isinstance(v, np.ndarray):
        return np.vectorize(sp.sqrt, otypes=[object])(v)
    return sp.sqrt(v)


def prod(a: Any, axis: int | None = None) -> Any:
    """The product of the entries (along `axis`)."""
    return _along(_explicit(a, "prod"), axis, lambda xs: sp.Mul(*xs))


def _scan(a: Any, axis: int, what: str, entry: Any, combine: Any, finish: Any = None) -> Any:
    """Running `combine` of `entry(x)` along `axis`, each prefix then `finish`ed (cumsum, cumprod,
    logcumsumexp)."""
    arr = _explicit(a, what)
    if arr.ndim == 0:
        return arr.item()
    moved = np.moveaxis(arr, axis, -1)
    out = np.empty(moved.shape, dtype=object)
    for idx in np.ndindex(*moved.shape[:-1]):
        row = [entry(sp.sympify(v)) for v in moved[idx]]
        for k in range(len(row)):
            prefix = combine(*row[: k + 1])
            out[(*idx, k)] = finish(prefix) if finish else prefix
    return np.moveaxis(out, -1, axis)


def cumsum(a: Any, axis: int = -1) -> Any:
    """Running sums along `axis` (the last by default)."""
    return _scan(a, axis, "cumsum", lambda x: x, sp.Add)


def cumprod(a: Any, axis: int = -1) -> Any:
    """Running products along `axis` (the last by default)."""
    return _scan(a, axis, "cumprod", lambda x: x, sp.Mul)


def logcumsumexp(a: Any, axis: int = -1) -> Any:
    """log(cumsum(exp(a))) along `axis` (evaluated shifted by the largest exponent)."""
    return _scan(a, axis, "logcumsumexp", sp.exp, sp.Add, sp.log)


def _extreme_along(a: Any, axis: int | None, larger: bool, what: str) -> Any:
    arr = _explicit(a, what)
    length = arr.size if axis is None else np.asarray(arr).shape[axis]
    if length > 6:
        raise UnsupportedError(f"{what} of {length} entries is written out as a tree of 2^n "
                               "comparisons; use at most 6 entries")
    return _along(arr, axis, lambda xs: extreme_of(xs, larger))


def amax(a: Any, axis: int | None = None) -> Any:
    """The largest entry (along `axis`): a tree of comparisons, with kinks where entries tie."""
    return _extreme_along(a, axis, True, "amax")


def amin(a: Any, axis: int | None = None) -> Any:
    """The smallest entry (along `axis`)."""
    return _extreme_along(a, axis, False, "amin")


ORDS = ("1", "2", "inf", "-inf", "p > 0")


def norm(a: Any, ord: Any = 2, axis: int | None = None) -> Any:  # noqa: A002 - numpy's name
    """The vector norm of the entries (along `axis`): (sum |a|^p)^(1/p); ord=inf is the largest
    |a_i|, -inf the smallest (torch.linalg.vector_norm; a matrix is taken as its entries)."""
    if ord in (math.inf, -math.inf) or (isinstance(ord, sp.Basic) and ord.is_infinite):
        larger = ord in (math.inf, sp.oo)
        absolute = np.vectorize(sp.Abs, otypes=[object])(_explicit(a, f"norm(ord={ord})"))
        return _extreme_along(absolute, axis, larger, f"norm(ord={'inf' if larger else '-inf'})")
    p = sp.Rational(str(ord)) if isinstance(ord, float) else sp.sympify(ord)
    if not (p.is_Rational and p > 0):
        raise SpecError(f"norm's ord must be 1, 2, inf, -inf or a number p > 0, got {ord}")
    if isinstance(a, SymArray):
        if p == 2:
            s = sum_(a.map(lambda v: v**2), axis=axis)
            return s.map(sp.sqrt) if isinstance(s, SymArray) else sp.sqrt(s)
        s = sum_(a.map(lambda v: sp.Abs(v) ** p), axis=axis)
        return s.map(lambda v: v ** (1 / p)) if isinstance(s, SymArray) else s ** (1 / p)
    arr = np.asarray(a, dtype=object)
    if p == 2:
        return _along(arr, axis, lambda xs: sp.sqrt(sp.Add(*(x**2 for x in xs))))
    if p == 1:
        return _along(arr, axis, lambda xs: sp.Add(*(sp.Abs(x) for x in xs)))
    return _along(arr, axis, lambda xs: sp.Add(*(sp.Abs(x) ** p for x in xs)) ** (1 / p))


__all__ = ["amax", "amin", "var", "std", "prod", "cumsum", "cumprod", "logcumsumexp", "norm", "ORDS"]
