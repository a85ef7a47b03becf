"""Second order: Hessians and Hessian-vector products as Jacobians of gradients, and the
critical points of Himmelblau's function found and classified by computation."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
from catalog_helpers import assert_twin_refuted, matches_golden

from derive import Claim, Definition, Identity, Reference, Variable, catalog, check
from derive.catalog.second_order import (CROSS_ENTROPY, HIMMELBLAU, himmelblau,
    himmelblau_critical_notes)
from derive.numeric.critical import critical_points, summary
from derive.errors import SpecError
from derive.model.ops import diag, logsumexp, outer, softmax
from derive.symbolic.second_order import gradient_formula, hessian_identity, hvp_identity

SECOND = [i.name for i in catalog.second_order.IDENTITIES]

KNOWN_MINIMA = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]
KNOWN_MAXIMUM = (-0.270845, -0.923039)


def test_cross_entropy_hessian_is_proved_with_double_backward_of_the_library_loss() -> None:
    result = check(catalog.get("cross_entropy_hessian"), samples=16)
    assert result.verdict == "proved" and result.symbolic.status == "proved"
    sources = set(result.sizes[0].sources)
    assert {"autograd of torch.func.grad(F.cross_entropy)", "central differences", "sympy/numpy"} <= sources


WRONG = {
    "cross_entropy_hessian": ("z", lambda v: diag(v.p) + outer(v.p, v.p)),
    "cross_entropy_hvp": ("z", lambda v: v.p * v.v),
    "himmelblau_hessian": ("p", lambda v: sp.Matrix([[12 * v.p[0] ** 2 + 4 * v.p[1] - 42, 4 * v.p[0]],
                                                      [4 * v.p[0], 4 * v.p[0] + 12 * v.p[1] ** 2 - 26]])),
    "himmelblau_critical_points": ("p", lambda v: sp.Matrix([[12 * v.p[0] ** 2 - 42, 4 * v.p[0] + 4 * v.p[1]],
                                                              [4 * v.p[0] + 4 * v.p[1], 12 * v.p[1] ** 2 - 26]])),
}


def test_every_second_order_identity_has_a_wrong_twin() -> None:
    assert set(WRONG) == set(SECOND)


@pytest.mark.parametrize("name", SECOND)
def test_wrong_twin_is_refuted(name: str) -> None:
    assert_twin_refuted(name, WRONG)


def test_hessian_of_any_scalar_forward() -> None:
    """logsumexp has the same Hessian as cross-entropy: diag(p) - p p^T, built by the API."""
    base = Identity("lse", variables=(Variable("z", ("n",)),),
                    definitions=(Definition("f", lambda v: logsumexp(v.z)),),
                    claims=(Claim(lambda v: softmax(v.z), wrt="z"),), sizes=({"n": 3},),
                    references=(Reference("torch.logsumexp", lambda z: z.logsumexp(-1)),))
    identity = hessian_identity(base, wrt="z", claim=lambda v: diag(softmax(v.z)) - outer(softmax(v.z), softmax(v.z)))
    assert identity.name == "lse_hessian" and identity.target == "grad_z"
    assert check(identity, samples=16).verdict == "proved"
    hvp = hvp_identity(base, wrt="z", claim=lambda v: softmax(v.z) * v.v - softmax(v.z) * (softmax(v.z) @ v.v))
    assert [v.name for v in hvp.variables] == ["z", "v"]
    assert check(hvp, samples=16).verdict == "proved"


def test_second_order_builders_reject_bad_input() -> None:
    with pytest.raises(SpecError, match="wrt 'w' is not a variable"):
        hessian_identity(CROSS_ENTROPY, wrt="w", claim=lambda v: v.p)
    with pytest.raises(SpecError, match="direction name 'p' is taken"):
        hvp_identity(CROSS_ENTROPY, wrt="z", claim=lambda v: v.p, direction="p")
    vector = dataclasses.replace(CROSS_ENTROPY, target="p")
    with pytest.raises(SpecError, match="needs a scalar target"):
        check(hessian_identity(vector, wrt="z", claim=lambda v: v.p), samples=4)


def test_gradient_formula_is_sympy_s_derivative_of_the_forward() -> None:
    x, y = sp.symbols("x y", real=True)
    ns = SimpleNamespace(p=np.array([x, y], dtype=object))
    grad = gradient_formula(HIMMELBLAU, "p")(ns)
    f = himmelblau(x, y)
    assert sp.expand(grad[0] - sp.diff(f, x)) == 0 and sp.expand(grad[1] - sp.diff(f, y)) == 0


def test_himmelblau_has_nine_critical_points_classified_by_the_hessian() -> None:
    x, y = sp.symbols("x y", real=True)
    points = critical_points(himmelblau(x, y), x, y)
    assert len(points) == 9
    assert summary(points) == "9 critical points: 4 minima, 1 maximum, 4 saddles"
    minima = [p for p in points if p.kind == "minimum"]
    for mx, my in KNOWN_MINIMA:
        assert any(abs(p.x - mx) < 1e-5 and abs(p.y - my) < 1e-5 for p in minima), (mx, my)
    assert all(abs(p.value) < 1e-20 for p in minima)
    (maximum,) = [p for p in points if p.kind == "maximum"]
    assert maximum.x == pytest.approx(KNOWN_MAXIMUM[0], abs=1e-5)
    assert maximum.y == pytest.approx(KNOWN_MAXIMUM[1], abs=1e-5)
    assert all(e < 0 for e in maximum.eigenvalues)
    saddles = [p for p in points if p.kind == "saddle"]
    assert all(min(p.eigenvalues) < 0 < max(p.eigenvalues) for p in saddles)


def test_critical_point_notes_list_the_nine_points() -> None:
    identity = catalog.get("himmelblau_critical_points")
    assert identity.notes is himmelblau_critical_notes
    notes = identity.notes({})
    assert notes[0] == "9 critical points: 4 minima, 1 maximum, 4 saddles"
    assert len(notes) == 10
    assert "minimum at (3.000000, 2.000000)" in "\n".join(notes)
    assert "maximum at (-0.270845, -0.923039)" in "\n".join(notes)
    assert check(identity, samples=16).verdict == "proved"


def test_critical_points_need_a_polynomial() -> None:
    x, y = sp.symbols("x y", real=True)
    with pytest.raises(SpecError, match="polynomials"):
        critical_points(sp.exp(x) + y**2, x, y)


@pytest.mark.parametrize("name", ["himmelblau_hessian", "cross_entropy_hessian", "cross_entropy_hvp"])
def test_derivation_matches_its_golden_file(name: str) -> None:
    assert matches_golden(name)


# --- second order for every n: the gradient in index notation, then its Jacobian --------------

def test_cross_entropy_hessian_and_hvp_are_proved_for_every_n() -> None:
    for name in ("cross_entropy_hessian", "cross_entropy_hvp"):
        result = check(catalog.get(name), samples=8)
        assert result.verdict == "proved", result.reason
        assert result.symbolic_n.status == "proved", (name, result.symbolic_n)


def test_the_hessian_derivation_ends_in_diag_p_minus_p_p_transposed_with_indices() -> None:
    from derive.present.latex import render_tex
    from derive.symbolic.explain import explain

    text = render_tex(explain(catalog.get("cross_entropy_hessian")))
    assert r"\mathrm{grad}_{i} &= p_{i} - t_{i}" in text  # the gradient, a one-hot row summed to 1
    assert r"\frac{\partial \mathrm{grad}_{i}}{\partial z_{j}} &= \left(\delta_{ij} - p_{j}\right) p_{i}" in text
    assert "for every size" in text and r"\begin{matrix}" not in text  # no explicit matrices
    assert len(text) < 2000


def test_gradient_formula_at_symbolic_sizes_is_derived_in_index_notation() -> None:
    from derive.symbolic.every_n_proof import work
    from derive.symbolic.second_order import indexed_gradient

    (i,), entry = indexed_gradient(CROSS_ENTROPY, "z")
    assert str(entry) == f"p[{i}] - t[{i}]"
    lse = Identity("lse", variables=(Variable("z", ("n",)),),
                   definitions=(Definition("f", lambda v: logsumexp(v.z)),),
                   claims=(Claim(lambda v: softmax(v.z), wrt="z"),), sizes=({"n": 3},))
    hessian = hessian_identity(lse, wrt="z", claim=lambda v: diag(softmax(v.z)) - outer(softmax(v.z), softmax(v.z)))
    assert list(work(hessian))[-1].status == "proved"
    wrong = hessian_identity(lse, wrt="z", claim=lambda v: diag(softmax(v.z)) + outer(softmax(v.z), softmax(v.z)))
    assert list(work(wrong))[-1].status == "not proved"  # the proof alone, never fooled


def test_the_gradient_is_not_rewritten_with_its_own_variable_s_domain() -> None:
    # tr(A A) / 2 has the unconstrained gradient A^T; on a symmetric A that equals A, but the
    # Hessian differentiates the gradient again, where A^T and A differ: it must stay A^T
    from derive import SYMMETRIC
    from derive.model.ops import sum_
    from derive.symbolic.second_order import indexed_gradient

    base = Identity("half_trace_square", variables=(Variable("A", ("n", "n"), SYMMETRIC),),
                    definitions=(Definition("f", lambda v: sum_(v.A * v.A.T) / 2),),
                    claims=(Claim(lambda v: v.f),), sizes=({"n": 2},))
    (i, j), entry = indexed_gradient(base, "A")
    assert str(entry) == f"A[{j}, {i}]"
