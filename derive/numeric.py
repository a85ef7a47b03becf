"""Numeric stage: sample inside the domains, compute the truths, judge the claims.

Truth sources (they must agree with each other before any claim is judged):
  * the SymPy derivative, compiled and evaluated on every selected backend;
  * torch autograd of the forward definition (and of each attached torch reference);
  * finite differences as the independent witness: central differences with a scaled step
    always, complex step when the forward is analytic, mpmath at 40 digits otherwise.
Claims are compared with the exact truths at a tolerance set by the dtype and by the
conditioning of the values (measured by re-evaluating at inputs moved by a few ulps), so a
relative error far below what finite differences can see is still caught.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from . import backends
from .backends import Program, compile_program
from .domains import Label
from .errors import SpecError
from .proof import kink_args
from .spec import Identity
from .symbolic import Derivation, Graph, nonsmooth_atoms

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
class Compiled:
    """Programs for one graph: each definition, each derived derivative, each claim, the kinks."""

    symbols: tuple[sp.Symbol, ...]
    slots: dict[str, tuple[int, ...]]
    definitions: tuple[tuple[str, Program], ...]
    derived: dict[int, Program]
    claims: dict[int, Program]
    kinks: Program | None
    kink_text: tuple[str, ...]
    analytic: bool


def compile_graph(graph: Graph, derivation: Derivation | None) -> Compiled:
    """Compile every formula of `graph` once; all programs read the same flat slot list."""
    symbols: list[sp.Symbol] = []
    slots: dict[str, tuple[int, ...]] = {}
    for node in graph.nodes.values():
        slots[node.name] = tuple(range(len(symbols), len(symbols) + len(node.flat)))
        symbols += node.flat
    defs = tuple((d.name, compile_program(list(d.expr.flat), symbols)) for d in graph.definitions)
    derived = {i: compile_program(list(a.flat), symbols) for i, a in
               (derivation.derived.items() if derivation else ())}
    claims = {c.index: compile_program(list(c.expr.flat), symbols) for c in graph.claims}
    exprs = [d.expr for d in graph.definitions] + [c.expr for c in graph.claims]
    if derivation:
        exprs += list(derivation.derived.values())
    args: list[sp.Expr] = []
    for atom in sorted(nonsmooth_atoms(np.concatenate([np.ravel(e) for e in exprs])), key=str):
        args += [a for a in kink_args(atom) if a not in args]
    kinks = compile_program(args, symbols) if args else None
    upto = [d.expr for d in graph.definitions]
    analytic = not nonsmooth_atoms(np.concatenate([np.ravel(e) for e in upto]))
    return Compiled(tuple(symbols), slots, defs, derived, claims, kinks,
                    tuple(f"{a} = 0" for a in args), analytic)


@dataclass
class Inputs:
    """A batch of samples: raw values per variable (labels as ints) and formula columns."""

    raw: dict[str, np.ndarray]
    columns: np.ndarray  # (samples, number of variable entries), float64


def _draw(identity: Identity, graph: Graph, rng: np.random.Generator, count: int) -> Inputs:
    raw: dict[str, np.ndarray] = {}
    cols = []
    for var in identity.variables:
        shape = var.resolve(graph.sizes)
        values = var.domain.sample(rng, (count, *shape), graph.sizes)
        raw[var.name] = values
        cols.append(var.domain.encode(values, graph.sizes).reshape(count, -1))
    return Inputs(raw, np.concatenate(cols, axis=1) if cols else np.zeros((count, 0)))


def forward(compiled: Compiled, backend: backends.Backend, columns: Any,
            upto: str | None = None) -> list[Any]:
    """Evaluate the definitions in order; returns the full slot list (variables first)."""
    env: list[Any] = [None] * len(compiled.symbols)
    n_var = columns.shape[1]
    for i in range(n_var):
        env[i] = columns[:, i]
    for name, prog in compiled.definitions:
        for slot, value in zip(compiled.slots[name], backend.run(prog, env)):
            env[slot] = value
        if name == upto:
            break
    return env


def _stack(backend: backends.Backend, values: list[Any], count: int) -> np.ndarray:
    return np.asarray(backend.to_numpy(backend.stack(values, (count,))), dtype=np.float64)


def _target(compiled: Compiled, graph: Graph, env: list[Any]) -> list[Any]:
    return [env[s] for s in compiled.slots[graph.target]]


def _num_vars(compiled: Compiled, graph: Graph) -> int:
    return sum(len(compiled.slots[v.name]) for v in graph.variables)


@dataclass
class Sampled:
    """Samples drawn inside the domains, away from kinks, with a finite forward value."""

    inputs: Inputs
    resampled_kinks: int = 0
    nonfinite: int = 0


def sample(identity: Identity, graph: Graph, compiled: Compiled, rng: np.random.Generator,
           count: int, tol: Tolerance, rounds: int = 20) -> Sampled:
    """Draw `count` samples; redraw those near a kink or with a non-finite target."""
    np_backend = backends.get("numpy")
    inputs = _draw(identity, graph, rng, count)
    kinks = 0
    bad = np.ones(count, dtype=bool)
    for _ in range(rounds):
        env = forward(compiled, np_backend, inputs.columns)
        target = _stack(np_backend, _target(compiled, graph, env), count)
        near = np.zeros(count, dtype=bool)
        if compiled.kinks is not None:
            args = _stack(np_backend, np_backend.run(compiled.kinks, env), count)
            scale = np.maximum(1.0, np.abs(inputs.columns).max(axis=1, initial=0.0))
            near = (np.abs(args) < tol.kink_margin * scale[:, None]).any(axis=1)
        nonfinite = ~np.isfinite(target).all(axis=1)
        bad = near | nonfinite
        if not bad.any():
            break
        kinks += int(near.sum())
        fresh = _draw(identity, graph, rng, int(bad.sum()))
        for name in inputs.raw:
            inputs.raw[name][bad] = fresh.raw[name]
        inputs.columns[bad] = fresh.columns
    return Sampled(inputs, kinks, int(bad.sum()))


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


# --- truths -------------------------------------------------------------------------------

def autograd_jacobian(compiled: Compiled, graph: Graph, backend: backends.Backend,
                      columns: np.ndarray, wrt: str, device: str = "cpu") -> np.ndarray:
    """d target / d wrt by torch autograd of the compiled forward, (samples, m * w)."""
    import torch

    count = columns.shape[0]
    x = torch.as_tensor(columns, dtype=torch.float64, device=device).clone()
    lo, hi = compiled.slots[wrt][0], compiled.slots[wrt][-1] + 1
    leaf = x[:, lo:hi].clone().requires_grad_(True)
    full = torch.cat([x[:, :lo], leaf, x[:, hi:]], dim=1)
    env = forward(compiled, backend, full, upto=graph.target)
    outs = _target(compiled, graph, env)
    rows = []
    for out in outs:
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            rows.append(torch.zeros((count, hi - lo), dtype=torch.float64, device=device))
            continue
        out = out.expand(count) if out.dim() == 0 else out
        (g,) = torch.autograd.grad(out.sum(), leaf, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(leaf) if g is None else g)
    jac = torch.stack(rows, dim=1)  # (samples, m, w)
    return jac.reshape(count, -1).detach().cpu().numpy()


def reference_values(identity: Identity, ref_index: int, inputs: Inputs, graph: Graph,
                     wrt: str | None = None, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
    """A torch reference's value per sample (and its autograd Jacobian wrt `wrt`)."""
    import torch

    ref = identity.references[ref_index]
    names = [v.name for v in identity.variables]
    tensors = {}
    for v in identity.variables:
        arr = inputs.raw[v.name]
        dtype = torch.int64 if isinstance(v.domain, Label) else torch.float64
        tensors[v.name] = torch.as_tensor(np.asarray(arr), dtype=dtype, device=device)
    leaf = None
    if wrt is not None:
        leaf = tensors[wrt].clone().requires_grad_(True)
        tensors[wrt] = leaf

    args = [tensors[n] for n in names]
    try:
        out = torch.func.vmap(ref.forward)(*args)
    except Exception:  # some library functions do not support vmap: fall back to a loop
        try:
            out = torch.stack([torch.as_tensor(ref.forward(*(a[s] for a in args)))
                               for s in range(args[0].shape[0])])
        except Exception as exc:
            raise SpecError(f"{identity.name}: reference {ref.label} failed on one sample "
                            f"({', '.join(names)}): {type(exc).__name__}: {exc}") from exc
    count = inputs.columns.shape[0]
    out = out.reshape(count, -1)
    value = out.detach().cpu().numpy().astype(np.float64)
    if leaf is None:
        return value, None
    rows = []
    for a in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, a].sum(), leaf, retain_graph=True, allow_unused=True)
        rows.append((torch.zeros_like(leaf) if g is None else g).reshape(count, -1))
    jac = torch.stack(rows, dim=1).reshape(count, -1)
    return value, jac.detach().cpu().numpy()


FULL_JACOBIAN_SLOTS = 64
"""Beyond this many entries in a differentiated variable, the finite-difference witnesses
check the truth along random directions (J u) instead of column by column."""
DIRECTIONS = 4


def _directions(compiled: Compiled, wrt: str, directions: np.ndarray | None) -> list[dict[int, float]]:
    """The steps a witness differentiates along: each slot alone, or each random direction."""
    slots = compiled.slots[wrt]
    if directions is None:
        return [{slot: 1.0} for slot in slots]
    return [dict(zip(slots, directions[:, k])) for k in range(directions.shape[1])]


def central_differences(compiled: Compiled, graph: Graph, columns: np.ndarray, wrt: str,
                        directions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Central differences with h = eps^(1/3) max(1, |x|); also the rounding-error estimate.

    Column by column (the Jacobian, samples x m*w), or along `directions` (w x K, giving
    J u for each: samples x m*K)."""
    nb = backends.get("numpy")
    count = columns.shape[0]
    cols = []
    f0 = _stack(nb, _target(compiled, graph, forward(compiled, nb, columns, graph.target)), count)
    rounding = np.zeros(count)
    for step in _directions(compiled, wrt, directions):
        slots = list(step)
        size = np.maximum(1.0, np.abs(columns[:, slots]).max(axis=1))
        h = EPS ** (1 / 3) * size / max(abs(u) for u in step.values())
        plus, minus = columns.copy(), columns.copy()
        for slot, u in step.items():
            plus[:, slot] += h * u
            minus[:, slot] -= h * u
        # the step actually taken (x + h rounds): exact for one slot, to rounding otherwise
        k, u = max(step.items(), key=lambda item: abs(item[1]))
        h_true = (plus[:, k] - minus[:, k]) / u
        fp = _stack(nb, _target(compiled, graph, forward(compiled, nb, plus, graph.target)), count)
        fm = _stack(nb, _target(compiled, graph, forward(compiled, nb, minus, graph.target)), count)
        cols.append((fp - fm) / h_true[:, None])
        rounding = np.maximum(rounding, 4 * EPS * np.abs(f0).max(axis=1, initial=0.0) / h_true)
    jac = np.stack(cols, axis=2)  # (samples, m, w or K)
    return jac.reshape(count, -1), rounding


def complex_step(compiled: Compiled, graph: Graph, columns: np.ndarray, wrt: str,
                 directions: np.ndarray | None = None) -> np.ndarray:
    """Im f(x + i h u) / h with h = 1e-30: exact to rounding for analytic forwards (u a unit
    vector per column, or each of `directions`)."""
    nb = backends.get("numpy")
    count = columns.shape[0]
    h = 1e-30
    cols = []
    for step in _directions(compiled, wrt, directions):
        z = columns.astype(np.complex128)
        for slot, u in step.items():
            z[:, slot] += 1j * h * u
        with np.errstate(all="ignore"):
            out = _target(compiled, graph, forward(compiled, nb, z, graph.target))
            vals = np.stack([np.broadcast_to(np.asarray(v, dtype=np.complex128), (count,))
                             for v in out], axis=-1)
        cols.append(vals.imag / h)
    return np.stack(cols, axis=2).reshape(count, -1)


def high_precision(compiled: Compiled, graph: Graph, columns: np.ndarray, wrt: str | None,
                   samples: int = 3, digits: int = 40,
                   directions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """mpmath at `digits` digits on the first few samples: the value, or a central difference
    (column by column, or along `directions`)."""
    import mpmath

    mb = backends.get("mpmath")
    idx = np.arange(min(samples, columns.shape[0]))
    rows = []
    with mpmath.workdps(digits):
        h = mpmath.mpf(10) ** (-(digits // 3))
        for s in idx:
            point = [mpmath.mpf(float(v)) for v in columns[s]]

            def f(p: list[Any]) -> list[Any]:
                env = forward_scalar(compiled, mb, p, graph.target)
                return [env[k] for k in compiled.slots[graph.target]]

            if wrt is None:
                rows.append([float(v) for v in f(point)])
                continue
            jac = []
            for step in _directions(compiled, wrt, directions):
                plus, minus = list(point), list(point)
                for slot, u in step.items():
                    plus[slot] += h * mpmath.mpf(float(u))
                    minus[slot] -= h * mpmath.mpf(float(u))
                jac.append([(a - b) / (2 * h) for a, b in zip(f(plus), f(minus))])
            rows.append([float(jac[i][a]) for a in range(len(jac[0])) for i in range(len(jac))])
    return idx, np.asarray(rows, dtype=np.float64)


def forward_scalar(compiled: Compiled, backend: backends.Backend, point: list[Any],
                   upto: str) -> list[Any]:
    """Like `forward`, for one sample given as a list of scalars (mpmath)."""
    env: list[Any] = [None] * len(compiled.symbols)
    env[: len(point)] = point
    for name, prog in compiled.definitions:
        for slot, value in zip(compiled.slots[name], backend.run(prog, env)):
            env[slot] = value
        if name == upto:
            break
    return env


# --- the check ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackendError:
    """Claim against truth on one backend, for one claim."""

    backend: str
    claim: str
    comparison: Comparison


@dataclass
class NumericOutcome:
    """Everything the numeric stage found for one identity at one set of sizes."""

    status: str  # "agree", "refuted", "disagree", "nonfinite"
    samples: int
    errors: list[BackendError] = field(default_factory=list)
    reference_errors: list[BackendError] = field(default_factory=list)
    reason: str = ""
    counterexample: dict[str, Any] | None = None
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _entry(shape: tuple[int, ...], flat: int) -> list[int]:
    return [int(i) for i in np.unravel_index(flat, shape)] if shape else []


def _jitter(env: list[Any], backend: backends.Backend, rng: np.random.Generator, count: int,
            exact: set[int]) -> list[Any]:
    """Every slot (inputs and intermediates) moved by 4 ulps with a random sign.

    Evaluating a formula on this env measures how much float64 rounding of the values it reads
    can move it: 1 - y with y = 0.99999999999999 is ill-conditioned, exp(-a) is not.
    """
    out = []
    for i, v in enumerate(env):
        if v is None or i in exact:
            out.append(v)
            continue
        factor = 1.0 + 4.0 * EPS * rng.choice([-1.0, 1.0], size=count)
        out.append(v * backend.from_numpy(factor))
    return out


def _jitter_columns(columns: np.ndarray, rng: np.random.Generator, exact: set[int]) -> np.ndarray:
    """The inputs moved by 4 ulps with a random sign (discrete inputs kept exact)."""
    factor = 1.0 + 4.0 * EPS * rng.choice([-1.0, 1.0], size=columns.shape)
    factor[:, sorted(exact)] = 1.0
    return columns * factor


def _worst_noise(value: np.ndarray, perturbed: list[np.ndarray]) -> np.ndarray:
    return np.max([_noise(value, p) for p in perturbed], axis=0)


def _discrete_slots(identity: Identity, compiled: Compiled) -> set[int]:
    return {i for v in identity.variables if not v.domain.differentiable
            for i in compiled.slots[v.name]}


def _magnitude_floor(env: list[Any], count: int, tol: Tolerance) -> np.ndarray:
    """Absolute slack for black-box truths (autograd, library code), whose internal rounding we
    cannot see: noise_factor * eps * M, M the largest magnitude among the forward's values
    (at least 1). Rounding inside the library moves its result by about eps times the values it
    computes with; errors proportional to the derivative itself are the relative tolerance's.
    (An M^2 slack, as once used, let any claim pass once the forward passed 1e77.)"""
    mags = [np.broadcast_to(np.abs(np.asarray(v, dtype=np.float64)), (count,)) for v in env if v is not None]
    m = np.maximum(1.0, np.max(np.where(np.isfinite(mags), mags, 0.0), axis=0)) if mags else np.ones(count)
    return tol.noise_factor * EPS * m


CHUNK_ENTRIES = 2**21
"""Entries of the largest per-sample array (a Jacobian) times samples, per chunk of samples."""


def run_numeric(identity: Identity, graph: Graph, derivation: Derivation | None, *,
                backend_names: tuple[str, ...], samples: int, rng: np.random.Generator,
                seed: int, dtype: str = "float64", device: str = "cpu",
                chunk: int | None = None, compiled: Compiled | None = None) -> NumericOutcome:
    """Sample, establish the truth from agreeing sources, and judge every claim against it.

    Samples are drawn and judged in chunks, so memory stays bounded whatever their number;
    the first chunk that refutes, or whose truths disagree, decides. `compiled`: the graph's
    formulas already compiled (in the bounded symbolic worker), else they are compiled here.
    """
    if compiled is None:
        compiled = compile_graph(graph, derivation)
    # the widest per-sample array: the slot list, or a claim (a Jacobian's shape includes wrt)
    width = max([len(compiled.symbols), *(c.expr.size for c in graph.claims)])
    chunk = chunk or max(1, CHUNK_ENTRIES // max(1, width))
    out = NumericOutcome("agree", samples)
    done = 0
    while done < samples:
        count = min(chunk, samples - done)
        part = _run_chunk(identity, graph, compiled, derivation, backend_names=backend_names, samples=count,
                          rng=rng, seed=seed, dtype=dtype, device=device)
        out.errors += part.errors
        out.reference_errors += part.reference_errors
        out.sources = sorted(set(out.sources) | set(part.sources))
        out.notes += [n for n in part.notes if n not in out.notes]
        if part.counterexample is not None and out.counterexample is None:
            out.counterexample = {**part.counterexample, "sample": part.counterexample["sample"] + done}
        if part.status != "agree" and out.status in ("agree", "refuted"):
            out.status, out.reason = part.status, part.reason
        if out.status not in ("agree",):
            break
        done += count
    return out


def _run_chunk(identity: Identity, graph: Graph, compiled: Compiled, derivation: Derivation | None, *,
               backend_names: tuple[str, ...], samples: int, rng: np.random.Generator,
               seed: int, dtype: str, device: str) -> NumericOutcome:
    tol = TOLERANCES[dtype]

    def be(name: str) -> backends.Backend:
        return backends.get(name, device)

    drawn = sample(identity, graph, compiled, rng, samples, tol)
    inputs = drawn.inputs
    out = NumericOutcome("agree", samples)
    if drawn.resampled_kinks:
        out.notes.append(f"kinks avoided ({', '.join(compiled.kink_text)}): "
                         f"{drawn.resampled_kinks} samples redrawn")
    if drawn.nonfinite:
        out.status = "nonfinite"
        out.reason = (f"the forward value is not finite at {drawn.nonfinite} of {samples} samples "
                      "even after redrawing; no finite reference")
        return out
    have_torch = backends.available("torch")
    if not have_torch:
        out.notes.append("torch is not installed: no autograd truth and no torch backend")
    selected = [b for b in backend_names if b != "torch" or have_torch]
    evaluated = list(dict.fromkeys(["numpy", *selected, *(["torch"] if have_torch else [])]))
    envs = {b: forward(compiled, be(b), be(b).from_numpy(inputs.columns))
            for b in evaluated}
    exact = _discrete_slots(identity, compiled)
    # perturbed evaluations measure conditioning: every slot moved by a few ulps, and the whole
    # forward recomputed from moved inputs (rounding inside an intermediate, e.g. a cancellation)
    moved = _jitter_columns(inputs.columns, rng, exact)
    envs_p = {b: [_jitter(envs[b], be(b), rng, samples, exact),
                  forward(compiled, be(b), be(b).from_numpy(moved))] for b in evaluated}
    floor = _magnitude_floor(envs["numpy"], samples, tol)
    nb = backends.get("numpy")
    target_shape = graph.nodes[graph.target].shape

    def run(b: str, prog: Program, env: list[Any]) -> np.ndarray:
        return _stack(be(b), be(b).run(prog, env), samples)

    # a library reference is a value claim: the definition must compute what the library does
    value = _stack(nb, _target(compiled, graph, envs["numpy"]), samples)
    value_noise = _worst_noise(value, [_stack(nb, _target(compiled, graph, e), samples) for e in envs_p["numpy"]])
    for r, ref in enumerate(identity.references if have_torch else ()):
        ref_value, _ = reference_values(identity, r, inputs, graph, device=device)
        cmp = compare(ref_value, value, tol.exact, value_noise, tol.noise_factor, atol=floor)
        out.reference_errors.append(BackendError("torch", f"definition vs {ref.label}", cmp))
        if not cmp.ok and out.counterexample is None:
            _refute(out, identity, graph, inputs, cmp, f"definition vs {ref.label}", "torch",
                    ref_value, value, target_shape, seed)

    for claim in graph.claims:
        label = claim.label
        # exact truths: (values, black box?); witnesses: (sample ids, values, rtol, extra slack)
        truths: dict[str, tuple[np.ndarray, bool]] = {}
        witnesses: dict[str, tuple[np.ndarray, np.ndarray, float, np.ndarray | None, np.ndarray | None]] = {}
        if claim.wrt is None:
            for b in envs:
                truths[f"definition/{b}"] = (_stack(be(b), _target(compiled, graph, envs[b]),
                                                    samples), b != "numpy")
            idx, hp = high_precision(compiled, graph, inputs.columns, None)
            witnesses["mpmath 40 digits"] = (idx, hp, tol.high_precision, None, None)
            primary_p = [_stack(nb, _target(compiled, graph, e), samples) for e in envs_p["numpy"]]
        else:
            if derivation is not None:
                for b in envs:
                    truths[f"sympy/{b}"] = (run(b, compiled.derived[claim.index], envs[b]), False)
            if have_torch:
                truths["autograd"] = (autograd_jacobian(compiled, graph, be("torch"),
                                                        inputs.columns, claim.wrt, device), True)
                for r, ref in enumerate(identity.references):
                    _, jac = reference_values(identity, r, inputs, graph, wrt=claim.wrt, device=device)
                    truths[f"autograd of {ref.label}"] = (jac, True)
            w = len(compiled.slots[claim.wrt])
            # many entries: the witnesses check J u along fresh mean-zero random directions
            dirs = rng.standard_normal((w, DIRECTIONS)) if w > FULL_JACOBIAN_SLOTS else None
            along = f" along {DIRECTIONS} random directions" if dirs is not None else ""
            fd, rounding = central_differences(compiled, graph, inputs.columns, claim.wrt, dirs)
            witnesses[f"central differences{along}"] = (np.arange(samples), fd, tol.central, rounding, dirs)
            if compiled.analytic:
                witnesses[f"complex step{along}"] = (
                    np.arange(samples), complex_step(compiled, graph, inputs.columns, claim.wrt, dirs),
                    tol.complex_step, None, dirs)
            else:
                idx, hp = high_precision(compiled, graph, inputs.columns, claim.wrt, directions=dirs)
                witnesses[f"mpmath 40 digits{along}"] = (idx, hp, tol.high_precision, None, dirs)
            primary_p = ([run("numpy", compiled.derived[claim.index], e) for e in envs_p["numpy"]]
                         if derivation is not None else None)
        if not truths:
            out.status, out.reason = "disagree", f"{label}: no exact truth source available"
            return out
        primary_name = next(iter(truths))
        primary, primary_black_box = truths[primary_name]
        noise_t = _worst_noise(primary, primary_p) if primary_p is not None else np.zeros(samples)
        slack_t = floor if primary_black_box else None
        finite = np.isfinite(primary).all(axis=1)
        if not finite.all():
            out.status = "nonfinite"
            out.reason = (f"{label}: the true derivative is not finite at {int((~finite).sum())} "
                          f"of {samples} samples")
            return out
        out.sources = sorted(set(out.sources) | set(truths) | set(witnesses))
        for name, (other, black_box) in truths.items():
            if name == primary_name:
                continue
            cmp = compare(other, primary, tol.exact, noise_t, tol.noise_factor,
                          atol=floor if black_box or primary_black_box else None)
            if not cmp.ok:
                _disagree(out, label, primary_name, name, cmp, primary, other, inputs, identity)
                return out
        for name, (idx, other, rtol, rounding, dirs) in witnesses.items():
            truth, grow = primary[idx], 1.0
            if dirs is not None:  # the truth along the same directions: J u
                truth = (truth.reshape(len(idx), -1, dirs.shape[0]) @ dirs).reshape(len(idx), -1)
                grow = float(np.abs(dirs).sum(axis=0).max())  # |J u| errors <= |J| errors * sum|u|
            slack = rounding[idx] if rounding is not None else None
            if slack_t is not None:
                slack = grow * slack_t[idx] if slack is None else slack + grow * slack_t[idx]
            cmp = compare(other, truth, rtol, grow * noise_t[idx], tol.noise_factor, atol=slack)
            if not cmp.ok:
                _disagree(out, label, primary_name, name, cmp, truth, other, inputs, identity,
                          sample_ids=idx)
                return out
        for b in selected:
            claimed = run(b, compiled.claims[claim.index], envs[b])
            noise = np.maximum(noise_t, _worst_noise(claimed, [run(b, compiled.claims[claim.index], e)
                                                               for e in envs_p[b]]))
            cmp = compare(claimed, primary, tol.exact, noise, tol.noise_factor, atol=slack_t)
            out.errors.append(BackendError(b, label, cmp))
            if not cmp.ok and out.counterexample is None:
                confirmed = _confirm_at_high_precision(compiled, claim.index, inputs.columns, cmp, primary)
                if confirmed is None:
                    s_bad = int(np.argmax(cmp.abs_error / cmp.tol))
                    out.status = "inaccurate"
                    out.reason = (f"{label}: the claim evaluates inaccurately in float64 ({b} gives "
                                  f"{_fmt(claimed.reshape(samples, -1)[s_bad].max())} where the truth is "
                                  f"{_fmt(primary.reshape(samples, -1)[s_bad].max())}) but agrees with it at "
                                  f"{HP_DIGITS} digits at {_inputs_at(identity, inputs, s_bad)}; not refuted")
                    continue
                cmp = dataclasses.replace(cmp, worst=(confirmed, cmp.worst[1] if confirmed == cmp.worst[0]
                                                      else int(np.argmax(np.abs(np.nan_to_num(
                                                          claimed.reshape(samples, -1)[confirmed]
                                                          - primary.reshape(samples, -1)[confirmed], nan=np.inf))))))
                _refute(out, identity, graph, inputs, cmp, label, b, claimed, primary,
                        claim.expr.shape, seed)
    return out


HP_DIGITS = 40
CONFIRM_SAMPLES = 5


def _confirm_at_high_precision(compiled: Compiled, index: int, columns: np.ndarray, cmp: Comparison,
                               truth: np.ndarray) -> int | None:
    """Before a refutation: the claim re-evaluated at 40 digits on the worst failing samples.

    A correct claim written in a form that float64 cannot evaluate (inf/inf, a catastrophic
    cancellation) fails the comparison but agrees with the truth at high precision; a wrong one
    still differs. Returns the first failing sample whose error is confirmed, or None.
    """
    import mpmath

    mb = backends.get("mpmath")
    failing = np.flatnonzero(~(cmp.abs_error <= cmp.tol))
    order = failing[np.argsort(-(np.nan_to_num(cmp.abs_error[failing] / cmp.tol[failing], nan=np.inf)))]
    flat_truth = truth.reshape(truth.shape[0], -1)
    for s in order[:CONFIRM_SAMPLES]:
        with mpmath.workdps(HP_DIGITS):
            env = forward_scalar(compiled, mb, [mpmath.mpf(float(v)) for v in columns[s]], upto="")
            try:
                values = [complex(v) for v in mb.run(compiled.claims[index], env)]
            except (ValueError, ZeroDivisionError, TypeError, OverflowError):
                return int(s)
        hp = np.array([v.real if v.imag == 0 else np.nan for v in values])
        with np.errstate(invalid="ignore"):
            diff = np.max(np.abs(np.broadcast_to(hp, flat_truth[s].shape) - flat_truth[s]), initial=0.0)
        if not (np.isfinite(diff) and diff <= cmp.tol[s]):
            return int(s)
    return None if len(failing) else int(cmp.worst[0])


def _inputs_at(identity: Identity, inputs: Inputs, s: int) -> dict[str, Any]:
    return {v.name: np.asarray(inputs.raw[v.name][s]).tolist() for v in identity.variables}


def _refute(out: NumericOutcome, identity: Identity, graph: Graph, inputs: Inputs, cmp: Comparison,
            label: str, backend: str, value: np.ndarray, truth: np.ndarray,
            shape: tuple[int, ...], seed: int) -> None:
    s, e = cmp.worst
    out.status = "refuted"
    out.counterexample = {
        "kind": "reference" if label.startswith("definition vs") else "claim",
        "claim": label,
        "backend": backend,
        "sizes": dict(graph.sizes),
        "inputs": _inputs_at(identity, inputs, s),
        "entry": _entry(shape, e),
        "claimed": float(value.reshape(value.shape[0], -1)[s, e]),
        "true": float(truth.reshape(truth.shape[0], -1)[s, e]),
        "abs_error": float(cmp.abs_error[s]),
        "rel_error": float(cmp.abs_error[s] / cmp.scale[s]) if cmp.scale[s] > 0 else math.inf,
        "tolerance": float(cmp.tol[s]),
        "seed": seed,
        "sample": s,
    }


def _disagree(out: NumericOutcome, label: str, a_name: str, b_name: str, cmp: Comparison,
              a: np.ndarray, b: np.ndarray, inputs: Inputs, identity: Identity,
              sample_ids: np.ndarray | None = None) -> None:
    s, e = cmp.worst
    real_s = int(sample_ids[s]) if sample_ids is not None else s
    out.status = "disagree"
    out.reason = (f"{label}: truth sources disagree: {a_name} = {_fmt(a.reshape(a.shape[0], -1)[s, e])}"
                  f" but {b_name} = {_fmt(b.reshape(b.shape[0], -1)[s, e])} (|diff| "
                  f"{_fmt(cmp.abs_error[s])} > tol {_fmt(cmp.tol[s])}) at "
                  f"{_inputs_at(identity, inputs, real_s)}")
