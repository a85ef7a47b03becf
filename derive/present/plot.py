"""Figures of the evidence: finite-difference error against step size, the distribution of
the claims' relative errors over the samples, and Adam on Himmelblau's function.

Each figure is computed here from the identity itself (its compiled forward, claims and SymPy
derivative), so it shows the numbers rather than a summary of them. matplotlib is an optional
extra (`pip install 'derive-checker[report]'`), imported only when a figure is drawn, and
drawn without pyplot (no display, no global state).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..numeric import backends
from ..numeric.backends import Program, compile_program
from ..bounded import run_bounded
from ..run.check import DEFAULT_SAMPLES, DEFAULT_TIMEOUT, rng_for
from ..errors import DeriveError, SpecError, UnsupportedError
from ..numeric.tolerance import EPS, TOLERANCES
from ..numeric.compiled import Compiled, _target, compile_graph, forward
from ..numeric.sampling import sample
from ..model.spec import Identity
from ..symbolic.graph import Derivation, Graph, build, derive
from .figures import FORMATS, STYLE, figure_class, inline_svg, render  # noqa: F401  (plot.inline_svg, as before)

KINDS = ("fd", "errors", "himmelblau", "stability")
STEPS = np.logspace(-16, 0, 33)
"""Relative steps of the finite-difference sweep: the actual step is h * max(1, |x|)."""
CHOSEN_STEP = EPS ** (1 / 3)
ZERO_FLOOR = 1e-18
"""Relative errors that are exactly 0 are drawn here (a log axis has no 0)."""

# Adam on Himmelblau, as in shared/seeds/000 and 002 (torch.optim.Adam's defaults, lr 1e-3)
ADAM_LR, ADAM_STEPS, ADAM_BETAS, ADAM_EPS = 1e-3, 20000, (0.9, 0.999), 1e-8
HIMMELBLAU_STARTS = ((-4.0, 0.0), (1.0, 0.0), (4.0, 0.0))
"""The starting points the seeds try: (-4, 0) and (1, 0) are run there, (4, 0) is suggested."""
HIMMELBLAU_MINIMA = ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126))


def warm_up() -> None:
    """Load matplotlib's SVG backend, its font list and torch once, before worker processes
    fork, so that each worker does not pay for them again."""
    figure_class()
    import matplotlib.backends.backend_svg  # noqa: F401
    from matplotlib import font_manager

    font_manager.findfont("DejaVu Sans")
    if backends.available("torch"):
        backends.get("torch")


# --- the numbers --------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """One size of an identity: its graph, SymPy derivative, compiled programs and samples."""

    graph: Graph
    derivation: Derivation | None
    compiled: Compiled
    columns: np.ndarray  # (samples, variable entries), drawn inside the domains


def prepare(identity: Identity, *, seed: int = 0, samples: int = DEFAULT_SAMPLES,
            timeout: float = DEFAULT_TIMEOUT) -> list[Prepared]:
    """Each declared size instantiated, derived (in a bounded worker) and sampled from the
    same seeded stream `derive check` uses."""
    out = []
    for index, sizes in enumerate(identity.sizes):
        graph = build(identity, dict(sizes))
        derivation = None
        for msg in run_bounded(lambda g=graph: iter([derive(g)]), timeout=timeout):
            if msg.kind == "item":
                derivation = msg.value
        compiled = compile_graph(graph, derivation)
        drawn = sample(identity, graph, compiled, rng_for(seed, identity.name, index), samples,
                       TOLERANCES["float64"])
        out.append(Prepared(graph, derivation, compiled, drawn.inputs.columns))
    return out


def _values(values: list[Any], count: int, backend: str = "numpy", dtype: Any = np.float64) -> np.ndarray:
    """A program's outputs (arrays or constants) as one (count, outputs) numpy array."""
    if not values:
        return np.zeros((count, 0), dtype=dtype)
    be = backends.get(backend)
    return np.asarray(be.to_numpy(be.stack(values, (count,))), dtype=dtype)


def _relative(value: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Normwise relative error per row, as the checker measures it: max|v - t| / max|t|."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = np.abs(value - truth).max(axis=1, initial=0.0)
        scale = np.abs(truth).max(axis=1, initial=0.0)
        rel = np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), np.where(err > 0, np.inf, 0.0))
    return np.where(np.isfinite(rel), rel, np.inf)


def _truth(prep: Prepared, index: int, env: list[Any], count: int) -> np.ndarray:
    """The SymPy derivative for claim `index` (or the defined value, for a value claim)."""
    nb = backends.get("numpy")
    if prep.derivation is None:
        raise UnsupportedError(f"{prep.graph.name}: the symbolic derivative is not available "
                               "(its derivation did not finish), so there is no exact truth to plot")
    return _values(nb.run(prep.compiled.derived[index], env), count)


@dataclass(frozen=True)
class StepSweep:
    """|finite difference - truth| / |truth| against the relative step h, at one sample."""

    name: str
    claim: str
    sizes: dict[str, int]
    point: dict[str, float]
    steps: np.ndarray
    central: np.ndarray
    complex_step: np.ndarray | None  # None where the forward is not analytic
    chosen: float
    claim_error: float


def step_sweep(identity: Identity, prepared: list[Prepared] | None = None, *, seed: int = 0,
               timeout: float = DEFAULT_TIMEOUT) -> StepSweep:
    """Central differences and the complex step over h in logspace(-16, 0) for the first
    derivative claim, at the first sample of the first size."""
    prepared = prepared or prepare(identity, seed=seed, samples=1, timeout=timeout)
    prep = prepared[0]
    graph, compiled = prep.graph, prep.compiled
    claim = next((c for c in graph.claims if c.wrt is not None), None)
    if claim is None:
        raise UnsupportedError(f"{identity.name} claims only a value: there is no derivative "
                               "to take finite differences of")
    nb = backends.get("numpy")
    point = prep.columns[:1]
    env = forward(compiled, nb, point)
    truth = _truth(prep, claim.index, env, 1)
    claimed = _values(nb.run(compiled.claims[claim.index], env), 1)
    count = len(STEPS)

    def target(columns: np.ndarray, dtype: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            values = _target(compiled, graph, forward(compiled, nb, columns, graph.target))
        return _values(values, columns.shape[0], dtype=dtype)

    central, cstep = [], []
    for slot in compiled.slots[claim.wrt]:
        h = STEPS * max(1.0, abs(float(point[0, slot])))
        plus, minus = np.repeat(point, count, 0), np.repeat(point, count, 0)
        plus[:, slot] += h
        minus[:, slot] -= h
        h_true = plus[:, slot] - minus[:, slot]  # 0 where h is below x's rounding: no point drawn
        with np.errstate(all="ignore"):
            central.append((target(plus, np.float64) - target(minus, np.float64))
                           / np.where(h_true > 0, h_true, np.nan)[:, None])
        if compiled.analytic:
            z = np.repeat(point, count, 0).astype(np.complex128)
            z[:, slot] += 1j * h
            cstep.append(target(z, np.complex128).imag / h[:, None])
    # Jacobian columns in the order of the wrt entries, like the derivative's flat layout
    fd = np.stack(central, axis=2).reshape(count, -1)
    truth_rows = np.repeat(truth, count, 0)
    complex_err = (_relative(np.stack(cstep, axis=2).reshape(count, -1), truth_rows)
                   if cstep else None)
    shown = {}
    for var in identity.variables:
        values = point[0, list(compiled.slots[var.name])]
        shown[var.name] = float(values[0]) if values.size == 1 else values.tolist()
    central_err = np.where(np.isnan(fd).any(axis=1), np.nan, _relative(fd, truth_rows))
    return StepSweep(identity.name, claim.label, dict(graph.sizes), shown, STEPS, central_err,
                     complex_err, CHOSEN_STEP,
                     float(_relative(claimed, truth)[0]))


@dataclass(frozen=True)
class SampleErrors:
    """Each claim's relative error against the SymPy derivative, per sample and backend."""

    name: str
    errors: dict[str, np.ndarray]  # backend -> relative errors over all sizes, claims, samples
    rtol: float


def sample_errors(identity: Identity, prepared: list[Prepared] | None = None, *, seed: int = 0,
                  samples: int = DEFAULT_SAMPLES, timeout: float = DEFAULT_TIMEOUT) -> SampleErrors:
    """The per-sample relative errors behind the report's 'max rel err' columns."""
    prepared = prepared or prepare(identity, seed=seed, samples=samples, timeout=timeout)
    nb = backends.get("numpy")
    names = [b for b in ("numpy", "torch") if backends.available(b)]
    errors: dict[str, list[np.ndarray]] = {b: [] for b in names}
    for prep in prepared:
        count = prep.columns.shape[0]
        env_np = forward(prep.compiled, nb, prep.columns)
        for b in names:
            be = backends.get(b)
            env = env_np if b == "numpy" else forward(prep.compiled, be, be.from_numpy(prep.columns))
            for claim in prep.graph.claims:
                truth = _truth(prep, claim.index, env_np, count)
                claimed = _values(be.run(prep.compiled.claims[claim.index], env), count, b)
                errors[b].append(_relative(claimed, truth))
    return SampleErrors(identity.name, {b: np.concatenate(e) for b, e in errors.items()},
                        TOLERANCES["float64"].exact)


@dataclass(frozen=True)
class Descent:
    """Adam, driven by the identity's claimed gradient, on a function of two scalars."""

    name: str
    grid: tuple[np.ndarray, np.ndarray, np.ndarray]  # X, Y, f(X, Y)
    starts: np.ndarray                                 # (paths, 2)
    paths: np.ndarray                                  # (recorded steps, paths, 2)
    ends: np.ndarray                                   # (paths, 2): where Adam stops
    minima: np.ndarray


def _two_scalars(identity: Identity) -> tuple[Graph, Program, Program]:
    names = [v.name for v in identity.variables]
    wrts = [c.wrt for c in identity.claims]
    if names != ["x", "y"] or any(v.shape for v in identity.variables) or not {"x", "y"} <= set(wrts):
        raise UnsupportedError(f"{identity.name}: a Himmelblau plot needs a function of two scalars "
                               "x and y with claims wrt x and wrt y")
    graph = build(identity, {})
    symbols = [s for v in graph.variables for s in v.flat]
    full = graph.expanded  # intermediates written in x and y: one program per step, no forward
    claims = {c.wrt: c for c in graph.claims}
    grad = compile_program([claims[w].expr.flat[0].xreplace(full) for w in ("x", "y")], symbols)
    value = compile_program([graph.nodes[graph.target].flat[0].xreplace(full)], symbols)
    return graph, grad, value


def adam(gradient: Any, starts: np.ndarray, *, steps: int = ADAM_STEPS, lr: float = ADAM_LR,
         record_every: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """torch.optim.Adam's update (defaults: betas (0.9, 0.999), eps 1e-8, no weight decay), for
    each row of `starts` at once; returns the end points and the path every `record_every` steps."""
    p = np.array(starts, dtype=np.float64)
    m, v = np.zeros_like(p), np.zeros_like(p)
    path = [p.copy()]
    b1, b2 = ADAM_BETAS
    for step in range(1, steps + 1):
        g = gradient(p)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - (lr / (1 - b1**step)) * m / (np.sqrt(v) / math.sqrt(1 - b2**step) + ADAM_EPS)
        if step % record_every == 0 or step == steps:
            path.append(p.copy())
    return p, np.stack(path)


def himmelblau_descent(identity: Identity, *, starts: Any = HIMMELBLAU_STARTS,
                       steps: int = ADAM_STEPS) -> Descent:
    """The landscape of `identity` (it must be Himmelblau's function: zero at its four minima)
    and Adam's paths from the seeds' starting points, each step taking the claimed gradient."""
    _, grad, value = _two_scalars(identity)
    nb = backends.get("numpy")
    minima = np.array(HIMMELBLAU_MINIMA)
    at_minima = _values(nb.run(value, [minima[:, 0], minima[:, 1]]), len(minima))[:, 0]
    if not np.all(np.abs(at_minima) < 1e-6):
        raise UnsupportedError(f"{identity.name} is not Himmelblau's function: f = "
                               f"{at_minima[0]:.3g} at its minimum (3, 2), not 0")

    def gradient(p: np.ndarray) -> np.ndarray:
        return _values(nb.run(grad, [p[:, 0], p[:, 1]]), p.shape[0])

    start = np.array(starts, dtype=np.float64).reshape(-1, 2)
    ends, paths = adam(gradient, start, steps=steps)
    axis = np.linspace(-6.0, 6.0, 121)
    X, Y = np.meshgrid(axis, axis)
    Z = _values(nb.run(value, [X.ravel(), Y.ravel()]), X.size)[:, 0].reshape(X.shape)
    return Descent(identity.name, (X, Y, Z), start, paths, ends, minima)


# --- the pictures ---------------------------------------------------------------------------

def _styled(draw: Callable[..., Any]) -> Callable[..., Any]:
    """Draw under the house style (text sizes are fixed when the artists are made)."""
    @functools.wraps(draw)
    def styled(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return styled


def _powers_of_ten(axis: Any) -> None:
    """Log-axis labels as 1e-16 rather than mathtext (which is slow to lay out and large in SVG)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_locator(LogLocator(base=10, numticks=9))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{round(math.log10(v))}" if v > 0 else "0"))
    axis.set_minor_locator(LogLocator(base=10, subs=(), numticks=9))


def _figure(width: float = 4.6, height: float = 3.0, **margins: float) -> Any:
    """A figure with fixed margins (a constrained layout would draw it twice as often)."""
    fig = figure_class()(figsize=(width, height))
    fig.subplots_adjust(**{"left": 0.15, "right": 0.97, "top": 0.91, "bottom": 0.15, **margins})
    return fig


@_styled
def fd_figure(sweep: StepSweep) -> Any:
    """The V: truncation error falls as h shrinks, rounding error rises; complex step stays flat."""
    fig = _figure(bottom=0.25)
    ax = fig.add_subplot()
    floor = lambda a: np.maximum(a, ZERO_FLOOR)  # noqa: E731
    ax.loglog(sweep.steps, floor(sweep.central), "-", lw=1.2, label="central difference")
    if sweep.complex_step is not None:
        ax.loglog(sweep.steps, floor(sweep.complex_step), "-", lw=1.2, label="complex step")
    ax.axvline(sweep.chosen, color="0.4", ls=":", lw=1)
    ax.annotate("chosen h = ε^(1/3)", (sweep.chosen, 0.98), xycoords=("data", "axes fraction"),
                ha="right", va="top", rotation=90, fontsize=7, color="0.3")
    if sweep.claim_error > 0:
        ax.axhline(max(sweep.claim_error, ZERO_FLOOR), color="tab:red", ls="--", lw=1,
                   label="the claim's error")
    ax.set_xlabel("relative step h (the step is h·max(1, |x|))")
    _powers_of_ten(ax.xaxis)
    _powers_of_ten(ax.yaxis)
    ax.set_ylabel("relative error vs SymPy derivative")
    sizes = ", ".join(f"{k}={v}" for k, v in sweep.sizes.items())
    ax.set_title(f"{sweep.name}: {sweep.claim}" + (f" [{sizes}]" if sizes else ""))
    fig.legend(loc="lower center", ncols=3, frameon=False)
    return fig


@_styled
def errors_figure(errors: SampleErrors) -> Any:
    """A histogram of log10 relative error per backend, with the tolerance marked."""
    fig = _figure()
    ax = fig.add_subplot()
    everything = np.concatenate(list(errors.errors.values()))
    logs = {b: np.log10(np.clip(np.where(np.isfinite(e), e, 1e300), ZERO_FLOOR, None))
            for b, e in errors.errors.items()}
    top = max(0.0, math.ceil(max((float(v.max()) for v in logs.values() if v.size), default=0.0)))
    bins = np.linspace(math.log10(ZERO_FLOOR), top + 0.5, int(top + 18.5) * 2 + 1)
    ax.hist(list(logs.values()), bins=bins, label=list(logs))
    ax.axvline(math.log10(errors.rtol), color="tab:red", ls="--", lw=1, label=f"rtol {errors.rtol:g}")
    zeros = int(np.sum(everything == 0))
    ax.set_xlabel("log10 relative error per sample "
                  f"({zeros} of {everything.size} exactly 0, drawn at {math.log10(ZERO_FLOOR):g})")
    ax.set_ylabel("samples")
    ax.set_title(f"{errors.name}: claim vs SymPy derivative")
    ax.legend(loc="best")
    return fig


@_styled
def himmelblau_figure(descent: Descent) -> Any:
    """Contours of f (log-spaced levels), the four minima, and Adam's paths."""
    fig = _figure(4.6, 4.2, left=0.1, bottom=0.1, top=0.9)
    ax = fig.add_subplot()
    X, Y, Z = descent.grid
    levels = np.concatenate([[0], np.logspace(-0.5, math.log10(Z.max()), 14)])
    filled = ax.contourf(X, Y, Z, levels=levels, cmap="viridis", alpha=0.9)
    filled.set_rasterized(True)
    ax.contour(X, Y, Z, levels=levels, colors="white", linewidths=0.3)
    ax.plot(descent.minima[:, 0], descent.minima[:, 1], "*", color="gold", mec="black", mew=0.5,
            ms=10, label="the four minima")
    colours = ("tab:red", "tab:orange", "white", "tab:pink")
    for k in range(descent.paths.shape[1]):
        path, colour = descent.paths[:, k], colours[k % len(colours)]
        x0, y0 = descent.starts[k]
        ax.plot(path[:, 0], path[:, 1], "-", lw=1.8, color=colour, label=f"Adam from ({x0:g}, {y0:g})")
        ax.plot([x0], [y0], "o", color=colour, mec="black", mew=0.5, ms=5)
    ax.set_xlim(-6, 6)
    ax.set_ylim(-6, 6)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"{descent.name}\nAdam (lr {ADAM_LR:g}, {ADAM_STEPS} steps) on the claimed gradient")
    ax.legend(loc="lower left", facecolor="0.75", framealpha=0.9)
    return fig


def figure(kind: str, identity: Identity, *, seed: int = 0, samples: int = DEFAULT_SAMPLES,
           timeout: float = DEFAULT_TIMEOUT) -> Any:
    """One figure of `kind` (fd, errors, himmelblau or stability) for `identity`."""
    figure_class()  # fail before any computing if matplotlib is missing
    if kind == "fd":
        return fd_figure(step_sweep(identity, seed=seed, timeout=timeout))
    if kind == "errors":
        return errors_figure(sample_errors(identity, seed=seed, samples=samples, timeout=timeout))
    if kind == "stability":
        from ..numeric.stability import analyse
        from .stability import figure as stability_figure

        return stability_figure(analyse(identity, seed=seed).summary(curves=True))
    if kind == "himmelblau":
        return himmelblau_figure(himmelblau_descent(identity))
    raise SpecError(f"unknown plot kind {kind!r}; choose one of {', '.join(KINDS)}")


def write(kind: str, identity: Identity, path: str | Path, *, seed: int = 0,
          samples: int = DEFAULT_SAMPLES, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Write one plot to `path`; its suffix (.svg or .png) chooses the format."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise SpecError(f"{path}: cannot tell the image format; name the file FILE.svg or FILE.png")
    data = render(figure(kind, identity, seed=seed, samples=samples, timeout=timeout), fmt)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        raise DeriveError(f"cannot write {path}: {exc.strerror}; choose a writable path with -o") from exc
