"""Where identities come from: the catalog, a spec file (.toml) or a user's Python module (.py)."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

from .. import catalog
from ..errors import SpecError
from ..model.spec import Identity


def load_module(path: str | Path) -> list[Identity]:
    """The identities a Python module defines: module-level Identity objects and the items
    of a module-level IDENTITIES sequence, in definition order. The module is the user's own
    code and is imported as such (this is not the path for untrusted text: spec files are)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such file; give the path of a Python module that defines identities")
    spec = importlib.util.spec_from_file_location(f"derive_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SpecError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from exc
    except (Exception, SystemExit) as exc:  # the user's module failed: say where, in one line
        # (an exit() at import would otherwise end derive with the module's exit code, 0 included)
        text = " ".join(str(exc).split())[:200]
        raise SpecError(f"{path}: importing it raised {type(exc).__name__}: {text}") from exc
    finally:
        sys.modules.pop(spec.name, None)
    found: list[Identity] = []
    for value in vars(module).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        found += [i for i in items if isinstance(i, Identity) and all(i is not f for f in found)]
    if not found:
        raise SpecError(f"{path}: defines no Identity; define some at module level or in IDENTITIES")
    return [dataclasses.replace(i, origin=str(path)) for i in found]


def resolve(argument: str) -> list[Identity]:
    """A catalog name, a spec file (*.toml) or a module (*.py), as given on the command line."""
    if argument.endswith(".toml"):
        from ..language.specfile import load_spec

        return [dataclasses.replace(i, origin=argument) for i in load_spec(argument)]
    if argument.endswith(".py"):
        return load_module(argument)
    return [catalog.get(argument)]
