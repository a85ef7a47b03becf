"""SymPy expressions compiled to a straight-line program, evaluated by any backend.

`compile_program` runs common-subexpression elimination once and turns each expression into
a small tree of operation tuples. Evaluation walks that tree with a backend's table of
operations (numpy, torch, mpmath...), so nothing is ever turned into source code and passed
to `eval` or `exec`, and one compiled program serves every backend and every batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import sympy as sp

from ..errors import UnsupportedError

Op = tuple  # ("in", i) | ("tmp", j) | ("num", value) | (op, *children) | ("fn", name, *children)

FUNCTIONS: dict[type, str] = {
    sp.exp: "exp", sp.log: "log", sp.tanh: "tanh", sp.sin: "sin", sp.cos: "cos",
    sp.tan: "tan", sp.sinh: "sinh", sp.cosh: "cosh", sp.atan: "atan", sp.Abs: "abs",
    sp.sign: "sign", sp.Heaviside: "heaviside", sp.erf: "erf",
}
RELATIONS: dict[type, str] = {
    sp.StrictGreaterThan: "gt", sp.GreaterThan: "ge", sp.StrictLessThan: "lt", sp.LessThan: "le",
}


@dataclass(frozen=True)
class Program:
    """A compiled function of `inputs` returning one value per output expression."""

    inputs: tuple[sp.Symbol, ...]
    temps: tuple[Op, ...]
    outputs: tuple[Op, ...]


def _lower(e: Any, index: dict[sp.Symbol, Op]) -> Op:
    if isinstance(e, sp.Symbol):
        if e not in index:
            raise UnsupportedError(f"symbol {e} is not an input of this program")
        return index[e]
    if e.is_Number:
        if not e.is_real:
            raise UnsupportedError(f"non-real constant {e} cannot be evaluated numerically")
        return ("num", e)
    if e in (sp.pi, sp.E):
        return ("num", e)
    if isinstance(e, sp.Add):
        return ("add", *(_lower(a, index) for a in e.args))
    if isinstance(e, sp.Mul):
        return ("mul", *(_lower(a, index) for a in e.args))
    if isinstance(e, sp.Pow):
        base, ex = e.args
        if ex == sp.Rational(1, 2):
            return ("fn", "sqrt", _lower(base, index))
        return ("pow", _lower(base, index), _lower(ex, index))
    if isinstance(e, (sp.Max, sp.Min)):
        name = "max" if isinstance(e, sp.Max) else "min"
        return (name, *(_lower(a, index) for a in e.args))
    if isinstance(e, sp.Piecewise):
        pieces = []
        for value, cond in e.args:
            pieces.append((_lower(value, index), _lower_cond(cond, index)))
        return ("piecewise", *pieces)
    name = FUNCTIONS.get(type(e))
    if name is not None:
        if isinstance(e, sp.Heaviside):
            return ("fn", name, _lower(e.args[0], index))
        return ("fn", name, *(_lower(a, index) for a in e.args))
    raise UnsupportedError(f"cannot evaluate {type(e).__name__} numerically ({e}); "
                           "use the functions in derive.ops")


def _lower_cond(c: Any, index: dict[sp.Symbol, Op]) -> Op:
    if c is sp.true:
        return ("true",)
    name = RELATIONS.get(type(c))
    if name is None:
        raise UnsupportedError(f"cannot evaluate the condition {c}; use <, <=, >, >=")
    return (name, _lower(c.lhs, index), _lower(c.rhs, index))


def compile_program(exprs: Sequence[Any], inputs: Sequence[sp.Symbol]) -> Program:
    """Common subexpressions eliminated once; each expression lowered to operation tuples."""
    index: dict[sp.Symbol, Op] = {s: ("in", i) for i, s in enumerate(inputs)}
    exprs = [sp.sympify(e) for e in exprs]
    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_t"), order="none")
    temps = []
    for j, (sym, e) in enumerate(replacements):
        temps.append(_lower(e, index))
        index[sym] = ("tmp", j)
    outputs = tuple(_lower(e, index) for e in reduced)
    return Program(tuple(inputs), tuple(temps), outputs)


def evaluate(program: Program, inputs: Sequence[Any], ops: dict[str, Callable[..., Any]]) -> list[Any]:
    """Run `program` on `inputs` with a backend's operation table."""
    temps: list[Any] = []

    def ev(op: Op) -> Any:
        kind = op[0]
        if kind == "in":
            return inputs[op[1]]
        if kind == "tmp":
            return temps[op[1]]
        if kind == "num":
            return ops["num"](op[1])
        if kind == "fn":
            return ops[op[1]](*(ev(a) for a in op[2:]))
        if kind == "piecewise":
            pieces = [(ev(v), ev_cond(c)) for v, c in op[1:]]
            return ops["piecewise"](pieces)
        return ops[kind](*(ev(a) for a in op[1:]))

    def ev_cond(c: Op) -> Any:
        if c[0] == "true":
            return True
        return ops[c[0]](ev(c[1]), ev(c[2]))

    for t in program.temps:
        temps.append(ev(t))
    return [ev(o) for o in program.outputs]
