"""Critical points of a polynomial in two variables, found and classified by computation.

grad f = 0 is a polynomial system: the resultant in y of df/dx and df/dy is a polynomial in x
whose real roots (isolated exactly by SymPy) are the candidates' x; for each, the real roots
in y of df/dy that also zero df/dx are kept, Newton-refined with mpmath at 30 digits, and
classified by the signs of the Hessian's eigenvalues there.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from . import backends
from .backends import compile_program
from ..errors import SpecError

DIGITS = 30


@dataclass(frozen=True)
class CriticalPoint:
    """A point where the gradient vanishes, its kind and the Hessian's eigenvalues there."""

    x: float
    y: float
    kind: str  # "minimum", "maximum", "saddle" or "degenerate"
    eigenvalues: tuple[float, float]
    value: float

    def __str__(self) -> str:
        return (f"{self.kind} at ({self.x:.6f}, {self.y:.6f}): f = {self.value:.6g}, "
                f"Hessian eigenvalues {self.eigenvalues[0]:.4g}, {self.eigenvalues[1]:.4g}")


def _kind(eigenvalues: tuple[float, float], scale: float) -> str:
    lo, hi = sorted(eigenvalues)
    if min(abs(lo), abs(hi)) <= 1e-12 * max(1.0, scale):
        return "degenerate"
    return "minimum" if lo > 0 else "maximum" if hi < 0 else "saddle"


def critical_points(f: sp.Expr, x: sp.Symbol, y: sp.Symbol) -> tuple[CriticalPoint, ...]:
    """Every real critical point of the polynomial f(x, y), sorted by x (isolated, finitely many)."""
    if not f.is_polynomial(x, y):
        raise SpecError(f"critical points are found for polynomials in {x}, {y}; got {f}")
    fx, fy = sp.diff(f, x), sp.diff(f, y)
    res = sp.Poly(sp.resultant(fx, fy, y), x)
    if res.is_zero:
        raise SpecError("the critical points are not isolated (df/dx and df/dy share a factor)")
    mp = backends.get("mpmath")
    programs = [compile_program(list(e), [x, y]) for e in ([fx, fy], sp.hessian(f, (x, y)), [f])]

    def grad_fn(a: object, b: object) -> list[object]:
        return mp.run(programs[0], [a, b])

    def hess_fn(a: object, b: object) -> list[list[object]]:
        h = mp.run(programs[1], [a, b])
        return [h[:2], h[2:]]

    def f_fn(a: object, b: object) -> object:
        return mp.run(programs[2], [a, b])[0]
    found: list[CriticalPoint] = []
    with mpmath.workdps(DIGITS):
        for root in res.real_roots():
            x0 = mpmath.mpf(str(root.evalf(DIGITS)))
            for y0 in sp.Poly(fy.subs(x, sp.Float(str(x0), DIGITS)), y).nroots(n=DIGITS):
                if abs(sp.im(y0)) > 1e-10:
                    continue
                point = mpmath.findroot(lambda a, b: grad_fn(a, b), (x0, mpmath.mpf(str(sp.re(y0)))))
                px, py = point[0], point[1]
                if max(abs(g) for g in grad_fn(px, py)) > mpmath.mpf(10) ** (-DIGITS // 2):
                    continue
                if any(abs(px - p.x) < 1e-9 and abs(py - p.y) < 1e-9 for p in found):
                    continue
                ev = mpmath.eigsy(mpmath.matrix(hess_fn(px, py)))[0]
                eig = (float(ev[0]), float(ev[1]))
                found.append(CriticalPoint(float(px), float(py), _kind(eig, max(map(abs, eig))),
                                           eig, float(f_fn(px, py))))
    return tuple(sorted(found, key=lambda p: (p.x, p.y)))


def summary(points: tuple[CriticalPoint, ...]) -> str:
    """'9 critical points: 4 minima, 1 maximum, 4 saddles'."""
    plural = {"minimum": "minima", "maximum": "maxima", "saddle": "saddles", "degenerate": "degenerate"}
    counts = [(k, sum(p.kind == k for p in points)) for k in plural]
    parts = [f"{n} {k if n == 1 else plural[k]}" for k, n in counts if n]
    return f"{len(points)} critical points: {', '.join(parts)}"
