"""mpmath backend: one sample at a time at high precision, the reference of last resort."""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from . import Backend


def mp_number(x: sp.Expr) -> Any:
    """A SymPy number at mpmath's working precision (a float constant by its exact binary value)."""
    if x is sp.pi:
        return mpmath.mp.pi
    if x is sp.E:
        return mpmath.mp.e
    if isinstance(x, sp.Rational):
        return mpmath.mpf(int(x.p)) / int(x.q)
    return mpmath.mpf(str(sp.Float(x, 60)))


def _piecewise(pieces: list[tuple[Any, Any]]) -> Any:
    for value, cond in pieces:
        if cond:
            return value
    return mpmath.nan


def _heaviside(a: Any) -> Any:
    return mpmath.mpf(1) if a > 0 else mpmath.mpf(0) if a < 0 else mpmath.mpf(0.5)


def _real(fn: Any) -> Any:
    """fn on the reals: nan where mpmath would leave them (acos(2) is complex there)."""
    def op(*a: Any) -> Any:
        try:
            out = fn(*a)
        except (ValueError, ZeroDivisionError):
            return mpmath.nan
        return mpmath.nan if isinstance(out, mpmath.mpc) else out
    return op


def _trunc(a: Any) -> Any:
    return mpmath.floor(a) if a >= 0 else mpmath.ceil(a)


def _erfinv(a: Any) -> Any:
    return mpmath.erfinv(a) if -1 < a < 1 else mpmath.nan


OPS = {
    "num": mp_number,
    "add": lambda *a: reduce(operator.add, a),
    "mul": lambda *a: reduce(operator.mul, a),
    "pow": lambda a, b: mpmath.power(a, b),
    "max": lambda *a: max(a), "min": lambda *a: min(a),
    "piecewise": _piecewise,
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
    "exp": mpmath.exp, "log": mpmath.log, "sqrt": mpmath.sqrt, "tanh": mpmath.tanh,
    "sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "sinh": mpmath.sinh,
    "cosh": mpmath.cosh, "atan": mpmath.atan, "abs": abs, "sign": mpmath.sign,
    "heaviside": _heaviside, "erf": mpmath.erf, "shift": lambda *a: max(a, key=mpmath.re),
    "asin": _real(mpmath.asin), "acos": _real(mpmath.acos), "asinh": mpmath.asinh,
    "acosh": _real(mpmath.acosh), "atanh": _real(mpmath.atanh), "atan2": mpmath.atan2,
    "log1p": _real(mpmath.log1p), "expm1": mpmath.expm1, "hypot": mpmath.hypot,
    "erfc": mpmath.erfc, "erfinv": _erfinv,
    "lgamma": _real(lambda a: mpmath.log(abs(mpmath.gamma(a)))),
    "polygamma": _real(lambda n, a: mpmath.polygamma(int(n), a)), "sinc": mpmath.sinc,
    "floor": mpmath.floor, "ceil": mpmath.ceil, "trunc": _trunc, "round": mpmath.nint,
    "and": lambda *a: all(a), "or": lambda *a: any(a), "not": lambda a: not a,
}


def _stack(values: list[Any], batch: tuple[int, ...]) -> np.ndarray:
    out = np.empty((len(values),), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


BACKEND = Backend("mpmath", OPS, lambda a: a, lambda a: np.asarray(a, dtype=object), _stack)
