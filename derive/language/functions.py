"""The functions a formula may call, each with its implementation and arity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..model import ops


@dataclass(frozen=True)
class Function:
    """A formula function: its implementation, how many positional arguments, its axis."""

    impl: Callable[..., Any]
    arity: int = 1
    axis: bool = False
    default_axis: int | None = None
    matrix: bool = False  # det, logdet, inv: written out entry by entry, never nested
    doc: str = ""


def _onehot(t: Any) -> Any:
    """Labels reach formulas already one-hot encoded (derive.domains.Label), so this is the
    identity; it lets a formula say what it means: onehot(t)."""
    return t


def _size(a: Any, axis: int | None = 0) -> Any:
    return ops.size(a, 0 if axis is None else axis)


FUNCTIONS: dict[str, Function] = {
    "exp": Function(ops.exp), "log": Function(ops.log), "sqrt": Function(ops.sqrt),
    "sin": Function(ops.sin), "cos": Function(ops.cos), "tanh": Function(ops.tanh),
    "sigmoid": Function(ops.sigmoid), "relu": Function(ops.relu), "abs": Function(ops.abs_),
    "softplus": Function(ops.softplus), "step": Function(ops.step, doc="1 where x > 0, else 0"),
    "sum": Function(ops.sum_, axis=True), "mean": Function(ops.mean, axis=True),
    "softmax": Function(ops.softmax, axis=True, default_axis=-1),
    "log_softmax": Function(ops.log_softmax, axis=True, default_axis=-1),
    "logsumexp": Function(ops.logsumexp, axis=True, default_axis=-1),
    "onehot": Function(_onehot, doc="labels are already one-hot rows: returns its argument"),
    "size": Function(_size, axis=True, default_axis=0, doc="the length of an axis"),
    "trace": Function(ops.trace), "transpose": Function(ops.transpose),
    "det": Function(ops.det, matrix=True), "logdet": Function(ops.logdet, matrix=True),
    "inv": Function(ops.inv, matrix=True),
    "diag": Function(ops.diag), "outer": Function(ops.outer, arity=2), "dot": Function(ops.dot, arity=2),
}
