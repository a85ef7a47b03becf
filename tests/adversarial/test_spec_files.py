"""Hostile and pathological spec files through `derive check FILE`: each is refused with exit
code 2 and one located line saying what was wrong, or judged with the exact verdict; nothing
in a file is ever executed (payloads that would create a marker file leave none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import GOOD, check_spec, identity, q

MARKER = "pwned"
TOUCH = f"__import__('os').system('touch {MARKER}')"

# (id, spec text, exact 'line:col', key words of the one-line message)
REFUSED: list[tuple[str, str | bytes, str, tuple[str, ...]]] = [
    # code-execution payloads in formulas
    ("import-system", identity(claim=q(TOUCH)), "6:10:", ("only functions called by name",)),
    ("exec-call", identity(claim=q(f"exec(\"open('{MARKER}', 'w')\")")), "6:1:", ("unknown function 'exec'",)),
    ("eval-call", identity(claim=q(f'eval("{TOUCH}")')), "6:1:", ("unknown function 'eval'",)),
    ("subclasses-chain", identity(claim=q("().__class__.__bases__[0].__subclasses__()")), "6:10:",
     ("only functions called by name",)),
    ("lambda", identity(claim=q("(lambda: 2*x)()")), "6:10:", ("only functions called by name",)),
    ("lambda-value", identity(claim=q("lambda x: 2*x")), "6:10:", ("a lambda is not allowed",)),
    ("globals-chain", identity(claim=q("x.diff.__globals__['__builtins__']")), "6:10:", ("indexing",)),
    ("dunder-attribute", identity(claim=q("x.__class__")), "6:11:",
     ("attribute '.__class__' is not allowed", "the only attribute is '.T'")),
    ("Symbol-class", identity(claim=q("Symbol('x').__class__")), "6:10:", ("unknown function 'Symbol'",)),
    ("getattr", identity(claim=q("getattr(x, 'diff')")), "6:10:", ("unknown function 'getattr'",)),
    ("dunder-name", identity(claim=q("__builtins__")), "6:10:", ("unknown name '__builtins__'",)),
    ("underscore-name", identity(claim=q("_")), "6:10:", ("unknown name '_'",)),
    ("f-string", identity(claim=q("f'{x}'")), "6:10:", ("an f-string is not allowed",)),
    ("walrus", identity(claim=q("(y := x)")), "6:11:", ("walrus",)),
    ("dunder-variable", identity(variables='{ __class__ = "real" }'), "3:15:",
     ("variable name '__class__' is not valid",)),
    ("definition-named-exec", identity(define='{ exec = "__import__(\'os\')" }'), "4:20:",
     ("definition 'exec'", "unknown function '__import__'")),
    # TOML tricks
    ("duplicate-key", GOOD.replace('wrt = "x"', 'wrt = "x"\nwrt = "x"'), "6:1:",
     ("malformed TOML", "Cannot overwrite a value", "keys may appear once")),
    ("duplicate-identity-name", GOOD + GOOD, "8:1:", ("identity 't'", "also used by identity #1")),
    ("table-declared-twice", '[identity]\nname = "a"\n[identity]\nname = "b"\n', "3:10:",
     ("malformed TOML", "Cannot declare",)),
    ("huge-string", identity(claim=q("x" * 900_000)), "6:10:", ("900000 characters long", "at most 2000")),
    ("huge-file", GOOD + "#" * 1_100_000, "1:1:", ("spec files may have at most 1000000 bytes",)),
    ("rtl-override-in-formula", identity(claim=q("2*x \u202e+ 1")), "6:14:",
     ("RIGHT-TO-LEFT OVERRIDE", "formulas are written in ASCII")),
    ("confusable-in-formula", identity(claim=q("2*\u0445")), "6:12:", ("CYRILLIC SMALL LETTER HA",)),
    ("confusable-key", identity(variables='{ \u0445 = "real" }'), "3:15:",
     ("malformed TOML", "Invalid initial character for a key part")),
    ("nul-raw", GOOD.replace('"2*x"', '"2*x\x00"'), "6:13:", ("malformed TOML", "Illegal character")),
    ("nul-escaped", identity(claim='"2*x\\u0000"'), "6:4:", ("character '\\x00' (U+0000) is not allowed",)),
    ("deeply-nested-tables", "a = " + "{ b = " * 5000 + "1" + " }" * 5000 + "\n", "1:1:",
     ("TOML nested too deeply",)),
    ("deeply-nested-arrays", "a = " + "[" * 100_000 + "]" * 100_000 + "\n", "1:1:", ("TOML nested too deeply",)),
    ("not-utf8", GOOD.encode() + b"\xff\xfe", "7:1:", ("not UTF-8 text",)),
    ("utf16", GOOD.encode("utf-16"), "1:1:", ("not UTF-8 text",)),
    ("empty-file", "", "1:1:", ("no [[identity]] tables",)),
    ("toml-float-1e100000000-as-size", identity(variables='{ x = { shape = "vector(n)" } }',
                                                sizes="[{ n = 1e100000000 }]", define='{ f = "sum(x**2)" }'),
     "4:12:", ("size n = inf is not an integer from 1 to 64",)),
    ("toml-float-as-formula", identity(claim="1e100000000"), "6:1:", ("a formula must be a string, got float",)),
    ("boolean-formula", identity(claim="true"), "6:1:", ("a formula must be a string, got bool",)),
    ("huge-integer-size", identity(variables='{ x = { shape = "vector(n)" } }', sizes="[{ n = 99999999999999999999 }]",
                                   define='{ f = "sum(x**2)" }'), "4:12:", ("is not an integer from 1 to 64",)),
    # huge numbers and expressions in formulas
    ("literal-1e100000000", identity(claim=q("1e100000000*x")), "6:10:", ("too large an exponent",)),
    ("tower-9**9**9", identity(claim=q("9**9**9*x")), "6:13:", ("exponent 387420489 is too large",)),
    ("computed-huge-constant", identity(claim=q("((2**64)**64)**64*x")), "6:11:",
     ("this computes a number with up to",)),
    ("parens-10k-deep", identity(claim=q("(" * 10_000 + "2*x" + ")" * 10_000)), "6:10:",
     ("20003 characters long",)),
    ("parens-900-deep", identity(claim=q("(" * 900 + "2*x" + ")" * 900)), "6:",
     ("cannot read the formula (too many nested parentheses)",)),
    ("calls-120-deep", identity(claim=q("exp(" * 120 + "x" + ")" * 120)), "6:",
     ("nested more than 100 levels deep",)),
    ("sum-of-a-million-terms", identity(claim=q("+".join(["x"] * 1_000_000))), "1:1:",
     ("spec files may have at most 1000000 bytes",)),
    ("sum-of-600-terms", identity(claim=q("+".join(["x"] * 600))), "6:",
     ("nested more than 100 levels deep",)),
    ("det-of-64x64", identity(variables='{ X = { shape = "matrix(n, n)" } }', sizes="[{ n = 64 }]",
                              define='{ f = "det(X)" }', wrt='"X"', claim='"X"'), "5:17:",
     ("writes out an expression of about", "name parts of the formula as intermediates")),
    # SymPy's constant names are not silently constants
    ("undeclared-E", identity(claim=q("2*x*E")), "6:14:", ("unknown name 'E'",)),
    ("undeclared-gamma", identity(claim=q("gamma")), "6:10:", ("unknown name 'gamma'",)),
    ("undeclared-zoo", identity(claim=q("zoo*x")), "6:10:", ("unknown name 'zoo'",)),
    ("undeclared-nan", identity(claim=q("nan")), "6:10:", ("unknown name 'nan'",)),
    # a formula that builds 0/0 or 1/0 from declared names: found when it is built, located
    ("zero-over-zero", identity(define='{ f = "(x - x)/(x - x)" }', claim='"0"'), "4:",
     ("this evaluates to nan", "divides by zero")),
    ("one-over-zero", identity(claim=q("x/(x - x)")), "6:", ("this evaluates to zoo",)),
    ("log-of-zero", identity(claim=q("log(x - x)")), "6:", ("this evaluates to zoo", "log(0)")),
]


@pytest.mark.parametrize("text, pos, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_one_located_line(tmp_path: Path, text: str | bytes, pos: str, words: tuple[str, ...]) -> None:
    code, out, err = check_spec(tmp_path, text)
    assert code == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"derive: error: {tmp_path / 'hostile.derive.toml'}:{pos}"), err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("text, shown", [
    (identity(name=q("sq\u202egnp.exe")), "name 'sq\\u202egnp.exe' is not valid"),
    (GOOD + '"x\u202e" = 1\n', "unknown key 'x\\u202e'"),
    (identity(variables='{ x = { shape = "scalar", "d\u202e" = 1 } }'), "unknown key 'd\\u202e'"),
], ids=["name", "key", "variable-key"])
def test_a_right_to_left_override_is_never_echoed_raw(tmp_path: Path, text: str, shown: str) -> None:
    """Control characters in names must not reach the terminal unescaped (they reorder the line)."""
    code, _, err = check_spec(tmp_path, text)
    assert code == 2
    assert "\u202e" not in err
    assert shown in err, err


# SymPy-constant and Python-builtin names declared as variables are plain variables
NAMES = ["E", "I", "pi", "oo", "zoo", "nan", "S", "N", "Q", "exec", "eval", "Symbol", "sum", "exp", "x_"]


@pytest.mark.parametrize("name", NAMES)
def test_declared_constant_or_builtin_names_are_plain_variables(tmp_path: Path, name: str) -> None:
    right = identity(name='"right"', variables=f'{{ {name} = "real" }}', define=f'{{ f = "{name}**3" }}',
                     wrt=q(name), claim=q(f"3*{name}**2"))
    wrong = identity(name='"wrong"', variables=f'{{ {name} = "real" }}', define=f'{{ f = "{name}**3" }}',
                     wrt=q(name), claim=q(f"3*{name}**2 + 2.718281828459045"))
    code, out, err = check_spec(tmp_path, right + wrong)
    assert code == 1, err
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:4]}
    assert rows == {"right": "proved", "wrong": "refuted"}


VERDICTS = [
    # float formulas: decimals are exact rationals, x**0.5 is sqrt
    ("sqrt-as-power", identity(variables='{ x = "positive" }', define='{ f = "x**0.5" }', claim='"0.5*x**-0.5"'),
     0, "proved"),
    ("sqrt-off-by-1.0005", identity(variables='{ x = "positive" }', define='{ f = "x**0.5" }',
                                    claim='"0.5005*x**-0.5"'), 1, "refuted"),
    ("off-by-1.0005", identity(define='{ f = "sin(x)*exp(x)" }', claim='"1.0005*(cos(x) + sin(x))*exp(x)"'),
     1, "refuted"),
    # a constant claim broadcasts over a vector
    ("constant-broadcasts", identity(variables='{ x = { shape = "vector(n)" } }', sizes="[{ n = 3 }]",
                                     define='{ f = "sum(3*x)" }', claim='"3"'), 0, "proved"),
    ("constant-broadcasts-wrong", identity(variables='{ x = { shape = "vector(n)" } }', sizes="[{ n = 3 }]",
                                           define='{ f = "sum(3*x)" }', claim='"3.001"'), 1, "refuted"),
    # kinks and domain edges: proved away from the kink; a wrong one-sided claim refuted
    ("relu-kink", identity(define='{ f = "relu(x)" }', claim='"step(x)"'), 0, "proved"),
    ("abs-kink-wrong", identity(define='{ f = "abs(x)" }', claim='"step(x)"'), 1, "refuted"),
    ("bce-edges", identity(variables='{ p = "unit_interval", y = "binary" }',
                           define='{ f = "-(y*log(p) + (1 - y)*log(1 - p))" }', wrt='"p"',
                           claim='"-(y/p - (1 - y)/(1 - p))"'), 0, "proved"),
    # overflow: exp(800) is not finite in float64, so never a pass
    ("exp-800", identity(define='{ f = "exp(800 + x)" }', claim='"exp(800 + x)"'), 3, "inconclusive"),
    # the log-det family: a wrong zero gradient is refuted, never proved
    ("logdet-zero-claim", identity(variables='{ X = { shape = "matrix(n, n)", domain = "spd" } }',
                                   sizes="[{ n = 2 }]", define='{ f = "logdet(X)" }', wrt='"X"', claim='"0*X"'),
     1, "refuted"),
    ("log-trace-zero-claim", identity(variables='{ X = { shape = "matrix(n, n)", domain = "spd" } }',
                                      sizes="[{ n = 2 }]", define='{ f = "log(trace(X))" }', wrt='"X"',
                                      claim='"0*X"'), 1, "refuted"),
]


@pytest.mark.parametrize("text, code, verdict", [c[1:] for c in VERDICTS], ids=[c[0] for c in VERDICTS])
def test_pathological_identities_get_the_exact_verdict(tmp_path: Path, text: str, code: int, verdict: str) -> None:
    got, out, err = check_spec(tmp_path, text)
    assert got == code, (out, err)
    assert out.splitlines()[2].split()[:2] == ["t", verdict], out


def test_logsumexp_of_large_logits_is_evaluated_stably(tmp_path: Path) -> None:
    text = identity(variables='{ z = { shape = "vector(n)" } }', sizes="[{ n = 3 }]",
                    define='{ f = "logsumexp(z + 1000)" }', wrt='"z"', claim='"softmax(z + 1000)"')
    code, out, err = check_spec(tmp_path, text)
    assert (code, out.splitlines()[2].split()[:2]) == (0, ["t", "proved"]), (out, err)
