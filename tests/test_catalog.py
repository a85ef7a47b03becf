"""One test over the whole built-in catalog: every identity is proved and agrees numerically."""

from __future__ import annotations

import pytest

from derive import catalog, check
from derive.numeric.tolerance import TOLERANCES

REQUIRED = [
    "sigmoid_derivative", "tanh_derivative", "relu_derivative", "dot_product_gradient",
    "softmax_jacobian", "log_softmax_gradient", "mse_gradient", "bce_definition",
    "bce_gradient_probability", "bce_gradient_logit", "cross_entropy_definition",
    "cross_entropy_gradient", "mlp_output_delta", "mlp_hidden_delta", "linear_model_gradient",
    "linear_regression_gradient", "square_sum_gradient", "himmelblau_gradient",
]


def test_catalog_has_the_names_users_refer_to() -> None:
    assert set(REQUIRED) <= set(catalog.names())


@pytest.mark.parametrize("name", catalog.names())
def test_catalog_identity_is_proved_and_agrees_on_numpy_and_torch(name: str) -> None:
    result = check(catalog.get(name), samples=24, seed=7)
    assert result.verdict == "proved", result.reason
    assert result.symbolic.status == "proved"
    assert {n.backend for n in result.numeric} == {"numpy", "torch"}
    for n in result.numeric:
        assert n.max_rel_error <= TOLERANCES["float64"].exact, n
    for size in result.sizes:
        assert size.verdict == "proved"
        sources = set(size.sources)
        # three independent truths: the SymPy derivative (or definition), autograd, a witness
        assert sources & {"sympy/numpy", "definition/numpy"}
        assert sources & {"central differences", "mpmath 40 digits"}
        if any(c.wrt for c in catalog.get(name).claims):
            assert "autograd" in sources


def test_every_catalog_identity_has_a_torch_reference_and_a_source() -> None:
    for identity in catalog.CATALOG.values():
        assert identity.references, identity.name
        assert identity.source and identity.description and identity.family


def test_relu_kink_is_reported() -> None:
    result = check(catalog.get("relu_derivative"), samples=64)
    assert result.symbolic.kinks == ("x = 0",)
    assert any("kink" in note for s in result.sizes for note in s.notes)


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(KeyError, match="did you mean softmax_jacobian"):
        catalog.get("softmax_jacobain")
