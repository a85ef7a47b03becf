"""check_backward: a hand-written backward against a declared forward, batched at any size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from derive import catalog
from derive.usercode.backward import BackwardCheck, check_backward
from derive.errors import SpecError, UnknownIdentityError, UnsupportedError
from derive.numeric.indexed_eval import Evaluator, kit
from derive.model import ops
from derive.model.spec import Definition, Reference
from derive.symbolic.indexed_graph import build_indexed
from derive.symbolic.every_n import derive_indexed

import kernels  # tests/kernels.py


def softmax_fn(scale: float = 1.0, zero: bool = False) -> type:
    return kernels.softmax(scale, zero=zero)  # new-style, vmappable


class OldStyleSoftmax(kernels.softmax(style="old")):
    """forward(ctx, ...), and a backward that forgets the - p (p . g) term."""

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (p,) = ctx.saved_tensors
        return p * g


CrossEntropy = kernels.cross_entropy()


def test_a_correct_softmax_backward_is_consistent_with_every_truth_source() -> None:
    result = check_backward(softmax_fn(), "softmax_jacobian", sizes={"n": 64}, samples=300)
    assert result.verdict == "consistent"
    sources = result.sizes[0].sources
    assert sources[0] == "autograd of torch.softmax"  # the library kernel judges every sample
    assert sources[1] == "autograd of the definition (indexed form) (on 64 samples per chunk)"
    assert "complex step" in sources
    assert any(s.startswith("SymPy derivative for every n") for s in sources)
    assert result.numeric[0].samples == 300 and result.numeric[0].max_rel_error < 1e-12


@pytest.mark.parametrize("n", [8, 200])
def test_all_zeros_and_a_relative_error_of_1e_10_are_refuted(n: int) -> None:
    zero = check_backward(softmax_fn(zero=True), "softmax_jacobian", sizes={"n": n}, samples=200)
    assert zero.verdict == "refuted"
    cx = zero.counterexample
    assert cx["claimed"] == 0.0 and cx["true"] != 0.0 and len(cx["cotangent"]) == n and len(cx["inputs"]["z"]) == n
    assert cx["failing"] > 0 and "seed=0" in zero.reason and "check_backward" in cx["rerun"]
    off = check_backward(softmax_fn(1 + 1e-10), "softmax_jacobian", sizes={"n": n}, samples=200)
    assert off.verdict == "refuted" and 0.9e-10 < off.counterexample["rel_error"] < 1.1e-10


def test_an_error_far_below_rounding_of_the_tolerance_is_not_refuted() -> None:
    # 1e-13 relative is below the 1e-11 tolerance: sharp, but never a false alarm
    result = check_backward(softmax_fn(1 + 1e-13), "softmax_jacobian", sizes={"n": 32}, samples=500)
    assert result.verdict == "consistent"


def test_the_same_seed_reproduces_the_counterexample() -> None:
    a = check_backward(softmax_fn(1.001), "softmax_jacobian", sizes={"n": 16}, samples=50, seed=3)
    b = check_backward(softmax_fn(1.001), "softmax_jacobian", sizes={"n": 16}, samples=50, seed=3)
    assert a.counterexample["inputs"] == b.counterexample["inputs"] and a.counterexample["seed"] == 3


def test_cross_entropy_backward_with_integer_labels() -> None:
    good = check_backward(CrossEntropy, "cross_entropy_gradient", sizes={"B": 2, "k": 50}, samples=200)
    assert good.verdict == "consistent", good.reason
    assert "autograd of F.cross_entropy" in good.sizes[0].sources

    class NoMean(CrossEntropy):
        @staticmethod
        def backward(ctx, g):  # noqa: ANN001, ANN205 - forgets the 1/B of the mean
            z, t = ctx.saved_tensors
            return g * (torch.softmax(z, -1) - F.one_hot(t, z.shape[-1]).to(z.dtype)), None

    assert check_backward(NoMean, "cross_entropy_gradient", sizes={"B": 2, "k": 50},
                          samples=50).verdict == "refuted"


def test_an_old_style_function_is_batched_and_its_wrong_backward_refuted() -> None:
    result = check_backward(OldStyleSoftmax, "softmax_jacobian", sizes={"n": 6}, samples=20)
    assert result.verdict == "refuted" and "one sample at a time" not in " ".join(result.sizes[0].notes)


def test_chunks_bound_memory_and_cover_every_sample() -> None:
    one = BackwardCheck(softmax_fn(), "softmax_jacobian", {"n": 16})
    result = one.run(101, chunk=10)
    assert result.verdict == "consistent" and result.numeric[0].samples == 101
    wrong = BackwardCheck(softmax_fn(1.01), "softmax_jacobian", {"n": 16}).run(101, chunk=10)
    assert wrong.counterexample["failing"] == 2 * 101  # every VJP of every chunk was judged


def test_disagreeing_truth_sources_are_inconclusive() -> None:
    wrong_ref = dataclasses.replace(catalog.get("softmax_jacobian"), references=(
        Reference("log_softmax (wrong)", lambda z: torch.log_softmax(z, -1)),))
    result = check_backward(softmax_fn(), wrong_ref, sizes={"n": 8}, samples=20)
    assert result.verdict == "inconclusive" and "truth sources disagree" in result.reason


def test_a_forward_with_a_kink_uses_central_differences_as_the_witness() -> None:
    class Relu(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x):  # noqa: ANN001, ANN205
            return torch.relu(x)

        @staticmethod
        def setup_context(ctx, inputs, output):  # noqa: ANN001, ANN205
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):  # noqa: ANN001, ANN205
            (x,) = ctx.saved_tensors
            return g * (x > 0).to(g.dtype)

    result = check_backward(Relu, "relu_derivative", samples=100)
    assert result.verdict == "consistent" and "central differences" in result.sizes[0].sources


@pytest.mark.parametrize("call, error, message", [
    (lambda: check_backward(42, "softmax_jacobian"), SpecError, "torch.autograd.Function subclass or a callable"),
    (lambda: check_backward(softmax_fn(), "softmax_jacobain"), UnknownIdentityError, "softmax_jacobian"),
    (lambda: check_backward(softmax_fn(), "cross_entropy_gradient", sizes={"k": 3}), SpecError, "B"),
    (lambda: check_backward(softmax_fn(), "softmax_jacobian", sizes={"n": 0}), SpecError, "from 1 to 65536"),
    (lambda: check_backward(softmax_fn(), "softmax_jacobian", samples=0), SpecError, "samples"),
    (lambda: check_backward(softmax_fn(), "softmax_jacobian", device="gpu"), SpecError, "unknown device"),
])
def test_bad_arguments_are_one_clear_error(call, error, message: str) -> None:  # noqa: ANN001
    with pytest.raises(error, match=message):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU path is not exercised here")
def test_check_backward_on_cuda() -> None:
    result = check_backward(softmax_fn(), "softmax_jacobian", sizes={"n": 256}, samples=1000, device="cuda")
    assert result.verdict == "consistent"
    assert check_backward(softmax_fn(1 + 1e-10), "softmax_jacobian", sizes={"n": 256}, samples=1000,
                          device="cuda").verdict == "refuted"


def test_without_cuda_asking_for_it_is_one_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(UnsupportedError, match="no CUDA GPU"):
        check_backward(softmax_fn(), "softmax_jacobian", device="cuda")


# --- the indexed evaluator ---------------------------------------------------------------------

def test_the_every_n_forms_evaluate_at_large_n_like_torch() -> None:
    identity = catalog.get("softmax_jacobian")
    graph = build_indexed(identity)
    z = np.random.default_rng(0).normal(size=(3, 1024))
    for name in ("numpy", "torch"):
        zz = torch.as_tensor(z) if name == "torch" else z
        values = Evaluator(graph, {"n": 1024}).forward({"z": zz}, 3, kit(name))
        assert np.allclose(np.asarray(values["p"]), torch.softmax(torch.as_tensor(z), -1).numpy(),
                           rtol=1e-14, atol=0)


@pytest.mark.parametrize("name, sizes", [("softmax_jacobian", {"n": 5}),
                                         ("cross_entropy_gradient", {"B": 2, "k": 4}),
                                         ("mlp_hidden_delta", None)])
def test_the_derivative_derived_for_every_n_matches_autograd(name: str, sizes: dict | None) -> None:
    identity = catalog.get(name)
    graph = build_indexed(identity)
    derivation = derive_indexed(graph)
    sizes = sizes or dict(identity.sizes[0])
    ev = Evaluator(graph, sizes)
    claim = graph.claims[0]
    rng = np.random.default_rng(1)
    enc, leaves = {}, {}
    for v in identity.variables:
        shape = v.resolve(sizes)
        raw = v.domain.sample(rng, (2, *shape), sizes)
        t = torch.as_tensor(v.domain.encode(raw, sizes).reshape(2, *v.domain.formula_shape(shape, sizes)))
        if v.name == claim.wrt:
            t.requires_grad_(True)
            leaves[v.name] = t
        enc[v.name] = t
    values = ev.forward(enc, 2, kit("torch"))
    jac = ev.evaluate(derivation.derived[claim.index], {k: v.detach() for k, v in values.items()},
                      tuple(claim.indices), 2, kit("torch"))
    target = values[graph.target].reshape(2, -1)
    rows = [torch.autograd.grad(target[:, a].sum(), leaves[claim.wrt], retain_graph=True)[0].reshape(2, -1)
            for a in range(target.shape[1])]
    auto = torch.stack(rows, dim=1).reshape(jac.shape)
    assert torch.allclose(jac, auto, rtol=1e-12, atol=1e-14)


def test_a_nan_in_one_entry_of_the_backward_is_refuted() -> None:
    class OneNaN(softmax_fn()):
        @staticmethod
        def backward(ctx, g):  # noqa: ANN001, ANN205
            (p,) = ctx.saved_tensors
            out = p * (g - (g * p).sum(-1, keepdim=True))
            return torch.where(torch.arange(out.shape[-1]) == 3, torch.nan, out)

    result = check_backward(OneNaN, "softmax_jacobian", sizes={"n": 8}, samples=20)
    assert result.verdict == "refuted" and result.counterexample["entry"] == [3] and result.counterexample["argument"] == "z"
    assert result.counterexample["abs_error"] == float("inf")


def test_a_vector_forward_with_kinks_is_not_taken_for_analytic() -> None:
    # the forward's entries were once read from the repr of a SymArray, which hides them
    identity = dataclasses.replace(catalog.get("softmax_jacobian"), name="relu_softmax", definitions=(
        Definition("p", lambda v: ops.softmax(ops.relu(v.z))),), references=())
    assert not BackwardCheck(softmax_fn(), identity, {"n": 4}).analytic
    assert BackwardCheck(softmax_fn(), "softmax_jacobian", {"n": 4}).analytic
