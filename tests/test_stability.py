"""Numerical stability: bits lost per formula and dtype, where, why, and rewrites proved equal.

The formulas come from examples/stability.derive.toml (the seeds' BCE, softmax without the
shift, log(1 + exp x), 1 - sigmoid(x), log(sum(exp z)), sqrt(x^2 + y^2), and the library forms
that are stable); each is analysed once per module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy as sp

from derive import catalog
from derive.errors import SpecError
from derive.language.specfile import loads_spec
from derive.model.verdict import Report, Result, Stability, StableRewrite, Symbolic, report_from_json
from derive.numeric.stability import DTYPES, analyse, bits_lost, parse_dtypes
from derive.numeric.stability import analysis as A
from derive.run.loader import resolve
from derive.symbolic import rewrites as R

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "stability.derive.toml"


@pytest.fixture(scope="module")
def summaries() -> dict[str, dict[str, Any]]:
    """Every identity of the example, analysed (with the sweep curves)."""
    return {i.name: analyse(i).summary(curves=True) for i in resolve(str(EXAMPLE))}


def _formula(summary: dict[str, Any], label: str) -> dict[str, Any]:
    return next(f for f in summary["formulas"] if f["formula"] == label)


def _edge(region: str, pattern: str) -> float:
    found = re.search(pattern, region)
    assert found, f"{pattern!r} not in {region!r}"
    return float(found.group(1))


# --- what it must show ---------------------------------------------------------------------

def test_the_seeds_bce_is_flagged_in_float32_and_its_proved_rewrite_loses_under_two_bits(
        summaries: dict[str, dict[str, Any]]) -> None:
    f = _formula(summaries["bce_logits"], "L")
    f32 = f["dtypes"]["float32"]
    assert f32["flagged"] and f32["bits_lost_worst"] == 24
    assert 16.0 < _edge(f32["region"], r"inf for z > ([\d.]+)") < 17.5  # torch's sigmoid is 1.0 there
    assert -105 < _edge(f32["region"], r"nan for z < (-[\d.]+)") < -85  # and 0 below
    assert f32["cause"] == "cancellation" and f32["subexpression"] == "1 - sigmoid(z)"
    rw = f["rewrite"]
    assert rw["formula"] == "softplus(z) - y*z" and rw["proved"]
    assert all(d["bits_lost_worst"] < 2 for d in rw["dtypes"].values())
    _, bits = rw["dtypes"]["float32"]["curve"]  # over the whole swept range
    assert len(bits) > 50 and max(bits) < 2


def test_bce_in_check_json(tmp_path: Path) -> None:
    """`derive check --json` shape: one entry per formula and dtype, the rewrite proved; [] when
    none; read back from JSON unchanged."""
    from derive.run.check import check

    bce, stable = (next(i for i in resolve(str(EXAMPLE)) if i.name == n) for n in ("bce_logits", "bce_with_logits"))
    result = check(bce, samples=8, backend="numpy", stability="float32")
    assert result.verdict == "proved"
    assert {e.dtype for e in result.stability} == {"float32"}
    data = json.loads(Report(0, (result,)).to_json())["results"][0]["stability"]
    assert set(data[0]) == {"formula", "dtype", "bits_lost_mean", "bits_lost_worst", "region", "cause",
                            "subexpression", "rewrite"}
    assert data[0]["formula"].startswith("L = ") and set(data[0]["rewrite"]) == {"formula", "proved", "bits_lost_worst"}
    assert report_from_json(Report(0, (result,)).to_json()).results[0].stability == result.stability
    assert check(stable, samples=8, backend="numpy", stability="float32").stability == ()


def test_softmax_without_the_shift_overflows_past_88_7_in_float32_and_11_in_float16(
        summaries: dict[str, dict[str, Any]]) -> None:
    f = _formula(summaries["softmax_unshifted"], "p")
    assert 88.5 < _edge(f["dtypes"]["float32"]["region"], r"nan for max\|z\| > ([\d.]+)") < 89.0
    assert 10.9 < _edge(f["dtypes"]["float16"]["region"], r"nan for max\|z\| > ([\d.]+)") < 11.2
    assert f["dtypes"]["float32"]["cause"] == "overflow"
    assert f["rewrite"]["formula"] == "softmax(z)" and f["rewrite"]["proved"]


@pytest.mark.parametrize("name, label, rewrite, cause", [
    ("softplus_written_out", "s", "softplus(x)", "overflow"),
    ("one_minus_sigmoid", "q", "sigmoid(-x)", "cancellation"),
    ("logsumexp_written_out", "f", "logsumexp(z)", "overflow"),
    ("hypot_written_out", "r", "hypot(x, y)", "overflow"),
])
def test_each_written_out_form_is_flagged_with_its_rewrite(summaries: dict[str, dict[str, Any]], name: str,
                                                           label: str, rewrite: str, cause: str) -> None:
    f = _formula(summaries[name], label)
    assert f["dtypes"]["float32"]["flagged"]
    assert f["dtypes"]["float32"]["cause"] == cause
    assert f["rewrite"]["formula"] == rewrite and f["rewrite"]["proved"]
    assert f["rewrite"]["dtypes"]["float32"]["bits_lost_worst"] < 3


@pytest.mark.parametrize("name", ["bce_with_logits", "log_softmax_library", "log_sigmoid_library"])
def test_the_library_forms_are_not_flagged(summaries: dict[str, dict[str, Any]], name: str) -> None:
    assert summaries[name]["stability"] == []


@pytest.mark.parametrize("name", ["softplus_derivative", "logsumexp_gradient", "log_softmax_gradient",
                                  "log_sigmoid_derivative"])
def test_the_catalogs_stable_identities_are_not_flagged(name: str) -> None:
    assert analyse(catalog.get(name)).entries() == ()


def test_every_suggested_rewrite_is_proved(summaries: dict[str, dict[str, Any]]) -> None:
    rewrites = [f["rewrite"] for s in summaries.values() for f in s["formulas"] if f["rewrite"]]
    assert len(rewrites) >= 6 and all(r["proved"] and r["methods"] for r in rewrites)
    entries = [e for s in summaries.values() for e in s["stability"] if e["rewrite"]]
    assert entries and all(e["rewrite"]["proved"] for e in entries)


def test_no_rewrite_is_suggested_that_was_not_proved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(A, "prove_rewrite", lambda *a: R.Equality(False, detail="not shown"))
    identity = next(i for i in resolve(str(EXAMPLE)) if i.name == "softplus_written_out")
    entries = analyse(identity, dtypes=("float32",)).entries()
    assert entries and all(e.rewrite is None for e in entries)


def test_a_wrong_rule_is_caught_at_40_digits_even_if_proved(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never one source: a rewrite must also agree with the original at 40 digits."""
    wrong = R.Rule("wrong", "log(1 + exp(x))", "softplus(x)*(1 + 1e-6)", lambda u: sp.log(1 + sp.exp(u)),
                   lambda u: R.softplus(u) * (1 + sp.Rational(1, 10**6)), R.RULES[0].match)
    monkeypatch.setattr(A, "_rules", lambda stability=True: (wrong,) if stability else ())
    monkeypatch.setattr(A, "prove_rewrite", lambda *a: R.Equality(True, ("pretend",)))
    identity = next(i for i in resolve(str(EXAMPLE)) if i.name == "softplus_written_out")
    assert all(e.rewrite is None for e in analyse(identity, dtypes=("float32",)).entries())
    monkeypatch.setattr(A, "_agrees", lambda *a: True)  # the control: without that check it is shown
    assert any(e.rewrite is not None for e in analyse(identity, dtypes=("float32",)).entries())


@pytest.mark.parametrize("rule", [r.name for r in R.RULES])
def test_every_rule_is_proved_by_the_ladder(rule: str) -> None:
    arity = {"softmax": 4, "log_softmax": 4, "logsumexp": 3, "hypot": 2, "inverse_hypot": 2,
             "difference_of_squares": 2, "softmax_power": 4}.get(rule, 1)
    assert R.rule_proof(rule, arity, 2 if rule == "softmax_power" else 1)[0]


# --- pieces ----------------------------------------------------------------------------------

def test_library_calls_are_marked_per_formula() -> None:
    """The same expression is a library call in one definition and written out in another."""
    (identity,) = loads_spec('''
[[identity]]
name = "two_ways"
variables = { z = { shape = "vector(n)" }, x = "real", w = "real" }
sizes = [{ n = 3 }]
define = { f = "log(sum(exp(z)))", g = "logsumexp(z)", h = "log(1 + exp(x)) + softplus(w)" }
equals = "log(1 + exp(x)) + log(1 + exp(w))"
''')
    w = R.written(identity, {"n": 3})
    assert not w.definitions["f"].item().has(R.Library)
    assert isinstance(w.definitions["g"].item(), R.logsumexp)
    h = w.definitions["h"].item()
    x, v = sp.Symbol("x", real=True), sp.Symbol("w", real=True)
    assert R.softplus(v) in h.args and sp.log(1 + sp.exp(x)) in h.args
    assert R.unmark(w.definitions["g"].item()) == w.definitions["f"].item()


def test_bits_lost() -> None:
    f32 = DTYPES["float32"]
    exact = np.array([[1.0, 2e-9, 3.0]])
    assert bits_lost(exact, exact, f32).max() == 0
    assert bits_lost(np.array([[1.0, 0.0, 3.0]]), exact, f32)[0, 1] > 23  # all bits: 0 for 2e-9
    allowance = np.array([[0.0, 20 * 2.0**-24, 0.0]])  # what rounding an input of 20 allows
    assert bits_lost(np.array([[1.0, 0.0, 3.0]]), exact, f32, allowance)[0, 1] < 0.01
    assert bits_lost(np.array([[np.nan, np.inf, 3.0]]), exact, f32)[0, :2].tolist() == [24, 24]
    assert bits_lost(np.array([[1.0 + 2**-23]]), np.array([[1.0]]), f32)[0, 0] == 1  # one ulp: one bit


def test_dtypes_are_checked() -> None:
    assert parse_dtypes("float32, bfloat16") == ("float32", "bfloat16")
    assert parse_dtypes(None) == () and parse_dtypes(["float16"]) == ("float16",)
    with pytest.raises(SpecError, match="unknown dtype 'float8'"):
        parse_dtypes("float32,float8")


def test_the_figure_is_drawn(summaries: dict[str, dict[str, Any]]) -> None:
    pytest.importorskip("matplotlib")
    from derive.present.plot import inline_svg
    from derive.present.stability import figure

    svg = inline_svg(figure(summaries["bce_logits"]), "t")
    assert svg.startswith("<svg") and "rewrite" in svg and svg.count("<path") > 10


def test_the_listing_and_the_line_under_the_verdict(summaries: dict[str, dict[str, Any]]) -> None:
    import io

    from derive.present.cli import render_table
    from derive.present.stability import render

    out = io.StringIO()
    render([summaries["bce_logits"], summaries["bce_with_logits"]], out)
    text = out.getvalue()
    assert "rewrite, proved equal: softplus(z) - y*z" in text and "inf for z > 16" in text
    assert "2 identities: 1 with a formula that loses more than half its bits" in text
    entries = tuple(Stability(**{**e, "rewrite": StableRewrite(**e["rewrite"]) if e["rewrite"] else None})
                    for e in summaries["bce_logits"]["stability"])
    result = Result("bce_logits", "proved", Symbolic("proved", 0.1), (), 0.1, stability=entries)
    out = io.StringIO()
    render_table(Report(0, (result,)), out, color=False)
    line = next(x for x in out.getvalue().splitlines() if "stability:" in x)
    assert "L loses 24 of 24 bits in float32" in line and "softplus(z) - y*z" in line


def test_cli_stability_json_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    from derive.present.cli import main

    assert main(["stability", "softplus_derivative", "--dtype", "float32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["results"][0]["stability"] == [] and data["dtypes"] == ["float32"]
    assert main(["stability", "nothing", "--dtype", "float8"]) == 2


def test_the_pytest_plugin_fails_unstable_identities(pytester: pytest.Pytester) -> None:
    text = EXAMPLE.read_text()
    keep = [b for b in text.split("[[identity]]") if 'name = "bce_logits"' in b or 'name = "bce_with_logits"' in b]
    pytester.makefile(".derive.toml", unstable="[[identity]]" + "[[identity]]".join(keep))
    result = pytester.runpytest_subprocess("--derive-samples=8", "--derive-backend=numpy",
                                           "--derive-stability=float32")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*bce_logits: proved, but numerically unsafe:*",
                                 "*rewrite, proved equal: softplus(z) - y*z*"])
