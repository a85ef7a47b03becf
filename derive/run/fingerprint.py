"""A stable digest of what decides an identity's verdict, for `derive check --resume`.

Formulas are Python functions, so their digest is taken from their code: the bytecode, the
constants (nested code included), the names they use, the values they close over, and the
code of the module-level helper functions they call (a helper edited is a formula edited).
Nothing that varies between processes (memory addresses, ids) enters the digest.
"""

from __future__ import annotations

import functools
import hashlib
import re
import types
from typing import Any

import numpy as np

from ..model.spec import Identity

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 6


def _stable(x: Any, seen: set[int], depth: int = 0) -> Any:
    """A nested tuple of plain values that stands for x, the same in every process."""
    if depth > _MAX_DEPTH:
        return "..."
    nxt = depth + 1
    if x is None or isinstance(x, (bool, int, float, complex, str, bytes)):
        return x
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(_stable(v, seen, nxt) for v in x))
    if isinstance(x, (set, frozenset)):
        return ("set", tuple(sorted(repr(_stable(v, seen, nxt)) for v in x)))
    if isinstance(x, dict):
        return ("dict", tuple(sorted((repr(_stable(k, seen, nxt)), _stable(v, seen, nxt)) for k, v in x.items())))
    if isinstance(x, np.ndarray):
        return ("array", x.dtype.str, x.shape, x.tobytes() if x.dtype != object else _stable(x.tolist(), seen, nxt))
    if isinstance(x, types.CodeType):
        return ("code", x.co_code, tuple(_stable(c, seen, nxt) for c in x.co_consts), x.co_names)
    if isinstance(x, functools.partial):
        return ("partial", _stable(x.func, seen, nxt), _stable(x.args, seen, nxt), _stable(x.keywords, seen, nxt))
    if isinstance(x, types.FunctionType):
        if id(x) in seen:
            return ("function", x.__qualname__)
        seen.add(id(x))
        cells = tuple(_stable(c.cell_contents, seen, nxt) for c in x.__closure__ or ()
                      if _filled(c))
        helpers = tuple((name, _stable(x.__globals__[name], seen, nxt)) for name in _names(x.__code__)
                        if isinstance(x.__globals__.get(name), types.FunctionType)
                        and x.__globals__[name].__module__ == x.__module__)
        return ("function", _stable(x.__code__, seen, nxt), cells, helpers)
    if isinstance(x, (types.BuiltinFunctionType, types.ModuleType, type)):
        return (type(x).__name__, getattr(x, "__qualname__", getattr(x, "__name__", "")))
    return _ADDRESS.sub("", repr(x))


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _names(code: types.CodeType) -> tuple[str, ...]:
    """Global names used by code and by the code nested in it (comprehensions, lambdas)."""
    names = list(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names += _names(c)
    return tuple(dict.fromkeys(names))


def fingerprint(identity: Identity, **options: object) -> str:
    """A digest of what decides a verdict: the identity's formulas (their code and the helpers
    they call, or a spec file's formula text), sizes and domains, the options (seed, samples,
    backend...) and the version of derive. Editing one identity in a file leaves the others'
    digests alone."""
    from ..version import __version__

    h = hashlib.sha256()

    def feed(x: Any) -> None:
        h.update(repr(_stable(x, set())).encode())
        h.update(b"\0")

    feed((__version__, identity.name, identity.target, [dict(s) for s in identity.sizes]))
    feed([(v.name, v.shape, repr(v.domain)) for v in identity.variables])
    for d in identity.definitions:
        feed((d.name, d.text, d.formula))
    for c in identity.claims:
        feed((c.wrt, c.text, c.formula))
    feed([r.label for r in identity.references])
    feed(identity.origin)
    feed(sorted(options.items()))
    return h.hexdigest()[:32]
