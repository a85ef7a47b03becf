"""Builds a translated formula tree into SymPy arrays, bounding every size it writes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ..errors import ParseError, SpecError, UnsupportedError
from ..model import indexed, ops
from ..model.indexed import SymArray
from .functions import FUNCTIONS
from ..model.ops_linalg import _matmul
from .tree import _BINARY, MAX_TERMS, MAX_TOTAL, _Binary, _Call, _Compare, _Const, _Node, _Ref, _SizeRef, _Transpose
from .tree import _Unary


def _digits(x: sp.Expr) -> float:
    if x.is_Rational:
        return max(math.log10(max(abs(x.p), 1)), math.log10(max(x.q, 1)))
    return 1.0


# --- evaluation on symbols -------------------------------------------------------------------

def _shape(a: Any) -> tuple[Any, ...]:
    if isinstance(a, (np.ndarray, SymArray)):
        return tuple(a.shape)
    return ()


def _entries(a: Any) -> int:
    if isinstance(a, np.ndarray):
        return int(a.size)
    return 1  # a scalar, or a SymArray: one entry formula


_ORDINALS = ("1st", "2nd", "3rd", "4th", "5th")


def _describe(shape: tuple[Any, ...], value: Any) -> str:
    if not shape:
        return "a scalar" if not isinstance(value, sp.Symbol) else f"the scalar {value}"
    if len(shape) == 1:
        return f"a vector of length {shape[0]}"
    return f"a matrix of shape {shape}"


def _length(a: Any, axis: int | None) -> int:
    """How many terms a reduction over `axis` adds (1 for symbolic lengths: one Sum)."""
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return 1
    if axis is None:
        return int(a.size)
    try:
        return int(a.shape[axis])
    except IndexError:
        return 1


class _Evaluator:
    """Builds the expression with derive.ops, bounding the size of what is written out."""

    def __init__(self, formula: ParsedFormula, ns: Any) -> None:
        self.formula, self.ns = formula, ns

    def error(self, node: _Node, what: str, allowed: str) -> ParseError:
        ctx = f"{self.formula.context}: " if self.formula.context else ""
        msg = " ".join(f"{self.formula.where}:{node.line}:{node.col}: {ctx}{what}; {allowed}".split())
        return ParseError(msg, where=self.formula.where, line=node.line, col=node.col)

    def build(self, node: _Node) -> tuple[Any, float]:
        """The value and a bound on the tree size of each of its entries."""
        try:
            value, terms = self._build(node)
        except (ParseError, UnsupportedError):
            raise
        except SpecError as exc:
            raise self.error(node, str(exc), "check the shapes of the operands") from None
        except (ValueError, TypeError, IndexError, ArithmeticError) as exc:
            raise self.error(node, f"{type(exc).__name__}: {exc}", "check the shapes of the operands") from None
        total = terms * _entries(value)
        if terms > MAX_TERMS or total > MAX_TOTAL:
            raise self.error(node, f"this writes out an expression of about {total:.3g} terms",
                             "name parts of the formula as intermediates (define = ...)")
        undefined = _undefined(value)
        if undefined is not None:
            raise self.error(node, f"this evaluates to {undefined}: it divides by zero or takes log(0) "
                             "for every value of the inputs",
                             "rewrite the formula so that it is finite (e.g. cancel x - x by hand)")
        return value, terms

    def _build(self, node: _Node) -> tuple[Any, float]:
        if isinstance(node, _Const):
            return node.value, 1.0
        if isinstance(node, _Ref):
            try:
                return getattr(self.ns, node.name), 1.0
            except AttributeError:
                raise self.error(node, f"'{node.name}' is not defined yet",
                                 "a definition may use the variables and the definitions above it") from None
        if isinstance(node, _SizeRef):
            value = getattr(self.ns, node.variable)
            shape = _shape(value)
            if node.axis >= len(shape):
                raise self.error(node, f"size '{node.name}' cannot be read from '{node.variable}'",
                                 "declare a variable with this size in its shape")
            n = shape[node.axis]
            return (sp.Integer(n) if isinstance(n, int) else n), 1.0
        if isinstance(node, _Unary):
            value, terms = self.build(node.operand)
            return (value, terms) if node.op == "+" else (-value, terms + 1)
        if isinstance(node, _Transpose):
            value, terms = self.build(node.operand)
            return ops.transpose(value), terms
        if isinstance(node, _Binary):
            return self.binary(node)
        if isinstance(node, _Call):
            return self.call(node)
        if isinstance(node, _Compare):
            return self.compare(node)
        raise TypeError(f"unexpected node {type(node).__name__}")  # pragma: no cover

    def guard(self, node: _Node, terms: float, entries: int) -> None:
        """Refuse before building what would be too large (its cost is about its size)."""
        total = terms * max(entries, 1)
        if terms > MAX_TERMS or total > MAX_TOTAL:
            raise self.error(node, f"this writes out an expression of about {total:.3g} terms",
                             "name parts of the formula as intermediates (define = ...)")

    def binary(self, node: _Binary) -> tuple[Any, float]:
        a, ta = self.build(node.left)
        b, tb = self.build(node.right)
        fn = next(f for op, f in _BINARY.values() if op == node.op)
        sa, sb = _shape(a), _shape(b)
        if node.op == "@":
            if not sa or not sb:
                side = "left" if not sa else "right"
                raise self.error(node, f"'@' needs vectors or matrices, but the {side} operand is a "
                                 "scalar", "use '*' to multiply by a scalar")
            if isinstance(a, SymArray) or isinstance(b, SymArray):
                return indexed.matmul(a, b), ta + tb + 2
            inner = sa[-1]
            want = sb[0] if len(sb) == 1 else sb[-2]
            if inner != want:
                raise self.error(node, f"'@' of shapes {sa} and {sb}: inner sizes {inner} and {want} "
                                 "differ", "the last axis of the left operand must match the first of the right")
            terms = inner * (ta + tb + 1)
            out_shape = sa[:-1] + sb[:-2] + sb[-1:] if len(sb) > 1 else sa[:-1]
            self.guard(node, terms, int(np.prod(out_shape, dtype=np.int64)))
            return _matmul(a, b), terms
        if isinstance(a, SymArray) or isinstance(b, SymArray):
            return indexed.elementwise2(a, b, fn), ta + tb + 1
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            try:
                out_shape = np.broadcast_shapes(sa, sb)
            except ValueError:
                raise self.error(node, f"'{node.op}' of shapes {sa} and {sb}: they do not broadcast",
                                 "operands must have equal shapes, or one must be a scalar") from None
            self.guard(node, ta + tb + 1, int(np.prod(out_shape, dtype=np.int64)))
            return _unwrap(fn(np.asarray(a, dtype=object), np.asarray(b, dtype=object))), ta + tb + 1
        return fn(a, b), ta + tb + 1

    def call(self, node: _Call) -> tuple[Any, float]:
        spec = FUNCTIONS[node.name]
        evaluated = [self.build(a) for a in node.args]
        args = [v for v, _ in evaluated]
        terms = sum(t for _, t in evaluated) + 1
        shapes = [_shape(v) for v in args]
        for i, (arg, shp) in enumerate(zip(node.args, shapes)):
            self.check_shape(node, spec, i, arg, args[i], shp)
        kwargs: dict[str, Any] = dict(node.params)
        if spec.axis:
            ndim = len(shapes[0])
            if node.axis is not None and ndim and not -ndim <= node.axis < ndim:
                raise self.error(node, f"axis={node.axis} is out of range for {node.name} of shape "
                                 f"{shapes[0]}", f"use an axis from {-ndim} to {ndim - 1}")
            if ndim:
                kwargs["axis"] = node.axis
            terms *= 2 * _length(args[0], node.axis)
        if node.name == "dot":
            if shapes[0][-1] != shapes[1][-1]:
                raise self.error(node, f"dot of shapes {shapes[0]} and {shapes[1]}: lengths differ",
                                 "both vectors must have the same length")
            terms *= _length(args[0], -1)
        if node.name == "outer":
            self.guard(node, terms, _entries(args[0]) * _entries(args[1]))
        if spec.matrix or node.name == "trace":
            n = min(_length(args[0], 0), _length(args[0], -1))
            terms *= math.factorial(n) * n if spec.matrix else n
        if spec.domain is not None:
            self.check_domain(node, spec, args[-1])
        self.guard(node, terms, max([_entries(a) for a in args] or [1]))
        try:
            return spec.impl(*args, **kwargs), terms
        except ops.ConditionError as exc:
            raise self.error(node, str(exc), "write the condition as a comparison, e.g. "
                             "where(x > 0, x, 0) or where(a < x < b, x, 0)") from None

    def check_shape(self, node: _Call, spec: Any, i: int, arg: _Node, value: Any,
                    shape: tuple[Any, ...]) -> None:
        """Refuse an argument of the wrong kind (a matrix where a vector is needed), located."""
        need = spec.shape_of(i)
        if need == "any":
            return
        nth = f"its {_ORDINALS[i]} argument" if spec.arity > 1 else "its argument"
        where = node
        if i < len(node.arg_pos):
            where = _Const(*node.arg_pos[i], sp.S.Zero)
        if need == "size":
            ok = (isinstance(arg, _SizeRef)
                  or (isinstance(arg, _Const) and arg.value.is_Integer and 1 <= int(arg.value) <= 64))
            if not ok:
                raise self.error(where, f"{node.name} needs a size as {nth}, got {_describe(shape, value)}",
                                 "give a size name such as n, or an integer from 1 to 64, "
                                 f"e.g. {node.name}(n)")
            return
        ndim = len(shape)
        if need == "square" and not (ndim == 2 and shape[0] == shape[1]):
            raise self.error(node, f"{node.name} needs a square matrix, got shape {shape}",
                             "apply it to an n x n matrix")
        wanted = {"array": "a vector or matrix", "vector": "a vector", "vector3": "a vector of length 3",
                  "matrix": "a matrix", "vector_or_matrix": "a vector or a matrix"}.get(need)
        ok = {"array": ndim >= 1, "vector": ndim == 1, "vector3": shape == (3,), "matrix": ndim == 2,
              "vector_or_matrix": ndim in (1, 2)}.get(need, True)
        if wanted and not ok:
            raise self.error(where, f"{node.name} needs {wanted} as {nth}, got {_describe(shape, value)}",
                             f"write {spec.signature(node.name)}")

    def check_domain(self, node: _Call, spec: Any, value: Any) -> None:
        """An argument outside the function's domain for every input: a number (acos(2)), or an
        expression the variables' domains place outside (log(-p) with p positive)."""
        interval = ops.DOMAINS[spec.domain]
        entries = value.flat if isinstance(value, np.ndarray) else (() if isinstance(value, SymArray) else (value,))
        for entry in entries:
            if not isinstance(entry, sp.Expr) or entry == 0:  # log(0) is reported as zoo below
                continue
            if interval.outside(entry):
                how = "" if entry.is_Number else " for every input (given the variables' domains)"
                raise self.error(node, f"{node.name}({entry}): {node.name} is defined for "
                                 f"{interval.text}, and {entry} is outside it{how}",
                                 "check the formula or declare the variables with a domain inside it "
                                 "(e.g. positive, unit_interval)")

    def compare(self, node: _Compare) -> tuple[Any, float]:
        built = [self.build(o) for o in node.operands]
        terms = sum(t for _, t in built) + 1
        value: Any = None
        for op, (a, _), (b, _) in zip(node.ops, built, built[1:]):
            step = ops.compare(op, a, b)
            value = step if value is None else value * step
        return value, terms


_UNDEFINED = (sp.nan, sp.zoo, sp.oo, -sp.oo)


def _undefined(value: Any) -> sp.Expr | None:
    """nan or an infinity that SymPy folded in while building (x/(x - x) is zoo*x, log(0) is
    zoo): it cannot be differentiated or evaluated. Checked at every node, so looking at a
    value and its direct arguments finds it where it first appears."""
    entries = value.flat if isinstance(value, np.ndarray) else (value,)
    for entry in entries:
        if not isinstance(entry, sp.Basic):
            continue
        for part in (entry, *entry.args):
            if part in _UNDEFINED:
                return part
    return None


def _unwrap(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


@dataclass(frozen=True)
class ParsedFormula:
    """A formula read from text: call it with a namespace of symbols to build the expression."""

    text: str
    names: frozenset[str]
    """The declared names the formula uses."""
    root: _Node = field(repr=False)
    where: str = ""
    context: str = ""

    def __call__(self, ns: Any) -> Any:
        value, _ = _Evaluator(self, ns).build(self.root)
        return value
