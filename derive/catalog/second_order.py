"""Second order: Hessians and Hessian-vector products, checked as Jacobians of gradients.

Built with `derive.second_order`: the gradient is differentiated by SymPy from the forward,
and each torch reference becomes torch.func.grad(reference), so autograd of it is double
backward through the library function. At symbolic sizes the gradient is derived in index
notation, so the cross-entropy Hessian and Hessian-vector product are proved for every n.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sympy as sp

from ..numeric.critical import critical_points, summary
from ..model.domains import Label
from ..model.ops import diag, log, outer, softmax, sum_
from ..symbolic.second_order import hessian_identity, hvp_identity
from ..model.spec import Claim, Definition, Identity, Reference, Variable
from ._torch import F

SOURCE = "standard (second-order optimisation; Bishop, Pattern Recognition and Machine Learning, 4.3.3)"


def himmelblau(x: Any, y: Any) -> Any:
    """Himmelblau's function; works on symbols and on tensors alike."""
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _himmelblau_hessian(v: Any) -> Any:
    x, y = v.p[0], v.p[1]
    return sp.Matrix([[12 * x**2 + 4 * y - 42, 4 * x + 4 * y],
                      [4 * x + 4 * y, 4 * x + 12 * y**2 - 26]])


def himmelblau_critical_notes(sizes: Mapping[str, int]) -> tuple[str, ...]:
    """The nine critical points, found by solving grad f = 0 and classified by the Hessian."""
    x, y = sp.symbols("x y", real=True)
    points = critical_points(himmelblau(x, y), x, y)
    return (summary(points), *(str(p) for p in points))


def _forward(name: str, **fields: Any) -> Identity:
    """A forward definition to take second derivatives of (its value claim is never checked)."""
    target = fields["definitions"][-1].name
    return Identity(name, claims=(Claim(lambda v: getattr(v, target)),), family="second_order",
                    source=SOURCE, **fields)


CROSS_ENTROPY = _forward(
    "cross_entropy_one_sample",
    variables=(Variable("z", ("k",)), Variable("t", (), Label("k"))),
    definitions=(Definition("p", lambda v: softmax(v.z), r"\operatorname{softmax}(z)"),
                 Definition("L", lambda v: -sum_(v.t * log(v.p)), r"-\sum_i t_i \log p_i")),
    sizes=({"k": 3},),
    references=(Reference("F.cross_entropy", lambda z, t: F().cross_entropy(z, t)),),
)

HIMMELBLAU = _forward(
    "himmelblau",
    variables=(Variable("p", (2,)),),
    definitions=(Definition("f", lambda v: himmelblau(v.p[0], v.p[1]),
                            "(x^2 + y - 11)^2 + (x + y^2 - 7)^2,\\ (x, y) = p"),),
    references=(Reference("himmelblau in torch", lambda p: himmelblau(p[0], p[1])),),
)

IDENTITIES = (
    hessian_identity(
        CROSS_ENTROPY, wrt="z", claim=lambda v: diag(v.p) - outer(v.p, v.p),
        text=r"\operatorname{diag}(p) - p p^\top", name="cross_entropy_hessian",
        description=r"the Hessian of one sample's cross-entropy with respect to the logits: $\operatorname{diag}(p) - p p^\top$"),
    hvp_identity(
        CROSS_ENTROPY, wrt="z", claim=lambda v: v.p * v.v - v.p * sum_(v.p * v.v),
        text=r"p \odot v - p (p^\top v)", name="cross_entropy_hvp",
        description=r"the cross-entropy Hessian-vector product with respect to the logits: $p \odot v - p\, (p^\top v)$"),
    hessian_identity(
        HIMMELBLAU, wrt="p", claim=_himmelblau_hessian,
        text=r"\begin{pmatrix} 12x^2 + 4y - 42 & 4x + 4y \\ 4x + 4y & 4x + 12y^2 - 26 \end{pmatrix}",
        name="himmelblau_hessian", description="the Hessian of Himmelblau's function"),
    dataclasses.replace(
        hessian_identity(HIMMELBLAU, wrt="p", claim=_himmelblau_hessian,
                         name="himmelblau_critical_points",
                         description=r"Himmelblau's nine critical points ($\nabla f = 0$ solved by a "
                                     r"resultant, refined by Newton), classified by this Hessian"),
        notes=himmelblau_critical_notes),
)
