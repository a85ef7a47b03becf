"""Truth sources: autograd, library references, central differences, complex step, 40 digits."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SpecError
from ..model.domains import Label
from ..model.spec import Identity
from ..symbolic.graph import Graph
from . import backends
from .compiled import Compiled, _stack, _target, forward, forward_scalar
from .sampling import Inputs
from .tolerance import EPS

# --- truths -------------------------------------------------------------------------------

def autograd_jacobian(compiled: Compiled, graph: Graph, backend: backends.Backend,
                      columns: np.ndarray, wrt: str, device: str = "cpu") -> np.ndarray:
    """d target / d wrt by torch autograd of the compiled forward, (samples, m * w)."""
    import torch

    count = columns.shape[0]
    x = torch.as_tensor(columns, dtype=torch.float64, device=device).clone()
    lo, hi = compiled.slots[wrt][0], compiled.slots[wrt][-1] + 1
    leaf = x[:, lo:hi].clone().requires_grad_(True)
    full = torch.cat([x[:, :lo], leaf, x[:, hi:]], dim=1)
    env = forward(compiled, backend, full, upto=graph.target)
    outs = _target(compiled, graph, env)
    rows = []
    for out in outs:
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            rows.append(torch.zeros((count, hi - lo), dtype=torch.float64, device=device))
            continue
        out = out.expand(count) if out.dim() == 0 else out
        (g,) = torch.autograd.grad(out.sum(), leaf, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(leaf) if g is None else g)
    jac = torch.stack(rows, dim=1)  # (samples, m, w)
    return jac.reshape(count, -1).detach().cpu().numpy()


def reference_values(identity: Identity, ref_index: int, inputs: Inputs, graph: Graph,
                     wrt: str | None = None, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """A torch reference's value per sample (and its autograd Jacobian wrt `wrt`)."""
    import torch

    ref = identity.references[ref_index]
    names = [v.name for v in identity.variables]
    tensors = {}
    for v in identity.variables:
        arr = inputs.raw[v.name]
        dtype = torch.int64 if isinstance(v.domain, Label) else torch.float64
        tensors[v.name] = torch.as_tensor(np.asarray(arr), dtype=dtype, device=device)
    leaf = None
    if wrt is not None:
        leaf = tensors[wrt].clone().requires_grad_(True)
        tensors[wrt] = leaf

    args = [tensors[n] for n in names]
    try:
        out = torch.func.vmap(ref.forward)(*args)
    except Exception:  # some library functions do not support vmap: fall back to a loop
        try:
            out = torch.stack([torch.as_tensor(ref.forward(*(a[s] for a in args)))
                               for s in range(args[0].shape[0])])
        except Exception as exc:
            raise SpecError(f"{identity.name}: reference {ref.label} failed on one sample "
                            f"({', '.join(names)}): {type(exc).__name__}: {exc}") from exc
    count = inputs.columns.shape[0]
    out = out.reshape(count, -1)
    value = out.detach().cpu().numpy().astype(np.float64)
    if leaf is None:
        return value, None
    rows = []
    for a in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, a].sum(), leaf, retain_graph=True, allow_unused=True)
        rows.append((torch.zeros_like(leaf) if g is None else g).reshape(count, -1))
    jac = torch.stack(rows, dim=1).reshape(count, -1)
    return value, jac.detach().cpu().numpy()


FULL_JACOBIAN_SLOTS = 64
"""Beyond this many entries in a differentiated variable, the finite-difference witnesses
check the truth along random directions (J u) instead of column by column."""
DIRECTIONS = 4


def _directions(compiled: Compiled, wrt: str, directions: np.ndarray | None) -> list[dict[int, float]]:
    """The steps a witness differentiates along: each slot alone, or each random direction."""
    slots = compiled.slots[wrt]
    if directions is None:
        return [{slot: 1.0} for slot in slots]
    return [dict(zip(slots, directions[:, k])) for k in range(directions.shape[1])]


def central_differences(compiled: Compiled, graph: Graph, columns: np.ndarray, wrt: str,
                        directions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Central differences with h = eps^(1/3) max(1, |x|); also the rounding-error estimate.

    Column by column (the Jacobian, samples x m*w), or along `directions` (w x K, giving
    J u for each: samples x m*K)."""
    nb = backends.get("numpy")
    count = columns.shape[0]
    cols = []
    f0 = _stack(nb, _target(compiled, graph, forward(compiled, nb, columns, graph.target)), count)
    rounding = np.zeros(count)
    for step in _directions(compiled, wrt, directions):
        slots = list(step)
        size = np.maximum(1.0, np.abs(columns[:, slots]).max(axis=1))
        h = EPS ** (1 / 3) * size / max(abs(u) for u in step.values())
        plus, minus = columns.copy(), columns.copy()
        for slot, u in step.items():
            plus[:, slot] += h * u
            minus[:, slot] -= h * u
        # the step actually taken (x + h rounds): exact for one slot, to rounding otherwise
        k, u = max(step.items(), key=lambda item: abs(item[1]))
        h_true = (plus[:, k] - minus[:, k]) / u
        fp = _stack(nb, _target(compiled, graph, forward(compiled, nb, plus, graph.target)), count)
        fm = _stack(nb, _target(compiled, graph, forward(compiled, nb, minus, graph.target)), count)
        cols.append((fp - fm) / h_true[:, None])
        rounding = np.maximum(rounding, 4 * EPS * np.abs(f0).max(axis=1, initial=0.0) / h_true)
    jac = np.stack(cols, axis=2)  # (samples, m, w or K)
    return jac.reshape(count, -1), rounding


def complex_step(compiled: Compiled, graph: Graph, columns: np.ndarray, wrt: str,
                 directions: np.ndarray | None = None) -> np.ndarray:
    """Im f(x + i h u) / h with h = 1e-30: exact to rounding for analytic forwards (u a unit
    vector per column, or each of `directions`)."""
    nb = backends.get("numpy")
    count = columns.shape[0]
    h = 1e-30
    cols = []
    for step in _directions(compiled, wrt, directions):
        z = columns.astype(np.complex128)
        for slot, u in step.items():
            z[:, slot] += 1j * h * u
        with np.errstate(all="ignore"):
            out = _target(compiled, graph, forward(compiled, nb, z, graph.target))
            vals = np.stack([np.broadcast_to(np.asarray(v, dtype=np.complex128), (count,))
                             for v in out], axis=-1)
        cols.append(vals.imag / h)
    return np.stack(cols, axis=2).reshape(count, -1)


def high_precision(compiled: Compiled, graph: Graph, columns: np.ndarray, wrt: str | None,
                   samples: int = 3, digits: int = 40,
                   directions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """mpmath at `digits` digits on the first few samples: the value, or a central difference
    (column by column, or along `directions`)."""
    import mpmath

    mb = backends.get("mpmath")
    idx = np.arange(min(samples, columns.shape[0]))
    rows = []
    with mpmath.workdps(digits):
        h = mpmath.mpf(10) ** (-(digits // 3))
        for s in idx:
            point = [mpmath.mpf(float(v)) for v in columns[s]]

            def f(p: list[Any]) -> list[Any]:
                env = forward_scalar(compiled, mb, p, graph.target)
                return [env[k] for k in compiled.slots[graph.target]]

            if wrt is None:
                rows.append([float(v) for v in f(point)])
                continue
            jac = []
            for step in _directions(compiled, wrt, directions):
                plus, minus = list(point), list(point)
                for slot, u in step.items():
                    plus[slot] += h * mpmath.mpf(float(u))
                    minus[slot] -= h * mpmath.mpf(float(u))
                jac.append([(a - b) / (2 * h) for a, b in zip(f(plus), f(minus))])
            rows.append([float(jac[i][a]) for a in range(len(jac[0])) for i in range(len(jac))])
    return idx, np.asarray(rows, dtype=np.float64)


HP_DIGITS = 40
