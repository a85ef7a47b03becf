"""Layer backward formulas: wrong twins refuted, the compact norm backwards against torch
autograd to 1e-12, GELU's two forms told apart, the backprop recurrence at any depth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from catalog_helpers import assert_twin_refuted, check_twin, matches_golden

from derive import catalog, check
from derive.numeric.callables import make_claim
from derive.catalog.layers import gelu_exact_derivative, gelu_tanh_derivative, mlp_backprop_identity
from derive.errors import SpecError
from derive.model.ops import exp, mean, outer, sigmoid, size, sum_
from derive.symbolic.proof import prove_claim
from derive.symbolic.graph import build, derive

LAYERS = [i.name for i in catalog.layers.IDENTITIES]


def _ln_dx_without_mean_of_g(v: Any) -> Any:
    g = v.G * v.gamma
    return (g - v.x_hat * mean(g * v.x_hat)) / v.sigma


def _bn_dx_unbatched(v: Any) -> Any:  # the per-feature sum over the batch forgotten
    g = v.G * v.gamma[None, :]
    return (g - v.X_hat * g * v.X_hat) / v.sigma[None, :]


def _attention_dq_unscaled(v: Any) -> Any:
    dP = v.G @ v.V.T
    return v.P * (dP - sum_(dP * v.P, axis=-1, keepdims=True)) @ v.K


def _mlp_delta1_without_sigma_prime(v: Any) -> Any:
    d3 = v.z3 - v.t
    d2 = v.a2 * (1 - v.a2) * (v.W3.T @ d3)
    return outer(v.W2.T @ d2, v.x)


WRONG: dict[str, tuple[str | None, Callable[[Any], Any]]] = {
    "linear_layer_backward": ("b", lambda v: mean(v.G, axis=0)),           # mean for sum
    "logsumexp_gradient": ("z", lambda v: exp(v.z)),                         # unnormalised
    "softplus_derivative": ("x", lambda v: sigmoid(-v.x)),
    "log_sigmoid_derivative": ("x", lambda v: sigmoid(v.x)),
    "gelu_derivative": ("x", lambda v: gelu_tanh_derivative(v.x)),          # the tanh form's
    "gelu_tanh_derivative": ("x", lambda v: gelu_exact_derivative(v.x)),    # the exact form's
    "layer_norm_backward": ("x", _ln_dx_without_mean_of_g),
    "batch_norm_backward": ("X", _bn_dx_unbatched),
    "attention_backward": ("Q", _attention_dq_unscaled),
    "mlp_backprop_depth2": ("W1", _mlp_delta1_without_sigma_prime),
}


def test_every_layer_identity_has_a_wrong_twin() -> None:
    assert set(WRONG) == set(LAYERS)


@pytest.mark.parametrize("name", LAYERS)
def test_wrong_twin_is_refuted(name: str) -> None:
    assert_twin_refuted(name, WRONG)


def test_tanh_gelu_derivative_claimed_for_exact_gelu_is_refuted_not_close_enough() -> None:
    """The two GELUs differ by about 1e-3 in slope: far above the checker's tolerance."""
    result = check_twin(catalog.get("gelu_derivative"), "x", lambda v: gelu_tanh_derivative(v.x))
    assert result.verdict == "refuted"
    cx = result.counterexample
    assert 1e-7 < cx["abs_error"] < 1e-2 and cx["abs_error"] > 1e3 * cx["tolerance"]


def _max_relative_error(claimed: np.ndarray, layer: Callable[..., Any], X: np.ndarray,
                        gamma: np.ndarray, beta: np.ndarray, G: np.ndarray) -> float:
    """max over samples of max|claimed - autograd| / max|autograd|, autograd of sum(G * layer)."""
    worst = 0.0
    for s in range(X.shape[0]):
        xt = torch.tensor(X[s], requires_grad=True)
        y = layer(xt, torch.tensor(gamma[s]), torch.tensor(beta[s]))
        (truth,) = torch.autograd.grad((torch.tensor(G[s]) * y).sum(), xt)
        worst = max(worst, float(np.max(np.abs(claimed[s] - truth.numpy())) / truth.abs().max()))
    return worst


def test_layer_norm_backward_matches_torch_autograd_to_1e_12() -> None:
    rng = np.random.default_rng(0)
    identity = catalog.get("layer_norm_backward")
    n, count = identity.sizes[0]["n"], 200
    x, gamma, beta, G = (rng.normal(0, 2, (count, n)) for _ in range(4))
    claimed = make_claim(identity, wrt="x")(x=x, gamma=gamma, beta=beta, G=G)
    error = _max_relative_error(claimed, lambda x, g, b: F.layer_norm(x, (n,), g, b, eps=1e-5),
                                x, gamma, beta, G)
    assert error <= 1e-12


def test_batch_norm_backward_matches_torch_autograd_to_1e_12() -> None:
    rng = np.random.default_rng(1)
    identity = catalog.get("batch_norm_backward")
    B, n, count = identity.sizes[0]["B"], identity.sizes[0]["n"], 200
    X, G = rng.normal(0, 2, (count, B, n)), rng.normal(0, 2, (count, B, n))
    gamma, beta = rng.normal(0, 2, (count, n)), rng.normal(0, 2, (count, n))
    claimed = make_claim(identity, wrt="X")(X=X, gamma=gamma, beta=beta, G=G)
    error = _max_relative_error(
        claimed, lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
        X, gamma, beta, G)
    assert error <= 1e-12


def test_backprop_recurrence_holds_with_one_hidden_layer() -> None:
    result = check(mlp_backprop_identity(1), samples=8)
    assert result.verdict == "proved" and result.symbolic_n.status == "proved", result.reason


@pytest.mark.parametrize("depth", [3])
def test_backprop_recurrence_is_proved_and_matches_autograd_at_depth(depth: int) -> None:
    """A deeper net at explicit sizes (its proof for every width takes about 20 s: too slow here)."""
    identity = mlp_backprop_identity(depth)
    graph = build(identity, identity.sizes[0])
    derived = derive(graph).derived
    for claim in graph.claims:
        assert prove_claim(claim.expr - derived[claim.index], graph).proved, claim.wrt
    rng = np.random.default_rng(depth)
    inputs = {v.name: rng.normal(0, 1, v.resolve(identity.sizes[0])) for v in identity.variables}
    tensors = {k: torch.tensor(a, requires_grad=True) for k, a in inputs.items()}
    loss = identity.references[0].forward(*tensors.values())
    grads = torch.autograd.grad(loss, [tensors[f"W{i}"] for i in range(1, depth + 2)])
    for i, truth in enumerate(grads, start=1):
        claimed = make_claim(identity, wrt=f"W{i}")(**inputs)
        assert np.max(np.abs(claimed - truth.numpy())) <= 1e-13 * truth.abs().max().item(), i


def test_backprop_recurrence_rejects_a_bad_depth() -> None:
    with pytest.raises(SpecError, match="depth must be a positive integer"):
        mlp_backprop_identity(0)


def test_attention_scale_uses_the_key_width() -> None:
    identity = catalog.get("attention_backward")
    d = identity.sizes[0]["d"]
    wrong = check_twin(identity, "Q", lambda v: _attention_dq_unscaled(v) / sp.sqrt(size(v.Q, 1) + 1))
    assert d == 2 and wrong.verdict == "refuted"


@pytest.mark.parametrize("name", ["gelu_derivative", "gelu_tanh_derivative"])
def test_derivation_matches_its_golden_file(name: str) -> None:
    assert matches_golden(name)
