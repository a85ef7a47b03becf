"""torch backend: float64 tensors on any device, differentiable by autograd."""

from __future__ import annotations

import math
import operator
from functools import reduce
from typing import Any, Callable

import numpy as np
import torch

from . import Backend


def _tensor(x: Any, like: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    ref = like if isinstance(like, torch.Tensor) else None
    return torch.as_tensor(x, dtype=ref.dtype if ref is not None else torch.float64,
                           device=ref.device if ref is not None else None)


def _pairwise(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
    def op(*args: Any) -> Any:
        def two(a: Any, b: Any) -> Any:
            if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
                return fn(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64))
            return fn(_tensor(a, b), _tensor(b, a))
        return reduce(two, args)
    return op


def _unary(fn: Callable[[torch.Tensor], torch.Tensor], scalar: Callable[[float], float]) -> Callable[[Any], Any]:
    return lambda a: fn(a) if isinstance(a, torch.Tensor) else scalar(a)


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
            scalar: Callable[[float, float], float]) -> Callable[[Any, Any], Any]:
    def op(a: Any, b: Any) -> Any:
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return scalar(a, b)
        return fn(_tensor(a, b), _tensor(b, a))
    return op


def _logical(fn: Callable[[Any, Any], Any], plain: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def op(a: Any, b: Any) -> Any:
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            return fn(torch.as_tensor(a), torch.as_tensor(b))
        return plain(a, b)
    return op


class _Digamma(torch.autograd.Function):
    """digamma, differentiated to trigamma as zeta(2, x) (torch's own trigamma is accurate to
    about 1e-9 only)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.special.digamma(a)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (a,) = ctx.saved_tensors
        return grad * torch.special.zeta(torch.full_like(a, 2.0), a)


def _polygamma(n: Any, a: Any) -> Any:
    """polygamma(n, a); for n >= 1 as (-1)^(n+1) n! zeta(n + 1, a): torch's own trigamma is
    accurate to about 1e-9 only in float64, its Hurwitz zeta (and zeta's autograd) to rounding."""
    a = _tensor(a, a)
    n = int(n)
    if n == 0:
        return _Digamma.apply(a)
    order = torch.as_tensor(float(n + 1), dtype=a.dtype, device=a.device)
    return (-1) ** (n + 1) * math.factorial(n) * torch.special.zeta(order, a)


def _lgamma(a: Any) -> Any:
    return torch.lgamma(_tensor(a, a))


def _sinc(a: Any) -> Any:
    """sin(a)/a (SymPy's unnormalised sinc; torch's is sin(pi x)/(pi x))."""
    a = _tensor(a, a)
    return torch.sinc(a / math.pi)


def _heaviside(a: Any) -> Any:
    a = _tensor(a, a)
    return torch.where(a > 0, 1.0, torch.where(a < 0, 0.0, 0.5)).to(a.dtype)


def _shift(*args: Any) -> Any:
    """The largest argument; constant for autograd (the rewrite it serves holds for any shift)."""
    def two(a: Any, b: Any) -> Any:
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            return max(a, b)
        a, b = _tensor(a, b), _tensor(b, a)
        return torch.where(a >= b, a, b)
    out = reduce(two, args)
    return out.detach() if isinstance(out, torch.Tensor) else out


def _piecewise(pieces: list[tuple[Any, Any]]) -> Any:
    result = pieces[-1][0]
    for value, cond in reversed(pieces[:-1]):
        if isinstance(cond, bool):
            result = value if cond else result
            continue
        like = next((x for x in (value, result) if isinstance(x, torch.Tensor)), None)
        dtype = like.dtype if like is not None else torch.float64
        result = torch.where(cond, torch.as_tensor(value, dtype=dtype, device=cond.device),
                             torch.as_tensor(result, dtype=dtype, device=cond.device))
    return result


OPS = {
    "num": float,
    "add": lambda *a: reduce(operator.add, a),
    "mul": lambda *a: reduce(operator.mul, a),
    "pow": lambda a, b: a ** b,
    "max": _pairwise(torch.maximum),
    "min": _pairwise(torch.minimum),
    "piecewise": _piecewise,
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
    "exp": _unary(torch.exp, math.exp), "log": _unary(torch.log, math.log),
    "sqrt": _unary(torch.sqrt, math.sqrt), "tanh": _unary(torch.tanh, math.tanh),
    "sin": _unary(torch.sin, math.sin), "cos": _unary(torch.cos, math.cos),
    "tan": _unary(torch.tan, math.tan), "sinh": _unary(torch.sinh, math.sinh),
    "cosh": _unary(torch.cosh, math.cosh), "atan": _unary(torch.atan, math.atan),
    "abs": _unary(torch.abs, abs), "sign": _unary(torch.sign, lambda x: float(np.sign(x))),
    "heaviside": _heaviside, "erf": _unary(torch.erf, math.erf), "shift": _shift,
    "asin": _unary(torch.asin, math.asin), "acos": _unary(torch.acos, math.acos),
    "asinh": _unary(torch.asinh, math.asinh), "acosh": _unary(torch.acosh, math.acosh),
    "atanh": _unary(torch.atanh, math.atanh), "atan2": _binary(torch.atan2, math.atan2),
    "log1p": _unary(torch.log1p, math.log1p), "expm1": _unary(torch.expm1, math.expm1),
    "hypot": _binary(torch.hypot, math.hypot), "erfc": _unary(torch.erfc, math.erfc),
    "erfinv": lambda a: torch.erfinv(_tensor(a, a)), "lgamma": _lgamma, "polygamma": _polygamma,
    "sinc": _sinc, "floor": _unary(torch.floor, math.floor), "ceil": _unary(torch.ceil, math.ceil),
    "trunc": _unary(torch.trunc, math.trunc), "round": _unary(torch.round, lambda x: float(round(x))),
    "and": lambda *a: reduce(_logical(torch.logical_and, operator.and_), a),
    "or": lambda *a: reduce(_logical(torch.logical_or, operator.or_), a),
    "not": lambda a: torch.logical_not(a) if isinstance(a, torch.Tensor) else not a,
}


def _from_numpy(a: Any, device: str = "cpu") -> torch.Tensor:
    arr = np.asarray(a)
    dtype = torch.int64 if arr.dtype.kind in "iu" else torch.float64
    return torch.as_tensor(arr, dtype=dtype, device=device)


def _to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _stack(values: list[Any], batch: tuple[int, ...]) -> torch.Tensor:
    like = next((v for v in values if isinstance(v, torch.Tensor)), None)
    device = like.device if like is not None else None
    cols = [_tensor(v, like).expand(batch) if isinstance(v, torch.Tensor)
            else torch.full(batch, float(v), dtype=torch.float64, device=device) for v in values]
    if not cols:
        return torch.zeros((*batch, 0), dtype=torch.float64, device=device)
    return torch.stack(cols, dim=-1)


BACKEND = Backend("torch", OPS, _from_numpy, _to_numpy, _stack)
