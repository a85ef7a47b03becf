"""Bits of error in a dtype: how far a computed value is from the exact one, in units of what
the dtype can promise.

A dtype with p bits of precision promises a result as good as the exact function of inputs
each known to within half an ulp, rounded once (a backward-stable evaluation). So the error
is measured against the larger of

- the spacing of the dtype at the exact value (its ulp; the subnormal spacing near 0), and
- the error the inputs' own rounding makes unavoidable: u * sum_i |df/dx_i| |x_i|, with
  u = 2**-p (the first-order condition number of the function times the unit roundoff),

and errors smaller than the smallest normal number are not counted (a value below the normal
range may be flushed to zero, as GPUs do),

and bits = log2(1 + error / that), capped at p ("all p bits lost"). For an array (a softmax,
a Jacobian) the ulp is taken at its largest entry at least, so an entry far smaller than the
rest is judged normwise, as derive's judge compares arrays. A correctly rounded
result loses at most about half a bit; 1 - sigmoid(20) computed as 0 in float32 loses all 24;
softplus(z) - y*z at y = 1, z = 20 returns 0 for 2e-9, which is within what rounding y to
float32 already allows (20 * 2**-24), so it loses none. Herbie's local error (one operation
applied to exactly rounded arguments) is measured in ulps alone: `ulp_bits`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DtypeInfo:
    """A floating-point format: precision p (significand bits, the implicit one included),
    the smallest normal exponent, and the largest finite value."""

    name: str
    precision: int
    min_exponent: int
    max: float

    @property
    def unit_roundoff(self) -> float:
        return 2.0 ** -self.precision

    @property
    def tiny(self) -> float:
        """The smallest positive normal number."""
        return 2.0 ** self.min_exponent

    @property
    def half(self) -> float:
        """Half its bits: a formula that loses more than this somewhere is flagged."""
        return self.precision / 2

    def torch(self) -> object:
        import torch

        return getattr(torch, self.name)


DTYPES: dict[str, DtypeInfo] = {
    "float64": DtypeInfo("float64", 53, -1022, float(np.finfo(np.float64).max)),
    "float32": DtypeInfo("float32", 24, -126, float(np.finfo(np.float32).max)),
    "bfloat16": DtypeInfo("bfloat16", 8, -126, 3.3895313892515355e38),
    "float16": DtypeInfo("float16", 11, -14, 65504.0),
}
DEFAULT_DTYPES = ("float32", "bfloat16", "float16")


def parse_dtypes(value: object) -> tuple[str, ...]:
    """Dtype names from "float32,bfloat16", a sequence of names, or None/"" (none): checked."""
    from ...errors import SpecError

    if value is None or value == "" or value is False:
        return ()
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)  # type: ignore[attr-defined]
    bad = [n for n in names if n not in DTYPES]
    if bad:
        raise SpecError(f"unknown dtype {bad[0]!r} for the stability analysis; choose from "
                        f"{', '.join(DTYPES)} (comma-separated, e.g. float32,bfloat16)")
    return tuple(dict.fromkeys(names))


def ulp(values: np.ndarray, info: DtypeInfo) -> np.ndarray:
    """The dtype's spacing at |values| (the subnormal spacing below the normal range)."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        _, e = np.frexp(np.where(np.isfinite(a) & (a > 0), a, 1.0))
    exponent = np.maximum(e - 1, info.min_exponent)
    return np.ldexp(1.0, exponent - (info.precision - 1))


def bits_lost(computed: np.ndarray, exact: np.ndarray, info: DtypeInfo,
              allowance: np.ndarray | None = None, norm: np.ndarray | None = None) -> np.ndarray:
    """Bits of error per value (see the module docstring); `exact` already rounded to the
    dtype, `allowance` the absolute error the inputs' rounding makes unavoidable, `norm` the
    largest |exact| of the array each value belongs to (errors are measured against its ulp
    at least: normwise, as derive's judge compares arrays)."""
    computed = np.asarray(computed, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    scale = ulp(exact if norm is None else np.maximum(np.abs(exact), norm), info)
    if allowance is not None:
        scale = np.maximum(scale, np.where(np.isfinite(allowance), allowance, 0.0))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(computed - exact)
        if allowance is not None:  # below the normal range the dtype promises nothing (flush to zero)
            err = np.where(err < info.tiny, 0.0, err)
        bits = np.log2(1.0 + err / scale)
    same = (computed == exact) | (np.isnan(computed) & np.isnan(exact))
    bits = np.where(same, 0.0, bits)
    bits = np.where(np.isfinite(bits), bits, float(info.precision))
    return np.minimum(bits, float(info.precision))


def ulp_bits(computed: np.ndarray, exact: np.ndarray, info: DtypeInfo) -> np.ndarray:
    """Herbie's measure: log2(1 + |computed - exact| / ulp(exact)), capped at p."""
    return bits_lost(computed, exact, info, None)


def rounded(values: np.ndarray, info: DtypeInfo) -> np.ndarray:
    """Float64 values rounded to the dtype (overflowing to inf as the dtype would)."""
    import torch

    with np.errstate(all="ignore"):
        return torch.as_tensor(np.asarray(values, dtype=np.float64)).to(info.torch()).to(torch.float64).numpy()


__all__ = ["DtypeInfo", "DTYPES", "DEFAULT_DTYPES", "parse_dtypes", "ulp", "bits_lost", "ulp_bits", "rounded"]
