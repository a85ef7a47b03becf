"""The one judge of user code: batched vector-Jacobian products of a claim against float64 truths.

A `Case` says how to draw inputs, which of them are differentiated, and gives `Source`s: each
maps a batch of samples and cotangents v (in a dtype) to the VJPs v^T J, one row per (cotangent,
sample). The claim is the user's backward; the truths are autograd of a declared forward, of a
library reference or of the Function's own forward, computed in float64 from the same rounded
inputs and cotangents. `judge` draws all samples in chunks of bounded memory and compares:

  * float64: per row, max|claim - truth| <= 1e-11 max|truth| + 16 noise + slack, noise being
    how far the truth moves when the inputs move by 4 ulps (the formulas' conditioning);
  * a low precision (float32, float16, bfloat16): against a baseline, the first truth source run
    in that precision, by the rule of `derive.numeric.tolerance.Precision`; where the claim also
    runs in float64 (dtype-generic code), the formula is then judged at float64 sharpness too.

Samples whose forward is not finite are redrawn, counted and reported; when more than half the
draws are redrawn, the samples no longer stand for the domain and the verdict is inconclusive.
"""

from __future__ import annotations

import dataclasses
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import SpecError
from ..model.verdict import CONSISTENT, INCONCLUSIVE, REFUTED, Numeric, Result, SizeResult, Symbolic
from .tolerance import EPS, PRECISIONS, TOLERANCES

AGREE_SAMPLES = 64
"""Samples per chunk on which every other truth source must agree with the first."""
CHUNK_ENTRIES = 2**20
"""Input or output entries per chunk: peak memory stays near a few hundred MB at any count."""
REDRAW_ROUNDS = 10
BASELINE_SPREAD = 4.0
"""A truth source run in a low precision counts as a baseline when its mean error is within this
factor of the most accurate one's."""
NO_PROOF = Symbolic("not applicable", 0.0, detail="user code: no formula to prove")


class NotGeneric(Exception):
    """The claim does not run in float64 (it fixes its own dtype): no float64 formula check."""


@dataclass(frozen=True)
class Evaluated:
    """What a source gives for a batch: its forward value (count, m) or None, and its VJPs
    (cotangents * count, N), both float64 and detached."""

    value: Any
    vjp: Any


Source = Callable[[dict[str, np.ndarray], Any, Any, "dict[str, Any] | None"], Evaluated]
"""(batch, cotangents (K, count, m) in the run's dtype, torch dtype, moved or None) -> Evaluated;
`moved` multiplies each differentiable input (the inputs moved by a few ulps)."""


@dataclass
class Case:
    """Everything `judge` needs about one check; the usercode adapters build it."""

    name: str                                   # the claim's owner: MySoftmax
    draw: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
    diff: dict[str, tuple[int, ...]]            # differentiated input -> per-sample shape, in order
    out_size: int                               # output entries per sample (m)
    claim: Source
    truths: list[tuple[str, Source]]            # the first judges every sample
    rerun: Callable[[str, int, int], str]       # (dtype, samples, seed) -> a call that reruns it
    sizes: dict[str, int] = field(default_factory=dict)
    witnesses: Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, list[str]], str] | None = None
    notes: list[str] = field(default_factory=list)
    setup_seconds: float = 0.0
    salt: str = ""                              # mixed into the seed: each identity its own stream


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def vjps(out: Any, leaves: list[Any], cot: Any) -> Any:
    """(K * count, total leaf entries): v_k^T J for each cotangent v_k (K, count, ...), float64."""
    import torch

    k = cot.shape[0]
    cot = cot.to(out.dtype)
    try:  # all cotangents in one batched backward pass
        grads = torch.autograd.grad(out, leaves, grad_outputs=cot.reshape(k, *out.shape),
                                    retain_graph=True, allow_unused=True, is_grads_batched=True)
    except Exception:  # a backward that vmap cannot batch: one pass per cotangent
        per = [torch.autograd.grad(out, leaves, grad_outputs=cot[i].reshape(out.shape),
                                   retain_graph=True, allow_unused=True) for i in range(k)]
        grads = tuple(None if all(p[j] is None for p in per) else
                      torch.stack([torch.zeros_like(leaves[j]) if p[j] is None else p[j] for p in per])
                      for j in range(len(leaves)))
    parts = []
    for g, x in zip(grads, leaves):
        if g is None:
            parts.append(torch.zeros((k * x.shape[0], x[0].numel()), dtype=torch.float64, device=x.device))
            continue
        if tuple(g.shape[1:]) != tuple(x.shape):
            raise SpecError(f"the backward returned a gradient of shape {tuple(g.shape[1:])} for an input of "
                            f"shape {tuple(x.shape)}")
        parts.append(g.reshape(k * x.shape[0], -1).to(torch.float64))
    return (parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)).detach()


def inf_norm(rows: Any) -> Any:
    """max |entry| of each row (NaN if the row has one); two reductions, no |.| pass."""
    import torch

    flat = rows.reshape(rows.shape[0], -1)
    if flat.shape[1] == 0:
        return torch.zeros(flat.shape[0], dtype=flat.dtype, device=flat.device)
    return torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))


def signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random +-1.0 entries of `shape`, from random bits."""
    size = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(rng.bytes((size + 7) // 8), dtype=np.uint8))[:size]
    return (2.0 * bits - 1.0).reshape(shape)


def rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    """`a` rounded to `dtype` and back to float64: the inputs the user's code really sees."""
    if dtype == "float64":
        return a
    import torch

    return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(torch_dtype(dtype)).to(torch.float64).numpy()


def where(case: Case, entry: int) -> tuple[str, list[int]]:
    """The differentiated input and its index for a flat entry of the concatenated gradients."""
    for name, shape in case.diff.items():
        size = int(np.prod(shape))
        if entry < size:
            return name, [int(i) for i in np.unravel_index(entry, shape)] if shape else []
        entry -= size
    return "?", []


@dataclass
class _Tally:
    """Running totals over chunks."""

    samples: int
    cotangents: int
    failing: int = 0
    redrawn: int = 0
    drawn: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    sum_claim: float = 0.0     # low precision: sum over rows of the claim's relative error
    rows: int = 0
    max_claim: float = 0.0     # low precision: the largest relative error of any row
    bases: dict[str, list[float]] = field(default_factory=dict)
    """low precision: per truth source run in the dtype, [sum of floored relative errors, max];
    a source whose value is not finite somewhere is dropped (it is no baseline)."""

    def baseline(self) -> tuple[str, float, float]:
        """The baseline: the least accurate of the truth sources run in the dtype (a plain
        implementation, as kernel test suites compare with, is often less accurate than a fused
        library kernel), among those within BASELINE_SPREAD of the most accurate (a formula
        evaluated naively in float16 can be no baseline at all): (name, mean and max rel error)."""
        if not self.bases:
            return "", math.inf, math.inf
        best = min(total for total, _ in self.bases.values())
        usable = {k: v for k, v in self.bases.items() if v[0] <= BASELINE_SPREAD * best}
        name, (total, top) = max(usable.items(), key=lambda kv: kv[1][0])
        return name, total / max(1, self.rows), top
    worst: dict[str, Any] = field(default_factory=lambda: {"ratio": -1.0})


def judge(case: Case, *, samples: int, seed: int, cotangents: int, dtype: str, device: str,
          chunk: int | None = None, rtol: float | None = None) -> Result:
    """Check the case's claim on `samples` random inputs in `dtype`; a Result with evidence."""
    start = time.perf_counter()
    low = judge_in(case, samples=samples, seed=seed, cotangents=cotangents, dtype=dtype, device=device,
                   chunk=chunk, rtol=rtol)
    if dtype == "float64" or low.verdict == INCONCLUSIVE and "truth sources disagree" in low.reason:
        return _result(case, [low], start)
    try:  # dtype-generic code: the formula itself, at float64 sharpness
        sharp = judge_in(case, samples=samples, seed=seed, cotangents=cotangents, dtype="float64",
                         device=device, chunk=chunk, rtol=rtol, requested=dtype)
    except NotGeneric as exc:
        note = f"the backward does not run in float64 ({exc}): it is judged in {dtype} only, against the baseline"
        return _result(case, [dataclasses.replace(low, notes=(*low.notes, note))], start)
    return _result(case, [sharp, low], start)


def _result(case: Case, parts: list[SizeResult], start: float) -> Result:
    order = [REFUTED, INCONCLUSIVE, CONSISTENT]
    # the float64 pass (first, when there is one) speaks for the formula: its refutation is the clearer
    decisive = min(parts, key=lambda p: order.index(p.verdict))
    reason = decisive.reason if len(parts) == 1 or decisive.verdict != CONSISTENT else \
        "; ".join(p.reason for p in parts)
    numeric = tuple(n for p in parts for n in p.numeric)
    seconds = round(time.perf_counter() - start, 4)
    notes = (f"set-up {case.setup_seconds:.3g} s, check {seconds:.3g} s",)
    sizes = tuple(SizeResult(p.sizes, p.verdict, p.symbolic, p.numeric, p.reason, p.counterexample,
                             p.sources, (*p.notes, *notes) if i == 0 else p.notes, p.seconds)
                  for i, p in enumerate(parts))
    return Result(case.name, decisive.verdict, NO_PROOF, numeric, seconds, sizes, reason,
                  decisive.counterexample, "user code")


def judge_in(case: Case, *, samples: int, seed: int, cotangents: int, dtype: str, device: str,
             chunk: int | None = None, rtol: float | None = None, requested: str | None = None) -> SizeResult:
    """One pass in one dtype."""
    import torch

    start = time.perf_counter()
    tdtype = torch_dtype(dtype)
    prec = PRECISIONS[dtype]
    tol = TOLERANCES["float64"]
    exact = rtol or tol.exact
    m = case.out_size
    n_in = sum(int(np.prod(s)) for s in case.diff.values())
    if m == 1:  # a scalar target: every cotangent gives a multiple of the same gradient
        cotangents = 1
    chunk = chunk or max(1, min(samples, CHUNK_ENTRIES // max(1, max(m, n_in) * cotangents)))
    tally = _Tally(samples, cotangents)
    sources = [case.truths[0][0], *(f"{name} (on {AGREE_SAMPLES} samples per chunk)" for name, _ in case.truths[1:])]
    notes = list(case.notes)
    label = ", ".join(["torch", dtype, *(f"{k}={n}" for k, n in case.sizes.items())])
    done = 0
    truth0 = case.truths[0][1]

    def stop(verdict: str, reason: str, numeric: tuple[Numeric, ...] = (), cx: dict[str, Any] | None = None,
             ) -> SizeResult:
        if tally.redrawn:
            notes.append(f"{tally.redrawn} of {tally.drawn} drawn samples redrawn (non-finite forward)")
        return SizeResult(dict(case.sizes), verdict, NO_PROOF, numeric, reason, cx, tuple(sources),
                          tuple(notes), round(time.perf_counter() - start, 4))

    for c in range(math.ceil(samples / chunk)):
        count = min(chunk, samples - done)
        rng = np.random.default_rng([seed, zlib.crc32(case.salt.encode()), c])
        batch, value, truth, cot = _draw_finite(case, rng, count, cotangents, dtype, device, truth0, tally)
        if batch is None:
            reason = (f"{case.name} [{label}]: the forward is not finite at some samples even after "
                      f"{REDRAW_ROUNDS} redraws ({tally.redrawn} of {tally.drawn} drawn samples redrawn); no "
                      "finite reference: declare a domain or pass example args where it is finite")
            return stop(INCONCLUSIVE, reason)
        if tally.redrawn * 2 > tally.drawn:
            reason = (f"{case.name} [{label}]: {tally.redrawn} of {tally.drawn} drawn samples had a non-finite "
                      "forward and were redrawn; the rest do not stand for the inputs: declare a domain "
                      "(e.g. 'positive') or pass example args near which the forward is finite")
            return stop(INCONCLUSIVE, reason)
        moved = {n: torch.from_numpy(1.0 + 4 * EPS * signs(rng, (count, *s))).to(device)
                 for n, s in case.diff.items()}
        largest = float(inf_norm(value.reshape(1, -1))) if value is not None else 1.0
        noise = inf_norm(truth - truth0(batch, cot, torch.float64, moved).vjp)
        mags = max(1.0, largest, math.sqrt(3.0), *(float(np.max(np.abs(batch[n]), initial=0)) for n in case.diff))
        slack = tol.noise_factor * EPS * mags**2
        scale = inf_norm(truth)
        allowed = exact * scale + tol.noise_factor * noise + slack

        def errors(other: Any, rows: Any = None) -> Any:  # a NaN or inf makes the row's error inf
            ref = truth if rows is None else truth.reshape(cotangents, count, -1)[:, rows].reshape(other.shape)
            return torch.nan_to_num(inf_norm(other - ref), nan=math.inf)

        few = min(count, AGREE_SAMPLES)
        part = {k: a[:few] for k, a in batch.items()}
        for name, fn in case.truths[1:]:
            other = fn(part, cot[:, :few].contiguous(), torch.float64, None)
            ok_rows = allowed.reshape(cotangents, count)[:, :few].reshape(-1)
            err = errors(other.vjp, slice(0, few))
            value_off = False
            if other.value is not None and value is not None:
                value_off = bool(((other.value - value[:few]).abs().reshape(few, -1).amax(dim=1) >
                                  tol.exact * value[:few].abs().reshape(few, -1).amax(dim=1) + slack).any())
            if bool((err > ok_rows).any()) or value_off:
                s = int(torch.argmax(err - ok_rows))
                return stop(INCONCLUSIVE, f"truth sources disagree: {case.truths[0][0]} and {name} differ by "
                            f"{float(err[s]):.3g} > {float(ok_rows[s]):.3g} (or their values differ)")
        if c == 0 and case.witnesses is not None:
            failed = case.witnesses(batch, cot.cpu().numpy(), truth.cpu().numpy(), noise.cpu().numpy(), sources)
            if failed:
                return stop(INCONCLUSIVE, f"truth sources disagree: {failed}")
        cot_dt = cot.to(tdtype)
        claim = case.claim(batch, cot_dt, tdtype, None).vjp
        err = errors(claim)
        safe_scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        rel = torch.where((scale == 0) & (err > 0), torch.full_like(err, math.inf), err / safe_scale)
        tally.max_abs = max(tally.max_abs, float(err.max()))
        tally.max_rel = max(tally.max_rel, float(rel.max()))
        if dtype == "float64":
            ratio = err / allowed
        else:
            base_rel = _baselines(case, batch, cot_dt, tdtype, truth, safe_scale, prec, tally, first=c == 0)
            if base_rel is None:
                return stop(INCONCLUSIVE, f"{case.name} [{label}]: no truth source runs finitely in {dtype}, so "
                            "there is no baseline to judge this precision against")
            tally.sum_claim += float(rel.sum())
            tally.rows += rel.numel()
            tally.max_claim = max(tally.max_claim, float(rel.max()))
            ratio = rel / torch.clamp(base_rel, min=prec.unit)  # only ranks rows for the counterexample
        tally.failing += int((ratio > 1).sum()) if dtype == "float64" else 0
        s = int(torch.argmax(torch.nan_to_num(ratio, nan=math.inf)))
        if float(ratio[s]) > tally.worst["ratio"]:
            k, sample = divmod(s, count)
            row_c, row_t = claim[s].cpu().numpy(), truth[s].cpu().numpy()
            with np.errstate(invalid="ignore"):
                entry = int(np.nanargmax(np.where(np.isfinite(row_c), np.abs(row_c - row_t), np.inf)))
            arg, index = where(case, entry)
            tally.worst = {"ratio": float(ratio[s]), "sample": done + sample, "cotangent_index": k,
                           "inputs": {n: np.asarray(a[sample]).tolist() for n, a in batch.items()},
                           "cotangent": cot[k, sample].cpu().numpy().tolist(), "argument": arg, "entry": index,
                           "claimed": float(row_c[entry]), "true": float(row_t[entry]),
                           "abs_error": float(err[s]), "rel_error": float(rel[s]),
                           "tolerance": float(allowed[s]) if dtype == "float64" else None,
                           "baseline_rel_error": None if dtype == "float64" else float(base_rel[s])}
        done += count
    return _verdict(case, tally, dtype, label, seed, stop, exact, requested or dtype)


def _baselines(case: Case, batch: dict[str, np.ndarray], cot: Any, tdtype: Any, truth: Any, scale: Any,
               prec: Any, tally: _Tally, *, first: bool) -> Any:
    """Each truth source run in the low precision: its relative error per row, added to the
    tally; the largest per row (to rank rows), or None when no source runs finitely. A source
    without a kernel for the dtype, or not finite somewhere, is dropped for the whole run."""
    import torch

    worst = None
    for name, fn in case.truths:
        if not first and name not in tally.bases:
            continue
        try:
            base = fn(batch, cot, tdtype, None).vjp
        except Exception:  # noqa: BLE001 - a library without a kernel for this dtype
            tally.bases.pop(name, None)
            continue
        rel = torch.nan_to_num(inf_norm(base - truth), nan=math.inf) / scale
        if not bool(torch.isfinite(rel).all()):
            tally.bases.pop(name, None)
            continue
        entry = tally.bases.setdefault(name, [0.0, 0.0])
        entry[0] += float(torch.clamp(rel, min=prec.floor * prec.unit).sum())
        entry[1] = max(entry[1], float(rel.max()))
        worst = rel if worst is None else torch.maximum(worst, rel)
    return worst


def _draw_finite(case: Case, rng: np.random.Generator, count: int, cotangents: int, dtype: str, device: str,
                 truth0: Source, tally: _Tally) -> tuple[Any, Any, Any, Any]:
    """A batch whose float64 forward is finite at every sample (bad rows redrawn), its truth
    value and VJPs, and the cotangents; (None, ...) when redrawing does not help."""
    import torch

    batch = _draw(case, rng, count, dtype)
    tally.drawn += count
    cot = torch.from_numpy(rounded((rng.random((cotangents, count, case.out_size)) * 2.0 - 1.0) * math.sqrt(3.0),
                                   dtype)).to(device)
    for _ in range(REDRAW_ROUNDS + 1):
        ev = truth0(batch, cot, torch.float64, None)
        bad = _non_finite_rows(ev, cotangents, count)
        if not bad.any():
            return batch, ev.value, ev.vjp, cot
        idx = np.flatnonzero(bad)
        fresh = _draw(case, rng, len(idx), dtype)
        tally.redrawn += len(idx)
        tally.drawn += len(idx)
        for k in batch:
            batch[k][idx] = fresh[k]
    return None, None, None, None


def _non_finite_rows(ev: Evaluated, cotangents: int, count: int) -> np.ndarray:
    import torch

    rows = ~torch.isfinite(ev.vjp.reshape(cotangents, count, -1)).all(dim=2).all(dim=0)
    if ev.value is not None:
        rows = rows | ~torch.isfinite(ev.value.reshape(count, -1)).all(dim=1)
    return rows.cpu().numpy()


def _draw(case: Case, rng: np.random.Generator, count: int, dtype: str) -> dict[str, np.ndarray]:
    batch = {k: np.array(v) for k, v in case.draw(rng, count).items()}
    for n in case.diff:
        batch[n] = rounded(batch[n], dtype)
    return batch


def _verdict(case: Case, tally: _Tally, dtype: str, label: str, seed: int,
             stop: Callable[..., SizeResult], exact: float, requested: str) -> SizeResult:
    tol = TOLERANCES["float64"]
    prec = PRECISIONS[dtype]
    samples, cotangents = tally.samples, tally.cotangents
    if dtype == "float64":
        rtol = exact
        refuted = tally.worst["ratio"] > 1
        rule = f"max|claim - truth| <= {exact:g} max|truth| + {tol.noise_factor:g} noise"
    else:
        mean_claim = tally.sum_claim / max(1, tally.rows)
        base_name, mean_base, max_base = tally.baseline()
        rtol = prec.k * mean_base
        refuted = mean_claim > prec.k * mean_base or tally.max_claim > prec.spike * max(max_base, prec.unit)
        rule = f"{prec.rule()}; baseline: {base_name} in {dtype}"
    numeric = (Numeric("torch", dtype, samples, tally.max_abs, tally.max_rel, rtol),)
    w = tally.worst
    what = f"{case.name}.backward"
    if refuted:
        arg = f"grad of {w['argument']}" + (f"[{', '.join(map(str, w['entry']))}]" if w["entry"] else "")
        cx = {"kind": "vjp", "claim": what, "backend": "torch", "dtype": dtype, "sizes": dict(case.sizes),
              "truth": case.truths[0][0],
              "seed": seed, "rerun": case.rerun(requested, samples, seed), "failing": tally.failing,
              "rule": rule, **{k: v for k, v in w.items() if k != "ratio"}}
        if dtype == "float64":
            reason = (f"{what} [{label}]: {arg} is wrong: max|v^T J (claimed) - v^T J (true)| = "
                      f"{w['abs_error']:.3g} (relative {w['rel_error']:.3g}) at sample {w['sample']} > tol "
                      f"{w['tolerance']:.3g} ({tally.failing} of {samples * cotangents} VJPs beyond tolerance); "
                      f"seed={seed}")
        else:
            cx.update(mean_rel_error=mean_claim, baseline=base_name, baseline_mean_rel_error=mean_base,
                      max_rel_error=tally.max_claim, baseline_max_rel_error=max_base)
            if mean_claim > prec.k * mean_base:
                how = (f"mean relative error {mean_claim:.3g} is {mean_claim / mean_base:.3g}x the baseline's "
                       f"{mean_base:.3g} (allowed {prec.k:g}x)")
            else:
                base_max = max(max_base, prec.unit)
                how = (f"largest relative error {tally.max_claim:.3g} is {tally.max_claim / base_max:.3g}x the "
                       f"baseline's largest {base_max:.3g} (allowed {prec.spike:g}x)")
            reason = (f"{what} [{label}]: {arg} is off: {how}; worst at sample {w['sample']} (relative "
                      f"{w['rel_error']:.3g}, baseline {w['baseline_rel_error']:.3g}); seed={seed}")
        return stop(REFUTED, reason, numeric, cx)
    if dtype == "float64":
        reason = (f"backward agrees with the truth at {samples} samples x {cotangents} cotangents [{label}] "
                  f"(max rel error {tally.max_rel:.3g}, rtol {exact:g}); no proof (user code)")
    else:
        reason = (f"backward as accurate as the baseline in {dtype} at {samples} samples x {cotangents} "
                  f"cotangents [{label}]: mean rel error {mean_claim:.3g} vs the baseline's {mean_base:.3g} "
                  f"({mean_claim / mean_base:.2g}x; allowed {prec.k:g}x); smallest relative error this "
                  f"can detect about {prec.k * mean_base:.2g}; rule: {rule}")
    return stop(CONSISTENT, reason, numeric)
