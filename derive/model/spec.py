"""Identities as data: variables, named intermediates, claims, sizes, torch references.

An identity is a row of a table. Its formulas are small Python functions of a namespace of
SymPy symbols (scalars) and object arrays of symbols (vectors, matrices), built with the
vocabulary in `derive.ops`; they run only on symbols, never on user strings.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .domains import REAL, Domain, Label
from ..errors import SpecError

Formula = Callable[[Any], Any]
"""Builds a SymPy expression (or object array of them) from a namespace of symbols."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name):
        raise SpecError(f"{kind} name {name!r} is not valid: use letters, digits and '_', "
                        "starting with a letter (e.g. 'z', 'O_k', 'W1')")


@dataclass(frozen=True)
class Variable:
    """An input: a name, a shape made of size names or integers, and a domain."""

    name: str
    shape: tuple[str | int, ...] = ()
    domain: Domain = REAL

    def __post_init__(self) -> None:
        _check_name("variable", self.name)
        if isinstance(self.shape, (str, int)):
            object.__setattr__(self, "shape", (self.shape,))
        object.__setattr__(self, "shape", tuple(self.shape))
        if len(self.shape) > 2:
            raise SpecError(f"variable {self.name!r} has {len(self.shape)} axes; "
                            "use a scalar, a vector (n,) or a matrix (n, m)")

    def resolve(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """The value's shape at explicit sizes."""
        out = []
        for axis in self.shape:
            n = sizes[axis] if isinstance(axis, str) else axis
            out.append(int(n))
        return tuple(out)


@dataclass(frozen=True)
class Definition:
    """A named intermediate of the forward graph, e.g. O_k = sigmoid(x_k)."""

    name: str
    formula: Formula
    text: str = ""

    def __post_init__(self) -> None:
        _check_name("intermediate", self.name)


@dataclass(frozen=True)
class Claim:
    """A claimed closed form.

    With `wrt`, it is the derivative of the identity's target with respect to that variable:
    shape target.shape + wrt.shape (a gradient for a scalar target, a Jacobian
    J[i, j] = d target_i / d wrt_j for a vector one). Without `wrt`, it is a claimed value
    of the target (a value identity, such as cross-entropy written another way).
    """

    formula: Formula
    wrt: str | None = None
    text: str = ""

    @property
    def label(self) -> str:
        return f"d/d{self.wrt}" if self.wrt else "value"


@dataclass(frozen=True)
class Reference:
    """A library implementation of the target, e.g. F.cross_entropy.

    `forward(*inputs)` receives one sample's torch float64 tensors in the order the variables
    are declared (class labels as int64) and returns the target's value; samples are batched
    with torch.func.vmap (or a loop where a library function does not support vmap).
    """

    label: str
    forward: Callable[..., Any]


@dataclass(frozen=True)
class Identity:
    """A checkable statement about a forward definition."""

    name: str
    variables: tuple[Variable, ...]
    definitions: tuple[Definition, ...]
    claims: tuple[Claim, ...]
    target: str = ""
    sizes: tuple[Mapping[str, int], ...] = field(default_factory=lambda: ({},))
    references: tuple[Reference, ...] = ()
    family: str = "user"
    source: str = ""
    description: str = ""
    origin: str = ""
    """The file it was loaded from (a spec file or module), if any: reruns name it."""
    notes: Callable[[Mapping[str, int]], tuple[str, ...]] | None = field(default=None, compare=False)
    """Facts computed about the identity at one set of sizes, reported with that size's verdict
    (e.g. the critical points its Hessian classifies)."""

    def __post_init__(self) -> None:
        _check_name("identity", self.name)
        for attr in ("variables", "definitions", "claims", "sizes", "references"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        if not self.definitions:
            raise SpecError(f"identity {self.name!r} has no definitions: "
                            "give at least one Definition for the forward computation")
        if not self.target:
            object.__setattr__(self, "target", self.definitions[-1].name)
        if not self.claims:
            raise SpecError(f"identity {self.name!r} has no claims: give a Claim to check")
        if not self.sizes:
            object.__setattr__(self, "sizes", ({},))
        seen: set[str] = set()
        for item in (*self.variables, *self.definitions):
            if item.name in seen:
                raise SpecError(f"identity {self.name!r}: the name {item.name!r} is used twice")
            seen.add(item.name)
        if self.target not in {d.name for d in self.definitions}:
            raise SpecError(f"identity {self.name!r}: target {self.target!r} is not one of its "
                            f"definitions ({', '.join(d.name for d in self.definitions)})")
        by_name = {v.name: v for v in self.variables}
        for claim in self.claims:
            if claim.wrt is None:
                continue
            if claim.wrt not in by_name:
                raise SpecError(f"identity {self.name!r}: wrt {claim.wrt!r} is not a variable "
                                f"(variables: {', '.join(by_name)})")
            if not by_name[claim.wrt].domain.differentiable:
                raise SpecError(f"identity {self.name!r}: cannot differentiate with respect to "
                                f"{claim.wrt!r}, whose domain {by_name[claim.wrt].domain} is discrete")
        needed = {a for v in self.variables for a in v.shape if isinstance(a, str)}
        needed |= {v.domain.classes for v in self.variables if isinstance(v.domain, Label)}
        for sizes in self.sizes:
            missing = sorted(needed - set(sizes))
            if missing:
                raise SpecError(f"identity {self.name!r}: sizes {dict(sizes)} do not give "
                                f"{', '.join(missing)}; add them, e.g. sizes=({{'n': 3}},)")
            bad = {k: n for k, n in sizes.items() if not isinstance(n, int) or not 1 <= n <= 64}
            if bad:
                raise SpecError(f"identity {self.name!r}: sizes {bad} must be integers from 1 to 64")

    def variable(self, name: str) -> Variable:
        return next(v for v in self.variables if v.name == name)
