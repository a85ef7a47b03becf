"""The formula vocabulary: elementwise and reduction operations on arrays of SymPy expressions.

An array is either a numpy array of dtype object (explicit sizes: `+ - * / **` broadcast like
numpy, `@` is a matrix product) or a `derive.indexed.SymArray` (a symbolic size n, entries
written with indices and Sums); every function here accepts both, and scalars are SymPy
expressions. Everything is defined from elementary SymPy functions (sigmoid is 1/(1+exp(-x)),
softmax is exp/sum exp), so a derivative is derived, never looked up from a rule we wrote.
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


def elementwise(f: Callable[[sp.Expr], sp.Expr]) -> Callable[[Any], Any]:
    """Lift a scalar SymPy function to arrays (keeping scalars scalar)."""

    def lifted(a: Any) -> Any:
        if isinstance(a, SymArray):
            return a.map(f)
        arr = np.asarray(a, dtype=object)
        out = np.empty(arr.shape, dtype=object)
        for idx, value in np.ndenumerate(arr):
            out[idx] = f(sp.sympify(value, strict=True))  # strict: a string is never parsed
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
erf = elementwise(sp.erf)
"""The error function (SymPy differentiates it to 2/sqrt(pi) exp(-x^2) by itself)."""
step = elementwise(lambda x: sp.Piecewise((1, x > 0), (0, True)))
"""The derivative of relu away from 0: 1 where x > 0, else 0."""


def size(a: Any, axis: int = 0) -> Any:
    """The length of an axis: an int for explicit sizes, a SymPy symbol for symbolic ones."""
    if isinstance(a, SymArray):
        return a.shape[axis]
    return np.asarray(a, dtype=object).shape[axis]


def sum_(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    if isinstance(a, SymArray):
        return indexed.reduce_sum(a, axis, keepdims)
    arr = np.asarray(a, dtype=object)
    out = np.sum(arr, axis=axis, keepdims=keepdims) if arr.size else sp.Integer(0)
    return _unwrap(np.asarray(out, dtype=object))


def mean(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
    if isinstance(a, SymArray):
        count = sp.Mul(*a.shape) if axis is None else a.shape[axis]
        return sum_(a, axis=axis, keepdims=keepdims) / count
    arr = np.asarray(a, dtype=object)
    count = arr.size if axis is None else arr.shape[axis]
    return sum_(arr, axis=axis, keepdims=keepdims) * sp.Rational(1, count)


def dot(a: Any, b: Any) -> Any:
    if isinstance(a, SymArray) or isinstance(b, SymArray):
        return sum_(a * b, axis=-1)
    return sum_(np.asarray(a, dtype=object) * np.asarray(b, dtype=object), axis=-1)


def softmax(a: Any, axis: int = -1) -> Any:
    e = exp(a)
    return e / sum_(e, axis=axis, keepdims=True)


def log_softmax(a: Any, axis: int = -1) -> Any:
    """z - log(sum(exp(z))): the form torch computes (without its max shift)."""
    if not isinstance(a, SymArray):
        a = np.asarray(a, dtype=object)
    return a - log(sum_(exp(a), axis=axis, keepdims=True))


def logsumexp(a: Any, axis: int = -1) -> Any:
    return log(sum_(exp(a), axis=axis))


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


def outer(a: Any, b: Any) -> Any:
    if isinstance(a, SymArray) and isinstance(b, SymArray):
        return indexed.outer(a, b)
    return np.multiply.outer(np.asarray(a, dtype=object), np.asarray(b, dtype=object))


def diag(a: Any) -> Any:
    """The diagonal matrix with the vector `a` on its diagonal."""
    if isinstance(a, SymArray):
        return eye(a.shape[0]) * a[:, None]
    vec = np.asarray(a, dtype=object)
    return eye(len(vec)) * vec[:, None]


def shape(a: Any) -> tuple[Any, ...]:
    if isinstance(a, SymArray):
        return a.shape
    return np.asarray(a, dtype=object).shape


# --- matrix functions (explicit sizes: entries written out with sympy.Matrix) ---------------

MATRIX_LIMIT = 4
"""Largest n for det, logdet and inv: their entries are written out symbolically (n! terms)."""


def _square(a: Any, what: str) -> sp.Matrix:
    if isinstance(a, SymArray):
        raise UnsupportedError(f"{what} of a matrix of symbolic size {a.shape} is not supported; "
                               "it is checked at explicit sizes only")
    arr = np.asarray(a, dtype=object)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise SpecError(f"{what} needs a square matrix, got shape {arr.shape}")
    return sp.Matrix(arr.tolist())


def _small(m: sp.Matrix, what: str) -> sp.Matrix:
    if m.rows > MATRIX_LIMIT:
        raise UnsupportedError(f"{what} of a {m.rows} x {m.rows} matrix is written out with "
                               f"n! terms; use sizes up to {MATRIX_LIMIT}")
    return m


def transpose(a: Any) -> Any:
    """The matrix transpose (vectors and scalars are returned as they are)."""
    if isinstance(a, SymArray):
        return a.T
    if isinstance(a, np.ndarray):
        return a.T
    return a


def trace(a: Any) -> Any:
    """The sum of the diagonal of a square matrix."""
    if isinstance(a, SymArray):
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise SpecError(f"trace needs a square matrix, got shape {a.shape}")
        k = indexed.dummy()
        return sp.Sum(a.fn(k, k), (k, 0, a.shape[0] - 1))
    return _square(a, "trace").trace()


def _placeholders(m: sp.Matrix) -> tuple[sp.Matrix, dict[sp.Symbol, sp.Expr]]:
    """Entries that are not symbols replaced by fresh symbols, so det/inv of a product stays
    written in its entries instead of being multiplied out."""
    back: dict[sp.Symbol, sp.Expr] = {}
    out = m.copy()
    for idx, e in enumerate(m):
        if not (e.is_Symbol or e.is_Number):
            s = sp.Dummy(f"m{idx}")
            back[s] = e
            out[idx] = s
    return out, back


def _det(a: Any, what: str) -> Any:
    m, back = _placeholders(_small(_square(a, what), what))
    return m.det(method="berkowitz").xreplace(back)


def det(a: Any) -> Any:
    """The determinant, written out (Berkowitz: no divisions)."""
    return _det(a, "det")


def logdet(a: Any) -> Any:
    """log det(a): for SPD matrices (positive determinant); log|det| is not implied."""
    return sp.log(_det(a, "logdet"))


def inv(a: Any) -> Any:
    """The inverse as adjugate / determinant, entry by entry."""
    m, back = _placeholders(_small(_square(a, "inv"), "inv"))
    d = m.det(method="berkowitz").xreplace(back)
    adj = m.adjugate(method="berkowitz")
    out = np.empty((m.rows, m.cols), dtype=object)
    for i in range(m.rows):
        for j in range(m.cols):
            out[i, j] = adj[i, j].xreplace(back) / d
    return out
