"""Orchestration: Identity -> Verdict. Symbolic work runs bounded while numerics proceed."""

from __future__ import annotations

import contextlib

import math
import os
import random
import sys
import time
import zlib
from dataclasses import replace
from functools import partial
from typing import Callable, Iterable, Iterator

import numpy as np

from ..numeric import backends
from .. import catalog
from ..symbolic.every_n_proof import ForAllN, work as work_for_all_n
from ..symbolic.indexed_graph import size_names
from ..bounded import Bounded, Message, run_bounded, stage
from ..errors import DeriveError, SpecError
from .fingerprint import fingerprint
from ..numeric.tolerance import TOLERANCES
from ..numeric.compiled import Compiled, compile_graph
from ..numeric.judge import Inaccuracy, NumericOutcome, run_numeric
from ..numeric.truths import HP_DIGITS
from ..numeric.stability.measure import parse_dtypes
from .pool import run_tasks
from ..symbolic.proof import Proof, prove_claim
from ..model.spec import Identity
from ..symbolic.graph import Derivation, Graph, build, derive
from ..model.verdict import (CONSISTENT, INCONCLUSIVE, PROVED, REFUTED, Numeric, Report, Result,
    SizeResult, Symbolic, merge_numeric, worst, Stability)

DEFAULT_SAMPLES = 64
STABILITY_DTYPES = ("float32",)
"""Where `check` measures each formula's bits lost by default (derive stability: all three)."""
STABILITY_SAMPLES = 16
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
    """The derivation, the formulas compiled for the numeric check, then each claim's proof."""
    def work() -> Iterator[object]:
        random.seed(0)  # SymPy's own randomised steps, reproducible (this is a forked worker)
        stage("derivation")
        derivation = derive(graph)
        yield derivation
        stage("compiling the formulas")
        yield compile_graph(graph, derivation)
        for claim in graph.claims:
            yield prove_claim(claim.expr - derivation.derived[claim.index], graph)
    return work


EVERY_N_SHARE = 0.15
EVERY_N_MIN_SECONDS = 3.0


def every_n_budget(timeout: float) -> float:
    """Seconds the proof for every size n gets: a share of `timeout` (9 s of the default 60),
    at least a few seconds (never more than `timeout`). Every proof for every n in the catalog
    takes under 1 s; one that runs longer is rarely about to succeed, and the verdict, which
    the explicit sizes settle, does not wait for it."""
    return min(timeout, max(EVERY_N_SHARE * timeout, EVERY_N_MIN_SECONDS))


COMPILE_SECONDS = 30.0
"""The least time compiling gets when it must run on its own (after the symbolic stage
stopped): it is usually milliseconds, and the numeric check cannot run without it."""


def _compile_work(graph: Graph, derivation: Derivation | None) -> Callable[[], Iterator[object]]:
    def work() -> Iterator[object]:
        stage("compiling the formulas")
        yield compile_graph(graph, derivation)
    return work


def _compile_alone(graph: Graph, derivation: Derivation | None, timeout: float) -> tuple[Compiled | None, str]:
    """The formulas compiled in a bounded worker of their own; or None and why."""
    budget = max(timeout, COMPILE_SECONDS)
    msg = next(run_bounded(_compile_work(graph, derivation), timeout=budget), None)
    if msg is not None and msg.kind == "item":
        return msg.value, ""
    if msg is not None and msg.kind == "timeout":
        return None, f"timeout in compiling the formulas: not finished within {budget:g} s"
    return None, f"compiling the formulas failed: {msg.value if msg is not None else 'no output'}"


def _check_size(identity: Identity, sizes: dict[str, int], index: int, *, names: tuple[str, ...],
                samples: int, seed: int, timeout: float, device: str) -> SizeResult:
    start = time.perf_counter()
    stage(f"building the graph{_at(sizes)}")
    graph = build(identity, sizes)
    stream = run_bounded(_symbolic_work(graph), timeout=timeout)
    first = next(stream, None)
    derivation: Derivation | None = None
    sym_status, sym_detail = "error", "the symbolic worker produced nothing"
    if first is not None and first.kind == "item":
        derivation = first.value
    elif first is not None:
        sym_status = "timeout" if first.kind == "timeout" else "error"
        sym_detail = (f"timeout in {first.stage or 'derivation'}: not finished within {timeout:g} s"
                      if first.kind == "timeout" else f"derivation failed: {first.value}")
    compiled: Compiled | None = None
    stopped: Message | None = None  # the symbolic worker stopped before its proofs
    if derivation is not None:
        msg = next(stream, None)
        if msg is not None and msg.kind == "item":
            compiled = msg.value
        else:
            stopped = msg or Message("error", "it ended before compiling the formulas")
    why = ""
    if compiled is None:
        compiled, why = _compile_alone(graph, derivation, timeout)
    if compiled is None:  # nothing can be evaluated: no truth, no verdict
        symbolic = Symbolic("timeout" if "timeout" in why else "error", round(time.perf_counter() - start, 4),
                            detail=why)
        return SizeResult(dict(sizes), INCONCLUSIVE, symbolic, (), why, None, (), (),
                          round(time.perf_counter() - start, 4))
    stage(f"the numeric check{_at(sizes)}")
    numeric = run_numeric(identity, graph, derivation, backend_names=names, samples=samples,
                          rng=rng_for(seed, identity.name, index), seed=seed, device=device,
                          compiled=compiled)
    if numeric.counterexample:
        if catalog.CATALOG.get(identity.name) is identity:
            rerun = f"derive check {identity.name} --seed {seed}"
        elif identity.origin:
            rerun = f"derive check {identity.origin} --seed {seed}"
        else:
            rerun = f"derive.check(<{identity.name}>, seed={seed})"
        numeric.counterexample["rerun"] = rerun
    proofs: list[Proof] = []
    if stopped is not None:
        sym_status = "timeout" if stopped.kind == "timeout" else "error"
        sym_detail = (f"timeout in {stopped.stage or 'compiling the formulas'}: not finished within {timeout:g} s"
                      if stopped.kind == "timeout" else f"the symbolic worker failed: {stopped.value}")
    elif derivation is not None:
        for msg in stream:
            if msg.kind != "item":
                sym_status = "timeout" if msg.kind == "timeout" else "error"
                sym_detail = (f"timeout in {msg.stage or 'proof'}: not finished within {timeout:g} s"
                              if msg.kind == "timeout" else f"proof failed: {msg.value}")
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
    if identity.notes is not None:  # e.g. the critical points an identity computes and classifies
        notes.extend(identity.notes(dict(sizes)))
    if kinks and verdict == PROVED:
        notes.append(f"proved away from the kinks {', '.join(kinks)} (not differentiable there)")
    if numeric.inaccurate and verdict == PROVED:
        notes.extend(_inaccuracy_notes(numeric.inaccurate))
    return SizeResult(dict(sizes), verdict, symbolic, _numeric_summary(numeric, samples), reason,
                      numeric.counterexample, tuple(numeric.sources), tuple(notes),
                      round(time.perf_counter() - start, 4))


def _at(sizes: dict[str, int]) -> str:
    return f" at {', '.join(f'{k}={n}' for k, n in sizes.items())}" if sizes else ""


def _judge(symbolic: Symbolic, numeric: NumericOutcome) -> tuple[str, str]:
    if numeric.status in ("disagree", "nonfinite"):
        return INCONCLUSIVE, numeric.reason
    if numeric.status == "inaccurate":
        # the truths agreed, and where float64 missed them the claim agrees at 40 digits: with a
        # proof that is a proof (the inaccuracy becomes a note); without one it stays undecided
        if symbolic.status == "proved":
            return PROVED, ""
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
    if symbolic.status == "timeout":  # a time bound stopped the proof: undecided, not "no proof"
        return INCONCLUSIVE, (f"{symbolic.detail} (symbolic stage stopped); the numeric check found no "
                              "counterexample")
    return CONSISTENT, f"no proof ({symbolic.status}{': ' + symbolic.detail if symbolic.detail else ''})"


def _inaccuracy_notes(found: list[Inaccuracy]) -> list[str]:
    """One note per claim: where its float64 evaluation lost digits, how much, on which backends."""
    by_claim: dict[str, list[Inaccuracy]] = {}
    for f in found:
        by_claim.setdefault(f.claim, []).append(f)
    notes = []
    for claim, fs in by_claim.items():
        worst_f = max(fs, key=lambda f: f.max_rel / f.rel_tol if f.rel_tol > 0 and math.isfinite(f.max_rel)
                      else math.inf)
        counts: dict[str, list[int]] = {}
        for f in fs:
            c = counts.setdefault(f.backend, [0, 0])
            c[0] += f.failing
            c[1] += f.samples
        by_count: dict[tuple[int, int], list[str]] = {}
        for b, (bad, total) in counts.items():
            by_count.setdefault((bad, total), []).append(b)
        where = "; ".join(f"{bad} of {total} samples ({', '.join(bs)})" for (bad, total), bs in by_count.items())
        size = (f"up to {worst_f.max_rel:.2g} relative error where the tolerance is {worst_f.rel_tol:.2g}"
                if math.isfinite(worst_f.max_rel) else "values that are not finite (an overflow, inf/inf)")
        partly = sum(f.checked for f in fs) < sum(f.failing for f in fs)
        inputs = ", ".join(f"{k}={_short(v)}" for k, v in worst_f.inputs.items())
        notes.append(
            f"float64 inaccuracy: {claim} loses digits when evaluated in float64 at {where}: {size}; "
            f"{'at the worst of them' if partly else 'there'} the same formula evaluated at {HP_DIGITS} "
            f"digits agrees with the truth (the formula is right, float64 cannot evaluate it as "
            f"written). Worst at entry {tuple(worst_f.entry)} ({worst_f.backend}) at {inputs}")
    return notes


def _short(value: object) -> str:
    """A sample's value, 4 significant digits per number (a note, not a rerun: the seed reruns)."""
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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
          seed: int = 0, timeout: float = DEFAULT_TIMEOUT, device: str = "cpu",
          stability: str | Iterable[str] | None = STABILITY_DTYPES) -> Result:
    """Check one identity at every declared size and return its verdict (raises nothing for
    a wrong claim; raises SpecError for a malformed identity or option). `stability`: the
    dtypes in which each formula's bits lost are measured (`Result.stability`; None: not)."""
    dtypes = parse_dtypes(stability)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise SpecError(f"samples must be a positive integer, got {samples!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, got {seed!r}")
    if not timeout > 0:
        raise SpecError(f"timeout must be a positive number of seconds, got {timeout!r}")
    names = _backends(backend)
    start = time.perf_counter()
    # the proof for every size runs in its own worker, alongside the explicit sizes, with a
    # budget of its own: a slow one ends as "timeout" without holding back the verdict
    for_all_n = (Bounded(partial(work_for_all_n, identity), timeout=every_n_budget(timeout))
                 if size_names(identity) else None)
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
    every_n = _collect_for_all_n(for_all_n, proved_here=status == "proved", timeout=every_n_budget(timeout))
    stable = _stability(identity, dtypes, seed=seed, timeout=timeout)
    return Result(identity.name, verdict, symbolic, merge_numeric(per_size),
                  round(time.perf_counter() - start, 4), per_size, decisive.reason,
                  decisive.counterexample, identity.family, every_n, stability=stable)


def _stability(identity: Identity, dtypes: tuple[str, ...], *, seed: int, timeout: float) -> tuple[Stability, ...]:
    """The formulas that lose more than half their dtype's bits (derive.numeric.stability),
    measured in a bounded worker: () when none do, when not asked, or when it did not finish."""
    if not dtypes:
        return ()
    from ..numeric.stability import analyse
    from ..symbolic.rewrites import warm

    warm()  # the rules proved here, once: the bounded worker forked below inherits them
    work = lambda: iter([analyse(identity, dtypes=dtypes, seed=seed, samples=STABILITY_SAMPLES,
                                        quick=True).entries()])  # noqa: E731
    for msg in run_bounded(work, timeout=timeout):
        if msg.kind == "item":
            return msg.value
    return ()


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
            out: ForAllN = msg.value
            return Symbolic(out.status, round(out.seconds, 4), out.methods, (), out.detail)
        if msg.kind == "timeout":
            return Symbolic("timeout", round(msg.seconds, 4),
                            detail=f"timeout in {msg.stage or 'the proof for every n'}: "
                                   f"not finished within {timeout:g} s")
        return Symbolic("error", round(msg.seconds, 4), detail=str(msg.value))
    return Symbolic("error", 0.0, detail="the worker produced nothing")


def _failed(identity: Identity, kind: str, detail: str, seconds: float, where: str = "") -> Result:
    """The result of a check that did not finish: inconclusive, with what stopped it."""
    reason = {"timeout": f"timeout in {where or 'the check'}: the identity did not finish within "
                         f"{detail} s (stopped, the run went on)",
              "crash": f"the check crashed ({detail}); the run went on without it",
              "error": f"internal error in the check: {detail} (please report it)"}[kind]
    status = "timeout" if kind == "timeout" else "error"
    return Result(identity.name, INCONCLUSIVE, Symbolic(status, round(seconds, 4), detail=reason), (),
                  round(seconds, 4), reason=reason, family=identity.family)


def wall_limit(identity: Identity, timeout: float) -> float:
    """Wall time allowed for a whole identity: its symbolic stages plus room for the numerics."""
    return timeout * (len(identity.sizes) + 1) + 30.0


def check_all(identities: Iterable[Identity], *, progress: Callable[[int, int, str, Result | None], None]
              | None = None, seed: int = 0, jobs: int | None = None,
              on_result: Callable[[Report], None] | None = None,
              previous: Report | None = None, **options: object) -> Report:
    """Check many identities; results come back in the order given, whatever finished first.

    `jobs` worker processes (default: the CPU count) check identities in parallel, each
    isolated: a crash, a hang past `wall_limit` or exhausted memory makes that identity
    inconclusive and the run goes on. `jobs=0` checks in this process, one after another.
    `progress(done, total, name, result)` is called as each finishes; `on_result(report)`
    receives the partial report (complete=False) after each. Results in `previous` whose
    fingerprint matches are reused, not rechecked (`--resume`). Ctrl-C stops the workers and
    returns what finished, with complete=False.
    """
    items = list(identities)
    total = len(items)
    timeout = float(options.get("timeout", DEFAULT_TIMEOUT))  # type: ignore[arg-type]
    prints = [fingerprint(i, seed=seed, **options) for i in items]
    done: dict[int, Result] = {}
    if previous is not None:
        old = {r.name: r for r in previous.results if r.fingerprint}
        for k, identity in enumerate(items):
            r = old.get(identity.name)
            if r is not None and r.fingerprint == prints[k]:
                done[k] = r
    todo = [k for k in range(total) if k not in done]

    def partial(complete: bool) -> Report:
        return Report(seed, tuple(done[k] for k in sorted(done)), complete)

    def finished(k: int, result: Result) -> None:
        done[k] = result
        if progress:
            progress(len(done), total, items[k].name, result)
        if on_result:
            on_result(partial(len(done) == total))

    if progress and todo:
        progress(len(done), total, items[todo[0]].name, None)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 0:
        raise SpecError(f"jobs must be 0 (in this process) or a positive number of workers, got {jobs}")
    try:
        if jobs == 0:
            for k in todo:
                result = check(items[k], seed=seed, **options)  # type: ignore[arg-type]
                finished(k, replace(result, fingerprint=prints[k]))
        else:
            _preload()  # imported once here, not once per worker
            todo.sort(key=lambda k: -_cost(items[k]))  # the slowest first: no straggler at the end

            def work(j: int) -> Result:
                _one_thread()
                k = todo[j]
                return replace(check(items[k], seed=seed, **options),  # type: ignore[arg-type]
                               fingerprint=prints[k])

            # closed on any exit: Ctrl-C while a result is being handled (the pool suspended at
            # its yield) kills the workers now, not when the generator is collected at exit
            with contextlib.closing(run_tasks(len(todo), work, jobs=jobs,
                                              limit=lambda j: wall_limit(items[todo[j]], timeout))) as tasks:
                for out in tasks:
                    k = todo[out.index]
                    if out.kind == "ok":
                        finished(k, out.value)
                    elif out.kind == "error" and isinstance(out.value, DeriveError):
                        raise out.value
                    elif out.kind == "error":
                        finished(k, _failed(items[k], "error", f"{type(out.value).__name__}: {out.value}",
                                            out.seconds))
                    elif out.kind == "crash":
                        where = f" in {out.stage}" if out.stage else ""
                        finished(k, _failed(items[k], "crash", f"worker exit code {out.value}{where}", out.seconds))
                    else:
                        finished(k, _failed(items[k], "timeout", f"{out.value:g}", out.seconds, out.stage))
    except KeyboardInterrupt:
        report = partial(False)
        if on_result:
            on_result(report)
        raise Interrupted(report) from None
    return partial(True)


def _preload() -> None:
    """Import what every check needs before forking workers, so each does not import it again."""
    import importlib

    if backends.available("torch"):
        importlib.import_module("torch.func")
        importlib.import_module("torch.nn.functional")
        import torch

        torch.func.vmap(torch.sin)(torch.zeros(1, dtype=torch.float64))  # functorch's lazy set-up
    backends.available("mpmath")
    for name in ("sympy.solvers", "sympy.simplify", "sympy.polys", "sympy.concrete", "sympy.tensor"):
        importlib.import_module(name)


def _cost(identity: Identity) -> int:
    """A rough guess of how long an identity takes (its forward graph's size), to schedule it."""
    sized = sum(1 for v in identity.variables for a in v.shape if isinstance(a, str))
    return (len(identity.definitions) + len(identity.claims)) * (1 + sized) * len(identity.sizes)


def _one_thread() -> None:
    """In a worker: torch uses one thread (the workers are the parallelism)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during check_all; `.report` holds what finished (complete=False)."""

    def __init__(self, report: Report) -> None:
        super().__init__("interrupted")
        self.report = report


__all__ = ["check", "check_all", "rng_for", "fingerprint", "wall_limit", "Interrupted",
           "REFUTED", "PROVED", "CONSISTENT", "INCONCLUSIVE"]
