"""make_*: an identity's formulas as plain numeric functions (numpy or torch).

`make_forward(identity)` computes the target of the forward definition and `make_claim`
the claimed closed form, from the same compiled programs the checker uses; inputs are
given by variable name, with any leading batch axes.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from . import backends
from ..model.domains import Label
from ..errors import SpecError
from .compiled import compile_graph, forward
from ..model.spec import Identity
from ..symbolic.graph import build


def _sizes(identity: Identity, sizes: Mapping[str, int] | None) -> dict[str, int]:
    return dict(identity.sizes[0] if sizes is None else sizes)


def _columns(identity: Identity, sizes: dict[str, int], inputs: Mapping[str, Any]) -> tuple[np.ndarray, tuple[int, ...]]:
    unknown = sorted(set(inputs) - {v.name for v in identity.variables})
    if unknown:
        raise SpecError(f"{identity.name}: unknown input {unknown[0]!r}; its variables are "
                        f"{', '.join(v.name for v in identity.variables)}")
    cols, batch = [], None
    for var in identity.variables:
        if var.name not in inputs:
            raise SpecError(f"{identity.name}: missing input {var.name!r}")
        arr = np.asarray(inputs[var.name])
        shape = var.resolve(sizes)
        lead = arr.shape[: arr.ndim - len(shape)]
        if arr.shape[arr.ndim - len(shape):] != shape or arr.ndim < len(shape):
            raise SpecError(f"{identity.name}: input {var.name!r} has shape {arr.shape}, "
                            f"expected {shape} (with optional leading batch axes) at sizes {sizes}")
        if batch is not None and lead != batch:
            raise SpecError(f"{identity.name}: inputs have different batch shapes {batch} and {lead}")
        batch = lead
        if isinstance(var.domain, Label):
            if arr.dtype.kind not in "iu":
                raise SpecError(f"{identity.name}: {var.name!r} holds class labels; pass integers")
            k = sizes[var.domain.classes]
            if arr.size and (arr.min() < 0 or arr.max() >= k):
                raise SpecError(f"{identity.name}: labels in {var.name!r} must lie in 0..{k - 1}")
        enc = var.domain.encode(arr, sizes)
        cols.append(enc.reshape(int(np.prod(lead, dtype=int)), -1))
    batch = batch or ()
    count = int(np.prod(batch, dtype=int))
    return (np.concatenate(cols, axis=1) if cols else np.zeros((count, 0))), batch


def _make(identity: Identity, which: Callable[[Any], Any], out_shape: tuple[int, ...], compiled: Any,
          sizes: dict[str, int], backend: str) -> Callable[..., Any]:
    be = backends.get(backend)

    def fn(**inputs: Any) -> Any:
        cols, batch = _columns(identity, sizes, inputs)
        count = cols.shape[0]
        env = forward(compiled, be, be.from_numpy(cols))
        values = be.stack(which(env), (count,))
        return values.reshape((*batch, *out_shape))

    return fn


def make_forward(identity: Identity, *, sizes: Mapping[str, int] | None = None,
                 backend: str = "numpy") -> Callable[..., Any]:
    """A function of the variables (by name) returning the identity's target value."""
    at = _sizes(identity, sizes)
    graph = build(identity, at)
    compiled = compile_graph(graph, None)
    slots = compiled.slots[graph.target]
    return _make(identity, lambda env: [env[s] for s in slots], graph.nodes[graph.target].shape,
                 compiled, at, backend)


def make_claim(identity: Identity, *, wrt: str | None = None, sizes: Mapping[str, int] | None = None,
               backend: str = "numpy") -> Callable[..., Any]:
    """A function of the variables (by name) returning the claimed closed form for `wrt`."""
    at = _sizes(identity, sizes)
    graph = build(identity, at)
    matches = [c for c in graph.claims if c.wrt == wrt]
    if not matches:
        have = ", ".join(str(c.wrt) for c in graph.claims)
        raise SpecError(f"{identity.name} has no claim with wrt={wrt!r}; its claims are wrt {have}")
    claim = matches[0]
    compiled = compile_graph(graph, None)
    prog = compiled.claims[claim.index]
    be = backends.get(backend)
    return _make(identity, lambda env: be.run(prog, env), claim.expr.shape, compiled, at, backend)
