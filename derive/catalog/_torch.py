"""Torch references for the catalog, importing torch only when a reference runs."""

from __future__ import annotations

from typing import Any


def torch() -> Any:
    import torch as _torch
    return _torch


def F() -> Any:
    import torch.nn.functional as _F
    return _F
