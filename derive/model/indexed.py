"""Arrays of symbolic size: an entry formula over index symbols, for proofs that hold for every n.

A `SymArray` of shape (n,) is a function from an index i to a SymPy expression such as
exp(z[i]) / Sum(exp(z[k]), (k, 0, n - 1)). The operations in `derive.ops` accept these as well
as explicit numpy object arrays, so one catalog formula serves both: explicit sizes for the
numeric check, a symbolic size for a proof for all n. Indices run from 0 to n - 1.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
from dataclasses import dataclass
from typing import Any, Callable

import sympy as sp

from ..errors import SpecError, UnsupportedError

def dummy(name: str = "k") -> sp.Dummy:
    """A fresh summation index."""
    return sp.Dummy(name, integer=True, nonnegative=True)


@dataclass(frozen=True)
class SymArray:
    """An array whose sizes may be symbols; `fn(*indices)` gives its entry."""

    shape: tuple[sp.Expr, ...]
    fn: Callable[..., sp.Expr]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def entry(self, *idx: Any) -> sp.Expr:
        if len(idx) != self.ndim:
            raise SpecError(f"an array of shape {self.shape} needs {self.ndim} indices, got {len(idx)}")
        return self.fn(*idx)

    def map(self, f: Callable[[sp.Expr], sp.Expr]) -> SymArray:
        return SymArray(self.shape, lambda *i: f(self.fn(*i)))

    # --- numpy-like behaviour ---------------------------------------------------------------
    @property
    def T(self) -> SymArray:  # noqa: N802 - numpy's name
        if self.ndim != 2:
            return self
        return SymArray((self.shape[1], self.shape[0]), lambda i, j: self.fn(j, i))

    def __getitem__(self, key: Any) -> Any:
        key = key if isinstance(key, tuple) else (key,)
        shape: list[sp.Expr] = []
        picks: list[Any] = []  # per result axis: index into self, or None for a new axis
        axis = 0
        fixed: dict[int, Any] = {}
        for k in key:
            if k is None:
                shape.append(sp.Integer(1))
                picks.append(None)
            elif isinstance(k, slice) and k == slice(None):
                shape.append(self.shape[axis])
                picks.append(axis)
                axis += 1
            elif isinstance(k, (int, sp.Expr)) and not isinstance(k, bool):
                fixed[axis] = sp.sympify(k)
                axis += 1
            else:
                raise UnsupportedError(f"indexing with {k!r} is not supported for symbolic sizes; "
                                       "use ':' , None or a single index")
        for rest in range(axis, self.ndim):
            shape.append(self.shape[rest])
            picks.append(rest)

        def fn(*idx: Any) -> sp.Expr:
            full: list[Any] = [None] * self.ndim
            for a, v in fixed.items():
                full[a] = v
            for pick, v in zip(picks, idx):
                if pick is not None:
                    full[pick] = v
            return self.fn(*full)

        if not shape:
            return fn()
        return SymArray(tuple(shape), fn)

    def _binary(self, other: Any, op: Callable[[Any, Any], Any], reverse: bool = False) -> SymArray:
        left, right = (other, self) if reverse else (self, other)
        return elementwise2(left, right, op)

    def __add__(self, o: Any) -> SymArray: return self._binary(o, operator.add)
    def __radd__(self, o: Any) -> SymArray: return self._binary(o, operator.add, True)
    def __sub__(self, o: Any) -> SymArray: return self._binary(o, operator.sub)
    def __rsub__(self, o: Any) -> SymArray: return self._binary(o, operator.sub, True)
    def __mul__(self, o: Any) -> SymArray: return self._binary(o, operator.mul)
    def __rmul__(self, o: Any) -> SymArray: return self._binary(o, operator.mul, True)
    def __truediv__(self, o: Any) -> SymArray: return self._binary(o, operator.truediv)
    def __rtruediv__(self, o: Any) -> SymArray: return self._binary(o, operator.truediv, True)
    def __pow__(self, o: Any) -> SymArray: return self._binary(o, operator.pow)
    def __neg__(self) -> SymArray: return self.map(operator.neg)

    def __matmul__(self, o: Any) -> Any:
        return matmul(self, o)

    def __rmatmul__(self, o: Any) -> Any:
        return matmul(o, self)

    __array_priority__ = 1000  # numpy scalars defer to our operators


def _shape_of(x: Any) -> tuple[sp.Expr, ...]:
    if isinstance(x, SymArray):
        return x.shape
    return ()


def _broadcast(a: tuple[sp.Expr, ...], b: tuple[sp.Expr, ...]) -> tuple[sp.Expr, ...]:
    out: list[sp.Expr] = []
    for da, db in itertools.zip_longest(reversed(a), reversed(b), fillvalue=sp.Integer(1)):
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        else:
            raise SpecError(f"shapes {a} and {b} do not broadcast together")
    return tuple(reversed(out))


def _at(x: Any, shape: tuple[sp.Expr, ...], idx: tuple[Any, ...]) -> sp.Expr:
    """Entry of x (broadcast to `shape`) at idx."""
    if not isinstance(x, SymArray):
        return sp.sympify(x, strict=True)
    offset = len(shape) - x.ndim
    own = [sp.Integer(0) if d == 1 else idx[offset + a] for a, d in enumerate(x.shape)]
    return x.fn(*own)


def elementwise2(a: Any, b: Any, op: Callable[[Any, Any], Any]) -> SymArray:
    shape = _broadcast(_shape_of(a), _shape_of(b))
    return SymArray(shape, lambda *i: op(_at(a, shape, i), _at(b, shape, i)))


def reduce_sum(a: SymArray, axis: int | None = None, keepdims: bool = False) -> Any:
    """Sum over one axis (a Sum with a fresh index) or over all of them."""
    if axis is None:
        idx = [dummy() for _ in a.shape]
        body = a.fn(*idx)
        limits = [(k, 0, n - 1) for k, n in zip(idx, a.shape)]
        return sp.Sum(body, *limits)
    axis = axis % a.ndim
    n = a.shape[axis]

    def fn(*rest: Any) -> sp.Expr:
        k = dummy()
        outer = list(rest)
        if keepdims:
            outer.pop(axis)
        full = outer[:axis] + [k] + outer[axis:]
        return sp.Sum(a.fn(*full), (k, 0, n - 1))

    shape = list(a.shape)
    if keepdims:
        shape[axis] = sp.Integer(1)
    else:
        shape.pop(axis)
    if not shape:
        return fn()
    return SymArray(tuple(shape), fn)


def matmul(a: Any, b: Any) -> Any:
    if not isinstance(a, SymArray) or not isinstance(b, SymArray):
        raise SpecError("'@' needs two arrays")
    if a.ndim == 1 and b.ndim == 1:
        k = dummy()
        return sp.Sum(a.fn(k) * b.fn(k), (k, 0, a.shape[0] - 1))
    if a.ndim == 1 and b.ndim == 2:
        return SymArray((b.shape[1],), lambda j: _contract(a.shape[0], lambda k: a.fn(k) * b.fn(k, j)))
    if a.ndim == 2 and b.ndim == 1:
        return SymArray((a.shape[0],), lambda i: _contract(a.shape[1], lambda k: a.fn(i, k) * b.fn(k)))
    if a.ndim == 2 and b.ndim == 2:
        return SymArray((a.shape[0], b.shape[1]),
                        lambda i, j: _contract(a.shape[1], lambda k: a.fn(i, k) * b.fn(k, j)))
    raise SpecError(f"'@' of shapes {a.shape} and {b.shape} is not supported")


def _contract(n: sp.Expr, body: Callable[[sp.Expr], sp.Expr]) -> sp.Expr:
    k = dummy()
    return sp.Sum(body(k), (k, 0, n - 1))


def kronecker(n: sp.Expr) -> SymArray:
    return SymArray((n, n), lambda i, j: sp.KroneckerDelta(i, j))


def outer(a: SymArray, b: SymArray) -> SymArray:
    return SymArray((*a.shape, *b.shape), lambda *i: a.fn(*i[: a.ndim]) * b.fn(*i[a.ndim:]))


def _key(x: sp.Basic, bound: tuple[sp.Symbol, ...]) -> str:
    """A text key of x invariant under renaming bound indices (de Bruijn positions)."""
    if x in bound:
        return f"#{bound[::-1].index(x)}"
    if isinstance(x, sp.Sum):
        inner = bound + tuple(v for v, _, _ in x.limits)
        limits = ";".join(f"{_key(lo, bound)}:{_key(hi, bound)}" for _, lo, hi in x.limits)
        return f"Sum[{limits}]({_key(x.function, inner)})"
    if not x.args:
        return sp.srepr(x)
    return f"{type(x).__name__}({','.join(_key(a, bound) for a in x.args)})"


def bound_key(e: sp.Basic) -> str:
    """A text key of e, the same whatever its summation indices are called."""
    return _key(sp.sympify(e), ())


def canonical(e: sp.Expr) -> sp.Expr:
    """Rename every summation index after the sum's own content, so that equal sums built by
    separate calls (each with fresh indices) become structurally equal wherever they sit."""

    def walk(x: sp.Basic, bound: tuple[sp.Symbol, ...]) -> sp.Basic:
        if isinstance(x, sp.Sum):
            limits = list(x.limits)
            own = {v for v, _, _ in limits}
            if len(limits) > 1 and not any((lo.free_symbols | hi.free_symbols) & own for _, lo, hi in limits):
                # independent ranges: summation order does not matter, so fix one
                limits.sort(key=lambda lim: (_key(lim[2], bound), _key(lim[1], bound)))
                x = sp.Sum(x.function, *limits)
            key = hashlib.sha1(_key(x, bound).encode()).hexdigest()[:6]
            names = {var: sp.Symbol(f"s{key}{n if n else ''}", integer=True, nonnegative=True)
                     for n, (var, _, _) in enumerate(x.limits)}
            inner = bound + tuple(names.values())
            body = walk(x.function.xreplace(names), inner)
            return sp.Sum(body, *[(names[v], walk(lo, bound), walk(hi, bound)) for v, lo, hi in x.limits])
        if not x.args:
            return x
        return x.func(*(walk(a, bound) for a in x.args))

    return walk(sp.sympify(e), ())
