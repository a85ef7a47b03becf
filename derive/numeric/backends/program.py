"""SymPy expressions compiled to a straight-line program, evaluated by any backend.

`compile_program` runs common-subexpression elimination once and turns each expression into
a small tree of operation tuples. Evaluation walks that tree with a backend's table of
operations (numpy, torch, mpmath...), so nothing is ever turned into source code and passed
to `eval` or `exec`, and one compiled program serves every backend and every batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import sympy as sp

from ...errors import UnsupportedError
from ...model.ops_math import Ceil, Floor, Round, Sign, Trunc

Op = tuple  # ("in", i) | ("tmp", j) | ("num", value) | (op, *children) | ("fn", name, *children)


class Log1p(sp.Function):
    """log(1 + x), evaluated with the libraries' log1p. Evaluation only: `compile_program`
    writes it for log(1 + x) after differentiation, so it is never differentiated."""


class Expm1(sp.Function):
    """exp(x) - 1, evaluated with the libraries' expm1 (evaluation only, like Log1p)."""


class Erfc(sp.Function):
    """erfc(x) = 1 - erf(x), evaluated with the libraries' erfc (evaluation only; SymPy's own erfc
    would rewrite erfc(-x) as 2 - erfc(x), the cancellation this avoids)."""


class Hypot(sp.Function):
    """sqrt(a^2 + b^2) without overflow, evaluated with the libraries' hypot (evaluation only)."""


FUNCTIONS: dict[type, str] = {
    sp.exp: "exp", sp.log: "log", sp.tanh: "tanh", sp.sin: "sin", sp.cos: "cos",
    sp.tan: "tan", sp.sinh: "sinh", sp.cosh: "cosh", sp.atan: "atan", sp.Abs: "abs",
    sp.sign: "sign", sp.Heaviside: "heaviside", sp.erf: "erf",
    sp.asin: "asin", sp.acos: "acos", sp.asinh: "asinh", sp.acosh: "acosh", sp.atanh: "atanh",
    sp.atan2: "atan2", sp.erfc: "erfc", sp.erfinv: "erfinv", sp.loggamma: "lgamma",
    sp.polygamma: "polygamma", sp.sinc: "sinc", sp.floor: "floor", sp.ceiling: "ceil",
    Floor: "floor", Ceil: "ceil", Trunc: "trunc", Round: "round", Sign: "sign",
    Log1p: "log1p", Expm1: "expm1", Hypot: "hypot", Erfc: "erfc",
}
"""SymPy function -> backend operation (all arguments passed, in order: atan2(y, x),
polygamma(n, x))."""
RELATIONS: dict[type, str] = {
    sp.StrictGreaterThan: "gt", sp.GreaterThan: "ge", sp.StrictLessThan: "lt", sp.LessThan: "le",
}


@dataclass(frozen=True)
class Program:
    """A compiled function of `inputs` returning one value per output expression."""

    inputs: tuple[sp.Symbol, ...]
    temps: tuple[Op, ...]
    outputs: tuple[Op, ...]


def _lower(e: Any, index: dict[sp.Symbol, Op]) -> Op:
    if isinstance(e, sp.Symbol):
        if e not in index:
            raise UnsupportedError(f"symbol {e} is not an input of this program")
        return index[e]
    if e.is_Number:
        if not e.is_real:
            raise UnsupportedError(f"non-real constant {e} cannot be evaluated numerically")
        return ("num", e)
    if e in (sp.pi, sp.E):
        return ("num", e)
    if isinstance(e, sp.Add):
        return ("add", *(_lower(a, index) for a in e.args))
    if isinstance(e, sp.Mul):
        return ("mul", *(_lower(a, index) for a in e.args))
    if isinstance(e, sp.Pow):
        base, ex = e.args
        if ex == sp.Rational(1, 2):
            return ("fn", "sqrt", _lower(base, index))
        return ("pow", _lower(base, index), _lower(ex, index))
    if isinstance(e, (sp.Max, sp.Min)):
        name = "max" if isinstance(e, sp.Max) else "min"
        return (name, *(_lower(a, index) for a in e.args))
    if isinstance(e, (sp.core.relational.Relational, sp.logic.boolalg.Boolean)):
        return ("cond", _lower_cond(e, index))  # a condition common subexpression elimination took out
    if isinstance(e, sp.Piecewise):
        pieces = []
        for value, cond in e.args:
            pieces.append((_lower(value, index), _lower_cond(cond, index)))
        return ("piecewise", *pieces)
    if isinstance(e, Shift):
        return ("fn", "shift", *(_lower(a, index) for a in e.args))
    if isinstance(e, Guard):
        a, cond, safe = e.args
        return ("piecewise", (_lower(a, index), _lower_cond(cond, index)), (_lower(safe, index), ("true",)))
    name = FUNCTIONS.get(type(e))
    if name is not None:
        if isinstance(e, sp.Heaviside):
            return ("fn", name, _lower(e.args[0], index))
        return ("fn", name, *(_lower(a, index) for a in e.args))
    raise UnsupportedError(f"cannot evaluate {type(e).__name__} numerically ({e}); "
                           "use the functions in derive.ops")


def _lower_cond(c: Any, index: dict[sp.Symbol, Op]) -> Op:
    if c is sp.true:
        return ("true",)
    if c is sp.false:
        return ("false",)
    if isinstance(c, sp.Symbol):  # a condition computed once, as a temporary
        return ("is", _lower(c, index))
    if isinstance(c, (sp.And, sp.Or)):
        return ("and" if isinstance(c, sp.And) else "or", *(_lower_cond(a, index) for a in c.args))
    if isinstance(c, sp.Not):
        return ("not", _lower_cond(c.args[0], index))
    if isinstance(c, sp.ITE):  # SymPy's form of a condition on a Piecewise value
        a, b, d = c.args
        return ("or", ("and", _lower_cond(a, index), _lower_cond(b, index)),
                ("and", ("not", _lower_cond(a, index)), _lower_cond(d, index)))
    name = RELATIONS.get(type(c))
    if name is None:
        raise UnsupportedError(f"cannot evaluate the condition {c}; use <, <=, >, >=")
    return (name, _lower(c.lhs, index), _lower(c.rhs, index))


class Shift(sp.Function):
    """The largest of its arguments (by real part): the shift that keeps a sum of exponentials
    finite. Evaluated only, never differentiated: the identities it serves hold for any shift."""


def _exponent(term: sp.Expr) -> sp.Expr | None:
    if isinstance(term, sp.exp):
        return term.args[0]
    if term.is_Rational and term > 0:
        return sp.log(term)
    if isinstance(term, sp.Pow) and term.base.is_Rational and term.base > 0 and term.exp.free_symbols:
        return term.exp * sp.log(term.base)  # 2**a (logaddexp2) is exp(a log 2)
    return None


def _exponents(e: sp.Expr) -> list[sp.Expr] | None:
    """b_k when e = sum_k exp(b_k) (positive constants count, as exp(log c)), with one exp at least."""
    if not isinstance(e, sp.Add) or not any(_exponent(a) is not None and not a.is_Rational
                                             for a in e.args):
        return None
    found = [_exponent(a) for a in e.args]
    return None if any(b is None for b in found) else found  # type: ignore[return-value]


def stabilise(e: sp.Expr) -> sp.Expr:
    """Rewrite sums of exponentials so that float64 evaluates them without overflow.

    log(sum_k exp(b_k)) becomes M + log(sum_k exp(b_k - M)), and (sum_k exp(b_k))^-p in a
    denominator becomes exp(-p M) (sum_k exp(b_k - M))^-p (the exp(-p M) then merges with the
    numerator's exponential), where M = Shift(b_1, ..., b_n). Exact for every M, so only the
    rounding changes: softmax at z = 1000, logsumexp, softplus, log-sigmoid stay finite.
    """
    def log_sum(x: sp.Expr) -> sp.Expr:
        b = _exponents(x.args[0])
        shift = Shift(*b)
        return shift + sp.log(sp.Add(*(sp.exp(bk - shift) for bk in b)))

    def inverse_sum(x: sp.Expr) -> sp.Expr:
        b = _exponents(x.base)
        shift = Shift(*b)
        return sp.exp(x.exp * shift) * sp.Add(*(sp.exp(bk - shift) for bk in b)) ** x.exp

    def merge(x: sp.Expr) -> sp.Expr:
        exps = [a for a in x.args if isinstance(a, sp.exp)]
        rest = [a for a in x.args if not isinstance(a, sp.exp)]
        return sp.Mul(*rest, sp.exp(sp.Add(*(a.args[0] for a in exps)), evaluate=False))

    e = e.replace(lambda x: isinstance(x, sp.log) and _exponents(x.args[0]) is not None, log_sum)
    e = e.replace(lambda x: isinstance(x, sp.Pow) and x.exp.is_negative and _exponents(x.base) is not None,
                  inverse_sum)
    if not e.has(Shift):
        return e
    return e.replace(lambda x: isinstance(x, sp.Mul) and sum(isinstance(a, sp.exp) for a in x.args) > 1
                     and any(a.has(Shift) for a in x.args if isinstance(a, sp.exp)), merge)


def _negated_exp(a: sp.Expr) -> bool:
    return isinstance(a, sp.Mul) and len(a.args) == 2 and a.args[0] == -1 and isinstance(a.args[1], sp.exp)


def _saturating(a: sp.Expr) -> sp.Expr | None:
    """1 + a written without cancellation, for a = +-erf(z) or +-tanh(z) (gelu at large |x|):
    1 + erf(z) = erfc(-z), 1 + tanh(z) = 2 / (1 + exp(-2 z))."""
    sign, f = (-1, a.args[1]) if _negated(a) else (1, a)
    if isinstance(f, sp.erf):
        return Erfc(-sign * f.args[0])
    if isinstance(f, sp.tanh):
        return 2 / (1 + sp.exp(-2 * sign * f.args[0]))
    return None


def _negated(a: sp.Expr) -> bool:
    return isinstance(a, sp.Mul) and len(a.args) == 2 and a.args[0] == -1


def accurate(e: sp.Expr) -> sp.Expr:
    """log(1 + x) as log1p(x), exp(x) - 1 as expm1(x), sqrt(a^2 + b^2) as hypot(a, b): the same
    values, without the rounding (or overflow) of the literal forms near 0 (or far out)."""
    def log1p(x: sp.Expr) -> sp.Expr:
        return Log1p(x.args[0] - 1)

    def expm1(x: sp.Expr) -> sp.Expr:
        rest = list(x.args)
        rest.remove(sp.S.NegativeOne)
        first = next(a for a in rest if isinstance(a, sp.exp))
        rest.remove(first)
        return sp.Add(Expm1(first.args[0]), *rest)

    def hypot(x: sp.Expr) -> sp.Expr:
        a, b = x.base.args
        return Hypot(a.base, b.base)

    e = e.replace(lambda x: isinstance(x, sp.log) and isinstance(x.args[0], sp.Add)
                  and sp.S.One in x.args[0].args, log1p)
    def one_minus_exp(x: sp.Expr) -> sp.Expr:
        rest = list(x.args)
        rest.remove(sp.S.One)
        first = next(a for a in rest if _negated_exp(a))
        rest.remove(first)
        return sp.Add(-Expm1(first.args[1].args[0]), *rest)

    def one_plus(x: sp.Expr) -> sp.Expr:
        rest = list(x.args)
        rest.remove(sp.S.One)
        first = next(a for a in rest if _saturating(a) is not None)
        rest.remove(first)
        return sp.Add(_saturating(first), *rest)

    e = e.replace(lambda x: isinstance(x, sp.Add) and sp.S.NegativeOne in x.args
                  and any(isinstance(a, sp.exp) for a in x.args), expm1)
    e = e.replace(lambda x: isinstance(x, sp.Add) and sp.S.One in x.args
                  and any(_saturating(a) is not None for a in x.args), one_plus)
    e = e.replace(lambda x: isinstance(x, sp.Add) and sp.S.One in x.args
                  and any(_negated_exp(a) for a in x.args), one_minus_exp)
    return e.replace(lambda x: isinstance(x, sp.Pow) and x.exp == sp.S.Half and isinstance(x.base, sp.Add)
                     and len(x.base.args) == 2 and all(isinstance(t, sp.Pow) and t.exp == 2
                                                       for t in x.base.args), hypot)


def fold_constants(e: sp.Expr) -> sp.Expr:
    """Constant subexpressions (sigmoid(1/2), sqrt(2) + log(3)) as 50-digit floats (more than
    the mpmath backend's 40).

    Evaluation needs their value only, and SymPy's common-subexpression pass re-evaluates a
    nested constant every time it sorts terms: a few nested exponentials took it minutes."""
    def fold(x: sp.Expr) -> sp.Expr:
        value = x.evalf(50)
        return value if value.is_Float else x  # complex or undefined: left to the lowering

    return e.replace(lambda x: isinstance(x, sp.Expr) and bool(x.args) and not x.is_Number
                     and not x.free_symbols and not x.has(sp.Indexed), fold)


class Guard(sp.Function):
    """Guard(a, cond, safe): a where cond holds, else safe (evaluation only). Inside a piece of a
    Piecewise, the argument of log, sqrt, acos... is guarded by the piece's condition, so the
    piece's value where it is not selected is finite: torch's autograd multiplies the zero
    gradient of an unselected piece by that value, and 0 * nan would poison the gradient
    (the classic nan gradient of where(x > 0, sqrt(x), 0))."""


_SAFE: dict[type, sp.Expr] = {sp.log: sp.S.One, sp.acos: sp.S.Zero, sp.asin: sp.S.Zero,
                              sp.atanh: sp.S.Zero, sp.acosh: sp.Integer(2), sp.erfinv: sp.S.Zero,
                              sp.loggamma: sp.S.One, Log1p: sp.S.Zero}


def _guarded(value: sp.Expr, cond: Any) -> sp.Expr:
    def guard(x: sp.Expr) -> sp.Expr:
        if isinstance(x, sp.Pow):
            return sp.Pow(Guard(x.base, cond, sp.S.One), x.exp)
        if isinstance(x, sp.polygamma):
            return sp.polygamma(x.args[0], Guard(x.args[1], cond, sp.S.One))
        return x.func(Guard(x.args[0], cond, _SAFE[type(x)]))

    def risky(x: Any) -> bool:
        if isinstance(x, sp.Pow):
            return not x.exp.is_integer and bool(x.base.free_symbols)
        if isinstance(x, sp.polygamma):
            return bool(x.args[1].free_symbols)
        return type(x) in _SAFE and bool(x.args[0].free_symbols)

    return value.replace(risky, guard)


def guard_pieces(e: sp.Expr) -> sp.Expr:
    """Every Piecewise piece's domain-restricted arguments guarded by the piece's condition."""
    def rewrite(pw: sp.Piecewise) -> sp.Expr:
        pieces, before = [], []
        for value, cond in pw.args:
            holds = cond if not before else sp.And(cond, *(sp.Not(b) for b in before))
            pieces.append((value if holds is sp.true else _guarded(value, holds), cond))
            before.append(cond)
        return sp.Piecewise(*pieces, evaluate=False)

    if not e.has(sp.Piecewise):
        return e
    return e.replace(lambda x: isinstance(x, sp.Piecewise), rewrite)


def compile_program(exprs: Sequence[Any], inputs: Sequence[sp.Symbol]) -> Program:
    """Common subexpressions eliminated once; each expression lowered to operation tuples."""
    index: dict[sp.Symbol, Op] = {s: ("in", i) for i, s in enumerate(inputs)}
    exprs = [guard_pieces(accurate(stabilise(fold_constants(sp.sympify(e))))) for e in exprs]
    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_t"), order="none")
    temps = []
    for j, (sym, e) in enumerate(replacements):
        temps.append(_lower(e, index))
        index[sym] = ("tmp", j)
    outputs = tuple(_lower(e, index) for e in reduced)
    return Program(tuple(inputs), tuple(temps), outputs)


def evaluate(program: Program, inputs: Sequence[Any], ops: dict[str, Callable[..., Any]]) -> list[Any]:
    """Run `program` on `inputs` with a backend's operation table."""
    temps: list[Any] = []

    def ev(op: Op) -> Any:
        kind = op[0]
        if kind == "in":
            return inputs[op[1]]
        if kind == "tmp":
            return temps[op[1]]
        if kind == "num":
            return ops["num"](op[1])
        if kind == "fn":
            return ops[op[1]](*(ev(a) for a in op[2:]))
        if kind == "piecewise":
            pieces = [(ev(v), ev_cond(c)) for v, c in op[1:]]
            return ops["piecewise"](pieces)
        if kind == "cond":
            return ev_cond(op[1])
        return ops[kind](*(ev(a) for a in op[1:]))

    def ev_cond(c: Op) -> Any:
        if c[0] == "true":
            return True
        if c[0] == "false":
            return False
        if c[0] == "is":
            return ev(c[1])
        if c[0] in ("and", "or", "not"):
            return ops[c[0]](*(ev_cond(a) for a in c[1:]))
        return ops[c[0]](ev(c[1]), ev(c[2]))

    for t in program.temps:
        temps.append(ev(t))
    return [ev(o) for o in program.outputs]
