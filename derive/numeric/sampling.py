"""Random inputs inside each variable's domain, and inputs moved by a few ulps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model.ops_math import jump_arguments
from ..model.spec import Identity
from ..symbolic.graph import Graph
from . import backends
from .compiled import Compiled, _stack, _target, forward
from .tolerance import EPS, Tolerance


@dataclass
class Inputs:
    """A batch of samples: raw values per variable (labels as ints) and formula columns."""

    raw: dict[str, np.ndarray]
    columns: np.ndarray  # (samples, number of variable entries), float64


def _draw(identity: Identity, graph: Graph, rng: np.random.Generator, count: int) -> Inputs:
    raw: dict[str, np.ndarray] = {}
    cols = []
    for var in identity.variables:
        shape = var.resolve(graph.sizes)
        values = var.domain.sample(rng, (count, *shape), graph.sizes)
        raw[var.name] = values
        cols.append(var.domain.encode(values, graph.sizes).reshape(count, -1))
    return Inputs(raw, np.concatenate(cols, axis=1) if cols else np.zeros((count, 0)))


@dataclass
class Sampled:
    """Samples drawn inside the domains, away from kinks, with a finite forward value."""

    inputs: Inputs
    resampled_kinks: int = 0
    nonfinite: int = 0


def sample(identity: Identity, graph: Graph, compiled: Compiled, rng: np.random.Generator,
           count: int, tol: Tolerance, rounds: int = 20) -> Sampled:
    """Draw `count` samples; redraw those near a kink or with a non-finite target."""
    np_backend = backends.get("numpy")
    inputs = _draw(identity, graph, rng, count)
    jumps = _jumps(graph, compiled)
    kinks = 0
    bad = np.ones(count, dtype=bool)
    for _ in range(rounds):
        env = forward(compiled, np_backend, inputs.columns)
        target = _stack(np_backend, _target(compiled, graph, env), count)
        near = np.zeros(count, dtype=bool)
        if compiled.kinks is not None:
            args = _stack(np_backend, np_backend.run(compiled.kinks, env), count)
            scale = np.maximum(1.0, np.abs(inputs.columns).max(axis=1, initial=0.0))
            near = (np.abs(args) < tol.kink_margin * scale[:, None]).any(axis=1)
        if jumps is not None:  # floor, round, ...: no sample within a step of a jump
            args = _stack(np_backend, np_backend.run(jumps, env), count)
            scale = np.maximum(1.0, np.abs(inputs.columns).max(axis=1, initial=0.0))
            near |= (np.abs(args) < tol.kink_margin * scale[:, None]).any(axis=1)
        nonfinite = ~np.isfinite(target).all(axis=1)
        bad = near | nonfinite
        if not bad.any():
            break
        kinks += int(near.sum())
        fresh = _draw(identity, graph, rng, int(bad.sum()))
        for name in inputs.raw:
            inputs.raw[name][bad] = fresh.raw[name]
        inputs.columns[bad] = fresh.columns
    return Sampled(inputs, kinks, int(bad.sum()))


def _jumps(graph: Graph, compiled: Compiled) -> backends.Program | None:
    """A program of expressions that are 0 at the jumps of the step functions (floor, round,
    ...) in the definitions and claims, or None when there are none."""
    exprs = [e for n in graph.definitions for e in n.expr.flat] + [e for c in graph.claims for e in c.expr.flat]
    args = jump_arguments(exprs)
    return backends.compile_program(args, list(compiled.symbols)) if args else None


def _jitter(env: list[Any], backend: backends.Backend, rng: np.random.Generator, count: int,
            exact: set[int]) -> list[Any]:
    """Every slot (inputs and intermediates) moved by 4 ulps with a random sign.

    Evaluating a formula on this env measures how much float64 rounding of the values it reads
    can move it: 1 - y with y = 0.99999999999999 is ill-conditioned, exp(-a) is not.
    """
    out = []
    for i, v in enumerate(env):
        if v is None or i in exact:
            out.append(v)
            continue
        factor = 1.0 + 4.0 * EPS * rng.choice([-1.0, 1.0], size=count)
        out.append(v * backend.from_numpy(factor))
    return out


def _jitter_columns(columns: np.ndarray, rng: np.random.Generator, exact: set[int]) -> np.ndarray:
    """The inputs moved by 4 ulps with a random sign (discrete inputs kept exact)."""
    factor = 1.0 + 4.0 * EPS * rng.choice([-1.0, 1.0], size=columns.shape)
    factor[:, sorted(exact)] = 1.0
    return columns * factor


def _discrete_slots(identity: Identity, compiled: Compiled) -> set[int]:
    return {i for v in identity.variables if not v.domain.differentiable
            for i in compiled.slots[v.name]}


def _inputs_at(identity: Identity, inputs: Inputs, s: int) -> dict[str, Any]:
    return {v.name: np.asarray(inputs.raw[v.name][s]).tolist() for v in identity.variables}
