"""Hypothesis strategies that draw inputs inside each variable's domain.

`inputs(identity)` draws a dict of numpy arrays (class labels as int arrays) for the
identity's variables at one of its sizes, so a user can write property tests such as

    @given(strategies.inputs(identity))
    def test_my_gradient(values): ...

Failures shrink toward small, simple values (for real, positive and unit-interval entries);
other domains are drawn from the domain's own sampler with a shrinkable seed.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .model.domains import Binary, Domain, Label, OneHot, Positive, Real, Simplex, UnitInterval
from .errors import SpecError
from .model.spec import Identity, Variable

_FLOAT = {"allow_nan": False, "allow_infinity": False, "allow_subnormal": False}


def _floats(domain: Domain) -> st.SearchStrategy[float] | None:
    if isinstance(domain, Real):
        bound = 3.0 * domain.scale
        return st.floats(-bound, bound, **_FLOAT)
    if isinstance(domain, Positive):
        return st.floats(0.05, 20.0, **_FLOAT)
    if isinstance(domain, UnitInterval):
        return st.floats(domain.margin, 1.0 - domain.margin, **_FLOAT)
    return None


def values(variable: Variable, sizes: Mapping[str, int]) -> st.SearchStrategy[Any]:
    """Arrays of `variable`'s shape at `sizes`, inside its domain."""
    shape = variable.resolve(sizes)
    domain = variable.domain
    elements = _floats(domain)
    if elements is not None:
        if not shape:
            return elements
        return hnp.arrays(np.float64, shape, elements=elements)
    if isinstance(domain, Binary):
        return hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0]))
    if isinstance(domain, Label):
        k = sizes[domain.classes]
        return hnp.arrays(np.int64, shape, elements=st.integers(0, k - 1))
    if isinstance(domain, OneHot):
        rows = hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, shape[-1] - 1))
        return rows.map(lambda labels: np.eye(shape[-1])[labels])
    if isinstance(domain, Simplex):
        positive = hnp.arrays(np.float64, shape, elements=st.floats(0.05, 1.0, **_FLOAT))
        return positive.map(lambda a: a / a.sum(axis=-1, keepdims=True))
    seeds = st.integers(0, 2**32 - 1)
    return seeds.map(lambda s: domain.sample(np.random.default_rng(s), shape, dict(sizes)))


def inputs(identity: Identity, sizes: Mapping[str, int] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of values for every variable of `identity` (at `sizes`, default its first)."""
    chosen = dict(identity.sizes[0] if sizes is None else sizes)
    needed = {a for v in identity.variables for a in v.shape if isinstance(a, str)}
    missing = sorted(needed - set(chosen))
    if missing:
        raise SpecError(f"{identity.name}: sizes {chosen} do not give {', '.join(missing)}")
    return st.fixed_dictionaries({v.name: values(v, chosen) for v in identity.variables})
