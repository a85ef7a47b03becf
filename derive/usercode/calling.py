"""Calling user code (numpy or torch) on batches of samples, and what its answers mean."""

from __future__ import annotations

import inspect
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import SpecError
from ..model.verdict import (
    CONSISTENT,
    Result,
    SizeResult,
    merge_numeric,
    worst,
)
from ..numeric.tolerance import Comparison
from .inputs import _NO_PROOF, _fmt, _is_tensor


class _NotThisKind(Exception):
    """The callable does not speak this array library."""


class _NumpyKit:
    name = "numpy"

    def native(self, a: np.ndarray) -> Any:
        return a

    def part(self, x: Any) -> np.ndarray:
        if _is_tensor(x):
            raise _NotThisKind("returned a torch tensor for numpy input")
        return np.asarray(x)

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def stack(self, parts: list[Any]) -> Any:
        return np.stack(parts)

    def dtype_problem(self, x: np.ndarray, forward: bool, allow: str | None = None) -> str | None:
        k = x.dtype.kind
        if k == "f" and x.dtype.itemsize < 8 and x.dtype.name != allow:
            return f"{x.dtype} values"
        if k == "c":
            return "complex values for real inputs"
        if k not in "fiub":
            return f"values of dtype {x.dtype}"
        if forward and k in "iub":
            return f"integer values ({x.dtype}): nothing to differentiate"
        return None

    def as_float(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64, copy=False) if x.dtype.kind != "c" else x

    def batched(self, fn: Callable[..., Any], args: dict[str, Any]) -> Any:
        return fn(**args)


class _TorchKit:
    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def native(self, a: np.ndarray) -> Any:
        return self.torch.as_tensor(np.ascontiguousarray(a))

    def part(self, x: Any) -> Any:
        if isinstance(x, self.torch.Tensor):
            return x
        a = np.asarray(x)
        return self.torch.as_tensor(a if a.dtype.kind == "c" else a.astype(np.float64))

    def numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, self.torch.Tensor) else np.asarray(x)

    def stack(self, parts: list[Any]) -> Any:
        return self.torch.stack(parts)

    def dtype_problem(self, x: Any, forward: bool, allow: str | None = None) -> str | None:
        t = self.torch
        if x.dtype in (t.float32, t.float16, t.bfloat16) and str(x.dtype).split(".")[-1] != allow:
            return f"{x.dtype} values"
        if x.is_complex():
            return "complex values for real inputs"
        if forward and not x.is_floating_point():
            return f"integer values ({x.dtype}): nothing to differentiate"
        return None

    def as_float(self, x: Any) -> Any:
        return x if x.is_complex() or x.dtype == self.torch.float64 else x.to(self.torch.float64)

    def batched(self, fn: Callable[..., Any], args: dict[str, Any]) -> Any:
        names = list(args)
        return self.torch.func.vmap(lambda *a: fn(**dict(zip(names, a))))(*args.values())


def _quiet_call(fn: Callable[..., Any], args: dict[str, Any]) -> Any:
    """Call on copies (user code that writes into its inputs must not move our samples)."""
    args = {k: v.clone() if _is_tensor(v) else np.array(v, copy=True) for k, v in args.items()}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a complex input whose imaginary part is dropped must not pass as a complex step
        warnings.filterwarnings("error", category=np.exceptions.ComplexWarning)
        warnings.filterwarnings("error", message=".*imaginary part.*")
        return fn(**args)


class _Caller:
    """One user callable over a batch of samples: one vectorised call where it gives the same
    values as calling sample by sample (checked on a few samples), a loop otherwise."""

    def __init__(self, fn: Callable[..., Any], label: str, kit: Any,
                 split: Callable[[Any], list[Any]], forward: bool, allow: str | None = None) -> None:
        self.fn, self.label, self.kit, self.split, self.forward = fn, label, kit, split, forward
        self.allow = allow  # a low precision the code is asked to run in (check_gradient's dtype)
        self.shapes: list[tuple[int, ...]] | None = None
        self.vectorised = False

    def _parts(self, out: Any) -> list[Any]:
        return [self.kit.part(p) for p in self.split(out)]

    def probe(self, args: dict[str, Any], count: int,
              expected: list[tuple[int, ...]] | None = None,
              describe: Callable[[int, tuple[int, ...]], str] | None = None) -> None:
        """Call on the first sample (validating types, dtypes and shapes), then try the batch."""
        parts = self._parts(_quiet_call(self.fn, {k: v[0] for k, v in args.items()}))
        for i, p in enumerate(parts):
            problem = self.kit.dtype_problem(p, self.forward, self.allow)
            if problem:
                raise SpecError(f"{self.label} returned {problem} for {self.allow or 'float64'} inputs: keep the "
                                "inputs' dtype (no astype(np.float32), .float() or int casts), or pass dtype= "
                                "to check the code in the precision it runs in")
            shape = tuple(p.shape)
            if expected is not None and shape != expected[i] and shape != ():  # a scalar broadcasts
                raise SpecError(describe(i, shape) if describe else
                                f"{self.label} returned shape {shape}, expected {expected[i]}")
        self.shapes = [tuple(p.shape) for p in parts]
        self.vectorised = False
        if count < 2:
            return
        try:
            batch = self._batched(args, count)
        except Exception:
            return
        if batch is None:
            return
        for s in sorted({0, count // 2, count - 1}):
            single = self._parts(_quiet_call(self.fn, {k: v[s] for k, v in args.items()}))
            for b, p in zip(batch, single):
                b_s = self.kit.numpy(b[s]).astype(np.complex128).ravel()
                p_s = self.kit.numpy(self.kit.as_float(p)).astype(np.complex128).ravel()
                scale = np.max(np.abs(np.where(np.isfinite(p_s), p_s, 0)), initial=0.0)
                if not np.allclose(b_s, p_s, rtol=1e-10, atol=1e-12 * scale + 1e-300, equal_nan=True):
                    return
        self.vectorised = True

    def _batched(self, args: dict[str, Any], count: int) -> list[Any] | None:
        parts = self._parts(_quiet_call(lambda **a: self.kit.batched(self.fn, a), args))
        assert self.shapes is not None
        if len(parts) != len(self.shapes) or any(tuple(p.shape) != (count, *s)
                                                  for p, s in zip(parts, self.shapes)):
            return None
        return [self.kit.as_float(p) for p in parts]

    def __call__(self, args: dict[str, Any], count: int) -> list[Any]:
        """The outputs for every sample, each stacked along a leading sample axis."""
        if self.vectorised:
            try:
                batch = self._batched(args, count)
                if batch is not None:
                    return batch
            except Exception:
                pass
        rows: list[list[Any]] = []
        for s in range(count):
            parts = self._parts(_quiet_call(self.fn, {k: v[s] for k, v in args.items()}))
            if self.shapes is not None and [tuple(p.shape) for p in parts] != self.shapes:
                raise SpecError(f"{self.label} returned shapes {[tuple(p.shape) for p in parts]} at "
                                f"sample {s} but {self.shapes} at the first sample")
            rows.append([self.kit.as_float(p) for p in parts])
        return [self.kit.stack([r[i] for r in rows]) for i in range(len(rows[0]))]


def _by_name(fn: Callable[..., Any], names: Sequence[str], label: str) -> Callable[..., Any]:
    """Call with the inputs as keyword arguments, or positionally in declared order where the
    callable cannot take them by name (numpy ufuncs such as np.tanh, builtins, *args)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return lambda **args: fn(*(args[n] for n in names))
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind == p.VAR_KEYWORD for p in params) or set(names) <= named:
        return fn
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params) or (
            len(positional) >= len(names) and all(p.kind == p.POSITIONAL_ONLY for p in positional[:len(names)])):
        return lambda **args: fn(*(args[n] for n in names))
    raise SpecError(f"{label} takes ({', '.join(p.name for p in params)}) but the inputs are "
                    f"({', '.join(names)}): it is called with the inputs as keyword arguments")


def _forward_split(label: str) -> Callable[[Any], list[Any]]:
    def split(out: Any) -> list[Any]:
        if isinstance(out, (tuple, dict)) or out is None:
            raise SpecError(f"{label} must return one scalar or array, got {type(out).__name__}")
        return [out]
    return split


def _gradient_split(label: str, wrt: tuple[str, ...]) -> Callable[[Any], list[Any]]:
    def split(out: Any) -> list[Any]:
        if isinstance(out, Mapping):
            missing = [n for n in wrt if n not in out]
            if missing:
                raise SpecError(f"{label} returned a dict without {', '.join(missing)} "
                                f"(keys: {', '.join(map(str, out))})")
            return [out[n] for n in wrt]
        if len(wrt) == 1:
            return [out[0]] if isinstance(out, tuple) and len(out) == 1 else [out]
        if isinstance(out, (tuple, list)) and len(out) == len(wrt):
            return list(out)
        got = f"{len(out)} values" if isinstance(out, (tuple, list)) else "one array"
        raise SpecError(f"{label} returned {got} but wrt has {len(wrt)} names ({', '.join(wrt)}): "
                        f"return a tuple of {len(wrt)} gradients in that order (or a dict), or pass wrt=")
    return split


# --- check_gradient ---------------------------------------------------------------------------

@dataclass
class _Batch:
    """Everything computed for a set of samples; rows are samples (redrawn rows are replaced)."""

    raw: dict[str, np.ndarray]
    f0: np.ndarray                          # (S, m)
    noise_f: np.ndarray                     # (S,)
    hmin: np.ndarray                        # (S,)
    mag: np.ndarray                         # (S,) largest magnitude among inputs and outputs
    d1: dict[str, np.ndarray]               # central differences, step h: (S, m, N_k)
    d2: dict[str, np.ndarray]               # step 2h
    d4: dict[str, np.ndarray]               # 4th differences / 2h: about -jump at a kink, ~0 if smooth
    claim: dict[str, np.ndarray]
    claim_p: dict[str, np.ndarray]          # at jittered inputs
    exact: dict[str, np.ndarray] | None = None
    exact_p: dict[str, np.ndarray] | None = None

    def replace(self, idx: np.ndarray, other: _Batch) -> None:
        for name in ("raw", "d1", "d2", "d4", "claim", "claim_p", "exact", "exact_p"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None or theirs is None:
                setattr(self, name, None)
                continue
            for k in mine:
                mine[k][idx] = theirs[k]
        for name in ("f0", "noise_f", "hmin", "mag"):
            getattr(self, name)[idx] = getattr(other, name)

    def richardson(self, k: str) -> np.ndarray:
        return (4.0 * self.d1[k] - self.d2[k]) / 3.0


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1)


def _cat(parts: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([_flat(v) for v in parts.values()], axis=1)


def _noise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        d = np.abs(_flat(a) - _flat(b))
    return np.where(np.isfinite(d), d, 0.0).max(axis=1, initial=0.0)


def _absmax(a: np.ndarray) -> np.ndarray:
    a = np.abs(_flat(a))
    return np.where(np.isfinite(a), a, 0.0).max(axis=1, initial=0.0)


def _inputs_at(raw: dict[str, np.ndarray], s: int) -> dict[str, Any]:
    return {k: np.asarray(v[s]).tolist() for k, v in raw.items()}


def _counterexample(cmp: Comparison, fails: np.ndarray, value: np.ndarray, truth: np.ndarray,
                    raw: dict[str, np.ndarray], shape: tuple[int, ...], seed: int) -> dict[str, Any]:
    """The failing sample with the largest error/tolerance ratio, and its worst entry."""
    ratio = np.where(fails, cmp.abs_error / cmp.tol, -np.inf)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    s = int(np.argmax(ratio))
    v, t = _flat(value)[s], _flat(truth)[s]
    with np.errstate(invalid="ignore"):
        d = np.abs(v - t)
    d = np.where(np.isfinite(v) & np.isfinite(t), d, np.inf)
    e = int(np.argmax(d))
    entry = [int(i) for i in np.unravel_index(e, shape)] if shape else []
    return {
        "inputs": _inputs_at(raw, s),
        "entry": entry,
        "claimed": float(np.real(v[e])),
        "true": float(np.real(t[e])),
        "abs_error": float(cmp.abs_error[s]),
        "rel_error": float(cmp.abs_error[s] / cmp.scale[s]) if cmp.scale[s] > 0 else math.inf,
        "tolerance": float(cmp.tol[s]),
        "seed": seed,
        "sample": s,
    }


def _combine(name: str, per_size: list[SizeResult], start: float, family: str) -> Result:
    verdict = worst([r.verdict for r in per_size])
    decisive = next(r for r in per_size if r.verdict == verdict)
    reason = decisive.reason
    if len(per_size) > 1 and verdict == CONSISTENT:
        reason = "; ".join(r.reason for r in per_size)
    return Result(name, verdict, _NO_PROOF, merge_numeric(per_size), round(time.perf_counter() - start, 4),
                  tuple(per_size), reason, decisive.counterexample, family)


# --- assertions -------------------------------------------------------------------------------

def _message(result: Result, what: str) -> str:
    lines = [f"{what}: {result.verdict}", f"  {result.reason}"]
    cx = result.counterexample
    if cx:
        inputs = ", ".join(f"{k}={v}" for k, v in cx["inputs"].items())
        where = f"grad of {cx['argument']}, entry {tuple(cx['entry'])}" if "argument" in cx else \
            f"entry {tuple(cx['entry'])}"
        bound = f"tolerance {_fmt(cx['tolerance'])}" if cx.get("tolerance") is not None else cx.get("rule", "")
        lines += [f"  inputs: {inputs}",
                  *([f"  cotangent: {cx['cotangent']}"] if "cotangent" in cx else []),
                  f"  {where}: claimed {cx['claimed']!r}, true {cx['true']!r} "
                  f"(abs error {_fmt(cx['abs_error'])}, rel error {_fmt(cx['rel_error'])}, "
                  f"{bound}; truth: {cx.get('truth', '?')}" + (f"; {cx['dtype']}" if "dtype" in cx else "") + ")",
                  f"  seed: {cx['seed']} (sample {cx['sample']})",
                  f"  rerun: {cx['rerun']}"]
    for size in result.sizes:
        lines += [f"  note: {n}" for n in size.notes]
    return "\n".join(lines)


def _require_torch(what: str) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise SpecError(f"{what} needs torch, which is not installed; "
                        "pip install 'derive-checker[torch]'") from exc
    return torch
