"""What the stability analysis finds, as data: each formula analysed, its outcome in each dtype
(bits lost, where, why), the rewrite proved equal that loses fewer, and the analysis of one
identity with its plain-data summary and its `Stability` entries for a verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ...model.verdict import Stability, StableRewrite


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


__all__ = ["Formula", "Outcome", "Rewrite", "FormulaResult", "Analysis"]
