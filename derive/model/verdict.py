"""Verdicts and reports as plain data, with JSON (de)serialisation."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

PROVED, CONSISTENT, INCONCLUSIVE, REFUTED = "proved", "consistent", "inconclusive", "refuted"
VERDICTS = (PROVED, CONSISTENT, INCONCLUSIVE, REFUTED)
_SEVERITY = {PROVED: 0, CONSISTENT: 1, INCONCLUSIVE: 2, REFUTED: 3}


def worst(verdicts: list[str]) -> str:
    """Combine verdicts over sizes: refuted > inconclusive > consistent > proved."""
    return max(verdicts, key=_SEVERITY.__getitem__) if verdicts else INCONCLUSIVE


@dataclass(frozen=True)
class Symbolic:
    """What the symbolic stage achieved."""

    status: str  # "proved", "not proved", "timeout", "error"
    seconds: float
    methods: tuple[str, ...] = ()
    kinks: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class Numeric:
    """Largest claim error on one backend (over claims and sizes)."""

    backend: str
    dtype: str
    samples: int
    max_abs_error: float
    max_rel_error: float
    rtol: float


def merge_numeric(per_size: "tuple[SizeResult, ...] | list[SizeResult]") -> tuple[Numeric, ...]:
    """One row per backend over all sizes: samples added, the largest errors and tolerance kept."""
    merged: dict[str, Numeric] = {}
    for r in per_size:
        for n in r.numeric:
            p = merged.get(n.backend)
            merged[n.backend] = n if p is None else Numeric(
                n.backend, n.dtype, p.samples + n.samples, max(p.max_abs_error, n.max_abs_error),
                max(p.max_rel_error, n.max_rel_error), max(p.rtol, n.rtol))
    return tuple(merged.values())


@dataclass(frozen=True)
class SizeResult:
    """The verdict at one set of explicit sizes."""

    sizes: dict[str, int]
    verdict: str
    symbolic: Symbolic
    numeric: tuple[Numeric, ...]
    reason: str = ""
    counterexample: dict[str, Any] | None = None
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class StableRewrite:
    """A rewrite of a formula, proved equal to it, and the bits it loses in the same dtype."""

    formula: str
    proved: bool
    bits_lost_worst: float


@dataclass(frozen=True)
class Stability:
    """A formula that loses more than half its dtype's bits somewhere in its domain
    (derive.numeric.stability): how many, where, why, and a proved rewrite that does not."""

    formula: str
    dtype: str
    bits_lost_mean: float
    bits_lost_worst: float
    region: str
    cause: str
    subexpression: str
    rewrite: StableRewrite | None = None


@dataclass(frozen=True)
class Result:
    """The verdict for one identity over all its sizes."""

    name: str
    verdict: str
    symbolic: Symbolic
    numeric: tuple[Numeric, ...]
    seconds: float
    sizes: tuple[SizeResult, ...] = ()
    reason: str = ""
    counterexample: dict[str, Any] | None = None
    family: str = ""
    symbolic_n: Symbolic = Symbolic("not applicable", 0.0)
    """The proof with every size a symbol: does the identity hold for all n, or only the sizes tried?"""
    fingerprint: str = ""
    """Digest of the identity and the options that judged it (empty when the check did not
    finish); `derive check --resume` skips an identity whose fingerprint is unchanged."""
    stability: tuple[Stability, ...] = ()
    """Each formula and dtype that loses more than half its bits somewhere (none: empty)."""

    @property
    def ok(self) -> bool:
        return self.verdict in (PROVED, CONSISTENT)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



@dataclass(frozen=True)
class Report:
    """A run: its seed and one result per identity."""

    seed: int
    results: tuple[Result, ...] = field(default_factory=tuple)
    complete: bool = True
    """False while a run is still writing its results file, or after it was interrupted."""

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "complete": self.complete, "results": [r.to_dict() for r in self.results]}

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON: non-finite numbers are written as the strings "inf", "-inf", "nan"."""
        return json.dumps(_finite(self.to_dict()), indent=indent, allow_nan=False, default=str)

    @property
    def exit_code(self) -> int:
        """0 all proved/consistent, 1 any refuted, 3 otherwise inconclusive."""
        verdicts = {r.verdict for r in self.results}
        if REFUTED in verdicts:
            return 1
        if INCONCLUSIVE in verdicts:
            return 3
        return 0


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _symbolic(d: dict[str, Any]) -> Symbolic:
    return Symbolic(d["status"], d["seconds"], tuple(d.get("methods", ())),
                    tuple(d.get("kinks", ())), d.get("detail", ""))


def _numeric(items: list[dict[str, Any]]) -> tuple[Numeric, ...]:
    return tuple(Numeric(**n) for n in items)


def _stability(items: Any) -> tuple[Stability, ...]:
    out = []
    for s in items:
        rw = s.get("rewrite")
        out.append(Stability(s["formula"], s["dtype"], float(s["bits_lost_mean"]), float(s["bits_lost_worst"]),
                             s.get("region", ""), s.get("cause", ""), s.get("subexpression", ""),
                             StableRewrite(rw["formula"], bool(rw["proved"]), float(rw["bits_lost_worst"]))
                             if rw else None))
    return tuple(out)


def report_from_json(text: str) -> Report:
    """Inverse of `Report.to_json`."""
    data = json.loads(text)
    results = []
    for r in data["results"]:
        sizes = tuple(SizeResult(s["sizes"], s["verdict"], _symbolic(s["symbolic"]),
                                 _numeric(s["numeric"]), s.get("reason", ""), s.get("counterexample"),
                                 tuple(s.get("sources", ())), tuple(s.get("notes", ())), s["seconds"])
                      for s in r.get("sizes", ()))
        results.append(Result(r["name"], r["verdict"], _symbolic(r["symbolic"]), _numeric(r["numeric"]),
                              r["seconds"], sizes, r.get("reason", ""), r.get("counterexample"),
                              r.get("family", ""),
                              _symbolic(r.get("symbolic_n", {"status": "not applicable", "seconds": 0.0})),
                              r.get("fingerprint", ""), _stability(r.get("stability", ()))))
    return Report(data["seed"], tuple(results), bool(data.get("complete", True)))
