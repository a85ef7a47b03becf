"""Matrix calculus: every identity has a wrong twin that is refuted, and SymPy's wrong zeros
for log det never surface as a proof."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sympy as sp
from catalog_helpers import assert_twin_refuted, check_twin, matches_golden

from derive import catalog, check
from derive.symbolic.explain import explain
from derive.present.latex import render_tex
from derive.model.ops import eye, inv, size, sum_, trace

MATRIX = [i.name for i in catalog.matrix.IDENTITIES]

WRONG: dict[str, tuple[str | None, Callable[[Any], Any]]] = {
    "linear_form_gradient": ("x", lambda v: v.x),
    "quadratic_form_gradient": ("x", lambda v: 2 * v.A @ v.x),          # only for symmetric A
    "quadratic_form_symmetric_gradient": ("x", lambda v: v.A @ v.x),    # the factor 2 dropped
    "least_squares_gradient": ("x", lambda v: v.A.T @ (v.A @ v.x - v.b)),  # the factor 2 dropped
    "normal_equations": (None, lambda v: v.A.T @ v.A @ v.A.T @ v.b),
    "trace_AX_gradient": ("X", lambda v: v.A),                            # not transposed
    "trace_AXB_gradient": ("X", lambda v: v.A.T @ v.B),                    # B not transposed
    "trace_XtAX_gradient": ("X", lambda v: 2 * v.A @ v.X),
    "trace_inverse_gradient": ("X", lambda v: -(v.Y @ v.Y)),               # transpose missing
    "logdet_gradient": ("X", lambda v: 0 * v.X),                           # SymPy's answer
    "logdet_gradient_spd": ("X", lambda v: inv(v.X) @ inv(v.X)),
    "det_gradient": ("X", lambda v: v.f * inv(v.X)),                       # X^-1 for X^-T
    "inverse_jacobian": ("X", lambda v: -np.einsum("ik,jl->ijkl", v.Y, v.Y)),
    "inverse_directional_derivative": ("t", lambda v: -(v.Y @ v.Y @ v.V)),
    "frobenius_norm_gradient": ("X", lambda v: v.X / v.f**2),
    "frobenius_residual_gradient": ("X", lambda v: 2 * v.A.T @ v.R * (1 + sp.Rational(1, 10**6))),
}


def test_every_matrix_identity_has_a_wrong_twin() -> None:
    assert set(WRONG) == set(MATRIX)


@pytest.mark.parametrize("name", MATRIX)
def test_wrong_twin_is_refuted(name: str) -> None:
    assert_twin_refuted(name, WRONG)


def test_sympy_matrix_calculus_says_zero_for_log_det_and_we_do_not_prove_it() -> None:
    X = sp.MatrixSymbol("X", 2, 2)
    sympy_answer = sp.log(sp.Determinant(X)).diff(X)
    identity = catalog.get("logdet_gradient")
    # whatever SymPy's MatrixSymbol calculus says, the checker differentiates entries:
    # the true gradient X^-T is proved and SymPy's 0 (sympy#28618) is refuted
    assert check(identity, samples=16).verdict == "proved"
    zero = check_twin(identity, "X", lambda v: 0 * v.X)
    assert zero.verdict == "refuted" and zero.symbolic.status != "proved"
    if sympy_answer == 0:  # the bug as of SymPy 1.14: documented, never consulted
        assert zero.counterexample["claimed"] == 0.0


def test_det_and_inverse_are_not_claimed_for_every_n() -> None:
    for name in ("logdet_gradient", "det_gradient", "trace_inverse_gradient", "inverse_jacobian"):
        result = check(catalog.get(name), samples=8)
        assert result.verdict == "proved"
        assert result.symbolic_n.status == "unsupported", (name, result.symbolic_n)
        assert "explicit sizes only" in result.symbolic_n.detail


def test_trace_identities_are_proved_for_every_n() -> None:
    for name in ("trace_AX_gradient", "trace_AXB_gradient", "quadratic_form_gradient"):
        assert check(catalog.get(name), samples=8).symbolic_n.status == "proved", name


def test_log_det_derivation_is_written_out_at_the_explicit_size() -> None:
    text = render_tex(explain(catalog.get("logdet_gradient")))
    assert r"f &= \log{\left(X_{00} X_{11} - X_{01} X_{10} \right)}" in text
    assert r"\frac{\partial f}{\partial X} &= \left[\begin{matrix}\frac{X_{11}}" in text
    assert "claimed - derived = 0" in text and "at n=2" in text and "for every size" not in text


def test_sum_of_norms_gradient_is_checked_entrywise() -> None:
    """||X||_F + tr(X): SymPy's matrix calculus drops sums of norms (sympy#26585); entrywise
    differentiation does not."""
    from derive import Claim, Definition, Identity, Variable

    identity = Identity(
        "norm_plus_trace", variables=(Variable("X", ("n", "n")),),
        definitions=(Definition("f", lambda v: sp.sqrt(sum_(v.X**2)) + trace(v.X)),),
        claims=(Claim(lambda v: v.X / sp.sqrt(sum_(v.X**2)) + eye(size(v.X)), wrt="X"),),
        sizes=({"n": 2},))
    assert check(identity, samples=8).verdict == "proved"


@pytest.mark.parametrize("name", ["logdet_gradient", "inverse_jacobian"])
def test_derivation_matches_its_golden_file(name: str) -> None:
    assert matches_golden(name)


# --- symmetry in proofs: one symbol per unordered pair, the unconstrained gradient -------------

def test_symmetric_claims_are_proved_and_their_wrong_twins_refuted() -> None:
    quadratic = check(catalog.get("quadratic_form_symmetric_gradient"), samples=8)
    assert quadratic.verdict == "proved" and quadratic.symbolic_n.status == "proved"
    logdet = check(catalog.get("logdet_gradient_spd"), samples=8)
    assert logdet.verdict == "proved", logdet.reason  # X^{-1}, no transpose: once only consistent
    # 2 A^T x is 2 A x on symmetric A, and proved as well
    assert check_twin(catalog.get("quadratic_form_symmetric_gradient"), "x",
                      lambda v: 2 * v.A.T @ v.x).verdict == "proved"


def test_the_gradient_in_a_symmetric_matrix_is_the_unconstrained_one() -> None:
    # derive's convention, that of autograd and of finite differences of single entries:
    # d (x^T A x) / dA = x x^T at symmetric A. The gradient in the independent entries
    # (2 x x^T - diag(x x^T)) is another convention, and is refuted here.
    base = catalog.get("quadratic_form_symmetric_gradient")
    entries = check_twin(base, "A", lambda v: 2 * v.x[:, None] * v.x[None, :] - np.diag(v.x * v.x))
    assert entries.verdict == "refuted"
    # not a symmetric domain: 2 A x is not proved (and refuted)
    assert check_twin(catalog.get("quadratic_form_gradient"), "x", lambda v: 2 * v.A @ v.x).verdict == "refuted"
