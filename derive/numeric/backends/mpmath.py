"""mpmath backend: one sample at a time at high precision, the reference of last resort."""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from . import Backend


def _num(x: sp.Expr) -> Any:
    if x is sp.pi:
        return mpmath.mp.pi
    if x is sp.E:
        return mpmath.mp.e
    if isinstance(x, sp.Rational):
        return mpmath.mpf(int(x.p)) / int(x.q)
    return mpmath.mpf(str(x))


def _piecewise(pieces: list[tuple[Any, Any]]) -> Any:
    for value, cond in pieces:
        if cond:
            return value
    return mpmath.nan


def _heaviside(a: Any) -> Any:
    return mpmath.mpf(1) if a > 0 else mpmath.mpf(0) if a < 0 else mpmath.mpf(0.5)


OPS = {
    "num": _num,
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
}


def _stack(values: list[Any], batch: tuple[int, ...]) -> np.ndarray:
    out = np.empty((len(values),), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


BACKEND = Backend("mpmath", OPS, lambda a: a, lambda a: np.asarray(a, dtype=object), _stack)
