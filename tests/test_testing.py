"""derive.testing and derive.strategies: what users put in their own test suites."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from derive import Claim, catalog, strategies
from derive.model import ops
from derive.numeric.callables import make_claim, make_forward
from derive.testing import assert_identity, failure_message


def test_assert_identity_returns_the_result_when_it_holds() -> None:
    result = assert_identity(catalog.get("square_sum_gradient"), samples=8)
    assert result.verdict == "proved"


def test_assert_identity_raises_with_the_counterexample() -> None:
    wrong = dataclasses.replace(catalog.get("sigmoid_derivative"), name="sigmoid_plus",
                                claims=(Claim(lambda v: v.s * (1 + v.s), wrt="x"),))
    with pytest.raises(AssertionError) as info:
        assert_identity(wrong, samples=8, seed=3)
    text = str(info.value)
    assert text.startswith("sigmoid_plus: refuted")
    assert "counterexample" in text and "x = " in text and "seed=3" in text


@settings(max_examples=25, deadline=None)
@given(strategies.inputs(catalog.get("cross_entropy_gradient")))
def test_drawn_inputs_respect_the_domains(values: dict) -> None:
    assert values["z"].shape == (2, 4) and np.isfinite(values["z"]).all()
    assert values["t"].dtype.kind == "i" and values["t"].min() >= 0 and values["t"].max() < 4


@settings(max_examples=25, deadline=None)
@given(strategies.inputs(catalog.get("bce_gradient_probability"), sizes={"n": 4}))
def test_unit_interval_and_binary_inputs(values: dict) -> None:
    assert ((values["p"] > 0) & (values["p"] < 1)).all()
    assert set(np.unique(values["y"])) <= {0.0, 1.0}


@settings(max_examples=30, deadline=None)
@given(strategies.inputs(catalog.get("softmax_jacobian")))
def test_property_claim_matches_forward_differences(values: dict) -> None:
    """The kind of property test a user writes: the claimed Jacobian against a difference."""
    identity = catalog.get("softmax_jacobian")
    jac = make_claim(identity, wrt="z")(**values)
    forward = make_forward(identity)
    h = 1e-6
    for j in range(3):
        step = np.eye(3)[j] * h
        column = (forward(z=values["z"] + step) - forward(z=values["z"] - step)) / (2 * h)
        np.testing.assert_allclose(jac[:, j], column, atol=1e-8)


def test_a_wrong_property_fails_and_shrinks() -> None:
    """Hypothesis finds and shrinks a counterexample to a deliberately wrong claim."""
    identity = catalog.get("relu_derivative")
    wrong_sign = dataclasses.replace(identity, claims=(Claim(lambda v: ops.step(-v.x), wrt="x"),))
    claim = make_claim(wrong_sign, wrt="x")
    right = make_claim(identity, wrt="x")

    @settings(max_examples=50, deadline=None, database=None)
    @given(strategies.inputs(identity))
    def prop(values: dict) -> None:
        assert claim(**values) == right(**values)

    with pytest.raises(AssertionError):
        prop()


def test_strategies_refuse_missing_sizes() -> None:
    from derive import SpecError

    with pytest.raises(SpecError, match="do not give n"):
        strategies.inputs(catalog.get("softmax_jacobian"), sizes={})


def test_failure_message_of_a_proved_result_is_short() -> None:
    result = assert_identity(catalog.get("tanh_derivative"), samples=4)
    assert failure_message(result) == "tanh_derivative: proved"


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_every_domain_has_a_strategy(data: st.DataObject) -> None:
    from derive.model.domains import BINARY, ONE_HOT, POSITIVE, REAL, SIMPLEX, UNIT_INTERVAL, Label
    from derive.model.spec import Variable

    for domain in (REAL, POSITIVE, UNIT_INTERVAL, SIMPLEX, ONE_HOT, BINARY, Label("k")):
        value = data.draw(strategies.values(Variable("v", ("n", "k"), domain), {"n": 2, "k": 3}))
        assert np.asarray(value).shape[0] == 2
