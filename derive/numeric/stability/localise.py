"""Why: the operation responsible for the bits a flagged formula loses, found by local error as
Herbie does (each operation applied in the dtype to its arguments' exact values), and named as
overflow, underflow, cancellation or rounding, with the subexpression to show."""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from ...symbolic.marks import formula_text
from . import dag as D
from .evaluate import Evaluator, Measured, as_numpy
from .measure import DtypeInfo, rounded, ulp_bits
from .regions import Segment
from .result import FormulaResult
from .sweep import Points


def localise(ev: Evaluator, found: list[tuple[int, DtypeInfo, list[Segment]]], results: list[FormulaResult],
             measured: dict[tuple[int, str], Measured], pts: Points, exact: dict[int, np.ndarray]) -> None:
    """The operation that loses the bits, for each flagged formula and dtype, per region (the
    first region's is the outcome's). Where values are inf or nan, the first operation whose
    value in the dtype stops being finite while its exact value is finite is where it shows,
    and the operation with the largest local error among it and the operations it reads is
    where it happens; elsewhere it is the operation with the largest local error (Herbie's
    localisation). Local errors are computed once per dtype, at a few points of every region."""
    import torch

    for info in {f[1].name: f[1] for f in found}.values():
        mine = [(i, segs) for i, inf, segs in found if inf is info]
        groups: dict[tuple[int, int], tuple[np.ndarray, bool]] = {}
        for i, segments in mine:
            m = measured[(i, info.name)]
            bad_samples = np.flatnonzero((pts.ray < 0) & m.valid & (np.nan_to_num(m.bits) > info.half))
            listed = [(bad_samples, bool(m.nonfinite[bad_samples].any()))] if len(bad_samples) else []
            for seg in segments:  # in the order the region lists them: the most severe first
                worst = [p for p in seg.points if m.nonfinite[p]]
                listed.append((np.array(worst if worst else seg.points, dtype=int), bool(worst)))
            for g, (idx, nonfinite) in enumerate(listed):
                if len(idx):
                    groups[(i, g)] = (idx[:: max(1, len(idx) // 6)][:6], nonfinite)
        if not groups:
            continue
        rows = np.unique(np.concatenate([g[0] for g in groups.values()]))
        where = {r: j for j, r in enumerate(rows)}
        nodes = ev.dag.needed(list(dict.fromkeys(k for i, _ in mine for k in ev.forward(ev.formulas[i]))))
        sub = {k: exact[k][rows] for k in nodes}
        loc = D.local(ev.dag, nodes, sub, info.torch())
        local_bits = {}
        for k, value in loc.items():
            got = as_numpy(value, len(rows)) if not isinstance(value, bool) else np.full(len(rows), float(value))
            ok = np.isfinite(sub[k])
            local_bits[k] = np.where(ok, ulp_bits(got, rounded(sub[k], info), info), 0.0)
        with torch.no_grad():
            values = D.run(ev.dag, torch.as_tensor(pts.columns[rows]).to(info.torch()), nodes, info.torch())
        causes: dict[int, list[tuple[str, int]]] = {}
        for (i, g), (idx, nonfinite) in sorted(groups.items()):
            sel = np.array([where[r] for r in idx])
            within = ev.dag.needed(ev.forward(ev.formulas[i]))
            if nonfinite:
                origin = _origin(ev, within, values, sub, sel)
                if origin is not None:
                    within = ev.dag.needed([origin])
            scores = {k: float(local_bits[k][sel].mean()) for k in within if k in local_bits}
            ranked = sorted(scores, key=lambda k: (-scores[k], k))
            best = ranked[0] if ranked and scores[ranked[0]] > 0.5 else (within[-1] if nonfinite else None)
            if best is not None:
                causes.setdefault(i, []).append(_classify(ev, best, {k: v[sel] for k, v in sub.items()}, info))
        for i, _ in mine:
            if i not in causes and ev.formulas[i].kind == "autograd":  # the forward loses nothing
                results[i].outcomes[info.name].cause = "the backward pass (autograd's own rounding)"
        for i, listed in causes.items():
            o = results[i].outcomes[info.name]
            cause, node = listed[0]
            o.subexpression = _show(ev, node)
            autograd = ev.formulas[i].kind == "autograd"
            o.cause = f"{cause} in the forward, through autograd" if autograd else cause
            if not autograd:
                o.responsible = list(dict.fromkeys(_expanded(ev, ev.dag.ops[n].expr) for _, n in listed))


def _origin(ev: Evaluator, nodes: list[int], values: dict[int, Any], exact: dict[int, np.ndarray],
            sel: np.ndarray) -> int | None:
    """The first operation (in evaluation order) whose value in the dtype is inf or nan while
    its exact value is finite, at the most points."""
    first = np.full(len(sel), -1)
    for k in nodes:
        v = values.get(k)
        if v is None or isinstance(v, bool) or ev.dag.ops[k].kind == "cmp":
            continue
        got = as_numpy(v, len(exact[k]))[sel]
        fresh = (first < 0) & ~np.isfinite(got) & np.isfinite(exact[k][sel])
        first[fresh] = k
    hits = [int(k) for k in first if k >= 0]
    return max(set(hits), key=lambda k: (hits.count(k), -k)) if hits else None


def _expanded(ev: Evaluator, e: Any) -> sp.Expr:
    return sp.sympify(e).xreplace(ev.w.expanded)


def _show(ev: Evaluator, node: int) -> str:
    return formula_text(_expanded(ev, ev.dag.ops[node].expr), ev.shapes, limit=120)


def _classify(ev: Evaluator, k: int, exact: dict[int, np.ndarray], info: DtypeInfo) -> tuple[str, int]:
    """overflow (an exact value beyond the dtype), underflow (an exact value that rounds to 0
    or to a subnormal), cancellation (a sum much smaller than its terms, a log of a value
    rounded to 1), else rounding; with the subexpression to name."""
    op = ev.dag.ops[k]
    with np.errstate(all="ignore"):
        def big(n: int) -> bool:
            v = np.abs(exact[n])
            return bool((np.isfinite(v) & (v > info.max)).any() | np.isinf(v).any())

        def tiny(n: int) -> bool:
            v = np.abs(exact[n])
            return bool(((v > 0) & (v < info.tiny)).any())

        for a in op.args:
            if ev.dag.ops[a].kind not in ("const", "true") and big(a):
                return "overflow", _deepest(ev, a, big)
        if op.kind not in ("in", "const") and big(k):
            return "overflow", _deepest(ev, k, big)
        if tiny(k) and op.kind != "add":
            return "underflow", k
        for a in op.args:
            if ev.dag.ops[a].kind not in ("const", "true", "in") and tiny(a):
                return "underflow", a
        if op.kind == "add":
            terms = np.max(np.abs(np.stack([np.broadcast_to(exact[a], exact[k].shape) for a in op.args])), axis=0)
            if bool((np.abs(exact[k]) < terms * 2.0 ** -info.half).any()):
                return "cancellation", k
        if op.kind == "fn" and op.param == "log" and bool((np.abs(exact[op.args[0]] - 1) < 2.0 ** -info.half).any()):
            return "cancellation", k
    return "rounding", k


def _deepest(ev: Evaluator, k: int, big: Any) -> int:
    while True:
        nxt = next((a for a in ev.dag.ops[k].args if ev.dag.ops[a].kind not in ("const", "true") and big(a)), None)
        if nxt is None:
            return k
        k = nxt


__all__ = ["localise"]
