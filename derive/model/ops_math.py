"""Elementwise mathematics for formulas: the math library, comparisons, activations and losses.

Every function is written with SymPy's own functions (exp, log, asin, erf, loggamma,
polygamma, Piecewise...), so its derivative is derived by SymPy, never looked up from a rule we
wrote: silu is x * sigmoid(x), gelu is x/2 (1 + erf(x/sqrt 2)), elu a Piecewise of x and
alpha (e^x - 1). Piecewise functions have kinks where their conditions change (the checker
samples away from them and a proof holds away from them); the integer-valued step functions
(floor, ceil, trunc, round, and frac, fmod, remainder built on them) jump where their argument
crosses an integer (or a half-integer for round), are differentiated to 0, and are sampled
away from their jumps too (see `jump_arguments`). Functions defined on part of the real line
(log, acos, atanh, ...) say where in `DOMAINS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import sympy as sp

from .ops_core import elementwise, elementwise_n, half

# --- integer-valued step functions: derivative 0 away from their jumps -------------------------


class Floor(sp.floor):
    """floor(x), differentiated as 0 (its derivative everywhere but the integers)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero


class Ceil(sp.ceiling):
    """ceil(x), differentiated as 0 (its derivative everywhere but the integers)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero


class Trunc(sp.Function):
    """The integer part toward zero (numpy/torch trunc); derivative 0 away from the integers."""

    is_integer = True

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_Number:
            return sp.Integer(int(x)) if x.is_finite else None
        if x.is_integer:
            return x
        if x.is_nonnegative:
            return Floor(x)
        if x.is_nonpositive:
            return Ceil(x)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero


class Round(sp.Function):
    """The nearest integer, halves to even (numpy/torch round); derivative 0 away from the
    half-integers, where it jumps."""

    is_integer = True

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_Number:
            return sp.Integer(round(sp.Rational(x))) if x.is_finite else None
        if x.is_integer:
            return x
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero


class Sign(sp.sign):
    """sign(x) in {-1, 0, 1}: a kink at 0 like abs, differentiated as 0 (SymPy's own sign
    differentiates to a Dirac delta, which no sample can evaluate)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero

    def _eval_derivative(self, x: sp.Symbol) -> sp.Expr:
        return sp.S.Zero


STEP_FUNCTIONS: dict[type, Callable[[sp.Expr], sp.Expr]] = {
    Floor: lambda a: sp.sin(sp.pi * a), Ceil: lambda a: sp.sin(sp.pi * a),
    Trunc: lambda a: sp.sin(sp.pi * a), Round: lambda a: sp.cos(sp.pi * a),
    sp.floor: lambda a: sp.sin(sp.pi * a), sp.ceiling: lambda a: sp.sin(sp.pi * a),
}
"""For each step function, an expression of its argument that is 0 exactly at its jumps (and
about pi times the distance to the nearest jump near one)."""


def jump_arguments(exprs: Any) -> list[sp.Expr]:
    """The expressions whose zeros are the jumps of the step functions in `exprs` (a sample
    closer to a jump than a finite-difference step would straddle it)."""
    found: list[sp.Expr] = []
    for e in exprs:
        e = sp.sympify(e)
        for atom in sorted(e.atoms(*STEP_FUNCTIONS), key=sp.default_sort_key):
            arg = STEP_FUNCTIONS[type(atom)](atom.args[0])
            if arg.free_symbols and arg not in found:
                found.append(arg)
    return found


# --- domains -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """Where a function's argument must lie: (low, high), each end open or closed."""

    low: sp.Expr = sp.S.NegativeInfinity
    high: sp.Expr = sp.S.Infinity
    low_open: bool = True
    high_open: bool = True
    text: str = ""

    def outside(self, x: sp.Expr) -> bool:
        """True when x is certainly outside (a number, or a symbol whose assumptions say so)."""
        if self.low.is_finite:
            d = x - self.low
            if (d.is_nonpositive if self.low_open else d.is_negative) is True:
                return True
        if self.high.is_finite:
            d = x - self.high
            if (d.is_nonnegative if self.high_open else d.is_positive) is True:
                return True
        return False


POSITIVE_REALS = Interval(sp.S.Zero, text="positive values (x > 0)")
NONNEGATIVE = Interval(sp.S.Zero, low_open=False, text="x >= 0")
UNIT = Interval(sp.S.NegativeOne, sp.S.One, False, False, text="[-1, 1]")
OPEN_UNIT = Interval(sp.S.NegativeOne, sp.S.One, text="(-1, 1)")

DOMAINS: dict[str, Interval] = {
    "log": POSITIVE_REALS, "log2": POSITIVE_REALS, "log10": POSITIVE_REALS,
    "sqrt": NONNEGATIVE, "rsqrt": POSITIVE_REALS,
    "acos": UNIT, "asin": UNIT, "atanh": OPEN_UNIT, "erfinv": OPEN_UNIT,
    "acosh": Interval(sp.S.One, low_open=False, text="x >= 1"),
    "log1p": Interval(sp.S.NegativeOne, text="x > -1"),
    "logit": Interval(sp.S.Zero, sp.S.One, text="(0, 1)"),
    "lgamma": Interval(sp.S.Zero, text="x > 0 (poles at 0, -1, -2, ...)"),
    "digamma": Interval(sp.S.Zero, text="x > 0 (poles at 0, -1, -2, ...)"),
    "polygamma": Interval(sp.S.Zero, text="x > 0 (poles at 0, -1, -2, ...)"),
}
"""The argument each function of part of the real line needs (the first argument, or the
second for polygamma(n, x), xlogy's y...). A number outside it, or an argument that the
variables' domains place outside it, is refused when the formula is built; sampled inputs
outside it give non-finite values, which are redrawn."""


# --- elementary and special functions ----------------------------------------------------------

exp = elementwise(sp.exp)
log = elementwise(sp.log)
sqrt = elementwise(sp.sqrt)
tanh = elementwise(sp.tanh)
sin = elementwise(sp.sin)
cos = elementwise(sp.cos)
abs_ = elementwise(sp.Abs)
sigmoid = elementwise(lambda x: 1 / (1 + sp.exp(-x)))
relu = elementwise(lambda x: sp.Max(0, x))
erf = elementwise(sp.erf)
"""The error function (SymPy differentiates it to 2/sqrt(pi) exp(-x^2) by itself)."""
step = elementwise(lambda x: sp.Piecewise((1, x > 0), (0, True)))
"""The derivative of relu away from 0: 1 where x > 0, else 0."""

tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh = map(elementwise, (
    sp.tan, sp.asin, sp.acos, sp.atan, sp.sinh, sp.cosh, sp.asinh, sp.acosh, sp.atanh))
exp2 = elementwise(lambda x: sp.Pow(2, x))
expm1 = elementwise(lambda x: sp.exp(x) - 1)
"""e^x - 1 (evaluated with the libraries' expm1, exact near 0)."""
log1p = elementwise(lambda x: sp.log(1 + x))
"""log(1 + x) (evaluated with the libraries' log1p, exact near 0)."""
log2 = elementwise(lambda x: sp.log(x) / sp.log(2))
log10 = elementwise(lambda x: sp.log(x) / sp.log(10))
rsqrt = elementwise(lambda x: 1 / sp.sqrt(x))
reciprocal = elementwise(lambda x: 1 / x)
erfc = elementwise(sp.erfc)
erfinv = elementwise(sp.erfinv)
lgamma = elementwise(sp.loggamma)
"""log|Gamma(x)| (SymPy's loggamma; differentiated to digamma)."""
digamma = elementwise(lambda x: sp.polygamma(0, x))
sinc = elementwise(lambda x: sp.sinc(sp.pi * x))
"""numpy's normalised sinc: sin(pi x) / (pi x), 1 at 0."""
logit = elementwise(lambda x: sp.log(x) - sp.log(1 - x))
sign = elementwise(Sign, piecewise="sign")
floor = elementwise(Floor, piecewise="floor")
ceil = elementwise(Ceil, piecewise="ceil")
trunc = elementwise(Trunc, piecewise="trunc")
round_ = elementwise(Round, piecewise="round")
frac = elementwise(lambda x: x - Trunc(x), piecewise="frac")
"""x - trunc(x), with the sign of x (torch.frac)."""
square = elementwise(lambda x: x**2)


def polygamma(n: int, x: Any) -> Any:
    """The n-th derivative of digamma (n = 0 is digamma); SymPy differentiates it to n + 1."""
    return elementwise(lambda v: sp.polygamma(int(n), v))(x)


def softplus(x: Any, beta: Any = 1) -> Any:
    """log(1 + e^(beta x)) / beta (torch's threshold, a switch to x for large beta x, is left out:
    the smooth function is what it approximates)."""
    b = _num(beta)
    return elementwise(lambda v: sp.log(1 + sp.exp(b * v)) / b)(x)


def _power(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Pow(a, b)


pow_ = elementwise_n(_power, "pow")
"""a**b for any exponent (a > 0 where b is not an integer)."""
atan2 = elementwise_n(sp.atan2, "atan2")
hypot = elementwise_n(lambda a, b: sp.sqrt(a**2 + b**2), "hypot")
logaddexp = elementwise_n(lambda a, b: sp.log(sp.exp(a) + sp.exp(b)), "logaddexp")
logaddexp2 = elementwise_n(lambda a, b: sp.log(sp.Pow(2, a) + sp.Pow(2, b)) / sp.log(2), "logaddexp2")
xlogy = elementwise_n(lambda a, b: a * sp.log(b), "xlogy")
"""x log(y) (torch also defines 0 log 0 = 0, a single point)."""
xlog1py = elementwise_n(lambda a, b: a * sp.log(1 + b), "xlog1py")
copysign = elementwise_n(lambda a, b: sp.Abs(a) * Sign(b), "copysign", piecewise=True)
fmod = elementwise_n(lambda a, b: a - b * Trunc(a / b), "fmod", piecewise=True)
"""The remainder of a / b with the sign of a (C's fmod, torch.fmod)."""
remainder = elementwise_n(lambda a, b: a - b * Floor(a / b), "remainder", piecewise=True)
"""The remainder of a / b with the sign of b (Python's %, torch.remainder, numpy's mod)."""

# --- comparisons and piecewise functions --------------------------------------------------------

RELATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "<": lambda a, b: sp.StrictLessThan(a, b), "<=": lambda a, b: sp.LessThan(a, b),
    ">": lambda a, b: sp.StrictGreaterThan(a, b), ">=": lambda a, b: sp.GreaterThan(a, b),
}


def _indicator(rel: Any) -> sp.Expr:
    if rel is sp.true or rel is True:
        return sp.S.One
    if rel is sp.false or rel is False:
        return sp.S.Zero
    return sp.Piecewise((1, rel), (0, True))


def compare(op: str, a: Any, b: Any) -> Any:
    """1 where `a op b` holds, else 0 (op one of < <= > >=): a step with its kink at a = b."""
    rel = RELATIONS[op]
    return elementwise_n(lambda x, y: _indicator(rel(x, y)), f"'{op}'", piecewise=True)(a, b)


def _conditions(c: sp.Expr) -> list[Any] | None:
    """The relations whose conjunction `c` indicates (c = 1 where all hold, else 0), or None."""
    if c == 1:
        return []
    if isinstance(c, sp.Piecewise) and len(c.args) == 2 and c.args[0].expr == 1 \
            and c.args[1].expr == 0 and c.args[1].cond is sp.true:
        return [c.args[0].cond]
    if isinstance(c, sp.Mul):
        out: list[Any] = []
        for factor in c.args:
            inner = _conditions(factor)
            if inner is None:
                return None
            out += inner
        return out
    return None


class ConditionError(ValueError):
    """where's condition is not a comparison."""


def _where(c: sp.Expr, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    if c == 0:
        return b
    conds = _conditions(c)
    if conds is None:
        raise ConditionError(f"where needs a comparison as its condition (such as x > 0), got {c}")
    out = a
    for cond in reversed(conds):
        out = sp.Piecewise((out, cond), (b, True))
    return out


where = elementwise_n(_where, "where", piecewise=True)
"""where(cond, a, b): a where the comparison `cond` holds, else b (a Piecewise)."""


def _extreme(a: sp.Expr, b: sp.Expr, larger: bool) -> sp.Expr:
    """max(a, b) (or min): a Piecewise on the comparison of a and b, whose kink a = b the
    checker finds. SymPy rewrites a comparison of Piecewise values into a condition it cannot
    split, so there SymPy's Max (Min) is used, unless that would merge with a Max inside."""
    rel = (a >= b) if larger else (a <= b)
    if not (a.has(sp.Piecewise) or b.has(sp.Piecewise)) or isinstance(rel, (bool, sp.logic.boolalg.BooleanAtom)):
        return sp.Piecewise((a, rel), (b, True))
    same = sp.Max if larger else sp.Min
    if not (isinstance(a, same) or isinstance(b, same)):
        return same(a, b)
    return sp.Piecewise((a, rel), (b, True))


def _maximum(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return _extreme(a, b, True)


def _minimum(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return _extreme(a, b, False)


def extreme_of(values: list[sp.Expr], larger: bool) -> sp.Expr:
    """The largest (smallest) of the values as a tree of comparisons between the values
    themselves (2^n leaves: for the few entries a formula writes out)."""
    if len(values) == 1:
        return values[0]
    first, rest = values[0], values[1:]
    best_rest = extreme_of(rest, larger)
    first_wins = extreme_of([first, *rest[1:]], larger) if len(rest) > 1 else first
    rel = (first >= rest[0]) if larger else (first <= rest[0])
    return sp.Piecewise((first_wins, rel), (best_rest, True))


maximum = elementwise_n(_maximum, "maximum", piecewise=True)
"""The larger of a and b (a Piecewise: a kink where a = b; SymPy's Max would merge nested
maxima into one with no single kink)."""
minimum = elementwise_n(_minimum, "minimum", piecewise=True)
def _clamp(x: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """min(max(x, lo), hi) exactly as torch computes it (hi when lo > hi), one comparison per
    condition (x - lo, x - hi, lo - hi are its kinks)."""
    return sp.Piecewise((sp.Piecewise((x, x <= hi), (hi, True)), x >= lo),
                        (sp.Piecewise((lo, lo <= hi), (hi, True)), True))


clamp = elementwise_n(_clamp, "clamp", piecewise=True)
"""hi where x > hi, lo where x < lo, else x: min(max(x, lo), hi) for lo <= hi, as torch.clamp
and numpy.clip."""
clamp_min = elementwise_n(_maximum, "clamp_min", piecewise=True)
clamp_max = elementwise_n(_minimum, "clamp_max", piecewise=True)

# --- activations and losses, as torch.nn.functional defines them ----------------------------------

SELU_ALPHA = sp.Float("1.6732632423543772848170429916717", 40)
SELU_SCALE = sp.Float("1.0507009873554804934193349852946", 40)


def _num(v: Any) -> sp.Expr:
    """A parameter as an exact number (0.01 is 1/100)."""
    v = sp.sympify(v, strict=True) if not isinstance(v, float) else sp.Rational(str(v))
    return sp.Rational(str(v)) if isinstance(v, sp.Float) else v


def _pw(*pieces: tuple[Any, Any]) -> sp.Expr:
    return sp.Piecewise(*pieces)


silu = elementwise(lambda x: x / (1 + sp.exp(-x)))
"""x * sigmoid(x) (also called swish)."""
mish = elementwise(lambda x: x * sp.tanh(sp.log(1 + sp.exp(x))))
softsign = elementwise(lambda x: x / (1 + sp.Abs(x)), piecewise="softsign")
log_sigmoid = elementwise(lambda x: -sp.log(1 + sp.exp(-x)))
hardsigmoid = elementwise(lambda x: _pw((0, x <= -3), (x / 6 + half, x < 3), (1, True)), piecewise="hardsigmoid")
hardswish = elementwise(lambda x: _pw((0, x <= -3), (x * (x + 3) / 6, x < 3), (x, True)), piecewise="hardswish")
selu = elementwise(lambda x: SELU_SCALE * _pw((x, x > 0), (SELU_ALPHA * (sp.exp(x) - 1), True)), piecewise="selu")


def gelu(x: Any, approximate: str = "none") -> Any:
    """x Phi(x) = x/2 (1 + erf(x / sqrt 2)); approximate="tanh": x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if approximate == "tanh":
        c = sp.sqrt(2 / sp.pi)
        k = sp.Rational(44715, 1000000)
        return elementwise(lambda v: v / 2 * (1 + sp.tanh(c * (v + k * v**3))))(x)
    return elementwise(lambda v: v / 2 * (1 + sp.erf(v / sp.sqrt(2))))(x)


def elu(x: Any, alpha: Any = 1) -> Any:
    a = _num(alpha)
    return elementwise(lambda v: _pw((v, v > 0), (a * (sp.exp(v) - 1), True)), piecewise="elu")(x)


def celu(x: Any, alpha: Any = 1) -> Any:
    a = _num(alpha)
    return elementwise(lambda v: _pw((v, v > 0), (a * (sp.exp(v / a) - 1), True)), piecewise="celu")(x)


def leaky_relu(x: Any, negative_slope: Any = sp.Rational(1, 100)) -> Any:
    s = _num(negative_slope)
    return elementwise(lambda v: _pw((v, v > 0), (s * v, True)), piecewise="leaky_relu")(x)


prelu = elementwise_n(lambda x, a: _pw((x, x > 0), (a * x, True)), "prelu", piecewise=True)
"""x where x > 0, else a x, with a learnable slope a (a tensor, unlike leaky_relu's number)."""


def hardtanh(x: Any, min_val: Any = -1, max_val: Any = 1) -> Any:
    lo, hi = _num(min_val), _num(max_val)
    return elementwise(lambda v: _pw((hi, v > hi), (v, v >= lo), (lo, True)), piecewise="hardtanh")(x)


def hardshrink(x: Any, lambd: Any = half) -> Any:
    lam = _num(lambd)
    return elementwise(lambda v: _pw((v, v > lam), (0, v >= -lam), (v, True)), piecewise="hardshrink")(x)


def softshrink(x: Any, lambd: Any = half) -> Any:
    lam = _num(lambd)
    return elementwise(lambda v: _pw((v - lam, v > lam), (0, v >= -lam), (v + lam, True)), piecewise="softshrink")(x)


def threshold(x: Any, threshold: Any, value: Any) -> Any:
    """x where x > threshold, else value (torch.nn.functional.threshold)."""
    th, val = _num(threshold), _num(value)
    return elementwise(lambda v: _pw((v, v > th), (val, True)), piecewise="threshold")(x)


def huber(x: Any, y: Any, delta: Any = 1) -> Any:
    """Elementwise Huber loss of r = x - y (torch's reduction="none"): r^2/2 where |r| < delta,
    else delta (|r| - delta/2); each piece's condition is one comparison (a kink at r = +-delta),
    in the order torch's kernel tests them (r < -delta, r > delta, else)."""
    d = _num(delta)

    def f(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        r = a - b
        return _pw((d * (-r - d / 2), r <= -d), (d * (r - d / 2), r >= d), (r**2 / 2, True))
    return elementwise_n(f, "huber", piecewise=True)(x, y)


def smooth_l1(x: Any, y: Any, beta: Any = 1) -> Any:
    """Elementwise smooth L1 loss of r = x - y (torch's reduction="none"): r^2/(2 beta) where
    |r| < beta, else |r| - beta/2."""
    b_ = _num(beta)

    def f(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        r = a - b
        return _pw((-r - b_ / 2, r <= -b_), (r - b_ / 2, r >= b_), (r**2 / (2 * b_), True))
    return elementwise_n(f, "smooth_l1", piecewise=True)(x, y)
