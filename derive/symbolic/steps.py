"""The steps a derivation took, as plain data (rendering lives elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    """One recorded step.

    kind: "define" (an intermediate's definition), "local" (the derivative of a node with
    respect to one parent, with the rule that produced it in `note`), "delta" (the adjoint
    d target / d node of a pre-activation, named delta, its symbol in `note`), "adjoint" (an
    accumulated derivative at explicit sizes), "result" (the derivative with respect to a
    variable) or "proof" (how claim - derived reached 0).
    """

    kind: str
    node: str
    expr: Any
    parent: str = ""
    note: str = ""
    raw: Any = None
    """For "local": the expression before it was written in the intermediates (if it was);
    for "delta": the delta's own symbol."""
