"""check_gradient in a low precision: the user's gradient called with float32 / float16 / bfloat16
inputs, against the same gradient code run in float64 at the same rounded inputs.

That float64 value is a truth only because the formula was judged first, in float64, at float64
sharpness (consistent: agreeing with autograd or the complex step to ~1e-11). Plain numpy or
torch gradient code has no library baseline to be compared with in its precision, so the rule
is absolute: the mean relative error may be at most `Precision.alone` units of rounding (5 bits
of the precision's mantissa), and no value may be NaN or infinite where the truth is finite.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..errors import SpecError
from ..model.verdict import CONSISTENT, REFUTED, Numeric, SizeResult
from ..numeric.tolerance import PRECISIONS
from ..numeric.vjp import NO_PROOF, rounded
from .calling import _by_name, _Caller, _gradient_split
from .inputs import _draw, _fmt, _name


def low_precision(check: Any, sizes: dict[str, int], index: int, dtype: str, rerun: str) -> SizeResult:
    """The gradient's accuracy in `dtype`, judged against its own float64 values (see above)."""
    start = time.perf_counter()
    prec = PRECISIONS[dtype]
    kit = check.kit
    if kit.name == "numpy" and dtype == "bfloat16":
        raise SpecError("numpy has no bfloat16: check numpy code in float32 or float16, or torch code in bfloat16")
    rng = np.random.default_rng([check.seed, index, 7])
    count = check.samples
    raw = _draw(check.ins, sizes, rng, count)
    diff = {i.name for i in check.ins if i.domain.differentiable}
    as64 = {k: rounded(v, dtype) if k in diff else v for k, v in raw.items()}
    low = {k: _in(kit, v, dtype) if k in diff else v for k, v in as64.items()}
    names = [i.name for i in check.ins]
    label = f"gradient {_name(check.gradient)}"
    fn = _by_name(check.gradient, names, label)
    truth_call = _Caller(fn, label, kit, _gradient_split(label, check.wrt), False)
    low_call = _Caller(fn, label, kit, _gradient_split(label, check.wrt), False, allow=dtype)
    native64 = {k: kit.native(np.ascontiguousarray(v)) for k, v in as64.items()}
    truth_call.probe(native64, count)
    low_call.probe(low, count)
    truth = np.concatenate([kit.numpy(p).reshape(count, -1) for p in truth_call(native64, count)], axis=1)
    value = np.concatenate([kit.numpy(p).astype(np.float64).reshape(count, -1) for p in low_call(low, count)],
                           axis=1)
    finite = np.isfinite(truth).all(axis=1)
    truth, value = truth[finite], value[finite]
    kept = {k: v[finite] for k, v in as64.items()}
    scale = np.abs(truth).max(axis=1, initial=0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(np.isfinite(value), np.abs(value - truth), np.inf).max(axis=1, initial=0.0)
    rel = np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), np.where(err > 0, np.inf, 0.0))
    mean = float(np.mean(rel)) if rel.size else 0.0
    allowed = prec.alone * prec.unit
    where = f"{kit.name}, {dtype}" + "".join(f", {k}={n}" for k, n in sizes.items())
    numeric = (Numeric(kit.name, dtype, int(rel.size), float(err.max(initial=0.0)), float(rel.max(initial=0.0)),
                       allowed),)
    seconds = round(time.perf_counter() - start, 4)
    ulps = mean / prec.unit
    bits = math.log2(max(ulps, 1.0))
    notes = (f"{int((~finite).sum())} samples left out: the float64 gradient is not finite there",) \
        if not finite.all() else ()
    if mean > allowed or not np.isfinite(rel).all():
        s = int(np.argmax(np.where(np.isfinite(rel), rel, np.inf)))
        e = int(np.argmax(np.where(np.isfinite(value[s]), np.abs(value[s] - truth[s]), np.inf)))
        cx = {"kind": "gradient", "claim": label, "backend": kit.name, "dtype": dtype, "sizes": dict(sizes),
              "inputs": {k: np.asarray(v[s]).tolist() for k, v in kept.items()}, "entry": [e],
              "claimed": float(value[s, e]), "true": float(truth[s, e]), "abs_error": float(err[s]),
              "rel_error": float(rel[s]), "tolerance": None, "mean_rel_error": mean,
              "rule": f"mean rel error <= {prec.alone:g} ulp of {dtype} ({allowed:.3g}); no NaN or inf",
              "truth": "the same gradient code in float64 at the rounded inputs", "seed": check.seed,
              "sample": s, "rerun": rerun}
        what = "is not finite" if not np.isfinite(rel[s]) else \
            f"loses {bits:.1f} bits: mean relative error {_fmt(mean)} = {ulps:.3g} ulp > {prec.alone:g} ulp"
        reason = (f"{label} [{where}]: in {dtype} the gradient {what}, against the same code in float64 at the "
                  f"same rounded inputs; seed={check.seed}")
        return SizeResult(dict(sizes), REFUTED, NO_PROOF, numeric, reason, cx,
                          ("the same gradient code in float64",), notes, seconds)
    reason = (f"in {dtype} the gradient's mean relative error is {_fmt(mean)} = {ulps:.2g} ulp (allowed "
              f"{prec.alone:g} ulp) at {rel.size} samples [{where}]; no library baseline for plain gradient code, "
              "so the rule is absolute")
    return SizeResult(dict(sizes), CONSISTENT, NO_PROOF, numeric, reason, None,
                      ("the same gradient code in float64",), notes, seconds)


def _in(kit: Any, values: np.ndarray, dtype: str) -> Any:
    """Values in the user's array library and dtype."""
    if kit.name == "numpy":
        return np.ascontiguousarray(values).astype(dtype)
    import torch

    return torch.as_tensor(np.ascontiguousarray(values)).to(getattr(torch, dtype))
