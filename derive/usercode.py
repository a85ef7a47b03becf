"""Check users' own gradient code: a hand-written gradient, or a torch.autograd.Function's backward.

There is no formula here to prove, so the best verdict is "consistent". The truths:
  * torch autograd of the forward (torch code), or the complex step Im f(x + ih)/h (numpy code
    that accepts complex input and returns complex output): exact to rounding;
  * central differences with steps h = eps^(1/3) max(1, |x|) and 2h, Richardson-extrapolated:
    the witness. Where the two steps disagree a kink is within the step and the sample is redrawn.
The exact truth must agree with the witness (at the table's central-difference tolerance) before
any claim is judged. A claim is refuted only where it differs both from the exact truth (at the
dtype's exact tolerance plus the conditioning noise measured by jittering the inputs by a few
ulps) and from the extrapolated difference (at that difference's own error estimate), so a
complex step that is quietly wrong (abs, real parts) cannot refute a correct gradient. With
central differences alone the verdict is at most "consistent" and errors below the
central-difference tolerance cannot be seen; the result says so. For a torch.autograd.Function
whose forward has no complex kernel, autograd of the forward's own operations (the forward
called directly) takes the complex step's place.

torch is optional: it is imported only when the user's callables turn out to be torch code,
or by `check_autograd_function`.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .domains import REAL, Domain
from .errors import SpecError
from .numeric import EPS, TOLERANCES, Comparison, Tolerance, compare
from .spec import Variable
from .verdict import (CONSISTENT, INCONCLUSIVE, REFUTED, Numeric, Result, SizeResult, Symbolic,
                      merge_numeric, worst)

__all__ = ["check_gradient", "check_autograd_function", "assert_gradient", "assert_autograd_function"]

DEFAULT_SAMPLES = 64
COMPLEX_STEP = 1e-30
RICHARDSON_RTOL = 1e-9
"""Relative floor of the extrapolated central difference's tolerance (its measured error is added)."""
DIRECTIONS = 3
"""Random (cotangent, direction) vectors per sample in VJP checks: DIRECTIONS**2 comparisons."""
_ROUNDS = 10
_JITTER_ULPS = 4.0
_FD_STEP = EPS ** (1 / 3)
_MAX_SIZE = 1_000_000
_MAX_VOLUME = 2**24
"""Entries of all inputs over all samples at one size (each is evaluated several times)."""
_NO_PROOF = Symbolic("not applicable", 0.0, detail="user code: no formula to prove")


# --- declared inputs --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Input:
    name: str
    shape: tuple[str | int, ...]
    domain: Domain

    def resolve(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(int(sizes[a]) if isinstance(a, str) else int(a) for a in self.shape)

    @property
    def size_names(self) -> set[str]:
        names = {a for a in self.shape if isinstance(a, str)}
        classes = getattr(self.domain, "classes", None)
        return names | ({classes} if isinstance(classes, str) else set())


def _shape_of(name: str, spec: Any) -> tuple[str | int, ...]:
    shape = (spec,) if isinstance(spec, (str, int)) else spec
    if not isinstance(shape, (tuple, list)) or not all(
            (isinstance(a, int) and not isinstance(a, bool) and a >= 1) or (isinstance(a, str) and a.isidentifier())
            for a in shape):
        raise SpecError(f"input {name!r}: shape {spec!r} is not valid; give a tuple of size names "
                        "or positive integers, e.g. ('n',) or (3, 'k')")
    return tuple(shape)


def _parse_inputs(inputs: Any) -> tuple[_Input, ...]:
    if isinstance(inputs, Mapping):
        items = list(inputs.items())
    elif isinstance(inputs, (list, tuple)) and all(isinstance(v, Variable) for v in inputs):
        items = [(v.name, v) for v in inputs]
    else:
        raise SpecError(f"inputs must be a dict name -> Variable or (shape, domain), or a list of "
                        f"Variables; got {type(inputs).__name__}")
    if not items:
        raise SpecError("inputs is empty: declare every argument, e.g. inputs={'x': (('n',), derive.REAL)}")
    out = []
    for name, spec in items:
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"input name {name!r} is not a valid Python identifier")
        if isinstance(spec, Variable):
            if spec.name != name:
                raise SpecError(f"inputs[{name!r}] is Variable {spec.name!r}: the key and the name must match")
            out.append(_Input(name, tuple(spec.shape), spec.domain))
        elif isinstance(spec, Domain):
            out.append(_Input(name, (), spec))
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Domain):
            out.append(_Input(name, _shape_of(name, spec[0]), spec[1]))
        else:
            out.append(_Input(name, _shape_of(name, spec), REAL))
    return tuple(out)


def _parse_sizes(sizes: Any, ins: Sequence[_Input]) -> list[dict[str, int]]:
    if sizes is None:
        sets = [{}]
    elif isinstance(sizes, Mapping):
        sets = [dict(sizes)]
    elif isinstance(sizes, (list, tuple)) and sizes and all(isinstance(s, Mapping) for s in sizes):
        sets = [dict(s) for s in sizes]
    else:
        raise SpecError(f"sizes must be a dict such as {{'n': 5}} or a list of them, got {sizes!r}")
    needed = set().union(*(i.size_names for i in ins))
    for s in sets:
        missing = sorted(needed - set(s))
        if missing:
            example = ", ".join(f"{m!r}: 3" for m in missing)
            raise SpecError(f"sizes {s} do not give {', '.join(missing)}; pass e.g. sizes={{{example}}}")
        bad = {k: v for k, v in s.items()
               if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= _MAX_SIZE}
        if bad:
            raise SpecError(f"sizes {bad} must be integers from 1 to {_MAX_SIZE}")
    return sets


def _check_volume(ins: Sequence[_Input], sets: Sequence[dict[str, int]], samples: int) -> None:
    """Refuse inputs too large to sample before any array is allocated (a MemoryError or
    minutes of finite differences otherwise)."""
    for s in sets:
        entries = sum(math.prod(i.resolve(s)) for i in ins)
        if entries > _MAX_SIZE or entries * samples > _MAX_VOLUME:
            shapes = ", ".join(f"{i.name}{i.resolve(s)}" for i in ins)
            raise SpecError(f"inputs {shapes} have {entries} entries per sample ({entries * samples} for "
                            f"{samples} samples); at most {_MAX_SIZE} per sample and {_MAX_VOLUME} in all: "
                            "check smaller sizes (a gradient that is right at n=8 is rarely wrong only at "
                            "n=10**6) or pass fewer samples")


def _parse_wrt(wrt: Any, ins: Sequence[_Input]) -> tuple[str, ...]:
    by_name = {i.name: i for i in ins}
    if wrt is None:
        names = [i.name for i in ins if i.domain.differentiable]
        if not names:
            raise SpecError("no input has a differentiable domain: nothing to differentiate with respect to")
        return tuple(names)
    names = [wrt] if isinstance(wrt, str) else list(wrt) if isinstance(wrt, (list, tuple)) else None
    if not names:
        raise SpecError(f"wrt must be an input name or a list of them, got {wrt!r}")
    for n in names:
        if n not in by_name:
            raise SpecError(f"wrt {n!r} is not an input (inputs: {', '.join(by_name)})")
        if not by_name[n].domain.differentiable:
            raise SpecError(f"cannot differentiate with respect to {n!r}, whose domain "
                            f"{by_name[n].domain} is discrete")
    if len(set(names)) != len(names):
        raise SpecError(f"wrt {names} names an input twice")
    return tuple(names)


def _validate_common(samples: Any, seed: Any, rtol: Any = None) -> None:
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise SpecError(f"samples must be a positive integer, got {samples!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, got {seed!r}")
    if rtol is not None and not (isinstance(rtol, (int, float)) and not isinstance(rtol, bool)
                                 and 0 < rtol < 1):
        raise SpecError(f"rtol must be a number between 0 and 1, got {rtol!r}")


def _draw(ins: Sequence[_Input], sizes: dict[str, int], rng: np.random.Generator,
          count: int) -> dict[str, np.ndarray]:
    return {i.name: np.asarray(i.domain.sample(rng, (count, *i.resolve(sizes)), sizes)) for i in ins}


def _jitter(arrays: dict[str, np.ndarray], names: Sequence[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Differentiable inputs moved by a few ulps with random signs: the values' conditioning."""
    out = dict(arrays)
    for n in names:
        a = arrays[n]
        out[n] = a * (1.0 + _JITTER_ULPS * EPS * rng.choice([-1.0, 1.0], size=a.shape))
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _name(fn: Any) -> str:
    return str(getattr(fn, "__name__", None) or type(fn).__name__)


# --- array kits: how numpy and torch values are made, read and stacked -----------------------

def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


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

    def dtype_problem(self, x: np.ndarray, forward: bool) -> str | None:
        k = x.dtype.kind
        if k == "f" and x.dtype.itemsize < 8:
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

    def dtype_problem(self, x: Any, forward: bool) -> str | None:
        t = self.torch
        if x.dtype in (t.float32, t.float16, t.bfloat16):
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
                 split: Callable[[Any], list[Any]], forward: bool) -> None:
        self.fn, self.label, self.kit, self.split, self.forward = fn, label, kit, split, forward
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
            problem = self.kit.dtype_problem(p, self.forward)
            if problem:
                raise SpecError(f"{self.label} returned {problem}; derive checks in float64: keep the "
                                "inputs' dtype (no astype(np.float32), .float() or int casts)")
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


@dataclass
class _GradientCheck:
    forward: Callable[..., Any]
    gradient: Callable[..., Any]
    ins: tuple[_Input, ...]
    wrt: tuple[str, ...]
    samples: int
    seed: int
    backend: str | None
    rtol: float | None
    name: str
    tol: Tolerance = field(default_factory=lambda: TOLERANCES["float64"])
    kit: Any = None
    use_complex: bool = True
    out_shape: tuple[int, ...] = ()

    # -- callables on numpy batches
    def _args(self, raw: dict[str, np.ndarray]) -> dict[str, Any]:
        return {k: self.kit.native(v) for k, v in raw.items()}

    def _f(self, fwd: _Caller, raw: dict[str, np.ndarray]) -> np.ndarray:
        count = next(iter(raw.values())).shape[0]
        if self.kit.name == "torch":
            with self.kit.torch.no_grad():
                (out,) = fwd(self._args(raw), count)
        else:
            (out,) = fwd(self._args(raw), count)
        return _flat(self.kit.numpy(out))

    def _claim(self, grad: _Caller, raw: dict[str, np.ndarray], m: int) -> dict[str, np.ndarray]:
        count = next(iter(raw.values())).shape[0]
        parts = grad(self._args(raw), count)
        out = {}
        for k, p in zip(self.wrt, parts):
            a = self.kit.numpy(p).astype(np.float64).reshape(count, -1)
            entries = m * math.prod(raw[k].shape[1:])
            if a.shape[1] == 1 < entries:  # a constant returned as a scalar: it broadcasts
                a = np.broadcast_to(a, (count, entries))
            out[k] = a.reshape(count, m, -1)
        return out

    def _complex_step(self, fwd: _Caller, raw: dict[str, np.ndarray], m: int) -> dict[str, np.ndarray] | None:
        count = next(iter(raw.values())).shape[0]
        out: dict[str, np.ndarray] = {}
        for k in self.wrt:
            base = _flat(raw[k])
            cols = []
            for j in range(base.shape[1]):
                z = base.astype(np.complex128)
                z[:, j] += 1j * COMPLEX_STEP
                args = dict(raw, **{k: z.reshape(raw[k].shape)})
                try:
                    (val,) = fwd(args, count)
                except Exception:
                    return None
                val = np.asarray(val)
                if val.dtype.kind != "c":
                    return None
                cols.append(_flat(val).imag / COMPLEX_STEP)
            out[k] = np.stack(cols, axis=2).reshape(count, m, -1)
        return out

    def _autograd(self, fwd: _Caller, raw: dict[str, np.ndarray], m: int) -> dict[str, np.ndarray]:
        torch = self.kit.torch
        count = next(iter(raw.values())).shape[0]
        args = self._args(raw)
        leaves = {k: args[k].clone().requires_grad_(True) for k in self.wrt}
        args.update(leaves)
        with torch.enable_grad():
            (out,) = fwd(args, count)
            out = out.reshape(count, -1)
            rows: dict[str, list[Any]] = {k: [] for k in self.wrt}
            for a in range(m):
                if out.requires_grad:
                    grads = torch.autograd.grad(out[:, a].sum(), [leaves[k] for k in self.wrt],
                                                retain_graph=True, allow_unused=True)
                else:
                    grads = [None] * len(self.wrt)
                for k, g in zip(self.wrt, grads):
                    rows[k].append(torch.zeros(count, leaves[k][0].numel(), dtype=torch.float64)
                                   if g is None else g.reshape(count, -1))
        return {k: torch.stack(rows[k], dim=1).detach().cpu().numpy() for k in self.wrt}

    def _differences(self, fwd: _Caller, raw: dict[str, np.ndarray], f0: np.ndarray
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """Central differences with steps h and 2h, and the 4th difference (f(x+2h) + f(x-2h)
        - 4 f(x+h) - 4 f(x-h) + 6 f(x)) / 2h: O(h^3) where f is smooth, minus the jump of the
        slope at a kink exactly at x (relu at 0), where the central differences agree with
        each other (on the average slope, 0.5) and so cannot see it."""
        count, m = f0.shape
        d1: dict[str, np.ndarray] = {}
        d2: dict[str, np.ndarray] = {}
        d4: dict[str, np.ndarray] = {}
        hmin = np.full(count, np.inf)
        for k in self.wrt:
            base = _flat(raw[k]).astype(np.float64)
            c1, c2, c4 = [], [], []
            for j in range(base.shape[1]):
                h = _FD_STEP * np.maximum(1.0, np.abs(base[:, j]))
                hmin = np.minimum(hmin, h)
                points = []
                for mult in (1.0, -1.0, 2.0, -2.0):
                    a = base.copy()
                    a[:, j] += mult * h
                    points.append(a)
                stacked = {n: np.concatenate([v] * 4) for n, v in raw.items()}
                stacked[k] = np.concatenate(points).reshape((4 * count, *raw[k].shape[1:]))
                vals = self._f(fwd, stacked).reshape(4, count, m)
                steps = [p[:, j] for p in points]
                with np.errstate(all="ignore"):  # overflowing values: handled as non-finite later
                    c1.append((vals[0] - vals[1]) / (steps[0] - steps[1])[:, None])
                    c2.append((vals[2] - vals[3]) / (steps[2] - steps[3])[:, None])
                    c4.append((vals[2] + vals[3] - 4.0 * (vals[0] + vals[1]) + 6.0 * f0)
                              / (steps[0] - steps[1])[:, None])
            d1[k] = np.stack(c1, axis=2)
            d2[k] = np.stack(c2, axis=2)
            d4[k] = np.stack(c4, axis=2)
        return d1, d2, d4, hmin

    def _evaluate(self, fwd: _Caller, grad: _Caller, raw: dict[str, np.ndarray],
                  rng: np.random.Generator) -> _Batch:
        jittered = _jitter(raw, self.wrt, rng)
        f0 = self._f(fwd, raw)
        m = f0.shape[1]
        noise_f = _noise(f0, self._f(fwd, jittered))
        mags = [_absmax(raw[i.name]) for i in self.ins if i.domain.differentiable] + [_absmax(f0)]
        mag = np.maximum(1.0, np.max(mags, axis=0))
        d1, d2, d4, hmin = self._differences(fwd, raw, f0)
        batch = _Batch(raw, f0, noise_f, hmin, mag, d1, d2, d4,
                       self._claim(grad, raw, m), self._claim(grad, jittered, m))
        if self.kit.name == "torch":
            batch.exact, batch.exact_p = self._autograd(fwd, raw, m), self._autograd(fwd, jittered, m)
        elif self.use_complex:
            batch.exact = self._complex_step(fwd, raw, m)
            batch.exact_p = self._complex_step(fwd, jittered, m) if batch.exact is not None else None
            if batch.exact is None or batch.exact_p is None:
                self.use_complex = False
                batch.exact = batch.exact_p = None
        return batch

    def _slack(self, b: _Batch) -> np.ndarray:
        """Rounding in the extrapolated difference: about 1.5 * (rounding of f) / h, generously."""
        return 6.0 * (EPS * _absmax(b.f0) + b.noise_f) / b.hmin

    def _unstable(self, b: _Batch) -> np.ndarray:
        """Samples with a kink or a jump within the step: the steps h and 2h disagree, or
        the 4th difference is not small (a kink exactly at the sample)."""
        d1, d2, d4 = _cat(b.d1), _cat(b.d2), _cat(b.d4)
        with np.errstate(invalid="ignore"):
            gap = np.maximum(np.abs(d1 - d2), np.abs(d4))
            diff = np.where(np.isfinite(gap), gap, np.inf).max(axis=1, initial=0.0)
        return ~(diff <= self.tol.central * _absmax(d2) + 2 * self._slack(b))

    def _bad(self, b: _Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nonfinite = ~np.isfinite(b.f0).all(axis=1)
        unstable = self._unstable(b) & ~nonfinite
        exact_bad = np.zeros_like(nonfinite)
        if b.exact is not None:
            exact_bad = ~np.isfinite(_cat(b.exact)).all(axis=1) & ~nonfinite & ~unstable
        return nonfinite, unstable, exact_bad

    def detect(self, raw: dict[str, np.ndarray], count: int) -> tuple[_Caller, _Caller]:
        """Which array library the callables speak: numpy first, torch when numpy fails."""
        kinds = [self.backend] if self.backend else ["numpy", "torch"]
        errors = []
        for kind in kinds:
            try:
                kit = _NumpyKit() if kind == "numpy" else _TorchKit()
            except ImportError:
                errors.append(f"{kind}: torch is not installed")
                continue
            self.kit = kit
            try:
                return self._probe(raw, count)
            except SpecError:
                raise
            except Exception as exc:  # the user's code does not run on this kind of array
                errors.append(f"on {kind} float64 inputs: {type(exc).__name__}: {_one_line(exc)}")
        raise SpecError(f"{self.name}: the forward or the gradient failed "
                        f"{'; '.join(errors)}; check the argument names "
                        f"({', '.join(i.name for i in self.ins)}) and shapes")

    def _probe(self, raw: dict[str, np.ndarray], count: int) -> tuple[_Caller, _Caller]:
        fname, gname = _name(self.forward), _name(self.gradient)
        names = [i.name for i in self.ins]
        fwd = _Caller(_by_name(self.forward, names, f"forward {fname}"), f"forward {fname}", self.kit, _forward_split(f"forward {fname}"), True)
        grad = _Caller(_by_name(self.gradient, names, f"gradient {gname}"), f"gradient {gname}", self.kit,
                       _gradient_split(f"gradient {gname}", self.wrt), False)
        args = self._args(raw)
        try:
            fwd.probe(args, count)
        except _NotThisKind as exc:
            raise RuntimeError(f"forward {exc}") from exc
        assert fwd.shapes is not None
        out_shape = self.out_shape = fwd.shapes[0]
        by_name = {i.name: i for i in self.ins}
        shapes = {k: tuple(raw[k].shape[1:]) for k in by_name}
        expected = [(*out_shape, *shapes[k]) for k in self.wrt]

        def describe(i: int, got: tuple[int, ...]) -> str:
            k = self.wrt[i]
            what = ("the shape of " + k) if not out_shape else \
                f"forward output shape {out_shape} + shape of {k} {shapes[k]}"
            hint = ""
            if out_shape and got == out_shape and out_shape == shapes[k]:
                hint = ("; for an elementwise forward the Jacobian is diagonal: return np.diag(d) "
                        "(torch.diag(d))")
            return (f"gradient {gname} returned shape {got} for {k!r}; expected "
                    f"{expected[i]} ({what}){hint}")
        try:
            grad.probe(args, count, expected, describe)
        except _NotThisKind as exc:
            raise RuntimeError(f"gradient {exc}") from exc
        return fwd, grad

    def run_size(self, sizes: dict[str, int], index: int, first: bool) -> SizeResult:
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, index])
        count = self.samples
        raw = _draw(self.ins, sizes, rng, count)
        if first or self.kit is None:
            fwd, grad = self.detect(raw, count)
        else:
            fwd, grad = self._probe(raw, count)
        notes: list[str] = []
        batch = self._evaluate(fwd, grad, raw, rng)
        redrawn = 0
        for _ in range(_ROUNDS):
            bad = np.logical_or.reduce(self._bad(batch))
            if not bad.any():
                break
            redrawn += int(bad.sum())
            idx = np.flatnonzero(bad)
            fresh = self._evaluate(fwd, grad, _draw(self.ins, sizes, rng, len(idx)), rng)
            batch.replace(idx, fresh)
        if redrawn:
            notes.append(f"{redrawn} samples redrawn (non-finite forward, or a kink within the "
                         "finite-difference step)")
        mode = self.kit.name
        label_sizes = ", ".join([mode, "float64", *(f"{k}={n}" for k, n in sizes.items())])
        nonfinite, unstable, exact_bad = self._bad(batch)

        def stop(reason: str, sources: tuple[str, ...] = ()) -> SizeResult:
            return SizeResult(dict(sizes), INCONCLUSIVE, _NO_PROOF, (), reason, None, sources,
                              tuple(notes), round(time.perf_counter() - start, 4))

        if nonfinite.any():
            return stop(f"the forward value is not finite at {int(nonfinite.sum())} of {count} "
                        "samples even after redrawing; no finite reference")
        if unstable.any():
            return stop(f"central differences are unstable at {int(unstable.sum())} of {count} samples "
                        "even after redrawing (a kink or jump within the step, such as relu or abs at 0, "
                        "or curvature on the scale of the step), e.g. at "
                        f"{_inputs_at(batch.raw, int(np.argmax(unstable)))}: no witness, no verdict")
        if exact_bad.any():
            truth = "autograd" if mode == "torch" else "complex step"
            return stop(f"the {truth} derivative is not finite at {int(exact_bad.sum())} of {count} samples")

        exact_name = "autograd" if mode == "torch" else "complex step"
        slack = self._slack(batch)
        floor = self.tol.noise_factor * EPS * batch.mag**2
        fd_err = _noise(_cat(batch.d1), _cat(batch.d2))
        rich = {k: batch.richardson(k) for k in self.wrt}
        if batch.exact is not None:
            noise_t = _noise(_cat(batch.exact), _cat(batch.exact_p))
            cmp = compare(_cat(rich), _cat(batch.exact), self.tol.central, noise_t, self.tol.noise_factor,
                          atol=slack + floor + fd_err)
            if not cmp.ok:
                s, e = cmp.worst
                a, b = _cat(batch.exact)[s, e], _cat(rich)[s, e]
                detail = (f"truth sources disagree: {exact_name} = {_fmt(a)} but central differences = "
                          f"{_fmt(b)} (|diff| {_fmt(cmp.abs_error[s])} > tol {_fmt(cmp.tol[s])}) at "
                          f"{_inputs_at(batch.raw, s)}")
                if mode == "torch":
                    return stop(f"d/d({', '.join(self.wrt)}) [{label_sizes}]: {detail}",
                                (exact_name, "central differences"))
                notes.append(f"complex step not used: it gives {_fmt(a)} but central differences {_fmt(b)} "
                             f"at sample {s}; the forward is not complex-analytic (abs, real parts, comparisons?)")
                self.use_complex = False
                batch.exact = batch.exact_p = None
        sources = ((exact_name,) if batch.exact is not None else ()) + ("central differences",)
        fd_only = batch.exact is None
        if fd_only:
            why = ("the forward is numpy code that does not accept complex input, or is not complex-analytic"
                   if mode == "numpy" else "no exact truth")
            notes.append(f"central differences only ({why}): at most consistent; relative errors "
                         f"below {_fmt(max(self.tol.central, self.rtol or 0.0))} cannot be refuted "
                         "(write the forward in torch, or make it accept complex input, for a sharper check)")

        errors: list[Comparison] = []
        refuted: dict[str, Any] | None = None
        rtol_used = max(self.tol.central, self.rtol or 0.0) if fd_only else (self.rtol or self.tol.exact)
        for k in self.wrt:
            claimed = batch.claim[k]
            noise = np.maximum(_noise(claimed, batch.claim_p[k]),
                               _noise(batch.exact[k], batch.exact_p[k]) if not fd_only else 0.0)
            fd_tol = slack + floor + fd_err
            if fd_only:
                primary = compare(claimed, rich[k], rtol_used, noise, self.tol.noise_factor, atol=fd_tol)
                fails = primary.abs_error > primary.tol
                truth = rich[k]
            else:
                assert batch.exact is not None
                primary = compare(claimed, batch.exact[k], rtol_used, noise, self.tol.noise_factor, atol=floor)
                witness = compare(claimed, rich[k], max(RICHARDSON_RTOL, rtol_used), noise,
                                  self.tol.noise_factor, atol=fd_tol)
                fails = (primary.abs_error > primary.tol) & (witness.abs_error > witness.tol)
                shielded = int(((primary.abs_error > primary.tol) & ~fails).sum())
                if shielded:
                    notes.append(f"d/d{k}: at {shielded} samples the gradient differs from the {exact_name} "
                                 f"(max rel {_fmt(primary.max_rel)}) but agrees with the extrapolated central "
                                 "differences; not refuted there, since the exact truth may be the one that is "
                                 "off (abs, real parts or detach in the forward?)")
                truth = batch.exact[k]
            errors.append(primary)
            if fails.any() and refuted is None:
                refuted = _counterexample(primary, fails, claimed, truth, batch.raw,
                                          (*self.out_shape, *batch.raw[k].shape[1:]), self.seed)
                refuted.update(kind="gradient", claim=f"d/d{k}", wrt=k, backend=mode, sizes=dict(sizes),
                               truth="central differences" if fd_only else exact_name)
                refuted["rerun"] = (f"derive.check_gradient(<{_name(self.forward)}>, "
                                    f"<{_name(self.gradient)}>, seed={self.seed})")
        numeric = (Numeric(mode, "float64", count, max(c.max_abs for c in errors),
                           max(c.max_rel for c in errors), rtol_used),)
        seconds = round(time.perf_counter() - start, 4)
        if refuted is not None:
            reason = (f"{refuted['claim']} [{label_sizes}]: max|claim - truth| = {_fmt(refuted['abs_error'])} "
                      f"at entry {tuple(refuted['entry'])} > tol {_fmt(refuted['tolerance'])}; seed={self.seed}")
            return SizeResult(dict(sizes), REFUTED, _NO_PROOF, numeric, reason, refuted, sources,
                              tuple(notes), seconds)
        reason = (f"agrees with {' and '.join(sources)} at {count} samples [{label_sizes}] "
                  f"(max rel error {_fmt(numeric[0].max_rel_error)}, rtol {_fmt(rtol_used)}); "
                  "no proof (user code)")
        if fd_only:
            reason += (f"; central differences only: relative errors below {_fmt(rtol_used)} "
                       "cannot be refuted")
        return SizeResult(dict(sizes), CONSISTENT, _NO_PROOF, numeric, reason, None, sources,
                          tuple(notes), seconds)


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _combine(name: str, per_size: list[SizeResult], start: float, family: str) -> Result:
    verdict = worst([r.verdict for r in per_size])
    decisive = next(r for r in per_size if r.verdict == verdict)
    reason = decisive.reason
    if len(per_size) > 1 and verdict == CONSISTENT:
        reason = "; ".join(r.reason for r in per_size)
    return Result(name, verdict, _NO_PROOF, merge_numeric(per_size), round(time.perf_counter() - start, 4),
                  tuple(per_size), reason, decisive.counterexample, family)


def check_gradient(forward: Callable[..., Any], gradient: Callable[..., Any], *, inputs: Any,
                   wrt: str | Sequence[str] | None = None, sizes: Any = None, samples: int = DEFAULT_SAMPLES,
                   seed: int = 0, backend: str | None = None, rtol: float | None = None,
                   name: str | None = None) -> Result:
    """Judge a hand-written `gradient` of `forward` (numpy or torch code, called with the inputs
    as keyword arguments) on random inputs drawn inside the declared domains.

    `gradient` returns, per name in `wrt` (a tuple or dict for several), an array of shape
    forward-output shape + input shape (the gradient for a scalar forward, the Jacobian for an
    array one), or a scalar, a constant that broadcasts to that shape; any other shape is an
    error. Returns a Result: "consistent", "refuted" (with a reproducible counterexample)
    or "inconclusive" (also where every sample lands on a kink, such as relu at 0); never
    "proved". Raises SpecError for malformed arguments only.
    """
    start = time.perf_counter()
    for label, fn in (("forward", forward), ("gradient", gradient)):
        if not callable(fn):
            raise SpecError(f"{label} must be a callable (a function of the inputs), got {type(fn).__name__}")
    _validate_common(samples, seed, rtol)
    if backend not in (None, "numpy", "torch"):
        raise SpecError(f"backend must be None (detect), 'numpy' or 'torch', got {backend!r}")
    if name is not None and not isinstance(name, str):
        raise SpecError(f"name must be a string, got {name!r}")
    ins = _parse_inputs(inputs)
    size_sets = _parse_sizes(sizes, ins)
    _check_volume(ins, size_sets, samples)
    wrt_names = _parse_wrt(wrt, ins)
    if backend == "torch":
        _require_torch("backend='torch'")
    check = _GradientCheck(forward, gradient, ins, wrt_names, samples, seed, backend,
                           float(rtol) if rtol is not None else None, name or _name(forward))
    per_size = []
    for i, s in enumerate(size_sets):
        check.use_complex = True
        per_size.append(check.run_size(s, i, first=i == 0))
    return _combine(check.name, per_size, start, "user code")


def _require_torch(what: str) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise SpecError(f"{what} needs torch, which is not installed; "
                        "pip install 'derive-checker[torch]'") from exc
    return torch


# --- check_autograd_function ------------------------------------------------------------------

class _Context:
    """Stands in for the ctx an old-style forward(ctx, ...) receives when it is called directly."""

    def __init__(self, inputs: list[Any]) -> None:
        self.needs_input_grad = tuple(bool(getattr(x, "requires_grad", False)) for x in inputs)
        self.saved_tensors: tuple[Any, ...] = ()

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors

    def mark_dirty(self, *args: Any) -> None:
        pass

    def mark_non_differentiable(self, *args: Any) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass


def check_autograd_function(fn_class: Any, *, inputs: Any, sizes: Any = None,
                            samples: int = DEFAULT_SAMPLES, seed: int = 0,
                            rtol: float | None = None) -> Result:
    """Judge a torch.autograd.Function's backward against its own forward's values.

    Per sample, fresh mean-zero Gaussian cotangents v_i and directions u_k: (v_i^T J) u_k from the
    backward must equal v_i^T (J u_k). The exact truth is the complex step where the forward runs
    on complex tensors, else autograd of the forward's own operations (the forward called
    directly, so torch records them), witnessed by Richardson-extrapolated central differences;
    with neither, central differences alone (errors below their tolerance are not refuted).
    For a forward that a catalog or spec identity defines, `derive.check_backward` is faster.
    """
    start = time.perf_counter()
    torch = _require_torch("check_autograd_function")
    if not (isinstance(fn_class, type) and issubclass(fn_class, torch.autograd.Function)):
        raise SpecError(f"fn_class must be a torch.autograd.Function subclass, got {fn_class!r}")
    _validate_common(samples, seed, rtol)
    ins = _parse_inputs(inputs)
    size_sets = _parse_sizes(sizes, ins)
    _check_volume(ins, size_sets, samples)
    if not any(i.domain.differentiable for i in ins):
        raise SpecError("no input has a differentiable domain: nothing to check the backward against")
    name = fn_class.__name__
    per_size = [_FunctionCheck(fn_class, ins, samples, seed, rtol, torch).run_size(s, i)
                for i, s in enumerate(size_sets)]
    return _combine(name, per_size, start, "user code")


@dataclass
class _FunctionCheck:
    fn_class: Any
    ins: tuple[_Input, ...]
    samples: int
    seed: int
    rtol: float | None
    torch: Any
    tol: Tolerance = field(default_factory=lambda: TOLERANCES["float64"])
    use_complex: bool = True
    use_body: bool = True

    def _body(self, leaves: dict[str, Any]) -> list[Any] | None:
        """The Function's own forward called directly, so autograd records its operations: an
        exact truth for the backward when the forward is built from differentiable torch ops
        (None when it is not: custom kernels, numpy, detached values)."""
        torch = self.torch
        if not self.use_body:
            return None
        args = list(leaves.values())
        new_style = any("setup_context" in vars(k) for k in self.fn_class.__mro__
                        if k.__module__.split(".")[0] != "torch")
        try:
            with torch.enable_grad(), np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = self.fn_class.forward(*args) if new_style else self.fn_class.forward(_Context(args), *args)
        except Exception:  # the forward needs the real context or machinery: no such truth
            self.use_body = False
            return None
        outs = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, torch.Tensor)]
        if not outs or not any(o.requires_grad for o in outs):
            self.use_body = False
            return None
        return outs

    def _projected_vjps(self, outs: list[Any], leaves: list[Any], v: np.ndarray, u: np.ndarray,
                        sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(v_i^T J) u_k by autograd through `outs` for every cotangent v_i and direction u_k,
        and the same with absolute values (a rounding scale)."""
        torch = self.torch
        proj = np.zeros((len(v), len(u)))
        absum = np.zeros((len(v), len(u)))
        for i in range(len(v)):
            cot, offset = [], 0
            for o in outs:
                cot.append(torch.as_tensor(v[i, offset:offset + o.numel()]).reshape(o.shape).to(o.dtype))
                offset += o.numel()
            pairs = [(o, c) for o, c in zip(outs, cot) if o.requires_grad]
            grads = (torch.autograd.grad([p[0] for p in pairs], leaves, grad_outputs=[p[1] for p in pairs],
                                         retain_graph=True, allow_unused=True) if pairs else [None] * len(leaves))
            g = np.concatenate([np.zeros(s) if gr is None else gr.detach().cpu().numpy().ravel()
                                for gr, s in zip(grads, sizes)])
            proj[i] = u @ g
            absum[i] = np.abs(u) @ np.abs(g)
        return proj, absum

    def _apply(self, values: dict[str, np.ndarray | Any], grad: bool = False) -> list[Any]:
        torch = self.torch
        args = [v if isinstance(v, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(v))
                for v in values.values()]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.filterwarnings("error", message=".*imaginary part.*")
            if grad:
                out = self.fn_class.apply(*args)
            else:
                with torch.no_grad():
                    out = self.fn_class.apply(*args)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return [o for o in outs if isinstance(o, torch.Tensor)]

    def _value(self, values: dict[str, Any]) -> np.ndarray:
        outs = self._apply(values)
        if not outs:
            raise SpecError(f"{self.fn_class.__name__}.apply returned no tensor")
        return np.concatenate([o.detach().cpu().numpy().astype(np.complex128 if o.is_complex() else np.float64)
                               .ravel() for o in outs])

    def _sample(self, raw: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, Any] | None:
        """One sample's comparisons; None where the forward is not finite or a kink is in the step."""
        torch = self.torch
        diff = [i.name for i in self.ins if i.domain.differentiable]
        f0 = self._value(raw)
        if f0.dtype.kind == "c" or not np.isfinite(f0).all():
            return None
        m = f0.size
        sizes = [raw[n].size for n in diff]
        n_total = sum(sizes)
        xmax = max(float(np.max(np.abs(raw[n]), initial=0.0)) for n in diff)
        h = _FD_STEP * max(1.0, xmax)
        u = rng.normal(size=(DIRECTIONS, n_total))
        u /= np.max(np.abs(u), axis=1, keepdims=True)
        v = rng.normal(size=(DIRECTIONS, m))

        def moved(vals: dict[str, np.ndarray], step: Any) -> dict[str, Any]:
            out = dict(vals)
            offset = 0
            for n, size in zip(diff, sizes):
                out[n] = vals[n] + step[offset:offset + size].reshape(vals[n].shape)
                offset += size
            return out

        def measure(vals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            fv = self._value(vals)
            d1, d2, cs = [], [], []
            for k in range(DIRECTIONS):
                fp, fm = self._value(moved(vals, h * u[k])), self._value(moved(vals, -h * u[k]))
                fp2, fm2 = self._value(moved(vals, 2 * h * u[k])), self._value(moved(vals, -2 * h * u[k]))
                d1.append((fp - fm) / (2 * h))
                d2.append((fp2 - fm2) / (4 * h))
                if self.use_complex:
                    try:
                        z = self._value(moved({n: np.asarray(a, dtype=np.complex128) if n in diff else a
                                               for n, a in vals.items()}, 1j * COMPLEX_STEP * u[k]))
                        if z.dtype.kind != "c":
                            raise TypeError("real output")
                        cs.append(z.imag / COMPLEX_STEP)
                    except Exception:
                        self.use_complex = False
            leaves = {n: torch.as_tensor(np.ascontiguousarray(a)) for n, a in vals.items()}
            for n in diff:
                leaves[n] = leaves[n].clone().requires_grad_(True)
            with torch.enable_grad():
                outs = self._apply(leaves, grad=True)
                try:
                    claim, absum = self._projected_vjps(outs, [leaves[n] for n in diff], v, u, sizes)
                except RuntimeError as exc:
                    raise SpecError(f"{self.fn_class.__name__}.backward failed: {_one_line(exc)}") from exc
            body_leaves = {n: torch.as_tensor(np.ascontiguousarray(a)) for n, a in vals.items()}
            for n in diff:
                body_leaves[n] = body_leaves[n].clone().requires_grad_(True)
            body = self._body(body_leaves)
            exact = None
            if body is not None and len(body) == len(outs):
                exact, _ = self._projected_vjps(body, [body_leaves[n] for n in diff], v, u, sizes)
            rich = [(4 * a - b) / 3 for a, b in zip(d1, d2)]
            res = {"f": fv, "d1": v @ np.stack(d1, 1), "d2": v @ np.stack(d2, 1),
                   "rich": v @ np.stack(rich, 1), "claim": claim, "absum": absum,
                   "fd_abs": np.abs(v) @ np.abs(np.stack(rich, 1))}
            if self.use_complex and len(cs) == DIRECTIONS:
                res["cs"] = v @ np.stack(cs, 1)
            if exact is not None:
                res["body"] = exact
            return res

        here = measure(raw)
        jittered = _jitter(raw, diff, rng)
        there = measure(jittered)
        vnorm = float(np.max(np.sum(np.abs(v), axis=1)))
        noise_f = float(np.max(np.abs(here["f"] - there["f"]), initial=0.0))
        slack = vnorm * 6.0 * (EPS * float(np.max(np.abs(here["f"]), initial=0.0)) + noise_f) / h
        fd_err = float(np.max(np.abs(here["d1"] - here["d2"]), initial=0.0))
        if not (np.isfinite(here["d1"]).all() and np.isfinite(here["d2"]).all()) or \
                fd_err > self.tol.central * float(np.max(np.abs(here["d2"]), initial=0.0)) + 2 * slack:
            return None
        mag = max(1.0, xmax, float(np.max(np.abs(f0), initial=0.0)))
        out = {"raw": raw, "u": u, "v": v, "here": here, "there": there, "slack": slack, "fd_err": fd_err,
               "round": EPS * self.tol.noise_factor * (float(_absmax(here["absum"][None])[0]) +
                                                       float(np.max(here["fd_abs"])) * mag)}
        return out

    def run_size(self, sizes: dict[str, int], index: int) -> SizeResult:
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, index])
        rows: list[dict[str, Any]] = []
        redrawn = 0
        for _ in range(self.samples):
            row = None
            for _attempt in range(_ROUNDS + 1):
                raw = {k: v[0] for k, v in _draw(self.ins, sizes, rng, 1).items()}
                row = self._sample(raw, rng)
                if row is not None:
                    break
                redrawn += 1
            if row is None:
                return SizeResult(dict(sizes), INCONCLUSIVE, _NO_PROOF, (),
                                  f"the forward value is not finite, or central differences are unstable, "
                                  f"at a sample even after {_ROUNDS} redraws; no finite reference",
                                  None, (), (), round(time.perf_counter() - start, 4))
            rows.append(row)
        count = len(rows)
        label_sizes = ", ".join(["torch", "float64", *(f"{k}={n}" for k, n in sizes.items())])
        notes = [f"{DIRECTIONS}x{DIRECTIONS} (cotangent, direction) pairs per sample, fresh Gaussian"]
        if redrawn:
            notes.append(f"{redrawn} samples redrawn (non-finite forward, or a kink within the step)")

        def stack(key: str, where: str = "here") -> np.ndarray:
            return np.stack([r[where][key].ravel() for r in rows])

        claim, claim_p = stack("claim"), stack("claim", "there")
        rich = stack("rich")
        slack = np.array([r["slack"] for r in rows])
        fd_err = np.array([r["fd_err"] for r in rows])
        rounding = np.array([r["round"] for r in rows])
        noise_c = _noise(claim, claim_p)
        sources: tuple[str, ...] = ("central differences",)
        # the exact truth: the complex step, else autograd of the forward's own operations
        exact_name, have_cs = "", False
        for key, what in (("cs", "complex step"), ("body", f"autograd of {self.fn_class.__name__}.forward")):
            if (key != "cs" or self.use_complex) and all(key in r["here"] and key in r["there"] for r in rows):
                cs, cs_p = stack(key), stack(key, "there")
                noise = np.maximum(noise_c, _noise(cs, cs_p))
                agree = compare(rich, cs, self.tol.central, noise, self.tol.noise_factor,
                                atol=slack + fd_err + rounding)
                if agree.ok:
                    exact_name, have_cs, sources = what, True, (what, "central differences")
                    break
                s, e = agree.worst
                notes.append(f"{what} not used: it gives {_fmt(cs[s, e])} but central differences "
                             f"{_fmt(rich[s, e])}" + ("; the forward is not complex-analytic" if key == "cs" else ""))
        if have_cs:
            rtol_used = self.rtol or self.tol.exact
            primary = compare(claim, cs, rtol_used, noise, self.tol.noise_factor, atol=rounding)
            witness = compare(claim, rich, max(RICHARDSON_RTOL, rtol_used), noise, self.tol.noise_factor,
                              atol=slack + fd_err + rounding)
            fails = (primary.abs_error > primary.tol) & (witness.abs_error > witness.tol)
            shielded = int(((primary.abs_error > primary.tol) & ~fails).sum())
            if shielded:
                notes.append(f"at {shielded} samples the backward differs from the {exact_name} "
                             f"(max rel {_fmt(primary.max_rel)}) but agrees with the extrapolated central "
                             f"differences; not refuted there, since the {exact_name} may be the one that is off")
            truth = cs
        else:
            rtol_used = max(self.tol.central, self.rtol or 0.0)
            noise = noise_c
            primary = compare(claim, rich, rtol_used, noise, self.tol.noise_factor,
                              atol=slack + fd_err + rounding)
            fails = primary.abs_error > primary.tol
            truth = rich
            notes.append(f"the forward neither runs on complex tensors nor is built from differentiable torch "
                         f"operations: central differences only, at most consistent; relative errors below "
                         f"{_fmt(rtol_used)} cannot be refuted")
        fails = fails | ~np.isfinite(claim).all(axis=1)  # a NaN backward never passes a comparison
        numeric = (Numeric("torch", "float64", count, primary.max_abs, primary.max_rel, rtol_used),)
        seconds = round(time.perf_counter() - start, 4)
        name = self.fn_class.__name__
        if fails.any():
            raw = {k: np.stack([r["raw"][k] for r in rows]) for k in rows[0]["raw"]}
            cx = _counterexample(primary, fails, claim, truth, raw, (DIRECTIONS, DIRECTIONS), self.seed)
            s = cx["sample"]
            i, k = cx["entry"]
            cx.update(kind="vjp", claim=f"{name}.backward", backend="torch", sizes=dict(sizes),
                      truth=sources[0], cotangent=rows[s]["v"][i].tolist(), direction=rows[s]["u"][k].tolist(),
                      rerun=f"derive.check_autograd_function(<{name}>, seed={self.seed})")
            reason = (f"{name}.backward [{label_sizes}]: max|(v^T J) u - v^T (J u)| = {_fmt(cx['abs_error'])} "
                      f"at (cotangent, direction) {tuple(cx['entry'])} > tol {_fmt(cx['tolerance'])}; "
                      f"seed={self.seed}")
            return SizeResult(dict(sizes), REFUTED, _NO_PROOF, numeric, reason, cx, sources, tuple(notes), seconds)
        reason = (f"backward agrees with {' and '.join(sources)} in VJP checks at {count} samples "
                  f"[{label_sizes}] (max rel error {_fmt(primary.max_rel)}, rtol {_fmt(rtol_used)}); "
                  "no proof (user code)")
        if not have_cs:
            reason += f"; central differences only: relative errors below {_fmt(rtol_used)} cannot be refuted"
        return SizeResult(dict(sizes), CONSISTENT, _NO_PROOF, numeric, reason, None, sources, tuple(notes), seconds)


# --- assertions -------------------------------------------------------------------------------

def _message(result: Result, what: str) -> str:
    lines = [f"{what}: {result.verdict}", f"  {result.reason}"]
    cx = result.counterexample
    if cx:
        inputs = ", ".join(f"{k}={v}" for k, v in cx["inputs"].items())
        lines += [f"  inputs: {inputs}",
                  f"  entry {tuple(cx['entry'])}: claimed {cx['claimed']!r}, true {cx['true']!r} "
                  f"(abs error {_fmt(cx['abs_error'])}, rel error {_fmt(cx['rel_error'])}, "
                  f"tolerance {_fmt(cx['tolerance'])}; truth: {cx.get('truth', '?')})",
                  f"  seed: {cx['seed']} (sample {cx['sample']})",
                  f"  rerun: {cx['rerun']}"]
    for size in result.sizes:
        lines += [f"  note: {n}" for n in size.notes]
    return "\n".join(lines)


def assert_gradient(forward: Callable[..., Any], gradient: Callable[..., Any], **options: Any) -> Result:
    """check_gradient, raising AssertionError with the counterexample unless it is consistent."""
    result = check_gradient(forward, gradient, **options)
    if not result.ok:
        raise AssertionError(_message(result, f"check_gradient({result.name}, {_name(gradient)})"))
    return result


def assert_autograd_function(fn_class: Any, **options: Any) -> Result:
    """check_autograd_function, raising AssertionError with the counterexample unless consistent."""
    result = check_autograd_function(fn_class, **options)
    if not result.ok:
        raise AssertionError(_message(result, f"check_autograd_function({result.name})"))
    return result
