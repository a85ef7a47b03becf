"""The bounds on a formula and the tree it is translated to (never Python code)."""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import sympy as sp

MAX_CHARS = 2000
MAX_DEPTH = 100  # a sum of n terms is n levels deep in the tree: 100 terms, 100 calls
MAX_NODES = 500
MAX_DIGITS = 30
MAX_EXPONENT = 300
MAX_POWER = 64
MAX_LOG10 = 300.0
"""Largest constant (numerator or denominator, in decimal digits) a formula may compute."""
MAX_TERMS = 200_000
"""Largest expression a formula may write out per entry (an upper bound on its tree nodes)."""
MAX_TOTAL = 2_000_000
"""... and in all entries together (building costs about 10 microseconds a term)."""

SYMPY_CONSTANTS = frozenset({"E", "I", "N", "S", "O", "Q", "gamma", "oo", "zoo", "nan",
                             "beta", "zeta", "EulerGamma", "GoldenRatio", "Catalan", "inf"})
"""Names SymPy would read as constants or functions: here they are unknown unless declared
(pi and e are the numbers pi and e, unless a variable of that name is declared)."""

ALLOWED = ("names, numbers, pi, e, + - * / ** @, comparisons < <= > >=, calls such as exp(x) or "
           "sum(x, axis=0), and .T")

_BINARY: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub), ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv), ast.Pow: ("**", operator.pow), ast.MatMult: ("@", operator.matmul),
}


# --- the translated tree ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Node:
    line: int
    col: int
    digits: float = field(default=0.0, kw_only=True)  # log10 bound of its numeric coefficients


@dataclass(frozen=True)
class _Const(_Node):
    value: sp.Expr  # a SymPy number (Rational, or e.g. sqrt(2) from a rational power)


@dataclass(frozen=True)
class _Ref(_Node):
    name: str


@dataclass(frozen=True)
class _SizeRef(_Node):
    name: str
    variable: str
    axis: int


@dataclass(frozen=True)
class _Unary(_Node):
    op: str
    operand: _Node


@dataclass(frozen=True)
class _Binary(_Node):
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True)
class _Call(_Node):
    name: str
    args: tuple[_Node, ...]
    axis: int | None
    params: tuple[tuple[str, Any], ...] = ()
    """The call's number parameters (negative_slope=0.2, ddof=1...), read and bounded by the parser."""
    arg_pos: tuple[tuple[int, int], ...] = ()
    """Where each array argument starts (file line, column), for messages about one argument."""


@dataclass(frozen=True)
class _Compare(_Node):
    """a < b (or a chain a < b <= c): 1 where every comparison holds, else 0."""

    ops: tuple[str, ...]
    operands: tuple[_Node, ...]


@dataclass(frozen=True)
class _Transpose(_Node):
    operand: _Node


# --- the parser ------------------------------------------------------------------------------

