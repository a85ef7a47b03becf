"""Proofs for every size: symbolic n, B, k, widths."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import sympy as sp

from derive import Claim, catalog, check
from derive.model import ops
from derive.model.indexed import SymArray, canonical
from derive.symbolic.indexed_graph import build_indexed
from derive.symbolic.every_n_proof import work

FOR_ALL_N = ["softmax_jacobian", "log_softmax_gradient", "cross_entropy_gradient",
             "cross_entropy_definition", "mse_gradient", "linear_regression_gradient",
             "dot_product_gradient", "mlp_output_delta", "mlp_hidden_delta",
             "bce_definition", "bce_gradient_probability", "bce_gradient_logit"]


@pytest.mark.parametrize("name", FOR_ALL_N)
def test_catalog_identity_is_proved_for_every_size(name: str) -> None:
    start = time.perf_counter()
    outcome = list(work(catalog.get(name)))[-1]
    assert outcome.status == "proved", outcome.detail
    assert outcome.methods
    # generous bound for a loaded CI machine; benchmarks/symbolic_n.py reports the real times
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("name", ["sigmoid_derivative", "himmelblau_gradient"])
def test_identities_without_sizes_are_not_applicable(name: str) -> None:
    assert list(work(catalog.get(name)))[-1].status == "not applicable"


def wrong(name: str, formula, wrt: str) -> object:  # noqa: ANN001
    return dataclasses.replace(catalog.get(name), name=f"{name}_wrong", claims=(Claim(formula, wrt=wrt),))


@pytest.mark.parametrize("identity", [
    wrong("softmax_jacobian", lambda v: ops.diag(v.p) + ops.outer(v.p, v.p), "z"),
    wrong("cross_entropy_gradient", lambda v: v.p - v.t, "z"),  # the 1/B dropped
    wrong("mlp_output_delta", lambda v: ops.outer(v.O_j, v.O_k - v.t), "W_jk"),
    wrong("log_softmax_gradient", lambda v: ops.eye(ops.size(v.p)) - v.p[:, None], "z"),  # transposed
])
def test_wrong_claims_are_not_proved_for_every_size(identity) -> None:  # noqa: ANN001
    assert list(work(identity))[-1].status == "not proved"


def test_check_reports_all_n_and_skips_it_after_a_refutation() -> None:
    good = check(catalog.get("softmax_jacobian"), samples=8)
    assert good.symbolic_n.status == "proved" and good.symbolic_n.seconds > 0
    bad = check(wrong("softmax_jacobian", lambda v: ops.diag(v.p) + ops.outer(v.p, v.p), "z"), samples=8)
    assert bad.verdict == "refuted"
    assert bad.symbolic_n.status == "skipped"
    assert check(catalog.get("relu_derivative"), samples=4).symbolic_n.status == "not applicable"


def test_json_carries_symbolic_n() -> None:
    import json

    from derive.model.verdict import Report
    data = json.loads(Report(0, (check(catalog.get("mse_gradient"), samples=4),)).to_json())
    assert set(data["results"][0]["symbolic_n"]) >= {"status", "seconds"}


def test_indexed_graph_uses_size_symbols_and_named_intermediates() -> None:
    graph = build_indexed(catalog.get("mlp_hidden_delta"))
    assert set(graph.sizes) == {"I", "J", "K"}
    assert set(graph.nodes["x_k"].parents) == {"O_j", "W_jk"}
    assert graph.nodes["O_k"].shape == (graph.sizes["K"],)


def test_canonical_makes_sums_built_apart_equal() -> None:
    n = sp.Symbol("n", integer=True, positive=True)
    z = sp.IndexedBase("z")
    a, b = sp.Dummy("a", integer=True), sp.Dummy("b", integer=True)
    first = sp.Sum(sp.exp(z[a]), (a, 0, n - 1))
    second = sp.Sum(sp.exp(z[b]), (b, 0, n - 1))
    assert first != second
    assert canonical(first - second) == 0
    # nested at different depths, still equal
    i = sp.Dummy("i", integer=True)
    nested = sp.Sum(z[i] * sp.Sum(sp.exp(z[a]), (a, 0, n - 1)), (i, 0, n - 1))
    flat = sp.Sum(z[i], (i, 0, n - 1)) * second
    assert canonical(sp.expand(nested.function)).has(canonical(second))
    assert canonical(first) == canonical(second) and flat.has(second)


def test_symarray_broadcasts_reduces_and_multiplies_like_numpy() -> None:
    n, m = sp.symbols("n m", integer=True, positive=True)
    x = sp.IndexedBase("x")
    w = sp.IndexedBase("W")
    vec = SymArray((n,), lambda i: x[i])
    mat = SymArray((n, m), lambda i, j: w[i, j])
    i, j = sp.symbols("i j", integer=True)
    assert (vec @ mat).shape == (m,)
    assert (mat.T @ vec).shape == (m,)
    assert (vec[:, None] * mat).entry(i, j) == x[i] * w[i, j]
    assert (vec[None, :] + 1).shape == (1, n)
    assert ops.sum_(mat, axis=0).shape == (m,)
    assert ops.mean(vec).free_symbols >= {n}
    assert ops.eye(n).entry(i, j) == sp.KroneckerDelta(i, j)
    # the same ops still work on explicit object arrays
    explicit = np.array(sp.symbols("a0:3"), dtype=object)
    assert ops.diag(explicit).shape == (3, 3)
