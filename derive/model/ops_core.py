"""The array plumbing under `derive.ops`: lifting scalar SymPy functions to arrays, sums, sizes.

An array is a numpy array of dtype object (explicit sizes) or a `SymArray` (a symbolic size
n); scalars are SymPy expressions. Every operation here accepts all three and keeps scalars
scalar, so one formula serves the explicit check and the proof for every n.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import sympy as sp

from . import indexed
from ..errors import SpecError, UnsupportedError
from .indexed import SymArray

half = sp.Rational(1, 2)


def _unwrap(a: np.ndarray) -> Any:
    return a.item() if a.ndim == 0 else a


def _explicit_only(name: str, shape: tuple[Any, ...]) -> UnsupportedError:
    return UnsupportedError(f"{name} of an array of symbolic size {shape} is not supported: a "
                            "piecewise function is checked at explicit sizes only (its kinks are split there)")


def elementwise(f: Callable[[sp.Expr], sp.Expr], *, piecewise: str = "") -> Callable[[Any], Any]:
    """Lift a scalar SymPy function to arrays (keeping scalars scalar). A `piecewise` function
    (named) refuses arrays of symbolic size: the proof for every n does not split kinks."""

    def lifted(a: Any) -> Any:
        if isinstance(a, SymArray):
            if piecewise:
                raise _explicit_only(piecewise, a.shape)
            return a.map(f)
        arr = np.asarray(a, dtype=object)
        out = np.empty(arr.shape, dtype=object)
        for idx, value in np.ndenumerate(arr):
            out[idx] = f(sp.sympify(value, strict=True))  # strict: a string is never parsed
        return _unwrap(out)

    lifted.__name__ = getattr(f, "__name__", "elementwise")
    return lifted


def elementwise_n(f: Callable[..., sp.Expr], name: str = "", *, piecewise: bool = False) -> Callable[..., Any]:
    """Lift a scalar SymPy function of several arguments to arrays that broadcast like numpy
    (a `piecewise` one refuses arrays of symbolic size, as `elementwise`)."""

    def lifted(*args: Any) -> Any:
        if any(isinstance(a, SymArray) for a in args):
            if piecewise:
                raise _explicit_only(name, next(a.shape for a in args if isinstance(a, SymArray)))
            shape: tuple[sp.Expr, ...] = ()
            for a in args:
                shape = indexed._broadcast(shape, a.shape if isinstance(a, SymArray) else ())
            if not shape:
                return f(*(indexed._at(a, (), ()) for a in args))
            return SymArray(shape, lambda *i: f(*(indexed._at(a, shape, i) for a in args)))
        arrays = [np.asarray(a, dtype=object) for a in args]
        try:
            shape = np.broadcast_shapes(*(a.shape for a in arrays))
        except ValueError:
            raise SpecError(f"{name or 'the function'}: shapes {', '.join(str(a.shape) for a in arrays)} "
                            "do not broadcast together") from None
        out = np.empty(shape, dtype=object)
        wide = [np.broadcast_to(a, shape) for a in arrays]
        for idx in np.ndindex(*shape):
            out[idx] = f(*(sp.sympify(w[idx], strict=True) for w in wide))
        return _unwrap(out)

    lifted.__name__ = name or getattr(f, "__name__", "elementwise")
    return lifted


def size(a: Any, axis: int = 0) -> Any:
    """The length of an axis: an int for explicit sizes, a SymPy symbol for symbolic ones."""
    if isinstance(a, SymArray):
        return a.shape[axis]
    return np.asarray(a, dtype=object).shape[axis]


def shape(a: Any) -> tuple[Any, ...]:
    if isinstance(a, SymArray):
        return a.shape
    return np.asarray(a, dtype=object).shape


def sum_(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    if isinstance(a, SymArray):
        return indexed.reduce_sum(a, axis, keepdims)
    arr = np.asarray(a, dtype=object)
    out = np.sum(arr, axis=axis, keepdims=keepdims) if arr.size else sp.Integer(0)
    return _unwrap(np.asarray(out, dtype=object))


def count(a: Any, axis: int | None = None) -> Any:
    """How many entries a reduction over `axis` combines (a SymPy expression for symbolic sizes)."""
    if isinstance(a, SymArray):
        return sp.Mul(*a.shape) if axis is None else a.shape[axis]
    arr = np.asarray(a, dtype=object)
    return sp.Integer(arr.size if axis is None else arr.shape[axis])


def mean(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    if isinstance(a, SymArray):
        return sum_(a, axis=axis, keepdims=keepdims) / count(a, axis)
    arr = np.asarray(a, dtype=object)
    n = arr.size if axis is None else arr.shape[axis]
    return sum_(arr, axis=axis, keepdims=keepdims) * sp.Rational(1, n)


def eye(n: Any) -> Any:
    """The Kronecker delta: an n x n array (n an int or a SymPy size symbol)."""
    if isinstance(n, sp.Basic) and not n.is_Integer:
        return indexed.kronecker(n)
    n = int(n)
    out = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(n):
            out[i, j] = sp.Integer(int(i == j))
    return out


def full(value: Any, *dims: Any) -> Any:
    """An array of the given sizes (ints or size symbols) filled with `value`."""
    value = sp.sympify(value, strict=True)
    if any(isinstance(d, sp.Basic) and not d.is_Integer for d in dims):
        return SymArray(tuple(sp.sympify(d) for d in dims), lambda *i: value)
    out = np.empty(tuple(int(d) for d in dims), dtype=object)
    out.fill(value)
    return out
