"""examples/pytorch_rules.derive.toml: torch's closed-form backward rules, each proved or
consistent; examples/pytorch_rules_wrong.derive.toml: a wrong twin of each, each refuted.

The whole files take about 25 s each on two cores (benchmarks/pytorch_rules.py runs them and
prints the counts the README quotes); here every 12th rule and its twin are checked, plus the
rules whose functions have kinks, jumps or restricted domains.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from derive import check_all
from derive.language.specfile import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RIGHT = EXAMPLES / "pytorch_rules.derive.toml"
WRONG = EXAMPLES / "pytorch_rules_wrong.derive.toml"
TRICKY = ("acos", "acosh", "floor", "round_decimals", "fmod_Tensor", "remainder_Tensor", "clamp_Tensor",
          "where_self", "hardswish", "erfinv", "polygamma", "cholesky", "linalg_slogdet", "max")


def _yaml_entries() -> list[str]:
    return re.findall(r"^# derivatives.yaml: name:\s+(\S+?)\(", RIGHT.read_text(), flags=re.M)


def test_the_files_hold_at_least_150_rules_in_twins() -> None:
    right, wrong = load_spec(RIGHT), load_spec(WRONG)
    assert len(right) >= 150
    assert [i.name for i in right] == [i.name for i in wrong]
    assert len(_yaml_entries()) == len(right)  # a comment names each rule's yaml entry
    assert len(set(_yaml_entries())) >= 150
    for r, w in zip(right, wrong):  # the twin changes one claim and nothing else
        assert [d.text for d in r.definitions] == [d.text for d in w.definitions], r.name
        changed = [a.wrt for a, b in zip(r.claims, w.claims) if a.text != b.text]
        assert len(changed) == 1, (r.name, changed)


def _subset(path: Path) -> list:
    identities = load_spec(path)
    return [i for k, i in enumerate(identities) if k % 12 == 0 or i.name in TRICKY]


@pytest.mark.parametrize("path, allowed", [(RIGHT, {"proved", "consistent"}), (WRONG, {"refuted"})],
                         ids=["right", "wrong"])
def test_a_subset_gets_its_verdicts(path: Path, allowed: set[str]) -> None:
    identities = _subset(path)
    assert len(identities) >= 25
    report = check_all(identities, jobs=2, stability=None)  # the verdicts do not depend on it
    bad = {r.name: (r.verdict, r.reason) for r in report.results if r.verdict not in allowed}
    assert not bad, bad
