"""Hand-written backwards of the kinds found in public code, in both Function styles, for the
tests and benchmarks/backward.py. Each factory takes `scale` (the backward multiplied by it: a
relative error of scale - 1) and `style`: "new" (setup_context, vmappable) or "old"
(`forward(ctx, ...)`, the form most code uses). The code is dtype-generic: it runs in whatever
precision its inputs have, as real kernels written with torch operations do."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own name


def _function(name: str, forward: Callable[..., Any], backward: Callable[..., Any], style: str,
              lock: Any = None) -> type:
    """A Function from forward(*inputs) -> (output, saved tensors) and backward(saved, g) -> grads; with
    `lock` (a torch dtype) its code always runs in that precision, whatever its inputs' dtype
    (a kernel that is not dtype-generic)."""
    if lock is not None:
        plain_forward, plain_backward = forward, backward

        def forward(*inputs: Any) -> Any:  # noqa: F811 - the locked version
            return plain_forward(*(x.to(lock) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
                                   for x in inputs))

        def backward(saved: Any, g: Any) -> Any:  # noqa: F811
            return plain_backward(saved, g.to(lock))
    if style == "new":
        def fwd(*inputs: Any) -> Any:
            return forward(*inputs)[0]

        def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
            ctx.save_for_backward(*forward(*inputs)[1])

        def bwd(ctx: Any, g: Any) -> Any:
            return backward(ctx.saved_tensors, g)

        return type(name, (torch.autograd.Function,), {
            "generate_vmap_rule": True, "forward": staticmethod(fwd),
            "setup_context": staticmethod(setup_context), "backward": staticmethod(bwd)})

    def old_forward(ctx: Any, *inputs: Any) -> Any:
        out, saved = forward(*inputs)
        ctx.save_for_backward(*saved)
        return out

    def old_backward(ctx: Any, g: Any) -> Any:
        return backward(ctx.saved_tensors, g)

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(old_forward),
                                                   "backward": staticmethod(old_backward)})


def softmax(scale: float = 1.0, style: str = "new", zero: bool = False, lock: Any = None) -> type:
    def forward(z: Any) -> Any:
        p = torch.softmax(z, -1)
        return p, (p,)

    def backward(saved: Any, g: Any) -> Any:
        (p,) = saved
        if zero:
            return torch.zeros_like(g)
        return scale * p * (g - (g * p).sum(-1, keepdim=True))

    return _function("Softmax", forward, backward, style, lock)


def cross_entropy(scale: float = 1.0, style: str = "new", zero: bool = False, lock: Any = None) -> type:
    """Mean cross-entropy of logits z (B, k) with integer labels t (B,)."""
    def forward(z: Any, t: Any) -> Any:
        return F.cross_entropy(z, t), (z, t)

    def backward(saved: Any, g: Any) -> Any:
        z, t = saved
        if zero:
            return torch.zeros_like(z), None
        onehot = F.one_hot(t, z.shape[-1]).to(z.dtype)
        return scale * g * (torch.softmax(z, -1) - onehot) / z.shape[-2], None

    return _function("CrossEntropy", forward, backward, style, lock)


def layer_norm(scale: float = 1.0, style: str = "new", lock: Any = None, eps: float = 1e-5) -> type:
    """Layer norm over the last dimension, gamma and beta of that size; a fused-kernel backward."""
    def forward(x: Any, gamma: Any, beta: Any) -> Any:
        mu = x.mean(-1, keepdim=True)
        rstd = torch.rsqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps)
        xhat = (x - mu) * rstd
        return xhat * gamma + beta, (xhat, rstd, gamma)

    def backward(saved: Any, g: Any) -> Any:
        xhat, rstd, gamma = saved
        n = xhat.shape[-1]
        gg = g * gamma
        dx = rstd * (gg - gg.mean(-1, keepdim=True) - xhat * (gg * xhat).mean(-1, keepdim=True))
        dgamma = (g * xhat).reshape(-1, n).sum(0)
        dbeta = g.reshape(-1, n).sum(0)
        return scale * dx, dgamma, dbeta

    return _function("LayerNorm", forward, backward, style, lock)


def gelu(scale: float = 1.0, style: str = "new", lock: Any = None) -> type:
    """Exact GELU, x Phi(x); the backward Phi(x) + x phi(x), as memory-efficient activations write it."""
    def forward(x: Any) -> Any:
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), (x,)

    def backward(saved: Any, g: Any) -> Any:
        (x,) = saved
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return scale * g * (cdf + x * pdf)

    return _function("GELU", forward, backward, style, lock)


def attention(scale: float = 1.0, style: str = "new", lock: Any = None) -> type:
    """softmax(Q K^T / sqrt d) V for Q (n, d), K (m, d), V (m, e), and its backward."""
    def forward(q: Any, k: Any, v: Any) -> Any:
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
        return p @ v, (q, k, v, p)

    def backward(saved: Any, g: Any) -> Any:
        q, k, v, p = saved
        dv = p.transpose(-1, -2) @ g
        dp = g @ v.transpose(-1, -2)
        ds = p * (dp - (dp * p).sum(-1, keepdim=True)) / math.sqrt(q.shape[-1])
        return scale * (ds @ k), ds.transpose(-1, -2) @ q, dv

    return _function("Attention", forward, backward, style, lock)
