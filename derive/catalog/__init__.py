"""The built-in catalog: the identities of introductory deep-learning courses.

One module per family, each exporting IDENTITIES; adding an identity touches one file.
"""

from __future__ import annotations

import difflib
from types import ModuleType

from ..errors import UnknownIdentityError
from ..model.spec import Identity
from . import activations, layers, linear, losses, matrix, mlp, optimisation, second_order, softmax

FAMILIES: tuple[ModuleType, ...] = (activations, linear, softmax, losses, mlp, optimisation,
                                    matrix, layers, second_order)


def _collect() -> dict[str, Identity]:
    out: dict[str, Identity] = {}
    for module in FAMILIES:
        for identity in module.IDENTITIES:
            if identity.name in out:
                raise RuntimeError(f"catalog: {identity.name!r} is defined twice")
            out[identity.name] = identity
    return out


CATALOG: dict[str, Identity] = _collect()


def names() -> list[str]:
    return list(CATALOG)


def get(name: str) -> Identity:
    """The catalog identity called `name`; an unknown name lists the closest ones."""
    try:
        return CATALOG[name]
    except KeyError:
        close = difflib.get_close_matches(name, CATALOG, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run 'derive list' to see them"
        raise UnknownIdentityError(f"unknown identity {name!r}; {hint}") from None
