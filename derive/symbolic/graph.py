"""Symbolic stage: instantiate an identity at explicit sizes and derive along its graph.

Every variable entry and every named intermediate entry is a SymPy symbol. A definition is
an array of expressions in its parents' symbols, so the local Jacobians stay small and the
derived gradient is written in the named intermediates (O_k, p, ...), the way a textbook
writes it. Reverse accumulation over the graph gives the adjoint of each node (the deltas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import sympy as sp

from ..errors import SpecError
from ..model.spec import Identity
from .steps import Step

NONSMOOTH = (sp.Max, sp.Min, sp.Abs, sp.Heaviside, sp.sign, sp.Piecewise)


@dataclass(frozen=True)
class Node:
    """A variable (expr is None) or a named intermediate of the graph at explicit sizes."""

    name: str
    symbols: np.ndarray
    expr: np.ndarray | None = None
    parents: tuple[str, ...] = ()
    text: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return self.symbols.shape

    @property
    def flat(self) -> list[sp.Symbol]:
        return list(self.symbols.flat)


@dataclass(frozen=True)
class ClaimGraph:
    """One claim at explicit sizes: its expected shape and entries."""

    index: int
    wrt: str | None
    expr: np.ndarray
    text: str = ""

    @property
    def label(self) -> str:
        return f"d/d{self.wrt}" if self.wrt else "value"


@dataclass(frozen=True)
class Graph:
    """An identity instantiated at explicit sizes."""

    name: str
    sizes: dict[str, int]
    nodes: dict[str, Node]
    target: str
    claims: tuple[ClaimGraph, ...]
    constraints: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)

    @property
    def variables(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.expr is None]

    @property
    def definitions(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.expr is not None]

    @cached_property
    def expanded(self) -> dict[sp.Symbol, sp.Expr]:
        """Each intermediate symbol written in the variables alone."""
        full: dict[sp.Symbol, sp.Expr] = {}
        for node in self.definitions:
            for sym, e in zip(node.flat, node.expr.flat):
                full[sym] = e.xreplace(full)
        return full

    @cached_property
    def elementwise(self) -> dict[sp.Symbol, sp.Expr]:
        """Intermediates that are functions of a single symbol (activations), written in the
        nearest symbol that is not one; the other intermediates stay opaque symbols."""
        out: dict[sp.Symbol, sp.Expr] = {}
        for node in self.definitions:
            for sym, e in zip(node.flat, node.expr.flat):
                if len(e.free_symbols) == 1:
                    out[sym] = e.xreplace(out)
        return out


def _symbols(name: str, shape: tuple[int, ...], assumptions: Mapping[str, bool]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        label = name if not idx else f"{name}[{','.join(map(str, idx))}]"
        out[idx] = sp.Symbol(label, **assumptions)
    return out


def _as_exprs(value: Any, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        try:
            e = sp.sympify(v, strict=True)
        except (sp.SympifyError, TypeError) as exc:
            raise SpecError(f"{what} produced {type(v).__name__!r}, not a formula: "
                            "build formulas from the namespace's symbols and derive.ops") from exc
        if not isinstance(e, sp.Expr):
            raise SpecError(f"{what} produced {e!r}, which is not an expression")
        # Floats make proofs inexact: take the decimal the author wrote as a rational.
        out[idx] = e.xreplace({f: sp.Rational(str(f)) for f in e.atoms(sp.Float)})
    return out


def _shape_claim(value: np.ndarray, want: tuple[int, ...], what: str) -> np.ndarray:
    if value.shape == want:
        return value
    if value.shape == ():
        return np.full(want, value.item(), dtype=object)
    raise SpecError(f"{what} has shape {value.shape} but must have shape {want} "
                    "(target shape + wrt shape); check the claim's axes")


def build(identity: Identity, sizes: Mapping[str, int]) -> Graph:
    """Instantiate `identity` at `sizes`: symbols, definitions, claims, domain constraints."""
    sizes = dict(sizes)
    nodes: dict[str, Node] = {}
    ns = SimpleNamespace()
    constraints: dict[sp.Symbol, sp.Expr] = {}
    owner: dict[sp.Symbol, str] = {}
    for var in identity.variables:
        shape = var.domain.formula_shape(var.resolve(sizes), sizes)
        syms = _symbols(var.name, shape, var.domain.assumptions)
        nodes[var.name] = Node(var.name, syms)
        owner.update({s: var.name for s in syms.flat})
        constraints.update(var.domain.constraints(syms))
        setattr(ns, var.name, syms.item() if syms.ndim == 0 else syms)
    for d in identity.definitions:
        what = f"{identity.name}: definition {d.name!r}"
        try:
            expr = _as_exprs(d.formula(ns), what)
        except SpecError:
            raise
        except Exception as exc:  # a formula that fails on symbols is a malformed spec
            raise SpecError(f"{what} failed on symbols at sizes {sizes}: "
                            f"{type(exc).__name__}: {exc}") from exc
        free = set().union(*(e.free_symbols for e in expr.flat)) if expr.size else set()
        parents = tuple(dict.fromkeys(owner[s] for s in sorted(free, key=str) if s in owner))
        syms = _symbols(d.name, expr.shape, {"real": True})
        nodes[d.name] = Node(d.name, syms, expr, parents, d.text)
        owner.update({s: d.name for s in syms.flat})
        setattr(ns, d.name, syms.item() if syms.ndim == 0 else syms)
    target_shape = nodes[identity.target].shape
    claims = []
    for i, c in enumerate(identity.claims):
        what = f"{identity.name}: claim {c.label}"
        try:
            raw = _as_exprs(c.formula(ns), what)
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(f"{what} failed on symbols at sizes {sizes}: "
                            f"{type(exc).__name__}: {exc}") from exc
        want = target_shape + (nodes[c.wrt].shape if c.wrt else ())
        claims.append(ClaimGraph(i, c.wrt, _shape_claim(raw, want, what), c.text))
    return Graph(identity.name, sizes, nodes, identity.target, tuple(claims), constraints)


def _depends(graph: Graph) -> dict[str, set[str]]:
    """For each node, the variables it depends on."""
    dep: dict[str, set[str]] = {}
    for node in graph.nodes.values():
        dep[node.name] = {node.name} if node.expr is None else set().union(
            *(dep[p] for p in node.parents)) if node.parents else set()
    return dep


@dataclass(frozen=True)
class Derivation:
    """Derived derivative per claim (in named intermediates) and the recorded steps."""

    derived: dict[int, np.ndarray]
    steps: tuple[Step, ...]


def derive(graph: Graph) -> Derivation:
    """Reverse accumulation of d target / d node over the graph, for every claimed wrt."""
    steps = [Step("define", n.name, n.expr) for n in graph.definitions]
    wanted = {c.wrt for c in graph.claims if c.wrt}
    derived: dict[int, np.ndarray] = {}
    target = graph.nodes[graph.target]
    for c in graph.claims:
        if c.wrt is None:
            derived[c.index] = target.symbols
    if not wanted:
        return Derivation(derived, tuple(steps))
    dep = _depends(graph)
    m = len(target.flat)
    adjoint: dict[str, sp.Matrix] = {target.name: sp.eye(m)}
    order = [n for n in graph.definitions]
    order = order[: order.index(target) + 1]
    for node in reversed(order):
        if node.name not in adjoint:
            continue
        if node is not target:
            steps.append(Step("adjoint", node.name, _reshape(adjoint[node.name], target.shape + node.shape)))
        for pname in node.parents:
            if not dep[pname] & wanted:
                continue
            parent = graph.nodes[pname]
            local = _local_jacobian(list(node.expr.flat), parent.flat)
            steps.append(Step("local", node.name, _reshape(local, node.shape + parent.shape), parent=pname))
            contribution = _matmul(adjoint[node.name], local)
            adjoint[pname] = adjoint[pname] + contribution if pname in adjoint else contribution
    for c in graph.claims:
        if c.wrt is None:
            continue
        wrt = graph.nodes[c.wrt]
        grad = adjoint.get(c.wrt, sp.zeros(m, len(wrt.flat)))
        derived[c.index] = _reshape(grad, target.shape + wrt.shape)
        steps.append(Step("result", c.wrt, derived[c.index]))
    return Derivation(derived, tuple(steps))


def _local_jacobian(exprs: list[sp.Expr], wrt: list[sp.Symbol]) -> sp.Matrix:
    """d exprs[a] / d wrt[b], by the chain rule through common subexpressions.

    Differentiating a softmax entry e^{z_i} / sum_j e^{z_j} directly differentiates the whole
    sum again for every (i, j): cubic in n. With the sum a temporary, each entry is a small
    expression and the sum's derivative is computed once.
    """
    reps, reduced = sp.cse(exprs, order="none")
    if any(not isinstance(v, sp.Expr) for _, v in reps):  # e.g. a Piecewise condition
        reps, reduced = [], exprs
    full: dict[sp.Symbol, sp.Expr] = {}
    for t, value in reps:
        full[t] = value.xreplace(full)
    temps = {t: v for t, v in reps}
    total: dict[sp.Symbol, dict[sp.Symbol, sp.Expr]] = {}  # d temp / d wrt, nonzero entries

    def gradient(e: sp.Expr) -> dict[sp.Symbol, sp.Expr]:
        free = e.free_symbols
        inner = [(t, sp.diff(e, t)) for t in temps if t in free]
        row: dict[sp.Symbol, sp.Expr] = {}
        for x in wrt:
            d = sp.diff(e, x) if x in free else sp.S.Zero
            for t, de in inner:
                dt = total[t].get(x)
                if dt is not None:
                    d += de * dt
            if d != 0:
                row[x] = d
        return row

    for t, value in reps:
        total[t] = gradient(value)
    rows = [gradient(e) for e in reduced]
    return sp.Matrix(len(exprs), len(wrt), lambda a, b: rows[a].get(wrt[b], sp.S.Zero).xreplace(full))


def _matmul(a: sp.Matrix, b: sp.Matrix) -> sp.Matrix:
    """a * b skipping zero entries (local Jacobians are mostly zeros)."""
    cols: list[list[tuple[int, sp.Expr]]] = [[] for _ in range(b.cols)]
    for k in range(b.rows):
        for j in range(b.cols):
            v = b[k, j]
            if v != 0:
                cols[j].append((k, v))
    out = sp.zeros(a.rows, b.cols)
    for i in range(a.rows):
        row = [a[i, k] for k in range(a.cols)]
        for j, col in enumerate(cols):
            terms = [row[k] * v for k, v in col if row[k] != 0]
            if terms:
                out[i, j] = sp.Add(*terms)
    return out


def _reshape(mat: sp.Matrix, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.empty(len(mat), dtype=object)
    for i, v in enumerate(mat):
        arr[i] = v
    return arr.reshape(shape)


def nonsmooth_atoms(exprs: Any) -> set[sp.Expr]:
    """Max, Abs, Heaviside, Piecewise... appearing anywhere in `exprs`."""
    found: set[sp.Expr] = set()
    for e in np.asarray(exprs, dtype=object).flat:
        found |= set(sp.sympify(e).atoms(*NONSMOOTH))
    return found
