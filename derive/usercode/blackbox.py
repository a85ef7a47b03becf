"""A torch.autograd.Function checked as a black box, one sample at a time, in float64: for forwards
that autograd cannot see into (custom kernels, numpy inside), where central differences and the
complex step are the only truths. `derive.usercode.function` uses it when it must."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError
from ..model.verdict import (
    CONSISTENT,
    INCONCLUSIVE,
    REFUTED,
    Numeric,
    SizeResult,
)
from ..numeric.tolerance import EPS, TOLERANCES, Tolerance, compare
from .calling import (
    _absmax,
    _counterexample,
    _noise,
)
from .arguments import Slot, draw
from .inputs import (
    _FD_STEP,
    _NO_PROOF,
    _ROUNDS,
    COMPLEX_STEP,
    DIRECTIONS,
    RICHARDSON_RTOL,
    _fmt,
    _jitter,
    _one_line,
)

# --- check_autograd_function ------------------------------------------------------------------

@dataclass
class _FunctionCheck:
    fn_class: Any
    slots: list[Slot]
    samples: int
    seed: int
    rtol: float | None
    torch: Any
    rerun: str = ""
    tol: Tolerance = field(default_factory=lambda: TOLERANCES["float64"])
    use_complex: bool = True

    def _args(self, values: dict[str, Any]) -> list[Any]:
        """The forward's positional arguments: drawn values by name, fixed ones as given."""
        return [values[s.name] if s.drawn else s.value for s in self.slots]

    def _projected_vjps(self, outs: list[Any], leaves: list[Any], v: np.ndarray, u: np.ndarray,
                        sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(v_i^T J) u_k by autograd through `outs` for every cotangent v_i and direction u_k,
        and the same with absolute values (a rounding scale)."""
        torch = self.torch
        proj = np.zeros((len(v), len(u)))
        absum = np.zeros((len(v), len(u)))
        for i in range(len(v)):
            cot, offset = [], 0
            for o in outs:
                cot.append(torch.as_tensor(v[i, offset:offset + o.numel()]).reshape(o.shape).to(o.dtype))
                offset += o.numel()
            pairs = [(o, c) for o, c in zip(outs, cot) if o.requires_grad]
            grads = (torch.autograd.grad([p[0] for p in pairs], leaves, grad_outputs=[p[1] for p in pairs],
                                         retain_graph=True, allow_unused=True) if pairs else [None] * len(leaves))
            g = np.concatenate([np.zeros(s) if gr is None else gr.detach().cpu().numpy().ravel()
                                for gr, s in zip(grads, sizes)])
            proj[i] = u @ g
            absum[i] = np.abs(u) @ np.abs(g)
        return proj, absum

    def _apply(self, values: dict[str, np.ndarray | Any], grad: bool = False) -> list[Any]:
        torch = self.torch
        args = self._args({k: v if isinstance(v, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(v))
                           for k, v in values.items()})
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.filterwarnings("error", message=".*imaginary part.*")
            if grad:
                out = self.fn_class.apply(*args)
            else:
                with torch.no_grad():
                    out = self.fn_class.apply(*args)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return [o for o in outs if isinstance(o, torch.Tensor)]

    def _value(self, values: dict[str, Any]) -> np.ndarray:
        outs = self._apply(values)
        if not outs:
            raise SpecError(f"{self.fn_class.__name__}.apply returned no tensor")
        return np.concatenate([o.detach().cpu().numpy().astype(np.complex128 if o.is_complex() else np.float64)
                               .ravel() for o in outs])

    def _sample(self, raw: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, Any] | None:
        """One sample's comparisons; None where the forward is not finite or a kink is in the step."""
        torch = self.torch
        diff = [s.name for s in self.slots if s.drawn and s.differentiable]
        f0 = self._value(raw)
        if f0.dtype.kind == "c" or not np.isfinite(f0).all():
            return None
        m = f0.size
        sizes = [raw[n].size for n in diff]
        n_total = sum(sizes)
        xmax = max(float(np.max(np.abs(raw[n]), initial=0.0)) for n in diff)
        h = _FD_STEP * max(1.0, xmax)
        u = rng.normal(size=(DIRECTIONS, n_total))
        u /= np.max(np.abs(u), axis=1, keepdims=True)
        v = rng.normal(size=(DIRECTIONS, m))

        def moved(vals: dict[str, np.ndarray], step: Any) -> dict[str, Any]:
            out = dict(vals)
            offset = 0
            for n, size in zip(diff, sizes):
                out[n] = vals[n] + step[offset:offset + size].reshape(vals[n].shape)
                offset += size
            return out

        def measure(vals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            fv = self._value(vals)
            d1, d2, cs = [], [], []
            for k in range(DIRECTIONS):
                fp, fm = self._value(moved(vals, h * u[k])), self._value(moved(vals, -h * u[k]))
                fp2, fm2 = self._value(moved(vals, 2 * h * u[k])), self._value(moved(vals, -2 * h * u[k]))
                d1.append((fp - fm) / (2 * h))
                d2.append((fp2 - fm2) / (4 * h))
                if self.use_complex:
                    try:
                        z = self._value(moved({n: np.asarray(a, dtype=np.complex128) if n in diff else a
                                               for n, a in vals.items()}, 1j * COMPLEX_STEP * u[k]))
                        if z.dtype.kind != "c":
                            raise TypeError("real output")
                        cs.append(z.imag / COMPLEX_STEP)
                    except Exception:
                        self.use_complex = False
            leaves = {n: torch.as_tensor(np.ascontiguousarray(a)) for n, a in vals.items()}
            for n in diff:
                leaves[n] = leaves[n].clone().requires_grad_(True)
            with torch.enable_grad():
                outs = self._apply(leaves, grad=True)
                try:
                    claim, absum = self._projected_vjps(outs, [leaves[n] for n in diff], v, u, sizes)
                except RuntimeError as exc:
                    raise SpecError(f"{self.fn_class.__name__}.backward failed: {_one_line(exc)}") from exc
            rich = [(4 * a - b) / 3 for a, b in zip(d1, d2)]
            res = {"f": fv, "d1": v @ np.stack(d1, 1), "d2": v @ np.stack(d2, 1),
                   "rich": v @ np.stack(rich, 1), "claim": claim, "absum": absum,
                   "fd_abs": np.abs(v) @ np.abs(np.stack(rich, 1))}
            if self.use_complex and len(cs) == DIRECTIONS:
                res["cs"] = v @ np.stack(cs, 1)
            return res

        here = measure(raw)
        jittered = _jitter(raw, diff, rng)
        there = measure(jittered)
        vnorm = float(np.max(np.sum(np.abs(v), axis=1)))
        noise_f = float(np.max(np.abs(here["f"] - there["f"]), initial=0.0))
        slack = vnorm * 6.0 * (EPS * float(np.max(np.abs(here["f"]), initial=0.0)) + noise_f) / h
        fd_err = float(np.max(np.abs(here["d1"] - here["d2"]), initial=0.0))
        if not (np.isfinite(here["d1"]).all() and np.isfinite(here["d2"]).all()) or \
                fd_err > self.tol.central * float(np.max(np.abs(here["d2"]), initial=0.0)) + 2 * slack:
            return None
        mag = max(1.0, xmax, float(np.max(np.abs(f0), initial=0.0)))
        out = {"raw": raw, "u": u, "v": v, "here": here, "there": there, "slack": slack, "fd_err": fd_err,
               "round": EPS * self.tol.noise_factor * (float(_absmax(here["absum"][None])[0]) +
                                                       float(np.max(here["fd_abs"])) * mag)}
        return out

    def run_size(self, sizes: dict[str, int], index: int) -> SizeResult:
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, index])
        rows: list[dict[str, Any]] = []
        redrawn = 0
        for _ in range(self.samples):
            row = None
            for _attempt in range(_ROUNDS + 1):
                raw = {k: v[0] for k, v in draw(self.slots, rng, 1, sizes, first=len(rows) + _attempt).items()}
                row = self._sample(raw, rng)
                if row is not None:
                    break
                redrawn += 1
            if row is None:
                return SizeResult(dict(sizes), INCONCLUSIVE, _NO_PROOF, (),
                                  f"the forward value is not finite, or central differences are unstable, "
                                  f"at a sample even after {_ROUNDS} redraws; no finite reference",
                                  None, (), (), round(time.perf_counter() - start, 4))
            rows.append(row)
            if redrawn > self.samples:  # more than half the draws: the rest no longer stand for the inputs
                return SizeResult(dict(sizes), INCONCLUSIVE, _NO_PROOF, (),
                                  f"{redrawn} of {redrawn + len(rows)} drawn samples were redrawn (non-finite "
                                  "forward, or a kink within the finite-difference step); the rest do not stand "
                                  "for the inputs: declare a domain or pass example args away from the kinks",
                                  None, (), (), round(time.perf_counter() - start, 4))
        count = len(rows)
        label_sizes = ", ".join(["torch", "float64", *(f"{k}={n}" for k, n in sizes.items())])
        notes = [f"{DIRECTIONS}x{DIRECTIONS} (cotangent, direction) pairs per sample, fresh Gaussian"]
        if redrawn:
            notes.append(f"{redrawn} samples redrawn (non-finite forward, or a kink within the step)")

        def stack(key: str, where: str = "here") -> np.ndarray:
            return np.stack([r[where][key].ravel() for r in rows])

        claim, claim_p = stack("claim"), stack("claim", "there")
        rich = stack("rich")
        slack = np.array([r["slack"] for r in rows])
        fd_err = np.array([r["fd_err"] for r in rows])
        rounding = np.array([r["round"] for r in rows])
        noise_c = _noise(claim, claim_p)
        sources: tuple[str, ...] = ("central differences",)
        # the exact truth: the complex step, where the forward runs on complex tensors (autograd of
        # its own operations is derive.usercode.function's truth; this path is for when it is none)
        exact_name, have_cs = "", False
        for key, what in (("cs", "complex step"),):
            if (key != "cs" or self.use_complex) and all(key in r["here"] and key in r["there"] for r in rows):
                cs, cs_p = stack(key), stack(key, "there")
                noise = np.maximum(noise_c, _noise(cs, cs_p))
                agree = compare(rich, cs, self.tol.central, noise, self.tol.noise_factor,
                                atol=slack + fd_err + rounding)
                if agree.ok:
                    exact_name, have_cs, sources = what, True, (what, "central differences")
                    break
                s, e = agree.worst
                notes.append(f"{what} not used: it gives {_fmt(cs[s, e])} but central differences "
                             f"{_fmt(rich[s, e])}" + ("; the forward is not complex-analytic" if key == "cs" else ""))
        if have_cs:
            rtol_used = self.rtol or self.tol.exact
            primary = compare(claim, cs, rtol_used, noise, self.tol.noise_factor, atol=rounding)
            witness = compare(claim, rich, max(RICHARDSON_RTOL, rtol_used), noise, self.tol.noise_factor,
                              atol=slack + fd_err + rounding)
            fails = (primary.abs_error > primary.tol) & (witness.abs_error > witness.tol)
            shielded = int(((primary.abs_error > primary.tol) & ~fails).sum())
            if shielded:
                notes.append(f"at {shielded} samples the backward differs from the {exact_name} "
                             f"(max rel {_fmt(primary.max_rel)}) but agrees with the extrapolated central "
                             f"differences; not refuted there, since the {exact_name} may be the one that is off")
            truth = cs
        else:
            rtol_used = max(self.tol.central, self.rtol or 0.0)
            noise = noise_c
            primary = compare(claim, rich, rtol_used, noise, self.tol.noise_factor,
                              atol=slack + fd_err + rounding)
            fails = primary.abs_error > primary.tol
            truth = rich
            notes.append(f"the forward neither runs on complex tensors nor is built from differentiable torch "
                         f"operations: central differences only, at most consistent; relative errors below "
                         f"{_fmt(rtol_used)} cannot be refuted")
        fails = fails | ~np.isfinite(claim).all(axis=1)  # a NaN backward never passes a comparison
        numeric = (Numeric("torch", "float64", count, primary.max_abs, primary.max_rel, rtol_used),)
        seconds = round(time.perf_counter() - start, 4)
        name = self.fn_class.__name__
        if fails.any():
            raw = {k: np.stack([r["raw"][k] for r in rows]) for k in rows[0]["raw"]}
            cx = _counterexample(primary, fails, claim, truth, raw, (DIRECTIONS, DIRECTIONS), self.seed)
            s = cx["sample"]
            i, k = cx["entry"]
            cx.update(kind="vjp", claim=f"{name}.backward", backend="torch", sizes=dict(sizes),
                      truth=sources[0], cotangent=rows[s]["v"][i].tolist(), direction=rows[s]["u"][k].tolist(),
                      rerun=self.rerun)
            reason = (f"{name}.backward [{label_sizes}]: max|(v^T J) u - v^T (J u)| = {_fmt(cx['abs_error'])} "
                      f"at (cotangent, direction) {tuple(cx['entry'])} > tol {_fmt(cx['tolerance'])}; "
                      f"seed={self.seed}")
            return SizeResult(dict(sizes), REFUTED, _NO_PROOF, numeric, reason, cx, sources, tuple(notes), seconds)
        reason = (f"backward agrees with {' and '.join(sources)} in VJP checks at {count} samples "
                  f"[{label_sizes}] (max rel error {_fmt(primary.max_rel)}, rtol {_fmt(rtol_used)}); "
                  "no proof (user code)")
        if not have_cs:
            reason += f"; central differences only: relative errors below {_fmt(rtol_used)} cannot be refuted"
        return SizeResult(dict(sizes), CONSISTENT, _NO_PROOF, numeric, reason, None, sources, tuple(notes), seconds)
