"""Check a hand-written backward against a declared forward, fast: batched VJPs at any size.

`check_backward(MySoftmax, "softmax_jacobian", sizes={"n": 256}, samples=1000)` says that
`MySoftmax` (a torch.autograd.Function, or any torch callable) computes the identity's target,
and checks its backward. Because the forward is declared, exact truths exist:

  * torch autograd of each library reference (torch.softmax, F.cross_entropy), vmapped: the
    first one judges every sample (a library kernel is the fastest exact truth);
  * torch autograd of the forward definition, evaluated from the identity's indexed (every-n)
    form in a handful of array operations (`derive.indexed_eval`): it judges every sample when
    there is no reference, and otherwise must agree with the reference on the first 64
    samples of every chunk;
  * the SymPy derivative derived once for symbolic n, evaluated on a few samples (its full
    Jacobian is n x n per sample), and the complex step (or central differences, for a
    forward with kinks) of the definition along a random direction: the witnesses that the
    truths are right.

All samples are checked at once in chunks (bounded memory), each with `cotangents` fresh
mean-zero random cotangents v (uniform, variance one): the claim is the backward's v^T J,
compared entry by entry with the truth's, normwise per sample at 1e-11 relative plus the
measured conditioning noise (the truth recomputed at inputs moved by 4 ulps) plus the rounding
slack of black-box code. The cost per sample is a few forward and backward passes, whatever n is.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np
import sympy as sp

from .. import catalog
from ..errors import SpecError, UnsupportedError
from ..model.domains import Label
from ..model.spec import Identity
from ..model.verdict import (
    CONSISTENT,
    INCONCLUSIVE,
    REFUTED,
    Numeric,
    Result,
    SizeResult,
    Symbolic,
)
from ..numeric.backends import resolve_device
from ..numeric.indexed_eval import Evaluator, kit
from ..numeric.tolerance import EPS, TOLERANCES, compare
from ..symbolic.every_n import derive_indexed
from ..symbolic.graph import NONSMOOTH
from ..symbolic.indexed_graph import build_indexed

__all__ = ["BackwardCheck", "check_backward"]

AGREE_SAMPLES = 64
"""Samples per chunk on which every other truth source must agree with the first."""
WITNESS_ENTRIES = 2**17
"""Jacobian entries (samples x n_out x n_in) the SymPy-derivative witness evaluates per run."""
CHUNK_ENTRIES = 2**20
"""Input or output entries per chunk: peak memory stays near a few hundred MB at any count."""
_NO_PROOF = Symbolic("not applicable", 0.0, detail="user code: no formula to prove")


def _callable(fn: Any) -> Callable[..., Any]:
    try:
        import torch
    except ImportError as exc:
        raise SpecError("check_backward needs torch; pip install 'derive-checker[torch]'") from exc
    if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
        return fn.apply
    if not callable(fn):
        raise SpecError(f"fn must be a torch.autograd.Function subclass or a callable, got {fn!r}")
    return fn


@dataclass
class _Batch:
    """Samples as drawn (labels as integers); `encode` gives them as the formulas read them
    (labels one-hot), called only where needed (the few samples the witnesses use)."""

    raw: dict[str, np.ndarray]
    encode: Callable[[str, np.ndarray], np.ndarray]

    def head(self, count: int) -> "_Batch":
        return _Batch({k: a[:count] for k, a in self.raw.items()}, self.encode)


class BackwardCheck:
    """The one-time set-up for one function, identity and size; `run` checks samples."""

    def __init__(self, fn: Any, identity: str | Identity, sizes: Mapping[str, int] | None = None, *,
                 device: str = "cpu") -> None:
        import torch

        start = time.perf_counter()
        self.torch = torch
        self.fn = _callable(fn)
        self.name = getattr(fn, "__name__", "backward")
        self.identity = catalog.get(identity) if isinstance(identity, str) else identity
        if not isinstance(self.identity, Identity):
            raise SpecError(f"identity must be a catalog name or an Identity, got {identity!r}")
        self.sizes = dict(sizes if sizes is not None else self.identity.sizes[0])
        for k, n in self.sizes.items():
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 65536:
                raise SpecError(f"size {k}={n!r} must be an integer from 1 to 65536")
        self.device = resolve_device(device)
        self.graph = build_indexed(self.identity, require_sizes=False)
        missing = sorted({str(s) for s in self.graph.sizes.values()} - set(self.sizes))
        if missing:
            raise SpecError(f"sizes {self.sizes} do not give {', '.join(missing)} for {self.identity.name}")
        self.derivation = derive_indexed(self.graph, display=False)
        self.evaluator = Evaluator(self.graph, self.sizes)
        self.diff = [v for v in self.identity.variables if v.domain.differentiable]
        self.shapes = {v.name: v.resolve(self.sizes) for v in self.identity.variables}
        self.target_shape = tuple(int(d) for d in self._target_shape())
        self.claim = next((c for c in self.graph.claims if c.wrt in {v.name for v in self.diff}
                           and self.identity.claims[c.index].wrt), None)
        # analytic forward: the complex step is a witness; kinks: central differences
        self.analytic = not any(self._entry(node).has(*NONSMOOTH) for node in self.graph.nodes.values()
                                if node.formula is not None)
        self.setup_seconds = time.perf_counter() - start

    @staticmethod
    def _entry(node: Any) -> Any:
        """A node's defining formula at its own indices (a SymPy expression)."""
        return node.formula.entry(*node.index) if node.index else sp.sympify(node.formula)

    def _target_shape(self) -> tuple[int, ...]:
        node = self.graph.nodes[self.graph.target]
        subs = {sym: self.sizes[str(sym)] for sym in self.graph.sizes.values()}
        return tuple(int(d.xreplace(subs)) if hasattr(d, "xreplace") else int(d) for d in node.shape)

    # --- inputs -------------------------------------------------------------------------------

    def _draw(self, rng: np.random.Generator, count: int) -> _Batch:
        raw = {v.name: v.domain.sample(rng, (count, *self.shapes[v.name]), self.sizes)
               for v in self.identity.variables}
        return _Batch(raw, self._encode)

    def _encode(self, name: str, values: np.ndarray) -> np.ndarray:
        v = self.identity.variable(name)
        return v.domain.encode(values, self.sizes).reshape(
            values.shape[0], *v.domain.formula_shape(self.shapes[name], self.sizes))

    def _tensors(self, batch: _Batch, moved: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Leaves (requires_grad) for the differentiable variables, as raw and as encoded;
        `moved` multiplies them (the inputs moved by a few ulps)."""
        torch = self.torch
        raw, enc = {}, {}
        for v in self.identity.variables:
            if isinstance(v.domain, Label):
                raw[v.name] = torch.as_tensor(batch.raw[v.name], dtype=torch.int64, device=self.device)
            else:
                raw[v.name] = torch.as_tensor(batch.raw[v.name], dtype=torch.float64, device=self.device)
                if v.domain.differentiable:
                    if moved is not None:
                        raw[v.name] = raw[v.name] * moved[v.name]
                    raw[v.name] = raw[v.name].clone().requires_grad_(True)
            enc[v.name] = raw[v.name] if not isinstance(v.domain, Label) and v.domain.differentiable else \
                torch.as_tensor(batch.encode(v.name, batch.raw[v.name]), dtype=torch.float64, device=self.device)
        return raw, enc

    # --- truths and claim ---------------------------------------------------------------------

    def _vjps(self, out: Any, leaves: list[Any], cot: Any) -> Any:
        """(K * count, total input entries): v_k^T J for each cotangent, a detached tensor."""
        torch = self.torch
        k = cot.shape[0]
        try:  # all cotangents in one batched backward pass
            grads = torch.autograd.grad(out, leaves, grad_outputs=cot.reshape(k, *out.shape),
                                        retain_graph=True, allow_unused=True, is_grads_batched=True)
        except RuntimeError:  # a backward that vmap cannot batch: one pass per cotangent
            per = [torch.autograd.grad(out, leaves, grad_outputs=cot[i].reshape(out.shape),
                                       retain_graph=True, allow_unused=True) for i in range(k)]
            grads = tuple(None if per[0][j] is None else torch.stack([p[j] for p in per])
                          for j in range(len(leaves)))
        parts = [(torch.zeros((k, *x.shape), dtype=x.dtype, device=x.device) if g is None else g)
                 .reshape(k * x.shape[0], -1) for g, x in zip(grads, leaves)]
        return (parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)).detach()

    def _definition(self, batch: _Batch, cot: Any, moved: Any = None) -> tuple[Any, Any]:
        raw, enc = self._tensors(batch, moved)
        count = cot.shape[1]
        values = self.evaluator.forward(enc, count, kit("torch"))
        out = values[self.graph.target].reshape(count, *self.target_shape)
        return out.detach(), self._vjps(out, [raw[v.name] for v in self.diff], cot)

    def _library(self, fn: Callable[..., Any], batch: _Batch, cot: Any, what: str,
                 moved: dict[str, Any] | None = None) -> tuple[Any, Any]:
        torch = self.torch
        raw, _ = self._tensors(batch, moved)
        args = [raw[v.name] for v in self.identity.variables]
        count = cot.shape[1]
        try:
            out = torch.func.vmap(fn)(*args)
        except Exception:  # not vmappable: one sample at a time (slow, still exact)
            try:
                out = torch.stack([torch.as_tensor(fn(*(a[s] for a in args))) for s in range(count)])
            except Exception as exc:
                raise SpecError(f"{what} failed on a sample: {type(exc).__name__}: {exc}") from exc
        out = out.reshape(count, *self.target_shape)
        if not out.requires_grad:
            raise SpecError(f"{what} returned a value that does not depend on its inputs through autograd")
        return out.detach(), self._vjps(out, [raw[v.name] for v in self.diff], cot)

    def _witness_sympy(self, batch: _Batch, cot: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
        """The SymPy derivative (derived for every n) on samples idx, contracted with v."""
        if self.claim is None or self.claim.wrt != self.diff[0].name or len(self.diff) != 1:
            return None
        count = len(idx)
        enc = {k: batch.encode(k, v[idx]) for k, v in batch.raw.items()}
        values = self.evaluator.forward(enc, count, kit("numpy"))
        jac = self.evaluator.evaluate(self.derivation.derived[self.claim.index], values,
                                      tuple(self.claim.indices), count, kit("numpy"))
        m = int(np.prod(self.target_shape))
        jac = np.asarray(jac).reshape(count, m, -1)
        return np.einsum("kcm,cmw->kcw", cot[:, idx].reshape(cot.shape[0], count, m), jac)

    def _witness_direction(self, batch: _Batch, idx: np.ndarray, u: np.ndarray) -> np.ndarray:
        """J u on samples idx from the definition: complex step, or central differences."""
        count = len(idx)
        offset = 0
        plus, minus, imag = {}, {}, {}
        encoded = {k: batch.encode(k, v[idx]) for k, v in batch.raw.items()}
        xmax = max(float(np.max(np.abs(encoded[v.name]), initial=0.0)) for v in self.diff)
        h = EPS ** (1 / 3) * max(1.0, xmax)
        for v in self.identity.variables:
            base = encoded[v.name]
            if v.domain.differentiable:
                size = int(np.prod(base.shape[1:]))
                step = u[:, offset:offset + size].reshape(base.shape)
                offset += size
                imag[v.name] = base + 1e-30j * step
                plus[v.name], minus[v.name] = base + h * step, base - h * step
            else:
                imag[v.name] = base.astype(np.complex128)
                plus[v.name] = minus[v.name] = base
        numpy = kit("numpy")
        t = self.graph.target
        with np.errstate(all="ignore"):
            if self.analytic:
                return np.asarray(self.evaluator.forward(imag, count, numpy)[t]).reshape(count, -1).imag / 1e-30
            fp = np.asarray(self.evaluator.forward(plus, count, numpy)[t]).reshape(count, -1)
            fm = np.asarray(self.evaluator.forward(minus, count, numpy)[t]).reshape(count, -1)
        return (fp - fm) / (2 * h)

    # --- the run ------------------------------------------------------------------------------

    def run(self, samples: int = 1000, *, seed: int = 0, cotangents: int = 2,
            chunk: int | None = None) -> Result:
        """Check the backward on `samples` random inputs; returns the verdict with evidence."""
        for what, value, low in (("samples", samples, 1), ("cotangents", cotangents, 1), ("seed", seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise SpecError(f"{what} must be an integer >= {low}, got {value!r}")
        start = time.perf_counter()
        torch = self.torch
        m = int(np.prod(self.target_shape))
        n_in = sum(int(np.prod(self.shapes[v.name])) for v in self.diff)
        if m == 1:  # a scalar target: every cotangent gives a multiple of the same gradient
            cotangents = 1
        chunk = chunk or max(1, min(samples, CHUNK_ENTRIES // max(1, max(m, n_in) * cotangents)))
        tol = TOLERANCES["float64"]
        worst: dict[str, Any] = {"ratio": -1.0}
        max_abs = max_rel = 0.0
        failing = 0
        truths: list[tuple[str, Callable[..., tuple[Any, Any]]]] = [
            (f"autograd of {ref.label}", partial(self._library, ref.forward, what=f"reference {ref.label}"))
            for ref in self.identity.references]
        truths.append(("autograd of the definition (indexed form)", self._definition))
        # the first truth judges every sample (a library kernel when there is one: fastest);
        # the others must agree with it on the first AGREE_SAMPLES samples of every chunk
        sources = [truths[0][0], *(f"{name} (on {AGREE_SAMPLES} samples per chunk)" for name, _ in truths[1:])]
        done = 0
        for c in range(math.ceil(samples / chunk)):
            count = min(chunk, samples - done)
            rng = np.random.default_rng([seed, zlib.crc32(self.identity.name.encode()), c])
            batch = self._draw(rng, count)
            # cotangents uniform on (-sqrt 3, sqrt 3): mean zero, variance one, 5x cheaper to draw
            # than Gaussian ones; the moved inputs get a random sign per entry from random bits
            cot = torch.from_numpy((rng.random((cotangents, count, m)) * 2.0 - 1.0) * math.sqrt(3.0)).to(self.device)
            moved = {v.name: torch.from_numpy(1.0 + 4 * EPS * _signs(rng, (count, *self.shapes[v.name]))).to(self.device)
                     for v in self.diff}
            value, truth = truths[0][1](batch, cot)
            largest = float(_inf_norm(value.reshape(1, -1)))  # NaN or inf if any entry is
            if not math.isfinite(largest):
                return self._stop(INCONCLUSIVE, f"the forward ({truths[0][0]}) is not finite at some samples; "
                                  "no finite reference", start, sources)
            noise = _inf_norm(truth - truths[0][1](batch, cot, moved=moved)[1])
            mags = max(1.0, largest, math.sqrt(3.0),
                       *(float(np.max(np.abs(batch.raw[v.name]), initial=0)) for v in self.diff))
            slack = tol.noise_factor * EPS * mags**2
            scale = _inf_norm(truth)
            allowed = tol.exact * scale + tol.noise_factor * noise + slack

            def errors(other: Any, rows: Any = None) -> Any:  # a NaN or inf makes the row's error inf
                ref = truth if rows is None else truth.reshape(cotangents, count, -1)[:, rows].reshape(other.shape)
                return torch.nan_to_num(_inf_norm(other - ref), nan=math.inf)

            few = min(count, AGREE_SAMPLES)
            part = batch.head(few)
            for name, fn in truths[1:]:
                other_value, other_vjp = fn(part, cot[:, :few].contiguous())
                ok_rows = allowed.reshape(cotangents, count)[:, :few].reshape(-1)
                err = errors(other_vjp, slice(0, few))
                value_off = (other_value - value[:few]).abs().reshape(few, -1).amax(dim=1) > \
                    tol.exact * value[:few].abs().reshape(few, -1).amax(dim=1) + slack
                if bool((err > ok_rows).any()) or bool(value_off.any()):
                    s = int(torch.argmax(err - ok_rows))
                    return self._stop(INCONCLUSIVE, f"truth sources disagree: {truths[0][0]} and {name} "
                                      f"differ by {float(err[s]):.3g} > {float(ok_rows[s]):.3g} (or their values "
                                      "differ)", start, sources)
            if c == 0:
                failed = self._witnesses(batch, cot.cpu().numpy(), truth.cpu().numpy(), noise.cpu().numpy(),
                                         m, n_in, sources)
                if failed:
                    return self._stop(INCONCLUSIVE, f"truth sources disagree: {failed}", start, sources)
            raw, _ = self._tensors(batch)
            claim = self._claim(raw, cot, count)
            err = errors(claim)
            max_abs = max(max_abs, float(err.max()))
            max_rel = max(max_rel, float((err / torch.where(scale > 0, scale, torch.ones_like(scale))).max()))
            ratio = err / allowed
            failing += int((ratio > 1).sum())
            s = int(torch.argmax(ratio))
            if float(ratio[s]) > 1 and float(ratio[s]) > worst["ratio"]:
                k, sample = divmod(s, count)
                row_c, row_t = claim[s].cpu().numpy(), truth[s].cpu().numpy()
                with np.errstate(invalid="ignore"):
                    entry = int(np.nanargmax(np.where(np.isfinite(row_c), np.abs(row_c - row_t), np.inf)))
                worst = {"ratio": float(ratio[s]), "sample": done + sample, "cotangent": k,
                         "inputs": {n: np.asarray(a[sample]).tolist() for n, a in batch.raw.items()},
                         "v": cot[k, sample].cpu().numpy().tolist(), "entry": entry,
                         "claimed": float(row_c[entry]), "true": float(row_t[entry]),
                         "abs_error": float(err[s]), "tolerance": float(allowed[s]),
                         "rel_error": float(err[s] / scale[s]) if float(scale[s]) > 0 else math.inf}
            done += count
        numeric = (Numeric("torch", "float64", samples, max_abs, max_rel, tol.exact),)
        label = ", ".join(["torch", "float64", *(f"{k}={n}" for k, n in self.sizes.items())])
        if worst["ratio"] >= 0:
            cx = {"kind": "vjp", "claim": f"{self.name}.backward", "backend": "torch", "sizes": self.sizes,
                  "seed": seed, "rerun": f"derive.check_backward(<{self.name}>, {self.identity.name!r}, "
                  f"sizes={self.sizes}, samples={samples}, seed={seed})", "failing": failing, **worst}
            reason = (f"{self.name}.backward [{label}]: max|v^T J (claimed) - v^T J (true)| = "
                      f"{worst['abs_error']:.3g} (relative {worst['rel_error']:.3g}) at sample {worst['sample']}, "
                      f"entry {worst['entry']} > tol {worst['tolerance']:.3g} ({failing} of {samples * cotangents} "
                      f"VJPs beyond tolerance); seed={seed}")
            return self._stop(REFUTED, reason, start, sources, numeric, cx)
        reason = (f"backward agrees with {len(sources)} truth sources at {samples} samples x {cotangents} "
                  f"cotangents [{label}] (max rel error {max_rel:.3g}, rtol {tol.exact:g}); no proof (user code)")
        return self._stop(CONSISTENT, reason, start, sources, numeric)

    def _witnesses(self, batch: _Batch, cot: np.ndarray, truth: np.ndarray, noise: np.ndarray, m: int,
                   n_in: int, sources: list[str]) -> str:
        """Check the truth on a few samples against the SymPy derivative and a directional
        derivative of the definition; returns what disagreed, or ''."""
        tol = TOLERANCES["float64"]
        k, count = cot.shape[0], cot.shape[1]
        truth = truth.reshape(k, count, n_in)
        noise = noise.reshape(k, count)
        volume = m * n_in
        if self.claim is not None:
            volume = max(volume, self.evaluator.volume(self.derivation.derived[self.claim.index],
                                                       tuple(self.claim.indices)))
        sub = np.arange(min(count, max(1, WITNESS_ENTRIES // volume)))
        derived = self._witness_sympy(batch, cot, sub)
        if derived is not None:
            sources.append(f"SymPy derivative for every n (on {len(sub)} samples)")
            w = compare(derived.reshape(-1, n_in), truth[:, sub].reshape(-1, n_in), tol.exact,
                        noise[:, sub].ravel(), tol.noise_factor)
            if not w.ok:
                return "the SymPy derivative and autograd of the definition differ"
        u = np.random.default_rng(len(sub)).normal(size=(len(sub), n_in))
        ju = self._witness_direction(batch, sub, u)
        lhs = np.einsum("kcm,cm->kc", cot[:, sub], ju)
        rhs = np.einsum("kcw,cw->kc", truth[:, sub], u)
        scale = np.einsum("kcw,cw->kc", np.abs(truth[:, sub]), np.abs(u))
        sources.append("complex step" if self.analytic else "central differences")
        rtol = tol.complex_step if self.analytic else tol.central
        if not np.all(np.abs(lhs - rhs) <= rtol * scale + tol.noise_factor * EPS):
            return "the directional derivative of the definition does not match autograd"
        return ""

    def _claim(self, raw: dict[str, Any], cot: Any, count: int) -> Any:
        torch = self.torch
        args = [raw[v.name] for v in self.identity.variables]
        try:
            out = torch.func.vmap(self.fn)(*args)
        except Exception:  # e.g. an old-style Function: one sample at a time
            out = torch.stack([torch.as_tensor(self.fn(*(a[s] for a in args))) for s in range(count)])
        out = out.reshape(count, *self.target_shape)
        if not out.requires_grad:
            raise SpecError(f"{self.name} returned a value with no autograd graph: is its forward detached?")
        return self._vjps(out, [raw[v.name] for v in self.diff], cot)

    def _stop(self, verdict: str, reason: str, start: float, sources: list[str],
              numeric: tuple[Numeric, ...] = (), cx: dict[str, Any] | None = None) -> Result:
        seconds = round(time.perf_counter() - start, 4)
        notes = [f"set-up (SymPy derivation for every n, evaluator) {self.setup_seconds:.3g} s, "
                         f"check {seconds:.3g} s"]
        size = SizeResult(dict(self.sizes), verdict, _NO_PROOF, numeric, reason, cx, tuple(sources),
                          tuple(notes), seconds)
        return Result(self.name, verdict, _NO_PROOF, numeric, seconds, (size,), reason, cx, "user code")


def _signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random +-1.0 entries of `shape`, from random bits."""
    size = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(rng.bytes((size + 7) // 8), dtype=np.uint8))[:size]
    return (2.0 * bits - 1.0).reshape(shape)


def _inf_norm(rows: Any) -> Any:
    """max |entry| of each row (NaN if the row has one); two reductions, no |.| pass."""
    import torch

    flat = rows.reshape(rows.shape[0], -1)
    return torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))


def check_backward(fn: Any, identity: str | Identity, *, sizes: Mapping[str, int] | None = None,
                   samples: int = 1000, seed: int = 0, cotangents: int = 2, device: str = "cpu",
                   chunk: int | None = None) -> Result:
    """Check `fn`'s backward, `fn` being declared to compute `identity`'s target (see module doc)."""
    try:
        setup = BackwardCheck(fn, identity, sizes, device=device)
    except UnsupportedError as exc:
        raise UnsupportedError(f"{exc}; check_backward needs an identity with an every-n form "
                               "(use check_autograd_function for other functions)") from exc
    return setup.run(samples, seed=seed, cotangents=cotangents, chunk=chunk)
