"""The formulas evaluated, and the bits they lose: each formula of an identity on one shared graph
of operations, computed in a dtype (autograd for gradients) and at 40 digits, compared by
`measure.bits_lost` with the inputs' rounding allowed for (central differences in float64), and
summarised per dtype (mean, worst, the curve along the sweep)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...symbolic.marks import formula_text
from ...symbolic.written import Written
from . import dag as D
from .measure import DTYPES, DtypeInfo, bits_lost, rounded
from .result import Formula, Outcome
from .sweep import Points


@dataclass
class Measured:
    bits: np.ndarray  # (points,) the worst entry; nan where no entry can be judged
    nonfinite: np.ndarray  # (points,) the computed value is inf or nan somewhere
    valid: np.ndarray
    computed: np.ndarray  # (points, entries)


class Evaluator:
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
                result.append(np.stack([as_numpy(vals[k], len(x)) for k in o], axis=-1))
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
                exact: dict[int, np.ndarray] | None = None) -> tuple[dict[tuple[int, str], Measured], dict[int, np.ndarray]]:
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
            rep = representable(columns[rows], info)
            got = self.computed([self.formulas[i] for i, _, _ in items], columns[rows], info)
            pos = {r: j for j, r in enumerate(rows)}
            for (i, _, r), c in zip(items, got):
                sel = np.array([pos[x] for x in r], dtype=int)
                truth = exact_of(self.formulas[i], exact)[r]
                first[(i, info.name)] = (c[sel], truth, rep[sel], r)
                zero = np.zeros_like(truth)
                ex = rounded(truth, info)
                with np.errstate(invalid="ignore"):
                    norm = np.max(np.where(np.isfinite(ex), np.abs(ex), 0.0), axis=1, keepdims=True)
                plain = bits_lost(c[sel], ex, info, zero, norm)
                need[r[np.nanmax(np.where(np.isfinite(plain), plain, 0.0), axis=1, initial=0.0) > 0.5]] = True
        allow = np.zeros((len(columns), len(outs)))
        if need.any():
            allow[need] = fd_allowance(self.dag, outs, columns[need])
        col = {k: j for j, k in enumerate(outs)}
        result = {}
        for (i, name), (c, truth, rep, r) in first.items():
            a = allow[np.ix_(r, [col[k] for k in self.formulas[i].outputs])]
            result[(i, name)] = measure_bits(c, truth, a, DTYPES[name], rep)
        return result, exact


def as_numpy(value: Any, count: int) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        return np.broadcast_to(value.detach().to(torch.float64).numpy(), (count,))
    return np.full(count, float(value))


def fd_allowance(dag: D.Dag, outputs: list[int], cols: np.ndarray) -> np.ndarray:
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
            f = np.stack([as_numpy(vals[k], len(stacked)) for k in outputs], axis=-1)
            half = len(ids) * count
            d = np.abs((f[:half] - f[half:]) / (2 * h)).reshape(len(ids), count, len(outputs))
        total += np.where(np.isfinite(d), d, 0.0).sum(axis=0)
    return total


def measure_bits(computed: np.ndarray, exact: np.ndarray, allow: np.ndarray, info: DtypeInfo,
                 representable: np.ndarray) -> Measured:
    ex = rounded(exact, info)
    valid = np.isfinite(exact) & np.isfinite(ex) & representable[:, None]
    count = len(computed)
    if not computed.shape[1]:
        zeros = np.zeros(count, dtype=bool)
        return Measured(np.full(count, np.nan), zeros, zeros, computed)
    with np.errstate(invalid="ignore"):
        norm = np.max(np.where(valid, np.abs(ex), 0.0), axis=1, keepdims=True)
    bits = np.where(valid, bits_lost(computed, ex, info, allow * info.unit_roundoff, norm), -1.0)
    point_valid = valid.any(axis=1)
    worst = np.where(point_valid, bits.max(axis=1), np.nan)
    nonfinite = (~np.isfinite(computed) & valid).any(axis=1)
    return Measured(worst, nonfinite, point_valid, computed)


def representable(columns: np.ndarray, info: DtypeInfo) -> np.ndarray:
    back = rounded(columns, info)
    return np.all((back == columns) & np.isfinite(back), axis=1)


def exact_of(formula: Formula, exact: dict[int, np.ndarray]) -> np.ndarray:
    if not formula.outputs:
        return np.zeros((0, 0))
    return np.stack([exact[k] for k in formula.outputs], axis=-1)


def summarise(info: DtypeInfo, m: Measured, pts: Points) -> Outcome:
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


__all__ = ["Measured", "Evaluator", "as_numpy", "fd_allowance", "measure_bits", "representable", "exact_of",
           "summarise"]
