"""The steps a derivation took, as plain data (rendering lives elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    """One recorded step.

    kind: "define" (an intermediate's definition), "local" (the local Jacobian of a node with
    respect to one parent: the rule the chain rule multiplies by), "adjoint" (the accumulated
    derivative of the target with respect to a node: the textbook delta), "result" (the
    derivative with respect to a variable) or "proof" (how claim - derived reached 0).
    """

    kind: str
    node: str
    expr: Any
    parent: str = ""
    note: str = ""
