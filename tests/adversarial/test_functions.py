"""The new functions at their edges: domains (acos at 1, log at 0, acosh of a real), kinks and
jumps (floor at integers, round at halves, where on its boundary, clamp with lo > hi), pinned
there or sampled freely. Whatever the inputs, a right claim is never refuted and a wrong one is
never proved or consistent; formulas outside a function's domain are refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from derive import Claim, Definition, Identity, Variable, check
from derive.errors import ParseError
from derive.language.parse import parse_formula
from derive.model.domains import POSITIVE, REAL, UNIT_INTERVAL, Domain

from .helpers import At, check_spec, identity, q

NEVER_RIGHT = {"refuted"}
NEVER_WRONG = {"proved", "consistent"}


def _identity(name: str, forward: str, claim: str, domains: dict[str, Domain]) -> Identity:
    names = set(domains) | {"f"}
    return Identity(name, variables=tuple(Variable(v, (), d) for v, d in domains.items()),
                    definitions=(Definition("f", parse_formula(forward, names=set(domains)), forward),),
                    claims=(Claim(parse_formula(claim, names=names), wrt="x", text=claim),))


X = {"x": REAL}
CASES = [
    # name, forward, right claim, wrong claim, variables (x differentiated), what the right one must be
    ("acos_at_1", "acos(x)", "-1 / sqrt(1 - x**2)", "1 / sqrt(1 - x**2)", {"x": At(value=1.0)}, {"inconclusive"}),
    ("acos_near_1", "acos(x)", "-rsqrt(1 - x**2)", "rsqrt(1 - x**2)", {"x": At(value=0.999)},
     {"proved", "inconclusive"}),  # a finite difference near a singularity may not be accurate enough
    ("acos_of_a_real", "acos(x)", "-rsqrt(1 - x**2)", "-rsqrt(1 + x**2)", X, {"proved"}),
    ("acosh_of_a_real", "acosh(x)", "1 / (sqrt(x - 1) * sqrt(x + 1))", "1 / sqrt(x**2 + 1)", X, {"proved"}),
    ("log_at_0", "log(x)", "1 / x", "-1 / x", {"x": At(value=0.0)}, {"inconclusive"}),
    ("log_of_a_real", "log(x)", "1 / x", "1 / x**2", X, {"proved"}),
    ("sqrt_of_a_real", "sqrt(x)", "0.5 * rsqrt(x)", "rsqrt(x)", X, {"proved"}),
    ("log1p_near_minus_1", "log1p(x)", "1 / (1 + x)", "1 / x", {"x": At(value=-0.999999)},
     {"proved", "inconclusive"}),  # its step crosses -1
    ("erfinv_at_1", "erfinv(x)", "sqrt(pi) / 2 * exp(erfinv(x)**2)", "sqrt(pi) * exp(erfinv(x)**2)",
     {"x": At(value=1.0)}, {"inconclusive"}),
    ("lgamma_at_a_pole", "lgamma(x)", "digamma(x)", "digamma(x + 1)", {"x": At(value=-2.0)}, {"inconclusive"}),
    ("lgamma_of_a_negative", "lgamma(x)", "digamma(x)", "digamma(x) + 1", {"x": At(value=-2.5)}, {"proved"}),
    ("floor_at_an_integer", "x * floor(x)", "floor(x)", "floor(x) + x", {"x": At(value=2.0)}, {"inconclusive"}),
    ("floor_near_an_integer", "x * floor(x)", "floor(x)", "ceil(x)", {"x": At(value=2.0 - 1e-9)}, {"inconclusive"}),
    ("floor_of_a_real", "x * floor(x)", "floor(x)", "ceil(x)", X, {"proved"}),
    ("round_at_a_half", "x * round(x)", "round(x)", "round(x) + 1", {"x": At(value=2.5)}, {"inconclusive"}),
    ("round_of_a_real", "x * round(x)", "round(x)", "floor(x)", X, {"proved"}),
    ("frac_at_an_integer", "frac(x)", "1", "0", {"x": At(value=-3.0)}, {"inconclusive"}),
    ("fmod_on_a_jump", "fmod(x, y)", "1", "0", {"x": At(value=3.0), "y": At(value=1.5)}, {"inconclusive"}),
    ("remainder_of_reals", "remainder(x, y)", "1", "1 + floor(x / y)", {"x": REAL, "y": POSITIVE}, {"proved"}),
    ("where_on_its_boundary", "where(x > 0, x**2, -x)", "where(x > 0, 2 * x, -1)", "where(x > 0, 2 * x, 1)",
     {"x": At(value=0.0)}, {"inconclusive"}),
    ("where_of_a_real", "where(x > 0, x**2, -x)", "where(x > 0, 2 * x, -1)", "where(x > 0, 2 * x, 1)", X, {"proved"}),
    ("where_claim_differs_on_the_boundary_only", "where(x > 0, x**2, -x)", "where(x >= 0, 2 * x, -1)",
     "where(x >= 0, 2 * x, -1) + 1e-6", X, {"proved", "consistent"}),
    ("where_guards_its_pieces", "where(x > 0, sqrt(x), 0)", "where(x > 0, 0.5 / sqrt(x), 0)",
     "where(x > 0, 1 / sqrt(x), 0)", X, {"proved"}),
    ("sign_at_0", "x * sign(x)", "sign(x)", "1", {"x": At(value=0.0)}, {"inconclusive"}),
    ("clamp_with_lo_above_hi", "clamp(x, y, y - 1)", "0", "where(y <= x, 1, 0)", {"x": REAL, "y": REAL},
     {"proved", "consistent"}),
    ("maximum_at_a_tie", "maximum(x, y)", "where(x > y, 1, 0)", "1", {"x": At(value=1.0), "y": At(value=1.0)},
     {"inconclusive"}),
    ("hardtanh_at_its_corner", "hardtanh(x)", "where(-1 < x < 1, 1, 0)", "1", {"x": At(value=1.0)},
     {"inconclusive"}),
    ("atanh_of_a_probability", "atanh(x)", "1 / (1 - x**2)", "1 / (1 + x**2)", {"x": UNIT_INTERVAL}, {"proved"}),
]


@pytest.mark.limit(60)
@pytest.mark.parametrize("name, forward, right, wrong, domains, expected", CASES, ids=[c[0] for c in CASES])
def test_right_is_never_refuted_and_wrong_never_passes(name: str, forward: str, right: str, wrong: str,
                                                      domains: dict[str, Domain], expected: set[str]) -> None:
    good = check(_identity(name, forward, right, domains), backend="numpy", samples=8, stability=None)
    bad = check(_identity(f"{name}_wrong", forward, wrong, domains), backend="numpy", samples=8, stability=None)
    assert good.verdict not in NEVER_RIGHT, (good.verdict, good.reason)
    assert bad.verdict not in NEVER_WRONG, (bad.verdict, bad.reason)
    assert good.verdict in expected, (good.verdict, good.reason)
    if good.verdict in ("proved", "consistent") and "At" not in str(domains):
        assert bad.verdict == "refuted", (bad.verdict, bad.reason)


@pytest.mark.parametrize("formula, shown", [
    ("acos(2)", "acos(2): acos is defined for [-1, 1], and 2 is outside it"),
    ("log(-1)", "log(-1): log is defined for positive values (x > 0)"),
    ("sqrt(-x**2 - 1)", "is outside it for every input"),
    ("acosh(x**2 - 3) + acosh(-x**2)", "acosh(-x**2): acosh is defined for x >= 1"),
    ("logit(1)", "logit is defined for (0, 1), and 1 is outside it"),
    ("polygamma(1, -x**2)", "polygamma is defined for x > 0"),
    ("log(x - x)", "this evaluates to zoo"),
])
def test_formulas_outside_a_domain_are_refused_in_one_line(tmp_path: Path, formula: str, shown: str) -> None:
    code, out, err = check_spec(tmp_path, identity(claim=q(formula)))
    assert code == 2, (out, err)
    line = err.strip()
    assert "\n" not in line and "hostile.derive.toml:6:" in line and shown in line, line


def test_no_domain_inside_gives_inconclusive_not_a_verdict() -> None:
    result = check(_identity("acos_off", "acos(x + 15)", "0", {"x": REAL}), backend="numpy", samples=8)
    assert result.verdict == "inconclusive"
    assert "not finite" in result.reason


def test_a_parameter_is_never_a_formula(tmp_path: Path) -> None:
    for call in ("leaky_relu(x, __import__('os'))", "elu(x, alpha=x)", "norm(x, ord=inf())",
                 "var(x, ddof=1e400)", "gelu(x, approximate=exec)", "softplus(x, beta=(1, 2))"):
        with pytest.raises(ParseError) as info:
            parse_formula(call, names={"x"}, where="p.toml", line=2, col=3)
        assert "\n" not in str(info.value) and str(info.value).startswith("p.toml:2:"), str(info.value)
