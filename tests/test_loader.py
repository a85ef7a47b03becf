"""Identities from a user's Python module, on the command line and through the API."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from derive import SpecError
from derive.present.cli import main
from derive.run.loader import load_module

MODULE = '''
from derive import Claim, Definition, Identity, Variable, ops

softplus = Identity(
    "softplus_derivative",
    variables=(Variable("x"),),
    definitions=(Definition("f", lambda v: ops.softplus(v.x)),),
    claims=(Claim(lambda v: ops.sigmoid(v.x), wrt="x"),),
)
IDENTITIES = [
    Identity("softplus_wrong", variables=(Variable("x"),),
             definitions=(Definition("f", lambda v: ops.softplus(v.x)),),
             claims=(Claim(lambda v: ops.sigmoid(-v.x), wrt="x"),)),
]
'''


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out=out, err=err), out.getvalue(), err.getvalue()


def test_module_identities_are_found_in_order(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(MODULE)
    identities = load_module(path)
    assert [i.name for i in identities] == ["softplus_derivative", "softplus_wrong"]
    assert all(i.origin == str(path) for i in identities)


def test_cli_checks_a_module_and_reruns_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(MODULE)
    code, out, _ = run("check", str(path), "--json", "--samples", "8")
    assert code == 1
    results = {r["name"]: r for r in json.loads(out)["results"]}
    assert results["softplus_derivative"]["verdict"] == "proved"
    assert results["softplus_wrong"]["verdict"] == "refuted"
    assert results["softplus_wrong"]["counterexample"]["rerun"] == f"derive check {path} --seed 0"


@pytest.mark.parametrize("source, message", [
    ("raise RuntimeError('boom')", "importing it raised RuntimeError: boom"),
    ("x = 1", "defines no Identity"),
    ("from derive import Identity\nI = Identity('bad name', (), (), ())", "identity name 'bad name' is not valid"),
])
def test_module_problems_are_one_line_errors(tmp_path: Path, source: str, message: str) -> None:
    path = tmp_path / "broken.py"
    path.write_text(source)
    with pytest.raises(SpecError, match=message):
        load_module(path)
    code, _, err = run("check", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err


def test_a_missing_module_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = run("check", str(tmp_path / "nope.py"))
    assert code == 2 and "no such file" in err
