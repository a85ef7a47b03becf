"""Where a formula loses more than half its dtype's bits: the runs of sweep magnitudes (per sign
for one scalar swept) where it does, their edges bisected between the sweep points around them,
and the region in words."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .evaluate import Evaluator, Measured
from .measure import DTYPES, DtypeInfo
from .sweep import WORK, Points, Ray, on_grid


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _kind(values: np.ndarray) -> str:
    inf, nan = bool(np.isinf(values).any()), bool(np.isnan(values).any())
    return "inf or nan" if inf and nan else "nan" if nan else "inf" if inf else "non-finite"


@dataclass
class Segment:
    """A run of sweep magnitudes (one sign) where more than half the bits are lost, with the
    sweep points just outside it (the brackets its edges are bisected in)."""

    sign: int
    low: float | None  # None: from the smallest magnitude swept
    high: float | None  # None: to the largest
    nonfinite_from: float | None
    kind: str
    worst: float
    points: np.ndarray  # the bad points
    below: float | None = None  # the good magnitude below `low`
    above: float | None = None  # the good magnitude above `high`
    nonfinite_below: float | None = None
    rays: dict[str, list[int]] = field(default_factory=dict)  # edge -> rays showing it


def find_segments(info: DtypeInfo, m: Measured, pts: Points) -> list[Segment]:
    """The magnitudes where more than half the bits are lost, as intervals: per sign for one
    scalar swept (z > a, z < -b); otherwise over every direction and sign at once (the sweep
    scales a vector whose entries have both signs), where a magnitude counts as soon as one
    direction fails at it."""
    out = []
    groups = [(1, [k for k, r in enumerate(pts.rays) if r.sign == 1]),
              (-1, [k for k, r in enumerate(pts.rays) if r.sign == -1])] if pts.scalar else \
        [(0, list(range(len(pts.rays))))]
    for sign, rays in groups:
        if not rays:
            continue
        on = np.isin(pts.ray, rays) & m.valid
        mags = np.unique(pts.magnitude[on])
        rows = [np.flatnonzero(on & (pts.magnitude == mag)) for mag in mags]
        bad = np.array([bool((m.bits[r] > info.half).any()) for r in rows], dtype=bool)
        i = 0
        while i < len(mags):
            if not bad[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(mags) and bad[j + 1]:
                j += 1
            run = range(i, j + 1)
            idx = np.array([p for k in run for p in rows[k] if m.bits[p] > info.half], dtype=int)
            nf = [k for k in run if m.nonfinite[rows[k]].any()]
            seg = Segment(sign, None if i == 0 else float(mags[i]), None if j == len(mags) - 1 else float(mags[j]),
                          None, _kind(m.computed[idx][~np.isfinite(m.computed[idx])]) if nf else "",
                          float(np.max(m.bits[idx])), idx,
                          None if i == 0 else float(mags[i - 1]), None if j == len(mags) - 1 else float(mags[j + 1]))
            if nf and nf[-1] == j:  # inf or nan from some magnitude to the top of the run
                start = min(k for k in run if all(q in nf for q in range(k, j + 1)))
                seg.nonfinite_from = float(mags[start])
                seg.nonfinite_below = float(mags[start - 1]) if start > 0 else None
                seg.rays["nonfinite_from"] = sorted({int(pts.ray[p]) for p in rows[start] if m.nonfinite[p]})
            elif nf:
                seg.nonfinite_upto = float(mags[max(nf)])  # type: ignore[attr-defined]
            seg.rays["low"] = sorted({int(pts.ray[p]) for p in rows[i] if m.bits[p] > info.half})
            seg.rays["high"] = sorted({int(pts.ray[p]) for p in rows[j] if m.bits[p] > info.half})
            out.append(seg)
            i = j + 1
    return sorted(_merged(out), key=_severity)


def _merged(segments: list[Segment]) -> list[Segment]:
    """For a multi-variable sweep, the runs after the first one that starts inside the sweep
    are one region to the end (the gaps between them are only directions that float64 cut)."""
    whole = [s for s in segments if s.sign != 0 or s.low is None]
    inner = [s for s in segments if s.sign == 0 and s.low is not None]
    if inner:
        first = inner[0]
        first.high, first.above = None, None
        first.worst = max(s.worst for s in inner)
        first.points = np.concatenate([s.points for s in inner])
        if first.nonfinite_from is None:
            later = next((s for s in inner[1:] if s.nonfinite_from is not None), None)
            if later is not None:
                first.nonfinite_from, first.nonfinite_below, first.kind = later.nonfinite_from, later.nonfinite_below, later.kind
                first.rays["nonfinite_from"] = later.rays.get("nonfinite_from", [])
        whole.append(first)
    return whole


def _severity(seg: Segment) -> tuple[float, ...]:
    """Where values stop being finite first, then where most bits are lost, then nearest 1."""
    return (seg.nonfinite_from is None and getattr(seg, "nonfinite_upto", None) is None, -round(seg.worst),
            abs(math.log(seg.low)) if seg.low else 0.0)


def refine(ev: Evaluator, found: list[tuple[int, DtypeInfo, list[Segment]]], pts: Points,
           steps: int) -> None:
    """Every segment's edges (where the bits lost cross half, where values stop being finite),
    bisected between the sweep points around them along the rays that show them: all edges
    of all formulas and dtypes at once, one batch of points per step."""
    tasks: list[tuple[int, DtypeInfo, Segment, str, Ray]] = []
    state: list[list[float]] = []
    for i, info, segments in found:
        for seg in segments:
            for attr, lo, hi in (("low", seg.below, seg.low), ("nonfinite_from", seg.nonfinite_below, seg.nonfinite_from),
                                 ("high", seg.high, seg.above)):
                if lo is not None and hi is not None and 0 < lo < hi:
                    for r in seg.rays.get(attr, [])[:1]:
                        tasks.append((i, info, seg, attr, pts.rays[r]))
                        state.append([lo, hi])
    if not tasks:
        return
    size = len(ev.dag.needed([k for i, _, _ in found for k in ev.formulas[i].outputs]))
    steps = min(steps, int(2 * WORK / max(1, len(tasks) * size)))
    for _ in range(steps):
        mids = [math.sqrt(a * b) for a, b in state]
        cols = np.stack([on_grid(t[4].at(mid)[None, :], t[1])[0] for t, mid in zip(tasks, mids)])
        wanted: dict[tuple[int, str], list[int]] = {}
        for k, t in enumerate(tasks):
            wanted.setdefault((t[0], t[1].name), []).append(k)
        measured, _ = ev.measure(cols, [(i, DTYPES[name], np.array(rows)) for (i, name), rows in wanted.items()])
        for (i, name), rows in wanted.items():
            m = measured[(i, name)]
            for j, k in enumerate(rows):
                attr = tasks[k][3]
                bad = bool(np.nan_to_num(m.bits[j], nan=0.0) > DTYPES[name].half)
                hit = bool(m.nonfinite[j]) if attr == "nonfinite_from" else (not bad if attr == "high" else bad)
                state[k][1 if hit else 0] = mids[k]
    for (i, info, seg, attr, _), (lo, hi) in zip(tasks, state):
        setattr(seg, attr, math.sqrt(lo * hi))  # the edge, to the bracket's width (0.1% or so)


def _cond(pts: Points, sign: int, op: str, value: float) -> str:
    if sign < 0:
        return f"{pts.label} {'<' if op == '>' else '>'} {_fmt(-value)}"
    return f"{pts.label} {op} {_fmt(value)}"


def _describe(seg: Segment, pts: Points, info: DtypeInfo) -> str:
    if seg.low is None and seg.high is None:
        where = f"every {pts.label} swept" if not seg.sign else \
            f"every {'positive' if seg.sign > 0 else 'negative'} {pts.label}"
    elif seg.high is None:
        where = _cond(pts, seg.sign, ">", seg.low)  # type: ignore[arg-type]
    elif seg.low is None:
        where = _cond(pts, seg.sign, "<", seg.high)
    else:
        where = f"{_cond(pts, seg.sign, '>', seg.low)} and {_cond(pts, seg.sign, '<', seg.high)}"
    if seg.nonfinite_from is not None and (seg.low is None or seg.nonfinite_from <= seg.low * 1.01) \
            and seg.high is None:
        return f"{seg.kind} for {where}"
    lost = (f"all {info.precision} bits lost for {where}" if seg.worst >= info.precision - 0.01 else
            f"up to {seg.worst:.0f} of {info.precision} bits lost for {where}")
    if seg.nonfinite_from is not None and (seg.high is not None or seg.low is None):
        return f"{lost} ({seg.kind} from {_fmt(-seg.nonfinite_from if seg.sign < 0 else seg.nonfinite_from)})"
    if seg.nonfinite_from is not None:
        return f"{lost}, {seg.kind} for {_cond(pts, seg.sign, '>', seg.nonfinite_from)}"
    upto = getattr(seg, "nonfinite_upto", None)
    if upto is not None:
        return f"{lost}, {seg.kind} for {_cond(pts, seg.sign, '<', upto)}" if seg.low is None else \
            f"{lost}, {seg.kind} at some"
    return lost


def describe_region(segments: list[Segment], pts: Points, info: DtypeInfo, m: Measured) -> str:
    """Where: the segments of each sign (the first one only for a multi-variable sweep, whose
    later gaps are only directions cut off where float64 overflows)."""
    parts = list(dict.fromkeys(_describe(s, pts, info) for s in segments))
    bad = int(np.sum((pts.ray < 0) & m.valid & (np.nan_to_num(m.bits) > info.half)))
    if bad:
        parts.insert(0, f"at {bad} of {int(np.sum(pts.ray < 0))} in-domain samples")
    return "; ".join(parts)


__all__ = ["Segment", "find_segments", "refine", "describe_region"]
