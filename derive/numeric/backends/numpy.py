"""numpy float64 (and complex128, for the complex-step derivative) backend.

Functions numpy lacks (erfinv, digamma, polygamma) and complex arguments of real-only functions
(erf, lgamma: the complex step evaluates f(x + ih)) are computed with mpmath, entry by entry.
Step functions (floor, round, ...) of a complex argument act on its real part: their
derivative is 0 away from their jumps, which is what the complex step then reads.
"""

from __future__ import annotations

import math
from functools import reduce
import operator
from typing import Any, Callable

import numpy as np

from . import Backend


def _mp(fn: Callable[..., Any], dps: int) -> Callable[..., Any]:
    """fn evaluated by mpmath at `dps` digits, entry by entry (real or complex)."""
    import mpmath

    def one(*args: Any) -> Any:
        with mpmath.workdps(dps):
            z = [mpmath.mpc(a.real, a.imag) if isinstance(a, complex) else mpmath.mpf(float(a))
                 for a in args]
            try:
                out = fn(mpmath, *z)
            except (ValueError, ZeroDivisionError):
                return complex("nan") if any(isinstance(a, complex) for a in args) else math.nan
            if isinstance(out, mpmath.mpc):
                if any(isinstance(a, complex) for a in args):
                    return complex(out)
                return math.nan  # a real input outside the function's real domain
            return float(out)

    def vectorised(*args: Any) -> Any:
        arrays = [np.asarray(a) for a in args]
        kind = complex if any(np.iscomplexobj(a) for a in arrays) else float
        if kind is complex:
            arrays = [a.astype(complex) for a in arrays]
        out = np.vectorize(one, otypes=[kind])(*arrays)
        return out
    return vectorised


def _real_or_complex(real: Callable[..., Any], cplx: Callable[..., Any]) -> Callable[..., Any]:
    def op(*args: Any) -> Any:
        if any(np.iscomplexobj(np.asarray(a)) for a in args):
            return cplx(*args)
        return real(*args)
    return op


def _mp_erf(mp: Any, z: Any) -> Any:
    return mp.erf(z)


def _mp_erfc(mp: Any, z: Any) -> Any:
    return mp.erfc(z)


def _mp_erfinv(mp: Any, z: Any) -> Any:
    if isinstance(z, mp.mpc):  # erf(w) = z near the real solution (mpmath's erfinv is real only)
        w0 = mp.erfinv(z.real)
        return mp.findroot(lambda w: mp.erf(w) - z, mp.mpc(w0, 0))
    return mp.erfinv(z)


def _mp_lgamma(mp: Any, z: Any) -> Any:
    """log|Gamma|, continued analytically near the real axis (so the complex step reads digamma)."""
    if isinstance(z, mp.mpc):
        return mp.log(mp.gamma(z) * mp.sign(mp.gamma(z.real)))
    return mp.log(abs(mp.gamma(z)))


def _mp_polygamma(mp: Any, n: Any, z: Any) -> Any:
    return mp.polygamma(int(mp.re(n)), z)


def _atan2(y: Any, x: Any) -> Any:
    if not (np.iscomplexobj(y) or np.iscomplexobj(x)):
        return np.arctan2(y, x)
    y, x = np.asarray(y, dtype=complex), np.asarray(x, dtype=complex)
    # the complex step: real part atan2, imaginary part its first-order change (x dy - y dx)/r^2,
    # which is exact for the h = 1e-30 steps it serves
    r2 = x.real**2 + y.real**2
    return np.arctan2(y.real, x.real) + 1j * (x.real * y.imag - y.real * x.imag) / r2


def _on_real(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A step function: of a complex argument, applied to its real part (derivative 0)."""
    def op(a: Any) -> Any:
        a = np.asarray(a)
        if np.iscomplexobj(a):
            return fn(a.real).astype(complex)
        return fn(a)
    return op


def _hypot(a: Any, b: Any) -> Any:
    if np.iscomplexobj(np.asarray(a)) or np.iscomplexobj(np.asarray(b)):
        return np.sqrt(a * a + b * b)
    return np.hypot(a, b)


def _sinc(a: Any) -> Any:
    """sin(a)/a (SymPy's unnormalised sinc; numpy's is sin(pi x)/(pi x))."""
    return np.sinc(np.asarray(a) / np.pi)


def _shift(*args: Any) -> Any:
    """The argument with the largest real part (complex-step inputs keep their tiny imaginary part)."""
    return reduce(lambda a, b: np.where(np.real(a) >= np.real(b), a, b), args)


def _piecewise(pieces: list[tuple[Any, Any]]) -> Any:
    result = pieces[-1][0]
    for value, cond in reversed(pieces[:-1]):
        result = np.where(cond, value, result)
    return result


def _real_part(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Comparisons read real parts (a complex-step input compares as its real value)."""
    return lambda a, b: op(np.real(a), np.real(b))


_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)


def _real_polygamma(n: Any, x: Any) -> Any:
    """polygamma(n, x) for real x > 0: the recurrence up to x >= 16, then the asymptotic
    series (8 Bernoulli terms: relative error below 1e-17 there); mpmath elsewhere."""
    n = int(np.asarray(n).flat[0])
    x = np.asarray(x, dtype=float)
    out = np.empty(x.shape)
    good = np.isfinite(x) & (x > 0)
    if (~good).any():
        out[~good] = _mp(_mp_polygamma, 20)(n, x[~good])
    z = x[good].copy()
    acc = np.zeros(z.shape)
    sign = -1.0 if n % 2 else 1.0  # (-1)^n
    fact = math.factorial(n)
    while (z < 16).any():  # psi^(n)(z) = psi^(n)(z + 1) - (-1)^n n! / z^(n+1)
        small = z < 16
        acc[small] -= sign * fact / z[small] ** (n + 1)
        z[small] += 1
    if n == 0:
        series = np.log(z) - 1 / (2 * z)
        for k, b in enumerate(_BERNOULLI, start=1):
            series -= b / (2 * k * z ** (2 * k))
    else:
        series = math.factorial(n - 1) / z**n + fact / (2 * z ** (n + 1))
        for k, b in enumerate(_BERNOULLI, start=1):
            series += b * math.factorial(2 * k + n - 1) / (math.factorial(2 * k) * z ** (2 * k + n))
        series *= -sign  # (-1)^(n+1)
    out[good] = acc + series
    return out


def _real_erfinv(y: Any) -> Any:
    """erfinv: Giles' approximation (about 1e-7), then three Newton steps on erf (or on erfc
    for |y| > 1/2, where erf(w) - y would cancel)."""
    y = np.asarray(y, dtype=float)
    with np.errstate(all="ignore"):
        w = -np.log((1 - y) * (1 + y))
        lo = w - 2.5
        p_lo = 2.81022636e-08
        for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                  -0.00417768164, 0.246640727, 1.50140941):
            p_lo = c + p_lo * lo
        hi = np.sqrt(w) - 3
        p_hi = -0.000200214257
        for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                  0.00943887047, 1.00167406, 2.83297682):
            p_hi = c + p_hi * hi
        x = np.where(w < 5, p_lo, p_hi) * y
        a, t = np.abs(y), np.abs(x)
        for _ in range(3):
            slope = 2 / math.sqrt(math.pi) * np.exp(-t * t)
            t = np.where(a > 0.5, t + (_real_erfc(t) - (1 - a)) / slope, t - (_real_erf(t) - a) / slope)
        out = np.sign(y) * t
        return np.where(np.abs(y) < 1, out, np.where(np.abs(y) == 1, np.sign(y) * np.inf, np.nan))


_real_erf = np.vectorize(math.erf, otypes=[float])
_real_erfc = np.vectorize(math.erfc, otypes=[float])
_real_lgamma = np.vectorize(lambda v: math.lgamma(v) if not (v <= 0 and v == int(v)) else math.inf,
                            otypes=[float])

OPS = {
    "num": float,
    "add": lambda *a: reduce(operator.add, a),
    "mul": lambda *a: reduce(operator.mul, a),
    "pow": lambda a, b: np.power(a, b) if isinstance(a, np.ndarray) else a ** b,
    "max": lambda *a: reduce(np.maximum, a),
    "min": lambda *a: reduce(np.minimum, a),
    "piecewise": _piecewise,
    "gt": _real_part(np.greater), "ge": _real_part(np.greater_equal),
    "lt": _real_part(np.less), "le": _real_part(np.less_equal),
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh, "atan": np.arctan,
    "asin": np.arcsin, "acos": np.arccos, "asinh": np.arcsinh, "acosh": np.arccosh,
    "atanh": np.arctanh, "atan2": _atan2, "log1p": np.log1p, "expm1": np.expm1, "hypot": _hypot,
    "abs": np.abs, "sign": _on_real(np.sign), "heaviside": lambda a: np.heaviside(np.real(a), 0.5),
    "floor": _on_real(np.floor), "ceil": _on_real(np.ceil), "trunc": _on_real(np.trunc),
    "round": _on_real(np.rint), "sinc": _sinc,
    "erf": _real_or_complex(_real_erf, _mp(_mp_erf, 60)),
    "erfc": _real_or_complex(_real_erfc, _mp(_mp_erfc, 60)),
    "erfinv": _real_or_complex(_real_erfinv, _mp(_mp_erfinv, 60)),
    "lgamma": _real_or_complex(_real_lgamma, _mp(_mp_lgamma, 60)),
    "polygamma": _real_or_complex(_real_polygamma, _mp(_mp_polygamma, 60)),
    "shift": _shift,
    "and": lambda *a: reduce(np.logical_and, a), "or": lambda *a: reduce(np.logical_or, a),
    "not": np.logical_not,
}


def _stack(values: list[Any], batch: tuple[int, ...]) -> np.ndarray:
    if not values:
        return np.zeros((*batch, 0))
    return np.stack([np.broadcast_to(np.asarray(v), batch) for v in values], axis=-1)


BACKEND = Backend("numpy", OPS, np.asarray, np.asarray, _stack, lambda: np.errstate(all="ignore"))
