"""Tolerances by dtype and the normwise comparison of a value with its truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Tolerance:
    """Relative (normwise, per sample) tolerances for one dtype, plus a conditioning factor."""

    dtype: str
    exact: float
    central: float
    complex_step: float
    high_precision: float
    noise_factor: float
    kink_margin: float


TOLERANCES = {
    "float64": Tolerance("float64", exact=1e-11, central=1e-6, complex_step=1e-10,
                         high_precision=1e-10, noise_factor=16.0, kink_margin=1e-3),
}


@dataclass(frozen=True)
class Comparison:
    """How far `value` is from `truth`, per sample, against a per-sample tolerance."""

    abs_error: np.ndarray   # (samples,)
    scale: np.ndarray       # (samples,)
    tol: np.ndarray         # (samples,)
    worst: tuple[int, int]  # (sample, entry) of the largest error/tolerance ratio

    @property
    def ok(self) -> bool:
        return bool(np.all(self.abs_error <= self.tol))

    @property
    def max_abs(self) -> float:
        return float(np.max(self.abs_error, initial=0.0))

    @property
    def max_rel(self) -> float:
        rel = self.abs_error / np.where(self.scale > 0, self.scale, 1.0)
        rel = np.where((self.scale == 0) & (self.abs_error > 0), np.inf, rel)
        return float(np.max(rel, initial=0.0))


def compare(value: np.ndarray, truth: np.ndarray, rtol: float, noise: np.ndarray | None = None,
            noise_factor: float = 0.0, atol: np.ndarray | None = None) -> Comparison:
    """Normwise per-sample comparison; NaN or inf anywhere in `value` is an infinite error."""
    count = truth.shape[0]
    value = value.reshape(count, -1)
    truth = truth.reshape(count, -1)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(value - truth)
    finite = np.isfinite(value) & np.isfinite(truth)
    diff = np.where(finite, diff, np.inf)
    diff = np.where(np.isnan(value) & np.isnan(truth), np.inf, diff)
    entry_err = diff
    abs_error = entry_err.max(axis=1, initial=0.0)
    scale = np.where(np.isfinite(truth), np.abs(truth), 0.0).max(axis=1, initial=0.0)
    tol = rtol * scale
    if noise is not None:
        tol = tol + noise_factor * noise
    if atol is not None:
        tol = tol + atol
    tol = np.maximum(tol, np.finfo(np.float64).tiny)
    ratio = entry_err / tol[:, None]
    if ratio.size:
        s, e = np.unravel_index(int(np.nanargmax(np.where(np.isnan(ratio), np.inf, ratio))), ratio.shape)
    else:
        s, e = 0, 0
    return Comparison(abs_error, scale, tol, (int(s), int(e)))


def _noise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        d = np.abs(a.reshape(a.shape[0], -1) - b.reshape(b.shape[0], -1))
    return np.where(np.isfinite(d), d, 0.0).max(axis=1, initial=0.0)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _entry(shape: tuple[int, ...], flat: int) -> list[int]:
    return [int(i) for i in np.unravel_index(flat, shape)] if shape else []


def _worst_noise(value: np.ndarray, perturbed: list[np.ndarray]) -> np.ndarray:
    return np.max([_noise(value, p) for p in perturbed], axis=0)


def _magnitude_floor(env: list[Any], count: int, tol: Tolerance) -> np.ndarray:
    """Absolute slack for black-box truths (autograd, library code), whose internal rounding we
    cannot see: noise_factor * eps * M, M the largest magnitude among the forward's values
    (at least 1). Rounding inside the library moves its result by about eps times the values it
    computes with; errors proportional to the derivative itself are the relative tolerance's.
    (An M^2 slack, as once used, let any claim pass once the forward passed 1e77.)"""
    mags = [np.broadcast_to(np.abs(np.asarray(v, dtype=np.float64)), (count,)) for v in env if v is not None]
    m = np.maximum(1.0, np.max(np.where(np.isfinite(mags), mags, 0.0), axis=0)) if mags else np.ones(count)
    return tol.noise_factor * EPS * m
