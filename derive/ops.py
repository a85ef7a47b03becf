"""The formula vocabulary: elementwise and reduction operations on SymPy object arrays.

Scalars are SymPy expressions, vectors and matrices are numpy arrays of dtype object, so
`+ - * / **` broadcast like numpy and `@` is a matrix product. Every function here is
defined from elementary SymPy functions (sigmoid is 1/(1+exp(-x)), softmax is exp/sum exp),
so a derivative is derived, never looked up from a rule we wrote.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import sympy as sp

half = sp.Rational(1, 2)


def _unwrap(a: np.ndarray) -> Any:
    return a.item() if a.ndim == 0 else a


def elementwise(f: Callable[[sp.Expr], sp.Expr]) -> Callable[[Any], Any]:
    """Lift a scalar SymPy function to object arrays (keeping scalars scalar)."""

    def lifted(a: Any) -> Any:
        arr = np.asarray(a, dtype=object)
        out = np.empty(arr.shape, dtype=object)
        for idx, value in np.ndenumerate(arr):
            out[idx] = f(sp.sympify(value))
        return _unwrap(out)

    lifted.__name__ = getattr(f, "__name__", "elementwise")
    return lifted


exp = elementwise(sp.exp)
log = elementwise(sp.log)
sqrt = elementwise(sp.sqrt)
tanh = elementwise(sp.tanh)
sin = elementwise(sp.sin)
cos = elementwise(sp.cos)
abs_ = elementwise(sp.Abs)
sigmoid = elementwise(lambda x: 1 / (1 + sp.exp(-x)))
relu = elementwise(lambda x: sp.Max(0, x))
softplus = elementwise(lambda x: sp.log(1 + sp.exp(x)))
step = elementwise(lambda x: sp.Piecewise((1, x > 0), (0, True)))
"""The derivative of relu away from 0: 1 where x > 0, else 0."""


def sum_(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    arr = np.asarray(a, dtype=object)
    out = np.sum(arr, axis=axis, keepdims=keepdims) if arr.size else sp.Integer(0)
    return _unwrap(np.asarray(out, dtype=object))


def mean(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    arr = np.asarray(a, dtype=object)
    count = arr.size if axis is None else arr.shape[axis]
    return sum_(arr, axis=axis, keepdims=keepdims) * sp.Rational(1, count)


def dot(a: Any, b: Any) -> Any:
    return sum_(np.asarray(a, dtype=object) * np.asarray(b, dtype=object), axis=-1)


def softmax(a: Any, axis: int = -1) -> Any:
    e = np.asarray(exp(a), dtype=object)
    return e / np.asarray(sum_(e, axis=axis, keepdims=True), dtype=object)


def log_softmax(a: Any, axis: int = -1) -> Any:
    """z - log(sum(exp(z))): the form torch computes (without its max shift)."""
    arr = np.asarray(a, dtype=object)
    return arr - np.asarray(log(sum_(exp(arr), axis=axis, keepdims=True)), dtype=object)


def logsumexp(a: Any, axis: int = -1) -> Any:
    return log(sum_(exp(a), axis=axis))


def eye(n: int) -> np.ndarray:
    """The Kronecker delta as an n x n object array."""
    out = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(n):
            out[i, j] = sp.Integer(int(i == j))
    return out


def outer(a: Any, b: Any) -> np.ndarray:
    return np.multiply.outer(np.asarray(a, dtype=object), np.asarray(b, dtype=object))


def diag(a: Any) -> np.ndarray:
    vec = np.asarray(a, dtype=object)
    return eye(len(vec)) * vec


def shape(a: Any) -> tuple[int, ...]:
    return np.asarray(a, dtype=object).shape
