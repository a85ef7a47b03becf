"""check_gradient: a hand-written gradient function against autograd and finite differences."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import SpecError
from ..model.verdict import (
    CONSISTENT,
    INCONCLUSIVE,
    REFUTED,
    Numeric,
    Result,
    SizeResult,
)
from ..numeric.tolerance import EPS, TOLERANCES, Comparison, Tolerance, compare
from .calling import (
    _absmax,
    _Batch,
    _by_name,
    _Caller,
    _cat,
    _combine,
    _counterexample,
    _flat,
    _forward_split,
    _gradient_split,
    _inputs_at,
    _message,
    _noise,
    _NotThisKind,
    _NumpyKit,
    _require_torch,
    _TorchKit,
)
from ..numeric.tolerance import dtype_name
from .gradient_dtype import low_precision
from .inputs import (
    _FD_STEP,
    _NO_PROOF,
    _ROUNDS,
    COMPLEX_STEP,
    DEFAULT_SAMPLES,
    RICHARDSON_RTOL,
    _check_volume,
    _draw,
    _fmt,
    _Input,
    _jitter,
    _name,
    _one_line,
    _parse_inputs,
    _parse_sizes,
    _parse_wrt,
    _validate_common,
)


@dataclass
class _GradientCheck:
    forward: Callable[..., Any]
    gradient: Callable[..., Any]
    ins: tuple[_Input, ...]
    wrt: tuple[str, ...]
    samples: int
    seed: int
    backend: str | None
    rtol: float | None
    name: str
    tol: Tolerance = field(default_factory=lambda: TOLERANCES["float64"])
    kit: Any = None
    use_complex: bool = True
    out_shape: tuple[int, ...] = ()

    # -- callables on numpy batches
    def _args(self, raw: dict[str, np.ndarray]) -> dict[str, Any]:
        return {k: self.kit.native(v) for k, v in raw.items()}

    def _f(self, fwd: _Caller, raw: dict[str, np.ndarray]) -> np.ndarray:
        count = next(iter(raw.values())).shape[0]
        if self.kit.name == "torch":
            with self.kit.torch.no_grad():
                (out,) = fwd(self._args(raw), count)
        else:
            (out,) = fwd(self._args(raw), count)
        return _flat(self.kit.numpy(out))

    def _claim(self, grad: _Caller, raw: dict[str, np.ndarray], m: int) -> dict[str, np.ndarray]:
        count = next(iter(raw.values())).shape[0]
        parts = grad(self._args(raw), count)
        out = {}
        for k, p in zip(self.wrt, parts):
            a = self.kit.numpy(p).astype(np.float64).reshape(count, -1)
            entries = m * math.prod(raw[k].shape[1:])
            if a.shape[1] == 1 < entries:  # a constant returned as a scalar: it broadcasts
                a = np.broadcast_to(a, (count, entries))
            out[k] = a.reshape(count, m, -1)
        return out

    def _complex_step(self, fwd: _Caller, raw: dict[str, np.ndarray], m: int) -> dict[str, np.ndarray] | None:
        count = next(iter(raw.values())).shape[0]
        out: dict[str, np.ndarray] = {}
        for k in self.wrt:
            base = _flat(raw[k])
            cols = []
            for j in range(base.shape[1]):
                z = base.astype(np.complex128)
                z[:, j] += 1j * COMPLEX_STEP
                args = dict(raw, **{k: z.reshape(raw[k].shape)})
                try:
                    (val,) = fwd(args, count)
                except Exception:
                    return None
                val = np.asarray(val)
                if val.dtype.kind != "c":
                    return None
                cols.append(_flat(val).imag / COMPLEX_STEP)
            out[k] = np.stack(cols, axis=2).reshape(count, m, -1)
        return out

    def _autograd(self, fwd: _Caller, raw: dict[str, np.ndarray], m: int) -> dict[str, np.ndarray]:
        torch = self.kit.torch
        count = next(iter(raw.values())).shape[0]
        args = self._args(raw)
        leaves = {k: args[k].clone().requires_grad_(True) for k in self.wrt}
        args.update(leaves)
        with torch.enable_grad():
            (out,) = fwd(args, count)
            out = out.reshape(count, -1)
            rows: dict[str, list[Any]] = {k: [] for k in self.wrt}
            for a in range(m):
                if out.requires_grad:
                    grads = torch.autograd.grad(out[:, a].sum(), [leaves[k] for k in self.wrt],
                                                retain_graph=True, allow_unused=True)
                else:
                    grads = [None] * len(self.wrt)
                for k, g in zip(self.wrt, grads):
                    rows[k].append(torch.zeros(count, leaves[k][0].numel(), dtype=torch.float64)
                                   if g is None else g.reshape(count, -1))
        return {k: torch.stack(rows[k], dim=1).detach().cpu().numpy() for k in self.wrt}

    def _differences(self, fwd: _Caller, raw: dict[str, np.ndarray], f0: np.ndarray
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """Central differences with steps h and 2h, and the 4th difference (f(x+2h) + f(x-2h)
        - 4 f(x+h) - 4 f(x-h) + 6 f(x)) / 2h: O(h^3) where f is smooth, minus the jump of the
        slope at a kink exactly at x (relu at 0), where the central differences agree with
        each other (on the average slope, 0.5) and so cannot see it."""
        count, m = f0.shape
        d1: dict[str, np.ndarray] = {}
        d2: dict[str, np.ndarray] = {}
        d4: dict[str, np.ndarray] = {}
        hmin = np.full(count, np.inf)
        for k in self.wrt:
            base = _flat(raw[k]).astype(np.float64)
            c1, c2, c4 = [], [], []
            for j in range(base.shape[1]):
                h = _FD_STEP * np.maximum(1.0, np.abs(base[:, j]))
                hmin = np.minimum(hmin, h)
                points = []
                for mult in (1.0, -1.0, 2.0, -2.0):
                    a = base.copy()
                    a[:, j] += mult * h
                    points.append(a)
                stacked = {n: np.concatenate([v] * 4) for n, v in raw.items()}
                stacked[k] = np.concatenate(points).reshape((4 * count, *raw[k].shape[1:]))
                vals = self._f(fwd, stacked).reshape(4, count, m)
                steps = [p[:, j] for p in points]
                with np.errstate(all="ignore"):  # overflowing values: handled as non-finite later
                    c1.append((vals[0] - vals[1]) / (steps[0] - steps[1])[:, None])
                    c2.append((vals[2] - vals[3]) / (steps[2] - steps[3])[:, None])
                    c4.append((vals[2] + vals[3] - 4.0 * (vals[0] + vals[1]) + 6.0 * f0)
                              / (steps[0] - steps[1])[:, None])
            d1[k] = np.stack(c1, axis=2)
            d2[k] = np.stack(c2, axis=2)
            d4[k] = np.stack(c4, axis=2)
        return d1, d2, d4, hmin

    def _evaluate(self, fwd: _Caller, grad: _Caller, raw: dict[str, np.ndarray],
                  rng: np.random.Generator) -> _Batch:
        jittered = _jitter(raw, self.wrt, rng)
        f0 = self._f(fwd, raw)
        m = f0.shape[1]
        noise_f = _noise(f0, self._f(fwd, jittered))
        mags = [_absmax(raw[i.name]) for i in self.ins if i.domain.differentiable] + [_absmax(f0)]
        mag = np.maximum(1.0, np.max(mags, axis=0))
        d1, d2, d4, hmin = self._differences(fwd, raw, f0)
        batch = _Batch(raw, f0, noise_f, hmin, mag, d1, d2, d4,
                       self._claim(grad, raw, m), self._claim(grad, jittered, m))
        if self.kit.name == "torch":
            batch.exact, batch.exact_p = self._autograd(fwd, raw, m), self._autograd(fwd, jittered, m)
        elif self.use_complex:
            batch.exact = self._complex_step(fwd, raw, m)
            batch.exact_p = self._complex_step(fwd, jittered, m) if batch.exact is not None else None
            if batch.exact is None or batch.exact_p is None:
                self.use_complex = False
                batch.exact = batch.exact_p = None
        return batch

    def _slack(self, b: _Batch) -> np.ndarray:
        """Rounding in the extrapolated difference: about 1.5 * (rounding of f) / h, generously."""
        return 6.0 * (EPS * _absmax(b.f0) + b.noise_f) / b.hmin

    def _unstable(self, b: _Batch) -> np.ndarray:
        """Samples with a kink or a jump within the step: the steps h and 2h disagree, or
        the 4th difference is not small (a kink exactly at the sample)."""
        d1, d2, d4 = _cat(b.d1), _cat(b.d2), _cat(b.d4)
        with np.errstate(invalid="ignore"):
            gap = np.maximum(np.abs(d1 - d2), np.abs(d4))
            diff = np.where(np.isfinite(gap), gap, np.inf).max(axis=1, initial=0.0)
        return ~(diff <= self.tol.central * _absmax(d2) + 2 * self._slack(b))

    def _bad(self, b: _Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nonfinite = ~np.isfinite(b.f0).all(axis=1)
        unstable = self._unstable(b) & ~nonfinite
        exact_bad = np.zeros_like(nonfinite)
        if b.exact is not None:
            exact_bad = ~np.isfinite(_cat(b.exact)).all(axis=1) & ~nonfinite & ~unstable
        return nonfinite, unstable, exact_bad

    def detect(self, raw: dict[str, np.ndarray], count: int) -> tuple[_Caller, _Caller]:
        """Which array library the callables speak: numpy first, torch when numpy fails."""
        kinds = [self.backend] if self.backend else ["numpy", "torch"]
        errors = []
        for kind in kinds:
            try:
                kit = _NumpyKit() if kind == "numpy" else _TorchKit()
            except ImportError:
                errors.append(f"{kind}: torch is not installed")
                continue
            self.kit = kit
            try:
                return self._probe(raw, count)
            except SpecError:
                raise
            except Exception as exc:  # the user's code does not run on this kind of array
                errors.append(f"on {kind} float64 inputs: {type(exc).__name__}: {_one_line(exc)}")
        raise SpecError(f"{self.name}: the forward or the gradient failed "
                        f"{'; '.join(errors)}; check the argument names "
                        f"({', '.join(i.name for i in self.ins)}) and shapes")

    def _probe(self, raw: dict[str, np.ndarray], count: int) -> tuple[_Caller, _Caller]:
        fname, gname = _name(self.forward), _name(self.gradient)
        names = [i.name for i in self.ins]
        fwd = _Caller(_by_name(self.forward, names, f"forward {fname}"), f"forward {fname}", self.kit, _forward_split(f"forward {fname}"), True)
        grad = _Caller(_by_name(self.gradient, names, f"gradient {gname}"), f"gradient {gname}", self.kit,
                       _gradient_split(f"gradient {gname}", self.wrt), False)
        args = self._args(raw)
        try:
            fwd.probe(args, count)
        except _NotThisKind as exc:
            raise RuntimeError(f"forward {exc}") from exc
        assert fwd.shapes is not None
        out_shape = self.out_shape = fwd.shapes[0]
        by_name = {i.name: i for i in self.ins}
        shapes = {k: tuple(raw[k].shape[1:]) for k in by_name}
        expected = [(*out_shape, *shapes[k]) for k in self.wrt]

        def describe(i: int, got: tuple[int, ...]) -> str:
            k = self.wrt[i]
            what = ("the shape of " + k) if not out_shape else \
                f"forward output shape {out_shape} + shape of {k} {shapes[k]}"
            hint = ""
            if out_shape and got == out_shape and out_shape == shapes[k]:
                hint = ("; for an elementwise forward the Jacobian is diagonal: return np.diag(d) "
                        "(torch.diag(d))")
            return (f"gradient {gname} returned shape {got} for {k!r}; expected "
                    f"{expected[i]} ({what}){hint}")
        try:
            grad.probe(args, count, expected, describe)
        except _NotThisKind as exc:
            raise RuntimeError(f"gradient {exc}") from exc
        return fwd, grad

    def run_size(self, sizes: dict[str, int], index: int, first: bool) -> SizeResult:
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, index])
        count = self.samples
        raw = _draw(self.ins, sizes, rng, count)
        if first or self.kit is None:
            fwd, grad = self.detect(raw, count)
        else:
            fwd, grad = self._probe(raw, count)
        notes: list[str] = []
        batch = self._evaluate(fwd, grad, raw, rng)
        redrawn = 0
        for _ in range(_ROUNDS):
            bad = np.logical_or.reduce(self._bad(batch))
            if not bad.any():
                break
            redrawn += int(bad.sum())
            idx = np.flatnonzero(bad)
            fresh = self._evaluate(fwd, grad, _draw(self.ins, sizes, rng, len(idx)), rng)
            batch.replace(idx, fresh)
        if redrawn:
            notes.append(f"{redrawn} samples redrawn (non-finite forward, or a kink within the "
                         "finite-difference step)")
        mode = self.kit.name
        label_sizes = ", ".join([mode, "float64", *(f"{k}={n}" for k, n in sizes.items())])
        nonfinite, unstable, exact_bad = self._bad(batch)

        def stop(reason: str, sources: tuple[str, ...] = ()) -> SizeResult:
            return SizeResult(dict(sizes), INCONCLUSIVE, _NO_PROOF, (), reason, None, sources,
                              tuple(notes), round(time.perf_counter() - start, 4))

        if nonfinite.any():
            return stop(f"the forward value is not finite at {int(nonfinite.sum())} of {count} "
                        "samples even after redrawing; no finite reference")
        if unstable.any():
            return stop(f"central differences are unstable at {int(unstable.sum())} of {count} samples "
                        "even after redrawing (a kink or jump within the step, such as relu or abs at 0, "
                        "or curvature on the scale of the step), e.g. at "
                        f"{_inputs_at(batch.raw, int(np.argmax(unstable)))}: no witness, no verdict")
        if exact_bad.any():
            truth = "autograd" if mode == "torch" else "complex step"
            return stop(f"the {truth} derivative is not finite at {int(exact_bad.sum())} of {count} samples")

        exact_name = "autograd" if mode == "torch" else "complex step"
        slack = self._slack(batch)
        floor = self.tol.noise_factor * EPS * batch.mag**2
        fd_err = _noise(_cat(batch.d1), _cat(batch.d2))
        rich = {k: batch.richardson(k) for k in self.wrt}
        if batch.exact is not None:
            noise_t = _noise(_cat(batch.exact), _cat(batch.exact_p))
            cmp = compare(_cat(rich), _cat(batch.exact), self.tol.central, noise_t, self.tol.noise_factor,
                          atol=slack + floor + fd_err)
            if not cmp.ok:
                s, e = cmp.worst
                a, b = _cat(batch.exact)[s, e], _cat(rich)[s, e]
                detail = (f"truth sources disagree: {exact_name} = {_fmt(a)} but central differences = "
                          f"{_fmt(b)} (|diff| {_fmt(cmp.abs_error[s])} > tol {_fmt(cmp.tol[s])}) at "
                          f"{_inputs_at(batch.raw, s)}")
                if mode == "torch":
                    return stop(f"d/d({', '.join(self.wrt)}) [{label_sizes}]: {detail}",
                                (exact_name, "central differences"))
                notes.append(f"complex step not used: it gives {_fmt(a)} but central differences {_fmt(b)} "
                             f"at sample {s}; the forward is not complex-analytic (abs, real parts, comparisons?)")
                self.use_complex = False
                batch.exact = batch.exact_p = None
        sources = ((exact_name,) if batch.exact is not None else ()) + ("central differences",)
        fd_only = batch.exact is None
        if fd_only:
            why = ("the forward is numpy code that does not accept complex input, or is not complex-analytic"
                   if mode == "numpy" else "no exact truth")
            notes.append(f"central differences only ({why}): at most consistent; relative errors "
                         f"below {_fmt(max(self.tol.central, self.rtol or 0.0))} cannot be refuted "
                         "(write the forward in torch, or make it accept complex input, for a sharper check)")

        errors: list[Comparison] = []
        refuted: dict[str, Any] | None = None
        rtol_used = max(self.tol.central, self.rtol or 0.0) if fd_only else (self.rtol or self.tol.exact)
        for k in self.wrt:
            claimed = batch.claim[k]
            noise = np.maximum(_noise(claimed, batch.claim_p[k]),
                               _noise(batch.exact[k], batch.exact_p[k]) if not fd_only else 0.0)
            fd_tol = slack + floor + fd_err
            if fd_only:
                primary = compare(claimed, rich[k], rtol_used, noise, self.tol.noise_factor, atol=fd_tol)
                fails = primary.abs_error > primary.tol
                truth = rich[k]
            else:
                assert batch.exact is not None
                primary = compare(claimed, batch.exact[k], rtol_used, noise, self.tol.noise_factor, atol=floor)
                witness = compare(claimed, rich[k], max(RICHARDSON_RTOL, rtol_used), noise,
                                  self.tol.noise_factor, atol=fd_tol)
                fails = (primary.abs_error > primary.tol) & (witness.abs_error > witness.tol)
                shielded = int(((primary.abs_error > primary.tol) & ~fails).sum())
                if shielded:
                    notes.append(f"d/d{k}: at {shielded} samples the gradient differs from the {exact_name} "
                                 f"(max rel {_fmt(primary.max_rel)}) but agrees with the extrapolated central "
                                 "differences; not refuted there, since the exact truth may be the one that is "
                                 "off (abs, real parts or detach in the forward?)")
                truth = batch.exact[k]
            errors.append(primary)
            if fails.any() and refuted is None:
                refuted = _counterexample(primary, fails, claimed, truth, batch.raw,
                                          (*self.out_shape, *batch.raw[k].shape[1:]), self.seed)
                refuted.update(kind="gradient", claim=f"d/d{k}", wrt=k, backend=mode, sizes=dict(sizes),
                               truth="central differences" if fd_only else exact_name)
                refuted["rerun"] = (f"derive.check_gradient(<{_name(self.forward)}>, "
                                    f"<{_name(self.gradient)}>, seed={self.seed})")
        numeric = (Numeric(mode, "float64", count, max(c.max_abs for c in errors),
                           max(c.max_rel for c in errors), rtol_used),)
        seconds = round(time.perf_counter() - start, 4)
        if refuted is not None:
            reason = (f"{refuted['claim']} [{label_sizes}]: max|claim - truth| = {_fmt(refuted['abs_error'])} "
                      f"at entry {tuple(refuted['entry'])} > tol {_fmt(refuted['tolerance'])}; seed={self.seed}")
            return SizeResult(dict(sizes), REFUTED, _NO_PROOF, numeric, reason, refuted, sources,
                              tuple(notes), seconds)
        reason = (f"agrees with {' and '.join(sources)} at {count} samples [{label_sizes}] "
                  f"(max rel error {_fmt(numeric[0].max_rel_error)}, rtol {_fmt(rtol_used)}); "
                  "no proof (user code)")
        if fd_only:
            reason += (f"; central differences only: relative errors below {_fmt(rtol_used)} "
                       "cannot be refuted")
        return SizeResult(dict(sizes), CONSISTENT, _NO_PROOF, numeric, reason, None, sources,
                          tuple(notes), seconds)


def check_gradient(forward: Callable[..., Any], gradient: Callable[..., Any], *, inputs: Any,
                   wrt: str | Sequence[str] | None = None, sizes: Any = None, samples: int = DEFAULT_SAMPLES,
                   seed: int = 0, backend: str | None = None, rtol: float | None = None,
                   name: str | None = None, dtype: Any = "float64") -> Result:
    """Judge a hand-written `gradient` of `forward` (numpy or torch code, called with the inputs
    as keyword arguments) on random inputs drawn inside the declared domains.

    `gradient` returns, per name in `wrt` (a tuple or dict for several), an array of shape
    forward-output shape + input shape (the gradient for a scalar forward, the Jacobian for an
    array one), or a scalar, a constant that broadcasts to that shape; any other shape is an
    error. Returns a Result: "consistent", "refuted" (with a reproducible counterexample)
    or "inconclusive" (also where every sample lands on a kink, such as relu at 0); never
    "proved". Raises SpecError for malformed arguments only.

    `dtype` (float32, float16, bfloat16) also runs the gradient code in that precision, at the
    same inputs rounded to it, after its formula was judged in float64; see
    `derive.usercode.gradient_dtype` for the rule.
    """
    start = time.perf_counter()
    for label, fn in (("forward", forward), ("gradient", gradient)):
        if not callable(fn):
            raise SpecError(f"{label} must be a callable (a function of the inputs), got {type(fn).__name__}")
    _validate_common(samples, seed, rtol)
    dtype = dtype_name(dtype)
    if backend not in (None, "numpy", "torch"):
        raise SpecError(f"backend must be None (detect), 'numpy' or 'torch', got {backend!r}")
    if name is not None and not isinstance(name, str):
        raise SpecError(f"name must be a string, got {name!r}")
    ins = _parse_inputs(inputs)
    size_sets = _parse_sizes(sizes, ins)
    _check_volume(ins, size_sets, samples)
    wrt_names = _parse_wrt(wrt, ins)
    if backend == "torch":
        _require_torch("backend='torch'")
    check = _GradientCheck(forward, gradient, ins, wrt_names, samples, seed, backend,
                           float(rtol) if rtol is not None else None, name or _name(forward))
    per_size = []
    for i, s in enumerate(size_sets):
        check.use_complex = True
        per_size.append(check.run_size(s, i, first=i == 0))
        if dtype != "float64" and per_size[-1].verdict == "consistent":
            rerun = (f"derive.check_gradient({check.name}, {_name(gradient)}, inputs={inputs!r}, sizes={s!r}, "
                     f"samples={samples}, seed={seed}, dtype={dtype!r})")
            per_size.append(low_precision(check, s, i, dtype, rerun))
    return _combine(check.name, per_size, start, "user code")


def assert_gradient(forward: Callable[..., Any], gradient: Callable[..., Any], **options: Any) -> Result:
    """check_gradient, raising AssertionError with the counterexample unless it is consistent."""
    result = check_gradient(forward, gradient, **options)
    if not result.ok:
        raise AssertionError(_message(result, f"check_gradient({result.name}, {_name(gradient)})"))
    return result
