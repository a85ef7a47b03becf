"""Domains: samplers stay inside the domain, constraints eliminate the last entry of each row,
labels are fed to formulas as one-hot rows, and sampling is reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from derive import (BINARY, ONE_HOT, POSITIVE, REAL, SIMPLEX, UNIT_INTERVAL, Binary, Claim,
    Definition, Identity, Label, OneHot, Positive, Real, Simplex, UnitInterval, Variable)
from derive.model.ops import sum_
from derive.symbolic.graph import build

SIZES = {"k": 4}
ALL = [REAL, POSITIVE, UNIT_INTERVAL, SIMPLEX, ONE_HOT, BINARY, Label(classes="k")]
ROWWISE = [SIMPLEX, ONE_HOT, Label(classes="k")]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _symbols(name: str, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = sp.Symbol(f"{name}{idx}")
    return out


# --- samplers stay inside their domain -------------------------------------------------------

def test_real_is_finite_gaussian_with_its_scale() -> None:
    x = REAL.sample(_rng(), (20000,), SIZES)
    assert x.shape == (20000,) and x.dtype == np.float64
    assert np.isfinite(x).all()
    assert abs(x.mean()) < 0.1
    assert x.std() == pytest.approx(REAL.scale, rel=0.05)
    assert (x < 0).any() and (x > 0).any()
    wide = Real(scale=10.0).sample(_rng(), (20000,), SIZES)
    assert wide.std() == pytest.approx(10.0, rel=0.05)


def test_positive_is_strictly_positive() -> None:
    x = POSITIVE.sample(_rng(), (5000, 3), SIZES)
    assert x.shape == (5000, 3)
    assert np.isfinite(x).all() and (x > 0).all()
    assert x.min() < 1 < x.max()


def test_unit_interval_is_strictly_inside_and_away_from_the_ends() -> None:
    x = UNIT_INTERVAL.sample(_rng(), (5000, 2), SIZES)
    assert x.shape == (5000, 2)
    assert (x > 0).all() and (x < 1).all()
    margin = UNIT_INTERVAL.margin
    assert margin > 0
    assert (x >= margin).all() and (x <= 1 - margin).all()
    tight = UnitInterval(margin=0.25).sample(_rng(), (1000,), SIZES)
    assert (tight >= 0.25).all() and (tight <= 0.75).all()


@pytest.mark.parametrize("shape", [(100, 1), (100, 2), (100, 5), (7, 3, 4)])
def test_simplex_rows_are_positive_and_sum_to_one(shape: tuple[int, ...]) -> None:
    p = SIMPLEX.sample(_rng(), shape, SIZES)
    assert p.shape == shape
    assert (p > 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(200, 1), (200, 3), (5, 6, 4)])
def test_one_hot_rows_have_a_single_one(shape: tuple[int, ...]) -> None:
    t = ONE_HOT.sample(_rng(), shape, SIZES)
    assert t.shape == shape
    assert set(np.unique(t)) <= {0.0, 1.0}
    np.testing.assert_array_equal(t.sum(axis=-1), 1.0)
    np.testing.assert_array_equal((t == 1).sum(axis=-1), 1)


def test_one_hot_uses_every_class() -> None:
    t = ONE_HOT.sample(_rng(), (500, 4), SIZES)
    assert set(t.argmax(axis=-1)) == {0, 1, 2, 3}


@pytest.mark.parametrize("k", [1, 2, 5])
def test_labels_are_integers_in_0_to_k_minus_1(k: int) -> None:
    labels = Label(classes="C").sample(_rng(), (300, 3), {"C": k})
    assert labels.shape == (300, 3)
    assert labels.dtype.kind in "iu"
    assert labels.min() >= 0 and labels.max() <= k - 1
    assert set(np.unique(labels)) == set(range(k))


def test_binary_is_zero_or_one_as_float() -> None:
    y = BINARY.sample(_rng(), (400, 2), SIZES)
    assert y.shape == (400, 2) and y.dtype == np.float64
    assert set(np.unique(y)) == {0.0, 1.0}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 20), n=st.integers(1, 6))
def test_every_sampler_stays_inside_for_any_seed(seed: int, count: int, n: int) -> None:
    rng = _rng(seed)
    sizes = {"k": n}
    assert np.isfinite(REAL.sample(rng, (count, n), sizes)).all()
    assert (POSITIVE.sample(rng, (count, n), sizes) > 0).all()
    u = UNIT_INTERVAL.sample(rng, (count, n), sizes)
    assert ((u > 0) & (u < 1)).all()
    p = SIMPLEX.sample(rng, (count, n), sizes)
    assert (p > 0).all() and np.allclose(p.sum(-1), 1.0, rtol=0, atol=1e-12)
    t = ONE_HOT.sample(rng, (count, n), sizes)
    assert ((t == 0) | (t == 1)).all() and (t.sum(-1) == 1).all()
    labels = Label(classes="k").sample(rng, (count,), sizes)
    assert ((labels >= 0) & (labels < n)).all()
    b = BINARY.sample(rng, (count, n), sizes)
    assert ((b == 0) | (b == 1)).all()


# --- reproducibility --------------------------------------------------------------------------

@pytest.mark.parametrize("domain", ALL, ids=str)
def test_sampling_is_reproducible_from_a_seeded_generator(domain) -> None:  # noqa: ANN001
    shape = (50, 4)
    a = domain.sample(_rng(123), shape, SIZES)
    b = domain.sample(_rng(123), shape, SIZES)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype


@pytest.mark.parametrize("domain", ALL, ids=str)
def test_different_seeds_give_different_samples(domain) -> None:  # noqa: ANN001
    a = domain.sample(_rng(1), (50, 4), SIZES)
    b = domain.sample(_rng(2), (50, 4), SIZES)
    assert not np.array_equal(a, b)


def test_sampling_consumes_the_generator_stream() -> None:
    rng = _rng(7)
    first = REAL.sample(rng, (10,), SIZES)
    second = REAL.sample(rng, (10,), SIZES)
    assert not np.array_equal(first, second)
    rng2 = _rng(7)
    np.testing.assert_array_equal(REAL.sample(rng2, (10,), SIZES), first)
    np.testing.assert_array_equal(REAL.sample(rng2, (10,), SIZES), second)


# --- constraints ------------------------------------------------------------------------------

@pytest.mark.parametrize("domain", ROWWISE, ids=str)
def test_constraints_eliminate_the_last_entry_of_each_row(domain) -> None:  # noqa: ANN001
    m = _symbols("m", (2, 3))
    c = domain.constraints(m)
    assert set(c) == {m[0, 2], m[1, 2]}
    assert sp.expand(c[m[0, 2]] - (1 - m[0, 0] - m[0, 1])) == 0
    assert sp.expand(c[m[1, 2]] - (1 - m[1, 0] - m[1, 1])) == 0
    # after substitution every row sums to one identically
    for row in m:
        assert sp.expand(sum(row).xreplace(c)) == 1
    # the eliminated entries do not occur on the right-hand sides
    assert not set().union(*(e.free_symbols for e in c.values())) & set(c)


@pytest.mark.parametrize("domain", ROWWISE, ids=str)
def test_constraints_on_a_vector_eliminate_its_last_entry(domain) -> None:  # noqa: ANN001
    v = _symbols("v", (4,))
    c = domain.constraints(v)
    assert list(c) == [v[3]]
    assert sp.expand(c[v[3]] - (1 - v[0] - v[1] - v[2])) == 0


def test_constraints_of_a_single_entry_row_pin_it_to_one() -> None:
    v = _symbols("v", (1,))
    assert SIMPLEX.constraints(v) == {v[0]: 1}


@pytest.mark.parametrize("domain", [REAL, POSITIVE, UNIT_INTERVAL, BINARY], ids=str)
def test_unconstrained_domains_have_no_constraints(domain) -> None:  # noqa: ANN001
    assert domain.constraints(_symbols("v", (2, 3))) == {}


def test_build_collects_the_constraints_of_its_variables() -> None:
    identity = Identity(
        "simplex_sum",
        variables=(Variable("p", ("n",), SIMPLEX), Variable("x", ("n",))),
        definitions=(Definition("s", lambda v: sum_(v.p * v.x)),),
        claims=(Claim(lambda v: v.p, wrt="x"),),
        sizes=({"n": 3},))
    graph = build(identity, {"n": 3})
    p = graph.nodes["p"].symbols
    assert set(graph.constraints) == {p[2]}
    assert sp.expand(graph.constraints[p[2]] - (1 - p[0] - p[1])) == 0


# --- how values are fed to formulas -----------------------------------------------------------

def test_label_encode_gives_one_hot_rows() -> None:
    label = Label(classes="k")
    labels = np.array([[0, 3], [2, 1], [3, 3]])
    enc = label.encode(labels, {"k": 4})
    assert enc.shape == (3, 2, 4) and enc.dtype == np.float64
    np.testing.assert_array_equal(enc.argmax(axis=-1), labels)
    np.testing.assert_array_equal(enc.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(enc[0, 1], [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(enc[1, 0], [0.0, 0.0, 1.0, 0.0])


def test_label_encode_of_sampled_labels_round_trips() -> None:
    label = Label(classes="C")
    sizes = {"C": 5}
    labels = label.sample(_rng(3), (64, 2), sizes)
    enc = label.encode(labels, sizes)
    np.testing.assert_array_equal(enc.argmax(axis=-1), labels)
    assert ((enc == 0) | (enc == 1)).all()


def test_label_formula_shape_adds_the_class_axis() -> None:
    assert Label(classes="k").formula_shape((3,), {"k": 4}) == (3, 4)
    assert Label(classes="C").formula_shape((), {"C": 2}) == (2,)
    assert REAL.formula_shape((3,), {"k": 4}) == (3,)


@pytest.mark.parametrize("domain", [REAL, POSITIVE, UNIT_INTERVAL, SIMPLEX, ONE_HOT, BINARY], ids=str)
def test_encode_of_other_domains_is_float64_identity(domain) -> None:  # noqa: ANN001
    values = domain.sample(_rng(), (5, 3), SIZES)
    enc = domain.encode(values, SIZES)
    assert enc.dtype == np.float64
    np.testing.assert_array_equal(enc, values)


def test_label_variables_become_one_hot_symbol_rows_in_build() -> None:
    identity = Identity(
        "pick",
        variables=(Variable("z", ("B", "k")), Variable("t", ("B",), Label(classes="k"))),
        definitions=(Definition("L", lambda v: sum_(v.t * v.z)),),
        claims=(Claim(lambda v: v.t, wrt="z"),),
        sizes=({"B": 2, "k": 3},))
    graph = build(identity, {"B": 2, "k": 3})
    t = graph.nodes["t"].symbols
    assert t.shape == (2, 3)
    assert set(graph.constraints) == {t[0, 2], t[1, 2]}
    assert all(s.is_nonnegative for s in t.flat)


def test_label_positional_argument_names_the_class_size() -> None:
    assert Label("C").classes == "C"


def test_identity_with_a_positional_label_size_is_accepted() -> None:
    identity = Identity(
        "pick_c",
        variables=(Variable("z", ("B", "C")), Variable("t", ("B",), Label("C"))),
        definitions=(Definition("L", lambda v: sum_(v.t * v.z)),),
        claims=(Claim(lambda v: v.t, wrt="z"),),
        sizes=({"B": 2, "C": 3},))
    assert build(identity, {"B": 2, "C": 3}).nodes["t"].symbols.shape == (2, 3)


# --- assumptions, differentiability, names ----------------------------------------------------

@pytest.mark.parametrize("domain, assumption", [
    (REAL, "real"), (POSITIVE, "positive"), (UNIT_INTERVAL, "positive"), (SIMPLEX, "positive"),
    (ONE_HOT, "nonnegative"), (Label(classes="k"), "nonnegative"),
], ids=lambda x: str(x))
def test_assumptions_reach_the_symbols(domain, assumption: str) -> None:  # noqa: ANN001
    s = sp.Symbol("s", **domain.assumptions)
    assert getattr(s, f"is_{assumption}") is True


@pytest.mark.parametrize("domain, differentiable", [
    (REAL, True), (POSITIVE, True), (UNIT_INTERVAL, True), (SIMPLEX, True),
    (ONE_HOT, False), (BINARY, False), (Label(classes="k"), False),
], ids=lambda x: str(x))
def test_discrete_domains_are_not_differentiable(domain, differentiable: bool) -> None:  # noqa: ANN001
    assert domain.differentiable is differentiable


def test_domain_names() -> None:
    assert [str(d) for d in (REAL, POSITIVE, UNIT_INTERVAL, SIMPLEX, ONE_HOT, BINARY)] == [
        "real", "positive", "unit_interval", "simplex", "one_hot", "binary"]
    assert str(Label(classes="C")) == "label(C)"


def test_domains_are_frozen_and_compare_by_parameters() -> None:
    assert Real() == REAL and Positive() == POSITIVE and Simplex() == SIMPLEX
    assert OneHot() == ONE_HOT and Binary() == BINARY
    assert Label(classes="k") == Label(classes="k") and Label(classes="k") != Label(classes="C")
    assert Real(scale=1.0) != REAL
    with pytest.raises(AttributeError):
        REAL.scale = 3.0  # type: ignore[misc]


# --- symmetric matrices: sampled symmetric, one symbol per unordered pair in proofs ----------

def test_symmetric_and_spd_sample_symmetric_matrices() -> None:
    from derive import SPD_MATRIX, SYMMETRIC

    for domain in (SYMMETRIC, SPD_MATRIX):
        a = domain.sample(_rng(), (50, 3, 3), SIZES)
        assert (a == np.swapaxes(a, -1, -2)).all() and domain.symmetric
    a = SYMMETRIC.sample(_rng(), (4000, 3, 3), SIZES)
    assert (np.linalg.eigvalsh(a) < 0).any() and abs(a.mean()) < 0.1  # not only definite ones
    assert not REAL.symmetric
    with pytest.raises(Exception, match="square matrices"):
        SYMMETRIC.sample(_rng(), (5, 2, 3), SIZES)


def test_symmetric_constraints_keep_one_symbol_per_unordered_pair() -> None:
    from derive import SYMMETRIC

    a = _symbols("A", (3, 3))
    subs = SYMMETRIC.constraints(a)
    assert subs == {a[1, 0]: a[0, 1], a[2, 0]: a[0, 2], a[2, 1]: a[1, 2]}


def test_symmetric_is_a_spec_file_domain(tmp_path) -> None:  # noqa: ANN001
    from derive import SYMMETRIC
    from derive.language.specfile import load_spec

    spec = tmp_path / "s.derive.toml"
    spec.write_text('[[identity]]\nname = "q"\nvariables = { x = { shape = "vector(n)" }, '
                    'A = { shape = "matrix(n, n)", domain = "symmetric" } }\nsizes = [{ n = 2 }]\n'
                    'define = { f = "x @ A @ x" }\nwrt = "x"\nclaim = "2 * A @ x"\n')
    (identity,) = load_spec(spec)
    assert identity.variable("A").domain == SYMMETRIC
    spec.write_text(spec.read_text().replace("matrix(n, n)", "vector(n)"))
    with pytest.raises(Exception, match="domain symmetric needs a square matrix shape"):
        load_spec(spec)
