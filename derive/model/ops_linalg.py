"""Linear algebra for formulas: products, traces, determinants, inverses, solves, Cholesky.

Matrix functions of explicit size are written out entry by entry with SymPy (det by
Berkowitz, inv as adjugate / det, Cholesky and triangular solves by substitution), so their
derivatives are derived; det, inv, solve and pinv have n! terms and are limited to
n <= MATRIX_LIMIT. A few (transpose, trace, diag, outer, dot, eye) also work at a symbolic size n.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from . import indexed
from ..errors import SpecError, UnsupportedError
from .indexed import SymArray
from .ops_core import _unwrap, eye, sum_

MATRIX_LIMIT = 4
"""Largest n for det, logdet, inv, solve, pinv and cholesky: their entries are written out
symbolically (n! terms)."""


def dot(a: Any, b: Any) -> Any:
    if isinstance(a, SymArray) or isinstance(b, SymArray):
        return sum_(a * b, axis=-1)
    return sum_(np.asarray(a, dtype=object) * np.asarray(b, dtype=object), axis=-1)


def outer(a: Any, b: Any) -> Any:
    if isinstance(a, SymArray) and isinstance(b, SymArray):
        return indexed.outer(a, b)
    return np.multiply.outer(np.asarray(a, dtype=object), np.asarray(b, dtype=object))


def diag(a: Any) -> Any:
    """numpy's diag: a vector becomes the diagonal matrix with it on its diagonal; a matrix
    gives its diagonal (a vector)."""
    if isinstance(a, SymArray):
        if a.ndim == 2:
            if a.shape[0] != a.shape[1]:
                raise UnsupportedError(f"diag of a matrix of symbolic shape {a.shape} that is not square")
            return SymArray((a.shape[0],), lambda i: a.fn(i, i))
        return eye(a.shape[0]) * a[:, None]
    arr = np.asarray(a, dtype=object)
    if arr.ndim == 2:
        out = np.empty(min(arr.shape), dtype=object)
        for i in range(len(out)):
            out[i] = arr[i, i]
        return out
    if arr.ndim != 1:
        raise SpecError(f"diag needs a vector or a matrix, got shape {arr.shape}")
    return eye(len(arr)) * arr[:, None]


def transpose(a: Any) -> Any:
    """The matrix transpose (vectors and scalars are returned as they are)."""
    if isinstance(a, SymArray):
        return a.T
    if isinstance(a, np.ndarray):
        return a.T
    return a


def tril(a: Any, k: int = 0) -> Any:
    """The lower triangle (entries j <= i + k), the rest 0."""
    arr = _explicit_matrix(a, "tril")
    out = arr.copy()
    for i, j in np.ndindex(*arr.shape):
        if j > i + k:
            out[i, j] = sp.S.Zero
    return out


def triu(a: Any, k: int = 0) -> Any:
    """The upper triangle (entries j >= i + k), the rest 0."""
    arr = _explicit_matrix(a, "triu")
    out = arr.copy()
    for i, j in np.ndindex(*arr.shape):
        if j < i + k:
            out[i, j] = sp.S.Zero
    return out


def cross(a: Any, b: Any) -> Any:
    """The cross product of 3-vectors."""
    u = np.asarray(_explicit(a, "cross"), dtype=object)
    v = np.asarray(_explicit(b, "cross"), dtype=object)
    if u.shape != (3,) or v.shape != (3,):
        raise SpecError(f"cross needs two vectors of length 3, got shapes {u.shape} and {v.shape}")
    out = np.empty(3, dtype=object)
    out[0] = u[1] * v[2] - u[2] * v[1]
    out[1] = u[2] * v[0] - u[0] * v[2]
    out[2] = u[0] * v[1] - u[1] * v[0]
    return out


# --- matrix functions (explicit sizes: entries written out with sympy.Matrix) ---------------

def _explicit(a: Any, what: str) -> Any:
    if isinstance(a, SymArray):
        raise UnsupportedError(f"{what} of an array of symbolic size {a.shape} is not supported; "
                               "it is checked at explicit sizes only")
    return a


def _explicit_matrix(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(_explicit(a, what), dtype=object)
    if arr.ndim != 2:
        raise SpecError(f"{what} needs a matrix, got shape {arr.shape}")
    return arr


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
    """log det(a): for SPD matrices (positive determinant); log|det| is slogdet."""
    return sp.log(_det(a, "logdet"))


def slogdet(a: Any) -> Any:
    """log|det(a)| (the logabsdet of torch.linalg.slogdet; its sign has derivative 0)."""
    return sp.log(sp.Abs(_det(a, "slogdet")))


def _inverse(m: sp.Matrix, what: str) -> np.ndarray:
    m, back = _placeholders(_small(m, what))
    d = m.det(method="berkowitz").xreplace(back)
    adj = m.adjugate(method="berkowitz")
    out = np.empty((m.rows, m.cols), dtype=object)
    for i in range(m.rows):
        for j in range(m.cols):
            out[i, j] = adj[i, j].xreplace(back) / d
    return out


def inv(a: Any) -> Any:
    """The inverse as adjugate / determinant, entry by entry."""
    return _inverse(_square(a, "inv"), "inv")


def _matmul(a: np.ndarray, b: np.ndarray) -> Any:
    a2 = a if a.ndim == 2 else a[None, :]
    b2 = b if b.ndim == 2 else b[:, None]
    out = np.empty((a2.shape[0], b2.shape[1]), dtype=object)
    for i in range(a2.shape[0]):
        for j in range(b2.shape[1]):
            out[i, j] = sp.Add(*[p * q for p, q in zip(a2[i], b2[:, j])])
    if a.ndim == 1:
        out = out[0]
    if b.ndim == 1:
        out = out[..., 0]
    return _unwrap(out)


def solve(a: Any, b: Any) -> Any:
    """x with a x = b (b a vector or a matrix): inv(a) @ b, written out."""
    rhs = np.asarray(_explicit(b, "solve"), dtype=object)
    m = _square(a, "solve")
    if rhs.ndim not in (1, 2) or rhs.shape[0] != m.rows:
        raise SpecError(f"solve of a {m.rows} x {m.rows} matrix needs a right-hand side with "
                        f"{m.rows} rows, got shape {rhs.shape}")
    return _matmul(_inverse(m, "solve"), rhs)


def solve_triangular(a: Any, b: Any, upper: bool = False) -> Any:
    """x with tri(a) x = b by substitution, reading only the lower (or upper) triangle of a, as
    torch.linalg.solve_triangular(a, b, upper=...) does."""
    m = _square(a, "solve_triangular")
    rhs = np.asarray(_explicit(b, "solve_triangular"), dtype=object)
    vector = rhs.ndim == 1
    cols = rhs[:, None] if vector else rhs
    if cols.ndim != 2 or cols.shape[0] != m.rows:
        raise SpecError(f"solve_triangular of a {m.rows} x {m.rows} matrix needs a right-hand side "
                        f"with {m.rows} rows, got shape {rhs.shape}")
    n = m.rows
    out = np.empty(cols.shape, dtype=object)
    order = range(n - 1, -1, -1) if upper else range(n)
    for c in range(cols.shape[1]):
        for i in order:
            known = range(i + 1, n) if upper else range(i)
            out[i, c] = (cols[i, c] - sp.Add(*(m[i, k] * out[k, c] for k in known))) / m[i, i]
    return out[:, 0] if vector else out


def cholesky(a: Any) -> Any:
    """The lower-triangular L with L L^T = a, reading only the lower triangle of a (as
    torch.linalg.cholesky does), by the Cholesky-Banachiewicz recurrence."""
    m = _small(_square(a, "cholesky"), "cholesky")
    n = m.rows
    out = np.full((n, n), sp.S.Zero, dtype=object)
    for i in range(n):
        for j in range(i + 1):
            s = sp.Add(*(out[i, k] * out[j, k] for k in range(j)))
            if i == j:
                out[i, i] = sp.sqrt(m[i, i] - s)
            else:
                out[i, j] = (m[i, j] - s) / out[j, j]
    return out


def pinv(a: Any) -> Any:
    """The Moore-Penrose pseudo-inverse of a full-rank matrix: inv(a) if square,
    inv(a^T a) a^T if tall, a^T inv(a a^T) if wide."""
    arr = np.asarray(_explicit(a, "pinv"), dtype=object)
    if arr.ndim != 2:
        raise SpecError(f"pinv needs a matrix, got shape {arr.shape}")
    rows, cols = arr.shape
    if rows == cols:
        return inv(arr)
    if rows > cols:
        gram = sp.Matrix(_matmul(arr.T, arr).tolist())
        return _matmul(_inverse(gram, "pinv"), arr.T)
    gram = sp.Matrix(_matmul(arr, arr.T).tolist())
    return _matmul(arr.T, _inverse(gram, "pinv"))
