"""Orchestration: Identity -> Verdict. Symbolic work runs bounded while numerics proceed."""

from __future__ import annotations

import time
import zlib
from functools import partial
from typing import Callable, Iterable, Iterator

import numpy as np

from . import backends, catalog, symbolic_n
from .bounded import Bounded, run_bounded
from .errors import SpecError
from .numeric import TOLERANCES, NumericOutcome, run_numeric
from .proof import Proof, prove_claim
from .spec import Identity
from .symbolic import Derivation, Graph, build, derive
from .verdict import (CONSISTENT, INCONCLUSIVE, PROVED, REFUTED, Numeric, Report, Result,
                      SizeResult, Symbolic, merge_numeric, worst)

DEFAULT_SAMPLES = 64
DEFAULT_TIMEOUT = 60.0
BACKEND_CHOICES = ("numpy", "torch", "all")


def _backends(backend: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(backend, str):
        if backend not in BACKEND_CHOICES:
            raise SpecError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
        return ("numpy", "torch") if backend == "all" else (backend,)
    chosen = tuple(backend)
    for b in chosen:
        backends.get(b)
    return chosen


def rng_for(seed: int, name: str, size_index: int) -> np.random.Generator:
    """The random stream of one identity at one size: reproducible whatever else runs."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), size_index])


def _symbolic_work(graph: Graph) -> Callable[[], Iterator[object]]:
    def work() -> Iterator[object]:
        derivation = derive(graph)
        yield derivation
        for claim in graph.claims:
            yield prove_claim(claim.expr - derivation.derived[claim.index], graph)
    return work


def _check_size(identity: Identity, sizes: dict[str, int], index: int, *, names: tuple[str, ...],
                samples: int, seed: int, timeout: float, device: str) -> SizeResult:
    start = time.perf_counter()
    graph = build(identity, sizes)
    stream = run_bounded(_symbolic_work(graph), timeout=timeout)
    first = next(stream, None)
    derivation: Derivation | None = None
    sym_status, sym_detail = "error", "the symbolic worker produced nothing"
    if first is not None and first.kind == "item":
        derivation = first.value
    elif first is not None:
        sym_status = "timeout" if first.kind == "timeout" else "error"
        sym_detail = (f"derivation did not finish within {timeout:g} s" if first.kind == "timeout"
                      else f"derivation failed: {first.value}")
    numeric = run_numeric(identity, graph, derivation, backend_names=names, samples=samples,
                          rng=rng_for(seed, identity.name, index), seed=seed, device=device)
    if numeric.counterexample:
        if catalog.CATALOG.get(identity.name) is identity:
            rerun = f"derive check {identity.name} --seed {seed}"
        elif identity.origin:
            rerun = f"derive check {identity.origin} --seed {seed}"
        else:
            rerun = f"derive.check(<{identity.name}>, seed={seed})"
        numeric.counterexample["rerun"] = rerun
    proofs: list[Proof] = []
    if derivation is not None:
        for msg in stream:
            if msg.kind != "item":
                sym_status = "timeout" if msg.kind == "timeout" else "error"
                sym_detail = (f"proof did not finish within {timeout:g} s" if msg.kind == "timeout"
                              else f"proof failed: {msg.value}")
                break
            proofs.append(msg.value)
        else:
            sym_status = "proved" if all(p.proved for p in proofs) and proofs else "not proved"
            sym_detail = "; ".join(p.detail for p in proofs if not p.proved)
    sym_seconds = time.perf_counter() - start
    methods = tuple(dict.fromkeys(m for p in proofs for m in p.methods))
    kinks = tuple(dict.fromkeys(k for p in proofs for k in p.kinks))
    symbolic = Symbolic(sym_status, round(sym_seconds, 4), methods, kinks, sym_detail)
    verdict, reason = _judge(symbolic, numeric)
    notes = list(numeric.notes)
    if kinks and verdict == PROVED:
        notes.append(f"proved away from the kinks {', '.join(kinks)} (not differentiable there)")
    return SizeResult(dict(sizes), verdict, symbolic, _numeric_summary(numeric, samples), reason,
                      numeric.counterexample, tuple(numeric.sources), tuple(notes),
                      round(time.perf_counter() - start, 4))


def _judge(symbolic: Symbolic, numeric: NumericOutcome) -> tuple[str, str]:
    if numeric.status in ("disagree", "nonfinite"):
        return INCONCLUSIVE, numeric.reason
    if numeric.status == "refuted":
        cx = numeric.counterexample or {}
        if symbolic.status == "proved" and cx.get("kind") == "claim":
            return INCONCLUSIVE, ("the symbolic proof and the numeric check disagree; "
                                  "one of the truth sources is wrong")
        where = ", ".join([cx.get("backend", "?"), "float64",
                           *(f"{k}={n}" for k, n in cx.get("sizes", {}).items())])
        return REFUTED, (f"{cx.get('claim')} [{where}]: max|claim - truth| = "
                         f"{cx.get('abs_error', 0):.3g} at entry {tuple(cx.get('entry', ()))} "
                         f"> tol {cx.get('tolerance', 0):.3g}; seed={cx.get('seed')}")
    if symbolic.status == "proved":
        return PROVED, ""
    return CONSISTENT, f"no proof ({symbolic.status}{': ' + symbolic.detail if symbolic.detail else ''})"


def _numeric_summary(numeric: NumericOutcome, samples: int) -> tuple[Numeric, ...]:
    out: dict[str, Numeric] = {}
    rtol = TOLERANCES["float64"].exact
    for err in numeric.errors:
        cmp = err.comparison
        prev = out.get(err.backend)
        abs_e = max(cmp.max_abs, prev.max_abs_error if prev else 0.0)
        rel_e = max(cmp.max_rel, prev.max_rel_error if prev else 0.0)
        out[err.backend] = Numeric(err.backend, "float64", samples, abs_e, rel_e, rtol)
    return tuple(out.values())


def check(identity: Identity, *, backend: str | Iterable[str] = "all", samples: int = DEFAULT_SAMPLES,
          seed: int = 0, timeout: float = DEFAULT_TIMEOUT, device: str = "cpu") -> Result:
    """Check one identity at every declared size and return its verdict (raises nothing for
    a wrong claim; raises SpecError for a malformed identity or option)."""
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise SpecError(f"samples must be a positive integer, got {samples!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, got {seed!r}")
    if not timeout > 0:
        raise SpecError(f"timeout must be a positive number of seconds, got {timeout!r}")
    names = _backends(backend)
    start = time.perf_counter()
    # the proof for every size runs in its own worker, alongside the explicit sizes
    for_all_n = (Bounded(partial(symbolic_n.work, identity), timeout=timeout)
                 if symbolic_n.size_names(identity) else None)
    try:
        per_size = tuple(_check_size(identity, dict(s), i, names=names, samples=samples, seed=seed,
                                     timeout=timeout, device=device)
                         for i, s in enumerate(identity.sizes))
    except BaseException:
        if for_all_n is not None:
            for_all_n.stop()
        raise
    verdict = worst([r.verdict for r in per_size])
    decisive = next((r for r in per_size if r.verdict == verdict), per_size[0])
    statuses = {r.symbolic.status for r in per_size}
    status = "proved" if statuses == {"proved"} else decisive.symbolic.status
    symbolic = Symbolic(status, round(sum(r.symbolic.seconds for r in per_size), 4),
                        tuple(dict.fromkeys(m for r in per_size for m in r.symbolic.methods)),
                        tuple(dict.fromkeys(k for r in per_size for k in r.symbolic.kinks)),
                        decisive.symbolic.detail)
    every_n = _collect_for_all_n(for_all_n, proved_here=status == "proved", timeout=timeout)
    return Result(identity.name, verdict, symbolic, merge_numeric(per_size),
                  round(time.perf_counter() - start, 4), per_size, decisive.reason,
                  decisive.counterexample, identity.family, every_n)


def _collect_for_all_n(worker: Bounded | None, *, proved_here: bool, timeout: float) -> Symbolic:
    """The outcome of the proof for symbolic sizes (skipped when the explicit sizes failed:
    a proof for every n would prove them too)."""
    if worker is None:
        return Symbolic("not applicable", 0.0, detail="no sizes: nothing to prove for every n")
    if not proved_here:
        worker.stop()
        return Symbolic("skipped", 0.0, detail="not proved at the explicit sizes")
    for msg in worker:
        if msg.kind == "item":
            out: symbolic_n.ForAllN = msg.value
            return Symbolic(out.status, round(out.seconds, 4), out.methods, (), out.detail)
        if msg.kind == "timeout":
            return Symbolic("timeout", round(msg.seconds, 4), detail=f"not finished within {timeout:g} s")
        return Symbolic("error", round(msg.seconds, 4), detail=str(msg.value))
    return Symbolic("error", 0.0, detail="the worker produced nothing")


def check_all(identities: Iterable[Identity], *, progress: Callable[[int, int, str, Result | None], None]
              | None = None, seed: int = 0, **options: object) -> Report:
    """Check many identities in order; `progress(i, total, name, result)` is called around each."""
    items = list(identities)
    results = []
    for i, identity in enumerate(items):
        if progress:
            progress(i, len(items), identity.name, None)
        result = check(identity, seed=seed, **options)  # type: ignore[arg-type]
        results.append(result)
        if progress:
            progress(i + 1, len(items), identity.name, result)
    return Report(seed, tuple(results))


__all__ = ["check", "check_all", "rng_for", "REFUTED", "PROVED", "CONSISTENT", "INCONCLUSIVE"]
