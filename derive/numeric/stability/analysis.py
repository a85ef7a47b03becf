"""How many bits each formula of an identity loses in float32, bfloat16 and float16, where, why,
and a rewrite proved equal that does not.

For every definition and claim (each written in the identity's variables, evaluated through its
named intermediates as a model would compute it) and for the gradient autograd takes of the
forward as written, on

- in-domain samples, and
- a sweep of input magnitudes: each swept variable (real or positive domains) scaled by s =
  +-2^k from 2^-72 to 2^127 along a few random in-domain directions (labels, binary targets and
  bounded inputs keep their sampled values), as far as the inputs fit the dtype and the exact
  value fits float64,

the value in the dtype is compared with the 40-digit value (`measure.bits_lost`). Where a
formula loses more than half its dtype's bits, the region is located on the sweep (its edges
bisected), the operation responsible is found by local error (each operation applied to
exactly rounded arguments, as Herbie does) and classified as overflow, underflow or
cancellation, and the rewrite table (`derive.symbolic.rewrites`) is tried on it; a rewrite is
kept only when it loses fewer bits, agrees with the original at 40 digits, and is proved equal.
Inputs are drawn on the bfloat16 grid, so each is exact in every dtype and one truth serves all.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...errors import DeriveError, UnsupportedError
from ...model.spec import Identity
from ...model.verdict import Stability, StableRewrite
from ...symbolic.graph import Graph, derive
from ...symbolic.rewrites import (RULES, Applied, Library, Rule, Written, ancestors, apply_at, available,
                                  formula_text, prove_rewrite, rewrite_everywhere, written)
from . import dag as D
from .measure import DEFAULT_DTYPES, DTYPES, DtypeInfo, bits_lost, rounded, ulp_bits

SAMPLES = 32
DIRECTIONS = 2
EXPONENTS = np.concatenate([np.arange(-72, -12, 4), np.arange(-12, 13, 1), np.arange(14, 128, 4)])
"""The sweep's magnitudes, as powers of two: an octave apart where exp overflows (11, 17, 88,
709), four apart where only powers overflow (x**2 past 2^64 in float32); the edges of each
region are then bisected."""
MAX_NODES = 4000
"""Formulas larger than this (operations, after sharing) are not analysed (time)."""
WORK = 100_000
"""Operations x points per high-precision pass: fewer sweep points for large formulas."""
REWRITE_OPS = 400
"""Formulas larger than this are not searched for rewrites (SymPy time)."""
SWEPT_SIGNED = ("real", "invertible", "symmetric")
SWEPT_POSITIVE = ("positive", "spd")


# --- the points ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ray:
    """Inputs s * direction (swept entries) with the other entries fixed; s > 0 or s < 0."""

    base: np.ndarray
    signed: np.ndarray  # boolean mask of entries scaled by s
    positive: np.ndarray  # entries scaled by |s|
    sign: int
    direction: int

    def at(self, magnitude: float) -> np.ndarray:
        point = self.base.copy()
        point[self.signed] = self.sign * magnitude * self.base[self.signed]
        point[self.positive] = magnitude * self.base[self.positive]
        return point


@dataclass
class Points:
    columns: np.ndarray  # (points, inputs), each exact in bfloat16
    ray: np.ndarray  # ray index per point, -1 for an in-domain sample
    magnitude: np.ndarray  # |s| per sweep point (nan for samples)
    rays: list[Ray]
    label: str  # what the sweep scales, as a region names it: "z", "max|z|", "max|x, y|"
    scalar: bool  # one scalar variable swept: regions say z > a, z < -a


def _grid(values: np.ndarray, info: DtypeInfo | None = None) -> np.ndarray:
    """Values rounded to bfloat16 (exact in every dtype), or to the given dtype's grid."""
    return rounded(values, info or DTYPES["bfloat16"])


def _draw(identity: Identity, graph: Graph, rng: np.random.Generator, count: int) -> np.ndarray:
    cols = []
    for var in identity.variables:
        shape = var.resolve(graph.sizes)
        values = var.domain.sample(rng, (count, *shape), graph.sizes)
        cols.append(var.domain.encode(values, graph.sizes).reshape(count, -1))
    return np.concatenate(cols, axis=1) if cols else np.zeros((count, 0))


def points_for(identity: Identity, graph: Graph, *, seed: int, samples: int, exponents: np.ndarray) -> Points:
    rng = np.random.default_rng([seed, zlib.crc32(identity.name.encode()), 15])
    width = sum(len(n.flat) for n in graph.variables)
    signed = np.zeros(width, dtype=bool)
    positive = np.zeros(width, dtype=bool)
    swept: list[str] = []
    at = 0
    for var, node in zip(identity.variables, graph.variables):
        n = len(node.flat)
        kind = var.domain.name
        if kind in SWEPT_SIGNED:
            signed[at:at + n] = True
        elif kind in SWEPT_POSITIVE:
            positive[at:at + n] = True
        if kind in SWEPT_SIGNED + SWEPT_POSITIVE:
            swept.append((var.name, n))  # type: ignore[arg-type]
        at += n
    base = _grid(_draw(identity, graph, rng, samples))
    cols, ray_of, mags, rays = [base], [np.full(samples, -1)], [np.full(samples, np.nan)], []
    any_swept = signed.any() or positive.any()
    count = DIRECTIONS if (len(swept) > 1 or any(n > 1 for _, n in swept) or width > len(swept)) else 1
    if any_swept:
        directions = _draw(identity, graph, rng, count)
        for j in range(count):
            d = directions[j].copy()
            scale = np.abs(d[signed | positive]).max(initial=0.0)
            if scale == 0:
                continue
            d[signed | positive] = d[signed | positive] / scale
            d[positive] = np.abs(d[positive])
            if len(swept) == 1 and swept[0][1] == 1:  # one scalar: s is its value
                d[signed | positive] = 1.0
            d = _grid(d)
            for sign in ((1, -1) if signed.any() else (1,)):
                ray = Ray(d, signed, positive, sign, j)
                mags_k = 2.0 ** exponents
                block = np.stack([ray.at(m) for m in mags_k])
                cols.append(_grid(block))
                ray_of.append(np.full(len(mags_k), len(rays)))
                mags.append(mags_k)
                rays.append(ray)
    names = [name for name, _ in swept]
    scalar = len(swept) == 1 and swept[0][1] == 1
    label = names[0] if scalar else f"max|{', '.join(names)}|"
    return Points(np.concatenate(cols), np.concatenate(ray_of), np.concatenate(mags), rays, label, scalar)


# --- formulas --------------------------------------------------------------------------------

@dataclass
class Formula:
    """One formula of the identity: its entries (marked, in the graph's symbols), its nodes."""

    label: str
    kind: str  # "definition", "claim" or "autograd"
    entries: np.ndarray
    outputs: list[int]
    text: str
    wrt: str | None = None


@dataclass
class Outcome:
    """One formula in one dtype."""

    dtype: str
    mean: float
    worst: float
    flagged: bool
    region: str = ""
    cause: str = ""
    subexpression: str = ""
    curve: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    """(signed magnitude, bits lost): the worst over directions at each sweep point."""
    responsible: list[sp.Expr] = field(default_factory=list)


@dataclass
class Rewrite:
    """A rewrite proved equal to the formula, and what it loses in each dtype."""

    text: str
    proved: bool
    methods: tuple[str, ...]
    worst: dict[str, float]
    mean: dict[str, float]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    entries: np.ndarray | None = None
    dag: Any = None
    outputs: list[int] | None = None


@dataclass
class FormulaResult:
    formula: Formula
    outcomes: dict[str, Outcome]
    rewrite: Rewrite | None = None
    note: str = ""


@dataclass
class Analysis:
    """The stability of one identity (at its first sizes)."""

    name: str
    sizes: dict[str, int]
    dtypes: tuple[str, ...]
    sweep: str
    results: list[FormulaResult]
    notes: list[str]

    def summary(self, *, curves: bool = False) -> dict[str, Any]:
        """Plain data (JSON): the flagged entries, then every formula in every dtype, with the
        bits lost along the sweep (`curves`: [signed magnitude, bits]) when asked."""
        def curve(c: tuple[np.ndarray, np.ndarray]) -> list[list[float]]:
            return [[float(x) for x in c[0]], [round(float(b), 3) for b in c[1]]]

        formulas = []
        for r in self.results:
            dtypes = {}
            for name, o in r.outcomes.items():
                dtypes[name] = {"bits_lost_mean": round(o.mean, 2), "bits_lost_worst": round(o.worst, 2),
                                "flagged": o.flagged, "region": o.region, "cause": o.cause,
                                "subexpression": o.subexpression, **({"curve": curve(o.curve)} if curves else {})}
            rewrite = None
            if r.rewrite is not None:
                rewrite = {"formula": r.rewrite.text, "proved": r.rewrite.proved, "methods": list(r.rewrite.methods),
                           "dtypes": {d: {"bits_lost_mean": round(r.rewrite.mean[d], 2),
                                          "bits_lost_worst": round(r.rewrite.worst[d], 2),
                                          **({"curve": curve(r.rewrite.curves[d])} if curves else {})}
                                      for d in r.rewrite.worst}}
            formulas.append({"formula": r.formula.label, "kind": r.formula.kind, "text": r.formula.text,
                             "note": r.note, "dtypes": dtypes, "rewrite": rewrite})
        return {"name": self.name, "sizes": self.sizes, "dtypes": list(self.dtypes), "sweep": self.sweep,
                "notes": list(self.notes), "stability": [asdict(e) for e in self.entries()],
                "formulas": formulas}

    def entries(self) -> tuple[Stability, ...]:
        """One entry per formula and dtype that loses more than half the dtype's bits."""
        out = []
        for r in self.results:
            for name, o in r.outcomes.items():
                if not o.flagged:
                    continue
                rw = None
                if r.rewrite is not None and r.rewrite.proved and name in r.rewrite.worst:
                    rw = StableRewrite(r.rewrite.text, True, round(r.rewrite.worst[name], 2))
                text = r.formula.label if r.formula.kind == "autograd" else f"{r.formula.label} = {r.formula.text}"
                out.append(Stability(text, name, round(o.mean, 2), round(o.worst, 2), o.region, o.cause,
                                     o.subexpression, rw))
        return tuple(out)


# --- evaluation ------------------------------------------------------------------------------

@dataclass
class _Measured:
    bits: np.ndarray  # (points,) the worst entry; nan where no entry can be judged
    nonfinite: np.ndarray  # (points,) the computed value is inf or nan somewhere
    valid: np.ndarray
    computed: np.ndarray  # (points, entries)


class _Evaluator:
    """The identity's formulas on one shared graph of operations."""

    def __init__(self, w: Written, derivation: Any) -> None:
        self.w = w
        self.graph = w.graph
        self.inputs = [s for n in self.graph.variables for s in n.flat]
        defs = {}
        for node in self.graph.definitions:
            defs.update(zip(node.flat, self.w.definitions[node.name].flat))
        self.dag = D.Dag(self.inputs, defs)
        self.shapes = {n.name: n.shape for n in self.graph.nodes.values()}
        self.slots: dict[str, list[int]] = {}
        at = 0
        for node in self.graph.variables:
            self.slots[node.name] = list(range(at, at + len(node.flat)))
            at += len(node.flat)
        self.formulas: list[Formula] = []
        target = self.graph.target
        for node in self.graph.definitions:
            entries = self.w.definitions[node.name]
            self.formulas.append(Formula(node.name, "definition", entries,
                                         [self.dag.add(e) for e in entries.flat], ""))
        for c in self.graph.claims:
            entries = self.w.claims[c.index]
            label = f"d{target}/d{c.wrt} (claimed)" if c.wrt else f"{target} (claimed)"
            self.formulas.append(Formula(label, "claim", entries, [self.dag.add(e) for e in entries.flat],
                                         "", c.wrt))
        if derivation is not None:
            for c in self.graph.claims:
                if c.wrt is not None:
                    truth = derivation.derived[c.index]
                    self.formulas.append(Formula(f"d{target}/d{c.wrt} (autograd)", "autograd", truth,
                                                 [self.dag.add(e) for e in truth.flat], "", c.wrt))
        self.target_outputs = [self.dag.add(e) for e in self.w.definitions[target].flat]

    def text(self, formula: Formula) -> str:
        """The formula as written: in the variables and named intermediates it reads."""
        return "" if formula.kind == "autograd" else formula_text(formula.entries, self.shapes)

    def expanded(self, formula: Formula, limit: int | None = None) -> np.ndarray:
        """The formula's entries written in the variables (entries over `limit` operations stay
        in the named intermediates)."""
        full = self.w.expanded
        out = np.empty(formula.entries.shape, dtype=object)
        for idx, e in np.ndenumerate(formula.entries):
            x = e.xreplace(full)
            out[idx] = e if limit is not None and sp.count_ops(x) > limit else x
        return out

    @property
    def size(self) -> int:
        return len(self.dag.needed(self.all_outputs()))

    def all_outputs(self) -> list[int]:
        return list(dict.fromkeys([k for f in self.formulas for k in f.outputs] + self.target_outputs))

    def forward(self, formula: Formula) -> list[int]:
        """The nodes a formula's value in the dtype comes from (the target's, for autograd)."""
        return self.target_outputs if formula.kind == "autograd" else formula.outputs

    def computed(self, formulas: Sequence[Formula], columns: np.ndarray, info: DtypeInfo,
                 dag: D.Dag | None = None, outputs: Sequence[list[int]] | None = None) -> list[np.ndarray]:
        """Each formula in the dtype, (points, entries) as float64 (autograd for gradients);
        `dag`/`outputs` evaluate other formulas (rewrites) in their place."""
        import torch

        dtype = info.torch()
        x = torch.as_tensor(columns).to(dtype)
        dag = dag or self.dag
        outs = list(outputs) if outputs is not None else [f.outputs for f in formulas]
        plain = [k for f, o in zip(formulas, outs) if f.kind != "autograd" for k in o]
        with torch.no_grad():
            vals = D.run(dag, x, plain, dtype) if plain else {}
        result = []
        for f, o in zip(formulas, outs):
            if f.kind == "autograd":
                result.append(self.autograd(f, x, info, dag if outputs is not None else None,
                                            o if outputs is not None else None))
            elif o:
                result.append(np.stack([_numpy(vals[k], len(x)) for k in o], axis=-1))
            else:
                result.append(np.zeros((len(x), 0)))
        return result

    def autograd(self, formula: Formula, x: Any, info: DtypeInfo, dag: D.Dag | None,
                 outputs: list[int] | None) -> np.ndarray:
        """d target / d wrt by torch autograd through the forward as written (or through a
        rewritten forward: `dag`, `outputs`), in the dtype; entries in the claim's order."""
        import torch

        dag = dag or self.dag
        outputs = outputs or self.target_outputs
        slots = self.slots[formula.wrt or ""]
        leaf = x[:, slots].clone().requires_grad_(True)
        cols = torch.cat([x[:, : slots[0]], leaf, x[:, slots[-1] + 1:]], dim=1)
        vals = D.run(dag, cols, outputs, info.torch())
        rows = []
        for k in outputs:
            out = vals[k]
            if not out.requires_grad:
                rows.append(torch.zeros_like(leaf))
                continue
            (g,) = torch.autograd.grad(out.sum(), leaf, retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(leaf) if g is None else g)
        jac = torch.stack(rows, dim=1)  # (points, target entries, wrt entries)
        return jac.reshape(len(x), -1).detach().to(torch.float64).numpy()

    def measure(self, columns: np.ndarray, wanted: Sequence[tuple[int, DtypeInfo, np.ndarray]],
                exact: dict[int, np.ndarray] | None = None) -> tuple[dict[tuple[int, str], _Measured], dict[int, np.ndarray]]:
        """Bits lost by formula `i` in dtype `info` at the rows given, for each (i, info, rows):
        one high-precision pass for all, one dtype pass per dtype, and the inputs' rounding
        allowance (`measure.bits_lost`) only where the plain ulp count exceeds half a bit."""
        outs = list(dict.fromkeys(k for i, _, _ in wanted for k in self.formulas[i].outputs))
        if exact is None:
            exact = D.exact(self.dag, outs, columns)
        by_dtype: dict[str, list[tuple[int, DtypeInfo, np.ndarray]]] = {}
        for item in wanted:
            by_dtype.setdefault(item[1].name, []).append(item)
        first: dict[tuple[int, str], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        need = np.zeros(len(columns), dtype=bool)
        for items in by_dtype.values():
            info = items[0][1]
            rows = np.unique(np.concatenate([r for _, _, r in items]))
            rep = _representable(columns[rows], info)
            got = self.computed([self.formulas[i] for i, _, _ in items], columns[rows], info)
            pos = {r: j for j, r in enumerate(rows)}
            for (i, _, r), c in zip(items, got):
                sel = np.array([pos[x] for x in r], dtype=int)
                truth = _exact_of(self.formulas[i], exact)[r]
                first[(i, info.name)] = (c[sel], truth, rep[sel], r)
                zero = np.zeros_like(truth)
                ex = rounded(truth, info)
                with np.errstate(invalid="ignore"):
                    norm = np.max(np.where(np.isfinite(ex), np.abs(ex), 0.0), axis=1, keepdims=True)
                plain = bits_lost(c[sel], ex, info, zero, norm)
                need[r[np.nanmax(np.where(np.isfinite(plain), plain, 0.0), axis=1, initial=0.0) > 0.5]] = True
        allow = np.zeros((len(columns), len(outs)))
        if need.any():
            allow[need] = _fd_allowance(self.dag, outs, columns[need])
        col = {k: j for j, k in enumerate(outs)}
        result = {}
        for (i, name), (c, truth, rep, r) in first.items():
            a = allow[np.ix_(r, [col[k] for k in self.formulas[i].outputs])]
            result[(i, name)] = _measure(c, truth, a, DTYPES[name], rep)
        return result, exact


def _numpy(value: Any, count: int) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        return np.broadcast_to(value.detach().to(torch.float64).numpy(), (count,))
    return np.full(count, float(value))


def _fd_allowance(dag: D.Dag, outputs: list[int], cols: np.ndarray) -> np.ndarray:
    """sum_i |d out / d x_i| |x_i| per point and output: central differences in float64 with
    relative steps of 2^-20, all inputs in one batched evaluation (non-finite parts count 0:
    where float64 itself fails there is no allowance)."""
    import torch

    count, width = cols.shape
    total = np.zeros((count, len(outputs)))
    inputs = [i for i in range(width) if np.any(cols[:, i] != 0)]
    if not inputs or not count or not outputs:
        return total
    h = 2.0 ** -20
    size = max(1, len(dag.needed(outputs)))
    per = max(1, int(2_000_000 / (size * count * 2)))
    for start in range(0, len(inputs), per):
        ids = inputs[start:start + per]
        plus = np.repeat(cols[None], len(ids), axis=0)
        minus = plus.copy()
        for j, i in enumerate(ids):
            plus[j, :, i] *= 1 + h
            minus[j, :, i] *= 1 - h
        stacked = np.concatenate([plus.reshape(-1, width), minus.reshape(-1, width)])
        with torch.no_grad(), np.errstate(all="ignore"):
            vals = D.run(dag, torch.as_tensor(stacked), outputs, torch.float64)
            f = np.stack([_numpy(vals[k], len(stacked)) for k in outputs], axis=-1)
            half = len(ids) * count
            d = np.abs((f[:half] - f[half:]) / (2 * h)).reshape(len(ids), count, len(outputs))
        total += np.where(np.isfinite(d), d, 0.0).sum(axis=0)
    return total


def _measure(computed: np.ndarray, exact: np.ndarray, allow: np.ndarray, info: DtypeInfo,
             representable: np.ndarray) -> _Measured:
    ex = rounded(exact, info)
    valid = np.isfinite(exact) & np.isfinite(ex) & representable[:, None]
    count = len(computed)
    if not computed.shape[1]:
        zeros = np.zeros(count, dtype=bool)
        return _Measured(np.full(count, np.nan), zeros, zeros, computed)
    with np.errstate(invalid="ignore"):
        norm = np.max(np.where(valid, np.abs(ex), 0.0), axis=1, keepdims=True)
    bits = np.where(valid, bits_lost(computed, ex, info, allow * info.unit_roundoff, norm), -1.0)
    point_valid = valid.any(axis=1)
    worst = np.where(point_valid, bits.max(axis=1), np.nan)
    nonfinite = (~np.isfinite(computed) & valid).any(axis=1)
    return _Measured(worst, nonfinite, point_valid, computed)


def _representable(columns: np.ndarray, info: DtypeInfo) -> np.ndarray:
    back = rounded(columns, info)
    return np.all((back == columns) & np.isfinite(back), axis=1)


def _exact_of(formula: Formula, exact: dict[int, np.ndarray]) -> np.ndarray:
    if not formula.outputs:
        return np.zeros((0, 0))
    return np.stack([exact[k] for k in formula.outputs], axis=-1)


# --- regions ---------------------------------------------------------------------------------

def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _kind(values: np.ndarray) -> str:
    inf, nan = bool(np.isinf(values).any()), bool(np.isnan(values).any())
    return "inf or nan" if inf and nan else "nan" if nan else "inf" if inf else "non-finite"


@dataclass
class _Segment:
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


def _segments(info: DtypeInfo, m: _Measured, pts: Points) -> list[_Segment]:
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
            seg = _Segment(sign, None if i == 0 else float(mags[i]), None if j == len(mags) - 1 else float(mags[j]),
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


def _merged(segments: list[_Segment]) -> list[_Segment]:
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


def _severity(seg: _Segment) -> tuple[float, ...]:
    """Where values stop being finite first, then where most bits are lost, then nearest 1."""
    return (seg.nonfinite_from is None and getattr(seg, "nonfinite_upto", None) is None, -round(seg.worst),
            abs(math.log(seg.low)) if seg.low else 0.0)


def _refine(ev: _Evaluator, found: list[tuple[int, DtypeInfo, list[_Segment]]], pts: Points,
            steps: int) -> None:
    """Every segment's edges (where the bits lost cross half, where values stop being finite),
    bisected between the sweep points around them along the rays that show them: all edges
    of all formulas and dtypes at once, one batch of points per step."""
    tasks: list[tuple[int, DtypeInfo, _Segment, str, Ray]] = []
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
        cols = np.stack([_grid(t[4].at(mid)[None, :], t[1])[0] for t, mid in zip(tasks, mids)])
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


def _describe(seg: _Segment, pts: Points, info: DtypeInfo) -> str:
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


def _region(segments: list[_Segment], pts: Points, info: DtypeInfo, m: _Measured) -> str:
    """Where: the segments of each sign (the first one only for a multi-variable sweep, whose
    later gaps are only directions cut off where float64 overflows)."""
    parts = list(dict.fromkeys(_describe(s, pts, info) for s in segments))
    bad = int(np.sum((pts.ray < 0) & m.valid & (np.nan_to_num(m.bits) > info.half)))
    if bad:
        parts.insert(0, f"at {bad} of {int(np.sum(pts.ray < 0))} in-domain samples")
    return "; ".join(parts)


# --- the analysis ----------------------------------------------------------------------------

def analyse(identity: Identity, *, dtypes: Sequence[str] = DEFAULT_DTYPES, seed: int = 0,
            samples: int = SAMPLES, rewrites: bool = True, quick: bool = False) -> Analysis:
    """The stability of `identity`'s formulas at its first sizes, in each of `dtypes`; `quick`
    sweeps every other magnitude (what `derive check` does: the edges are bisected all the same)."""
    infos = []
    for name in dtypes:
        if name not in DTYPES:
            raise DeriveError(f"unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
        infos.append(DTYPES[name])
    with _one_thread():
        return _analyse(identity, infos, seed=seed, samples=samples, rewrites=rewrites,
                        exponents=EXPONENTS[::2] if quick else EXPONENTS)


class _one_thread:
    """torch on one thread: these are many small operations, where a thread pool only costs."""

    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: Any) -> None:
        import torch

        torch.set_num_threads(self.before)


def _analyse(identity: Identity, infos: list[DtypeInfo], *, seed: int, samples: int, rewrites: bool,
             exponents: np.ndarray) -> Analysis:
    sizes = dict(identity.sizes[0])
    names = tuple(i.name for i in infos)
    w = written(identity, sizes)
    try:
        derivation = derive(w.graph)
    except Exception:  # a derivation that fails is derive check's to report; no gradient here
        derivation = None
    try:
        ev = _Evaluator(w, derivation)
        size = ev.size
    except UnsupportedError as exc:
        return Analysis(identity.name, sizes, names, "", [], [f"not analysed: {exc}"])
    if size > MAX_NODES:
        return Analysis(identity.name, sizes, names, "", [], [f"not analysed: {size} operations (more than {MAX_NODES})"])
    budget = max(48, int(WORK / max(size, 1)))
    exps = exponents
    full = len(exponents) * 2 * DIRECTIONS
    if budget < full:
        exps = exponents[:: int(math.ceil(full / budget))]
    pts = points_for(identity, w.graph, seed=seed, samples=min(samples, max(8, budget // 4)), exponents=exps)
    pts = _until_overflow(ev, pts)
    every = np.arange(len(pts.columns))
    wanted = [(i, info, every) for i in range(len(ev.formulas)) for info in infos]
    measured, exact = ev.measure(pts.columns, wanted)
    results = [FormulaResult(f, {}) for f in ev.formulas]
    found = []
    for i, r in enumerate(results):
        r.formula.text = ev.text(r.formula)
        for info in infos:
            m = measured[(i, info.name)]
            r.outcomes[info.name] = o = _summarise(info, m, pts)
            if o.flagged:
                found.append((i, info, _segments(info, m, pts)))
    _refine(ev, found, pts, BISECTIONS)
    _localise_all(ev, found, results, measured, pts, exact)
    for i, info, segments in found:
        results[i].outcomes[info.name].region = _region(segments, pts, info, measured[(i, info.name)])
    if rewrites:
        for i, r in enumerate(results):
            if any(o.flagged for o in r.outcomes.values()):
                _find_rewrite(ev, i, r, pts, exact, infos, results)
    return Analysis(identity.name, sizes, names, pts.label, results, [])


BISECTIONS = 11


def _until_overflow(ev: _Evaluator, pts: Points) -> Points:
    """The sweep along each ray up to the first magnitude where the forward, as written and in
    float64, stops being finite (the 40-digit values beyond it are of no use to any dtype)."""
    import torch

    forward = [k for f in ev.formulas if f.kind == "definition" for k in f.outputs]
    with torch.no_grad():
        vals = D.run(ev.dag, torch.as_tensor(pts.columns), forward, torch.float64)
    finite = np.ones(len(pts.columns), dtype=bool)
    for k in ev.dag.needed(forward):
        v = vals.get(k)
        if v is not None and not isinstance(v, bool):
            finite &= np.isfinite(_numpy(v, len(pts.columns)))
    keep = np.ones(len(pts.columns), dtype=bool)
    for r in range(len(pts.rays)):
        on = np.flatnonzero(pts.ray == r)
        order = on[np.argsort(pts.magnitude[on])]
        broken = order[~finite[order]]
        if len(broken):
            keep[order[pts.magnitude[order] > pts.magnitude[broken[0]]]] = False
    return Points(pts.columns[keep], pts.ray[keep], pts.magnitude[keep], pts.rays, pts.label, pts.scalar)


def _summarise(info: DtypeInfo, m: _Measured, pts: Points) -> Outcome:
    bits = m.bits[m.valid]
    mean = float(bits.mean()) if bits.size else 0.0
    worst = float(bits.max()) if bits.size else 0.0
    sweep = (pts.ray >= 0) & m.valid
    signs = np.array([pts.rays[r].sign if r >= 0 else 0 for r in pts.ray])
    curve = _curve((signs * np.nan_to_num(pts.magnitude))[sweep], m.bits[sweep])
    return Outcome(info.name, mean, worst, worst > info.half, curve=curve)


def _curve(s: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The worst over directions at each signed magnitude, sorted."""
    if not len(s):
        return np.zeros(0), np.zeros(0)
    keys = np.unique(s)
    return keys, np.array([bits[s == k].max() for k in keys])


# --- where: local error ----------------------------------------------------------------------

def _localise_all(ev: _Evaluator, found: list[tuple[int, DtypeInfo, list[_Segment]]], results: list[FormulaResult],
                  measured: dict[tuple[int, str], _Measured], pts: Points, exact: dict[int, np.ndarray]) -> None:
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
            got = _numpy(value, len(rows)) if not isinstance(value, bool) else np.full(len(rows), float(value))
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


def _origin(ev: _Evaluator, nodes: list[int], values: dict[int, Any], exact: dict[int, np.ndarray],
            sel: np.ndarray) -> int | None:
    """The first operation (in evaluation order) whose value in the dtype is inf or nan while
    its exact value is finite, at the most points."""
    first = np.full(len(sel), -1)
    for k in nodes:
        v = values.get(k)
        if v is None or isinstance(v, bool) or ev.dag.ops[k].kind == "cmp":
            continue
        got = _numpy(v, len(exact[k]))[sel]
        fresh = (first < 0) & ~np.isfinite(got) & np.isfinite(exact[k][sel])
        first[fresh] = k
    hits = [int(k) for k in first if k >= 0]
    return max(set(hits), key=lambda k: (hits.count(k), -k)) if hits else None


def _expanded(ev: _Evaluator, e: Any) -> sp.Expr:
    return sp.sympify(e).xreplace(ev.w.expanded)


def _show(ev: _Evaluator, node: int) -> str:
    return formula_text(_expanded(ev, ev.dag.ops[node].expr), ev.shapes, limit=120)


def _classify(ev: _Evaluator, k: int, exact: dict[int, np.ndarray], info: DtypeInfo) -> tuple[str, int]:
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


def _deepest(ev: _Evaluator, k: int, big: Any) -> int:
    while True:
        nxt = next((a for a in ev.dag.ops[k].args if ev.dag.ops[a].kind not in ("const", "true") and big(a)), None)
        if nxt is None:
            return k
        k = nxt


# --- a rewrite that does not lose the bits ----------------------------------------------------

@dataclass
class _Candidate:
    entries: np.ndarray  # in the variables, marked
    steps: list[list[Applied]]  # per entry
    ops: int


def _rules(stability: bool = True) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if r.stability == stability and available(r))


def _candidates(ev: _Evaluator, fr: FormulaResult) -> list[_Candidate]:
    """The rules applied where the bits are lost (each rule at each subexpression holding the
    responsible one), everywhere at once, and that form simplified (softplus(-x) =
    softplus(x) - x, products expanded: the seeds' BCE becomes softplus(z) - y z)."""
    original = ev.expanded(fr.formula)
    if any(sp.count_ops(e) > REWRITE_OPS for e in original.flat):
        fr.note = "too large to search for a rewrite"
        return []
    rules = _rules()
    found: dict[tuple[Any, ...], _Candidate] = {}

    def add(entries: np.ndarray, steps: list[list[Applied]]) -> None:
        key = tuple(entries.flat)
        if key == tuple(original.flat) or key in found:
            return
        found[key] = _Candidate(entries, steps, sum(sp.count_ops(e) for e in entries.flat))

    responsible = [r for o in fr.outcomes.values() for r in o.responsible]
    if original.size == 1:
        e = original.flat[0]
        for target in dict.fromkeys(responsible):
            for x in ancestors(e, target):
                for rule in rules:
                    hit = apply_at(rule, x)
                    if hit is not None:
                        add(np.array(e.xreplace({x: hit.replacement}), dtype=object), [[hit]])
    every = np.empty(original.shape, dtype=object)
    steps = []
    for idx, e in np.ndenumerate(original):
        every[idx], used = rewrite_everywhere(e, rules)
        steps.append(used)
    add(every, steps)
    reflect = _rules(stability=False)
    if reflect and any(e.has(Library) for e in every.flat):
        simpler = np.empty(original.shape, dtype=object)
        more = []
        for k, (idx, e) in enumerate(np.ndenumerate(every)):
            r, used = rewrite_everywhere(e, reflect)
            simpler[idx] = sp.expand(r, deep=True, log=False, power_exp=False, power_base=False, multinomial=False)
            more.append(steps[k] + used)
        add(simpler, more)
    return list(found.values())


def _find_rewrite(ev: _Evaluator, i: int, fr: FormulaResult, pts: Points, exact: dict[int, np.ndarray],
                  infos: list[DtypeInfo], done: list[FormulaResult]) -> None:
    """The proved candidate that loses fewest bits in the dtypes the formula fails in (the
    simplest of those within a bit of the best); each candidate must also agree with the
    original at 40 digits at the in-domain samples before it is proved."""
    flagged = [info for info in infos if fr.outcomes[info.name].flagged]
    if fr.formula.kind == "autograd":
        _autograd_rewrite(ev, fr, pts, exact, infos, done)
        return
    try:
        candidates = _candidates(ev, fr)
    except Exception as exc:  # SymPy on an unusual formula: no rewrite, and why
        fr.note = f"no rewrite searched: {type(exc).__name__}"
        return
    truth = _exact_of(fr.formula, exact)
    samples = np.flatnonzero(pts.ray < 0)
    allow = None
    scored = []
    for cand in candidates:
        try:
            dag = D.Dag(ev.inputs)
            outputs = [dag.add(e) for e in cand.entries.flat]
        except UnsupportedError:
            continue
        if not _agrees(dag, outputs, pts.columns[samples], truth[samples]):
            continue
        if allow is None:
            allow = _fd_allowance(ev.dag, fr.formula.outputs, pts.columns)
        both = np.maximum(allow, _fd_allowance(dag, outputs, pts.columns))
        worst, mean, curves = {}, {}, {}
        for info in infos:
            (computed,) = ev.computed([fr.formula], pts.columns, info, dag, [outputs])
            m = _measure(computed, truth, both, info, _representable(pts.columns, info))
            o = _summarise(info, m, pts)
            worst[info.name], mean[info.name], curves[info.name] = o.worst, o.mean, o.curve
        scored.append((max(worst[f.name] for f in flagged), cand, worst, mean, curves, dag, outputs))
    original = max(fr.outcomes[f.name].worst for f in flagged)
    scored = [s for s in scored if s[0] < original - 0.5]
    if not scored:
        return
    best = min(s[0] for s in scored)
    scored.sort(key=lambda s: (s[0] > best + 1.0, s[1].ops, s[0]))
    expanded = ev.expanded(fr.formula)
    for score, cand, worst, mean, curves, dag, outputs in scored:
        proofs = [prove_rewrite(e, r, st) for e, r, st in zip(expanded.flat, cand.entries.flat, cand.steps)]
        if all(p.proved for p in proofs):
            methods = tuple(dict.fromkeys(m for p in proofs for m in p.methods))
            fr.rewrite = Rewrite(formula_text(cand.entries, ev.shapes), True, methods, worst, mean, curves,
                                 cand.entries, dag, outputs)
            return


def _agrees(dag: D.Dag, outputs: list[int], cols: np.ndarray, truth: np.ndarray) -> bool:
    """The candidate's 40-digit values equal the original's at the in-domain samples: a check
    on the rules and the proof that costs a few milliseconds."""
    if not len(cols):
        return True
    exact = D.exact(dag, outputs, cols)
    got = np.stack([exact[k] for k in outputs], axis=-1)
    ok = np.isfinite(truth)
    with np.errstate(all="ignore"):
        close = np.abs(got - truth) <= 1e-12 * np.maximum(np.abs(truth), 1e-300)
    return bool(np.all(close[ok]))


def _autograd_rewrite(ev: _Evaluator, fr: FormulaResult, pts: Points, exact: dict[int, np.ndarray],
                      infos: list[DtypeInfo], done: list[FormulaResult]) -> None:
    """The gradient through the target's proved rewrite, if it has one."""
    target = next((r for r in done if r.formula.kind == "definition" and r.formula.label == ev.graph.target), None)
    if target is None or target.rewrite is None or target.rewrite.dag is None:
        return
    truth = _exact_of(fr.formula, exact)
    allow = _fd_allowance(ev.dag, fr.formula.outputs, pts.columns)
    worst, mean, curves = {}, {}, {}
    for info in infos:
        (computed,) = ev.computed([fr.formula], pts.columns, info, target.rewrite.dag, [target.rewrite.outputs])
        m = _measure(computed, truth, allow, info, _representable(pts.columns, info))
        o = _summarise(info, m, pts)
        worst[info.name], mean[info.name], curves[info.name] = o.worst, o.mean, o.curve
    if any(worst[i.name] < fr.outcomes[i.name].worst - 0.5 for i in infos if fr.outcomes[i.name].flagged):
        fr.rewrite = Rewrite(f"autograd of {target.rewrite.text}", True, target.rewrite.methods, worst, mean, curves)


__all__ = ["analyse", "Analysis", "FormulaResult", "Outcome", "Rewrite", "EXPONENTS", "SAMPLES"]
