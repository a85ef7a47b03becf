"""User-code inputs: declared shapes, domains and sizes, drawn and jittered."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import SpecError
from ..model.domains import Domain
from ..model.verdict import (
    Symbolic,
)
from ..numeric.tolerance import EPS
from .arguments import declared, sizes_of

DEFAULT_SAMPLES = 64
COMPLEX_STEP = 1e-30
RICHARDSON_RTOL = 1e-9
"""Relative floor of the extrapolated central difference's tolerance (its measured error is added)."""
DIRECTIONS = 3
"""Random (cotangent, direction) vectors per sample in VJP checks: DIRECTIONS**2 comparisons."""
_ROUNDS = 10
_JITTER_ULPS = 4.0
_FD_STEP = EPS ** (1 / 3)
_MAX_SIZE = 1_000_000
_MAX_VOLUME = 2**24
"""Entries of all inputs over all samples at one size (each is evaluated several times)."""
_NO_PROOF = Symbolic("not applicable", 0.0, detail="user code: no formula to prove")


# --- declared inputs --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Input:
    name: str
    shape: tuple[str | int, ...]
    domain: Domain

    def resolve(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(int(sizes[a]) if isinstance(a, str) else int(a) for a in self.shape)

    @property
    def size_names(self) -> set[str]:
        names = {a for a in self.shape if isinstance(a, str)}
        classes = getattr(self.domain, "classes", None)
        return names | ({classes} if isinstance(classes, str) else set())


def _parse_inputs(inputs: Any) -> tuple[_Input, ...]:
    """Declared inputs (shapes, domains or their names; see derive.usercode.arguments.declared)."""
    return tuple(_Input(name, shape, domain) for name, shape, domain in declared(inputs))


def _parse_sizes(sizes: Any, ins: Sequence[_Input]) -> list[dict[str, int]]:
    return sizes_of([(i.name, i.shape, i.domain) for i in ins], sizes)


def _check_volume(ins: Sequence[_Input], sets: Sequence[dict[str, int]], samples: int) -> None:
    """Refuse inputs too large to sample before any array is allocated (a MemoryError or
    minutes of finite differences otherwise)."""
    for s in sets:
        entries = sum(math.prod(i.resolve(s)) for i in ins)
        if entries > _MAX_SIZE or entries * samples > _MAX_VOLUME:
            shapes = ", ".join(f"{i.name}{i.resolve(s)}" for i in ins)
            raise SpecError(f"inputs {shapes} have {entries} entries per sample ({entries * samples} for "
                            f"{samples} samples); at most {_MAX_SIZE} per sample and {_MAX_VOLUME} in all: "
                            "check smaller sizes (a gradient that is right at n=8 is rarely wrong only at "
                            "n=10**6) or pass fewer samples")


def _parse_wrt(wrt: Any, ins: Sequence[_Input]) -> tuple[str, ...]:
    by_name = {i.name: i for i in ins}
    if wrt is None:
        names = [i.name for i in ins if i.domain.differentiable]
        if not names:
            raise SpecError("no input has a differentiable domain: nothing to differentiate with respect to")
        return tuple(names)
    names = [wrt] if isinstance(wrt, str) else list(wrt) if isinstance(wrt, (list, tuple)) else None
    if not names:
        raise SpecError(f"wrt must be an input name or a list of them, got {wrt!r}")
    for n in names:
        if n not in by_name:
            raise SpecError(f"wrt {n!r} is not an input (inputs: {', '.join(by_name)})")
        if not by_name[n].domain.differentiable:
            raise SpecError(f"cannot differentiate with respect to {n!r}, whose domain "
                            f"{by_name[n].domain} is discrete")
    if len(set(names)) != len(names):
        raise SpecError(f"wrt {names} names an input twice")
    return tuple(names)


def _validate_common(samples: Any, seed: Any, rtol: Any = None) -> None:
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise SpecError(f"samples must be a positive integer, got {samples!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, got {seed!r}")
    if rtol is not None and not (isinstance(rtol, (int, float)) and not isinstance(rtol, bool)
                                 and 0 < rtol < 1):
        raise SpecError(f"rtol must be a number between 0 and 1, got {rtol!r}")


def _draw(ins: Sequence[_Input], sizes: dict[str, int], rng: np.random.Generator,
          count: int) -> dict[str, np.ndarray]:
    return {i.name: np.asarray(i.domain.sample(rng, (count, *i.resolve(sizes)), sizes)) for i in ins}


def _jitter(arrays: dict[str, np.ndarray], names: Sequence[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Differentiable inputs moved by a few ulps with random signs: the values' conditioning."""
    out = dict(arrays)
    for n in names:
        a = arrays[n]
        out[n] = a * (1.0 + _JITTER_ULPS * EPS * rng.choice([-1.0, 1.0], size=a.shape))
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _name(fn: Any) -> str:
    return str(getattr(fn, "__name__", None) or type(fn).__name__)


# --- array kits: how numpy and torch values are made, read and stacked -----------------------

def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
