"""The pytest plugin: *.derive.toml files become one test item per identity.

Each run is a subprocess: checks fork symbolic workers, which should not happen inside the
test session's own process (torch and forked pytest internals do not mix well in-process).
"""

from __future__ import annotations

import pytest

SOFTMAX = '''
[[identity]]
name = "softmax_jacobian"
variables = { z = { shape = "vector(n)" } }
sizes = [{ n = 3 }]
define = { p = "softmax(z)" }
wrt = "z"
claim = "diag(p) - outer(p, p)"
'''

GOOD = '''
[[identity]]
name = "sigmoid_derivative"
variables = { x = "real" }
define = { s = "sigmoid(x)" }
wrt = "x"
claim = "s * (1 - s)"
''' + SOFTMAX

WRONG = SOFTMAX.replace('"softmax_jacobian"', '"softmax_plus"').replace("diag(p) - outer", "diag(p) + outer")


def test_one_passing_item_per_correct_identity(pytester: pytest.Pytester) -> None:
    pytester.makefile(".derive.toml", good=GOOD)
    result = pytester.runpytest_subprocess("-v", "--derive-samples", "8")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*good.derive.toml::sigmoid_derivative PASSED*",
                                 "*good.derive.toml::softmax_jacobian PASSED*"])


def test_a_wrong_identity_fails_with_its_counterexample(pytester: pytest.Pytester) -> None:
    pytester.makefile(".derive.toml", good=GOOD, wrong=WRONG)
    result = pytester.runpytest_subprocess("--derive-samples", "8", "--derive-seed", "5")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*softmax_plus: refuted*", "*counterexample*", "*z = [[]*",
                                 "*seed=5; rerun: derive check *wrong.derive.toml --seed 5*"])


def test_a_malformed_spec_file_is_a_collection_error_with_its_position(pytester: pytest.Pytester) -> None:
    pytester.makefile(".derive.toml", broken=GOOD.replace('claim = "s * (1 - s)"', 'claim = "s * (1 - sigmoud(x))"'))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*broken.derive.toml:*unknown function 'sigmoud'*did you mean 'sigmoid'*"])


def test_other_toml_files_are_ignored(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject_like="[tool.x]\na = 1\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


XDIST_TESTS = '''
import torch

import derive


class Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        p = torch.softmax(z, -1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        return p * (g - (g * p).sum(-1, keepdim=True))


def test_backward_in_float32():
    derive.assert_backward(Softmax, "softmax_jacobian", sizes={"n": 16}, samples=50, dtype="float32")


def test_autograd_function_with_example_args():
    derive.assert_autograd_function(Softmax, args=(torch.randn(8),), samples=20)
'''


def test_user_code_checks_and_spec_items_run_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytest.importorskip("torch")
    pytester.makefile(".derive.toml", good=GOOD)
    pytester.makepyfile(test_user=XDIST_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "--derive-samples", "8")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*2 workers*"])
