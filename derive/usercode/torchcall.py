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
PROBE_SAMPLES = 8
"""Samples on which a way of calling is compared with one call per sample before it is used."""


class Context:
    """Stands in for the ctx an old-style forward(ctx, ...) receives when it is called directly."""

    def __init__(self, inputs: list[Any], needs: list[bool] | None = None) -> None:
        self.needs_input_grad = tuple(needs) if needs is not None else \
            tuple(bool(getattr(x, "requires_grad", False)) for x in inputs)
        self.saved_tensors: tuple[Any, ...] = ()

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors

    def mark_dirty(self, *args: Any) -> None:
        pass

    def mark_non_differentiable(self, *args: Any) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass


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
        """The fastest style that agrees with one call per sample, tried on a few samples."""
        import torch

        if count > PROBE_SAMPLES:  # a few samples tell the style: the probe stays cheap at any count
            count = PROBE_SAMPLES
            fresh, leaves = [], []
            for a, b in zip(args, self.batched):
                if b and isinstance(a, torch.Tensor):
                    a = a[:count].detach().clone().requires_grad_(a.requires_grad)
                    if a.requires_grad:
                        leaves.append(a)
                fresh.append(a)
            args = fresh
        rows = sorted({0, count // 2, count - 1})
        try:
            single = [self._one(args, s) for s in rows]
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(f"{self.label} failed on a sample: {type(exc).__name__}: {_one_line(exc)}") from exc
        if count < 2:
            return "loop"
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


class DirectVJP:
    """A Function's forward and backward called directly, vmapped over the samples, as torch's
    generate_vmap_rule does: old-style `forward(ctx, ...)` Functions, which torch cannot vmap
    through `.apply`, are then batched whatever their code assumes about a leading dimension.
    Returns the forward values and the backward's VJPs; None where this cannot run (the caller
    then goes through `.apply`, and compares the two on a few samples before trusting this)."""

    def __init__(self, fn_class: Any, new_style: bool, batched: list[bool], diff: list[bool]) -> None:
        self.fn_class, self.new_style, self.batched, self.diff = fn_class, new_style, batched, diff
        self.usable = True

    def _one(self, g: Any, *args: Any) -> tuple[Any, ...]:
        import torch

        fn = self.fn_class
        ctx = Context(list(args), self.diff)
        if self.new_style:
            out = fn.forward(*args)
            fn.setup_context(ctx, tuple(args), out)
        else:
            out = fn.forward(ctx, *args)
        if not isinstance(out, torch.Tensor):
            raise TypeError("several outputs")
        grads = fn.backward(ctx, g.reshape(out.shape).to(out.dtype))
        grads = grads if isinstance(grads, tuple) else (grads,)
        picked = [gr if gr is not None else torch.zeros_like(a)
                  for gr, a, d in zip(grads, args, self.diff) if d]
        if len(grads) != len(args) or any(tuple(p.shape) != tuple(a.shape)
                                           for p, a in zip(picked, [a for a, d in zip(args, self.diff) if d])):
            raise TypeError("the backward's gradients do not match the inputs")
        return (out.reshape(-1), *(p.reshape(-1) for p in picked))

    def __call__(self, args: list[Any], cot: Any) -> tuple[Any, Any] | None:
        """(values (count, m), VJPs (K * count, N)) or None."""
        import torch

        if not self.usable:
            return None
        dims = (0, *(0 if b else None for b in self.batched))
        try:
            with torch.no_grad():
                vm = torch.func.vmap(self._one, in_dims=dims)
                outs = [quiet(vm, cot[k], *[a.detach() if isinstance(a, torch.Tensor) else a for a in args])
                        for k in range(cot.shape[0])]
        except Exception:  # noqa: BLE001 - data-dependent control flow, in-place writes, several outputs
            self.usable = False
            return None
        values = outs[0][0]
        vjp = torch.cat([torch.cat([p.to(torch.float64) for p in o[1:]], dim=1) for o in outs])
        return values, vjp


class Claim:
    """The user's code over a batch: its values and its backward's VJPs, the fastest way that
    agrees with `.apply` one sample at a time (checked on three samples at the first call)."""

    def __init__(self, fn: Any, label: str, batched: list[bool], diff: list[bool], *,
                 fn_class: Any = None, new_style: bool = False,
                 check: Callable[[Any], None] | None = None) -> None:
        self.label, self.batched, self.check_output = label, batched, check
        self.call = BatchCall(fn, label, batched)
        self.check = BatchCall(fn, label, batched, style="loop")
        self.direct = DirectVJP(fn_class, new_style, batched, diff) if fn_class is not None else None
        self.verified = False

    @property
    def style(self) -> str | None:
        return "direct" if self.verified else self.call.style

    def __call__(self, args: list[Any], leaves: list[Any], cot: Any, count: int) -> tuple[Any, Any]:
        """(values (count, m) in the code's dtype, VJPs (K * count, N) float64)."""
        import torch

        from ..numeric.vjp import vjps

        if self.call.style is None:  # first call: .apply batched if it can be, else the direct way
            self._choose(*_in_float64(args, leaves, cot), count)
        if self.verified:
            got = self.direct(args, cot) if self.direct is not None else None
            if got is not None:
                return got
            self.verified = False
        with torch.enable_grad():
            out = self.call(args, count, leaves)
        if self.check_output is not None:
            self.check_output(out)
        if not out.requires_grad:
            raise SpecError(f"{self.label} returned a value with no autograd graph: is its output detached?")
        try:
            return out, vjps(out, leaves, cot)
        except SpecError as exc:
            raise SpecError(f"{self.label} backward: {exc}") from exc
        except RuntimeError as exc:
            raise SpecError(f"{self.label} backward failed: {_one_line(exc)}") from exc

    def _choose(self, args: list[Any], leaves: list[Any], cot: Any, count: int) -> None:
        """Choose on float64 copies where the inputs are in a low precision: whether two ways of
        calling agree is a question of structure, which rounding would blur."""
        self.call.style = self.call._choose(args, count, leaves)
        if self.call.style == "loop" and self.direct is not None:
            got = self.direct(args, cot)
            self.verified = got is not None and self._agrees(got, args, leaves, cot, count)

    def _agrees(self, got: tuple[Any, Any], args: list[Any], leaves: list[Any], cot: Any, count: int) -> bool:
        """The direct values and VJPs equal `.apply`'s (with autograd), one sample at a time."""
        import torch

        from ..numeric.vjp import vjps

        rows = sorted({0, count // 2, count - 1})
        sub_args = [a[rows] if b else a for a, b in zip(args, self.batched)]
        sub_leaves = []
        fresh = []
        for a, b in zip(sub_args, self.batched):
            if b and isinstance(a, torch.Tensor) and a.requires_grad:
                a = a.detach().clone().requires_grad_(True)
                sub_leaves.append(a)
            fresh.append(a)
        k = cot.shape[0]
        try:
            with torch.enable_grad():
                out = self.check(fresh, len(rows), sub_leaves)
                ref = vjps(out, sub_leaves, cot[:, rows])
        except Exception:  # noqa: BLE001 - .apply fails where the direct call ran: trust neither silently
            return False
        values, vjp = got
        mine = vjp.reshape(k, count, -1)[:, rows].reshape(k * len(rows), -1)
        return all(_close(values[r], out[i]) for i, r in enumerate(rows)) and \
            all(_close(mine[i], ref[i]) for i in range(len(mine)))


def _in_float64(args: list[Any], leaves: list[Any], cot: Any) -> tuple[list[Any], list[Any], Any]:
    """Float64 copies of the floating-point arguments (leaves stay leaves), and of the cotangents."""
    import torch

    out, new_leaves = [], []
    ids = {id(x) for x in leaves}
    for a in args:
        if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != torch.float64:
            b = a.detach().to(torch.float64)
            if id(a) in ids:
                b.requires_grad_(True)
                new_leaves.append(b)
            out.append(b)
        else:
            if id(a) in ids:
                new_leaves.append(a)
            out.append(a)
    return out, new_leaves, cot.to(torch.float64) if cot.is_floating_point() else cot
