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

The pieces: `sweep` (the points), `evaluate` (each formula in a dtype and at 40 digits, and the
bits lost), `regions` (where, the edges bisected), `localise` (why), `result` (what is found, as
data); here, the analysis that runs them, and the search for a proved rewrite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...errors import DeriveError, UnsupportedError
from ...model.spec import Identity
from ...symbolic.graph import derive
from ...symbolic.marks import Library, formula_text
from ...symbolic.rewrites import Applied, ancestors, apply_at, available, prove_rewrite, rewrite_everywhere
from ...symbolic.rules import RULES, Rule
from ...symbolic.written import written
from . import dag as D
from .evaluate import Evaluator, as_numpy, exact_of, fd_allowance, measure_bits, representable, summarise
from .localise import localise
from .measure import DEFAULT_DTYPES, DTYPES, DtypeInfo
from .regions import describe_region, find_segments, refine
from .result import Analysis, FormulaResult, Outcome, Rewrite
from .sweep import DIRECTIONS, EXPONENTS, SAMPLES, WORK, Points, points_for

MAX_NODES = 4000
"""Formulas larger than this (operations, after sharing) are not analysed (time)."""
REWRITE_OPS = 400
"""Formulas larger than this are not searched for rewrites (SymPy time)."""
BISECTIONS = 11


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
        ev = Evaluator(w, derivation)
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
            r.outcomes[info.name] = o = summarise(info, m, pts)
            if o.flagged:
                found.append((i, info, find_segments(info, m, pts)))
    refine(ev, found, pts, BISECTIONS)
    localise(ev, found, results, measured, pts, exact)
    for i, info, segments in found:
        results[i].outcomes[info.name].region = describe_region(segments, pts, info, measured[(i, info.name)])
    if rewrites:
        for i, r in enumerate(results):
            if any(o.flagged for o in r.outcomes.values()):
                _find_rewrite(ev, i, r, pts, exact, infos, results)
    return Analysis(identity.name, sizes, names, pts.label, results, [])


def _until_overflow(ev: Evaluator, pts: Points) -> Points:
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
            finite &= np.isfinite(as_numpy(v, len(pts.columns)))
    keep = np.ones(len(pts.columns), dtype=bool)
    for r in range(len(pts.rays)):
        on = np.flatnonzero(pts.ray == r)
        order = on[np.argsort(pts.magnitude[on])]
        broken = order[~finite[order]]
        if len(broken):
            keep[order[pts.magnitude[order] > pts.magnitude[broken[0]]]] = False
    return Points(pts.columns[keep], pts.ray[keep], pts.magnitude[keep], pts.rays, pts.label, pts.scalar)


# --- a rewrite that does not lose the bits ----------------------------------------------------

@dataclass
class _Candidate:
    entries: np.ndarray  # in the variables, marked
    steps: list[list[Applied]]  # per entry
    ops: int


def _rules(stability: bool = True) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if r.stability == stability and available(r))


def _candidates(ev: Evaluator, fr: FormulaResult) -> list[_Candidate]:
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


def _find_rewrite(ev: Evaluator, i: int, fr: FormulaResult, pts: Points, exact: dict[int, np.ndarray],
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
    truth = exact_of(fr.formula, exact)
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
            allow = fd_allowance(ev.dag, fr.formula.outputs, pts.columns)
        both = np.maximum(allow, fd_allowance(dag, outputs, pts.columns))
        worst, mean, curves = {}, {}, {}
        for info in infos:
            (computed,) = ev.computed([fr.formula], pts.columns, info, dag, [outputs])
            m = measure_bits(computed, truth, both, info, representable(pts.columns, info))
            o = summarise(info, m, pts)
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


def _autograd_rewrite(ev: Evaluator, fr: FormulaResult, pts: Points, exact: dict[int, np.ndarray],
                      infos: list[DtypeInfo], done: list[FormulaResult]) -> None:
    """The gradient through the target's proved rewrite, if it has one."""
    target = next((r for r in done if r.formula.kind == "definition" and r.formula.label == ev.graph.target), None)
    if target is None or target.rewrite is None or target.rewrite.dag is None:
        return
    truth = exact_of(fr.formula, exact)
    allow = fd_allowance(ev.dag, fr.formula.outputs, pts.columns)
    worst, mean, curves = {}, {}, {}
    for info in infos:
        (computed,) = ev.computed([fr.formula], pts.columns, info, target.rewrite.dag, [target.rewrite.outputs])
        m = measure_bits(computed, truth, allow, info, representable(pts.columns, info))
        o = summarise(info, m, pts)
        worst[info.name], mean[info.name], curves[info.name] = o.worst, o.mean, o.curve
    if any(worst[i.name] < fr.outcomes[i.name].worst - 0.5 for i in infos if fr.outcomes[i.name].flagged):
        fr.rewrite = Rewrite(f"autograd of {target.rewrite.text}", True, target.rewrite.methods, worst, mean, curves)


__all__ = ["analyse", "Analysis", "FormulaResult", "Outcome", "Rewrite", "EXPONENTS", "SAMPLES"]
