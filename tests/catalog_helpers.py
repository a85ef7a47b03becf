"""Shared by the catalog-family tests: deliberately wrong twins, golden derivations."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from derive import Claim, Identity, catalog, check
from derive.symbolic.explain import explain
from derive.present.latex import render_tex
from derive.model.verdict import Result

GOLDEN = Path(__file__).parent / "golden"


def twin(base: Identity, wrt: str | None, formula: Callable[[Any], Any]) -> Identity:
    """`base` with its claims replaced by one (wrong) claim, under a name of its own."""
    return dataclasses.replace(base, name=f"{base.name}_wrong", claims=(Claim(formula, wrt=wrt),))


def check_twin(base: Identity, wrt: str | None, formula: Callable[[Any], Any]) -> Result:
    """Check the twin quickly: the numeric refutation does not wait for a proof that cannot
    succeed (its attempt ends at the short time limit)."""
    return check(twin(base, wrt, formula), samples=16, seed=3, timeout=1.5)


def assert_twin_refuted(name: str, wrong: dict[str, tuple[str | None, Callable[[Any], Any]]]) -> Result:
    """The catalog identity `name` with its claims replaced by wrong[name] = (wrt, formula) is
    refuted, with a counterexample beyond the tolerance."""
    result = check_twin(catalog.get(name), *wrong[name])
    assert result.verdict == "refuted", (result.verdict, result.reason)
    cx = result.counterexample
    assert cx is not None and cx["abs_error"] > cx["tolerance"]
    return result


def matches_golden(name: str) -> bool:
    """The catalog identity's derivation equals tests/golden/NAME.tex (DERIVE_UPDATE_GOLDEN=1
    rewrites it)."""
    text = render_tex(explain(catalog.get(name)))
    golden = GOLDEN / f"{name}.tex"
    if os.environ.get("DERIVE_UPDATE_GOLDEN"):
        golden.write_text(text)
    return text == golden.read_text()
