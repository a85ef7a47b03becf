"""The numeric stage of an identity: sample, compute the truths, judge every claim."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model.spec import Identity
from ..symbolic.graph import Derivation, Graph
from . import backends
from .backends import Program
from .compiled import Compiled, _stack, _target, compile_graph, forward, forward_scalar
from .sampling import (
    Inputs,
    _discrete_slots,
    _inputs_at,
    _jitter,
    _jitter_columns,
    sample,
)
from .tolerance import (
    TOLERANCES,
    Comparison,
    _entry,
    _fmt,
    _magnitude_floor,
    _worst_noise,
    compare,
)
from .truths import (
    DIRECTIONS,
    FULL_JACOBIAN_SLOTS,
    HP_DIGITS,
    autograd_jacobian,
    central_differences,
    complex_step,
    high_precision,
    reference_values,
)

# --- the check ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackendError:
    """Claim against truth on one backend, for one claim."""

    backend: str
    claim: str
    comparison: Comparison


@dataclass
class NumericOutcome:
    """Everything the numeric stage found for one identity at one set of sizes."""

    status: str  # "agree", "refuted", "disagree", "nonfinite"
    samples: int
    errors: list[BackendError] = field(default_factory=list)
    reference_errors: list[BackendError] = field(default_factory=list)
    reason: str = ""
    counterexample: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # claims that float64 evaluates inaccurately where 40 digits agree with the truth (see Inaccuracy)
    inaccurate: list["Inaccuracy"] = field(default_factory=list)


@dataclass(frozen=True)
class Inaccuracy:
    """A claim whose float64 evaluation misses the tolerance at some samples, while the same
    formula evaluated at 40 digits agrees with the truth there: the formula loses digits in
    float64 (a cancellation, a saturated 1 - sigmoid), it is not wrong."""

    claim: str
    backend: str
    failing: int        # samples outside the float64 tolerance
    samples: int
    checked: int        # of the failing samples, how many were re-evaluated at 40 digits
    max_rel: float      # the largest max|claim - truth| / max|truth| over the failing samples
    rel_tol: float      # the tolerance there, relative to max|truth|
    entry: tuple[int, ...]
    inputs: dict[str, Any]


CHUNK_ENTRIES = 2**21
"""Entries of the largest per-sample array (a Jacobian) times samples, per chunk of samples."""


def run_numeric(identity: Identity, graph: Graph, derivation: Derivation | None, *,
                backend_names: tuple[str, ...], samples: int, rng: np.random.Generator,
                seed: int, dtype: str = "float64", device: str = "cpu",
                chunk: int | None = None, compiled: Compiled | None = None) -> NumericOutcome:
    """Sample, establish the truth from agreeing sources, and judge every claim against it.

    Samples are drawn and judged in chunks, so memory stays bounded whatever their number;
    the first chunk that refutes, or whose truths disagree, decides. `compiled`: the graph's
    formulas already compiled (in the bounded symbolic worker), else they are compiled here.
    """
    if compiled is None:
        compiled = compile_graph(graph, derivation)
    # the widest per-sample array: the slot list, or a claim (a Jacobian's shape includes wrt)
    width = max([len(compiled.symbols), *(c.expr.size for c in graph.claims)])
    chunk = chunk or max(1, CHUNK_ENTRIES // max(1, width))
    out = NumericOutcome("agree", samples)
    done = 0
    while done < samples:
        count = min(chunk, samples - done)
        part = _run_chunk(identity, graph, compiled, derivation, backend_names=backend_names, samples=count,
                          rng=rng, seed=seed, dtype=dtype, device=device)
        out.errors += part.errors
        out.reference_errors += part.reference_errors
        out.sources = sorted(set(out.sources) | set(part.sources))
        out.notes += [n for n in part.notes if n not in out.notes]
        out.inaccurate += part.inaccurate
        if part.counterexample is not None and out.counterexample is None:
            out.counterexample = {**part.counterexample, "sample": part.counterexample["sample"] + done}
        # an inaccurate float64 evaluation decides nothing: later chunks are still judged
        if part.status != "agree" and (out.status == "agree" or part.status != "inaccurate"):
            out.status, out.reason = part.status, part.reason
        if out.status not in ("agree", "inaccurate"):
            break
        done += count
    return out


def _run_chunk(identity: Identity, graph: Graph, compiled: Compiled, derivation: Derivation | None, *,
               backend_names: tuple[str, ...], samples: int, rng: np.random.Generator,
               seed: int, dtype: str, device: str) -> NumericOutcome:
    tol = TOLERANCES[dtype]

    def be(name: str) -> backends.Backend:
        return backends.get(name, device)

    drawn = sample(identity, graph, compiled, rng, samples, tol)
    inputs = drawn.inputs
    out = NumericOutcome("agree", samples)
    if drawn.resampled_kinks:
        out.notes.append(f"kinks avoided ({', '.join(compiled.kink_text)}): "
                         f"{drawn.resampled_kinks} samples redrawn")
    if drawn.nonfinite:
        out.status = "nonfinite"
        out.reason = (f"the forward value is not finite at {drawn.nonfinite} of {samples} samples "
                      "even after redrawing; no finite reference")
        return out
    have_torch = backends.available("torch")
    if not have_torch:
        out.notes.append("torch is not installed: no autograd truth and no torch backend")
    selected = [b for b in backend_names if b != "torch" or have_torch]
    evaluated = list(dict.fromkeys(["numpy", *selected, *(["torch"] if have_torch else [])]))
    envs = {b: forward(compiled, be(b), be(b).from_numpy(inputs.columns))
            for b in evaluated}
    exact = _discrete_slots(identity, compiled)
    # perturbed evaluations measure conditioning: every slot moved by a few ulps, and the whole
    # forward recomputed from moved inputs (rounding inside an intermediate, e.g. a cancellation)
    moved = _jitter_columns(inputs.columns, rng, exact)
    envs_p = {b: [_jitter(envs[b], be(b), rng, samples, exact),
                  forward(compiled, be(b), be(b).from_numpy(moved))] for b in evaluated}
    floor = _magnitude_floor(envs["numpy"], samples, tol)
    nb = backends.get("numpy")
    target_shape = graph.nodes[graph.target].shape

    def run(b: str, prog: Program, env: list[Any]) -> np.ndarray:
        return _stack(be(b), be(b).run(prog, env), samples)

    # a library reference is a value claim: the definition must compute what the library does
    value = _stack(nb, _target(compiled, graph, envs["numpy"]), samples)
    value_noise = _worst_noise(value, [_stack(nb, _target(compiled, graph, e), samples) for e in envs_p["numpy"]])
    for r, ref in enumerate(identity.references if have_torch else ()):
        ref_value, _ = reference_values(identity, r, inputs, graph, device=device)
        cmp = compare(ref_value, value, tol.exact, value_noise, tol.noise_factor, atol=floor)
        out.reference_errors.append(BackendError("torch", f"definition vs {ref.label}", cmp))
        if not cmp.ok and out.counterexample is None:
            _refute(out, identity, graph, inputs, cmp, f"definition vs {ref.label}", "torch",
                    ref_value, value, target_shape, seed)

    for claim in graph.claims:
        label = claim.label
        # exact truths: (values, black box?); witnesses: (sample ids, values, rtol, extra slack)
        truths: dict[str, tuple[np.ndarray, bool]] = {}
        witnesses: dict[str, tuple[np.ndarray, np.ndarray, float, np.ndarray | None, np.ndarray | None]] = {}
        if claim.wrt is None:
            for b in envs:
                truths[f"definition/{b}"] = (_stack(be(b), _target(compiled, graph, envs[b]),
                                                    samples), b != "numpy")
            idx, hp = high_precision(compiled, graph, inputs.columns, None)
            witnesses["mpmath 40 digits"] = (idx, hp, tol.high_precision, None, None)
            primary_p = [_stack(nb, _target(compiled, graph, e), samples) for e in envs_p["numpy"]]
        else:
            if derivation is not None:
                for b in envs:
                    truths[f"sympy/{b}"] = (run(b, compiled.derived[claim.index], envs[b]), False)
            if have_torch:
                truths["autograd"] = (autograd_jacobian(compiled, graph, be("torch"),
                                                        inputs.columns, claim.wrt, device), True)
                for r, ref in enumerate(identity.references):
                    _, jac = reference_values(identity, r, inputs, graph, wrt=claim.wrt, device=device)
                    truths[f"autograd of {ref.label}"] = (jac, True)
            w = len(compiled.slots[claim.wrt])
            # many entries: the witnesses check J u along fresh mean-zero random directions
            dirs = rng.standard_normal((w, DIRECTIONS)) if w > FULL_JACOBIAN_SLOTS else None
            along = f" along {DIRECTIONS} random directions" if dirs is not None else ""
            fd, rounding = central_differences(compiled, graph, inputs.columns, claim.wrt, dirs)
            witnesses[f"central differences{along}"] = (np.arange(samples), fd, tol.central, rounding, dirs)
            if compiled.analytic:
                witnesses[f"complex step{along}"] = (
                    np.arange(samples), complex_step(compiled, graph, inputs.columns, claim.wrt, dirs),
                    tol.complex_step, None, dirs)
            else:
                idx, hp = high_precision(compiled, graph, inputs.columns, claim.wrt, directions=dirs)
                witnesses[f"mpmath 40 digits{along}"] = (idx, hp, tol.high_precision, None, dirs)
            primary_p = ([run("numpy", compiled.derived[claim.index], e) for e in envs_p["numpy"]]
                         if derivation is not None else None)
        if not truths:
            out.status, out.reason = "disagree", f"{label}: no exact truth source available"
            return out
        primary_name = next(iter(truths))
        primary, primary_black_box = truths[primary_name]
        noise_t = _worst_noise(primary, primary_p) if primary_p is not None else np.zeros(samples)
        slack_t = floor if primary_black_box else None
        finite = np.isfinite(primary).all(axis=1)
        if not finite.all():
            out.status = "nonfinite"
            out.reason = (f"{label}: the true derivative is not finite at {int((~finite).sum())} "
                          f"of {samples} samples")
            return out
        out.sources = sorted(set(out.sources) | set(truths) | set(witnesses))
        for name, (other, black_box) in truths.items():
            if name == primary_name:
                continue
            cmp = compare(other, primary, tol.exact, noise_t, tol.noise_factor,
                          atol=floor if black_box or primary_black_box else None)
            if not cmp.ok:
                _disagree(out, label, primary_name, name, cmp, primary, other, inputs, identity)
                return out
        for name, (idx, other, rtol, rounding, dirs) in witnesses.items():
            truth, grow = primary[idx], 1.0
            if dirs is not None:  # the truth along the same directions: J u
                truth = (truth.reshape(len(idx), -1, dirs.shape[0]) @ dirs).reshape(len(idx), -1)
                grow = float(np.abs(dirs).sum(axis=0).max())  # |J u| errors <= |J| errors * sum|u|
            slack = rounding[idx] if rounding is not None else None
            if slack_t is not None:
                slack = grow * slack_t[idx] if slack is None else slack + grow * slack_t[idx]
            cmp = compare(other, truth, rtol, grow * noise_t[idx], tol.noise_factor, atol=slack)
            if not cmp.ok:
                _disagree(out, label, primary_name, name, cmp, truth, other, inputs, identity,
                          sample_ids=idx)
                return out
        for b in selected:
            claimed = run(b, compiled.claims[claim.index], envs[b])
            noise = np.maximum(noise_t, _worst_noise(claimed, [run(b, compiled.claims[claim.index], e)
                                                               for e in envs_p[b]]))
            cmp = compare(claimed, primary, tol.exact, noise, tol.noise_factor, atol=slack_t)
            out.errors.append(BackendError(b, label, cmp))
            if not cmp.ok and out.counterexample is None:
                confirmed = _confirm_at_high_precision(compiled, claim.index, inputs.columns, cmp, primary)
                if confirmed is None:
                    s_bad, e_bad = cmp.worst
                    if out.status != "refuted":
                        out.status = "inaccurate"
                    failing = np.flatnonzero(~(cmp.abs_error <= cmp.tol))
                    scale = np.where(cmp.scale > 0, cmp.scale, 1.0)
                    out.inaccurate.append(Inaccuracy(
                        label, b, len(failing), samples, min(len(failing), CONFIRM_SAMPLES),
                        float(np.max(cmp.abs_error[failing] / scale[failing])),
                        float(cmp.tol[s_bad] / scale[s_bad]), _entry(claim.expr.shape, e_bad),
                        _inputs_at(identity, inputs, s_bad)))
                    out.reason = (f"{label}: the claim evaluates inaccurately in float64 ({b} gives "
                                  f"{_fmt(claimed.reshape(samples, -1)[s_bad, e_bad])} where the truth is "
                                  f"{_fmt(primary.reshape(samples, -1)[s_bad, e_bad])}) but agrees with it at "
                                  f"{HP_DIGITS} digits at {_inputs_at(identity, inputs, s_bad)}; not refuted")
                    continue
                cmp = dataclasses.replace(cmp, worst=(confirmed, cmp.worst[1] if confirmed == cmp.worst[0]
                                                      else int(np.argmax(np.abs(np.nan_to_num(
                                                          claimed.reshape(samples, -1)[confirmed]
                                                          - primary.reshape(samples, -1)[confirmed], nan=np.inf))))))
                _refute(out, identity, graph, inputs, cmp, label, b, claimed, primary,
                        claim.expr.shape, seed)
    return out


CONFIRM_SAMPLES = 32
"""Failing samples re-evaluated at 40 digits (the worst first) before a claim is called wrong,
or found only inaccurate in float64 (then every one of them, up to this many, agrees)."""


def _confirm_at_high_precision(compiled: Compiled, index: int, columns: np.ndarray, cmp: Comparison,
                               truth: np.ndarray) -> int | None:
    """Before a refutation: the claim re-evaluated at 40 digits on the worst failing samples.

    A correct claim written in a form that float64 cannot evaluate (inf/inf, a catastrophic
    cancellation) fails the comparison but agrees with the truth at high precision; a wrong one
    still differs. Returns the first failing sample whose error is confirmed, or None.
    """
    import mpmath

    mb = backends.get("mpmath")
    failing = np.flatnonzero(~(cmp.abs_error <= cmp.tol))
    order = failing[np.argsort(-(np.nan_to_num(cmp.abs_error[failing] / cmp.tol[failing], nan=np.inf)))]
    flat_truth = truth.reshape(truth.shape[0], -1)
    for s in order[:CONFIRM_SAMPLES]:
        with mpmath.workdps(HP_DIGITS):
            env = forward_scalar(compiled, mb, [mpmath.mpf(float(v)) for v in columns[s]], upto="")
            try:
                values = [complex(v) for v in mb.run(compiled.claims[index], env)]
            except (ValueError, ZeroDivisionError, TypeError, OverflowError):
                return int(s)
        hp = np.array([v.real if v.imag == 0 else np.nan for v in values])
        with np.errstate(invalid="ignore"):
            diff = np.max(np.abs(np.broadcast_to(hp, flat_truth[s].shape) - flat_truth[s]), initial=0.0)
        if not (np.isfinite(diff) and diff <= cmp.tol[s]):
            return int(s)
    return None if len(failing) else int(cmp.worst[0])


def _refute(out: NumericOutcome, identity: Identity, graph: Graph, inputs: Inputs, cmp: Comparison,
            label: str, backend: str, value: np.ndarray, truth: np.ndarray,
            shape: tuple[int, ...], seed: int) -> None:
    s, e = cmp.worst
    out.status = "refuted"
    out.counterexample = {
        "kind": "reference" if label.startswith("definition vs") else "claim",
        "claim": label,
        "backend": backend,
        "sizes": dict(graph.sizes),
        "inputs": _inputs_at(identity, inputs, s),
        "entry": _entry(shape, e),
        "claimed": float(value.reshape(value.shape[0], -1)[s, e]),
        "true": float(truth.reshape(truth.shape[0], -1)[s, e]),
        "abs_error": float(cmp.abs_error[s]),
        "rel_error": float(cmp.abs_error[s] / cmp.scale[s]) if cmp.scale[s] > 0 else math.inf,
        "tolerance": float(cmp.tol[s]),
        "seed": seed,
        "sample": s,
    }


def _disagree(out: NumericOutcome, label: str, a_name: str, b_name: str, cmp: Comparison,
              a: np.ndarray, b: np.ndarray, inputs: Inputs, identity: Identity,
              sample_ids: np.ndarray | None = None) -> None:
    s, e = cmp.worst
    real_s = int(sample_ids[s]) if sample_ids is not None else s
    out.status = "disagree"
    out.reason = (f"{label}: truth sources disagree: {a_name} = {_fmt(a.reshape(a.shape[0], -1)[s, e])}"
                  f" but {b_name} = {_fmt(b.reshape(b.shape[0], -1)[s, e])} (|diff| "
                  f"{_fmt(cmp.abs_error[s])} > tol {_fmt(cmp.tol[s])}) at "
                  f"{_inputs_at(identity, inputs, real_s)}")
