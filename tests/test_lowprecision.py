"""User code as it really runs: low precisions judged against a baseline, every kind of Function,
arguments as users pass them, and the one-line errors a newcomer meets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import derive
from derive import SpecError, check_autograd_function, check_backward, check_gradient
from derive.numeric.tolerance import PRECISIONS, dtype_name

torch = pytest.importorskip("torch")
import kernels  # noqa: E402 - tests/kernels.py, after torch

WRONG = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 3e-2}


def low_part(result: derive.Result, dtype: str) -> derive.model.verdict.SizeResult:
    return next(s for s in result.sizes if s.numeric and s.numeric[0].dtype == dtype)


@pytest.mark.parametrize("dtype", ["float64", torch.float32, np.float16, "bf16", "half"])
def test_a_dtype_is_named_as_torch_numpy_or_a_string(dtype: object) -> None:
    assert dtype_name(dtype) in PRECISIONS


def test_an_unknown_dtype_is_one_line() -> None:
    with pytest.raises(SpecError, match=r"^dtype 'int8' is not one derive checks; use one of float64, float32"):
        check_backward(kernels.softmax(), "softmax_jacobian", dtype="int8")


@pytest.mark.parametrize("dtype", list(WRONG))
@pytest.mark.parametrize("style", ["new", "old"])
def test_a_correct_backward_in_a_low_precision_is_consistent_and_says_how_it_was_judged(dtype: str,
                                                                                      style: str) -> None:
    result = check_backward(kernels.softmax(style=style), "softmax_jacobian", sizes={"n": 64}, samples=300,
                            dtype=dtype)
    assert result.verdict == "consistent", result.reason
    low = low_part(result, dtype)
    assert "baseline" in low.reason and "smallest relative error this can detect" in low.reason
    assert low.numeric[0].rtol < 10 * PRECISIONS[dtype].unit  # what it can detect is near the rounding
    # the code also runs in float64: its formula is judged there too, at float64 sharpness
    assert any(s.numeric and s.numeric[0].dtype == "float64" for s in result.sizes)


@pytest.mark.parametrize("dtype", list(WRONG))
def test_an_error_is_refuted_by_the_baseline_alone_when_the_code_is_locked_to_its_precision(dtype: str) -> None:
    lock = getattr(torch, dtype)
    right = check_backward(kernels.softmax(lock=lock), "softmax_jacobian", sizes={"n": 64}, samples=400,
                           dtype=dtype)
    assert right.verdict == "consistent", right.reason
    assert "does not run in float64" in " ".join(n for s in right.sizes for n in s.notes)
    wrong = check_backward(kernels.softmax(1 + WRONG[dtype], lock=lock), "softmax_jacobian", sizes={"n": 64},
                           samples=400, dtype=dtype)
    assert wrong.verdict == "refuted", wrong.reason
    cx = wrong.counterexample
    assert cx["dtype"] == dtype and cx["argument"] == "z" and "baseline" in cx["rule"]
    assert "grad of z[" in wrong.reason and f"[torch, {dtype}, n=64]" in wrong.reason


def test_float64_still_refutes_a_relative_error_of_1e_10() -> None:
    assert check_backward(kernels.softmax(1 + 1e-10, style="old"), "softmax_jacobian", sizes={"n": 64},
                          samples=200).verdict == "refuted"


@pytest.mark.parametrize("case, identity, sizes", [
    (kernels.layer_norm, "layer_norm_backward", {"n": 32}),
    (kernels.attention, "attention_backward", {"n": 6, "m": 5, "d": 4, "e": 3}),
    (kernels.cross_entropy, "cross_entropy_gradient", {"B": 3, "k": 16}),
])
def test_layer_backwards_take_the_upstream_gradient_as_cotangent(case, identity: str, sizes: dict) -> None:  # noqa: ANN001
    for style in ("new", "old"):
        right = check_backward(case(style=style), identity, sizes=sizes, samples=100, dtype="float32")
        assert right.verdict == "consistent", right.reason
        assert check_backward(case(1.001, style=style), identity, sizes=sizes, samples=50).verdict == "refuted"


def test_a_linear_backward_summing_over_the_wrong_dimension_is_refuted() -> None:
    def linear(bias_dim: int) -> type:
        class Linear(torch.autograd.Function):
            @staticmethod
            def forward(ctx, X, W, b):  # noqa: ANN001, ANN205, N803
                ctx.save_for_backward(X, W)
                return X @ W.T + b

            @staticmethod
            def backward(ctx, G):  # noqa: ANN001, ANN205, N803
                X, W = ctx.saved_tensors
                return G @ W, G.T @ X, G.sum(bias_dim)
        return Linear

    sizes = {"B": 4, "n": 3, "m": 4}  # B == m: summing over the wrong dimension keeps the shape
    assert check_backward(linear(0), "linear_layer_backward", sizes=sizes, samples=50).verdict == "consistent"
    wrong = check_backward(linear(1), "linear_layer_backward", sizes=sizes, samples=50)
    assert wrong.verdict == "refuted" and wrong.counterexample["argument"] == "b", wrong.reason
    assert "grad of b[" in wrong.reason


def test_old_style_functions_are_batched_not_checked_one_sample_at_a_time() -> None:
    for factory in (kernels.softmax, kernels.layer_norm):  # layer norm's dgamma sums over a leading axis
        identity = "softmax_jacobian" if factory is kernels.softmax else "layer_norm_backward"
        result = check_backward(factory(style="old"), identity, sizes={"n": 16}, samples=50)
        notes = " ".join(result.sizes[0].notes)
        assert result.verdict == "consistent" and "batched" in notes and "one sample at a time" not in notes, notes


class Scale(torch.autograd.Function):
    """y = x * s for a number s; None for s's gradient (it is a constant)."""

    @staticmethod
    def forward(ctx, x, s):  # noqa: ANN001, ANN205
        ctx.s = s
        return x * s

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        assert ctx.needs_input_grad == (True, False)
        return g * ctx.s * FACTOR, None


FACTOR = 1.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_constant_argument_passes_through_and_a_wrong_factor_is_refuted(dtype: object,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.linspace(-2, 2, 7, dtype=dtype)
    assert check_autograd_function(Scale, args=(x, 2.5), samples=50).verdict == "consistent"
    monkeypatch.setattr(__import__(__name__), "FACTOR", 1.5)
    wrong = check_autograd_function(Scale, args=(x, 2.5), samples=50)
    assert wrong.verdict == "refuted" and wrong.counterexample["argument"] == "x"
    near = np.asarray(wrong.counterexample["inputs"]["x"])  # drawn near the example: same signs
    assert np.all(np.sign(near) == np.sign(x.double().numpy())) or np.any(x.numpy() == 0)


def test_samples_are_drawn_near_the_example_which_is_the_first() -> None:
    from derive.usercode.arguments import Slot, draw

    x0 = np.array([-3.0, 0.0, 0.5, 40.0])
    batch = draw([Slot("x", True, True, (4,), None, x0)], np.random.default_rng(0), 1000, {})["x"]
    assert np.array_equal(batch[0], x0)
    nonzero = batch[:, [0, 2, 3]]
    assert np.all(np.sign(nonzero) == np.sign(x0[[0, 2, 3]]))
    ratio = nonzero / x0[[0, 2, 3]]
    assert 0.3 < ratio.min() and ratio.max() < 3.5 and batch[:, 1].std() > 0


class AddBias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias=None):  # noqa: ANN001, ANN205
        ctx.has_bias = bias is not None
        return x * 2 + (bias if bias is not None else 0)

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        return 2 * g, (g if ctx.has_bias else None)


def test_an_optional_none_argument_and_declared_constants() -> None:
    x = torch.randn(5, dtype=torch.float64)
    assert check_autograd_function(AddBias, args=(x, None), samples=20).verdict == "consistent"
    declared = check_autograd_function(AddBias, inputs={"x": ("n",)}, sizes={"n": 4}, constants={"bias": None},
                                       samples=20)
    assert declared.verdict == "consistent"
    both = check_autograd_function(AddBias, inputs={"bias": ("n",), "x": ("n",)}, sizes={"n": 4}, samples=20)
    assert both.verdict == "consistent"  # matched to forward(x, bias) by name, not by dict order


def test_the_rerun_line_works_as_printed() -> None:
    Wrong = kernels.softmax(1.01, style="old")  # noqa: N806
    z = torch.randn(8, dtype=torch.float32)
    first = check_autograd_function(Wrong, args=(z,), samples=30, seed=4)
    assert first.verdict == "refuted"
    rerun = first.counterexample["rerun"]
    # the forward takes *inputs: the argument is named after its position
    assert rerun.startswith("derive.check_autograd_function(Softmax, args=(arg0,), dtype='float32'"), rerun
    again = eval(rerun, {"derive": derive, "Softmax": Wrong, "arg0": z})  # noqa: S307 - our own printed line
    assert again.verdict == "refuted" and again.counterexample["sample"] == first.counterexample["sample"]
    declared = check_backward(Wrong, "softmax_jacobian", sizes={"n": 8}, samples=30)
    again = eval(declared.counterexample["rerun"], {"derive": derive, "Softmax": Wrong})  # noqa: S307
    assert again.counterexample == declared.counterexample


def test_a_forward_that_is_mostly_not_finite_is_inconclusive_not_consistent() -> None:
    class LogOf(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # noqa: ANN001, ANN205
            ctx.save_for_backward(x)
            return torch.log(x - 3.0)  # real inputs ~ N(0, 2): finite only above 3

        @staticmethod
        def backward(ctx, g):  # noqa: ANN001, ANN205
            (x,) = ctx.saved_tensors
            return g * 1.5 / (x - 3.0)  # wrong by 1.5

    result = check_autograd_function(LogOf, inputs={"x": ()}, samples=20)
    assert result.verdict == "inconclusive" and "drawn samples redrawn" in result.reason, result.reason


@pytest.mark.parametrize("call, message", [
    (lambda: derive.Label(3), r"^Label takes the name of the size that counts the classes, e.g. Label\('k'\)"),
    (lambda: check_autograd_function(Scale, inputs={"x": ((4,), "reel")}, constants={"s": 2.0}),
     r"^input 'x': unknown domain 'reel'; use one of real, positive"),
    (lambda: check_autograd_function(Scale, inputs={"x": "positive"}, constants={"t": 2.0}),
     r"^Scale.forward takes \(x, s\); t is not one of its parameters"),
    (lambda: check_autograd_function(Scale, args=(torch.ones(3),)),
     r"^Scale.forward takes \(x, s\) but args has 1 values"),
    (lambda: check_autograd_function(Scale(), args=(torch.ones(3), 2.0)), r"pass the class, not an instance"),
    (lambda: check_backward(kernels.layer_norm(), "linear_layer_backward"),
     r"^LayerNorm failed on a sample: RuntimeError: The size of tensor a"),
    (lambda: check_backward(kernels.softmax(), "logdet_gradient"),
     r"^Softmax returned 4 entries per sample but logdet_gradient's target has shape \(\)"),
    (lambda: check_backward(kernels.softmax(), dataclasses.replace(derive.catalog.get("logdet_gradient"),
                                                                   references=())),
     r"^logdet_gradient cannot be checked by check_backward: logdet of a matrix of symbolic size .* use "
     r"check_autograd_function"),
    (lambda: check_autograd_function(Scale, args=(torch.ones(3), 2.0), inputs={"x": ()}), r"not both"),
])
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")  # Scale(): on purpose
def test_newcomer_mistakes_are_one_line_errors(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises((SpecError, derive.UnsupportedError), match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_a_legacy_non_static_function_says_what_to_change() -> None:
    class Legacy(torch.autograd.Function):
        def forward(self, x):  # noqa: ANN001, ANN201
            return x * 2

        def backward(self, g):  # noqa: ANN001, ANN201
            return g * 2

    with pytest.raises(SpecError, match=r"^Legacy.forward is an instance method .* make forward and backward "
                                        r"@staticmethod, take ctx as their first argument"):
        check_autograd_function(Legacy, args=(torch.ones(3),))


def test_a_domain_given_by_name_in_a_shape_and_domain_pair() -> None:
    result = check_autograd_function(kernels.softmax(), inputs={"z": ((16,), "real")}, samples=20)
    assert result.verdict == "consistent"


def test_check_gradient_in_float32_judges_the_formula_then_the_precision() -> None:
    def f(x):  # noqa: ANN001, ANN202
        return np.sum(np.log1p(np.exp(x)))

    def g(x):  # noqa: ANN001, ANN202
        return 1 / (1 + np.exp(-x))

    def off(x):  # noqa: ANN001, ANN202 - right in float64, 1e-3 off in float32 (a precision bug)
        return g(x) * (1 if x.dtype == np.float64 else np.float32(1.001))

    right = check_gradient(f, g, inputs={"x": ("n",)}, sizes={"n": 8}, samples=32, dtype="float32")
    assert right.verdict == "consistent" and "ulp" in right.reason
    wrong = check_gradient(f, off, inputs={"x": ("n",)}, sizes={"n": 8}, samples=32, dtype=np.float32)
    assert wrong.verdict == "refuted" and wrong.counterexample["dtype"] == "float32", wrong.reason
    assert math.isclose(wrong.counterexample["mean_rel_error"], 1e-3, rel_tol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU path is not exercised here")
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_low_precisions_on_cuda(dtype: str) -> None:
    right = check_backward(kernels.softmax(), "softmax_jacobian", sizes={"n": 256}, samples=1000, dtype=dtype,
                           device="cuda")
    assert right.verdict == "consistent", right.reason
    lock = getattr(torch, dtype)
    wrong = check_backward(kernels.softmax(1 + WRONG[dtype], lock=lock), "softmax_jacobian", sizes={"n": 256},
                           samples=1000, dtype=dtype, device="cuda")
    assert wrong.verdict == "refuted", wrong.reason
    x = torch.randn(64, device="cuda", dtype=lock)
    assert check_autograd_function(kernels.gelu(style="old"), args=(x,), samples=200).verdict == "consistent"


@pytest.mark.parametrize("name", [  # one of each kind (benchmarks/backward.py --catalog runs them all)
    "softplus_derivative", "softmax_jacobian", "cross_entropy_gradient", "mlp_hidden_delta",  # scalar, vector, labels
    "layer_norm_backward", "linear_layer_backward", "attention_backward",  # an upstream gradient G
    "logdet_gradient", "inverse_jacobian", "himmelblau_hessian",  # no every-n form: the reference is the truth
])
def test_check_backward_takes_catalog_identities_of_every_kind(name: str) -> None:
    identity = derive.catalog.get(name)
    reference = identity.references[0].forward  # a callable whose backward is autograd's: consistent
    result = check_backward(reference, identity, samples=20)
    assert result.verdict == "consistent", result.reason
