"""Numeric backends, registered by name: each is a table of operations over its arrays.

A new backend is a module that calls `register` with a `Backend`; nothing else changes.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, ContextManager

from ...errors import SpecError, UnsupportedError
from .program import Program, compile_program, evaluate

__all__ = ["Backend", "Program", "compile_program", "evaluate", "get", "names", "register",
           "resolve_device"]


@dataclass(frozen=True)
class Backend:
    """How one array library evaluates compiled programs."""

    name: str
    ops: dict[str, Callable[..., Any]]
    from_numpy: Callable[[Any], Any]
    to_numpy: Callable[[Any], Any]
    stack: Callable[[list[Any], tuple[int, ...]], Any]
    """Outputs (arrays of the batch shape, or constants) stacked along a new last axis."""

    quiet: Callable[[], ContextManager[Any]] = nullcontext
    """Silences the library's floating-point warnings: non-finite values are judged, not warned."""

    def run(self, program: Program, inputs: list[Any]) -> list[Any]:
        with self.quiet():
            return evaluate(program, inputs, self.ops)


_REGISTRY: dict[str, Callable[[], Backend]] = {}
_LOADED: dict[str, Backend] = {}


def register(name: str, factory: Callable[[], Backend]) -> None:
    """Make a backend available under `name`; `factory` runs on first use (lazy imports)."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str, device: str = "cpu") -> Backend:
    """The backend called `name`, imported on first use; torch's can be bound to a device."""
    if device != "cpu" and name == "torch":
        key = f"{name}@{device}"
        if key not in _LOADED:
            base = get(name)
            _LOADED[key] = replace(base, from_numpy=partial(base.from_numpy, device=device))
        return _LOADED[key]
    if name not in _REGISTRY:
        raise SpecError(f"unknown backend {name!r}; choose one of {', '.join(_REGISTRY)}")
    if name not in _LOADED:
        try:
            _LOADED[name] = _REGISTRY[name]()
        except ImportError as exc:
            raise UnsupportedError(f"backend {name!r} needs a package that is not installed "
                                   f"({exc.name}); install it, e.g. pip install 'derive-checker[torch]'") from exc
    return _LOADED[name]


def resolve_device(device: str) -> str:
    """Check a torch device name ("cpu", "cuda", "cuda:N") and that it is present here."""
    text = str(device).strip()
    kind, _, number = text.partition(":")
    if kind not in ("cpu", "cuda") or (number and (not number.isdigit() or kind == "cpu")):
        raise SpecError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    if kind == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        raise UnsupportedError(f"device {text!r} needs torch, which is not installed; "
                               "pip install 'derive-checker[torch]'") from None
    if not torch.cuda.is_available():
        raise UnsupportedError(f"device {text!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
    if number and int(number) >= torch.cuda.device_count():
        raise UnsupportedError(f"device {text!r} does not exist: torch sees "
                               f"{torch.cuda.device_count()} CUDA device(s)")
    return text


def available(name: str) -> bool:
    try:
        get(name)
    except UnsupportedError:
        return False
    return True


def _numpy() -> Backend:
    from .numpy import BACKEND
    return BACKEND


def _torch() -> Backend:
    from .torch import BACKEND
    return BACKEND


def _mpmath() -> Backend:
    from .mpmath import BACKEND
    return BACKEND


register("numpy", _numpy)
register("torch", _torch)
register("mpmath", _mpmath)
