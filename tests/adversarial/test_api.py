"""Numerical traps and malformed code through the Python API (check_gradient,
check_autograd_function, check): each gets its exact verdict, or a SpecError that says what
was wrong. Non-finite values, kinks under the sampled input and wrong shapes never pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from derive import REAL, POSITIVE, Claim, Definition, Identity, Variable, check
from derive.model import ops
from derive.errors import SpecError
from derive.usercode.function import check_autograd_function
from derive.usercode.gradient import check_gradient

from .helpers import At, Cast

VEC = {"x": ((3,), REAL)}


def verdict_of(forward, gradient, inputs=VEC, **options) -> tuple[str, str]:  # noqa: ANN001
    result = check_gradient(forward, gradient, inputs=inputs, samples=16, **options)
    return result.verdict, result.reason


# (id, forward, gradient, inputs, verdict, key words of the reason)
TRAPS = [
    # non-differentiable points pinned by the user's inputs: never refuted (the central
    # differences there are 0.5 or 0 where a subgradient claim says 1 or 0)
    ("relu-at-0-numpy", lambda x: np.maximum(x, 0).sum(), lambda x: (x >= 0).astype(float),
     {"x": ((3,), At(value=0.0))}, "inconclusive", ("unstable", "relu or abs at 0", "[0.0, 0.0, 0.0]")),
    ("relu-at-0-torch", lambda x: torch.relu(x).sum(), lambda x: (x > 0).double(),
     {"x": ((3,), At(value=0.0))}, "inconclusive", ("unstable", "relu or abs at 0")),
    ("abs-at-0-numpy", lambda x: np.abs(x).sum(), lambda x: np.sign(x),
     {"x": ((3,), At(value=0.0))}, "inconclusive", ("unstable",)),
    ("relu-away-from-0", lambda x: torch.relu(x).sum(), lambda x: (x > 0).double(), VEC, "consistent",
     ("agrees with autograd",)),
    # overflow and domain edges: a non-finite forward is never a pass
    ("naive-logsumexp-at-709", lambda z: np.log(np.exp(z).sum()), lambda z: np.exp(z) / np.exp(z).sum(),
     {"z": ((3,), At(value=709.0))}, "inconclusive", ("forward value is not finite", "no finite reference")),
    ("naive-logsumexp-at-1000", lambda z: np.log(np.exp(z).sum()), lambda z: np.exp(z) / np.exp(z).sum(),
     {"z": ((3,), At(value=1000.0))}, "inconclusive", ("forward value is not finite",)),
    ("exp-800", lambda x: torch.exp(x), lambda x: torch.exp(x), {"x": At(value=800.0)}, "inconclusive",
     ("forward value is not finite",)),
    ("log-at-0", lambda x: np.log(x), lambda x: 1 / x, {"x": At(value=0.0)}, "inconclusive",
     ("forward value is not finite",)),
    ("bce-at-p-0", lambda p: -(0.7 * np.log(p) + 0.3 * np.log(1 - p)), lambda p: -(0.7 / p - 0.3 / (1 - p)),
     {"p": At(value=0.0)}, "inconclusive", ("forward value is not finite",)),
    ("bce-at-p-1", lambda p: -(0.7 * torch.log(p) + 0.3 * torch.log(1 - p)),
     lambda p: -(0.7 / p - 0.3 / (1 - p)), {"p": At(value=1.0)}, "inconclusive", ("forward value is not finite",)),
    # NaN and inf on both sides, or NaN hidden in one entry of the gradient
    ("nan-both-sides", lambda x: np.nan * x.sum(), lambda x: np.nan * x, VEC, "inconclusive",
     ("forward value is not finite",)),
    ("inf-both-sides", lambda x: np.inf * np.ones(()), lambda x: np.inf * np.ones(3), VEC, "inconclusive",
     ("forward value is not finite",)),
    ("nan-gradient", lambda x: (x**2).sum(), lambda x: np.full(3, np.nan), VEC, "refuted",
     ("max|claim - truth| = inf",)),
    ("nan-in-last-entry", lambda x: (x**2).sum(), lambda x: np.where(np.arange(3) == 2, np.nan, 2 * x), VEC,
     "refuted", ("at entry (2,)",)),
    ("inf-in-first-entry", lambda x: (x**2).sum(), lambda x: np.where(np.arange(3) == 0, np.inf, 2 * x), VEC,
     "refuted", ("at entry (0,)",)),
    # small relative errors, float formulas
    ("off-by-1.0005", lambda x: (x**3).sum(), lambda x: 3 * x**2 * 1.0005, VEC, "refuted", ("d/dx [numpy",)),
    ("off-by-1.0005-torch", lambda x: (x**3).sum(), lambda x: 3 * x**2 * 1.0005,
     {"x": ((3,), REAL)}, "refuted", ("d/dx [",)),
    ("sqrt-as-power", lambda x: x**0.5, lambda x: 0.5 * x**-0.5, {"x": POSITIVE}, "consistent",
     ("complex step",)),
    ("sqrt-as-power-off", lambda x: x**0.5, lambda x: 0.5005 * x**-0.5, {"x": POSITIVE}, "refuted", ("d/dx",)),
    # constant gradients broadcast; an integer-valued gradient is converted
    ("constant-scalar-gradient", lambda x: (3 * x).sum(), lambda x: 3.0, VEC, "consistent", ("agrees",)),
    ("constant-scalar-gradient-wrong", lambda x: (3 * x).sum(), lambda x: 3.1, VEC, "refuted", ("entry (0,)",)),
    ("constant-int-gradient", lambda x: (3 * x).sum(), lambda x: np.array([3, 3, 3]), VEC, "consistent", ("agrees",)),
    ("constant-torch-scalar", lambda x: (3 * x).sum(), lambda x: torch.tensor(3.0, dtype=torch.float64),
     VEC, "consistent", ("agrees",)),
]


@pytest.mark.parametrize("forward, gradient, inputs, verdict, words", [t[1:] for t in TRAPS],
                         ids=[t[0] for t in TRAPS])
def test_numerical_traps_get_the_exact_verdict(forward, gradient, inputs, verdict, words) -> None:  # noqa: ANN001
    got, reason = verdict_of(forward, gradient, inputs)
    assert got == verdict, reason
    for word in words:
        assert word in reason, (word, reason)


# (id, forward, gradient, inputs, key words of the SpecError)
REFUSED = [
    ("shape-3-for-3x3", lambda X: (X**2).sum(), lambda X: 2 * X[0], {"X": ((3, 3), REAL)},
     ("returned shape (3,) for 'X'; expected (3, 3)",)),
    ("shape-1x3-for-3", lambda x: (x**2).sum(), lambda x: 2 * x[None, :], VEC,
     ("returned shape (1, 3) for 'x'; expected (3,)",)),
    ("shape-3x3-for-3", lambda x: (x**2).sum(), lambda x: np.diag(2 * x), VEC,
     ("returned shape (3, 3) for 'x'; expected (3,)",)),
    ("elementwise-gradient-for-jacobian", lambda x: x**2, lambda x: 2 * x, VEC,
     ("expected (3, 3)", "return np.diag(d)")),
    ("integer-inputs", lambda x: (x**2).sum(), lambda x: 2 * x, {"x": ((3,), Cast(dtype="int64"))},
     ("returned integer values (int64)", "for float64 inputs")),
    ("float32-inputs", lambda x: (x**2).sum(), lambda x: 2 * x, {"x": ((3,), Cast(dtype="float32"))},
     ("returned float32 values", "pass dtype=")),
    ("float32-gradient", lambda x: (x**2).sum(), lambda x: (2 * x).astype(np.float32), VEC,
     ("gradient <lambda> returned float32 values",)),
    ("float32-torch-forward", lambda x: (x.float() ** 2).sum(), lambda x: 2 * x, VEC,
     ("returned torch.float32 values",)),
    ("gradient-returns-None", lambda x: (x**2).sum(), lambda x: None, VEC, ("dtype object",)),
    ("gradient-returns-text", lambda x: (x**2).sum(), lambda x: "2*x", VEC, ("dtype <U3",)),
    ("forward-returns-tuple", lambda x: ((x**2).sum(), 1), lambda x: 2 * x, VEC,
     ("must return one scalar or array, got tuple",)),
    ("gradient-raises", lambda x: (x**2).sum(), lambda x: 1 / 0, VEC, ("ZeroDivisionError",)),
    ("wrong-argument-names", lambda y: (y**2).sum(), lambda y: 2 * y, VEC, ("takes (y) but the inputs are (x)",)),
    ("a-billion-entries", lambda x: (x**2).sum(), lambda x: 2 * x, {"x": ((10**9,), REAL)},
     ("1000000000 entries per sample", "at most 1000000")),
    ("inputs-not-a-dict", lambda x: x, lambda x: 1.0, "x", ("inputs must be a dict",)),
    ("input-name-is-code", lambda x: x, lambda x: 1.0, {"__import__('os')": REAL},
     ("is not a valid Python identifier",)),
]


@pytest.mark.parametrize("forward, gradient, inputs, words", [t[1:] for t in REFUSED], ids=[t[0] for t in REFUSED])
def test_malformed_gradient_code_is_refused_in_one_line(forward, gradient, inputs, words) -> None:  # noqa: ANN001
    with pytest.raises(SpecError) as info:
        check_gradient(forward, gradient, inputs=inputs, samples=16)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("option, value, words", [
    ("samples", 10**100, "samples"), ("samples", 0, "samples must be a positive integer"),
    ("seed", -1, "seed must be a non-negative integer"), ("rtol", float("nan"), "rtol must be a number"),
    ("backend", "__import__('os')", "backend must be None"), ("sizes", {"n": 10**9}, "must be integers from 1"),
])
def test_hostile_options_are_refused(option: str, value: object, words: str) -> None:
    inputs = {"x": (("n",), REAL)} if option == "sizes" else VEC
    options = {"samples": 16, option: value}
    with pytest.raises(SpecError, match=words.replace("(", r"\(")):
        check_gradient(lambda x: (x**2).sum(), lambda x: 2 * x, inputs=inputs, **options)


# --- torch.autograd.Function backwards ---------------------------------------------------------

def _function(backward):  # noqa: ANN001, ANN202
    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # noqa: ANN001, ANN205
            ctx.save_for_backward(x)
            return x**2

        @staticmethod
        def backward(ctx, g):  # noqa: ANN001, ANN205
            (x,) = ctx.saved_tensors
            return backward(x, g)

    return Square


@pytest.mark.parametrize("backward, verdict", [
    (lambda x, g: 2 * x * g, "consistent"),
    (lambda x, g: 2.001 * x * g, "refuted"),
    (lambda x, g: torch.full_like(x, float("nan")), "refuted"),
    (lambda x, g: torch.zeros_like(x), "refuted"),
    (lambda x, g: torch.where(x > 0, float("nan"), 2 * x * g), "refuted"),
    (lambda x, g: None, "refuted"),
], ids=["right", "off-by-1.0005", "nan", "zeros", "nan-in-some-entries", "None"])
def test_autograd_function_backwards(backward, verdict: str) -> None:  # noqa: ANN001
    result = check_autograd_function(_function(backward), inputs=VEC, samples=8)
    assert result.verdict == verdict, result.reason


@pytest.mark.parametrize("backward, words", [
    (lambda x, g: (2 * x * g)[:2], "backward failed: .*invalid gradient at index 0"),
    (lambda x, g: (2 * x * g, 1.0), "backward failed: .*returned an incorrect number of gradients"),
], ids=["wrong-shape", "too-many"])
def test_autograd_function_malformed_backwards_are_refused(backward, words: str) -> None:  # noqa: ANN001
    with pytest.raises(SpecError, match=words):
        check_autograd_function(_function(backward), inputs=VEC, samples=8)


def test_autograd_function_class_must_be_a_function() -> None:
    with pytest.raises(SpecError, match="takes a torch.autograd.Function subclass"):
        check_autograd_function(type("Fake", (), {"apply": staticmethod(lambda x: x)}), inputs=VEC)


# --- identities built in Python: SymPy-constant names, code-like names -------------------------

@pytest.mark.parametrize("name", ["E", "I", "N", "S", "Q", "pi", "oo", "zoo", "nan", "exec", "lambda_"])
def test_constant_like_variable_names_are_plain_variables(name: str) -> None:
    identity = Identity(f"cube_{name.strip('_') or 'u'}", variables=(Variable(name, ()),),
                        definitions=(Definition("f", lambda v: getattr(v, name) ** 3),),
                        claims=(Claim(lambda v: 3 * getattr(v, name) ** 2, wrt=name),
                                Claim(lambda v: 3 * getattr(v, name) ** 2 + ops.exp(0) * 1e-6, wrt=name)))
    result = check(identity, backend="numpy", samples=8)
    assert result.verdict == "refuted", result.reason
    assert f"d/d{name} [numpy" in result.reason, result.reason


@pytest.mark.parametrize("name", ["_", "__class__", "x.y", "a b", "\u202e"])
def test_code_like_variable_names_are_refused(name: str) -> None:
    with pytest.raises(SpecError, match="is not valid"):
        Variable(name, ())


OVERFLOWING_CLAIM = Identity(
    "overflowing_claim", variables=(Variable("x", ()),),
    definitions=(Definition("f", lambda v: v.x / ops.exp(ops.exp(v.x) ** -2)),),
    # the right derivative, written so that float64 gives inf/inf = nan for x < -3.6 or so
    claims=(Claim(lambda v: (ops.exp(ops.exp(v.x) ** -2) + 2 * v.x * ops.exp(ops.exp(v.x) ** -2) * ops.exp(v.x) ** -2)
                  / ops.exp(ops.exp(v.x) ** -2) ** 2, wrt="x"),))


def test_a_correct_claim_that_overflows_in_float64_is_never_refuted() -> None:
    # found by test_fuzz at x = -3.96: the claim is confirmed at 40 digits before any refutation
    result = check(OVERFLOWING_CLAIM, backend="numpy", samples=64, timeout=0.001)
    assert result.symbolic.status == "timeout"
    assert result.verdict == "inconclusive", result.reason
    assert "evaluates inaccurately in float64" in result.reason and "40 digits" in result.reason
    wrong = dataclasses.replace(OVERFLOWING_CLAIM, name="overflowing_wrong", claims=(
        Claim(lambda v: 1.001 * OVERFLOWING_CLAIM.claims[0].formula(v), wrt="x"),))
    assert check(wrong, backend="numpy", samples=64, timeout=0.001).verdict == "refuted"
