"""Hostile command lines and user modules through `derive`: usage errors are one line with exit
code 2; a user's module that exits, or a check that kills its worker, never ends in exit code 0;
the installed command refuses payload files without running them (checked in a subprocess,
under a time limit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import GOOD, QUICK, cli, identity, q, spec_file

DERIVE = Path(sys.executable).with_name("derive")

USAGE = [
    (["check", "--samples", "1e100000000", "sigmoid_derivative"], "argument --samples: expected a positive integer"),
    (["check", "--samples", "0", "sigmoid_derivative"], "argument --samples: expected a positive integer"),
    (["check", "--seed", "-1", "sigmoid_derivative"], "argument --seed: expected an integer from 0"),
    (["check", "--seed", "9" * 400, "sigmoid_derivative"], "argument --seed: expected an integer from 0"),
    (["check", "--timeout", "nan", "sigmoid_derivative"], "argument --timeout: expected seconds between 0"),
    (["check", "--timeout", "inf", "sigmoid_derivative"], "argument --timeout: expected seconds between 0"),
    (["check", "--backend", "__import__('os')", "sigmoid_derivative"], "argument --backend: invalid choice"),
    (["check", "__import__('os').system('touch pwned')"], "unknown identity"),
    (["check", "sigmoid_derivatve"], "did you mean sigmoid_derivative"),
    (["check", "missing.derive.toml"], "missing.derive.toml: cannot read the file (No such file or directory)"),
    (["check", "../../../../../etc/passwd.toml"], "cannot read the file"),
    (["check", "no\x00where.derive.toml"], "cannot read the file"),
    (["check", "missing.py"], "missing.py: no such file"),
]


@pytest.mark.parametrize("argv, words", USAGE, ids=[" ".join(a)[:40] for a, _ in USAGE])
def test_hostile_command_lines_are_one_line_usage_errors(argv: list[str], words: str, tmp_path: Path) -> None:
    code, out, err = cli(*argv)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "pwned").exists()


def test_a_directory_named_like_a_spec_file(tmp_path: Path) -> None:
    (tmp_path / "dir.derive.toml").mkdir()
    code, _, err = cli("check", str(tmp_path / "dir.derive.toml"))
    assert code == 2
    assert err.startswith(f"derive: error: {tmp_path / 'dir.derive.toml'}: cannot read the file"), err


@pytest.mark.parametrize("body, words", [
    ("raise SystemExit(0)\n", "importing it raised SystemExit: 0"),
    ("import sys\nsys.exit()\n", "importing it raised SystemExit"),
    ("raise ValueError('a\\nb')\n", "importing it raised ValueError: a b"),
    ("x = (\n", "importing it raised SyntaxError"),
    ("IDENTITIES = [1, 'x']\n", "defines no Identity"),
], ids=["exit-0", "sys-exit", "multi-line-error", "syntax-error", "no-identity"])
def test_a_module_that_exits_or_fails_at_import_is_a_usage_error(tmp_path: Path, body: str, words: str) -> None:
    module = tmp_path / "mine.py"
    module.write_text(body)
    code, out, err = cli("check", str(module), *QUICK)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and words in err, err


CRASHING = """
import os, sys
from derive import Claim, Definition, Identity, Reference, Variable

def exits(x):
    sys.exit(0)

def kills(v):
    os._exit(0)

IDENTITIES = [
    Identity("reference_exits", variables=(Variable("x", ()),), definitions=(Definition("f", lambda v: v.x**2),),
             claims=(Claim(lambda v: 2 * v.x, wrt="x"),), references=(Reference("torch", exits),)),
    Identity("claim_kills", variables=(Variable("x", ()),), definitions=(Definition("f", lambda v: v.x**2),),
             claims=(Claim(kills, wrt="x"),)),
    Identity("fine", variables=(Variable("x", ()),), definitions=(Definition("f", lambda v: v.x**2),),
             claims=(Claim(lambda v: 2 * v.x, wrt="x"),)),
]
"""


def test_identities_that_exit_or_kill_their_worker_never_pass(tmp_path: Path) -> None:
    module = tmp_path / "crashing.py"
    module.write_text(CRASHING)
    code, out, err = cli("check", str(module), "--no-progress", "--samples", "8", "--json")
    assert code == 3, (out, err)
    verdicts = {r["name"]: r["verdict"] for r in json.loads(out)["results"]}
    assert verdicts == {"reference_exits": "inconclusive", "claim_kills": "inconclusive", "fine": "proved"}


def _derive(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DERIVE), *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.limit(90)
def test_installed_command_refuses_payloads_without_running_them(tmp_path: Path) -> None:
    payloads = [
        identity(name='"a"', claim=q("__import__('os').system('touch pwned')")),
        identity(name='"b"', define='{ f = "().__class__.__bases__[0].__subclasses__()" }'),
        identity(name='"c"', claim=q("(" * 10_000 + "x" + ")" * 10_000)),
    ]
    for i, text in enumerate(payloads):
        path = spec_file(tmp_path, text, stem=f"p{i}")
        done = _derive("check", path.name, "--no-progress", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"derive: error: {path.name}:") and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0.derive.toml", "p1.derive.toml", "p2.derive.toml"]


@pytest.mark.limit(60)
def test_installed_command_json_of_a_refuted_file_is_valid(tmp_path: Path) -> None:
    path = spec_file(tmp_path, GOOD + identity(name='"off"', claim=q("2.001*x")))
    done = _derive("check", path.name, "--json", "--no-progress", "--backend", "numpy", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [(r["name"], r["verdict"]) for r in results] == [("t", "proved"), ("off", "refuted")]
    assert results[1]["counterexample"]["rerun"] == f"derive check {path.name} --seed 0"
