"""Matrix calculus (the Matrix Cookbook's gradients), checked entry by entry at explicit sizes.

Each identity differentiates the written-out entries (det and inv by Berkowitz/adjugate), so
SymPy's matrix-calculus wrong zeros (d log det X / dX = 0, sympy#28618) are never consulted.
Where the entries can be written with symbolic sizes (traces, products, norms) the proof for
every n runs too; det, log det and inverses stay explicit-size only (reported 'unsupported').
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..model.domains import INVERTIBLE, SPD_MATRIX, SYMMETRIC, Real
from ..model.ops import det, dot, inv, logdet, sqrt, sum_, trace
from ..model.spec import Claim, Definition, Identity, Reference, Variable
from ._torch import torch

COOKBOOK = "The Matrix Cookbook (Petersen & Pedersen, 2012)"
SQUARE = ({"n": 2}, {"n": 3})


def inverse_jacobian(Y: Any) -> np.ndarray:
    """d (X^-1)_ij / d X_kl = -(X^-1)_ik (X^-1)_lj, given Y = X^-1 (shape (n, n, n, n))."""
    return -np.transpose(np.multiply.outer(np.asarray(Y, dtype=object), np.asarray(Y, dtype=object)),
                         (0, 3, 1, 2))


IDENTITIES = (
    Identity(
        "linear_form_gradient",
        variables=(Variable("a", ("n",)), Variable("x", ("n",))),
        definitions=(Definition("f", lambda v: dot(v.a, v.x), r"a^\top x"),),
        claims=(Claim(lambda v: v.a, wrt="x", text="a"),),
        sizes=({"n": 3},),
        references=(Reference("a @ x in torch", lambda a, x: a @ x),),
        family="matrix", source=f"{COOKBOOK}, eq. (69)",
        description=r"$\partial (a^\top x)/\partial x = a$",
    ),
    Identity(
        "quadratic_form_gradient",
        variables=(Variable("x", ("n",)), Variable("A", ("n", "n"))),
        definitions=(Definition("f", lambda v: v.x @ v.A @ v.x, r"x^\top A x"),),
        claims=(Claim(lambda v: (v.A + v.A.T) @ v.x, wrt="x", text=r"(A + A^\top) x"),
                Claim(lambda v: v.x[:, None] * v.x[None, :], wrt="A", text=r"x x^\top")),
        sizes=SQUARE,
        references=(Reference("x @ A @ x in torch", lambda x, A: x @ A @ x),),
        family="matrix", source=f"{COOKBOOK}, eqs. (81), (82)",
        description=r"$\partial (x^\top A x)/\partial x = (A + A^\top) x$, $\partial (x^\top A x)/\partial A = x x^\top$",
    ),
    Identity(
        "quadratic_form_symmetric_gradient",
        variables=(Variable("x", ("n",)), Variable("A", ("n", "n"), SYMMETRIC)),
        definitions=(Definition("f", lambda v: v.x @ v.A @ v.x, r"x^\top A x"),),
        claims=(Claim(lambda v: 2 * v.A @ v.x, wrt="x", text="2 A x"),
                Claim(lambda v: v.x[:, None] * v.x[None, :], wrt="A", text=r"x x^\top")),
        sizes=SQUARE,
        references=(Reference("x @ A @ x in torch", lambda x, A: x @ A @ x),),
        family="matrix", source=f"{COOKBOOK}, eq. (81) with A symmetric",
        description=r"$\partial (x^\top A x)/\partial x = 2 A x$ for symmetric $A$ (proved with "
                    r"$A_{ij} = A_{ji}$); the gradient in $A$ is the unconstrained one, $x x^\top$",
    ),
    Identity(
        "least_squares_gradient",
        variables=(Variable("A", ("m", "n")), Variable("x", ("n",)), Variable("b", ("m",))),
        definitions=(Definition("r", lambda v: v.A @ v.x - v.b, "A x - b"),
                     Definition("L", lambda v: sum_(v.r**2), r"\lVert r \rVert^2")),
        claims=(Claim(lambda v: 2 * v.A.T @ (v.A @ v.x - v.b), wrt="x", text=r"2 A^\top (A x - b)"),
                Claim(lambda v: 2 * v.r[:, None] * v.x[None, :], wrt="A", text=r"2 (A x - b) x^\top")),
        sizes=({"m": 3, "n": 2},),
        references=(Reference("torch.linalg.vector_norm(A @ x - b) ** 2",
                              lambda A, x, b: torch().linalg.vector_norm(A @ x - b) ** 2),),
        family="matrix", source=f"{COOKBOOK}, eq. (84)",
        description=r"$\partial \lVert Ax - b \rVert^2/\partial x = 2 A^\top (Ax - b)$, $\partial \lVert Ax - b \rVert^2/\partial A = 2 (Ax - b) x^\top$",
    ),
    Identity(
        "normal_equations",
        variables=(Variable("A", ("m", "n")), Variable("b", ("m",))),
        definitions=(Definition("x_star", lambda v: inv(v.A.T @ v.A) @ v.A.T @ v.b,
                                r"(A^\top A)^{-1} A^\top b"),
                     Definition("N", lambda v: v.A.T @ v.A @ v.x_star, r"A^\top A x^\star")),
        claims=(Claim(lambda v: v.A.T @ v.b, text=r"A^\top b"),),
        sizes=({"m": 3, "n": 2},),
        references=(Reference("A.T @ A @ torch.linalg.pinv(A) @ b",
                              lambda A, b: A.T @ A @ torch().linalg.pinv(A) @ b),),
        family="matrix", source=f"{COOKBOOK}, sec. 2.4 (least squares); normal equations",
        description=r"$x^\star = (A^\top A)^{-1} A^\top b$ solves the normal equations $A^\top A x^\star = A^\top b$ "
                    r"(the gradient $2 A^\top (A x^\star - b)$ vanishes)",
    ),
    Identity(
        "trace_AX_gradient",
        variables=(Variable("A", ("n", "n")), Variable("X", ("n", "n"))),
        definitions=(Definition("f", lambda v: trace(v.A @ v.X), r"\operatorname{tr}(A X)"),),
        claims=(Claim(lambda v: v.A.T, wrt="X", text=r"A^\top"),),
        sizes=SQUARE,
        references=(Reference("torch.trace(A @ X)", lambda A, X: torch().trace(A @ X)),),
        family="matrix", source=f"{COOKBOOK}, eq. (100)",
        description=r"$\partial \operatorname{tr}(AX)/\partial X = A^\top$",
    ),
    Identity(
        "trace_AXB_gradient",
        variables=(Variable("A", ("p", "n")), Variable("X", ("n", "m")), Variable("B", ("m", "p"))),
        definitions=(Definition("f", lambda v: trace(v.A @ v.X @ v.B), r"\operatorname{tr}(A X B)"),),
        claims=(Claim(lambda v: v.A.T @ v.B.T, wrt="X", text=r"A^\top B^\top"),),
        sizes=({"p": 2, "n": 3, "m": 2},),
        references=(Reference("torch.trace(A @ X @ B)",
                              lambda A, X, B: torch().trace(A @ X @ B)),),
        family="matrix", source=f"{COOKBOOK}, eq. (102)",
        description=r"$\partial \operatorname{tr}(AXB)/\partial X = A^\top B^\top$",
    ),
    Identity(
        "trace_XtAX_gradient",
        variables=(Variable("X", ("n", "m")), Variable("A", ("n", "n"))),
        definitions=(Definition("f", lambda v: trace(v.X.T @ v.A @ v.X),
                                r"\operatorname{tr}(X^\top A X)"),),
        claims=(Claim(lambda v: (v.A + v.A.T) @ v.X, wrt="X", text=r"(A + A^\top) X"),),
        sizes=({"n": 2, "m": 3},),
        references=(Reference("torch.trace(X.T @ A @ X)",
                              lambda X, A: torch().trace(X.T @ A @ X)),),
        family="matrix", source=f"{COOKBOOK}, eq. (108)",
        description=r"$\partial \operatorname{tr}(X^\top A X)/\partial X = (A + A^\top) X$",
    ),
    Identity(
        "trace_inverse_gradient",
        variables=(Variable("X", ("n", "n"), INVERTIBLE),),
        definitions=(Definition("Y", lambda v: inv(v.X), "X^{-1}"),
                     Definition("f", lambda v: trace(v.Y), r"\operatorname{tr}(X^{-1})")),
        claims=(Claim(lambda v: -(v.Y @ v.Y).T, wrt="X", text=r"-(X^{-2})^\top"),),
        sizes=SQUARE,
        references=(Reference("torch.trace(torch.linalg.inv(X))",
                              lambda X: torch().trace(torch().linalg.inv(X))),),
        family="matrix", source=f"{COOKBOOK}, eq. (113)",
        description=r"$\partial \operatorname{tr}(X^{-1})/\partial X = -(X^{-2})^\top$ on invertible $X$",
    ),
    Identity(
        "logdet_gradient",
        variables=(Variable("X", ("n", "n"), SPD_MATRIX),),
        definitions=(Definition("f", lambda v: logdet(v.X), r"\log\det X"),),
        claims=(Claim(lambda v: inv(v.X).T, wrt="X", text=r"X^{-\top}"),),
        sizes=SQUARE,
        references=(Reference("torch.logdet", lambda X: torch().logdet(X)),),
        family="matrix", source=f"{COOKBOOK}, eq. (57); SymPy 1.14 answers 0 (sympy#28618)",
        description=r"$\partial \log\det X/\partial X = X^{-\top}$ on symmetric positive definite $X$ (SymPy's MatrixSymbol calculus says $0$)",
    ),
    Identity(
        "logdet_gradient_spd",
        variables=(Variable("X", ("n", "n"), SPD_MATRIX),),
        definitions=(Definition("f", lambda v: logdet(v.X), r"\log\det X"),),
        claims=(Claim(lambda v: inv(v.X), wrt="X", text=r"X^{-1}"),),
        sizes=SQUARE,
        references=(Reference("torch.logdet", lambda X: torch().logdet(X)),),
        family="matrix", source=f"{COOKBOOK}, eq. (57) with X symmetric",
        description=r"$\partial \log\det X/\partial X = X^{-1}$ (no transpose) on symmetric positive "
                    r"definite $X$: proved with $X_{ij} = X_{ji}$",
    ),
    Identity(
        "det_gradient",
        variables=(Variable("X", ("n", "n"), INVERTIBLE),),
        definitions=(Definition("f", lambda v: det(v.X), r"\det X"),),
        claims=(Claim(lambda v: v.f * inv(v.X).T, wrt="X", text=r"\det(X) X^{-\top}"),),
        sizes=SQUARE,
        references=(Reference("torch.linalg.det", lambda X: torch().linalg.det(X)),),
        family="matrix", source=f"{COOKBOOK}, eq. (49) (Jacobi's formula)",
        description=r"$\partial \det X/\partial X = \det(X)\, X^{-\top}$ on invertible $X$",
    ),
    Identity(
        "inverse_jacobian",
        variables=(Variable("X", ("n", "n"), INVERTIBLE),),
        definitions=(Definition("Y", lambda v: inv(v.X), "X^{-1}"),),
        claims=(Claim(lambda v: inverse_jacobian(v.Y), wrt="X",
                      text=r"\partial Y_{ij}/\partial X_{kl} = -Y_{ik} Y_{lj}"),),
        sizes=({"n": 2},),
        references=(Reference("torch.linalg.inv", lambda X: torch().linalg.inv(X)),),
        family="matrix", source=f"{COOKBOOK}, eq. (59)",
        description=r"$d(X^{-1}) = -X^{-1}\, dX\, X^{-1}$, entry by entry: $\partial (X^{-1})_{ij}/\partial X_{kl} = -(X^{-1})_{ik} (X^{-1})_{lj}$",
    ),
    Identity(
        "inverse_directional_derivative",
        variables=(Variable("X", ("n", "n"), INVERTIBLE), Variable("V", ("n", "n"), Real(scale=0.5)),
                   Variable("t", (), Real(scale=0.1))),
        definitions=(Definition("Y", lambda v: inv(v.X + v.t * v.V), r"(X + t V)^{-1}"),),
        claims=(Claim(lambda v: -(v.Y @ v.V @ v.Y), wrt="t", text=r"-Y V Y"),),
        sizes=({"n": 2},),
        references=(Reference("torch.linalg.inv(X + t V)",
                              lambda X, V, t: torch().linalg.inv(X + t * V)),),
        family="matrix", source=f"{COOKBOOK}, eq. (59) along a direction V",
        description=r"$\frac{d}{dt}(X + tV)^{-1} = -(X + tV)^{-1} V (X + tV)^{-1}$",
    ),
    Identity(
        "frobenius_norm_gradient",
        variables=(Variable("X", ("n", "m")),),
        definitions=(Definition("f", lambda v: sqrt(sum_(v.X**2)), r"\lVert X \rVert_F"),),
        claims=(Claim(lambda v: v.X / v.f, wrt="X", text=r"X / \lVert X \rVert_F"),),
        sizes=({"n": 2, "m": 3},),
        references=(Reference("torch.linalg.matrix_norm(X, 'fro')",
                              lambda X: torch().linalg.matrix_norm(X, "fro")),),
        family="matrix", source=f"{COOKBOOK}, eq. (123)",
        description=r"$\partial \lVert X \rVert_F/\partial X = X / \lVert X \rVert_F$",
    ),
    Identity(
        "frobenius_residual_gradient",
        variables=(Variable("A", ("p", "n")), Variable("X", ("n", "m")), Variable("B", ("p", "m"))),
        definitions=(Definition("R", lambda v: v.A @ v.X - v.B, "A X - B"),
                     Definition("f", lambda v: sum_(v.R**2), r"\lVert R \rVert_F^2")),
        claims=(Claim(lambda v: 2 * v.A.T @ v.R, wrt="X", text=r"2 A^\top (A X - B)"),),
        sizes=({"p": 3, "n": 2, "m": 2},),
        references=(Reference("torch.linalg.matrix_norm(A @ X - B) ** 2",
                              lambda A, X, B: torch().linalg.matrix_norm(A @ X - B) ** 2),),
        family="matrix", source=f"{COOKBOOK}, eq. (126) (least squares with many right-hand sides)",
        description=r"$\partial \lVert AX - B \rVert_F^2/\partial X = 2 A^\top (AX - B)$",
    ),
)
