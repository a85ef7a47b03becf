"""check_gradient / check_autograd_function: users' own gradient code against agreeing truths."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import derive
from derive import REAL, UNIT_INTERVAL, Label, SpecError, Variable, check_gradient

torch = pytest.importorskip("torch")


# --- the seed's linear regression: dJ/dw of mean((w x - y)^2), hand-written ----------------------

def loss(x, y, w):  # noqa: ANN001, ANN201
    return np.mean((w * x - y) ** 2)


def gradient(x, y, w):  # noqa: ANN001, ANN201
    return np.mean(2 * w * x * x - 2 * x * y)


def gradient_off(x, y, w):  # noqa: ANN001, ANN201
    return gradient(x, y, w) * (1 + 1e-6)


REGRESSION = {"x": Variable("x", ("n",)), "y": Variable("y", ("n",)), "w": Variable("w")}


def test_the_seeds_gradient_is_consistent() -> None:
    result = check_gradient(loss, gradient, inputs=REGRESSION, wrt="w", sizes={"n": 5})
    assert result.verdict == "consistent" and result.ok
    assert result.name == "loss"
    assert result.sizes[0].sources == ("complex step", "central differences")
    assert result.numeric[0].backend == "numpy" and result.numeric[0].rtol == 1e-11
    assert result.numeric[0].max_rel_error < 1e-12
    assert result.symbolic.status == "not applicable"


def test_a_gradient_off_by_one_part_in_a_million_is_refuted_reproducibly() -> None:
    result = check_gradient(loss, gradient_off, inputs=REGRESSION, wrt="w", sizes={"n": 5}, seed=3)
    assert result.verdict == "refuted"
    cx = result.counterexample
    assert cx["kind"] == "gradient" and cx["wrt"] == "w" and cx["entry"] == []
    assert set(cx["inputs"]) == {"x", "y", "w"} and len(cx["inputs"]["x"]) == 5
    assert cx["rel_error"] == pytest.approx(1e-6, rel=1e-3)
    assert cx["tolerance"] < 1e-9 * abs(cx["true"])  # far below the error it caught
    assert cx["claimed"] == pytest.approx(cx["true"] * (1 + 1e-6), rel=1e-12)
    assert cx["seed"] == 3 and cx["rerun"] == "derive.check_gradient(<loss>, <gradient_off>, seed=3)"
    assert result.reason.startswith("d/dw [numpy, float64, n=5]: max|claim - truth| = ")
    # the counterexample is the gradient evaluated at the printed inputs
    at = {k: np.asarray(v) for k, v in cx["inputs"].items()}
    assert gradient_off(**at) == cx["claimed"]
    again = check_gradient(loss, gradient_off, inputs=REGRESSION, wrt="w", sizes={"n": 5}, seed=3)
    assert again.counterexample == cx
    other = check_gradient(loss, gradient_off, inputs=REGRESSION, wrt="w", sizes={"n": 5}, seed=4)
    assert other.verdict == "refuted" and other.counterexample["inputs"] != cx["inputs"]


def test_inputs_as_shape_and_domain_tuples_and_several_sizes() -> None:
    inputs = {"x": (("n",), REAL), "y": ("n",), "w": ((), REAL)}
    result = check_gradient(loss, lambda x, y, w: {"w": gradient(x, y, w)}, inputs=inputs, wrt=["w"],
                            sizes=[{"n": 1}, {"n": 9}], samples=16)
    assert result.verdict == "consistent"
    assert [s.sizes for s in result.sizes] == [{"n": 1}, {"n": 9}]
    assert result.numeric[0].samples == 32


# --- torch forward with a hand-written gradient ---------------------------------------------------

def layer(x, w):  # noqa: ANN001, ANN201
    return torch.sigmoid(x @ w)


def layer_grads(x, w):  # noqa: ANN001, ANN201
    s = torch.sigmoid(x @ w)
    return s * (1 - s) * w, s * (1 - s) * x  # d/dx, d/dw


LAYER = {"x": ("n",), "w": ("n",)}


def test_a_torch_layer_with_a_right_gradient_is_consistent_against_autograd() -> None:
    result = check_gradient(layer, layer_grads, inputs=LAYER, sizes={"n": 4})
    assert result.verdict == "consistent"
    assert result.numeric[0].backend == "torch"
    assert result.sizes[0].sources == ("autograd", "central differences")


def test_a_torch_layer_with_a_wrong_gradient_is_refuted() -> None:
    def missing_one_minus_s(x, w):  # noqa: ANN001, ANN202
        s = torch.sigmoid(x @ w)
        return s * x

    result = check_gradient(layer, missing_one_minus_s, inputs=LAYER, wrt="w", sizes={"n": 4})
    assert result.verdict == "refuted"
    assert result.counterexample["backend"] == "torch" and result.counterexample["truth"] == "autograd"
    swapped = check_gradient(layer, lambda x, w: layer_grads(x, w)[::-1], inputs=LAYER, sizes={"n": 4})
    assert swapped.verdict == "refuted" and swapped.counterexample["wrt"] == "x"
    slightly = check_gradient(layer, lambda x, w: layer_grads(x, w)[1] * (1 + 1e-6), inputs=LAYER, wrt="w",
                              sizes={"n": 4})
    assert slightly.verdict == "refuted"


def test_autograd_that_disagrees_with_finite_differences_is_inconclusive() -> None:
    def detached(x):  # noqa: ANN001, ANN202
        return torch.sum(x**2 + x.detach() ** 3)

    result = check_gradient(detached, lambda x: 2 * x + 3 * x**2, inputs={"x": ("n",)}, sizes={"n": 3})
    assert result.verdict == "inconclusive"
    assert "truth sources disagree: autograd" in result.reason


# --- Jacobians of array-valued forwards ---------------------------------------------------------

def softmax(z):  # noqa: ANN001, ANN201
    e = np.exp(z - z.max())
    return e / e.sum()


def test_a_softmax_jacobian_is_consistent_and_a_flipped_sign_refuted() -> None:
    right = check_gradient(softmax, lambda z: np.diag(softmax(z)) - np.outer(softmax(z), softmax(z)),
                           inputs={"z": ("n",)}, sizes={"n": 5})
    assert right.verdict == "consistent"
    wrong = check_gradient(softmax, lambda z: np.diag(softmax(z)) + np.outer(softmax(z), softmax(z)),
                           inputs={"z": ("n",)}, sizes={"n": 5})
    assert wrong.verdict == "refuted"
    assert len(wrong.counterexample["entry"]) == 2
    assert wrong.reason.startswith("d/dz [numpy, float64, n=5]")


# --- non-analytic numpy code: central differences only ------------------------------------------

def relu_loss(x, w):  # noqa: ANN001, ANN201
    return np.sum((x + np.abs(x)) / 2 * w)  # complex input runs, but abs() is not analytic


def test_a_relu_gradient_is_consistent_with_central_differences_only() -> None:
    result = check_gradient(relu_loss, lambda x, w: np.where(x > 0, w, 0.0), inputs={"x": ("n",), "w": ("n",)},
                            wrt="x", sizes={"n": 6})
    assert result.verdict == "consistent"
    assert result.sizes[0].sources == ("central differences",)
    assert "relative errors below 1e-06 cannot be refuted" in result.reason
    assert any(n.startswith("complex step not used") for n in result.sizes[0].notes)
    assert result.numeric[0].rtol == 1e-6
    off = check_gradient(relu_loss, lambda x, w: np.where(x > 0, 1.1 * w, 0.0),
                         inputs={"x": ("n",), "w": ("n",)}, wrt="x", sizes={"n": 6})
    assert off.verdict == "refuted" and off.counterexample["truth"] == "central differences"


def test_a_python_float_forward_gets_central_differences_and_a_small_l1_term_is_not_misjudged() -> None:
    def relu_squared(x):  # noqa: ANN001, ANN202
        return float(np.sum(np.maximum(x, 0.0) ** 2))  # float() rejects complex input

    result = check_gradient(relu_squared, lambda x: 2 * np.maximum(x, 0.0), inputs={"x": ("n",)}, sizes={"n": 6})
    assert result.verdict == "consistent" and result.sizes[0].sources == ("central differences",)
    # abs() drops the complex step's imaginary part: the complex step misses the tiny L1 term,
    # but the extrapolated central differences see it, so the right gradient is not refuted
    l1 = check_gradient(lambda x: np.sum(x**2) + 1e-9 * np.sum(np.abs(x)),
                        lambda x: 2 * x + 1e-9 * np.sign(x), inputs={"x": ("n",)}, sizes={"n": 3})
    assert l1.verdict == "consistent"


def test_a_forward_that_is_never_finite_is_inconclusive() -> None:
    result = check_gradient(lambda x: np.log(-x**2 - 1), lambda x: 2 * x / (x**2 + 1), inputs={"x": ()},
                            samples=4)
    assert result.verdict == "inconclusive" and "not finite" in result.reason


# --- bad input: SpecError, one line, saying what to do ------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"wrt": "q"}, r"^wrt 'q' is not an input \(inputs: x, y, w\)$"),
    ({"gradient": lambda x, y, w: 2 * w * x * x - 2 * x * y},
     r"^gradient <lambda> returned shape \(5,\) for 'w'; expected \(\) \(the shape of w\)$"),
    ({"wrt": None}, r"returned one array but wrt has 3 names \(x, y, w\): return a tuple"),
    ({"gradient": 3}, r"^gradient must be a callable \(a function of the inputs\), got int$"),
    ({"samples": 0}, r"^samples must be a positive integer, got 0$"),
    ({"sizes": None}, r"^sizes \{\} do not give n; pass e.g. sizes=\{'n': 3\}$"),
    ({"gradient": lambda x, y, w: np.float32(gradient(x, y, w))},
     r"^gradient <lambda> returned float32 values for float64 inputs: keep the inputs. dtype.*pass dtype="),
    ({"forward": lambda x, y, w: torch.mean((w * x - y) ** 2).float()},
     r"^forward <lambda> returned torch.float32 values for float64 inputs"),
    ({"forward": lambda a: a},
     r"^forward <lambda> takes \(a\) but the inputs are \(x, y, w\): it is called with the inputs as keyword"),
    ({"forward": lambda x, y, w: x.no_such_method()},
     r"^<lambda>: the forward or the gradient failed on numpy float64 inputs: AttributeError: .*no_such_method"
     r".*; on torch float64 inputs: AttributeError"),
    ({"backend": "jax"}, r"^backend must be None \(detect\), 'numpy' or 'torch', got 'jax'$"),
    ({"inputs": {"x": ("n",), "y": ("n",), "w": ((), Label("k"))}, "sizes": {"n": 5, "k": 2}},
     r"^cannot differentiate with respect to 'w', whose domain label\(k\) is discrete$"),
    ({"inputs": {"x": (("n", 0), REAL)}}, r"^input 'x': shape \('n', 0\) is not valid"),
])
def test_bad_input_is_a_spec_error(kwargs: dict, message: str) -> None:
    args = {"forward": loss, "gradient": gradient, "inputs": REGRESSION, "wrt": "w", "sizes": {"n": 5}}
    args.update(kwargs)
    with pytest.raises(SpecError, match=message):
        check_gradient(args.pop("forward"), args.pop("gradient"), **args)


def test_an_elementwise_derivative_in_place_of_a_jacobian_gets_a_hint() -> None:
    with pytest.raises(SpecError, match=r"expected \(3, 3\) \(forward output shape \(3,\) \+ shape of x "
                                        r"\(3,\)\); for an elementwise forward the Jacobian is diagonal"):
        check_gradient(np.tanh, lambda x: 1 - np.tanh(x) ** 2, inputs={"x": ("n",)}, sizes={"n": 3})


# --- custom torch.autograd.Function: VJP checks with fresh Gaussian cotangents -------------------

class SoftmaxZeroBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):  # noqa: ANN001, ANN205
        p = torch.softmax(z, -1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        return torch.zeros_like(g)


class Softmax(SoftmaxZeroBackward):
    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (p,) = ctx.saved_tensors
        return p * (g - (g * p).sum(-1, keepdim=True))


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        s = 1 / (1 + torch.exp(-x))
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (s,) = ctx.saved_tensors
        return g * s * (1 - s)


class SigmoidOff(Sigmoid):
    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (s,) = ctx.saved_tensors
        return (1 + 1e-6) * g * s * (1 - s)


def test_gradcheck_fast_mode_passes_an_all_zero_softmax_backward_but_derive_refutes_it() -> None:
    z = (2 * torch.randn(256, dtype=torch.float64, generator=torch.Generator().manual_seed(0))).requires_grad_()
    assert torch.autograd.gradcheck(SoftmaxZeroBackward.apply, (z,), fast_mode=True)
    result = derive.check_autograd_function(SoftmaxZeroBackward, inputs={"z": ("n",)}, sizes={"n": 256})
    assert result.verdict == "refuted"
    cx = result.counterexample
    assert cx["kind"] == "vjp" and cx["claimed"] == 0.0 and cx["rel_error"] == pytest.approx(1.0)
    assert len(cx["inputs"]["z"]) == 256 and len(cx["cotangent"]) == 256 and cx["argument"] == "z"
    assert cx["rerun"] == ("derive.check_autograd_function(SoftmaxZeroBackward, inputs={'z': (('n',), 'real')}, "
                           "sizes={'n': 256}, dtype='float64', samples=64, seed=0)")
    assert "grad of z[" in result.reason


def test_right_custom_functions_are_consistent() -> None:
    softmax_result = derive.check_autograd_function(Softmax, inputs={"z": ("n",)}, sizes={"n": 256})
    assert softmax_result.verdict == "consistent"
    # torch.softmax has no complex kernel: the exact truth is autograd of the forward's own ops
    assert softmax_result.sizes[0].sources == ("autograd of Softmax.forward",
                                               "central differences of .apply (on 8 samples)")
    sigmoid_result = derive.check_autograd_function(Sigmoid, inputs={"x": ("n",)}, sizes={"n": 256})
    assert sigmoid_result.verdict == "consistent"
    assert sigmoid_result.sizes[0].sources[0] == "autograd of Sigmoid.forward"
    assert derive.check_autograd_function(SigmoidOff, inputs={"x": ("n",)}, sizes={"n": 8},
                                          samples=16).verdict == "refuted"


def test_check_autograd_function_rejects_what_is_not_a_function_class() -> None:
    with pytest.raises(SpecError, match=r"^check_autograd_function takes a torch.autograd.Function subclass"):
        derive.check_autograd_function(torch.sigmoid, inputs={"x": ()})


# --- assertions -----------------------------------------------------------------------------------

def test_assert_gradient_raises_with_the_counterexample() -> None:
    assert derive.assert_gradient(loss, gradient, inputs=REGRESSION, wrt="w", sizes={"n": 5}).ok
    with pytest.raises(AssertionError) as info:
        derive.assert_gradient(loss, gradient_off, inputs=REGRESSION, wrt="w", sizes={"n": 5}, seed=7)
    text = str(info.value)
    assert text.startswith("check_gradient(loss, gradient_off): refuted\n  d/dw [numpy, float64, n=5]")
    assert "\n  inputs: x=[" in text and "claimed " in text and ", true " in text
    assert "\n  seed: 7 (sample " in text
    assert "\n  rerun: derive.check_gradient(<loss>, <gradient_off>, seed=7)" in text


def test_assert_autograd_function_raises_with_the_counterexample() -> None:
    assert derive.assert_autograd_function(Sigmoid, inputs={"x": ("n",)}, sizes={"n": 4}, samples=8).ok
    with pytest.raises(AssertionError, match=r"(?s)check_autograd_function\(SoftmaxZeroBackward\): refuted.*"
                                             r"inputs: z=\[.*rerun: derive.check_autograd_function"):
        derive.assert_autograd_function(SoftmaxZeroBackward, inputs={"z": (("n",), UNIT_INTERVAL)},
                                        sizes={"n": 16}, samples=8)


def test_import_derive_does_not_import_torch() -> None:
    code = "import sys, derive; assert 'torch' not in sys.modules; print(derive.check_gradient.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "check_gradient"



class SoftmaxSlightlyOff(Softmax):
    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (p,) = ctx.saved_tensors
        return (1 + 1e-7) * p * (g - (g * p).sum(-1, keepdim=True))


class SoftmaxThroughNumpy(torch.autograd.Function):
    """A forward autograd cannot see into, and real only (numpy float64): finite differences are left."""

    @staticmethod
    def forward(ctx, z):  # noqa: ANN001, ANN205
        x = z.detach().numpy().astype(np.float64)
        e = np.exp(x - x.max())
        p = torch.as_tensor(e / e.sum())
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (p,) = ctx.saved_tensors
        return (1 + 1e-7) * p * (g - (g * p).sum(-1, keepdim=True))


def test_autograd_of_the_forward_body_refutes_errors_central_differences_cannot_see() -> None:
    sharp = derive.check_autograd_function(SoftmaxSlightlyOff, inputs={"z": ("n",)}, sizes={"n": 64}, samples=16)
    assert sharp.verdict == "refuted" and sharp.counterexample["truth"] == "autograd of SoftmaxSlightlyOff.forward"
    blind = derive.check_autograd_function(SoftmaxThroughNumpy, inputs={"z": ("n",)}, sizes={"n": 64}, samples=16)
    assert blind.verdict == "consistent" and blind.sizes[0].sources == ("central differences",)
    assert "cannot be refuted" in blind.reason
