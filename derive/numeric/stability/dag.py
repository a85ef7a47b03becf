"""A formula as written, lowered to a graph of operations and evaluated three ways.

Unlike `derive.numeric.backends.program` (which stabilises sums of exponentials so that the
float64 truth stays finite), nothing is rewritten here: `x / y` is a division, `1 - s` a
subtraction, a library call (`softplus`, `softmax`) the library's function. The same graph is
evaluated

- in a torch dtype (float32, bfloat16, float16, float64): each operation rounds to the dtype,
  as a model in that precision computes it, and torch autograd can differentiate it;
- at high precision with mpmath (the 40-digit truth, checked against twice the digits and
  raised further where the two disagree), keeping every node's value;
- op by op (Herbie's local error): each operation applied in the dtype to its arguments' exact
  values, rounded, which locates the operation that loses the bits.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import reduce
from typing import Any, Callable, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from ...errors import UnsupportedError
from ...symbolic.marks import Library
from ..backends import program as _program
from ..backends.mpmath import mp_number


@dataclass(frozen=True)
class Op:
    """One node: `kind` applied to the nodes `args` (indices), with `param` (the input
    column, a constant, a function name, an exponent); `expr` is what it computes."""

    kind: str
    args: tuple[int, ...]
    param: Any
    expr: Any


_FN_BY_TYPE: dict[type, str] = dict(_program.FUNCTIONS)
_RELATIONS = {sp.StrictGreaterThan: "gt", sp.GreaterThan: "ge", sp.StrictLessThan: "lt", sp.LessThan: "le"}


class Dag:
    """Formulas lowered once into shared nodes; `defs` writes intermediate symbols (named
    intermediates of the graph) as their own formulas, so each is computed once."""

    def __init__(self, inputs: Sequence[sp.Symbol], defs: Mapping[sp.Symbol, sp.Expr] | None = None) -> None:
        self.inputs = {s: i for i, s in enumerate(inputs)}
        self.defs = dict(defs or {})
        self.ops: list[Op] = []
        self._memo: dict[Any, int] = {}

    def _node(self, kind: str, args: tuple[int, ...], param: Any, expr: Any) -> int:
        key = (kind, args, param if not isinstance(param, sp.Basic) else ("sp", param))
        if key not in self._memo:
            self._memo[key] = len(self.ops)
            self.ops.append(Op(kind, args, param, expr))
        return self._memo[key]

    def add(self, e: Any) -> int:
        """The node computing the SymPy expression e."""
        e = sp.sympify(e)
        key = ("expr", e)
        if key in self._memo:
            return self._memo[key]
        index = self._lower(e)
        self._memo[key] = index
        return index

    def _const(self, value: sp.Expr) -> int:
        return self._node("const", (), value, value)

    def _lower(self, e: sp.Expr) -> int:
        if isinstance(e, sp.Symbol):
            if e in self.inputs:
                return self._node("in", (), self.inputs[e], e)
            if e in self.defs:
                return self.add(self.defs[e])
            raise UnsupportedError(f"symbol {e} is not an input of this formula")
        if e.is_Number or e in (sp.pi, sp.E):
            if e.is_Number and not e.is_real:
                raise UnsupportedError(f"non-real constant {e}")
            return self._const(e)
        if isinstance(e, sp.Add):
            return self._node("add", tuple(self.add(a) for a in e.args), None, e)
        if isinstance(e, sp.Mul):
            return self._mul(e)
        if isinstance(e, sp.Pow):
            return self._pow(e)
        if isinstance(e, Library):
            if e.op in ("softmax", "log_softmax"):
                pos = list(e.row).index(e.args[0])
                return self._node("lib", tuple(self.add(a) for a in e.row), (e.op, pos), e)
            return self._node("lib", tuple(self.add(a) for a in e.args), e.op, e)
        if isinstance(e, (sp.Max, sp.Min)):
            return self._node("max" if isinstance(e, sp.Max) else "min", tuple(self.add(a) for a in e.args), None, e)
        if isinstance(e, sp.Piecewise):
            args: list[int] = []
            for value, cond in e.args:
                args += [self.add(value), self._cond(cond)]
            return self._node("piecewise", tuple(args), len(e.args), e)
        name = _FN_BY_TYPE.get(type(e)) or type(e).__name__.lower()
        if name in _TORCH_FN or name in _TORCH_LIB:
            kind = "lib" if name in _TORCH_LIB else "fn"
            if isinstance(e, sp.Heaviside):
                return self._node(kind, (self.add(e.args[0]),), name, e)
            return self._node(kind, tuple(self.add(a) for a in e.args), name, e)
        raise UnsupportedError(f"cannot evaluate {type(e).__name__} as written ({e})")

    def _cond(self, c: Any) -> int:
        if c is sp.true:
            return self._node("true", (), None, c)
        if isinstance(c, (sp.Or, sp.And)):
            return self._node("cmp", tuple(self._cond(a) for a in c.args), "or" if isinstance(c, sp.Or) else "and", c)
        name = _RELATIONS.get(type(c))
        if name is None:
            raise UnsupportedError(f"cannot evaluate the condition {c}")
        return self._node("cmp", (self.add(c.lhs), self.add(c.rhs)), name, c)

    def _mul(self, e: sp.Mul) -> int:
        """x * y as products, x / y as a division, -x as a negation (as a person writes them)."""
        coeff, factors = e.as_coeff_mul()
        num: list[sp.Expr] = []
        den: list[sp.Expr] = []
        for f in factors:
            if isinstance(f, sp.Pow) and f.exp.is_Number and f.exp.is_negative:
                den.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp))
            else:
                num.append(f)
        negative = bool(coeff.is_negative)
        coeff = abs(coeff)
        if coeff.is_Rational:
            if coeff.p != 1:
                num.insert(0, sp.Integer(coeff.p))
            if coeff.q != 1:
                den.insert(0, sp.Integer(coeff.q))
        elif coeff != 1:
            num.insert(0, coeff)
        top = self._product(num)
        if den:
            top = self._node("div", (top, self._product(den)), None, e if not negative else -e)
        if negative:
            return self._node("neg", (top,), None, e)
        return top

    def _product(self, factors: list[sp.Expr]) -> int:
        if not factors:
            return self._const(sp.S.One)
        if len(factors) == 1:
            return self.add(factors[0])
        return self._node("mul", tuple(self.add(f) for f in factors), None, sp.Mul(*factors))

    def _pow(self, e: sp.Pow) -> int:
        base, ex = e.args
        if ex == sp.S.Half:
            return self._node("fn", (self.add(base),), "sqrt", e)
        if ex.is_Number and ex.is_negative:
            inner = base if ex == -1 else sp.Pow(base, -ex, evaluate=False)
            return self._node("div", (self._const(sp.S.One), self.add(inner)), None, e)
        if ex.is_Integer:
            return self._node("pow", (self.add(base),), int(ex), e)
        if ex.is_Rational:
            return self._node("pow", (self.add(base),), float(ex), e)
        return self._node("powx", (self.add(base), self.add(ex)), None, e)

    def needed(self, outputs: Sequence[int]) -> list[int]:
        """The nodes the outputs read, in evaluation order."""
        seen: set[int] = set()
        stack = list(outputs)
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            stack.extend(self.ops[k].args)
        return sorted(seen)


# --- torch: the dtype ----------------------------------------------------------------------------

def _torch() -> Any:
    import torch

    return torch


def _softmax_entry(fn: str) -> Callable[..., Any]:
    def run(pos: int, *row: Any) -> Any:
        torch = _torch()
        stacked = torch.stack(list(row), dim=-1)
        return getattr(torch, fn)(stacked, dim=-1)[..., pos]
    return run


def _tf(name: str) -> Callable[..., Any]:
    return lambda *a: getattr(_torch(), name)(*a)


_TORCH_FN: dict[str, Callable[..., Any]] = {
    name: _tf(name) for name in ("exp", "log", "sqrt", "tanh", "sin", "cos", "tan", "sinh", "cosh",
                                 "asin", "acos", "atan", "asinh", "acosh", "atanh", "erf", "erfc",
                                 "erfinv", "abs", "sign", "floor", "ceil", "trunc", "round", "lgamma",
                                 "digamma", "atan2")
}
_TORCH_FN["heaviside"] = lambda a: _torch().heaviside(a, _torch().full_like(a, 0.5))
_TORCH_FN["polygamma"] = lambda n, x: _torch().polygamma(int(_torch().as_tensor(n).reshape(-1)[0].item()), x)
_TORCH_FN["sinc"] = lambda x: _torch().sinc(x / math.pi)  # SymPy's sinc is sin(x)/x, torch's sin(pi x)/(pi x)
_TORCH_LIB: dict[str, Callable[..., Any]] = {
    "sigmoid": _tf("sigmoid"),
    "softplus": lambda a: _torch().nn.functional.softplus(a),
    "log_sigmoid": lambda a: _torch().nn.functional.logsigmoid(a),
    "silu": lambda a: _torch().nn.functional.silu(a),
    "log1p": _tf("log1p"), "expm1": _tf("expm1"), "hypot": _tf("hypot"), "logaddexp": _tf("logaddexp"),
    "logsumexp": lambda *row: _torch().logsumexp(_torch().stack(list(row), dim=-1), dim=-1),
}


_ARITHMETIC: dict[str, Callable[[list[Any]], Any]] = {
    "add": lambda vals: reduce(operator.add, vals),
    "mul": lambda vals: reduce(operator.mul, vals),
    "div": lambda vals: vals[0] / vals[1],
    "neg": lambda vals: -vals[0],
}
"""The operations every array library writes alike (mpmath sums with fsum instead)."""


def _apply_torch(op: Op, vals: list[Any], dtype: Any, rows: dict[Any, Any] | None = None) -> Any:
    torch = _torch()
    kind = op.kind
    if kind in _ARITHMETIC:
        return _ARITHMETIC[kind](vals)
    if kind == "pow":
        return vals[0] ** op.param
    if kind == "powx":
        return torch.pow(vals[0], vals[1])
    if kind == "fn":
        return _TORCH_FN[op.param](*vals)
    if kind == "lib":
        if isinstance(op.param, tuple):
            if rows is not None:  # one softmax per row, its entries read from it
                key = (op.param[0], tuple(id(v) for v in vals))
                if key not in rows:
                    rows[key] = getattr(torch, op.param[0])(torch.stack(list(vals), dim=-1), dim=-1)
                return rows[key][..., op.param[1]]
            return _softmax_entry(op.param[0])(op.param[1], *vals)
        return _TORCH_LIB[op.param](*vals)
    if kind in ("max", "min"):
        return reduce(torch.maximum if kind == "max" else torch.minimum, vals)
    if kind == "cmp":
        if op.param in ("or", "and"):
            return reduce(torch.logical_or if op.param == "or" else torch.logical_and, vals)
        return {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}[op.param](*vals)
    if kind == "piecewise":
        out = vals[-2]
        for k in range(len(vals) - 4, -1, -2):
            cond = vals[k + 1]
            out = out if cond is False else vals[k] if cond is True else torch.where(cond, vals[k], out)
        return out
    raise UnsupportedError(f"operation {kind}")


def run(dag: Dag, columns: Any, outputs: Sequence[int], dtype: Any) -> dict[int, Any]:
    """Every node the outputs need, evaluated in `dtype` on `columns` (points, inputs): a torch
    tensor of shape (points,) per node (constants broadcast)."""
    torch = _torch()
    values: dict[int, Any] = {}
    rows: dict[Any, Any] = {}
    for k in dag.needed(outputs):
        op = dag.ops[k]
        if op.kind == "in":
            values[k] = columns[:, op.param]
        elif op.kind == "const":
            values[k] = torch.full((columns.shape[0],), float(op.param), dtype=torch.float64,
                                   device=columns.device).to(dtype)  # a constant too big for the dtype: inf
        elif op.kind == "true":
            values[k] = True
        else:
            values[k] = _apply_torch(op, [values[a] for a in op.args], dtype, rows)
    return values


def local(dag: Dag, nodes: Sequence[int], exact: Mapping[int, np.ndarray], dtype: Any) -> dict[int, Any]:
    """Each node's operation applied in `dtype` to its arguments' exact values, rounded to the
    dtype (Herbie's local error: what that one operation loses)."""
    torch = _torch()
    out: dict[int, Any] = {}
    for k in nodes:
        op = dag.ops[k]
        if op.kind in ("in", "const", "true", "cmp") or any(dag.ops[a].kind == "true" for a in op.args):
            continue
        vals = []
        for a in op.args:
            child = dag.ops[a]
            if child.kind == "cmp":  # the branch the exact values take
                vals.append(torch.as_tensor(exact[a]) != 0)
            else:
                vals.append(torch.as_tensor(exact[a]).to(dtype))
        with np.errstate(all="ignore"):
            out[k] = _apply_torch(op, vals, dtype)
    return out


# --- mpmath: the truth -----------------------------------------------------------------------

def _lse(*row: Any) -> Any:
    m = max(row)
    if not mpmath.isfinite(m):
        return m
    return m + mpmath.log(mpmath.fsum(mpmath.exp(r - m) for r in row))


_MP_FN: dict[str, Callable[..., Any]] = {
    "exp": mpmath.exp, "log": mpmath.log, "sqrt": mpmath.sqrt, "tanh": mpmath.tanh, "sin": mpmath.sin,
    "cos": mpmath.cos, "tan": mpmath.tan, "sinh": mpmath.sinh, "cosh": mpmath.cosh, "asin": mpmath.asin,
    "acos": mpmath.acos, "atan": mpmath.atan, "asinh": mpmath.asinh, "acosh": mpmath.acosh,
    "atanh": mpmath.atanh, "erf": mpmath.erf, "erfc": mpmath.erfc, "erfinv": mpmath.erfinv,
    "abs": mpmath.fabs, "sign": mpmath.sign, "floor": mpmath.floor, "ceil": mpmath.ceil,
    "trunc": lambda x: mpmath.mpf(int(x)), "round": mpmath.nint, "lgamma": mpmath.loggamma,
    "digamma": mpmath.digamma, "atan2": mpmath.atan2,
    "heaviside": lambda x: mpmath.mpf(1) if x > 0 else mpmath.mpf(0) if x < 0 else mpmath.mpf(0.5),
    "polygamma": lambda n, x: mpmath.polygamma(int(n), x), "sinc": mpmath.sinc,
}
def _softplus(x: Any) -> Any:
    return x + mpmath.log1p(mpmath.exp(-x)) if x > 0 else mpmath.log1p(mpmath.exp(x))


def _sigmoid(x: Any) -> Any:
    return 1 / (1 + mpmath.exp(-x)) if x >= 0 else mpmath.exp(x) / (1 + mpmath.exp(x))


_MP_LIB: dict[str, Callable[..., Any]] = {
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "log_sigmoid": lambda x: -_softplus(-x),
    "silu": lambda x: x * _sigmoid(x),
    "log1p": mpmath.log1p, "expm1": mpmath.expm1, "hypot": mpmath.hypot,
    "logaddexp": lambda a, b: _lse(a, b), "logsumexp": _lse,
}


def _apply_mp(op: Op, vals: list[Any]) -> Any:
    kind = op.kind
    if kind == "add":
        return mpmath.fsum(vals)
    if kind in _ARITHMETIC:
        return _ARITHMETIC[kind](vals)
    if kind == "pow":
        if op.param == 2:
            return vals[0] * vals[0]
        return vals[0] ** (op.param if isinstance(op.param, int) else mpmath.mpf(op.param))
    if kind == "powx":
        return mpmath.power(vals[0], vals[1])
    if kind == "fn":
        return _MP_FN[op.param](*vals)
    if kind == "lib":
        if isinstance(op.param, tuple):
            name, pos = op.param
            lse = _lse(*vals)
            return vals[pos] - lse if name == "log_softmax" else mpmath.exp(vals[pos] - lse)
        return _MP_LIB[op.param](*vals)
    if kind in ("max", "min"):
        return max(vals) if kind == "max" else min(vals)
    if kind == "cmp":
        if op.param in ("or", "and"):
            return any(bool(v) for v in vals) if op.param == "or" else all(bool(v) for v in vals)
        return {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}[op.param](*vals)
    if kind == "piecewise":
        for k in range(0, len(vals), 2):
            if vals[k + 1] is True or (vals[k + 1] is not False and bool(vals[k + 1])):
                return vals[k]
        return mpmath.nan
    raise UnsupportedError(f"operation {kind}")


_NAN = mpmath.mpf("nan")


def _mp_value(op: Op, vals: list[Any]) -> Any:
    try:
        out = _apply_mp(op, vals)
    except (ZeroDivisionError, ValueError, OverflowError):
        return _NAN
    if isinstance(out, bool):
        return out
    if isinstance(out, mpmath.mpc):
        return _NAN if out.imag != 0 else out.real
    return out


def _exact_at(dag: Dag, nodes: Sequence[int], points: np.ndarray, dps: int) -> dict[int, list[Any]]:
    values: dict[int, list[Any]] = {}
    count = points.shape[0]
    with mpmath.workdps(dps):
        for k in nodes:
            op = dag.ops[k]
            if op.kind == "in":
                values[k] = [mpmath.mpf(float(x)) for x in points[:, op.param]]
            elif op.kind == "const":
                c = mp_number(op.param)
                values[k] = [c] * count
            elif op.kind == "true":
                values[k] = [True] * count
            else:
                cols = [values[a] for a in op.args]
                values[k] = [_mp_value(op, [c[p] for c in cols]) for p in range(count)]
    return values


def _to_float(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if isinstance(v, bool):
            out[i] = float(v)
            continue
        try:
            out[i] = float(v)
        except (OverflowError, ValueError):
            out[i] = math.nan
    return out


DIGITS = 40
"""Digits of the truth. Where a value may have lost digits at 40 (a sum far smaller than its
terms, the log of a value within 1e-25 of 1), it is computed again at
twice the digits, and more (up to MAX_DIGITS) until two agree."""
MAX_DIGITS = 1280
_SUSPECT = 1e-25


def _suspect(dag: Dag, nodes: Sequence[int], values: Mapping[int, np.ndarray], count: int) -> np.ndarray:
    """Points where some operation may have lost more than 15 of the 40 digits."""
    out = np.zeros(count, dtype=bool)
    with np.errstate(all="ignore"):
        for k in nodes:
            op = dag.ops[k]
            if op.kind == "add":
                terms = np.max(np.abs(np.stack([np.broadcast_to(values[a], (count,)) for a in op.args])), axis=0)
                out |= np.isfinite(terms) & (np.abs(values[k]) < _SUSPECT * terms)
            elif op.kind in ("fn", "lib") and op.param in ("log", "log1p"):
                arg = values[op.args[0]]
                out |= np.abs(arg - (1.0 if op.param == "log" else 0.0)) < _SUSPECT
    return out


def exact(dag: Dag, outputs: Sequence[int], points: np.ndarray) -> dict[int, np.ndarray]:
    """Every needed node's exact value at each point, rounded once to float64 (which holds the
    float32, bfloat16 and float16 ranges): DIGITS digits, raised where digits may be lost."""
    nodes = dag.needed(outputs)
    if points.shape[0] == 0:
        return {k: np.zeros(0) for k in nodes}
    unique, back = np.unique(points, axis=0, return_inverse=True)
    if len(unique) < len(points):  # the same point asked twice is computed once
        once = exact(dag, outputs, unique)
        return {k: v[back.reshape(-1)] for k, v in once.items()}
    first = _exact_at(dag, nodes, points, DIGITS)
    result = {k: _to_float(first[k]) for k in nodes}
    unsure = _suspect(dag, nodes, result, points.shape[0])
    digits = DIGITS
    previous = {k: result[k].copy() for k in outputs}
    while unsure.any() and digits < MAX_DIGITS:
        digits *= 2
        idx = np.flatnonzero(unsure)
        again = _exact_at(dag, nodes, points[idx], digits)
        still = np.zeros(len(idx), dtype=bool)
        for k in nodes:
            fresh = _to_float(again[k])
            if k in previous:
                still |= ~_same(previous[k][idx], fresh)
                previous[k][idx] = fresh
            result[k][idx] = fresh
        unsure[idx] = still
    return result


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


__all__ = ["Dag", "Op", "run", "local", "exact", "DIGITS"]
