"""numpy float64 (and complex128, for the complex-step derivative) backend."""

from __future__ import annotations

import math
from functools import reduce
import operator
from typing import Any

import numpy as np

from . import Backend


def _erf(a: Any) -> Any:
    """erf on float arrays; on complex ones (the complex-step derivative) by mpmath at 60 digits,
    since math.erf is real only and Im erf(x + ih) ~ h needs far more than double precision."""
    a = np.asarray(a)
    if not np.iscomplexobj(a):
        return _real_erf(a)
    import mpmath

    with mpmath.workdps(60):
        return np.vectorize(lambda z: complex(mpmath.erf(mpmath.mpc(z.real, z.imag))),
                            otypes=[complex])(a)


_real_erf = np.vectorize(math.erf, otypes=[float])


def _shift(*args: Any) -> Any:
    """The argument with the largest real part (complex-step inputs keep their tiny imaginary part)."""
    return reduce(lambda a, b: np.where(np.real(a) >= np.real(b), a, b), args)


def _piecewise(pieces: list[tuple[Any, Any]]) -> Any:
    result = pieces[-1][0]
    for value, cond in reversed(pieces[:-1]):
        result = np.where(cond, value, result)
    return result


OPS = {
    "num": float,
    "add": lambda *a: reduce(operator.add, a),
    "mul": lambda *a: reduce(operator.mul, a),
    "pow": lambda a, b: np.power(a, b) if isinstance(a, np.ndarray) else a ** b,
    "max": lambda *a: reduce(np.maximum, a),
    "min": lambda *a: reduce(np.minimum, a),
    "piecewise": _piecewise,
    "gt": np.greater, "ge": np.greater_equal, "lt": np.less, "le": np.less_equal,
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh, "atan": np.arctan,
    "abs": np.abs, "sign": np.sign, "heaviside": lambda a: np.heaviside(a, 0.5),
    "erf": _erf, "shift": _shift,
}


def _stack(values: list[Any], batch: tuple[int, ...]) -> np.ndarray:
    if not values:
        return np.zeros((*batch, 0))
    return np.stack([np.broadcast_to(np.asarray(v), batch) for v in values], axis=-1)


BACKEND = Backend("numpy", OPS, np.asarray, np.asarray, _stack, lambda: np.errstate(all="ignore"))
