"""derive.ops (derive.model.ops) builds the SymPy expressions the textbooks write, on scalars and object arrays;
derive.symbolic.build turns the Floats an author writes into exact rationals."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from derive import Claim, Definition, Identity, Variable
from derive.model import ops
from derive.symbolic.graph import build


def vec(name: str, n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = sp.Symbol(f"{name}{i}", real=True)
    return out


def mat(name: str, n: int, m: int) -> np.ndarray:
    out = np.empty((n, m), dtype=object)
    for i in range(n):
        for j in range(m):
            out[i, j] = sp.Symbol(f"{name}{i}{j}", real=True)
    return out


x, y = sp.symbols("x y", real=True)


def is_zero(e: sp.Expr) -> bool:
    return sp.simplify(e) == 0


# --- elementwise functions --------------------------------------------------------------------

def test_elementwise_keeps_scalars_scalar_and_arrays_arrays() -> None:
    e = ops.exp(x)
    assert isinstance(e, sp.Expr) and e == sp.exp(x)
    z = vec("z", 3)
    out = ops.exp(z)
    assert isinstance(out, np.ndarray) and out.dtype == object and out.shape == (3,)
    assert list(out) == [sp.exp(s) for s in z]
    m = mat("m", 2, 3)
    assert ops.tanh(m).shape == (2, 3)
    assert ops.tanh(m)[1, 2] == sp.tanh(m[1, 2])


def test_elementwise_sympifies_plain_numbers() -> None:
    assert ops.exp(0) == 1
    assert ops.log(1) == 0
    assert ops.sqrt(4) == 2
    assert ops.abs_(-3) == 3
    assert list(ops.exp(np.array([0, 0], dtype=object))) == [1, 1]


@pytest.mark.parametrize("fn, ref", [
    (ops.exp, sp.exp), (ops.log, sp.log), (ops.sqrt, sp.sqrt), (ops.tanh, sp.tanh),
    (ops.sin, sp.sin), (ops.cos, sp.cos), (ops.abs_, sp.Abs),
])
def test_elementwise_wraps_the_sympy_function(fn, ref) -> None:  # noqa: ANN001
    assert fn(x) == ref(x)
    assert list(fn(vec("a", 2))) == [ref(a) for a in vec("a", 2)]


def test_sigmoid_is_one_over_one_plus_exp_minus_x() -> None:
    assert ops.sigmoid(x) == 1 / (1 + sp.exp(-x))
    assert ops.sigmoid(0) == sp.Rational(1, 2)
    assert ops.sigmoid(sp.Integer(0)) == ops.half
    s = ops.sigmoid(x)
    assert is_zero(sp.diff(s, x) - s * (1 - s))
    assert sp.limit(s, x, sp.oo) == 1 and sp.limit(s, x, -sp.oo) == 0


def test_tanh_derivative_from_the_vocabulary() -> None:
    a = ops.tanh(x)
    assert is_zero(sp.diff(a, x) - (1 - a**2))


def test_relu_is_max_zero_x() -> None:
    r = ops.relu(x)
    assert r == sp.Max(0, x)
    assert ops.relu(2) == 2 and ops.relu(-3) == 0
    assert r.subs(x, sp.Rational(5, 2)) == sp.Rational(5, 2)
    assert list(ops.relu(np.array([-1, 0, 3], dtype=object))) == [0, 0, 3]


def test_step_is_one_for_positive_and_zero_otherwise() -> None:
    st = ops.step(x)
    assert isinstance(st, sp.Piecewise)
    assert st.subs(x, 1) == 1
    assert st.subs(x, sp.Rational(1, 10**9)) == 1
    assert st.subs(x, -1) == 0
    assert st.subs(x, 0) == 0


def test_softplus_is_log_one_plus_exp() -> None:
    assert ops.softplus(x) == sp.log(1 + sp.exp(x))
    assert ops.softplus(0) == sp.log(2)
    assert is_zero(sp.diff(ops.softplus(x), x) - ops.sigmoid(x))


# --- reductions -------------------------------------------------------------------------------

def test_sum_over_all_and_along_axes() -> None:
    m = mat("m", 2, 3)
    assert ops.sum_(m) == sum(m.flat)
    rows = ops.sum_(m, axis=-1)
    assert rows.shape == (2,) and rows[0] == m[0, 0] + m[0, 1] + m[0, 2]
    cols = ops.sum_(m, axis=0)
    assert cols.shape == (3,) and cols[2] == m[0, 2] + m[1, 2]
    assert ops.sum_(m, axis=-1, keepdims=True).shape == (2, 1)


def test_sum_of_nothing_is_zero() -> None:
    assert ops.sum_(np.empty((0,), dtype=object)) == 0


def test_mean_divides_by_the_count() -> None:
    a = vec("a", 3)
    assert sp.expand(ops.mean(a) - (a[0] + a[1] + a[2]) / 3) == 0
    assert ops.mean(a).subs({a[0]: 1, a[1]: 2, a[2]: 6}) == 3
    m = mat("m", 2, 3)
    assert sp.expand(ops.mean(m) - sum(m.flat) / 6) == 0
    rows = ops.mean(m, axis=-1)
    assert rows.shape == (2,)
    assert sp.expand(rows[1] - (m[1, 0] + m[1, 1] + m[1, 2]) / 3) == 0
    cols = ops.mean(m, axis=0)
    assert cols.shape == (3,)
    assert sp.expand(cols[0] - (m[0, 0] + m[1, 0]) / 2) == 0
    # exact: the divisor is a Rational, not a float
    assert not ops.mean(a).atoms(sp.Float)


def test_dot_is_the_sum_of_products_along_the_last_axis() -> None:
    a, b = vec("a", 3), vec("b", 3)
    assert sp.expand(ops.dot(a, b) - (a[0] * b[0] + a[1] * b[1] + a[2] * b[2])) == 0
    m = mat("m", 2, 3)
    mv = ops.dot(m, b)
    assert mv.shape == (2,)
    assert sp.expand(mv[1] - sum(m[1, j] * b[j] for j in range(3))) == 0


def test_matmul_on_object_arrays() -> None:
    w = mat("w", 2, 3)
    o = vec("o", 2)
    xk = o @ w
    assert xk.shape == (3,)
    assert sp.expand(xk[2] - (o[0] * w[0, 2] + o[1] * w[1, 2])) == 0


# --- softmax family ---------------------------------------------------------------------------

def test_softmax_entries_are_exp_over_sum_exp() -> None:
    z = vec("z", 3)
    p = ops.softmax(z)
    assert p.shape == (3,)
    total = sp.exp(z[0]) + sp.exp(z[1]) + sp.exp(z[2])
    for i in range(3):
        assert sp.simplify(p[i] - sp.exp(z[i]) / total) == 0


def test_softmax_entries_sum_to_one_at_n_3() -> None:
    p = ops.softmax(vec("z", 3))
    assert sp.simplify(sum(p)) == 1


def test_softmax_rows_of_a_matrix_sum_to_one() -> None:
    p = ops.softmax(mat("z", 2, 3))
    assert p.shape == (2, 3)
    for row in p:
        assert sp.simplify(sum(row)) == 1
    # each row only involves its own logits
    assert p[0, 0].free_symbols == {sp.Symbol(f"z0{j}", real=True) for j in range(3)}


def test_softmax_is_shift_invariant() -> None:
    z = vec("z", 3)
    c = sp.Symbol("c", real=True)
    p, q = ops.softmax(z), ops.softmax(z + c)
    assert all(sp.simplify(a - b) == 0 for a, b in zip(p, q))


def test_log_softmax_is_z_minus_log_sum_exp() -> None:
    z = vec("z", 3)
    ls = ops.log_softmax(z)
    lse = sp.log(sp.exp(z[0]) + sp.exp(z[1]) + sp.exp(z[2]))
    assert ls.shape == (3,)
    for i in range(3):
        assert ls[i] == z[i] - lse
    assert all(sp.expand(a - b) == 0 for a, b in zip(ls, z - ops.logsumexp(z)))


def test_log_softmax_equals_log_of_softmax() -> None:
    z = vec("z", 3)
    point = {z[0]: sp.Rational(1, 3), z[1]: -2, z[2]: sp.Rational(7, 5)}
    for a, b in zip(ops.log_softmax(z), ops.log(ops.softmax(z))):
        assert abs(sp.N((a - b).subs(point), 50)) < 1e-45


def test_log_softmax_of_a_matrix_works_row_by_row() -> None:
    z = mat("z", 2, 2)
    ls = ops.log_softmax(z)
    assert ls[1, 0] == z[1, 0] - sp.log(sp.exp(z[1, 0]) + sp.exp(z[1, 1]))


def test_logsumexp_reduces_the_last_axis() -> None:
    z = mat("z", 2, 3)
    out = ops.logsumexp(z)
    assert out.shape == (2,)
    assert out[0] == sp.log(sum(sp.exp(s) for s in z[0]))


# --- constructors -----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 4])
def test_eye_is_the_kronecker_delta(n: int) -> None:
    e = ops.eye(n)
    assert e.shape == (n, n) and e.dtype == object
    for i in range(n):
        for j in range(n):
            assert e[i, j] == (1 if i == j else 0)
            assert isinstance(e[i, j], sp.Integer)


def test_outer_shape_and_entries() -> None:
    a, b = vec("a", 2), vec("b", 3)
    o = ops.outer(a, b)
    assert o.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert o[i, j] == a[i] * b[j]


def test_diag_shape_and_entries() -> None:
    a = vec("a", 3)
    d = ops.diag(a)
    assert d.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert d[i, j] == (a[i] if i == j else 0)


def test_softmax_jacobian_from_eye_and_outer() -> None:
    z = vec("z", 3)
    p = ops.softmax(z)
    claim = ops.eye(3) * p[:, None] - ops.outer(p, p)
    assert sp.simplify(claim[0, 1] - sp.diff(p[0], z[1])) == 0
    assert sp.simplify(claim[2, 2] - sp.diff(p[2], z[2])) == 0


def test_shape_and_half() -> None:
    assert ops.shape(mat("m", 2, 3)) == (2, 3)
    assert ops.shape(x) == ()
    assert ops.half == sp.Rational(1, 2)


# --- Floats become exact rationals in build ---------------------------------------------------

def test_build_turns_floats_in_definitions_and_claims_into_rationals() -> None:
    identity = Identity(
        "floats",
        variables=(Variable("x"), Variable("w", ("n",))),
        definitions=(Definition("h", lambda v: 0.1 * v.x + 1e-3 * ops.sum_(v.w)),
                     Definition("f", lambda v: 0.5 * v.h**2 + 2.5)),
        claims=(Claim(lambda v: 0.05 * v.h, wrt="x"),),
        sizes=({"n": 2},))
    graph = build(identity, {"n": 2})
    xs = graph.nodes["x"].symbols.item()
    w = graph.nodes["w"].symbols
    h = graph.nodes["h"].expr.item()
    f = graph.nodes["f"].expr.item()
    hs = graph.nodes["h"].symbols.item()
    assert not h.atoms(sp.Float) and not f.atoms(sp.Float)
    assert sp.expand(h - (sp.Rational(1, 10) * xs + sp.Rational(1, 1000) * (w[0] + w[1]))) == 0
    assert sp.expand(f - (sp.Rational(1, 2) * hs**2 + sp.Rational(5, 2))) == 0
    claim = graph.claims[0].expr
    assert claim.shape == ()
    assert claim.item() == sp.Rational(1, 20) * hs
    assert not claim.item().atoms(sp.Float)
