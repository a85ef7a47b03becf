"""The `derive` command: output, JSON, exit codes and one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from derive import catalog
from derive.present.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def all_json() -> dict:
    code, out, err = run("check", "--all", "--json", "--samples", "16")
    assert code == 0, err
    return json.loads(out)


def test_check_all_json_lists_every_identity_as_proved(all_json: dict) -> None:
    assert all_json["seed"] == 0
    names = [r["name"] for r in all_json["results"]]
    assert names == catalog.names()
    for r in all_json["results"]:
        assert r["verdict"] == "proved"
        assert set(r["symbolic"]) >= {"status", "seconds"}
        assert r["counterexample"] is None and r["seconds"] > 0
        assert isinstance(r["stability"], list)  # float32 by default; [] where nothing loses half its bits
        for n in r["numeric"]:
            assert set(n) >= {"backend", "dtype", "samples", "max_abs_error", "max_rel_error"}
            assert n["dtype"] == "float64" and n["samples"] >= 16


def test_table_output_has_a_row_per_identity_and_a_summary() -> None:
    code, out, _ = run("check", "sigmoid_derivative", "relu_derivative", "--samples", "8")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["identity", "verdict", "symbolic"]
    assert any(line.startswith("sigmoid_derivative") and " proved " in line for line in lines)
    assert "kink" in out  # relu is proved away from x = 0, and the table says so
    assert lines[-2] == "2 identities: 2 proved; seed 0"
    assert lines[-1] == "proofs: 0 for every size n, 2 with no size to vary, 0 only for the sizes tried"


def test_backend_choice_limits_the_numeric_columns() -> None:
    code, out, _ = run("check", "tanh_derivative", "--backend", "numpy", "--json", "--samples", "8")
    assert code == 0
    assert [n["backend"] for n in json.loads(out)["results"][0]["numeric"]] == ["numpy"]


@pytest.mark.parametrize("argv, message", [
    (["check", "no_such_identity"], "unknown identity 'no_such_identity'"),
    (["check", "softmax_jacobain"], "did you mean softmax_jacobian"),
    (["check", "sigmoid_derivative", "--samples", "-1"], "expected a positive integer (at most 100000), got -1"),
    (["check", "sigmoid_derivative", "--samples", "many"], "expected a positive integer (at most 100000), got 'many'"),
    (["check", "sigmoid_derivative", "--seed", "-3"], "expected an integer from 0"),
    (["check", "sigmoid_derivative", "--backend", "jax"], "invalid choice: 'jax'"),
    (["check"], "nothing to do"),
    (["check", "--all", "sigmoid_derivative"], "not both"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_usage_is_exit_2_with_one_line(argv: list[str], message: str) -> None:
    code, out, err = run(*argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err


def test_list_names_every_identity() -> None:
    code, out, _ = run("list")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == catalog.names()
    assert "$" not in out and "\\" not in out and "σ(x) (1 - σ(x))" in out  # the math as terminal text
    code, out, _ = run("list", "--json")
    assert [i["name"] for i in json.loads(out)] == catalog.names()


def test_console_script_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "derive", "check", "square_sum_gradient", "--json",
                           "--samples", "4"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["verdict"] == "proved"


def test_spec_files_on_the_command_line() -> None:
    from pathlib import Path

    examples = Path(__file__).parent.parent / "examples"
    code, out, _ = run("check", str(examples / "identities.derive.toml"), "--samples", "8")
    assert code == 0 and "14 identities: 14 proved" in out
    code, out, _ = run("check", str(examples / "wrong.derive.toml"), "--samples", "8", "--json")
    assert code == 1
    results = json.loads(out)["results"]
    assert len(results) == 10 and {r["verdict"] for r in results} == {"refuted"}
    assert all(r["counterexample"]["rerun"].endswith("wrong.derive.toml --seed 0") for r in results)
