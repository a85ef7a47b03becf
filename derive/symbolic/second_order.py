"""Second order as first order: a Hessian is the Jacobian of the gradient.

`hessian_identity(identity, wrt=..., claim=...)` returns a new identity whose forward is the
original one plus a named intermediate grad_<wrt> (the gradient, differentiated by SymPy from
the forward written in the variables) and whose target is that gradient; its claim, with
respect to `wrt`, is the claimed Hessian. Every existing truth then applies: SymPy's second
derivative, torch autograd through the gradient, central differences of the gradient, and
for each torch reference of the original, `torch.func.grad(reference)` (so autograd of it is
double backward through the library function, whose value must also equal SymPy's gradient).

`hvp_identity(identity, wrt=..., claim=...)` does the same for a Hessian-vector product: a
direction variable v is added and the target is <grad f, v>, whose gradient is H v.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import numpy as np
import sympy as sp

from ..errors import SpecError, UnsupportedError
from ..model.indexed import SymArray
from ..model.ops import sum_
from ..model.spec import Claim, Definition, Formula, Identity, Reference, Variable


def _forward_in_variables(identity: Identity, v: Any) -> Any:
    """The target written in the variables alone (the definitions re-run on the variables)."""
    ns = SimpleNamespace(**{var.name: getattr(v, var.name) for var in identity.variables})
    for d in identity.definitions:
        setattr(ns, d.name, d.formula(ns))
        if d.name == identity.target:
            break
    return getattr(ns, identity.target)


def gradient_formula(identity: Identity, wrt: str) -> Formula:
    """A formula for d target / d wrt: at explicit sizes differentiated by SymPy entry by entry
    from the forward written in the variables; at symbolic sizes (a SymArray) derived in index
    notation over the identity's named intermediates (`indexed_gradient`)."""
    def gradient(v: Any) -> Any:
        entries = getattr(v, wrt)
        if isinstance(entries, SymArray):
            index, entry = _indexed_once(identity, wrt)
            return SymArray(entries.shape, lambda *idx: entry.xreplace(dict(zip(index, idx))))
        target = _forward_in_variables(identity, v)
        if not isinstance(entries, (np.ndarray, sp.Basic)):
            raise UnsupportedError(f"the gradient of {identity.name} is differentiated entry by entry; "
                                   f"{type(entries).__name__} is not supported")
        if np.ndim(target) != 0:
            raise SpecError(f"{identity.name}: a Hessian needs a scalar target, "
                            f"{identity.target!r} has shape {np.shape(target)}")
        target = sp.sympify(np.asarray(target, dtype=object).item(), strict=True)
        x = np.asarray(entries, dtype=object)
        out = np.empty(x.shape, dtype=object)
        for idx, s in np.ndenumerate(x):
            out[idx] = sp.diff(target, s)
        return out.item() if out.ndim == 0 else out

    return gradient


_INDEXED: dict[tuple[int, str], tuple[Identity, tuple[tuple[sp.Symbol, ...], sp.Expr]]] = {}


def _indexed_once(identity: Identity, wrt: str) -> tuple[tuple[sp.Symbol, ...], sp.Expr]:
    """indexed_gradient, derived once per identity in a process. Kept out of the gradient
    formula's closure: a closure's contents are part of the identity's fingerprint, which must
    not change once a derivation ran."""
    hit = _INDEXED.get((id(identity), wrt))
    if hit is None or hit[0] is not identity:
        hit = _INDEXED[(id(identity), wrt)] = (identity, indexed_gradient(identity, wrt))
    return hit[1]


def indexed_gradient(identity: Identity, wrt: str) -> tuple[tuple[sp.Symbol, ...], sp.Expr]:
    """d target / d wrt[index] for every size, in index notation: (index, entry).

    Derived over the identity's graph of named intermediates (the target's adjoint, as in the
    proof for every n), then written in the intermediates and with the domains' equalities
    (a one-hot row sums to 1), so the cross-entropy gradient reads p_i - t_i. That tidy form is
    used only where the proof ladder shows it equal to the adjoint as derived."""
    from .every_n import derive_indexed, fold
    from .every_n_proof import _rows_to_one, _tidy, prove_indexed
    from .indexed_graph import build_indexed

    graph = build_indexed(dataclasses.replace(identity, claims=(Claim(lambda v: 0, wrt=wrt),)))
    if graph.nodes[graph.target].shape:
        raise SpecError(f"{identity.name}: a Hessian needs a scalar target, {identity.target!r} has "
                        f"shape {graph.nodes[graph.target].shape}")
    derived = derive_indexed(graph, display=False).derived[0]
    # the gradient is differentiated again with respect to `wrt`, its entries independent: an
    # equality that holds only on wrt's domain (a row summing to 1, A[i, j] = A[j, i]) must not
    # be used to rewrite it, or the second derivative would change; other variables' may be
    base = graph.nodes[wrt].symbol
    other = dataclasses.replace(graph, rows_sum_to_one=tuple(r for r in graph.rows_sum_to_one if r[0] != base),
                                symmetric=tuple(b for b in graph.symmetric if b != base))
    tidy = _rows_to_one(_tidy(fold(derived, None, other, display=False), other), other)
    if tidy != derived and prove_indexed(tidy - derived, other, simplify_ok=False)[0]:
        derived = tidy
    return graph.nodes[wrt].index, derived


def _grad_reference(ref: Reference, position: int, label: str) -> Reference:
    def forward(*args: Any) -> Any:
        import torch

        return torch.func.grad(ref.forward, argnums=position)(*args)

    return Reference(f"{label}({ref.label})", forward)


def _second_order(identity: Identity, wrt: str, what: str) -> tuple[int, str, Definition]:
    names = [v.name for v in identity.variables]
    if wrt not in names:
        raise SpecError(f"{identity.name}: wrt {wrt!r} is not a variable (variables: {', '.join(names)})")
    grad = f"grad_{wrt}"
    if grad in names or grad in {d.name for d in identity.definitions}:
        raise SpecError(f"{identity.name}: the name {grad!r} is taken; rename it to build the {what}")
    text = rf"\nabla_{{{wrt}}} {identity.target}"
    return names.index(wrt), grad, Definition(grad, gradient_formula(identity, wrt), text)


def hessian_identity(identity: Identity, *, wrt: str, claim: Formula, text: str = "",
                     name: str | None = None, description: str = "") -> Identity:
    """The identity 'd^2 target / d wrt^2 = claim' (shape wrt.shape + wrt.shape)."""
    position, grad, definition = _second_order(identity, wrt, "Hessian")
    refs = tuple(_grad_reference(r, position, "torch.func.grad") for r in identity.references)
    return dataclasses.replace(
        identity, name=name or f"{identity.name}_hessian",
        definitions=(*identity.definitions, definition), target=grad,
        claims=(Claim(claim, wrt=wrt, text=text),), references=refs,
        description=description or f"the Hessian of {identity.name} with respect to {wrt}")


def hvp_identity(identity: Identity, *, wrt: str, claim: Formula, direction: str = "v",
                 text: str = "", name: str | None = None, description: str = "") -> Identity:
    """The identity 'H v = claim' for the Hessian H of the target with respect to `wrt`: the
    target is <grad f, v> (v a new variable shaped like wrt), and its gradient is H v."""
    position, grad, definition = _second_order(identity, wrt, "Hessian-vector product")
    var = identity.variable(wrt)
    if direction in {v.name for v in identity.variables} | {d.name for d in identity.definitions}:
        raise SpecError(f"{identity.name}: the direction name {direction!r} is taken; pass direction=")
    inner = f"{grad}_dot_{direction}"

    def contract(v: Any) -> Any:
        g, d = getattr(v, grad), getattr(v, direction)
        if isinstance(g, SymArray):
            return sum_(g * d)
        return np.sum(np.asarray(g, dtype=object) * np.asarray(d, dtype=object))

    def reference(ref: Reference) -> Reference:
        g = _grad_reference(ref, position, "torch.func.grad").forward

        def forward(*args: Any) -> Any:
            return (g(*args[:-1]) * args[-1]).sum()

        return Reference(f"<torch.func.grad({ref.label}), {direction}>", forward)

    return dataclasses.replace(
        identity, name=name or f"{identity.name}_hvp",
        variables=(*identity.variables, Variable(direction, var.shape)),
        definitions=(*identity.definitions, definition,
                     Definition(inner, contract, rf"\langle \nabla_{{{wrt}}} {identity.target}, {direction}\rangle")),
        target=inner, claims=(Claim(claim, wrt=wrt, text=text),),
        references=tuple(reference(r) for r in identity.references),
        description=description or f"the Hessian-vector product of {identity.name} with respect to {wrt}")
