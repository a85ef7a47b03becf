"""Fingerprints for --resume: the same in every process, changed by any edit that matters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from derive import catalog
from derive.run.check import fingerprint
from derive.run.loader import resolve

MODULE = '''
import sympy as sp
from derive import Claim, Definition, Identity, Variable

def _square(v):
    return v.x ** 2

def _slope(v):
    return [2 * v.x for _ in range(1)][0]

IDENTITIES = [Identity("square", (Variable("x"),), (Definition("f", lambda v: _square(v)),),
                       (Claim(lambda v: _slope(v), wrt="x"),))]
'''


def test_every_catalog_fingerprint_is_the_same_in_another_process() -> None:
    code = ("from derive import catalog; from derive.run.fingerprint import fingerprint; "
            "print(' '.join(fingerprint(i, seed=0) for i in catalog.CATALOG.values()))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    here = [fingerprint(i, seed=0) for i in catalog.CATALOG.values()]
    assert other.stdout.split() == here
    assert len(set(here)) == len(here)  # and no two identities share one


def test_editing_a_helper_the_formula_calls_changes_the_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(MODULE)
    (before,) = resolve(str(path))
    path.write_text(MODULE.replace("return [2 * v.x for _ in range(1)][0]",
                                   "return [3 * v.x for _ in range(1)][0]"))
    (after,) = resolve(str(path))
    assert fingerprint(before, seed=0) != fingerprint(after, seed=0)
    path.write_text(MODULE)
    (again,) = resolve(str(path))
    assert fingerprint(before, seed=0) == fingerprint(again, seed=0)


def test_options_enter_the_fingerprint() -> None:
    identity = catalog.get("softmax_jacobian")
    prints = {fingerprint(identity, seed=0), fingerprint(identity, seed=1),
              fingerprint(identity, seed=0, samples=8), fingerprint(identity, seed=0, backend="numpy")}
    assert len(prints) == 4


def test_a_fingerprint_does_not_change_once_its_identity_was_checked() -> None:
    # what a derivation computes and keeps (caches) must stay out of what the digest reads
    from derive.symbolic.explain import explain

    identity = catalog.get("cross_entropy_hessian")
    before = fingerprint(identity, seed=0)
    explain(identity)  # in this process: the gradient node is derived for every n
    assert fingerprint(identity, seed=0) == before
