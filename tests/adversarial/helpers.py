"""Shared pieces of the adversarial tests: running the CLI in-process, writing spec files,
and user domains that pin inputs to a chosen point (a kink, an overflow, a domain edge)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from derive.present.cli import main
from derive.model.domains import Domain

QUICK = ("--no-progress", "--backend", "numpy", "--samples", "8")
"""Options that keep a CLI check fast: the verdicts asserted here do not depend on them."""


def cli(*argv: str) -> tuple[int, str, str]:
    """`derive ARGV` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def q(text: str) -> str:
    """`text` as a TOML basic string (JSON's escapes are TOML's); raw characters kept."""
    return json.dumps(text, ensure_ascii=False)


def identity(*, name: str = '"t"', variables: str = '{ x = "real" }', define: str = '{ f = "x**2" }',
             wrt: str = '"x"', claim: str = '"2*x"', sizes: str | None = None) -> str:
    """The TOML text of one [[identity]] table; every argument is a TOML value, inserted as written."""
    lines = ["[[identity]]", f"name = {name}", f"variables = {variables}"]
    if sizes is not None:
        lines.append(f"sizes = {sizes}")
    lines += [f"define = {define}", f"wrt = {wrt}", f"claim = {claim}"]
    return "\n".join(lines) + "\n"


GOOD = identity()


def spec_file(tmp_path: Path, text: str | bytes, stem: str = "hostile") -> Path:
    path = tmp_path / f"{stem}.derive.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def check_spec(tmp_path: Path, text: str | bytes, *extra: str) -> tuple[int, str, str]:
    """Write `text` as a spec file and run `derive check` on it."""
    return cli("check", str(spec_file(tmp_path, text)), *QUICK, *extra)


@dataclass(frozen=True, kw_only=True)
class At(Domain):
    """A user domain whose every sample is the same value: pins the check to one point."""

    name: str = "at"
    value: float = 0.0

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        return np.full(shape, self.value)


@dataclass(frozen=True, kw_only=True)
class Cast(Domain):
    """A user domain that samples N(0, 1) values in another dtype (integers, float32)."""

    name: str = "cast"
    dtype: str = "float32"

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...],
               sizes: dict[str, int]) -> np.ndarray:
        values = rng.normal(0.0, 2.0, size=shape)
        return (np.round(values) if self.dtype.startswith("int") else values).astype(self.dtype)
