"""Calling a user's torch code on a batch of samples, the fastest way that gives the same answers.

Three ways, tried in this order: `torch.func.vmap` (new-style Functions with a vmap rule, plain
torch callables), the code called once on inputs with a leading sample dimension (old-style
`forward(ctx, ...)` Functions whose code broadcasts), and one call per sample. A way is used only
after it agreed with one-call-per-sample on a few samples, in the forward values AND in the
vector-Jacobian products (a backward that sums over the leading dimension disagrees there).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ..errors import SpecError
from .inputs import _one_line

STYLES = ("vmap", "leading", "loop")


def flat_outputs(out: Any, count: int | None, label: str) -> Any:
    """The tensor outputs of a call, each flattened per sample and concatenated: (count, m), or
    (m,) for one sample (count None)."""
    import torch

    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    tensors = [o for o in outs if isinstance(o, torch.Tensor)]
    if not tensors:
        raise SpecError(f"{label} returned {type(out).__name__}, not a tensor: return the output tensor(s)")
    if count is None:
        parts = [t.reshape(-1) for t in tensors]
        return parts[0] if len(parts) == 1 else torch.cat([p.to(parts[0].dtype) for p in parts])
    for t in tensors:
        if t.dim() == 0 or t.shape[0] != count:
            raise _Mismatch(f"an output of shape {tuple(t.shape)} has no leading sample dimension")
    parts = [t.reshape(count, -1) for t in tensors]
    return parts[0] if len(parts) == 1 else torch.cat([p.to(parts[0].dtype) for p in parts], dim=1)


class _Mismatch(Exception):
    """A batched call that does not give one row per sample."""


def quiet(fn: Callable[..., Any], *args: Any) -> Any:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


class BatchCall:
    """fn(*args) for every sample; `batched[i]` says whether args[i] has a leading sample axis."""

    def __init__(self, fn: Callable[..., Any], label: str, batched: list[bool], *, style: str | None = None) -> None:
        self.fn, self.label, self.batched = fn, label, batched
        self.style = style
        self.tried: list[str] = []

    def _one(self, args: list[Any], s: int) -> Any:
        return flat_outputs(quiet(self.fn, *(a[s] if b else a for a, b in zip(args, self.batched))), None,
                            self.label)

    def run(self, style: str, args: list[Any], count: int) -> Any:
        import torch

        if style == "vmap":
            dims = tuple(0 if b else None for b in self.batched)
            out = quiet(torch.func.vmap(lambda *a: flat_outputs(self.fn(*a), None, self.label), in_dims=dims),
                        *args)
            return out.reshape(count, -1)
        if style == "leading":
            return flat_outputs(quiet(self.fn, *args), count, self.label)
        rows = [self._one(args, s) for s in range(count)]
        return torch.stack(rows)

    def __call__(self, args: list[Any], count: int, leaves: list[Any]) -> Any:
        """The outputs (count, m); the first call chooses the style."""
        if self.style is None:
            self.style = self._choose(args, count, leaves)
        try:
            return self.run(self.style, args, count)
        except SpecError:
            raise
        except Exception as exc:
            if self.style == "loop":
                raise SpecError(f"{self.label} failed on a sample: {type(exc).__name__}: {_one_line(exc)}") from exc
            self.style = "loop"
            return self(args, count, leaves)

    def _choose(self, args: list[Any], count: int, leaves: list[Any]) -> str:

        try:
            single = [self._one(args, s) for s in sorted({0, count // 2, count - 1})]
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(f"{self.label} failed on a sample: {type(exc).__name__}: {_one_line(exc)}") from exc
        if count < 2:
            return "loop"
        rows = sorted({0, count // 2, count - 1})
        for style in STYLES[:-1]:
            self.tried.append(style)
            try:
                out = self.run(style, args, count)
                if tuple(out.shape) != (count, single[0].numel()):
                    continue
                if not all(_close(out[s], one) for s, one in zip(rows, single)):
                    continue
                if leaves and not self._same_vjps(out, rows, single, args, leaves):
                    continue
                return style
            except Exception:  # noqa: BLE001 - any failure means: not this way
                continue
        return "loop"

    def _same_vjps(self, out: Any, rows: list[int], single: list[Any], args: list[Any], leaves: list[Any]) -> bool:
        """The batched call's VJPs on `rows` equal one-sample calls' (fresh cotangents)."""
        import torch

        gen = torch.Generator(device="cpu").manual_seed(1234)
        cot = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.device, out.dtype)
        mask = torch.zeros(out.shape[0], dtype=torch.bool, device=out.device)
        mask[rows] = True
        cot = cot * mask[:, None]
        batched = torch.autograd.grad(out, leaves, grad_outputs=cot, retain_graph=True, allow_unused=True)
        looped_out = torch.stack([self._one(args, s) for s in rows])
        looped = torch.autograd.grad(looped_out, leaves, grad_outputs=cot[rows], allow_unused=True)
        for b, lo in zip(batched, looped):
            if (b is None) != (lo is None):
                if not bool(((b if b is not None else lo)[rows] == 0).all()):
                    return False
                continue
            if b is not None and not all(_close(b[s].reshape(-1), lo[s].reshape(-1)) for s in rows):
                return False
        return True


def _close(a: Any, b: Any) -> bool:
    """Equal up to the rounding of their dtype (a batched kernel may sum in another order)."""
    import torch

    a64, b64 = a.detach().to(torch.float64).reshape(-1), b.detach().to(torch.float64).reshape(-1)
    if a64.shape != b64.shape:
        return False
    finite = torch.isfinite(a64) & torch.isfinite(b64)
    if not bool((finite | (a64.isnan() & b64.isnan()) | (a64 == b64)).all()):
        return False
    unit = float(torch.finfo(a.dtype).eps) if a.dtype.is_floating_point else 0.0
    scale = float(torch.where(finite, b64.abs(), torch.zeros_like(b64)).max()) if b64.numel() else 0.0
    diff = float(torch.where(finite, (a64 - b64).abs(), torch.zeros_like(a64)).max()) if a64.numel() else 0.0
    return diff <= max(64 * unit, 1e-10) * scale + 1e-300
