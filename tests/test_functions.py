"""The formula functions: each one's SymPy form against torch's own function (values and autograd
derivatives), on the numpy, torch and mpmath backends; parameters, constants, messages, LaTeX."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

from derive.errors import ParseError, SpecError, UnsupportedError
from derive.language.functions import FUNCTIONS
from derive.language.parse import parse_formula
from derive.language.specfile import loads_spec
from derive.model import ops
from derive.model.indexed import SymArray
from derive.numeric import backends
from derive.numeric.backends import compile_program
from derive.present.latex import DerivePrinter

x, y, z = sp.symbols("x y z", real=True)
NS = SimpleNamespace(x=x, y=y, z=z)
RNG = np.random.default_rng(7)


def normal(n: int = 24) -> np.ndarray:
    return RNG.normal(0.0, 2.0, n)


def uniform(lo: float, hi: float) -> Callable[[int], np.ndarray]:
    return lambda n=24: RNG.uniform(lo, hi, n)


POS = uniform(0.2, 5.0)
UNIT = uniform(-0.95, 0.95)

# name, formula, torch reference of (x[, y[, z]]), samplers per argument
CASES: list[tuple[str, str, Callable[..., torch.Tensor], tuple[Callable[..., np.ndarray], ...]]] = [
    ("tan", "tan(x)", torch.tan, (uniform(-1.3, 1.3),)),
    ("asin", "asin(x)", torch.asin, (UNIT,)),
    ("acos", "acos(x)", torch.acos, (UNIT,)),
    ("atan", "atan(x)", torch.atan, (normal,)),
    ("sinh", "sinh(x)", torch.sinh, (normal,)),
    ("cosh", "cosh(x)", torch.cosh, (normal,)),
    ("asinh", "asinh(x)", torch.asinh, (normal,)),
    ("acosh", "acosh(x)", torch.acosh, (uniform(1.05, 6.0),)),
    ("atanh", "atanh(x)", torch.atanh, (UNIT,)),
    ("exp2", "exp2(x)", torch.exp2, (normal,)),
    ("expm1", "expm1(x)", torch.expm1, (normal,)),
    ("log1p", "log1p(x)", torch.log1p, (uniform(-0.9, 5.0),)),
    ("log2", "log2(x)", torch.log2, (POS,)),
    ("log10", "log10(x)", torch.log10, (POS,)),
    ("rsqrt", "rsqrt(x)", torch.rsqrt, (POS,)),
    ("reciprocal", "reciprocal(x)", torch.reciprocal, (POS,)),
    ("square", "square(x)", torch.square, (normal,)),
    ("sign", "sign(x)", torch.sign, (normal,)),
    ("floor", "floor(x)", torch.floor, (normal,)),
    ("ceil", "ceil(x)", torch.ceil, (normal,)),
    ("trunc", "trunc(x)", torch.trunc, (normal,)),
    ("round", "round(x)", torch.round, (normal,)),
    ("frac", "frac(x)", torch.frac, (normal,)),
    ("erf", "erf(x)", torch.erf, (normal,)),
    ("erfc", "erfc(x)", torch.erfc, (normal,)),
    ("erfinv", "erfinv(x)", torch.erfinv, (UNIT,)),
    ("lgamma", "lgamma(x)", torch.lgamma, (POS,)),
    ("digamma", "digamma(x)", torch.digamma, (POS,)),
    ("polygamma", "polygamma(2, x)", lambda t: torch.special.polygamma(2, t), (POS,)),
    ("sinc", "sinc(x)", torch.sinc, (normal,)),
    ("logit", "logit(x)", torch.logit, (uniform(0.05, 0.95),)),
    ("sigmoid", "sigmoid(x)", torch.sigmoid, (normal,)),
    ("relu", "relu(x)", torch.relu, (normal,)),
    ("step", "step(x)", lambda t: (t > 0).double(), (normal,)),
    ("softplus", "softplus(x, beta=2)", lambda t: F.softplus(t, beta=2), (uniform(-4, 4),)),
    ("silu", "silu(x)", F.silu, (normal,)),
    ("gelu", "gelu(x)", F.gelu, (normal,)),
    ("gelu_tanh", "gelu(x, approximate='tanh')", lambda t: F.gelu(t, approximate="tanh"), (normal,)),
    ("mish", "mish(x)", F.mish, (normal,)),
    ("elu", "elu(x, alpha=0.7)", lambda t: F.elu(t, 0.7), (normal,)),
    ("celu", "celu(x, 1.5)", lambda t: F.celu(t, 1.5), (normal,)),
    ("selu", "selu(x)", F.selu, (normal,)),
    ("leaky_relu", "leaky_relu(x, 0.2)", lambda t: F.leaky_relu(t, 0.2), (normal,)),
    ("hardtanh", "hardtanh(x, -2, 1.5)", lambda t: F.hardtanh(t, -2.0, 1.5), (normal,)),
    # F.hardsigmoid's float64 backward uses 1/6 rounded to float32 (0.1666666716...): its definition
    ("hardsigmoid", "hardsigmoid(x)", lambda t: torch.clamp(t / 6 + 0.5, 0, 1), (uniform(-6, 6),)),
    ("hardswish", "hardswish(x)", F.hardswish, (uniform(-6, 6),)),
    ("hardshrink", "hardshrink(x, 0.5)", lambda t: F.hardshrink(t, 0.5), (normal,)),
    ("softshrink", "softshrink(x, lambd=0.5)", lambda t: F.softshrink(t, 0.5), (normal,)),
    ("threshold", "threshold(x, 0.5, -1)", lambda t: F.threshold(t, 0.5, -1.0), (normal,)),
    ("softsign", "softsign(x)", F.softsign, (normal,)),
    ("log_sigmoid", "log_sigmoid(x)", F.logsigmoid, (normal,)),
    ("atan2", "atan2(x, y)", torch.atan2, (normal, normal)),
    ("hypot", "hypot(x, y)", torch.hypot, (normal, normal)),
    ("pow", "pow(x, y)", torch.pow, (POS, normal)),
    ("logaddexp", "logaddexp(x, y)", torch.logaddexp, (normal, normal)),
    ("logaddexp2", "logaddexp2(x, y)", torch.logaddexp2, (normal, normal)),
    ("xlogy", "xlogy(x, y)", torch.xlogy, (normal, POS)),
    ("xlog1py", "xlog1py(x, y)", torch.special.xlog1py, (normal, POS)),
    ("copysign", "copysign(x, y)", torch.copysign, (normal, normal)),
    ("fmod", "fmod(x, y)", torch.fmod, (normal, POS)),
    ("remainder", "remainder(x, y)", torch.remainder, (normal, POS)),
    ("maximum", "maximum(x, y)", torch.maximum, (normal, normal)),
    ("minimum", "minimum(x, y)", torch.minimum, (normal, normal)),
    ("clamp_min", "clamp_min(x, y)", lambda a, b: torch.clamp(a, min=b), (normal, normal)),
    ("clamp_max", "clamp_max(x, y)", lambda a, b: torch.clamp(a, max=b), (normal, normal)),
    ("prelu", "prelu(x, y)", lambda a, b: torch.where(a > 0, a, a * b), (normal, normal)),
    ("huber", "huber(x, y, delta=1.5)", lambda a, b: F.huber_loss(a, b, reduction="none", delta=1.5),
     (normal, normal)),
    ("smooth_l1", "smooth_l1(x, y, 0.5)", lambda a, b: F.smooth_l1_loss(a, b, reduction="none", beta=0.5),
     (normal, normal)),
    ("where", "where(x > 0, y, z)", lambda a, b, c: torch.where(a > 0, b, c), (normal, normal, normal)),
    ("clamp", "clamp(x, y, z)", torch.clamp, (normal, normal, normal)),  # y > z half the time
    ("clip", "clip(x, -1, 2)", lambda a: torch.clamp(a, -1.0, 2.0), (normal,)),
    ("compare", "(x > y) + (x <= z)", lambda a, b, c: (a > b).double() + (a <= c).double(),
     (normal, normal, normal)),
]


def _columns(samplers: tuple[Callable[..., np.ndarray], ...]) -> np.ndarray:
    return np.stack([s() for s in samplers], axis=1)


@pytest.mark.parametrize("name, text, reference, samplers", CASES, ids=[c[0] for c in CASES])
def test_values_and_derivatives_match_torch(name: str, text: str, reference: Any, samplers: Any) -> None:
    symbols = [x, y, z][: len(samplers)]
    expr = parse_formula(text, names={"x", "y", "z"})(NS)
    derivatives = [sp.diff(expr, s) for s in symbols]
    assert not any(d.has(sp.Derivative, sp.DiracDelta) for d in derivatives), derivatives
    program = compile_program([expr, *derivatives], symbols)
    cols = _columns(samplers)
    tensors = [torch.tensor(cols[:, i], dtype=torch.float64, requires_grad=True) for i in range(len(symbols))]
    ref = reference(*tensors)
    grads = (torch.autograd.grad(ref.sum(), tensors, allow_unused=True) if ref.requires_grad
             else [None] * len(tensors))
    want = [ref.detach().numpy()] + [np.zeros(len(cols)) if g is None else g.numpy() for g in grads]
    for backend in ("numpy", "torch"):
        be = backends.get(backend)
        got = be.run(program, [be.from_numpy(cols[:, i]) for i in range(len(symbols))])
        for k, (g, w) in enumerate(zip(got, want)):
            g = np.broadcast_to(np.asarray(be.to_numpy(g), dtype=float), w.shape)
            what = "value" if k == 0 else f"d/d{symbols[k - 1]}"
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12, err_msg=f"{name} {what} on {backend}")
    mb = backends.get("mpmath")
    import mpmath
    with mpmath.workdps(30):
        for row in cols[:3]:
            got = mb.run(program, [mpmath.mpf(float(v)) for v in row])
            assert math.isclose(float(got[0]), float(reference(*[torch.tensor(v) for v in row])), rel_tol=1e-9,
                                abs_tol=1e-12), (name, row)


def test_every_elementwise_function_is_in_the_table() -> None:
    tested = {c[0] for c in CASES} | {"gelu"}
    elementwise = {n for n, f in FUNCTIONS.items() if f.group in ("elementwise", "piecewise", "activation")}
    elementwise -= {"exp", "log", "sqrt", "sin", "cos", "tanh", "abs"}  # covered by test_backends
    assert elementwise <= tested, sorted(elementwise - tested)


# --- reductions, scans, linear algebra ---------------------------------------------------------------

def _vec(name: str, n: int) -> np.ndarray:
    return np.array([sp.Symbol(f"{name}{i}", real=True) for i in range(n)], dtype=object)


def _mat(name: str, n: int, m: int) -> np.ndarray:
    return np.array([[sp.Symbol(f"{name}{i}{j}", real=True) for j in range(m)] for i in range(n)], dtype=object)


def _evaluate(text: str, ns: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> np.ndarray:
    expr = parse_formula(text, names=set(ns))(SimpleNamespace(**ns))
    arr = np.asarray(expr, dtype=object)
    inputs = [s for k in ns for s in np.ravel(ns[k])]
    program = compile_program(list(arr.flat), inputs)
    cols = [np.array([v]) for k in ns for v in np.ravel(values[k])]
    out = backends.get("numpy").run(program, cols)
    return np.array([float(np.ravel(o)[0]) for o in out]).reshape(arr.shape)


V = RNG.normal(size=4)
P = RNG.uniform(0.3, 3.0, size=4)
M = RNG.normal(size=(3, 3))
SPD = M @ M.T + 3 * np.eye(3)


@pytest.mark.parametrize("text, want", [
    ("var(v)", np.var(V)), ("var(v, ddof=1)", np.var(V, ddof=1)), ("std(v)", np.std(V)),
    ("std(v, ddof=1)", np.std(V, ddof=1)), ("prod(v)", np.prod(V)), ("cumsum(v)", np.cumsum(V)),
    ("cumprod(v)", np.cumprod(V)), ("logcumsumexp(v)", np.log(np.cumsum(np.exp(V)))),
    ("norm(v)", np.linalg.norm(V)), ("norm(v, 1)", np.linalg.norm(V, 1)),
    ("norm(v, ord=inf)", np.linalg.norm(V, np.inf)), ("norm(v, ord=-inf)", np.linalg.norm(V, -np.inf)),
    ("norm(v, ord=3)", np.sum(np.abs(V) ** 3) ** (1 / 3)), ("amax(v)", V.max()), ("amin(v)", V.min()),
    ("var(M, axis=0)", np.var(M, axis=0)), ("norm(M, axis=1)", np.linalg.norm(M, axis=1)),
    ("cumsum(M, axis=0)", np.cumsum(M, axis=0)), ("amax(M, axis=1)", M.max(axis=1)),
    ("diag(M)", np.diag(M)), ("diag(v)", np.diag(V)), ("tril(M)", np.tril(M)), ("triu(M, k=1)", np.triu(M, 1)),
    ("eye(3)", np.eye(3)), ("zeros(2, 3)", np.zeros((2, 3))), ("ones(3) * pi", np.full(3, np.pi)),
    ("solve(M, w)", np.linalg.solve(M, V[:3])), ("slogdet(M)", np.linalg.slogdet(M)[1]),
    ("inv(M)", np.linalg.inv(M)), ("cross(w, u)", np.cross(V[:3], P[:3])),
    ("solve_triangular(M, w)", np.linalg.solve(np.tril(M), V[:3])),
    ("solve_triangular(M, w, upper=True)", np.linalg.solve(np.triu(M), V[:3])),
    ("cholesky(S)", np.linalg.cholesky(SPD)), ("pinv(R)", np.linalg.pinv(M[:, :2])),
    ("pinv(R.T)", np.linalg.pinv(M[:, :2].T)), ("pinv(M)", np.linalg.pinv(M)),
])
def test_reductions_and_linear_algebra_match_numpy(text: str, want: Any) -> None:
    ns = {"v": _vec("v", 4), "w": _vec("w", 3), "u": _vec("u", 3), "M": _mat("M", 3, 3),
          "S": _mat("S", 3, 3), "R": _mat("R", 3, 2)}
    values = {"v": V, "w": V[:3], "u": P[:3], "M": M, "S": SPD, "R": M[:, :2]}
    used = {k: ns[k] for k in ns if re.search(rf"\b{k}\b", text)}
    np.testing.assert_allclose(_evaluate(text, used, values), want, rtol=1e-10, atol=1e-12)


def test_var_follows_numpy_and_torch_needs_ddof_1() -> None:
    t = torch.tensor(V)
    assert math.isclose(_evaluate("var(v, ddof=1)", {"v": _vec("v", 4)}, {"v": V}), float(torch.var(t)))
    assert not math.isclose(_evaluate("var(v)", {"v": _vec("v", 4)}, {"v": V}), float(torch.var(t)))


def test_piecewise_functions_refuse_symbolic_sizes() -> None:
    n = sp.Symbol("n", integer=True, positive=True)
    arr = SymArray((n,), lambda i: sp.Indexed("z", i))
    for text in ("where(z > 0, z, 0)", "leaky_relu(z)", "maximum(z, 0)", "floor(z)", "clamp(z, 0, 1)"):
        with pytest.raises(UnsupportedError, match="checked at explicit sizes only"):
            parse_formula(text, names={"z"})(SimpleNamespace(z=arr))
    # smooth functions keep working for every n
    out = parse_formula("silu(z) + var(z)", names={"z"})(SimpleNamespace(z=arr))
    assert isinstance(out, SymArray)


# --- numerically stable evaluation -------------------------------------------------------------------

@pytest.mark.parametrize("text, point, want", [
    ("log1p(x)", (1e-20, 0), 1e-20), ("expm1(x)", (1e-20, 0), 1e-20), ("log(1 + x)", (1e-18, 0), 1e-18),
    ("exp(x) - 1", (1e-18, 0), 1e-18), ("1 - exp(x)", (1e-18, 0), -1e-18),
    ("hypot(x, y)", (4e200, 3e200), 5e200), ("logaddexp(x, y)", (1000.0, 1000.0), 1000.0 + math.log(2)),
    ("logaddexp2(x, y)", (2000.0, 2000.0), 2001.0),
    ("gelu(x)", (-10.0, 0), -10.0 * 0.5 * math.erfc(10 / math.sqrt(2))),
    ("gelu(x, approximate='tanh')", (-8.0, 0), -8.0 / (1 + math.exp(2 * math.sqrt(2 / math.pi) * (8 + 0.044715 * 512)))),
    ("xlog1py(x, y)", (1e-10, 1e-10), 1e-10 * math.log1p(1e-10)),
])
def test_stable_forms_are_evaluated_stably(text: str, point: tuple[float, float], want: float) -> None:
    expr = parse_formula(text, names={"x", "y"})(NS)
    program = compile_program([expr], [x, y])
    for name in ("numpy", "torch"):
        be = backends.get(name)
        got = be.run(program, [be.from_numpy(np.array([v])) for v in point])[0]
        got = float(np.ravel(be.to_numpy(got))[0])
        assert math.isclose(got, want, rel_tol=1e-12), (name, got, want)


# --- parameters, constants, messages ---------------------------------------------------------------

def message(text: str, names: set[str] | None = None, **kw: Any) -> str:
    ns = SimpleNamespace(x=x, y=y, v=_vec("v", 3), M=_mat("M", 3, 3), p=sp.Symbol("p", positive=True))
    with pytest.raises(ParseError) as info:
        parse_formula(text, names=names or {"x", "y", "v", "M", "p"}, where="f.toml", line=4, col=9, **kw)(ns)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("f.toml:4:")
    return msg


@pytest.mark.parametrize("text, pinned", [
    ("leaky_relu(x, 0.2, 3)", "leaky_relu takes 1 to 2 arguments, got 3; write leaky_relu(x, negative_slope=0.01)"),
    ("polygamma(x)", "polygamma takes 2 arguments, got 1; write polygamma(n, x)"),
    ("polygamma(1.5, x)", "n must be an integer, got 3/2"),
    ("polygamma(9, x)", "n=9 is out of range; polygamma's n an integer >= 0 and <= 8"),
    ("var(v, ddof=x)", "ddof must be a number written out (not a formula)"),
    ("var(v, 1)", "var takes 1 argument, got 2"),
    ("norm(v, ord=-1)", "ord must be positive (or inf, -inf), got -1"),
    ("norm(v, ord=x)", "ord must be a number written out"),
    ("elu(x, alpha=0)", "alpha=0 is out of range; elu's alpha a number > 0 and <= 100"),
    ("gelu(x, approximate='fast')", "approximate must be one of 'none', 'tanh'"),
    ("gelu(x, 'tanh')", "gelu takes 1 argument, got 2"),
    ("solve_triangular(M, v, upper=1)", "upper must be True or False"),
    ("softplus(x, beta=1e9)", "beta=1000000000 is out of range"),
    ("hardtanh(x, min_val=-1, min_val=-2)", "hardtanh got min_val twice"),
    ("elu(x, alpha=1, alpha=2)", "elu got alpha twice"),
    ("leaky_relu(x, 0.2, negative_slope=0.3)", "leaky_relu got negative_slope twice"),
    ("threshold(x, 0.5)", "threshold needs value"),
    ("sum(v, ddof=1)", "keyword 'ddof' is not allowed for sum; its keywords are axis="),
    ("exp(x, beta=1)", "keyword 'beta' is not allowed for exp; exp takes no keywords"),
    ("clamp(x, 1)", "clamp takes 3 arguments, got 2; write clamp(x, lo, hi)"),
    ("where(x, 1, 0)", "where needs a comparison as its condition (such as x > 0), got x"),
    ("x == y", "comparison '==' is not allowed"),
    ("x != y", "comparison '!=' is not allowed"),
    ("acos(2)", "acos(2): acos is defined for [-1, 1], and 2 is outside it"),
    ("log(-p)", "log(-p): log is defined for positive values (x > 0), and -p is outside it for every input"),
    ("sqrt(-p - 1)", "is outside it for every input"),
    ("atanh(1)", "atanh is defined for (-1, 1), and 1 is outside it"),
    ("acosh(1/2)", "acosh is defined for x >= 1"),
    ("cross(M, v)", "f.toml:4:15: cross needs a vector of length 3 as its 1st argument, got a matrix of shape (3, 3)"),
    ("dot(v, x)", "f.toml:4:16: dot needs a vector or matrix as its 2nd argument, got the scalar x"),
    ("diag(x)", "diag needs a vector or a matrix as its argument, got the scalar x"),
    ("eye(x)", "eye needs a size as its argument, got the scalar x"),
    ("zeros(0)", "zeros needs a size"),
    ("cholesky(v)", "cholesky needs a square matrix, got shape (3,)"),
    ("solve(M, x)", "solve needs a vector or a matrix as its 2nd argument, got the scalar x"),
    ("var(x)", "var needs a vector or matrix as its argument, got the scalar x"),
    ("x ** y", "write pow(x, y) for a variable exponent"),
    # unknown functions suggest the closest names
    ("arctan(x)", "unknown function 'arctan'; did you mean 'atan'"),
    ("arcsin(x)", "did you mean 'asin'"),
    ("swish(x)", "did you mean 'silu'"),
    ("gammaln(x)", "did you mean 'lgamma'"),
    ("power(x, y)", "did you mean 'pow'"),
    ("clamb(x, 0, 1)", "did you mean 'clamp'"),
    ("leaky_rlu(x)", "did you mean 'leaky_relu'"),
    ("max(x, y)", "unknown function 'max'; maximum(x, y) is elementwise"),
    ("matmul(M, M)", "unknown function 'matmul'; write a @ b"),
    ("matrix_exp(M)", "the matrix exponential has no closed form"),
    ("sort(v)", "sorting is not a formula of the entries"),
])
def test_parameters_arguments_and_unknown_names_are_one_line(text: str, pinned: str) -> None:
    assert pinned in message(text)


def test_pi_and_e_are_constants_unless_declared() -> None:
    assert parse_formula("2 * pi * x", names={"x"})(NS) == 2 * sp.pi * x
    assert parse_formula("e**x", names={"x"})(NS) == sp.exp(x)
    assert parse_formula("log(e)", names=set())(NS) == 1
    e = sp.Symbol("e", real=True)
    assert parse_formula("e * x", names={"x", "e"})(SimpleNamespace(x=x, e=e)) == e * x  # the variable wins
    assert parse_formula("2**x", names={"x"})(NS) == 2**x


def test_spec_file_errors_point_at_the_call() -> None:
    from derive.symbolic.graph import build

    text = ('[[identity]]\nname = "bad"\nvariables = { M = { shape = "matrix(n, n)" }, v = { shape = "vector(n)" } }\n'
            'sizes = [{ n = 3 }]\ndefine = { f = "sum(cross(M, v))" }\nwrt = "v"\nclaim = "v"\n')
    (identity,) = loads_spec(text, where="bad.derive.toml")
    with pytest.raises(ParseError) as info:  # shapes are known when the formula is built
        build(identity, {"n": 3})
    assert str(info.value) == ("bad.derive.toml:5:27: identity 'bad': definition 'f': cross needs a vector of "
                               "length 3 as its 1st argument, got a matrix of shape (3, 3); write cross(x, y)")
    text = text.replace("sum(cross(M, v))", "sum(leaky_relu(v, 0.1, 2))")
    with pytest.raises(ParseError, match=r"^bad.derive.toml:5:21: identity 'bad': definition 'f': leaky_relu takes "
                                         r"1 to 2 arguments, got 3"):
        loads_spec(text, where="bad.derive.toml")


def test_latex_of_the_new_functions() -> None:
    p = DerivePrinter()
    assert p.doprint(ops.floor(x)) == r"\left\lfloor x\right\rfloor"
    assert p.doprint(ops.ceil(x)) == r"\left\lceil x\right\rceil"
    assert p.doprint(ops.round_(x)) == r"\left\lfloor x\right\rceil"
    assert p.doprint(ops.trunc(x)) == r"\operatorname{trunc}\left(x\right)"
    assert p.doprint(ops.sign(x)) == r"\operatorname{sgn}\left(x\right)"
    assert p.doprint(ops.lgamma(x)) == r"\ln\Gamma\left(x\right)"
    assert p.doprint(ops.digamma(x)) == r"\psi\left(x\right)"
    assert p.doprint(ops.polygamma(2, x)) == r"\psi^{(2)}\left(x\right)"
    assert p.doprint(ops.atan2(y, x)) == r"\operatorname{atan2}\left(y, x\right)"
    assert r"\begin{cases}" in p.doprint(ops.where(ops.compare(">", x, 0), x, 0))


def test_derivatives_are_derived_not_looked_up() -> None:
    """The step functions differentiate to 0, everything else through SymPy's own rules."""
    assert sp.diff(ops.floor(x) + ops.round_(x) + ops.trunc(x) + ops.ceil(x) + ops.sign(x), x) == 0
    assert sp.diff(ops.frac(x), x) == 1
    assert sp.simplify(sp.diff(ops.silu(x), x) - (ops.sigmoid(x) * (1 + x * (1 - ops.sigmoid(x))))) == 0
    assert sp.diff(ops.lgamma(x), x) == sp.polygamma(0, x)
    assert sp.diff(ops.fmod(x, y), y) == -ops.trunc(x / y)


def test_every_function_is_listed_in_the_readme() -> None:
    text = Path(__file__).parents[1].joinpath("README.md").read_text()
    section = text.split("## Functions", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in FUNCTIONS if f"`{name}" not in section]
    assert not missing, missing


def test_a_shape_error_in_a_function_is_a_spec_error_not_a_crash() -> None:
    with pytest.raises(SpecError):
        parse_formula("maximum(v, w)", names={"v", "w"})(SimpleNamespace(v=_vec("v", 3), w=_vec("w", 2)))
