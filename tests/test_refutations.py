"""Deliberately wrong variants of catalog identities must be refuted, reproducibly.

Each variant reuses a catalog identity's variables and definitions and replaces its claims by
one wrong claim (a flipped sign, a dropped factor, a transpose, a relative error of 1e-6 or
1e-9...). The check must answer `refuted` with a counterexample that names the inputs, the
entry, the claimed and true values, the seed and a rerun command; the same seed must give
the same counterexample, and another seed must refute too. The catalog's own claim, checked
under the same name (hence on the same random inputs), must not be refuted.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import pytest
import sympy as sp

from derive import Claim, Identity, check
from derive.numeric.callables import make_claim
from derive.catalog import get
from derive.model.ops import eye, log, log_softmax, mean, outer, step, sum_

SAMPLES = 32
SEED = 1234
OTHER_SEED = 98765
MICRO = 1 + sp.Rational(1, 10**6)   # a relative error of 1e-6
NANO = 1 + sp.Rational(1, 10**9)    # a relative error of 1e-9


def _delta_k(v: Any) -> Any:
    return v.O_k * (1 - v.O_k) * (v.O_k - v.t)


def _himmelblau_dx(v: Any) -> Any:
    return 4 * v.x * (v.x**2 + v.y - 11) + 2 * (v.x + v.y**2 - 7)


def _softmax_jacobian(v: Any) -> Any:
    return eye(len(v.p)) * v.p[:, None] - outer(v.p, v.p)


@dataclasses.dataclass(frozen=True)
class Wrong:
    """A catalog identity, the wrt of the claim to replace, the wrong formula, optional sizes."""

    base: str
    wrt: str | None
    formula: Callable[[Any], Any]
    sizes: tuple[dict[str, int], ...] | None = None
    timeout: float | None = None


WRONG: dict[str, Wrong] = {
    # signs flipped
    "sigmoid_negated": Wrong("sigmoid_derivative", "x", lambda v: -v.s * (1 - v.s)),
    "mse_sign_flipped": Wrong("mse_gradient", "y_hat", lambda v: 2 * (v.y - v.y_hat) / len(v.y)),
    "bce_logit_plus_y": Wrong("bce_gradient_logit", "z", lambda v: (v.p + v.y) / len(v.p)),
    "softmax_plus_pj": Wrong("softmax_jacobian", "z",
                             lambda v: eye(len(v.p)) * v.p[:, None] + outer(v.p, v.p)),
    "relu_step_of_minus_x": Wrong("relu_derivative", "x", lambda v: step(-v.x)),
    # factors dropped
    "mlp_output_delta_without_sigmoid_factor": Wrong(
        "mlp_output_delta", "W_jk", lambda v: outer(v.O_j, v.O_k - v.t)),
    "tanh_missing_square": Wrong("tanh_derivative", "x", lambda v: 1 - v.a),
    "cross_entropy_without_1_over_B": Wrong("cross_entropy_gradient", "z", lambda v: v.p - v.t),
    # a transpose: delta_j with W_jk^T (shape-valid only because J == K)
    "mlp_hidden_delta_transposed_W": Wrong(
        "mlp_hidden_delta", "W_ij",
        lambda v: outer(v.O_i, v.O_j * (1 - v.O_j) * (v.W_jk.T @ _delta_k(v))),
        sizes=({"I": 2, "J": 3, "K": 3},),
        # the proof attempt of this false claim only ends at the time limit (simplify on the
        # expanded entry); the numeric refutation does not depend on it
        timeout=3.0),
    # variables swapped, terms with the wrong sign
    "dot_product_dy_dx_is_x": Wrong("dot_product_gradient", "x", lambda v: v.x),
    "linear_regression_plus_2xy": Wrong(
        "linear_regression_gradient", "w", lambda v: mean(2 * v.w * v.x**2 + 2 * v.x * v.y)),
    # tiny relative errors
    "himmelblau_times_1_plus_1e-6": Wrong("himmelblau_gradient", "x",
                                          lambda v: _himmelblau_dx(v) * MICRO),
    "softmax_times_1_plus_1e-6": Wrong("softmax_jacobian", "z",
                                       lambda v: _softmax_jacobian(v) * MICRO),
    "square_sum_times_1_plus_1e-9": Wrong("square_sum_gradient", "x", lambda v: 2 * v.x * NANO),
    "softmax_times_1_plus_1e-9": Wrong("softmax_jacobian", "z",
                                       lambda v: _softmax_jacobian(v) * NANO),
    # wrong value identities (claims without wrt)
    "bce_definition_sign_flipped": Wrong(
        "bce_definition", None,
        lambda v: mean(v.y * log(v.p) + (1 - v.y) * log(1 - v.p))),
    "cross_entropy_definition_without_minus": Wrong(
        "cross_entropy_definition", None, lambda v: mean(sum_(v.t * log_softmax(v.z), axis=-1))),
}


def _identities(key: str) -> tuple[Identity, Identity]:
    """(wrong variant, control): the same name, variables, definitions and sizes, so the same
    random inputs; the control carries the catalog's own claim for the same wrt."""
    case = WRONG[key]
    base = get(case.base)
    right = next(c for c in base.claims if c.wrt == case.wrt)
    sizes = case.sizes if case.sizes is not None else base.sizes
    name = f"{case.base}_wrong"
    wrong = dataclasses.replace(base, name=name, sizes=sizes,
                                claims=(Claim(case.formula, wrt=case.wrt, text="wrong"),))
    control = dataclasses.replace(base, name=name, sizes=sizes, claims=(right,))
    return wrong, control


@lru_cache(maxsize=None)
def _run(key: str, seed: int, which: str = "wrong", attempt: int = 0) -> Any:
    """check() once per (variant, seed, which, attempt); `attempt` forces a fresh run."""
    wrong, control = _identities(key)
    options = {} if WRONG[key].timeout is None else {"timeout": WRONG[key].timeout}
    return check(wrong if which == "wrong" else control, samples=SAMPLES, seed=seed, **options)


CASES = sorted(WRONG)


@pytest.mark.parametrize("key", CASES)
def test_wrong_claim_is_refuted_with_a_full_counterexample(key: str) -> None:
    result = _run(key, SEED)
    wrong, _ = _identities(key)
    assert result.verdict == "refuted", (result.verdict, result.reason)
    assert not result.ok
    assert result.symbolic.status != "proved"
    # the claim is wrong at every declared size, not just one
    assert [s.verdict for s in result.sizes] == ["refuted"] * len(wrong.sizes)
    assert [s.sizes for s in result.sizes] == [dict(s) for s in wrong.sizes]

    cx = result.counterexample
    assert cx is not None
    assert set(cx) >= {"inputs", "entry", "claimed", "true", "seed", "rerun", "sizes",
                       "abs_error", "tolerance"}
    assert set(cx["inputs"]) == {v.name for v in wrong.variables}
    assert cx["seed"] == SEED
    assert wrong.name in cx["rerun"] and str(SEED) in cx["rerun"]
    assert cx["sizes"] == dict(result.sizes[0].sizes)
    assert math.isfinite(cx["claimed"]) and math.isfinite(cx["true"])
    assert cx["claimed"] != cx["true"]
    assert cx["abs_error"] > cx["tolerance"] > 0
    assert cx["abs_error"] == pytest.approx(abs(cx["claimed"] - cx["true"]), rel=1e-6)
    assert "max|claim - truth|" in result.reason


@pytest.mark.parametrize("key", CASES)
def test_counterexample_is_genuine(key: str) -> None:
    """At the reported inputs, the wrong claim gives `claimed` and the catalog claim `true`."""
    cx = _run(key, SEED).counterexample
    wrong, control = _identities(key)
    wrt = WRONG[key].wrt
    inputs = {name: np.asarray(value) for name, value in cx["inputs"].items()}
    entry = tuple(cx["entry"])
    claimed = np.asarray(make_claim(wrong, wrt=wrt, sizes=cx["sizes"])(**inputs))[entry]
    true = np.asarray(make_claim(control, wrt=wrt, sizes=cx["sizes"])(**inputs))[entry]
    assert claimed == pytest.approx(cx["claimed"], rel=1e-12, abs=1e-300)
    assert true == pytest.approx(cx["true"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("key", CASES)
def test_same_seed_reproduces_the_counterexample(key: str) -> None:
    first = _run(key, SEED)
    again = _run(key, SEED, attempt=1)
    assert again is not first
    assert again.verdict == "refuted"
    assert again.counterexample == first.counterexample
    assert again.counterexample["inputs"] == first.counterexample["inputs"]
    assert (again.counterexample["claimed"], again.counterexample["true"]) == \
        (first.counterexample["claimed"], first.counterexample["true"])


@pytest.mark.parametrize("key", CASES)
def test_another_seed_still_refutes(key: str) -> None:
    first = _run(key, SEED)
    other = _run(key, OTHER_SEED)
    assert other.verdict == "refuted", (other.verdict, other.reason)
    assert other.counterexample["seed"] == OTHER_SEED
    assert str(OTHER_SEED) in other.counterexample["rerun"]
    assert other.counterexample["inputs"] != first.counterexample["inputs"]


@pytest.mark.parametrize("key", CASES)
@pytest.mark.parametrize("seed", [SEED, OTHER_SEED])
def test_catalog_claim_on_the_same_inputs_is_not_refuted(key: str, seed: int) -> None:
    result = _run(key, seed, "control")
    assert result.verdict != "refuted"
    assert result.ok, (result.verdict, result.reason)
    assert result.counterexample is None
