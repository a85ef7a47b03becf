"""Check a hand-written backward against a declared forward, fast: batched VJPs at any size.

`check_backward(MySoftmax, "softmax_jacobian", sizes={"n": 256}, samples=1000)` says that
`MySoftmax` (a torch.autograd.Function, or any torch callable) computes the identity's target,
and checks its backward on the one judge (`derive.numeric.vjp`). Because the forward is
declared, exact truths exist:

  * torch autograd of each library reference (torch.softmax, F.cross_entropy), vmapped: the
    first one judges every sample (and, run in the user's dtype, is the low-precision baseline);
  * torch autograd of the forward definition, evaluated from the identity's indexed (every-n)
    form in a handful of array operations (`derive.numeric.indexed_eval`);
  * the SymPy derivative derived once for symbolic n, and the complex step (or central
    differences, for a forward with kinks) along a random direction: witnesses on a few samples.

Identities whose forward ends in L = sum(G * Y), G an upstream gradient (the layers family:
linear, layer norm, batch norm, attention), take a function of the other inputs that returns Y;
G is then the cotangent, and the batch dimension the identity declares is real (a backward that
sums over the wrong dimension is caught). The function's parameters are matched to the
identity's variables by name (in the identity's order when the names differ).
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Callable, Mapping

import numpy as np
import sympy as sp

from .. import catalog
from ..errors import SpecError, UnsupportedError
from ..model.domains import Label
from ..model.spec import Identity, Variable
from ..model.verdict import Result
from ..numeric.backends import resolve_device
from ..numeric.indexed_eval import Evaluator, kit
from ..numeric.tolerance import EPS, TOLERANCES, compare, dtype_name
from ..numeric.vjp import Case, Evaluated, NotGeneric, judge, vjps
from ..symbolic.every_n import derive_indexed
from ..symbolic.graph import NONSMOOTH
from ..symbolic.indexed_graph import build_indexed
from .arguments import function_class
from .calling import _message
from .torchcall import BatchCall, Claim

__all__ = ["BackwardCheck", "assert_backward", "check_backward"]

WITNESS_ENTRIES = 2**17
"""Jacobian entries (samples x n_out x n_in) the SymPy-derivative witness evaluates per run."""
UPSTREAM = "G"
"""The upstream-gradient variable of identities whose forward ends in sum(G * Y)."""


def _callable(fn: Any, torch: Any) -> tuple[Callable[..., Any], list[str] | None, str]:
    """(what to call, its positional parameter names or None when unknown, a label)."""
    if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
        params, _ = function_class(fn, torch, "check_backward")
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        star = any(p.kind == p.VAR_POSITIONAL for p in params)
        return fn.apply, None if star else names, fn.__name__
    if isinstance(fn, torch.autograd.Function):
        raise SpecError(f"check_backward takes the Function class, not an instance: pass {type(fn).__name__}")
    if not callable(fn):
        raise SpecError(f"fn must be a torch.autograd.Function subclass or a callable, got {fn!r}")
    try:
        params = list(inspect.signature(fn).parameters.values())
        names = None if any(p.kind == p.VAR_POSITIONAL for p in params) else \
            [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = None
    return fn, names, str(getattr(fn, "__name__", None) or type(fn).__name__)


_DERIVED: dict[int, tuple[Identity, Any, Any]] = {}
_DERIVED_MAX = 32


def _derived(identity: Identity) -> tuple[Any, Any]:
    """The identity's indexed graph and its derivation for every n: SymPy work done once per
    identity in a process (repeated checks of one identity skip it)."""
    hit = _DERIVED.get(id(identity))
    if hit is not None and hit[0] is identity:
        return hit[1], hit[2]
    try:
        graph = build_indexed(identity, require_sizes=False)
    except UnsupportedError as exc:
        raise UnsupportedError(f"{identity.name} cannot be checked by check_backward: {exc}; use "
                               "check_autograd_function(fn, args=...) for it") from exc
    derivation = derive_indexed(graph, display=False)
    if len(_DERIVED) >= _DERIVED_MAX:
        _DERIVED.pop(next(iter(_DERIVED)))
    _DERIVED[id(identity)] = (identity, graph, derivation)
    return graph, derivation


class BackwardCheck:
    """The one-time set-up for one function, identity and size; `run` checks samples."""

    def __init__(self, fn: Any, identity: str | Identity, sizes: Mapping[str, int] | None = None, *,
                 device: str = "cpu") -> None:
        try:
            import torch
        except ImportError as exc:
            raise SpecError("check_backward needs torch; pip install 'derive-checker[torch]'") from exc
        start = time.perf_counter()
        self.torch = torch
        self.fn, params, self.name = _callable(fn, torch)
        fn_class = fn if isinstance(fn, type) else None
        new_style = fn_class is not None and function_class(fn_class, torch, "check_backward")[1]
        self.identity = catalog.get(identity) if isinstance(identity, str) else identity
        if not isinstance(self.identity, Identity):
            raise SpecError(f"identity must be a catalog name or an Identity, got {identity!r}")
        self.sizes = dict(sizes if sizes is not None else self.identity.sizes[0])
        for k, n in self.sizes.items():
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 65536:
                raise SpecError(f"size {k}={n!r} must be an integer from 1 to 65536")
        self.device = resolve_device(device)
        self.without_definition = ""
        try:
            self.graph, self.derivation = _derived(self.identity)
        except UnsupportedError as exc:
            if not self.identity.references:
                raise
            # no every-n form (det, inv, second order): the library reference is the truth, and
            # central differences of it the witness
            self.graph = self.derivation = None
            self.without_definition = str(exc).split(": ", 1)[-1].split("; use check_autograd_function")[0]
        needed = {a for v in self.identity.variables for a in v.shape if isinstance(a, str)}
        needed |= {v.domain.classes for v in self.identity.variables if isinstance(v.domain, Label)}
        missing = sorted(needed - set(self.sizes))
        if missing:
            raise SpecError(f"sizes {self.sizes} do not give {', '.join(missing)} for {self.identity.name}")
        self.evaluator = Evaluator(self.graph, self.sizes) if self.graph is not None else None
        self.shapes = {v.name: v.resolve(self.sizes) for v in self.identity.variables}
        self.inputs, self.upstream = self._bind(params)
        self.diff = [v for v in self.inputs if v.domain.differentiable]
        if not self.diff:
            raise SpecError(f"no input of {self.identity.name} that {self.name} takes is differentiable")
        self.target_shape = self.shapes[self.upstream.name] if self.upstream else \
            tuple(int(d) for d in self._target_shape())
        self.claim = None if self.upstream or self.graph is None else next(
            (c for c in self.graph.claims if c.wrt in {v.name for v in self.diff} and self.identity.claims[c.index].wrt),
            None)
        # analytic forward: the complex step is a witness; kinks: central differences
        self.analytic = self.graph is not None and not any(
            self._entry(node).has(*NONSMOOTH) for node in self.graph.nodes.values() if node.formula is not None)
        self.user = Claim(self.fn, self.name, [True] * len(self.inputs),
                          [v.domain.differentiable for v in self.inputs], fn_class=fn_class, new_style=new_style,
                          check=self._check_output)
        self.setup_seconds = time.perf_counter() - start

    def _bind(self, params: list[str] | None) -> tuple[list[Variable], Variable | None]:
        """The identity's variables in the order the function takes them, and the upstream one."""
        variables = list(self.identity.variables)
        names = [v.name for v in variables]
        upstream = self.identity.variable(UPSTREAM) if UPSTREAM in names else None
        shown = f"{self.identity.name}'s variables are ({', '.join(names)})"
        if upstream is not None:
            shown += f"; {UPSTREAM} is the upstream gradient, the cotangent of the function's output"
        if params is None:
            if upstream is not None:
                return [v for v in variables if v is not upstream], upstream
            return variables, None
        wanted = [v for v in variables if v is not upstream] if upstream is not None else variables
        if len(params) == len(variables) and upstream is not None and set(params) == set(names):
            wanted, upstream = variables, None  # the function takes G too: it returns the scalar L
        if len(params) != len(wanted):
            what = " (without G)" if upstream is not None else ""
            raise SpecError(f"{self.name} takes ({', '.join(params)}) but {shown}: it must take the "
                            f"{len(wanted)} inputs{what}, named after them or in that order")
        if set(params) == {v.name for v in wanted}:
            return [self.identity.variable(p) for p in params], upstream
        if any(p in names for p in params):
            raise SpecError(f"{self.name} takes ({', '.join(params)}) but {shown}: name every parameter "
                            "after a variable, or none (then they are taken in the identity's order)")
        return wanted, upstream

    @staticmethod
    def _entry(node: Any) -> Any:
        """A node's defining formula at its own indices (a SymPy expression)."""
        return node.formula.entry(*node.index) if node.index else sp.sympify(node.formula)

    def _target_shape(self) -> tuple[int, ...]:
        if self.graph is None:  # the reference's output on one sample
            raw, _ = self._tensors(self._draw(np.random.default_rng(0), 1), self.torch.float64)
            out = self.identity.references[0].forward(*(raw[v.name][0] for v in self.identity.variables))
            return tuple(self.torch.as_tensor(out).shape)
        node = self.graph.nodes[self.graph.target]
        subs = {sym: self.sizes[str(sym)] for sym in self.graph.sizes.values()}
        return tuple(int(d.xreplace(subs)) if hasattr(d, "xreplace") else int(d) for d in node.shape)

    # --- inputs -------------------------------------------------------------------------------

    def _draw(self, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
        return {v.name: v.domain.sample(rng, (count, *self.shapes[v.name]), self.sizes)
                for v in self.identity.variables if v is not self.upstream}

    def _encode(self, name: str, values: np.ndarray) -> np.ndarray:
        v = self.identity.variable(name)
        return v.domain.encode(values, self.sizes).reshape(
            values.shape[0], *v.domain.formula_shape(self.shapes[name], self.sizes))

    def _tensors(self, batch: dict[str, np.ndarray], dtype: Any, moved: dict[str, Any] | None = None,
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Leaves (requires_grad, in `dtype`) for the differentiable variables, as raw and as
        encoded (labels one-hot); `moved` multiplies them (the inputs moved by a few ulps)."""
        torch = self.torch
        raw, enc = {}, {}
        for v in self.identity.variables:
            if v is self.upstream:
                continue
            if isinstance(v.domain, Label):
                raw[v.name] = torch.as_tensor(batch[v.name], dtype=torch.int64, device=self.device)
            else:
                t = torch.as_tensor(batch[v.name], dtype=torch.float64, device=self.device)
                if v.domain.differentiable and moved is not None:
                    t = t * moved[v.name]
                raw[v.name] = t.to(dtype)
                if v.domain.differentiable:
                    raw[v.name] = raw[v.name].requires_grad_(True)
            enc[v.name] = raw[v.name] if not isinstance(v.domain, Label) and v.domain.differentiable else \
                torch.as_tensor(self._encode(v.name, batch[v.name]), dtype=dtype, device=self.device)
        return raw, enc

    def _count(self, batch: dict[str, np.ndarray]) -> int:
        return next(iter(batch.values())).shape[0]

    # --- sources ------------------------------------------------------------------------------

    def _contracted(self, value_of: Callable[[Any], Any], leaves: list[Any], cot: Any) -> Any:
        """VJPs when the cotangent is the upstream variable G: grad of L(G = v_k) for each k."""
        torch = self.torch
        rows = []
        for k in range(cot.shape[0]):
            total = value_of(cot[k].reshape(cot.shape[1], *self.target_shape)).sum()
            grads = torch.autograd.grad(total, leaves, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(x) if g is None else g).reshape(x.shape[0], -1)
                                   .to(torch.float64) for g, x in zip(grads, leaves)], dim=1))
        return torch.cat(rows).detach()

    def _definition(self, batch: dict[str, np.ndarray], cot: Any, dtype: Any, moved: Any = None) -> Evaluated:
        raw, enc = self._tensors(batch, dtype, moved)
        count = self._count(batch)
        leaves = [raw[v.name] for v in self.diff]
        t = self.graph.target
        if self.upstream is not None:
            def value_of(g: Any) -> Any:
                return self.evaluator.forward({**enc, self.upstream.name: g}, count, kit("torch"))[t].reshape(count)
            return Evaluated(None, self._contracted(value_of, leaves, cot))
        out = self.evaluator.forward(enc, count, kit("torch"))[t].reshape(count, -1)
        return Evaluated(out.detach().to(self.torch.float64), vjps(out, leaves, cot))

    def _library(self, ref: Any, calls: dict[Any, BatchCall], batch: dict[str, np.ndarray], cot: Any, dtype: Any,
                 moved: Any = None) -> Evaluated:
        raw, _ = self._tensors(batch, dtype, moved)
        count = self._count(batch)
        leaves = [raw[v.name] for v in self.diff]
        names = [v.name for v in self.identity.variables]
        with self.torch.enable_grad():
            if self.upstream is not None:
                call = calls.setdefault(dtype, BatchCall(ref.forward, f"reference {ref.label}", [True] * len(names)))

                def value_of(g: Any) -> Any:
                    return call([raw[n] if n != self.upstream.name else g for n in names], count, []).reshape(count)
                return Evaluated(None, self._contracted(value_of, leaves, cot))
            call = calls.setdefault(dtype, BatchCall(ref.forward, f"reference {ref.label}", [True] * len(names)))
            out = call([raw[n] for n in names], count, leaves)
        if not out.requires_grad:
            raise SpecError(f"reference {ref.label} returned a value that does not depend on its inputs through "
                            "autograd")
        return Evaluated(out.detach().to(self.torch.float64), vjps(out, leaves, cot))

    def _user(self, batch: dict[str, np.ndarray], cot: Any, dtype: Any, moved: Any = None) -> Evaluated:
        torch = self.torch
        raw, _ = self._tensors(batch, dtype, moved)
        leaves = [raw[v.name] for v in self.diff]
        out, vjp = self.user([raw[v.name] for v in self.inputs], leaves, cot, self._count(batch))
        if dtype == torch.float64 and out.dtype != torch.float64:
            raise NotGeneric(f"{self.name} returns {out.dtype} for float64 inputs")
        self._check_output(out)
        return Evaluated(out.detach().to(torch.float64), vjp)

    def _check_output(self, out: Any) -> None:
        if out.shape[1] != int(np.prod(self.target_shape)):
            raise SpecError(f"{self.name} returned {out.shape[1]} entries per sample but {self.identity.name}'s "
                            f"{'output Y' if self.upstream else 'target'} has shape {self.target_shape}")

    # --- witnesses ----------------------------------------------------------------------------

    def _witness_sympy(self, batch: dict[str, np.ndarray], cot: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
        """The SymPy derivative (derived for every n) on samples idx, contracted with v."""
        if self.claim is None or self.claim.wrt != self.diff[0].name or len(self.diff) != 1:
            return None
        count = len(idx)
        enc = {k: self._encode(k, v[idx]) for k, v in batch.items()}
        values = self.evaluator.forward(enc, count, kit("numpy"))
        jac = self.evaluator.evaluate(self.derivation.derived[self.claim.index], values,
                                      tuple(self.claim.indices), count, kit("numpy"))
        m = int(np.prod(self.target_shape))
        jac = np.asarray(jac).reshape(count, m, -1)
        return np.einsum("kcm,cmw->kcw", cot[:, idx].reshape(cot.shape[0], count, m), jac)

    def _witness_direction(self, batch: dict[str, np.ndarray], idx: np.ndarray, u: np.ndarray,
                           upstream: np.ndarray | None = None) -> np.ndarray:
        """J u on samples idx from the definition: complex step, or central differences; with
        `upstream`, the target with G set to it (so J u is v^T J_Y u)."""
        count = len(idx)
        offset = 0
        plus, minus, imag = {}, {}, {}
        encoded = {k: self._encode(k, v[idx]) for k, v in batch.items()}
        if upstream is not None:
            encoded[self.upstream.name] = upstream.reshape(count, *self.target_shape)
        xmax = max(float(np.max(np.abs(encoded[v.name]), initial=0.0)) for v in self.diff)
        h = EPS ** (1 / 3) * max(1.0, xmax)
        diff = {v.name for v in self.diff}
        for name, base in encoded.items():
            if name in diff:
                size = int(np.prod(base.shape[1:]))
                step = u[:, offset:offset + size].reshape(base.shape)
                offset += size
                imag[name] = base + 1e-30j * step
                plus[name], minus[name] = base + h * step, base - h * step
            else:
                imag[name] = base.astype(np.complex128)
                plus[name] = minus[name] = base
        numpy = kit("numpy")
        t = self.graph.target
        with np.errstate(all="ignore"):
            if self.analytic:
                return np.asarray(self.evaluator.forward(imag, count, numpy)[t]).reshape(count, -1).imag / 1e-30
            fp = np.asarray(self.evaluator.forward(plus, count, numpy)[t]).reshape(count, -1)
            fm = np.asarray(self.evaluator.forward(minus, count, numpy)[t]).reshape(count, -1)
        return (fp - fm) / (2 * h)

    def _witnesses(self, batch: dict[str, np.ndarray], cot: np.ndarray, truth: np.ndarray, noise: np.ndarray,
                   sources: list[str]) -> str:
        """Check the truth on a few samples against the SymPy derivative and a directional
        derivative of the definition; returns what disagreed, or ''."""
        tol = TOLERANCES["float64"]
        k, count, m = cot.shape
        n_in = truth.shape[1]
        truth = truth.reshape(k, count, n_in)
        noise = noise.reshape(k, count)
        volume = m * n_in
        if self.claim is not None:
            volume = max(volume, self.evaluator.volume(self.derivation.derived[self.claim.index],
                                                       tuple(self.claim.indices)))
        sub = np.arange(min(count, max(1, WITNESS_ENTRIES // volume)))
        derived = self._witness_sympy(batch, cot, sub)
        if derived is not None:
            sources.append(f"SymPy derivative for every n (on {len(sub)} samples)")
            w = compare(derived.reshape(-1, n_in), truth[:, sub].reshape(-1, n_in), tol.exact,
                        noise[:, sub].ravel(), tol.noise_factor)
            if not w.ok:
                return "the SymPy derivative and autograd of the definition differ"
        u = np.random.default_rng(len(sub)).normal(size=(len(sub), n_in))
        if self.upstream is not None:
            lhs = np.stack([self._witness_direction(batch, sub, u, cot[i, sub])[:, 0] for i in range(k)])
        else:
            lhs = np.einsum("kcm,cm->kc", cot[:, sub], self._witness_direction(batch, sub, u))
        rhs = np.einsum("kcw,cw->kc", truth[:, sub], u)
        scale = np.einsum("kcw,cw->kc", np.abs(truth[:, sub]), np.abs(u))
        sources.append("complex step" if self.analytic else "central differences")
        rtol = tol.complex_step if self.analytic else tol.central
        if not np.all(np.abs(lhs - rhs) <= rtol * scale + tol.noise_factor * EPS):
            return "the directional derivative of the definition does not match autograd"
        return ""

    def _witness_reference(self, batch: dict[str, np.ndarray], cot: np.ndarray, truth: np.ndarray,
                           noise: np.ndarray, sources: list[str]) -> str:
        """v^T (J u) by Richardson-extrapolated central differences of the first reference, in
        float64 on a few samples, against the truth's (v^T J) u; '' when they agree."""
        torch = self.torch
        tol = TOLERANCES["float64"]
        k, count, m = cot.shape
        sub = min(count, 8)
        part = {n: a[:sub] for n, a in batch.items()}
        n_in = truth.shape[1]
        u = np.random.default_rng(sub).normal(size=(sub, n_in))
        u /= np.max(np.abs(u), axis=1, keepdims=True)
        xmax = max(float(np.max(np.abs(part[v.name]), initial=0.0)) for v in self.diff)
        h = EPS ** (1 / 3) * max(1.0, xmax)
        ref = self.identity.references[0]
        names = [v.name for v in self.identity.variables]
        vs = torch.as_tensor(cot[:, :sub], dtype=torch.float64, device=self.device)

        def value(step: float) -> np.ndarray:
            moved, offset = dict(part), 0
            for v in self.diff:
                size = int(np.prod(self.shapes[v.name]))
                moved[v.name] = part[v.name] + step * u[:, offset:offset + size].reshape(sub, *self.shapes[v.name])
                offset += size
            raw, _ = self._tensors(moved, torch.float64)
            with torch.no_grad():
                if self.upstream is not None:
                    rows = [torch.stack([torch.as_tensor(ref.forward(*(raw[n][s] if n != self.upstream.name else
                                                                     vs[i, s].reshape(self.target_shape)
                                                                     for n in names))) for s in range(sub)])
                            for i in range(k)]
                    return torch.stack(rows).reshape(k, sub).cpu().numpy()
                out = torch.stack([torch.as_tensor(ref.forward(*(raw[n][s] for n in names))).reshape(-1)
                                   for s in range(sub)])
                return torch.einsum("ksm,sm->ks", vs, out.to(torch.float64)).cpu().numpy()

        f = {c: value(c * h) for c in (1, -1, 2, -2, 0)}
        d1, d2 = (f[1] - f[-1]) / (2 * h), (f[2] - f[-2]) / (4 * h)
        lhs = (4 * d1 - d2) / 3
        tr = truth.reshape(k, count, n_in)[:, :sub]
        rhs = np.einsum("kcw,cw->kc", tr, u)
        scale = np.einsum("kcw,cw->kc", np.abs(tr), np.abs(u))
        slack = 6.0 * EPS * np.abs(f[0]) / h * np.abs(cot[:, :sub]).sum(axis=2).max() + 1e-300
        sources.append(f"central differences of {ref.label} (on {sub} samples)")
        if np.all(np.abs(lhs - rhs) <= tol.central * scale + 2 * slack + np.abs(d1 - d2)):
            return ""
        return f"autograd of {ref.label} and its central differences differ"

    # --- the run ------------------------------------------------------------------------------

    def case(self) -> Case:
        truths: list[tuple[str, Any]] = []
        for ref in self.identity.references:
            calls: dict[Any, BatchCall] = {}
            truths.append((f"autograd of {ref.label}",
                           lambda b, c, d, m=None, ref=ref, calls=calls: self._library(ref, calls, b, c, d, m)))
        if self.graph is not None:
            truths.append(("autograd of the definition (indexed form)", self._definition))
        sizes = self.sizes

        def rerun(dtype: str, samples: int, seed: int) -> str:
            return (f"derive.check_backward({self.name}, {self.identity.name!r}, sizes={sizes}, dtype={dtype!r}, "
                    f"samples={samples}, seed={seed}" + (f", device={self.device!r}" if self.device != "cpu" else "")
                    + ")")

        notes = []
        if self.graph is None:
            notes.append(f"no every-n form ({self.without_definition}): the library reference is the truth, "
                         "witnessed by its central differences")
        if self.upstream is not None:
            notes.append(f"{self.name}'s output Y is checked through L = sum(G * Y): the upstream gradient G "
                         f"(shape {self.target_shape}) is the cotangent")
        return Case(self.name, self._draw, {v.name: self.shapes[v.name] for v in self.diff},
                    int(np.prod(self.target_shape)), self._user, truths, rerun, dict(self.sizes),
                    self._witnesses if self.graph is not None else self._witness_reference,
                    notes=notes, setup_seconds=self.setup_seconds,
                    salt=self.identity.name)

    def run(self, samples: int = 1000, *, seed: int = 0, cotangents: int = 2, chunk: int | None = None,
            dtype: Any = "float64") -> Result:
        """Check the backward on `samples` random inputs; returns the verdict with evidence."""
        for what, value, low in (("samples", samples, 1), ("cotangents", cotangents, 1), ("seed", seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise SpecError(f"{what} must be an integer >= {low}, got {value!r}")
        if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
            raise SpecError(f"chunk must be a positive integer, got {chunk!r}")
        result = judge(self.case(), samples=samples, seed=seed, cotangents=cotangents, dtype=dtype_name(dtype),
                       device=self.device, chunk=chunk)
        if self.user.style is not None and result.sizes:
            first = result.sizes[0]
            how = {"vmap": "batched with torch.func.vmap", "leading": "batched along a leading dimension",
                   "direct": "batched: forward and backward vmapped directly",
                   "loop": "one sample at a time"}[self.user.style]
            sizes = (type(first)(first.sizes, first.verdict, first.symbolic, first.numeric, first.reason,
                                 first.counterexample, first.sources, (*first.notes, f"{self.name} called {how}"),
                                 first.seconds), *result.sizes[1:])
            result = type(result)(result.name, result.verdict, result.symbolic, result.numeric, result.seconds,
                                  sizes, result.reason, result.counterexample, result.family)
        return result


def check_backward(fn: Any, identity: str | Identity, *, sizes: Mapping[str, int] | None = None,
                   samples: int = 1000, seed: int = 0, cotangents: int = 2, device: str = "cpu",
                   chunk: int | None = None, dtype: Any = "float64") -> Result:
    """Check `fn`'s backward, `fn` being declared to compute `identity`'s target (see module doc).

    `dtype` (float64, float32, float16, bfloat16, or a torch dtype) is the precision `fn` runs in;
    below float64 it is judged against the identity's library reference run in that precision,
    and, where `fn` also runs in float64, its formula at float64 sharpness.
    """
    dtype = dtype_name(dtype)
    return BackwardCheck(fn, identity, sizes, device=device).run(samples, seed=seed, cotangents=cotangents,
                                                                 chunk=chunk, dtype=dtype)


def assert_backward(fn: Any, identity: str | Identity, **options: Any) -> Result:
    """check_backward, raising AssertionError with the counterexample unless it is consistent."""
    result = check_backward(fn, identity, **options)
    if not result.ok:
        name = identity if isinstance(identity, str) else identity.name
        raise AssertionError(_message(result, f"check_backward({result.name}, {name!r})"))
    return result
