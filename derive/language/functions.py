"""The functions a formula may call: each with its implementation, arguments and parameters.

A call is `name(arrays..., params...)`: the arrays are formulas (names, numbers, calls); the
parameters are plain numbers read from the text and bounded here (`negative_slope=0.2`,
`ddof=1`, `ord=inf`, `approximate="tanh"`), never formulas. `axis=` is the one keyword every
reduction takes. What each argument must be (a vector, a square matrix, a size) is checked
when the formula is built, with the file, line and column of the call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..model import ops

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """A number-valued parameter: a literal in the formula, bounded to [low, high]."""

    name: str
    kind: str = "number"  # "number", "int", "ord" (1, 2, inf, -inf, p > 0), "choice", "bool"
    default: Any = REQUIRED
    low: float = -1e6
    high: float = 1e6
    choices: tuple[str, ...] = ()
    positional: bool = True
    lead: bool = False  # written before the array arguments: polygamma(n, x)
    open_low: bool = False  # low itself is not allowed

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} one of {', '.join(repr(c) for c in self.choices)}"
        if self.kind == "bool":
            return f"{self.name}=True or False"
        if self.kind == "ord":
            return f"{self.name} 1, 2, inf, -inf or a number p > 0"
        what = "an integer" if self.kind == "int" else "a number"
        lo = f"> {self.low:g}" if self.open_low else f">= {self.low:g}"
        return f"{self.name} {what} {lo} and <= {self.high:g}"


@dataclass(frozen=True)
class Function:
    """A formula function: its implementation, its array arguments and its parameters."""

    impl: Callable[..., Any]
    arity: int = 1
    axis: bool = False
    default_axis: int | None = None
    matrix: bool = False  # det, logdet, inv...: written out entry by entry (n! terms), never nested
    doc: str = ""
    params: tuple[Param, ...] = ()
    shapes: tuple[str, ...] = ()
    """What each array argument must be: "any", "array" (not a scalar), "vector", "vector3",
    "matrix", "square", "vector_or_matrix", "size" (a size name or an integer from 1 to 64)."""
    min_arity: int | None = None
    domain: str | None = None  # a key of ops.DOMAINS: where the (last) array argument must lie
    group: str = "elementwise"
    arg_names: tuple[str, ...] = ()

    @property
    def fewest(self) -> int:
        return self.arity if self.min_arity is None else self.min_arity

    def shape_of(self, i: int) -> str:
        return self.shapes[i] if i < len(self.shapes) else "any"

    def signature(self, name: str) -> str:
        lead = [p.name for p in self.params if p.lead]
        names = list(self.arg_names) or list("xyz"[: self.arity] if self.arity <= 3 else
                                             [f"x{i}" for i in range(self.arity)])
        if self.min_arity is not None:
            names = names[: self.min_arity] + [f"[{n}]" for n in names[self.min_arity:]]
        rest = [f"{p.name}={_show(p.default)}" if not p.required else p.name
                for p in self.params if not p.lead]
        if self.axis:
            rest.append(f"axis={_show(self.default_axis)}")
        return f"{name}({', '.join(lead + names + rest)})"


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if v is None:
        return "None"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return str(v)


def _onehot(t: Any) -> Any:
    """Labels reach formulas already one-hot encoded (derive.domains.Label), so this is the
    identity; it lets a formula say what it means: onehot(t)."""
    return t


def _size(a: Any, axis: int | None = 0) -> Any:
    return ops.size(a, 0 if axis is None else axis)


def _gelu(x: Any, approximate: str = "none") -> Any:
    return ops.gelu(x, approximate=approximate)


def _zeros(*dims: Any) -> Any:
    return ops.zeros(*dims)


def _ones(*dims: Any) -> Any:
    return ops.ones(*dims)


def _solve_triangular(a: Any, b: Any, upper: bool = False) -> Any:
    return ops.solve_triangular(a, b, upper=upper)


def _unary(impl: Callable[[Any], Any], doc: str = "", domain: str | None = None,
           group: str = "elementwise") -> Function:
    return Function(impl, doc=doc, domain=domain, group=group)


def _binary(impl: Callable[[Any, Any], Any], doc: str = "", names: tuple[str, str] = ("x", "y"),
            domain: str | None = None, group: str = "elementwise") -> Function:
    return Function(impl, arity=2, doc=doc, arg_names=names, domain=domain, group=group)


def _activation(impl: Callable[..., Any], doc: str, *params: Param) -> Function:
    return Function(impl, doc=doc, params=params, group="activation")


def _reduction(impl: Callable[..., Any], doc: str, *params: Param, default_axis: int | None = None) -> Function:
    return Function(impl, axis=True, default_axis=default_axis, doc=doc, params=params,
                    shapes=("array",), group="reduction")


_INF = math.inf
_SLOPE = Param("negative_slope", default=0.01, low=-100, high=100)
_ALPHA = Param("alpha", default=1.0, low=0, high=100, open_low=True)
_LAMBD = Param("lambd", default=0.5, low=0, high=1e6)
_DDOF = Param("ddof", "int", default=0, low=0, high=8, positional=False)

FUNCTIONS: dict[str, Function] = {
    # --- elementary -------------------------------------------------------------------------
    "exp": _unary(ops.exp), "log": _unary(ops.log, domain="log"),
    "sqrt": _unary(ops.sqrt, domain="sqrt"), "sin": _unary(ops.sin), "cos": _unary(ops.cos),
    "tan": _unary(ops.tan), "asin": _unary(ops.asin, domain="asin"),
    "acos": _unary(ops.acos, domain="acos"), "atan": _unary(ops.atan),
    "atan2": _binary(ops.atan2, "the angle of (x, y) = atan2(y, x)", ("y", "x")),
    "sinh": _unary(ops.sinh), "cosh": _unary(ops.cosh), "tanh": _unary(ops.tanh),
    "asinh": _unary(ops.asinh), "acosh": _unary(ops.acosh, domain="acosh"),
    "atanh": _unary(ops.atanh, domain="atanh"),
    "exp2": _unary(ops.exp2, "2**x"), "expm1": _unary(ops.expm1, "exp(x) - 1 (exact near 0)"),
    "log1p": _unary(ops.log1p, "log(1 + x) (exact near 0)", domain="log1p"),
    "log2": _unary(ops.log2, domain="log2"), "log10": _unary(ops.log10, domain="log10"),
    "logaddexp": _binary(ops.logaddexp, "log(exp(x) + exp(y))"),
    "logaddexp2": _binary(ops.logaddexp2, "log2(2**x + 2**y)"),
    "hypot": _binary(ops.hypot, "sqrt(x**2 + y**2)"),
    "pow": _binary(ops.pow_, "x**y for any exponent y (x > 0 unless y is an integer)"),
    "rsqrt": _unary(ops.rsqrt, "1 / sqrt(x)", domain="rsqrt"),
    "reciprocal": _unary(ops.reciprocal, "1 / x"), "square": _unary(ops.square, "x**2"),
    "abs": _unary(ops.abs_), "sign": _unary(ops.sign, "-1, 0 or 1 (derivative 0, a kink at 0)"),
    "floor": _unary(ops.floor, "derivative 0 away from the integers"),
    "ceil": _unary(ops.ceil, "derivative 0 away from the integers"),
    "trunc": _unary(ops.trunc, "toward zero; derivative 0 away from the integers"),
    "round": _unary(ops.round_, "halves to even; derivative 0 away from the half-integers"),
    "frac": _unary(ops.frac, "x - trunc(x), as torch.frac"),
    "fmod": _binary(ops.fmod, "x - y trunc(x / y) (sign of x)"),
    "remainder": _binary(ops.remainder, "x - y floor(x / y) (sign of y, Python's %)"),
    "copysign": _binary(ops.copysign, "|x| sign(y)"),
    "erf": _unary(ops.erf), "erfc": _unary(ops.erfc, "1 - erf(x)"),
    "erfinv": _unary(ops.erfinv, domain="erfinv"),
    "lgamma": _unary(ops.lgamma, "log|Gamma(x)|", domain="lgamma"),
    "digamma": _unary(ops.digamma, "d lgamma / dx", domain="digamma"),
    "polygamma": Function(lambda x, n: ops.polygamma(n, x), doc="the n-th derivative of digamma", domain="polygamma",
                          params=(Param("n", "int", low=0, high=8, lead=True),)),
    "sinc": _unary(ops.sinc, "sin(pi x) / (pi x), numpy's normalised sinc"),
    "xlogy": _binary(ops.xlogy, "x log(y)"), "xlog1py": _binary(ops.xlog1py, "x log(1 + y)"),
    "logit": _unary(ops.logit, "log(x / (1 - x))", domain="logit"),
    # --- piecewise ---------------------------------------------------------------------------
    "where": Function(ops.where, arity=3, doc="a where the comparison cond holds, else b",
                      arg_names=("cond", "a", "b"), group="piecewise"),
    "maximum": _binary(ops.maximum, "the larger of x and y, elementwise", group="piecewise"),
    "minimum": _binary(ops.minimum, "the smaller of x and y, elementwise", group="piecewise"),
    "clamp": Function(ops.clamp, arity=3, doc="min(max(x, lo), hi)", arg_names=("x", "lo", "hi"),
                      group="piecewise"),
    "clip": Function(ops.clamp, arity=3, doc="numpy's name for clamp", arg_names=("x", "lo", "hi"),
                     group="piecewise"),
    "clamp_min": _binary(ops.clamp_min, "max(x, lo)", ("x", "lo"), group="piecewise"),
    "clamp_max": _binary(ops.clamp_max, "min(x, hi)", ("x", "hi"), group="piecewise"),
    "step": _unary(ops.step, "1 where x > 0, else 0", group="piecewise"),
    # --- activations and losses (torch.nn.functional) -----------------------------------------
    "sigmoid": _activation(ops.sigmoid, "1 / (1 + exp(-x))"),
    "relu": _activation(ops.relu, "max(0, x)"),
    "softplus": _activation(ops.softplus, "log(1 + exp(beta x)) / beta",
                            Param("beta", default=1, low=0, high=100, open_low=True)),
    "silu": _activation(ops.silu, "x sigmoid(x)"),
    "gelu": _activation(_gelu, "x Phi(x); approximate='tanh' for the tanh form",
                        Param("approximate", "choice", default="none", choices=("none", "tanh"),
                              positional=False)),
    "mish": _activation(ops.mish, "x tanh(softplus(x))"),
    "elu": _activation(ops.elu, "x if x > 0 else alpha (exp(x) - 1)", _ALPHA),
    "celu": _activation(ops.celu, "x if x > 0 else alpha (exp(x / alpha) - 1)", _ALPHA),
    "selu": _activation(ops.selu, "scale elu(x, alpha) with torch's constants"),
    "leaky_relu": _activation(ops.leaky_relu, "x if x > 0 else negative_slope x", _SLOPE),
    "prelu": Function(ops.prelu, arity=2, doc="x if x > 0 else a x (a an array)",
                      arg_names=("x", "a"), group="activation"),
    "hardtanh": _activation(ops.hardtanh, "x clamped to [min_val, max_val]",
                            Param("min_val", default=-1.0), Param("max_val", default=1.0)),
    "hardsigmoid": _activation(ops.hardsigmoid, "relu6(x + 3) / 6"),
    "hardswish": _activation(ops.hardswish, "x relu6(x + 3) / 6"),
    "hardshrink": _activation(ops.hardshrink, "x where |x| > lambd, else 0", _LAMBD),
    "softshrink": _activation(ops.softshrink, "x -+ lambd where |x| > lambd, else 0", _LAMBD),
    "threshold": _activation(ops.threshold, "x where x > threshold, else value",
                             Param("threshold"), Param("value")),
    "softsign": _activation(ops.softsign, "x / (1 + |x|)"),
    "log_sigmoid": _activation(ops.log_sigmoid, "log(sigmoid(x))"),
    "huber": Function(ops.huber, arity=2, doc="elementwise Huber loss of x - y", group="activation",
                      params=(Param("delta", default=1.0, low=0, high=1e6, open_low=True),)),
    "smooth_l1": Function(ops.smooth_l1, arity=2, doc="elementwise smooth L1 loss of x - y",
                          group="activation",
                          params=(Param("beta", default=1.0, low=0, high=1e6, open_low=True),)),
    # --- reductions and scans ---------------------------------------------------------------------
    "sum": _reduction(ops.sum_, "the sum of the entries"),
    "mean": _reduction(ops.mean, "the mean of the entries"),
    "var": _reduction(ops.var, "the variance; ddof=0 divides by N (numpy), ddof=1 by N - 1 (torch)", _DDOF),
    "std": _reduction(ops.std, "sqrt(var(x, ddof=...))", _DDOF),
    "prod": _reduction(ops.prod, "the product of the entries"),
    "amax": _reduction(ops.amax, "the largest entry (kinks where entries tie)"),
    "amin": _reduction(ops.amin, "the smallest entry (kinks where entries tie)"),
    "norm": _reduction(ops.norm, "the vector norm (sum |x|^ord)^(1/ord)",
                       Param("ord", "ord", default=2)),
    "cumsum": _reduction(ops.cumsum, "running sums", default_axis=-1),
    "cumprod": _reduction(ops.cumprod, "running products", default_axis=-1),
    "logcumsumexp": _reduction(ops.logcumsumexp, "log(cumsum(exp(x)))", default_axis=-1),
    "softmax": _reduction(ops.softmax, "exp(x) / sum(exp(x))", default_axis=-1),
    "log_softmax": _reduction(ops.log_softmax, "x - logsumexp(x)", default_axis=-1),
    "logsumexp": _reduction(ops.logsumexp, "log(sum(exp(x)))", default_axis=-1),
    "onehot": Function(_onehot, doc="labels are already one-hot rows: returns its argument", group="other"),
    "size": Function(_size, axis=True, default_axis=0, doc="the length of an axis", shapes=("array",),
                     group="other"),
    # --- linear algebra ---------------------------------------------------------------------------
    "dot": Function(ops.dot, arity=2, doc="the inner product of two vectors", shapes=("array", "array"),
                    group="linalg"),
    "outer": Function(ops.outer, arity=2, doc="the outer product of two vectors",
                      shapes=("array", "array"), group="linalg"),
    "cross": Function(ops.cross, arity=2, doc="the cross product of 3-vectors",
                      shapes=("vector3", "vector3"), group="linalg"),
    "trace": Function(ops.trace, shapes=("square",), group="linalg"),
    "transpose": Function(ops.transpose, group="linalg"),
    "diag": Function(ops.diag, doc="vector -> diagonal matrix; matrix -> its diagonal (numpy)",
                     shapes=("vector_or_matrix",), group="linalg"),
    "tril": Function(ops.tril, doc="the lower triangle", shapes=("matrix",), group="linalg",
                     params=(Param("k", "int", default=0, low=-8, high=8),)),
    "triu": Function(ops.triu, doc="the upper triangle", shapes=("matrix",), group="linalg",
                     params=(Param("k", "int", default=0, low=-8, high=8),)),
    "eye": Function(ops.eye, doc="the n x n identity", shapes=("size",), arg_names=("n",), group="linalg"),
    "zeros": Function(_zeros, arity=2, min_arity=1, doc="zeros(n) or zeros(n, m)", shapes=("size", "size"),
                      arg_names=("n", "m"), group="linalg"),
    "ones": Function(_ones, arity=2, min_arity=1, doc="ones(n) or ones(n, m)", shapes=("size", "size"),
                     arg_names=("n", "m"), group="linalg"),
    "det": Function(ops.det, matrix=True, shapes=("square",), group="linalg"),
    "logdet": Function(ops.logdet, matrix=True, shapes=("square",), group="linalg"),
    "slogdet": Function(ops.slogdet, matrix=True, doc="log|det x| (torch's logabsdet)", shapes=("square",),
                        group="linalg"),
    "inv": Function(ops.inv, matrix=True, shapes=("square",), group="linalg"),
    "pinv": Function(ops.pinv, matrix=True, doc="the pseudo-inverse of a full-rank matrix",
                     shapes=("matrix",), group="linalg"),
    "solve": Function(ops.solve, arity=2, matrix=True, doc="x with a x = b", arg_names=("a", "b"),
                      shapes=("square", "vector_or_matrix"), group="linalg"),
    "solve_triangular": Function(_solve_triangular, arity=2, matrix=True, arg_names=("a", "b"),
                                 doc="x with tril(a) x = b (triu with upper=True)",
                                 shapes=("square", "vector_or_matrix"), group="linalg",
                                 params=(Param("upper", "bool", default=False, positional=False),)),
    "cholesky": Function(ops.cholesky, matrix=True, doc="lower L with L L^T = x (reads x's lower triangle)",
                         shapes=("square",), group="linalg"),
}

CONSTANTS: dict[str, Any] = {"pi": ops.pi, "e": ops.E}
"""Names that are numbers unless a variable of that name is declared (the variable wins)."""

ALIASES: dict[str, str] = {
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2", "arcsinh": "asinh",
    "arccosh": "acosh", "arctanh": "atanh", "power": "pow", "absolute": "abs", "fabs": "abs",
    "expit": "sigmoid", "swish": "silu", "logsigmoid": "log_sigmoid", "gammaln": "lgamma",
    "psi": "digamma", "ceiling": "ceil", "fix": "trunc", "rint": "round", "sgn": "sign",
    "signum": "sign", "mod": "remainder", "fmax": "maximum", "fmin": "minimum",
    "variance": "var", "average": "mean", "determinant": "det", "inverse": "inv",
    "huber_loss": "huber", "smooth_l1_loss": "smooth_l1", "linalg_norm": "norm",
    "vector_norm": "norm", "cholesky_lower": "cholesky", "relu6": "hardtanh",
}
"""numpy/torch/scipy names for functions that have another name here (for the hint)."""

NOT_SUPPORTED: dict[str, str] = {
    "matmul": "write a @ b", "mm": "write a @ b", "bmm": "write a @ b", "mv": "write a @ v",
    "max": "maximum(x, y) is elementwise; the largest entry is norm(x, ord=inf) for |x|",
    "min": "minimum(x, y) is elementwise",
    "matrix_exp": "the matrix exponential has no closed form in the entries; it is not supported",
    "expm": "the matrix exponential has no closed form in the entries; it is not supported",
    "i0": "Bessel functions are not supported (SymPy writes their derivatives with other Bessel functions)",
    "sort": "sorting is not a formula of the entries", "argmax": "argmax is not differentiable",
}
"""Names people reach for that have no formula function, with what to do instead."""
