"""An identity's formulas compiled once into programs every backend evaluates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..symbolic.graph import Derivation, Graph, nonsmooth_atoms
from ..symbolic.proof import kink_args
from . import backends
from .backends import Program, compile_program


@dataclass(frozen=True)
class Compiled:
    """Programs for one graph: each definition, each derived derivative, each claim, the kinks."""

    symbols: tuple[sp.Symbol, ...]
    slots: dict[str, tuple[int, ...]]
    definitions: tuple[tuple[str, Program], ...]
    derived: dict[int, Program]
    claims: dict[int, Program]
    kinks: Program | None
    kink_text: tuple[str, ...]
    analytic: bool


def compile_graph(graph: Graph, derivation: Derivation | None) -> Compiled:
    """Compile every formula of `graph` once; all programs read the same flat slot list."""
    symbols: list[sp.Symbol] = []
    slots: dict[str, tuple[int, ...]] = {}
    for node in graph.nodes.values():
        slots[node.name] = tuple(range(len(symbols), len(symbols) + len(node.flat)))
        symbols += node.flat
    defs = tuple((d.name, compile_program(list(d.expr.flat), symbols)) for d in graph.definitions)
    derived = {i: compile_program(list(a.flat), symbols) for i, a in
               (derivation.derived.items() if derivation else ())}
    claims = {c.index: compile_program(list(c.expr.flat), symbols) for c in graph.claims}
    exprs = [d.expr for d in graph.definitions] + [c.expr for c in graph.claims]
    if derivation:
        exprs += list(derivation.derived.values())
    args: list[sp.Expr] = []
    for atom in sorted(nonsmooth_atoms(np.concatenate([np.ravel(e) for e in exprs])), key=str):
        args += [a for a in kink_args(atom) if a not in args]
    kinks = compile_program(args, symbols) if args else None
    upto = [d.expr for d in graph.definitions]
    analytic = not nonsmooth_atoms(np.concatenate([np.ravel(e) for e in upto]))
    return Compiled(tuple(symbols), slots, defs, derived, claims, kinks,
                    tuple(f"{a} = 0" for a in args), analytic)


def forward(compiled: Compiled, backend: backends.Backend, columns: Any,
            upto: str | None = None) -> list[Any]:
    """Evaluate the definitions in order; returns the full slot list (variables first)."""
    env: list[Any] = [None] * len(compiled.symbols)
    n_var = columns.shape[1]
    for i in range(n_var):
        env[i] = columns[:, i]
    for name, prog in compiled.definitions:
        for slot, value in zip(compiled.slots[name], backend.run(prog, env)):
            env[slot] = value
        if name == upto:
            break
    return env


def _stack(backend: backends.Backend, values: list[Any], count: int) -> np.ndarray:
    return np.asarray(backend.to_numpy(backend.stack(values, (count,))), dtype=np.float64)


def _target(compiled: Compiled, graph: Graph, env: list[Any]) -> list[Any]:
    return [env[s] for s in compiled.slots[graph.target]]


def _num_vars(compiled: Compiled, graph: Graph) -> int:
    return sum(len(compiled.slots[v.name]) for v in graph.variables)


def forward_scalar(compiled: Compiled, backend: backends.Backend, point: list[Any],
                   upto: str) -> list[Any]:
    """Like `forward`, for one sample given as a list of scalars (mpmath)."""
    env: list[Any] = [None] * len(compiled.symbols)
    env[: len(point)] = point
    for name, prog in compiled.definitions:
        for slot, value in zip(compiled.slots[name], backend.run(prog, env)):
            env[slot] = value
        if name == upto:
            break
    return env
