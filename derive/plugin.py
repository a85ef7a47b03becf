"""pytest plugin: every identity in a `*.derive.toml` file becomes a test item.

Registered through the `pytest11` entry point; it imports nothing heavy until a spec file is
collected. Options: --derive-samples, --derive-seed, --derive-backend, and
--derive-stability=float32 (fail identities with a formula that loses more than half its
bits in those dtypes, so CI can demand formulas that are safe in float32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

SUFFIX = ".derive.toml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("derive", "checking identities in *.derive.toml files")
    group.addoption("--derive-samples", type=int, default=32,
                    help="random inputs per size for each identity (default: 32)")
    group.addoption("--derive-seed", type=int, default=0, help="random seed (default: 0)")
    group.addoption("--derive-backend", default="all", choices=("numpy", "torch", "all"),
                    help="backends that evaluate the claims (default: all)")
    group.addoption("--derive-stability", default=None, metavar="DTYPES",
                    help="also fail an identity when one of its formulas loses more than half its "
                         "bits in one of these dtypes, e.g. float32 or float32,bfloat16 (default: off)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(SUFFIX):
        return SpecFile.from_parent(parent, path=file_path)
    return None


class IdentityFailed(Exception):
    """Raised by an item whose identity is refuted or inconclusive."""

    def __init__(self, result: Any) -> None:
        super().__init__(result.name)
        self.derive_result = result


class UnstableFormula(IdentityFailed):
    """Raised by an item whose identity holds but has a formula that loses more than half its
    bits in a dtype given to --derive-stability."""

    derive_unstable = True


def _unstable_message(result: Any, path: Path) -> str:
    lines = [f"{result.name}: {result.verdict}, but numerically unsafe:"]
    for e in result.stability:
        lines.append(f"  {e.formula} [{e.dtype}]: loses {e.bits_lost_worst:g} bits at worst "
                     f"(mean {e.bits_lost_mean:g}); {e.region}")
        if e.cause:
            lines.append(f"    {e.cause}{' in ' + e.subexpression if e.subexpression else ''}")
        if e.rewrite is not None:
            lines.append(f"    rewrite, proved equal: {e.rewrite.formula} "
                         f"(loses {e.rewrite.bits_lost_worst:g} bits at worst)")
    lines.append(f"  details: derive stability {path}")
    return "\n".join(lines)


class SpecFile(pytest.File):
    """A spec file: one item per identity."""

    def collect(self) -> Iterator[pytest.Item]:
        from .errors import DeriveError
        from .run.loader import resolve

        try:
            identities = resolve(str(self.path))
        except DeriveError as exc:
            raise self.CollectError(str(exc)) from None
        for identity in identities:
            yield IdentityItem.from_parent(self, name=identity.name, identity=identity)


class IdentityItem(pytest.Item):
    """One identity, checked like `derive check`: passes when proved or consistent."""

    def __init__(self, *, identity: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.identity = identity

    def runtest(self) -> None:
        from .run.check import check

        config = self.config
        stability = config.getoption("derive_stability")
        result = check(self.identity, samples=config.getoption("derive_samples"),
                       seed=config.getoption("derive_seed"), backend=config.getoption("derive_backend"),
                       stability=stability)
        self.user_properties.append(("verdict", result.verdict))
        if not result.ok:
            raise IdentityFailed(result)
        if result.stability:
            raise UnstableFormula(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        result = getattr(excinfo.value, "derive_result", None)  # duck-typed: survives re-imports
        if result is not None and getattr(excinfo.value, "derive_unstable", False):
            return _unstable_message(result, self.path)
        if result is not None:
            from .testing import failure_message

            return failure_message(result)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"identity {self.name}"
