"""The derivation a person would write, as data: definitions, chain-rule factors with their
rules, the deltas, the result, the claim, and how the proof closed (rendering: derive.present.latex).

It is the symbolic-size derivation (index notation, sums over symbolic n) where the identity
has sizes, and the same machinery over scalars where it has none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..errors import UnsupportedError
from ..model.spec import Identity
from .every_n import derive_indexed
from .every_n_proof import _claim_entry, prove_indexed
from .graph import build, derive
from .indexed_graph import IndexedGraph, INode, build_indexed, size_names
from .proof import prove_claim
from .steps import Step


@dataclass(frozen=True)
class ClaimExplanation:
    """One claim: the derivative as derived (in named deltas) and as claimed."""

    label: str
    wrt: str | None
    claimed: sp.Expr
    derived: sp.Expr
    text: str
    proved: bool
    method: str
    path: tuple[str, ...]  # target ... wrt, along the first chain of intermediates


@dataclass(frozen=True)
class Explanation:
    """Everything needed to typeset one identity's derivation."""

    name: str
    family: str
    description: str
    source: str
    graph: IndexedGraph
    steps: tuple[Step, ...]
    claims: tuple[ClaimExplanation, ...]
    for_every_n: bool
    seconds: float


def _path(graph: IndexedGraph, wrt: str) -> tuple[str, ...]:
    """The first chain target -> ... -> wrt through the graph."""
    def walk(name: str) -> tuple[str, ...] | None:
        if name == wrt:
            return (name,)
        for p in graph.nodes[name].parents:
            rest = walk(p)
            if rest:
                return (name, *rest)
        return None
    return walk(graph.target) or (graph.target, wrt)


def _explicit(identity: Identity, index: int) -> tuple[bool, str]:
    graph = build(identity, {})
    claim = graph.claims[index]
    proof = prove_claim(claim.expr - derive(graph).derived[index], graph)
    kinks = f" (away from {', '.join(proof.kinks)})" if proof.kinks else ""
    return proof.proved, ", ".join(proof.methods) + kinks


def explain(identity: Identity) -> Explanation:
    """Derive and prove `identity` in index notation and keep every step."""
    start = time.perf_counter()
    try:
        graph = build_indexed(identity, require_sizes=False)
    except UnsupportedError:  # det, inv... of a symbolic n: written out at explicit sizes
        return _explain_at_sizes(identity, start)
    derivation = derive_indexed(graph)
    claims = []
    for c, spec in zip(graph.claims, identity.claims):
        claimed = _claim_entry(c)
        proved, method = prove_indexed(claimed - derivation.derived[c.index], graph)
        if not proved and not graph.sizes:  # scalars: the explicit ladder also splits kinks
            proved, method = _explicit(identity, c.index)
        claims.append(ClaimExplanation(spec.label, c.wrt, claimed, derivation.shown[c.index], spec.text,
                                       proved, method, _path(graph, c.wrt) if c.wrt else (graph.target,)))
    return Explanation(identity.name, identity.family, identity.description, identity.source, graph,
                       derivation.steps, tuple(claims), bool(size_names(identity)),
                       time.perf_counter() - start)


def _entries(arr: np.ndarray, names: dict[sp.Symbol, sp.Expr]) -> Any:
    """An array of expressions as one SymPy object (a matrix for up to two axes)."""
    arr = np.vectorize(lambda e: sp.sympify(e).xreplace(names), otypes=[object])(arr)
    if arr.ndim == 0:
        return arr.item()
    return sp.Matrix(arr.tolist()) if arr.ndim <= 2 else sp.Array(arr.tolist())


def _explain_at_sizes(identity: Identity, start: float) -> Explanation:
    """The derivation entry by entry at the identity's first sizes (matrices written out), for
    formulas index notation cannot write; the proof it reports holds at those sizes only."""
    sizes = dict(identity.sizes[0])
    graph = build(identity, sizes)
    derivation = derive(graph)
    names = {s: sp.IndexedBase(n.name)[idx] for n in graph.nodes.values()
             for idx, s in np.ndenumerate(n.symbols) if idx}
    nodes = {n.name: INode(n.name, (), sp.Symbol(n.name), None if n.expr is None else n.expr,
                           n.parents) for n in graph.nodes.values()}
    steps = tuple(Step("define", n.name, _entries(n.expr, names)) for n in graph.definitions)
    at = "; at " + ", ".join(f"{k}={v}" for k, v in sizes.items()) if sizes else ""
    claims = []
    for c, spec in zip(graph.claims, identity.claims):
        proof = prove_claim(c.expr - derivation.derived[c.index], graph)
        claims.append(ClaimExplanation(spec.label, c.wrt, _entries(c.expr, names),
                                       _entries(derivation.derived[c.index], names), spec.text,
                                       proof.proved, ", ".join(proof.methods) + at,
                                       (graph.target, c.wrt) if c.wrt else (graph.target,)))
    indexed = IndexedGraph(identity.name, {}, nodes, graph.target, ())
    return Explanation(identity.name, identity.family, identity.description, identity.source, indexed,
                       steps, tuple(claims), False, time.perf_counter() - start)
