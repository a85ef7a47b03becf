"""derive.language.specfile reads identities from TOML: the examples check out (right ones proved or
consistent, wrong ones refuted), and every malformed file gives one located line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from derive import CONSISTENT, PROVED, REFUTED, check
from derive.model.domains import INVERTIBLE, SPD_MATRIX, Label
from derive.errors import ParseError, SpecError
from derive.language.specfile import MAX_IDENTITIES, load_spec, loads_spec

EXAMPLES = Path(__file__).parents[1] / "examples"
RIGHT = load_spec(EXAMPLES / "identities.derive.toml")
WRONG = load_spec(EXAMPLES / "wrong.derive.toml")


def test_the_examples_load() -> None:
    assert len(RIGHT) >= 10 and len(WRONG) >= 5
    names = {i.name for i in RIGHT}
    assert {"sigmoid_derivative", "cross_entropy_gradient", "quadratic_form_gradient",
            "trace_linear_gradient", "logdet_gradient"} <= names
    ce = next(i for i in RIGHT if i.name == "cross_entropy_gradient")
    assert ce.variable("t").domain == Label("k") and ce.variable("t").shape == ("B",)
    assert ce.target == "L" and [d.name for d in ce.definitions] == ["p", "L"]
    logdet = next(i for i in RIGHT if i.name == "logdet_gradient")
    assert logdet.variable("X").domain == SPD_MATRIX and logdet.sizes == ({"n": 2}, {"n": 3})
    assert next(i for i in RIGHT if i.name == "det_gradient").variable("X").domain == INVERTIBLE
    dot = next(i for i in RIGHT if i.name == "dot_product_gradient")
    assert [c.wrt for c in dot.claims] == ["x", "w"]
    assert next(i for i in RIGHT if i.name == "cross_entropy_value").claims[0].wrt is None


@pytest.mark.parametrize("identity", RIGHT, ids=lambda i: i.name)
def test_every_example_identity_is_proved_or_consistent(identity) -> None:  # noqa: ANN001
    result = check(identity, samples=16)
    assert result.verdict in (PROVED, CONSISTENT), result.reason


@pytest.mark.parametrize("identity", WRONG, ids=lambda i: i.name)
def test_every_wrong_example_is_refuted(identity) -> None:  # noqa: ANN001
    result = check(identity, samples=16)
    assert result.verdict == REFUTED, (result.verdict, result.reason)


def test_a_claim_true_only_on_symmetric_matrices_is_proved_on_spd() -> None:
    (identity,) = loads_spec("""
[[identity]]
name = "logdet_symmetric"
variables = { X = { shape = "matrix(n, n)", domain = "spd" } }
sizes = [{ n = 2 }]
define = { L = "logdet(X)" }
wrt = "X"
claim = "inv(X)"
""")
    # X^{-1} for X^{-T}: the proof uses X[i, j] = X[j, i] (once only consistent)
    assert check(identity, samples=16).verdict == PROVED


# --- errors: one line, file:line:col, the identity, what is wrong and what is allowed ---------

def error(text: str, tmp_path: Path, name: str = "spec.derive.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert time.perf_counter() - start < 2.0
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:"), msg
    assert isinstance(info.value, ParseError)
    return msg.replace(str(path), "F")


GOOD = """\
[[identity]]
name = "ok"
variables = { x = "real" }
define = { s = "sigmoid(x)" }
wrt = "x"
claim = "s * (1 - s)"
"""


def test_malformed_toml(tmp_path: Path) -> None:
    msg = error('[[identity]]\nname = "a\nvariables = 1\n', tmp_path)
    assert msg.startswith("F:2:10: malformed TOML: Illegal character")
    msg = error('[[identity]]\nname = \n', tmp_path)
    assert msg.startswith("F:2:8: malformed TOML: Invalid value")


def test_duplicate_keys_are_located(tmp_path: Path) -> None:
    msg = error(GOOD + 'claim = "s"\n', tmp_path)
    assert msg.startswith("F:7:1: malformed TOML: Cannot overwrite a value")


def test_unknown_domain(tmp_path: Path) -> None:
    msg = error(GOOD.replace('{ x = "real" }', '{ x = "positve" }'), tmp_path)
    assert msg == ("F:3:15: identity 'ok': variable 'x' has an unknown domain 'positve'; did you mean "
                   "'positive'? domains: real, positive, unit_interval, simplex, one_hot, binary, "
                   "spd, symmetric, invertible, label(k)")


def test_unknown_function_in_a_claim(tmp_path: Path) -> None:
    msg = error(GOOD.replace('"s * (1 - s)"', '"s * (1 - sigmod(s))"'), tmp_path)
    assert msg == ("F:6:19: identity 'ok': claim d/dx: unknown function 'sigmod'; "
                   "did you mean 'sigmoid' or 'log_sigmoid'?")


def test_unknown_name_in_a_definition(tmp_path: Path) -> None:
    msg = error(GOOD.replace('"sigmoid(x)"', '"sigmoid(y)"'), tmp_path)
    assert msg == ("F:4:25: identity 'ok': definition 's': unknown name 'y'; declared names: x")


def test_a_definition_may_not_use_later_names(tmp_path: Path) -> None:
    msg = error(GOOD.replace('{ s = "sigmoid(x)" }', '{ s = "t", t = "x" }'), tmp_path)
    assert msg.startswith("F:4:17: identity 'ok': definition 's': unknown name 't'")


def test_bad_shape(tmp_path: Path) -> None:
    msg = error(GOOD.replace('{ x = "real" }', '{ x = { shape = "vectr(n)" } }'), tmp_path)
    assert msg == ("F:3:15: identity 'ok': variable 'x' has a bad shape 'vectr(n)'; shapes: scalar, "
                   "vector(n), matrix(n, m) (size names or integers from 1 to 64)")


def test_shape_errors_surface_when_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.derive.toml"
    path.write_text(GOOD.replace('"s * (1 - s)"', '"s @ s"'))
    (identity,) = load_spec(path)
    with pytest.raises(SpecError, match=r"s.derive.toml:6:10: identity 'ok': claim d/dx: '@' needs "
                                        r"vectors or matrices, but the left operand is a scalar"):
        check(identity, samples=4)


@pytest.mark.parametrize(("edit", "pinned"), [
    (('name = "ok"', 'name = "o k"'), "F:2:1: identity 'o k': name 'o k' is not valid"),
    (('name = "ok"\n', ''), "F:1:1: identity #1: has no name"),
    (('wrt = "x"', 'wrt = "q"'), "F:5:1: identity 'ok': wrt 'q' is not a variable; variables: x"),
    (('wrt = "x"', 'wrtt = "x"'), "F:5:1: identity 'ok': unknown key 'wrtt'; did you mean 'wrt'?"),
    (('claim = "s * (1 - s)"', 'claim = 3'), "F:6:1: identity 'ok': claim d/dx: a formula must be a string"),
    (('{ x = "real" }', '{ x = { shape = "vector(n)" } }'),
     "F:3:1: identity 'ok': the shapes use n but no sizes are given"),
    (('variables = { x = "real" }', 'variables = { x = { shape = "vector(n)" } }\nsizes = [{ n = 99 }]'),
     "F:4:12: identity 'ok': size n = 99 is not an integer from 1 to 64"),
    (('variables = { x = "real" }', 'variables = { x = { shape = "vector(n)" } }\nsizes = [{ m = 3 }]'),
     "F:4:12: identity 'ok': size 'm' is not used by any shape"),
    (('{ x = "real" }', '{ x = { shape = "vector(n)", domain = "spd" } }'),
     "F:3:15: identity 'ok': variable 'x': domain spd needs a square matrix shape"),
    (('{ x = "real" }', '{ x = "real", t = "label(k)" }\nsizes = [{ k = 3 }]'), None),
    (('wrt = "x"', 'wrt = "t"\n#'), None),
])
def test_identity_errors_are_located(tmp_path: Path, edit: tuple[str, str], pinned: str | None) -> None:
    text = GOOD.replace(*edit)
    if pinned is None:  # the label case: a valid identity, or differentiating a label
        if 'wrt = "t"' in text:
            text = text.replace('{ x = "real" }', '{ x = "real", t = "label(k)" }\nsizes = [{ k = 3 }]')
            assert "cannot differentiate with respect to 't'" in error(text, tmp_path)
        else:
            (identity,) = loads_spec(text)
            assert identity.sizes == ({"k": 3},)
        return
    assert error(text, tmp_path).startswith(pinned), error(text, tmp_path)


def test_duplicate_identity_names(tmp_path: Path) -> None:
    msg = error(GOOD + "\n" + GOOD, tmp_path)
    assert msg.startswith("F:9:1: identity 'ok': the name is also used by identity #1")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert error("title = 1\n" + GOOD, tmp_path).startswith("F:1:1: unknown top-level key 'title'")
    assert error("", tmp_path).startswith("F:1:1: no [[identity]] tables")


def test_huge_strings_are_refused(tmp_path: Path) -> None:
    long = "x + " * 1000 + "x"
    msg = error(GOOD.replace('"s * (1 - s)"', f'"{long}"'), tmp_path)
    assert msg.startswith("F:6:10: identity 'ok': claim d/dx: formula is 4001 characters long")
    msg = error(GOOD + f'description = "{"a" * 2_000_000}"\n', tmp_path)
    assert "at most 1000000 bytes" in msg


def test_deeply_nested_toml(tmp_path: Path) -> None:
    msg = error("a = " + "[" * 100_000 + "]" * 100_000 + "\n", tmp_path)
    assert msg.startswith("F:1:1: TOML nested too deeply")
    msg = error("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n", tmp_path)
    assert msg.startswith("F:1:1: TOML nested too deeply")
    msg = error(GOOD.replace('claim = "s * (1 - s)"', "[identity.claim.a.b.c]\nd = 1"), tmp_path)
    assert "identity 'ok'" in msg and "a formula must be a string, got dict" in msg


def test_too_many_identities(tmp_path: Path) -> None:
    text = "\n".join(GOOD.replace('"ok"', f'"ok{i}"') for i in range(MAX_IDENTITIES + 1))
    assert f"at most {MAX_IDENTITIES}" in error(text, tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "b.derive.toml"
    path.write_bytes(b'[[identity]]\nname = "\xff"\n')
    with pytest.raises(ParseError, match=r"b.derive.toml:2:9: the file is not UTF-8"):
        load_spec(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "nope.derive.toml")
