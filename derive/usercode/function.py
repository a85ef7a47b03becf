"""check_autograd_function: a torch.autograd.Function's backward against its own forward.

The truth is autograd of the Function's own forward, called directly so that torch records its
operations (old-style `forward(ctx, ...)` gets a stand-in ctx), in float64 from the same rounded
inputs; central differences of `.apply` along random directions witness it. In a low precision
the baseline is that same forward run in the low precision. Where autograd cannot see into the
forward (custom kernels, numpy inside), the Function is checked as a black box in float64
(`derive.usercode.blackbox`: complex step and central differences, one sample at a time).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from ..errors import SpecError
from ..model.verdict import INCONCLUSIVE, Result
from ..numeric.backends import resolve_device
from ..numeric.tolerance import EPS, TOLERANCES, dtype_name
from ..numeric.vjp import Case, Evaluated, NotGeneric, judge, rounded, vjps
from .arguments import Slot, bind_args, bind_declared, declared, draw, entries, function_class, sizes_of
from .blackbox import _FunctionCheck
from .calling import _combine, _message, _require_torch
from .inputs import DEFAULT_SAMPLES, _MAX_VOLUME, _validate_common
from .torchcall import BatchCall, Claim, Context

WITNESS_SAMPLES = 8


def check_autograd_function(fn_class: Any, *, args: Any = None, inputs: Any = None, sizes: Any = None,
                            constants: Any = None, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                            rtol: float | None = None, dtype: Any = None, device: str | None = None,
                            cotangents: int = 2) -> Result:
    """Judge a torch.autograd.Function's backward against its own forward (see the module doc).

    Pass example arguments as to `.apply` (`args=(x, w, 0.5, None)`: tensors give shapes, dtype and
    device, and samples are drawn near them) or declare them (`inputs={"x": ("n",)}`, `sizes=`,
    `constants={"scale": 2.5}`), matched to the forward's parameters by name. `dtype` (float64,
    float32, float16, bfloat16; default: the examples', else float64) is the precision the code
    runs in; below float64 it is judged against torch running the same forward in that precision,
    and, where it also runs in float64, its formula at float64 sharpness.
    """
    start = time.perf_counter()
    torch = _require_torch("check_autograd_function")
    params, new_style = function_class(fn_class, torch, "check_autograd_function")
    name = fn_class.__name__
    _validate_common(samples, seed, rtol)
    if not isinstance(cotangents, int) or isinstance(cotangents, bool) or cotangents < 1:
        raise SpecError(f"cotangents must be a positive integer, got {cotangents!r}")
    if (args is None) == (inputs is None):
        raise SpecError(f"check_autograd_function({name}) needs args=(...) (example arguments, as to "
                        f"{name}.apply) or inputs={{...}} (declared shapes), and not both")
    if args is not None:
        if sizes is not None or constants is not None:
            raise SpecError("with args=, shapes come from the example tensors and numbers are passed as they "
                            "are: leave out sizes= and constants=")
        slots = bind_args(args, params, f"{name}.forward", torch)
        examples = [a for a in (args if isinstance(args, (tuple, list)) else (args,))
                    if isinstance(a, torch.Tensor) and a.is_floating_point()]
        dtype = dtype_name(dtype if dtype is not None else examples[0].dtype)
        device = resolve_device(device if device is not None else str(examples[0].device))
        plans = [({}, slots)]
        shown = f"args=({', '.join(_arg_text(s) for s in slots)}{',' if len(slots) == 1 else ''})"
    else:
        decl = declared(inputs)
        plans = [(s, bind_declared(decl, constants, params, s, f"{name}.forward")) for s in sizes_of(decl, sizes)]
        dtype = dtype_name(dtype if dtype is not None else "float64")
        device = resolve_device(device or "cpu")
        shown = (f"inputs={_declared_text(decl)}" + (f", sizes={sizes!r}" if sizes is not None else "")
                 + (f", constants={constants!r}" if constants else ""))
    per_size = []
    for index, (size_set, slots) in enumerate(plans):
        if not any(s.differentiable for s in slots):
            raise SpecError("no argument is differentiable (a floating-point tensor, or an input with a "
                            "continuous domain): nothing to check the backward against")
        if entries(slots) * samples > _MAX_VOLUME:
            raise SpecError(f"{entries(slots)} input entries x {samples} samples is more than {_MAX_VOLUME}: "
                            "check smaller sizes or fewer samples")

        def rerun(dt: str, n: int, sd: int) -> str:
            return (f"derive.check_autograd_function({name}, {shown}, dtype={dt!r}, samples={n}, seed={sd}"
                    + (f", device={device!r}" if device != "cpu" else "") + ")")

        case = _case(fn_class, new_style, slots, size_set, dtype, device, rerun, torch)
        if case is None:  # autograd cannot see into the forward: the black box, in float64
            per_size.append(_black_box(fn_class, slots, size_set, index, samples, seed, rtol, dtype,
                                       rerun("float64", samples, seed), torch))
            continue
        case.salt = f"{name}:{index}"
        result = judge(case, samples=samples, seed=seed, cotangents=cotangents, dtype=dtype, device=device,
                       rtol=rtol)
        per_size.extend(result.sizes)
    return _combine(name, per_size, start, "user code")


def _arg_text(slot: Slot) -> str:
    if slot.drawn:
        return slot.name
    if slot.value is None or isinstance(slot.value, (bool, int, float, str)):
        return repr(slot.value)
    return slot.name


def _declared_text(decl: list[tuple[str, tuple[Any, ...], Any]]) -> str:
    return "{" + ", ".join(f"{n!r}: ({s!r}, {str(d)!r})" for n, s, d in decl) + "}"


def _tensors(slots: list[Slot], batch: dict[str, np.ndarray], tdtype: Any, device: str,
             moved: dict[str, Any] | None, torch: Any) -> tuple[list[Any], list[Any]]:
    """The forward's arguments for a batch (drawn ones with a leading sample axis) and the leaves."""
    args, leaves = [], []
    for s in slots:
        if not s.drawn:
            args.append(s.value)
            continue
        a = batch[s.name]
        if not s.differentiable:
            args.append(torch.as_tensor(a, device=device))
            continue
        t = torch.as_tensor(a, dtype=torch.float64, device=device)
        if moved is not None:
            t = t * moved[s.name]
        t = t.to(tdtype).requires_grad_(True)
        args.append(t)
        leaves.append(t)
    return args, leaves


def _case(fn_class: Any, new_style: bool, slots: list[Slot], sizes: dict[str, int], dtype: str, device: str,
          rerun: Callable[[str, int, int], str], torch: Any) -> Case | None:
    """The judge's case, or None when autograd of the forward is no truth."""
    start = time.perf_counter()
    name = fn_class.__name__
    batched = [s.drawn for s in slots]
    user = Claim(fn_class.apply, f"{name}.apply", batched, [s.differentiable for s in slots], fn_class=fn_class,
                 new_style=new_style)

    def body(*a: Any) -> Any:
        return fn_class.forward(*a) if new_style else fn_class.forward(Context(list(a)), *a)

    body_calls: dict[Any, BatchCall] = {}
    probe = draw(slots, np.random.default_rng(0), 3, sizes)
    diff = {s.name: s.shape for s in slots if s.differentiable}

    def run(call: BatchCall, batch: dict[str, np.ndarray], tdtype: Any, moved: Any) -> tuple[Any, list[Any]]:
        args, leaves = _tensors(slots, batch, tdtype, device, moved, torch)
        count = next(iter(batch.values())).shape[0]
        with torch.enable_grad():
            out = call(args, count, leaves)
        return out, leaves

    # is autograd of the forward a truth? its output must depend on the inputs through autograd
    try:
        truth_call = BatchCall(body, f"{name}.forward", batched)
        out, _ = run(truth_call, {k: rounded(v, "float64") for k, v in probe.items()}, torch.float64, None)
        if not out.requires_grad or out.dtype != torch.float64:
            return None
    except SpecError:
        raise
    except Exception:  # noqa: BLE001 - the forward needs the real ctx or machinery
        return None
    body_calls[torch.float64] = truth_call
    m = out.shape[1]

    def truth(batch: dict[str, np.ndarray], cot: Any, tdtype: Any, moved: Any) -> Evaluated:
        call = body_calls.setdefault(tdtype, BatchCall(body, f"{name}.forward", batched, style=truth_call.style))
        out, leaves = run(call, batch, tdtype, moved)
        return Evaluated(out.detach().to(torch.float64), vjps(out, leaves, cot))

    def claim(batch: dict[str, np.ndarray], cot: Any, tdtype: Any, moved: Any) -> Evaluated:
        args, leaves = _tensors(slots, batch, tdtype, device, moved, torch)
        out, vjp = user(args, leaves, cot, next(iter(batch.values())).shape[0])
        if tdtype == torch.float64 and out.dtype != torch.float64:
            raise NotGeneric(f"{name}.apply returns {out.dtype} for float64 inputs")
        return Evaluated(out.detach().to(torch.float64), vjp)

    def witnesses(batch: dict[str, np.ndarray], cot: np.ndarray, truth_vjp: np.ndarray, noise: np.ndarray,
                  sources: list[str]) -> str:
        return _witness(user.check, slots, batch, cot, truth_vjp, device, sources, torch)

    return Case(name, lambda rng, count: draw(slots, rng, count, sizes), diff, int(m), claim,
                [(f"autograd of {name}.forward", truth)], rerun, dict(sizes), witnesses,
                setup_seconds=time.perf_counter() - start)


def _witness(call: BatchCall, slots: list[Slot], batch: dict[str, np.ndarray], cot: np.ndarray,
             truth: np.ndarray, device: str, sources: list[str], torch: Any) -> str:
    """v^T (J u) by Richardson-extrapolated central differences of .apply in float64, against the
    truth's (v^T J) u, on a few samples; '' when they agree (or .apply is not float64 code)."""
    tol = TOLERANCES["float64"]
    k, count = cot.shape[0], cot.shape[1]
    sub = min(count, WITNESS_SAMPLES)
    part = {n: a[:sub] for n, a in batch.items()}
    diff = [s for s in slots if s.differentiable]
    n_in = sum(math.prod(s.shape) for s in diff)
    rng = np.random.default_rng(sub)
    u = rng.normal(size=(sub, n_in))
    u /= np.max(np.abs(u), axis=1, keepdims=True)
    xmax = max(float(np.max(np.abs(part[s.name]), initial=0.0)) for s in diff)
    h = EPS ** (1 / 3) * max(1.0, xmax)

    def value(step: float) -> np.ndarray | None:
        moved, offset = dict(part), 0
        for s in diff:
            size = math.prod(s.shape)
            moved[s.name] = part[s.name] + step * u[:, offset:offset + size].reshape(sub, *s.shape)
            offset += size
        args, _ = _tensors(slots, moved, torch.float64, device, None, torch)
        with torch.no_grad():
            out = call(args, sub, [])
        return None if out.dtype != torch.float64 else out.cpu().numpy()

    f = [value(c * h) for c in (1, -1, 2, -2)]
    if any(x is None for x in f):
        sources.append("no finite-difference witness (.apply is not float64 code)")
        return ""
    d1 = (f[0] - f[1]) / (2 * h)
    d2 = (f[2] - f[3]) / (4 * h)
    ju = (4 * d1 - d2) / 3
    f0 = value(0.0)
    lhs = np.einsum("kcm,cm->kc", cot[:, :sub], ju)
    tr = truth.reshape(k, count, n_in)[:, :sub]
    rhs = np.einsum("kcw,cw->kc", tr, u)
    scale = np.einsum("kcw,cw->kc", np.abs(tr), np.abs(u))
    vnorm = np.abs(cot[:, :sub]).sum(axis=2)
    slack = vnorm * 6.0 * EPS * np.max(np.abs(f0), axis=1, initial=0.0)[None, :] / h
    fd_err = np.abs(np.einsum("kcm,cm->kc", cot[:, :sub], d1 - d2))
    sources.append(f"central differences of .apply (on {sub} samples)")
    if not np.all(np.isfinite(lhs)) or np.all(np.abs(lhs - rhs) <= tol.central * scale + 2 * slack + fd_err):
        return ""
    return "autograd of the forward and central differences of .apply differ (is the forward differentiable?)"


def _black_box(fn_class: Any, slots: list[Slot], sizes: dict[str, int], index: int, samples: int, seed: int,
               rtol: float | None, dtype: str, rerun: str, torch: Any) -> Any:
    check = _FunctionCheck(fn_class, slots, samples, seed, rtol, torch, rerun=rerun)
    if dtype != "float64":
        probe = draw(slots, np.random.default_rng(0), 1, sizes)
        try:
            out = check._apply({k: v[0] for k, v in probe.items()})
            generic = all(o.dtype == torch.float64 for o in out)
        except Exception:  # noqa: BLE001
            generic = False
        if not generic:
            from ..model.verdict import SizeResult
            from ..numeric.vjp import NO_PROOF

            return SizeResult(dict(sizes), INCONCLUSIVE, NO_PROOF, (),
                              f"{fn_class.__name__}: autograd cannot see into its forward (custom kernels or "
                              f"numpy), so there is no {dtype} baseline, and it does not run in float64 for a "
                              "black-box check; nothing can be judged", None, (), (), 0.0)
    result = check.run_size(sizes, index)
    if dtype != "float64":
        note = (f"autograd cannot see into the forward, so there is no {dtype} baseline: the formula is judged "
                "in float64 only, as a black box")
        return type(result)(result.sizes, result.verdict, result.symbolic, result.numeric, result.reason,
                            result.counterexample, result.sources, (*result.notes, note), result.seconds)
    return result


def assert_autograd_function(fn_class: Any, **options: Any) -> Result:
    """check_autograd_function, raising AssertionError with the counterexample unless consistent."""
    result = check_autograd_function(fn_class, **options)
    if not result.ok:
        raise AssertionError(_message(result, f"check_autograd_function({result.name})"))
    return result
