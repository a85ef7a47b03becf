"""The proof ladder (derive.proof): true identities are proved, false ones never are;
non-smooth functions are split into pieces and the kinks are reported."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from derive import REAL, SIMPLEX, Claim, Definition, Identity, Variable
from derive.catalog import get, names
from derive.model.ops import eye, log, mean, outer, relu, sigmoid, softmax, step, sum_
from derive.symbolic.proof import MAX_KINKS, kink_args, prove_claim, prove_zero
from derive.symbolic.graph import Graph, build, derive

x, y, z = sp.symbols("x y z", real=True)


def _free_graph() -> Graph:
    """A graph whose variables are the real symbols x, y, z (no intermediates in play)."""
    identity = Identity("xyz", (Variable("x"), Variable("y"), Variable("z")),
                        (Definition("f", lambda v: v.x + v.y + v.z),),
                        (Claim(lambda v: 1, wrt="x"),))
    graph = build(identity, {})
    assert [graph.nodes[n].symbols.item() for n in "xyz"] == [x, y, z]
    return graph


GRAPH = _free_graph()


def _claim_minus_derived(identity: Identity, sizes: dict[str, int] | None = None) -> tuple[Graph, list]:
    graph = build(identity, identity.sizes[0] if sizes is None else sizes)
    derivation = derive(graph)
    return graph, [c.expr - derivation.derived[c.index] for c in graph.claims]


def _with_claim(name: str, formula, wrt: str | None) -> Identity:  # noqa: ANN001
    return dataclasses.replace(get(name), claims=(Claim(formula, wrt=wrt),))


# --- true identities are proved ---------------------------------------------------------------

@pytest.mark.parametrize("name", names())
def test_every_catalog_claim_is_proved_at_its_first_size(name: str) -> None:
    graph, diffs = _claim_minus_derived(get(name))
    for diff in diffs:
        proof = prove_claim(diff, graph)
        assert proof.proved, proof.detail
        assert proof.methods
        assert proof.detail == ""


def test_prove_zero_on_intermediates_and_activations() -> None:
    graph = build(get("sigmoid_derivative"), {})
    s = graph.nodes["s"].symbols.item()
    xs = graph.nodes["x"].symbols.item()
    # opaque intermediates suffice
    assert prove_zero(s * (1 - s) - (s - s**2), graph).proved
    # needs s = sigmoid(x) substituted
    proof = prove_zero(s * (1 - s) - sp.exp(-xs) / (1 + sp.exp(-xs)) ** 2, graph)
    assert proof.proved and proof.kinks == ()
    assert prove_zero(s - 1 / (1 + sp.exp(-xs)), graph).proved
    assert not prove_zero(s - 1 / (1 + sp.exp(xs)), graph).proved


def test_prove_zero_substitutes_non_elementwise_definitions() -> None:
    identity = Identity("softmax3", (Variable("z", ("n",)),),
                        (Definition("p", lambda v: softmax(v.z)),),
                        (Claim(lambda v: v.p),), sizes=({"n": 3},))
    graph = build(identity, {"n": 3})
    p = graph.nodes["p"].symbols
    assert prove_zero(p[0] + p[1] + p[2] - 1, graph).proved
    assert not prove_zero(p[0] + p[1] - 1, graph).proved


def test_domain_constraints_are_used_and_needed() -> None:
    def sums(domain) -> Graph:  # noqa: ANN001
        identity = Identity("sums", (Variable("q", ("n",), domain),),
                            (Definition("s", lambda v: sum_(v.q)),),
                            (Claim(lambda v: v.s),), sizes=({"n": 3},))
        return build(identity, {"n": 3})

    on_simplex = sums(SIMPLEX)
    q = on_simplex.nodes["q"].symbols
    assert prove_zero(q[0] + q[1] + q[2] - 1, on_simplex).proved
    assert prove_zero(on_simplex.nodes["s"].symbols.item() - 1, on_simplex).proved
    unconstrained = sums(REAL)
    q = unconstrained.nodes["q"].symbols
    assert not prove_zero(q[0] + q[1] + q[2] - 1, unconstrained).proved


@pytest.mark.parametrize("expr", [
    sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1,
    sp.tanh(x) - (sp.exp(2 * x) - 1) / (sp.exp(2 * x) + 1),
    sp.cosh(x) ** 2 - sp.sinh(x) ** 2 - 1,
    sp.exp(2 * x) * sp.exp(-y) - sp.exp(x) ** 2 / sp.exp(y),
    (x**2 - y**2) / (x - y) - x - y,
    sp.log(sp.exp(x) * sp.exp(y)) - sp.log(sp.exp(x + y)),
], ids=["pythagoras", "tanh_as_exp", "cosh_sinh", "exp_powers", "cancel", "log_exp"])
def test_prove_zero_proves_elementary_identities(expr: sp.Expr) -> None:
    proof = prove_zero(expr, GRAPH)
    assert proof.proved, proof
    assert proof.methods


def test_simplify_rung_is_last_and_optional() -> None:
    e = sp.gamma(x + 1) - x * sp.gamma(x)
    proof = prove_zero(e, GRAPH)
    assert proof.proved and proof.methods == ("simplify",)
    assert not prove_zero(e, GRAPH, simplify_ok=False).proved


# --- false identities are never proved --------------------------------------------------------

WRONG_CLAIMS = {
    "sigmoid_negated": ("sigmoid_derivative", "x", lambda v: -v.s * (1 - v.s)),
    "tanh_missing_square": ("tanh_derivative", "x", lambda v: 1 - v.a),
    "relu_step_of_minus_x": ("relu_derivative", "x", lambda v: step(-v.x)),
    "softmax_plus_pj": ("softmax_jacobian", "z",
                        lambda v: eye(len(v.p)) * v.p[:, None] + outer(v.p, v.p)),
    "log_softmax_transposed": ("log_softmax_gradient", "z", lambda v: eye(len(v.p)) - v.p[:, None]),
    "cross_entropy_without_1_over_B": ("cross_entropy_gradient", "z", lambda v: v.p - v.t),
    "bce_probability_sign": ("bce_gradient_probability", "p",
                             lambda v: (v.y - v.p) / (v.p * (1 - v.p)) / len(v.p)),
    "mlp_output_delta_dropped": ("mlp_output_delta", "W_jk", lambda v: outer(v.O_j, v.O_k - v.t)),
    "linear_regression_plus_2xy": ("linear_regression_gradient", "w",
                                   lambda v: mean(2 * v.w * v.x**2 + 2 * v.x * v.y)),
    "himmelblau_1e-6": ("himmelblau_gradient", "y",
                        lambda v: (2 * (v.x**2 + v.y - 11) + 4 * v.y * (v.x + v.y**2 - 7))
                        * (1 + sp.Rational(1, 10**6))),
    "square_sum_1e-9": ("square_sum_gradient", "x", lambda v: 2 * v.x * (1 + sp.Rational(1, 10**9))),
    "square_sum_1e-30": ("square_sum_gradient", "x", lambda v: 2 * v.x + sp.Rational(1, 10**30)),
    "cross_entropy_value_without_minus": ("cross_entropy_definition", None,
                                          lambda v: mean(sum_(v.t * log(v.p), axis=-1))),
}


@pytest.mark.parametrize("key", sorted(WRONG_CLAIMS))
def test_wrong_claims_are_never_proved(key: str) -> None:
    name, wrt, formula = WRONG_CLAIMS[key]
    graph, (diff,) = _claim_minus_derived(_with_claim(name, formula, wrt))
    proof = prove_claim(diff, graph)
    assert not proof.proved
    assert proof.detail
    assert proof.kinks == ()


@pytest.mark.parametrize("expr", [
    sp.log(x * y) - sp.log(x) - sp.log(y),       # false for negative x, y
    sp.sqrt(x**2) - x,                           # false for negative x
    sp.log(x**2) - 2 * sp.log(x),                # false for negative x
    sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1 - sp.Rational(1, 10**20),
    sigmoid(x) - sigmoid(x + sp.Rational(1, 10**12)),
], ids=["log_product", "sqrt_square", "log_square", "pythagoras_off", "sigmoid_shift"])
def test_prove_zero_rejects_false_identities_over_the_reals(expr: sp.Expr) -> None:
    assert not prove_zero(expr, GRAPH).proved


def test_log_product_rule_holds_for_positive_symbols() -> None:
    a, b = sp.symbols("a b", positive=True)
    assert prove_zero(sp.log(a * b) - sp.log(a) - sp.log(b), GRAPH).proved


# --- the kink split ---------------------------------------------------------------------------

def test_relu_derivative_is_step_away_from_zero_and_the_kink_is_reported() -> None:
    graph, (diff,) = _claim_minus_derived(get("relu_derivative"))
    proof = prove_claim(diff, graph)
    assert proof.proved
    assert proof.kinks == ("x = 0",)


def test_relu_with_a_wrong_piece_is_not_proved() -> None:
    graph, (diff,) = _claim_minus_derived(_with_claim("relu_derivative", lambda v: 1 + 0 * v.x, "x"))
    proof = prove_claim(diff, graph)
    assert not proof.proved
    assert "signs" in proof.detail


def test_kink_args() -> None:
    assert kink_args(sp.Abs(x)) == [x]
    assert kink_args(sp.Heaviside(x - 1)) == [x - 1]
    assert kink_args(sp.Piecewise((1, x > 2), (0, True))) == [x - 2]
    (arg,) = kink_args(relu(x))
    assert arg in (x, -x)
    assert kink_args(sp.exp(x) + x**2) == []
    assert set(kink_args(sp.Abs(x) + sp.Max(x, y))) in ({x, x - y}, {x, y - x})


@pytest.mark.parametrize("expr, kinks", [
    (sp.Abs(x) - x * sp.sign(x), 1),
    (sp.Abs(x) - sp.Piecewise((-x, x < 0), (x, True)), 1),
    (sp.Max(x, y) - (x + y + sp.Abs(x - y)) / 2, 1),
    (sp.Min(x, y) + sp.Max(x, y) - x - y, 1),
    (sp.diff(relu(x) * relu(y), x) - step(x) * relu(y), 2),
    (sp.Abs(x) * sp.Abs(y) - x * y * sp.sign(x) * sp.sign(y), 2),
])
def test_kink_split_proves_piecewise_identities(expr: sp.Expr, kinks: int) -> None:
    proof = prove_zero(expr, GRAPH)
    assert proof.proved, proof
    assert len(proof.kinks) >= kinks
    assert all(k.endswith(" = 0") for k in proof.kinks)


def test_relu_as_max_equals_relu_as_piecewise() -> None:
    proof = prove_zero(sp.Max(0, x) - sp.Piecewise((x, x > 0), (0, True)), GRAPH)
    assert proof.proved, proof


@pytest.mark.parametrize("expr", [
    sp.Abs(x) - x,
    sp.Max(0, x) - x,
    sp.Max(x, y) - x,
    sp.Piecewise((1, x > 0), (0, True)) - sp.Heaviside(-x),
    sp.Abs(x) - sp.Abs(y),
])
def test_kink_split_never_proves_a_piece_that_differs(expr: sp.Expr) -> None:
    proof = prove_zero(expr, GRAPH)
    assert not proof.proved
    assert proof.kinks == ()


def test_too_many_kinks_are_not_split() -> None:
    e = sum(sp.Max(x - i, i - x) - sp.Abs(x - i) for i in range(MAX_KINKS + 1))
    assert len(kink_args(e)) > MAX_KINKS
    proof = prove_zero(e, GRAPH)
    assert not proof.proved
    assert "too many" in proof.detail


# --- properties -------------------------------------------------------------------------------

_coeff = st.integers(-3, 3)
_linear = st.tuples(_coeff, _coeff, _coeff, _coeff).map(
    lambda c: c[0] * x + c[1] * y + c[2] * z + c[3])
_factor = st.tuples(_linear, st.integers(1, 2)).map(lambda t: t[0] ** t[1])
_term = st.tuples(_coeff, st.lists(_factor, min_size=1, max_size=2)).map(
    lambda t: t[0] * sp.Mul(*t[1]))
polynomials = st.lists(_term, min_size=1, max_size=3).map(lambda ts: sp.Add(*ts))
nonzero_rationals = st.fractions(min_value=-10, max_value=10, max_denominator=10**6).filter(
    lambda f: f != 0).map(lambda f: sp.Rational(f.numerator, f.denominator))


@settings(max_examples=30, deadline=None)
@given(p=polynomials)
def test_a_polynomial_minus_its_expansion_is_proved(p: sp.Expr) -> None:
    assert prove_zero(p - sp.expand(p), GRAPH).proved


@settings(max_examples=30, deadline=None)
@given(p=polynomials, c=nonzero_rationals)
def test_a_polynomial_minus_its_expansion_plus_a_constant_is_not_proved(p: sp.Expr, c: sp.Rational) -> None:
    assert not prove_zero(p - sp.expand(p) + c, GRAPH).proved


@settings(max_examples=15, deadline=None)
@given(p=polynomials, q=_linear)
def test_a_product_divided_by_its_factor_is_proved(p: sp.Expr, q: sp.Expr) -> None:
    assume(q != 0)
    assert prove_zero(sp.expand(p * q) / q - p, GRAPH).proved
