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
class Precision:
    """How user code that runs in a low precision is judged: against a baseline, the same truth
    source run in that precision (as FlashAttention's and PyTorch's own kernel tests do).

    The rule, in one line: over all samples, the mean of the claim's relative error (each sample's
    max |claim - truth| / max |truth|) must stay within `k` times the baseline's (each floored at
    half a unit of rounding), and its largest within `spike` times the baseline's largest (at
    least one unit of rounding), FlashAttention's rule over the whole batch. The truth is float64, from the same rounded
    inputs and cotangents. k and spike were chosen from measurements (benchmarks/backward.py):
    correct softmax / cross-entropy / layer-norm / GELU / attention backwards give a mean ratio
    of 0.9-1.5 and single-sample ratios below 10 over 10,000 samples.
    """

    name: str
    unit: float         # unit roundoff: 2**-24 (float32), 2**-11 (float16), 2**-8 (bfloat16)
    k: float = 3.0      # mean error allowed, in multiples of the baseline's mean error
    spike: float = 8.0  # largest error allowed, in multiples of the baseline's largest (>= unit)
    floor: float = 0.5  # each baseline error counts at least floor * unit (relative)
    alone: float = 32.0  # with no baseline (plain gradient code): mean error allowed, in units

    def rule(self) -> str:
        return (f"mean rel error <= {self.k:g} x the baseline's (each floored at {self.floor:g} ulp) and max rel "
                f"error <= {self.spike:g} x the baseline's max (at least 1 ulp); ulp = {self.unit:.3g}")


PRECISIONS = {
    "float64": Precision("float64", EPS / 2),
    "float32": Precision("float32", 2.0**-24),
    "float16": Precision("float16", 2.0**-11),
    "bfloat16": Precision("bfloat16", 2.0**-8),
}
"""Low precisions judged against a baseline; float64 is judged at `TOLERANCES` sharpness instead."""


def dtype_name(dtype: Any) -> str:
    """'float32' for torch.float32, np.float32, np.dtype('float32') or 'float32' (also 'fp32',
    'half', 'bf16'); a one-line SpecError for anything else."""
    from ..errors import SpecError

    aliases = {"fp64": "float64", "double": "float64", "fp32": "float32", "float": "float32",
               "single": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
    if isinstance(dtype, str):
        name = aliases.get(dtype.strip().lower(), dtype.strip().lower())
    else:
        text = str(dtype)
        name = text.rsplit(".", 1)[-1].strip("'>") if text.startswith(("torch.", "<class")) else text
        try:
            name = np.dtype(dtype).name if not text.startswith("torch.") else name
        except TypeError:
            pass
    if name not in PRECISIONS:
        raise SpecError(f"dtype {dtype!r} is not one derive checks; use one of {', '.join(PRECISIONS)} "
                        "(a torch or numpy dtype, or its name)")
    return name

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
